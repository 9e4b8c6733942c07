#!/usr/bin/env python3
"""Randomized concurrent stress driver for pyrkt (as root; not collected by ``make test``).

    .venv/bin/python tests/stress/stress.py [--workers 4] [--duration 300] [--seed N] [--kill-rate 0.15]

Makes a fresh data dir under /var/tmp (removed at the end unless ``--keep``), builds and fetches
the busybox test image (tests/support/images.py), then runs W threads for D seconds, each picking
random pod, app and image commands (run, run --detach [--rm], stop [--force], rm, gc, list,
status, logs [-f], enter, app sandbox/add/start/stop/rm/exec/list/status, prepare, run-prepared,
image list/rm/verify, export, cat-manifest, fetch) with random, sometimes invalid, arguments,
mostly against the newest pods the others made, so that commands meet on the same pod. A share
of them (``--kill-rate``) get a signal 0-200 ms after they start: mostly SIGKILL, else SIGINT (a
terminal's ^C) or SIGTERM. Every command, when it started, its exit code and output go to
``commands.jsonl`` in the log dir it prints; ``violations.txt`` there lists what broke.

Invariants checked (a violation is printed and makes the exit code 1):

- every command exits 0, 254, 1 only where rkt does (status --uuid-file unreadable), or with the
  code of the app/command it ran (run in the foreground, enter, app exec; 137/143 when a stop
  killed it); after ^C or TERM: 130, or the signal's own death;
- stderr never holds a Python traceback (a ^C inside CPython's own start-up, before pyrkt's
  launcher runs, is counted as a note), a 254 ends in ``pyrkt: ...`` lines only, and
  ``--format=json`` prints JSON;
- no command runs longer than 60 s, nor 60 s after its ^C (a py-spy dump, /proc/PID/stack and
  wchan are kept); a foreground run that got ^C or TERM has ended its pod when it returns;
- at the end, after stopping every pod and ``gc --grace-period=0s`` twice: ``list`` is empty, no
  pod dir (embryo/ too), no mount under the data dir, no ``pyrkt/<uuid>`` cgroup, no process of a
  pod, no new netns or link; ``image list`` and ``image verify`` work, and ``image gc
  --grace-period=0s`` then leaves an empty store (no image, blob, layer dir or temp file).

Only ``--net=none`` and ``--net=host``: nothing outside the machine's loopback is touched.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.integration.pods import PYRKT, mounts_under, pids_of_pod  # noqa: E402
from tests.support.images import build_oci_layout  # noqa: E402

PYSPY = next((p for p in (shutil.which("py-spy"), "/tmp/sb/py-spy") if p and os.access(p, os.X_OK)), None)
TIMEOUT = 60.0
# CPython's own start-up, before the first line of pyrkt's launcher: out of pyrkt's reach
INTERPRETER_START = ("Fatal Python error: init_sys_streams", "Fatal Python error: init_interp_main",
                     "Failed checking if argv[0] is an import path entry", "failed to set __main__.__loader__",
                     'bin/pyrkt", line 0, in <module>')
# a ^C in an import's lock callback while Python's own handler is still there (CPython's start-up,
# before the launcher runs): printed as ignored and dropped. Once pyrkt runs, its handler (in the
# traceback if it raised there) puts such a ^C off.
UNRAISABLE = "Exception ignored in: <function _get_module_lock.<locals>.cb"
PYRKT_HANDLER = "pyrkt/cli/main.py"
STOPPED = (137, 143)  # what a command entered into a pod exits with when a stop kills it
BOGUS = ("deadbeef", "00000000-0000-0000-0000-000000000000", "", "zz", "-x")


@dataclass
class Outcome:
    argv: list[str]
    code: int | None  # None: it hung and was killed
    out: str
    err: str
    seconds: float
    killed: bool = False
    allowed: frozenset[int] = frozenset()
    signal: str = ""  # the one it was sent, when killed


@dataclass
class Shared:
    """What the workers made and see, under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    pods: dict[str, None] = field(default_factory=dict)  # every UUID ever printed (also gone ones), in order
    live: dict[str, None] = field(default_factory=dict)  # those not yet seen gone
    sandboxes: dict[str, set[str]] = field(default_factory=dict)  # sandbox UUID -> app names added
    prepared: dict[str, None] = field(default_factory=dict)
    counter: int = 0

    def add(self, uuid: str, *, sandbox: bool = False, prepared: bool = False) -> None:
        with self.lock:
            self.pods[uuid] = None
            self.live[uuid] = None
            if sandbox:
                self.sandboxes.setdefault(uuid, set())
            if prepared:
                self.prepared[uuid] = None

    def gone(self, uuid: str) -> None:
        with self.lock:
            self.live.pop(uuid, None)
            self.sandboxes.pop(uuid, None)
            self.prepared.pop(uuid, None)

    def next(self) -> int:
        with self.lock:
            self.counter += 1
            return self.counter


class Driver:
    def __init__(self, base: Path, logdir: Path, seed: int, kill_rate: float) -> None:
        self.base = base
        self.data = base / "data"
        self.image_dir = base / "busybox"
        self.image = f"oci:{self.image_dir}"
        self.image_id = ""
        self.logdir = logdir
        self.seed = seed
        self.kill_rate = kill_rate
        self.shared = Shared()
        self.violations: list[str] = []
        self.notes: dict[str, int] = {}
        self.vlock = threading.Lock()
        self.log = open(logdir / "commands.jsonl", "w")  # noqa: SIM115
        self.loglock = threading.Lock()
        self.counts: dict[str, int] = {}

    # running commands ------------------------------------------------------------------------
    def violation(self, what: str, o: Outcome | None = None) -> None:
        line = what if o is None else f"{what}: {' '.join(o.argv)} -> {o.code}\n  stdout: {o.out[-800:]!r}\n  stderr: {o.err[-1500:]!r}"
        with self.vlock:
            self.violations.append(line)
        print(f"VIOLATION {line}", flush=True)

    def note(self, what: str, o: Outcome) -> None:
        with self.vlock:
            self.notes[what] = self.notes.get(what, 0) + 1

    def pyrkt(self, rng: random.Random | None, *args: str, allowed: tuple[int, ...] = (),
              kill: bool = False, stdin: str | None = None, check: bool = True,
              kill_after: float | None = None, kill_with: signal.Signals | None = None) -> Outcome:
        argv = [str(PYRKT), f"--dir={self.data}", *args]
        start = time.monotonic()
        p = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        killed = False
        sig = signal.SIGKILL
        if kill and rng is not None:
            delay = rng.uniform(0, 0.2) if kill_after is None else kill_after
            # mostly SIGKILL; sometimes what a terminal's ^C or a supervisor sends
            sig = kill_with or rng.choice((signal.SIGKILL, signal.SIGKILL, signal.SIGKILL, signal.SIGINT, signal.SIGTERM))
            try:
                out, err = p.communicate(stdin, timeout=delay)
            except subprocess.TimeoutExpired:
                p.send_signal(sig)
                killed = True
                try:
                    out, err = p.communicate(timeout=TIMEOUT)
                except subprocess.TimeoutExpired:
                    dump = self.hang_dump(p.pid)
                    p.kill()
                    out, err = p.communicate()
                    o = Outcome(argv, None, out, err + dump, time.monotonic() - start, True)
                    self.record(o)
                    self.violation(f"hang (>{TIMEOUT:.0f}s after {sig.name})", o)
                    return o
        else:
            try:
                out, err = p.communicate(stdin, timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                dump = self.hang_dump(p.pid)
                p.kill()
                out, err = p.communicate()
                o = Outcome(argv, None, out, err + dump, time.monotonic() - start)
                self.record(o)
                self.violation(f"hang (>{TIMEOUT:.0f}s)", o)
                return o
        o = Outcome(argv, p.returncode, out, err, time.monotonic() - start, killed,
                    frozenset({0, 254, *allowed}), sig.name if killed else "")
        self.record(o)
        if check:
            self.check(o)
        if o.code == 254 and "no matches found for" in o.err:
            uuid = o.err.split('"')[1]
            if len(uuid) == 36:
                self.shared.gone(uuid)
        return o

    def hang_dump(self, pid: int) -> str:
        parts = []
        pids = [pid, *self.descendants(pid)]
        for q in pids:
            parts.append(f"\n--- pid {q}: {self.read(f'/proc/{q}/cmdline').replace(chr(0), ' ')}")
            parts.append(f"wchan: {self.read(f'/proc/{q}/wchan')}")
            parts.append(f"stack:\n{self.read(f'/proc/{q}/stack')}")
            if PYSPY:
                r = subprocess.run([PYSPY, "dump", "--pid", str(q)], capture_output=True, text=True, timeout=30)
                parts.append(f"py-spy:\n{r.stdout}{r.stderr}")
        text = "\n".join(parts)
        (self.logdir / f"hang-{pid}.txt").write_text(text)
        return text

    @staticmethod
    def read(path: str) -> str:
        try:
            with open(path) as f:
                return f.read()
        except OSError as e:
            return f"({e})"

    @staticmethod
    def descendants(pid: int) -> list[int]:
        children: dict[int, list[int]] = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(d))
        out, todo = [], [pid]
        while todo:
            for c in children.get(todo.pop(), []):
                out.append(c)
                todo.append(c)
        return out

    def record(self, o: Outcome) -> None:
        with self.loglock:
            self.log.write(json.dumps({"at": round(time.time() - o.seconds, 3), "argv": o.argv[2:], "code": o.code, "killed": o.killed, "signal": o.signal,
                                       "seconds": round(o.seconds, 3), "out": o.out, "err": o.err}) + "\n")
            self.log.flush()
            words = [a for a in o.argv[2:] if not a.startswith("-")]
            key = " ".join(words[:2]) if words and words[0] in ("app", "image") else (words or ["?"])[0]
            self.counts[key] = self.counts.get(key, 0) + 1

    def check(self, o: Outcome) -> None:
        if "Traceback (most recent call last)" in o.err:
            if o.killed and o.signal == "SIGINT" and any(m in o.err for m in INTERPRETER_START):
                self.note("^C while the Python interpreter itself started (before pyrkt's launcher ran)", o)
            elif (o.killed and o.signal == "SIGINT" and o.err.startswith(UNRAISABLE)
                  and o.err.count("Traceback") == 1 and PYRKT_HANDLER not in o.err):
                self.note("^C in an import's lock callback while the Python interpreter itself started", o)
            else:
                self.violation("traceback on stderr", o)
        if o.killed:
            # ^C or TERM: pyrkt's own exit (130, or the signal's) and at most a line, never a mess
            if o.signal != "SIGKILL" and o.code not in (*o.allowed, 130, 143, -2, -15, 1):
                self.violation(f"exit code {o.code} after {o.signal}", o)
            return
        if o.code == 0 and any(f in o.argv for f in ("--format=json", "--format=json-pretty")):
            try:
                json.loads(o.out)
            except ValueError:
                self.violation("--format=json printed no JSON", o)
        if o.code not in o.allowed:
            self.violation(f"exit code {o.code}", o)
        if o.code == 254:
            lines = [ln for ln in o.err.splitlines() if ln.strip()]
            if not lines or not lines[-1].startswith("pyrkt: "):
                self.violation("254 without a final 'pyrkt: ...' line", o)
            else:
                # every line of an error is its own `pyrkt: ` line; anything else is a
                # continuation of a multi-line error (gc's and image rm's own lines aside)
                odd = [ln for ln in lines if not ln.startswith(("pyrkt: ", "gc: ", "Flag --"))
                       and not ln.endswith("successfully removed")]
                if odd:
                    self.violation("254 with stray stderr lines", o)

    # picking arguments -------------------------------------------------------------------------
    def some_pod(self, rng: random.Random, pool: dict[str, None] | None = None) -> str:
        with self.shared.lock:
            pods = list(pool if pool is not None else self.shared.live)
            if rng.random() < 0.05:
                pods = list(self.shared.pods)
            elif rng.random() < 0.7:
                pods = pods[-6:]  # the newest few: so that commands meet on the same pods
        r = rng.random()
        if not pods or r < 0.07:
            return rng.choice(BOGUS)
        uuid = rng.choice(pods)
        return uuid[: rng.choice((8, 12, 36))] if r < 0.3 else uuid

    def some_sandbox(self, rng: random.Random) -> tuple[str, str]:
        with self.shared.lock:
            boxes = {u: sorted(a) for u, a in self.shared.sandboxes.items()}
        if not boxes or rng.random() < 0.05:
            return rng.choice(BOGUS), "nope"
        uuid = rng.choice(list(boxes)[-4:] if rng.random() < 0.7 else list(boxes))
        apps = boxes[uuid]
        app = rng.choice(apps) if apps and rng.random() < 0.9 else rng.choice(("nope", "a0", "Bad_Name"))
        return uuid, app

    def some_image(self, rng: random.Random) -> str:
        return rng.choice((self.image, self.image, self.image_id, self.image_id[:19], "busybox:latest",
                           "example.com/nothing:1", "sha256:0123", f"oci:{self.base}/nothing"))

    @staticmethod
    def pull(image: str) -> list[str]:
        """No discovery: a name not in the store must not reach out to the network."""
        return [] if image.startswith("oci:") else ["--pull-policy=never"]

    # operations --------------------------------------------------------------------------------
    def op_run(self, rng: random.Random, kill: bool) -> None:
        code = rng.choice((0, 0, 3))
        net = rng.choice(("--net=none", "--net=none", "--net=host"))
        extra = rng.choice(([], [], ["--rm"], ["--no-overlay"]))
        image = self.some_image(rng)
        save = self.base / "uuids" / f"u{self.shared.next()}"
        nap = rng.choice(("", "", "sleep 0.5; "))  # time for a ^C to reach the pod
        args = ["run", net, f"--uuid-file-save={save}", *extra, *self.pull(image), image, "--exec=/bin/sh", "--", "-c",
                f"echo out; {nap}echo err >&2; exit {code}"]
        if rng.random() < 0.05:
            args = ["run", net, self.image, "--exec=/no/such/thing"]
        o = self.pyrkt(rng, *args, allowed=(code,), kill=kill)
        uuid = save.read_text().strip() if save.exists() else ""
        if uuid and o.killed and o.signal != "SIGKILL":
            # a ^C or TERM to a foreground run goes to its pod: when run has returned, the pod has ended
            st = self.pyrkt(None, "status", uuid, allowed=(254,), check=False)
            if "state=running" in st.out:
                self.violation(f"pod {uuid} still running after its foreground run got {o.signal} and returned", o)
        if uuid and "--rm" not in extra:
            self.shared.add(uuid)

    def op_run_detach(self, rng: random.Random, kill: bool) -> None:
        net = rng.choice(("--net=none", "--net=none", "--net=host"))
        cmd = rng.choice((["--exec=/bin/sleep", "--", "1000"], ["--exec=/bin/sh", "--", "-c", "sleep 0.3"],
                          ["--exec=/bin/sh", "--", "-c", "trap '' TERM; sleep 1000"]))
        apps = [self.image, f"--name=a{rng.randrange(3)}", *cmd]
        if rng.random() < 0.3:
            apps += ["---", self.image, "--name=second", "--exec=/bin/sleep", "--", "1000"]
        rm = ["--rm"] if rng.random() < 0.15 else []
        o = self.pyrkt(rng, "run", "--detach", *rm, net, *apps, kill=kill)
        if o.code == 0 and o.out.strip():
            self.shared.add(o.out.strip().splitlines()[-1])

    def op_stop(self, rng: random.Random, kill: bool) -> None:
        flags = rng.choice(([], ["--force"], ["--timeout=1s"], ["--force"]))
        self.pyrkt(rng, "stop", *flags, self.some_pod(rng), kill=kill)

    def op_rm(self, rng: random.Random, kill: bool) -> None:
        self.pyrkt(rng, "rm", self.some_pod(rng), kill=kill)

    def op_gc(self, rng: random.Random, kill: bool) -> None:
        extra = rng.choice(([], ["--expire-prepared=0s"], ["--mark-only"]))
        self.pyrkt(rng, "gc", "--grace-period=0s", *extra, kill=kill)

    def op_list(self, rng: random.Random, kill: bool) -> None:
        self.pyrkt(rng, "list", *rng.choice(([], ["--full"], ["--format=json"], ["--no-legend"])), kill=kill)

    def op_status(self, rng: random.Random, kill: bool) -> None:
        if rng.random() < 0.05:
            self.pyrkt(rng, "status", f"--uuid-file={self.base}/no-such-file", allowed=(1,))
            return
        extra = rng.choice(([], ["--format=json"], ["--wait=1s"], ["--wait-ready=1s"]))
        self.pyrkt(rng, "status", *extra, self.some_pod(rng), kill=kill)

    def op_logs(self, rng: random.Random, kill: bool) -> None:
        extra = rng.choice(([], ["--tail=1"], ["--timestamps"], ["--app=a0"]))
        self.pyrkt(rng, "logs", *extra, self.some_pod(rng), kill=kill)

    def op_logs_follow(self, rng: random.Random, kill: bool) -> None:
        """`logs -f` ends when the pod exits, or at the ^C that comes a moment later."""
        self.pyrkt(rng, "logs", "--follow", self.some_pod(rng), kill=True, kill_after=rng.uniform(0.2, 3),
                   kill_with=signal.SIGINT)

    def op_enter(self, rng: random.Random, kill: bool) -> None:
        code = rng.choice((0, 5))
        app = rng.choice(([], ["--app=a0"], ["--app=a1"], ["--app=second"]))
        self.pyrkt(rng, "enter", *app, self.some_pod(rng), "/bin/sh", "-c", f"exit {code}", allowed=(code, *STOPPED),
                   kill=kill)

    def op_sandbox(self, rng: random.Random, kill: bool) -> None:
        net = rng.choice(("--net=none", "--net=host"))
        o = self.pyrkt(rng, "app", "sandbox", net, kill=kill)
        if o.code == 0 and o.out.strip():
            self.shared.add(o.out.strip().splitlines()[-1], sandbox=True)

    def op_app_add(self, rng: random.Random, kill: bool) -> None:
        uuid, _ = self.some_sandbox(rng)
        name = f"x{self.shared.next()}"
        cmd = rng.choice((["--exec=/bin/sleep", "--", "1000"], ["--exec=/bin/sh", "--", "-c", "echo hi; exit 2"]))
        o = self.pyrkt(rng, "app", "add", uuid, rng.choice((self.image_id, self.image_id, "example.com/no:1")),
                       f"--name={name}", *cmd, kill=kill)
        if o.code == 0 or o.killed:
            with self.shared.lock:
                if uuid in self.shared.sandboxes:
                    self.shared.sandboxes[uuid].add(name)

    def op_app(self, rng: random.Random, kill: bool) -> None:
        uuid, app = self.some_sandbox(rng)
        verb = rng.choice(("start", "start", "stop", "rm", "status", "list", "exec", "exec"))
        if verb == "list":
            self.pyrkt(rng, "app", "list", uuid, kill=kill)
        elif verb == "exec":
            code = rng.choice((0, 4))
            self.pyrkt(rng, "app", "exec", uuid, f"--app={app}", "--", "/bin/sh", "-c", f"exit {code}",
                       allowed=(code, *STOPPED), kill=kill)
        else:
            self.pyrkt(rng, "app", verb, uuid, f"--app={app}", kill=kill)

    def op_prepare(self, rng: random.Random, kill: bool) -> None:
        image = self.some_image(rng)
        o = self.pyrkt(rng, "prepare", "--quiet", *self.pull(image), image, "--exec=/bin/sh", "--", "-c", "exit 0", kill=kill)
        if o.code == 0 and o.out.strip():
            self.shared.add(o.out.strip().splitlines()[-1], prepared=True)

    def op_run_prepared(self, rng: random.Random, kill: bool) -> None:
        with self.shared.lock:
            pool = dict(self.shared.prepared)
        uuid = self.some_pod(rng, pool)
        detach = rng.random() < 0.5
        # a prepared pod is in the pool before it runs: another worker's stop may end it in the foreground
        self.pyrkt(rng, "run-prepared", rng.choice(("--net=none", "--net=host")), *(["--detach"] if detach else []),
                   uuid, allowed=() if detach else STOPPED, kill=kill)

    def op_image_list(self, rng: random.Random, kill: bool) -> None:
        self.pyrkt(rng, "image", "list", *rng.choice(([], ["--full"], ["--format=json"])), kill=kill)

    def op_image_rm(self, rng: random.Random, kill: bool) -> None:
        self.pyrkt(rng, "image", "rm", self.some_image(rng), kill=kill)

    def op_image_verify(self, rng: random.Random, kill: bool) -> None:
        self.pyrkt(rng, "image", "verify", self.image_id, kill=kill)

    def op_fetch(self, rng: random.Random, kill: bool) -> None:
        self.pyrkt(rng, "fetch", self.image, kill=kill)

    def op_export(self, rng: random.Random, kill: bool) -> None:
        out = self.base / "exports" / f"e{self.shared.next()}.aci"
        app = rng.choice(([], ["--app=a0"]))
        fmt = rng.choice(([], ["--format=oci-archive"]))
        self.pyrkt(rng, "export", *app, *fmt, self.some_pod(rng), str(out), kill=kill)
        out.unlink(missing_ok=True)

    def op_cat_manifest(self, rng: random.Random, kill: bool) -> None:
        self.pyrkt(rng, "cat-manifest", self.some_pod(rng), kill=kill)

    OPS = (("run", 6), ("run_detach", 8), ("stop", 5), ("rm", 4), ("gc", 1), ("list", 4), ("status", 5),
           ("logs", 3), ("logs_follow", 1), ("enter", 4), ("sandbox", 3), ("app_add", 5), ("app", 10), ("prepare", 3),
           ("run_prepared", 3), ("image_list", 2), ("image_rm", 1), ("image_verify", 1), ("fetch", 1),
           ("export", 3), ("cat_manifest", 2))

    def worker(self, index: int, deadline: float) -> None:
        rng = random.Random(self.seed * 1000 + index)
        names = [n for n, _ in self.OPS]
        weights = [w for _, w in self.OPS]
        while time.monotonic() < deadline:
            name = rng.choices(names, weights)[0]
            kill = rng.random() < self.kill_rate
            try:
                getattr(self, f"op_{name}")(rng, kill)
            except Exception as e:  # the driver's own failure: say so, keep going
                self.violation(f"driver error in {name}: {e!r}")
            # keep the number of live pods bounded
            if rng.random() < 0.01:
                self.pyrkt(rng, "gc", "--grace-period=0s")

    # setup and the end -------------------------------------------------------------------------
    def setup(self) -> None:
        build_oci_layout(self.image_dir, tag="latest")
        (self.base / "exports").mkdir()
        (self.base / "uuids").mkdir()
        o = self.pyrkt(None, "fetch", self.image)
        if o.code != 0:
            raise SystemExit(f"fetch failed: {o}")
        self.image_id = o.out.strip().splitlines()[-1]

    def teardown_and_check(self, netns_before: set[str], links_before: set[str]) -> None:
        o = self.pyrkt(None, "list", "--no-legend", "--full")
        for line in o.out.splitlines():
            fields = line.split()
            if fields and len(fields[0]) == 36:
                self.pyrkt(None, "stop", "--force", fields[0], allowed=(254,), check=False)
        # prepared pods are not stopped: expire them
        for _ in range(2):
            self.pyrkt(None, "gc", "--grace-period=0s", "--expire-prepared=0s")
        o = self.pyrkt(None, "list", "--no-legend", "--full")
        if o.out.strip():
            self.violation(f"pods left after stop and gc:\n{o.out}")
        left = [str(p) for p in (self.data / "pods").glob("*/*")]
        if left:
            self.violation(f"pod dirs left: {left}")
        m = mounts_under(self.base)
        if m:
            self.violation(f"mounts left under {self.base}: {m}")
        with self.shared.lock:
            pods = sorted(self.shared.pods)
        for uuid in pods:
            cg = [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/pyrkt/{uuid}")]
            if cg:
                self.violation(f"cgroups left for {uuid}: {cg}")
            procs = pids_of_pod(uuid)
            if procs:
                info = {p: self.read(f"/proc/{p}/cmdline").replace("\0", " ") for p in procs}
                self.violation(f"processes left for {uuid}: {info}")
        procs = self.procs_under(self.data)
        if procs:
            self.violation(f"processes mentioning {self.data}: {procs}")
        new_ns = netns() - netns_before
        if new_ns:
            self.violation(f"netns left: {sorted(new_ns)}")
        new_links = links() - links_before
        if new_links:
            self.violation(f"links left: {sorted(new_links)}")
        o = self.pyrkt(None, "image", "list")
        o = self.pyrkt(None, "image", "verify", self.image_id, allowed=(254,), check=False)
        if o.code != 0 and "not found" not in o.err:
            self.violation("image verify", o)
        # with no pod left, an image gc of everything leaves an empty store
        self.pyrkt(None, "image", "gc", "--grace-period=0s")
        o = self.pyrkt(None, "image", "list", "--no-legend")
        if o.out.strip():
            self.violation(f"images left after image gc --grace-period=0s:\n{o.out}")
        store = self.data / "store"
        left = [str(p.relative_to(store)) for sub in ("blobs", "layers", "tmp") if (store / sub).is_dir()
                for p in (store / sub).rglob("*") if not p.is_dir() or not any(p.iterdir())]
        left = [p for p in left if p not in ("blobs/sha256", "layers/sha256")]
        if left:
            self.violation(f"store files left after image gc: {left[:20]}")

    @staticmethod
    def procs_under(data: Path) -> dict[int, str]:
        out = {}
        me = os.getpid()
        for d in os.listdir("/proc"):
            if d.isdigit() and int(d) != me:
                try:
                    with open(f"/proc/{d}/cmdline") as f:
                        cmd = f.read().replace("\0", " ")
                except OSError:
                    continue
                if str(data) in cmd:
                    out[int(d)] = cmd
        return out


def netns() -> set[str]:
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    return {ln.split()[0] for ln in r.stdout.splitlines() if ln.strip()}


def links() -> set[str]:
    r = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True)
    return {ln.split(":")[1].strip().split("@")[0] for ln in r.stdout.splitlines() if ":" in ln}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--duration", type=float, default=300)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--kill-rate", type=float, default=0.15)
    ap.add_argument("--keep", action="store_true", help="keep the data dir (after the checks)")
    ns = ap.parse_args()
    if os.geteuid() != 0:
        print("stress.py: needs root", file=sys.stderr)
        return 2
    # started in the background of a shell, this process ignores ^C and its commands would inherit
    # that: give them the default, as a terminal's would have
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    seed = ns.seed if ns.seed is not None else random.randrange(1 << 30)
    base = Path(tempfile.mkdtemp(prefix="pyrkt-stress-", dir="/var/tmp"))
    logdir = Path(tempfile.mkdtemp(prefix="pyrkt-stress-log-", dir="/var/tmp"))
    print(f"seed={seed} workers={ns.workers} duration={ns.duration}s data={base} log={logdir}", flush=True)
    netns_before, links_before = netns(), links()
    d = Driver(base, logdir, seed, ns.kill_rate)
    try:
        d.setup()
        deadline = time.monotonic() + ns.duration
        threads = [threading.Thread(target=d.worker, args=(i, deadline), daemon=True) for i in range(ns.workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        d.teardown_and_check(netns_before, links_before)
    finally:
        left = mounts_under(base)
        if not ns.keep and not left:
            shutil.rmtree(base, ignore_errors=True)
        elif left:
            print(f"not removing {base}: mounts left", flush=True)
    print(f"commands: {sum(d.counts.values())} " + ", ".join(f"{k}={v}" for k, v in sorted(d.counts.items())))
    for what, n in d.notes.items():
        print(f"note: {n}x {what}")
    print(f"violations: {len(d.violations)} (log: {logdir})")
    (logdir / "violations.txt").write_text("\n\n".join(d.violations))
    return 1 if d.violations else 0


if __name__ == "__main__":
    sys.exit(main())
