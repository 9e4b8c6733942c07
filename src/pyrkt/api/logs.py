"""What GetLogs streams: the lines the pod's apps wrote, from their log files (the records of
docs/stage1-abi.md, read with `pyrkt logs`' reader), without their timestamps.

Several apps are merged by time. A line split into partial records is joined again. ``since``
and ``until`` (seconds since the epoch) keep the lines written at or after ``since`` and before
``until``; ``lines`` keeps the last N of what is there when the call starts. Following goes on
until the pod is no longer running (or ``until`` has passed, or the client goes away).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

from pyrkt.config import Config
from pyrkt.model import abi
from pyrkt.model.values import Value
from pyrkt.pods.pod import Pod
from pyrkt.pods.state import State
from pyrkt.stage0 import control, manage

POLL_INTERVAL = 0.2
BATCH_LINES = 1000  # lines per response: one message stays far below gRPC's 4 MiB default limit
BATCH_BYTES = 1 << 20


class LogQuery(Value):
    pod_id: str
    app: str = ""
    lines: int = 0
    follow: bool = False
    since: int = 0  # seconds since the epoch; 0: no bound
    until: int = 0


def text(lines: list[tuple[str, str, bytes]]) -> list[tuple[str, str]]:
    """Whole lines (``control.Lines``) as their times and text."""
    return [(stamp, line.removesuffix(b"\n").decode(errors="replace")) for stamp, _, line in lines]


def select(lines: list[tuple[str, str]], query: LogQuery) -> list[str]:
    """The text of the lines within the query's times, oldest first (``lines`` sorted by time)."""
    window = control.Window(since=query.since * 1_000_000_000 if query.since else None,
                            until=query.until * 1_000_000_000 if query.until else None)
    return [text for stamp, text in lines if window.keeps(stamp)]


def batches(lines: list[str]) -> Iterator[list[str]]:
    """``lines`` in runs of at most BATCH_LINES lines and about BATCH_BYTES bytes."""
    run: list[str] = []
    size = 0
    for line in lines:
        if run and (len(run) >= BATCH_LINES or size + len(line) > BATCH_BYTES):
            yield run
            run, size = [], 0
        run.append(line)
        size += len(line)
    if run:
        yield run


class PodLogs:
    """The log files of the apps a query names, read as they grow."""

    def __init__(self, config: Config, query: LogQuery) -> None:
        self.pod: Pod = manage.find_pod(config, query.pod_id)
        names = [control.pick_app(self.pod, query.app)] if query.app else control.app_names(self.pod.path)
        self.raw = [n for n in names if os.path.exists(self.pod.file(f"{abi.LOGS}/{n}.raw"))]
        self.files = control.Merged([self.pod.file(abi.app_log(n)) for n in names if n not in self.raw])

    def read(self, *, final: bool) -> list[tuple[str, str]]:
        """The lines written since the last read, sorted by time; ``final``: no more will come."""
        return text(self.files.read(final=final))

    def read_raw(self) -> list[str]:
        """The fly flavor's output files: unframed, so without times (and outside since/until)."""
        out: list[str] = []
        for n in self.raw:
            with open(self.pod.file(f"{abi.LOGS}/{n}.raw"), "rb") as f:
                out += f.read().decode(errors="replace").splitlines()
        return out

    def close(self) -> None:
        self.files.close()


def stream(config: Config, query: LogQuery, *, active: Callable[[], bool] = lambda: True,
           sleep: Callable[[float], None] = time.sleep) -> Iterator[list[str]]:
    """The responses of one GetLogs call, each a list of lines (at least one, maybe empty)."""
    logs = PodLogs(config, query)
    try:
        running = logs.pod.state == State.RUNNING
        first = logs.read_raw() + select(logs.read(final=not (query.follow and running)), query)
        if query.lines > 0:
            first = first[-query.lines:]
        yield from batches(first) if first else iter([[]])
        while query.follow and active():
            if query.until and time.time() >= query.until:
                return
            finished = logs.pod.state != State.RUNNING
            new = select(logs.read(final=finished), query)
            yield from batches(new)
            if finished:
                return
            if not new:
                sleep(POLL_INTERVAL)
    finally:
        logs.close()
