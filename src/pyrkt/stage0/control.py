"""Acting on running pods: enter, stop, and reading app logs (also after the pod exited)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator

from pyrkt.config import Config
from pyrkt.errors import InvalidState, NotFound, UsageError, quote
from pyrkt.kernel import fs, lock
from pyrkt.model import abi
from pyrkt.model.values import Value
from pyrkt.pods.pod import Pod
from pyrkt.pods.state import State
from pyrkt.stage1.poddir import read_manifest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO



def app_names(pod_dir: str) -> list[str]:
    try:
        manifest = read_manifest(pod_dir)
    except FileNotFoundError:
        return []
    return [a.name for a in manifest.apps]


def pick_app(pod: Pod, app: str) -> str:
    names = app_names(pod.path)
    if app:
        if app not in names:
            raise NotFound(f"app {app!r} not found in pod {pod.uuid} (apps: {', '.join(names) or 'none'})")
        return app
    if not names:
        raise InvalidState(f"pod {pod.uuid} has no apps (add one with `pyrkt app add`)")
    if len(names) != 1:
        raise UsageError(f"pod {pod.uuid} has {len(names)} apps ({', '.join(names)}): choose one with --app")
    return names[0]


def wait_for_pid(pod: Pod, timeout: float = 5.0) -> None:
    """rkt's enter waits for the pid file of a pod that is just starting, and gives up if it
    dies; pyrkt's flavors say the pod is ready with ``supervisor-status``, a stage1 image (which
    need not) with its ``pid`` or ``ppid`` file."""
    deadline = time.monotonic() + timeout
    while True:
        st = pod.state
        if st == State.RUNNING and os.path.islink(pod.file(abi.SUPERVISOR_STATUS)):
            return
        if st == State.RUNNING and os.path.exists(pod.file(abi.STAGE1_MANIFEST)) and (
                os.path.exists(pod.file(abi.PID)) or os.path.exists(pod.file(abi.PPID))):
            return  # a stage1 image's pod: its pid file is all rkt's ABI promises
        if st not in (State.RUNNING, State.PREPARING) or time.monotonic() > deadline:
            raise InvalidState(f"pod {quote(pod.uuid)} isn't currently running")  # rkt's words
        time.sleep(0.02)


def enter(config: Config, uuid: str, app: str, argv: list[str], *, tty: bool = False) -> int:
    """``tty``: the command gets a terminal of its own (`app exec --tty`; default flavor only)."""
    from pyrkt.stage1 import flavor

    pod = Pod.find(config.pods_dir, uuid)
    wait_for_pid(pod)
    name = pick_app(pod, app)
    fl = flavor.of_pod(pod.path)
    if tty:
        return fl.enter(pod.path, name, argv, tty=True)  # type: ignore[call-arg]
    return fl.enter(pod.path, name, argv)


def default_shell(pod: Pod, app: str) -> list[str]:
    """rkt enters /bin/bash by default; images without bash (busybox, alpine) get /bin/sh."""
    layers = fs.read_json(pod.file(abi.app_layers(app)))
    from pyrkt.stage0.layers import find_executable

    for shell in ("/bin/bash", "/bin/sh"):
        if find_executable([str(p) for p in layers], shell, "") is not None:
            return [shell]
    return ["/bin/bash"]


AFTER_RUN = (State.EXITED, State.EXITED_DELETING, State.EXITED_GARBAGE, State.DELETING, State.GARBAGE)


def stop(config: Config, uuid: str, *, force: bool,
         timeout: float = abi.DEFAULT_STOP_TIMEOUT) -> tuple[str, bool]:
    """Stop a running pod and wait until it has exited: TERM its apps, then KILL those still
    running ``timeout`` seconds later (pod init does, and records them as stopped); a pod still
    there when its flavor's wait is over is killed whole. Returns the UUID and whether it was
    stopped now: a pod that has exited already is no error (rkt: "already stopped"), one that
    has not run yet is."""
    from pyrkt.stage1 import flavor

    pod = Pod.find(config.pods_dir, uuid)
    if pod.state in AFTER_RUN:
        return pod.uuid, False
    if pod.state != State.RUNNING:
        raise InvalidState(f"pod {quote(pod.uuid)} is not running")
    fl = flavor.of_pod(pod.path)
    deadline = time.monotonic() + fl.stop(pod.path, force=force, timeout=timeout)
    while lock.is_locked(pod.path):
        if time.monotonic() > deadline:
            if force:
                raise InvalidState(f"pod {pod.uuid} did not stop after it was killed")
            fl.stop(pod.path, force=True, timeout=timeout)
            force = True
            deadline = time.monotonic() + abi.STOP_GRACE
        time.sleep(0.005)  # a flock attempt: cheap; at 20 ms, a stop waited 10 ms more on average
        pod.relocate()
    return pod.uuid, True


TAIL_CHUNK = 1 << 16


class LogFile:
    """One app's log file (``logs/<app>.log``, docs/stage1-abi.md), read as it grows: each
    ``read`` returns the (timestamp, stream, text) records appended since the last one. A record
    whose line is still being written waits for the next ``read``; a file not there yet reads
    as empty. ``text`` ends with a newline for an ``F`` record, not for a ``P`` (partial) one."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: BinaryIO | None = None
        self._partial = b""
        self._dirty: set[str] = set()  # after skip_to_last: streams whose first records end an earlier line

    def open(self) -> bool:
        if self._file is None:
            try:
                self._file = open(self.path, "rb")
            except FileNotFoundError:
                return False
        return True

    def skip_to_last(self, lines: int) -> None:
        """Start reading near the end, where ``lines`` whole lines are still to come (`logs
        --tail`), not at the start of what may be a large file: at the record before which
        ``lines`` + 2 ``F`` records lie. A stream whose record before that point is a ``P`` has
        a line begun before it: its records up to its first ``F`` are dropped (one line per
        stream at most, older than every line that begins after the point)."""
        if not self.open():
            return
        assert self._file is not None
        size = self._file.seek(0, os.SEEK_END)
        want, cut, after = lines + 2, 0, set()
        for start, record in self._backwards(size):
            fields = record.split(b" ", 3)
            if len(fields) != 4:
                continue
            after.add(fields[1])
            if fields[2] == b"F":
                want -= 1
                if not want:
                    cut = start
                    break
        if not cut:
            self._file.seek(0)
            return
        dirty = set()
        for _, record in self._backwards(cut):  # each stream's record before the cut
            fields = record.split(b" ", 3)
            if len(fields) == 4 and fields[1] in after:
                after.discard(fields[1])
                if fields[2] == b"P":
                    dirty.add(fields[1].decode())
                if not after:
                    break
        self._file.seek(cut)
        self._dirty = dirty

    def _backwards(self, end: int) -> Iterator[tuple[int, bytes]]:
        """The whole records before offset ``end`` (a record's start), last first, with where
        each starts; read in chunks twice as long each time."""
        assert self._file is not None
        step, pos, rest = TAIL_CHUNK, end, b""
        while pos > 0:
            new = max(0, pos - step)
            step *= 2
            self._file.seek(new)
            buf = self._file.read(pos - new) + rest
            records = buf.split(b"\n")
            rest = records.pop(0) if new else b""  # the first may be cut: kept for the next chunk
            at = new + len(rest) + (1 if new else 0)
            starts = []
            for record in records:
                starts.append(at)
                at += len(record) + 1
            for start, record in zip(reversed(starts), reversed(records), strict=True):
                if start < end and record:
                    yield start, record
            pos = new
        if rest:
            yield 0, rest

    def read(self) -> list[tuple[str, str, bytes]]:
        if not self.open():
            return []
        assert self._file is not None
        chunk = self._file.read()
        if not chunk:
            return []
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        out = []
        for line in lines:
            parts = line.split(b" ", 3)
            if len(parts) != 4:
                continue
            stream, final = parts[1].decode(), parts[2] == b"F"
            if stream in self._dirty:
                if final:
                    self._dirty.discard(stream)
                continue
            out.append((parts[0].decode(), stream, parts[3] + (b"\n" if final else b"")))
        return out

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def log_records(path: str, *, follow: bool, pod: Pod) -> Iterator[tuple[str, str, bytes]]:
    """(timestamp, stream, text) from an app's log file; follows until the pod has exited."""
    log = LogFile(path)
    try:
        while True:
            records = log.read()
            if records:
                yield from records
                continue
            if not follow:
                return
            if pod.state != State.RUNNING:
                yield from log.read()  # one more read after the pod has gone, then stop
                return
            time.sleep(0.1)
    finally:
        log.close()


class Lines:
    """Joins one app's records into whole lines: the partial (``P``) pieces of a stream's line
    wait for the piece that ends it, and the line is one record at the time of its first piece
    (so merging apps by time cannot cut a line in two); ``flush`` gives what is left when no
    more will come."""

    def __init__(self) -> None:
        self.pending: dict[str, tuple[str, bytes]] = {}  # stream -> (time of its first piece, text)

    def add(self, records: Iterable[tuple[str, str, bytes]]) -> list[tuple[str, str, bytes]]:
        out = []
        for stamp, stream, text in records:
            first, before = self.pending.pop(stream, (stamp, b""))
            if text.endswith(b"\n"):
                out.append((first, stream, before + text))
            else:
                self.pending[stream] = (first, before + text)
        return out

    def flush(self) -> list[tuple[str, str, bytes]]:
        out = [(first, stream, text) for stream, (first, text) in self.pending.items()]
        self.pending.clear()
        return out


class Window(Value):
    """Which lines `logs` shows (podman's ``--since``, ``--until``, ``--tail``): those written
    at or after ``since`` and before ``until`` (ns since the epoch, None: no bound), then the
    last ``tail`` of them (-1: all) as the command starts; following goes on after those."""

    since: int | None = None
    until: int | None = None
    tail: int = -1

    def whole(self) -> bool:
        return self.since is None and self.until is None and self.tail < 0

    def keeps(self, stamp: str) -> bool:
        if self.since is None and self.until is None:
            return True
        ns = record_time_ns(stamp)
        return ns is not None and (self.since is None or ns >= self.since) and (self.until is None or ns < self.until)

    def ended(self, stamp: str) -> bool:
        """Whether a line of this time is at or past ``until`` (following stops there)."""
        if self.until is None:
            return False
        ns = record_time_ns(stamp)
        return ns is not None and ns >= self.until

    def last(self, lines: list[tuple[str, str, bytes]]) -> list[tuple[str, str, bytes]]:
        lines = [line for line in lines if self.keeps(line[0])]
        return lines if self.tail < 0 else lines[max(0, len(lines) - self.tail):]


WHOLE = Window()


def record_time_ns(stamp: str) -> int | None:
    """``2026-01-02T03:04:05.123456789Z`` (the log records' time, UTC) in ns since the epoch."""
    import calendar

    try:
        whole = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
        frac = stamp[20:].rstrip("Z") if len(stamp) > 20 and stamp[19] == "." else ""
        return whole * 1_000_000_000 + int((frac + "000000000")[:9] or 0)
    except ValueError:
        return None


def logs(config: Config, uuid: str, app: str, *, follow: bool,
         window: Window = WHOLE) -> Iterator[tuple[str, str, bytes]]:
    pod = Pod.find(config.pods_dir, uuid)
    name = pick_app(pod, app) if app or len(app_names(pod.path)) == 1 else ""
    names = [name] if name else app_names(pod.path)
    if len(names) == 1:
        raw = pod.file(f"{abi.LOGS}/{names[0]}.raw")  # the fly flavor's unframed output
        if os.path.exists(raw):
            if window.since is not None or window.until is not None:
                raise UsageError(f"app {names[0]} ran with the fly flavor, whose output is kept without times: "
                                 "--since and --until cannot apply")
            text = fs.read_bytes(raw)
            if window.tail >= 0:
                kept = text.splitlines(keepends=True)
                text = b"".join(kept[max(0, len(kept) - window.tail):])
            yield "", "stdout", text
            return
    if not names and follow:
        raise InvalidState(f"pod {pod.uuid} has no apps to follow (add one with `pyrkt app add`)")
    if len(names) == 1 and window.whole():  # as it comes, a long line's pieces too
        yield from log_records(pod.file(abi.app_log(names[0])), follow=follow, pod=pod)
        return
    yield from windowed([pod.file(abi.app_log(n)) for n in names], window, follow=follow, pod=pod)


class Merged:
    """Several apps' log files, read as they grow as whole lines merged by time."""

    def __init__(self, paths: list[str]) -> None:
        self.logs = [(LogFile(path), Lines()) for path in paths]

    def skip_to_last(self, lines: int) -> None:
        for log, _ in self.logs:  # the last lines of each app are what the last of them all can be
            log.skip_to_last(lines)

    def read(self, *, final: bool) -> list[tuple[str, str, bytes]]:
        """The lines written since the last read, sorted by time; ``final``: no more will come."""
        out = []
        for log, lines in self.logs:
            out += lines.add(read_all(log)) + (lines.flush() if final else [])
        out.sort(key=lambda line: line[0])
        return out

    def close(self) -> None:
        for log, _ in self.logs:
            log.close()


def windowed(paths: list[str], window: Window, *, follow: bool, pod: Pod) -> Iterator[tuple[str, str, bytes]]:
    """The apps' logs as whole lines merged by time, in ``window``; following, the lines after
    those (merged by time as each read finds them), until the pod has exited or
    ``window.until`` has passed."""
    logs = Merged(paths)
    if window.tail >= 0 and window.since is None and window.until is None:
        logs.skip_to_last(window.tail)
    try:
        running = follow and pod.state == State.RUNNING
        yield from window.last(logs.read(final=not running))
        while running:
            if window.until is not None and time.time_ns() >= window.until:
                return
            running = pod.state == State.RUNNING
            new = logs.read(final=not running)
            for line in new:
                if window.ended(line[0]):
                    return
                if window.keeps(line[0]):
                    yield line
            if running and not new:
                time.sleep(0.1)
    finally:
        logs.close()


def read_all(log: LogFile) -> list[tuple[str, str, bytes]]:
    out: list[tuple[str, str, bytes]] = []
    while records := log.read():
        out += records
    return out
