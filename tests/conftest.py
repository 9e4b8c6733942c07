"""Test tiers, the `pyrkt` CLI fixture and the leak check shared by the whole suite.

Tiers come from the folder: tests under ``tests/integration`` and ``tests/e2e`` are marked
``privileged`` and skipped (with the reason) when not run as root. Every test gets a fresh
``data_dir`` for ``--dir`` and a ``pyrkt`` fixture that runs the installed CLI on it. After a
privileged test that used ``data_dir``, anything left behind fails the test and is cleaned up
so later tests are not affected: a pod still running (killed by pid), a mount under the data
dir (lazily unmounted), a cgroup of one of its pods that ``pyrkt gc`` did not remove. Every
test has a time limit (``PYRKT_TEST_TIMEOUT`` seconds, default 300).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
PYRKT_BIN = REPO / ".venv" / "bin" / "pyrkt"
PRIVILEGED_TIERS = ("integration", "e2e")
TEST_TIMEOUT = int(os.environ.get("PYRKT_TEST_TIMEOUT", "300"))

# The tests' gRPC clients and servers, as pyrkt.api.rpc loads gRPC for pyrkt's own: without
# gRPC's fork handlers, which would otherwise run in every child these tests fork.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")


# -- tiers ------------------------------------------------------------------------------------

def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests_dir = REPO / "tests"
    not_root = pytest.mark.skip(reason="needs root: this tier uses namespaces, mounts and cgroups (run as root)")
    for item in items:
        try:
            tier = item.path.relative_to(tests_dir).parts[0]
        except ValueError:
            continue
        if tier in PRIVILEGED_TIERS:
            item.add_marker(pytest.mark.privileged)
            if os.geteuid() != 0:
                item.add_marker(not_root)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Fail a test that runs longer than TEST_TIMEOUT instead of hanging the whole suite."""

    def expired(signum: int, frame: Any) -> None:
        pytest.fail(f"test took longer than {TEST_TIMEOUT}s (PYRKT_TEST_TIMEOUT)", pytrace=True)

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_TIMEOUT)
    try:
        return (yield)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(autouse=True)
def environment_restored() -> Iterator[None]:
    """The environment a test leaves is the one it found: a command run in-process may set a
    variable for its own process (`cri` and `api-service` set GRPC_VERBOSITY), which would
    otherwise reach every later test's children."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


# -- the CLI ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Result:
    """What one `pyrkt` command did; ``str()`` of it makes a useful assertion message."""

    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return (f"$ {' '.join(self.args)}\nexit {self.code}\n"
                f"--- stdout ---\n{self.out}--- stderr ---\n{self.err}")


class Pyrkt:
    """Runs the installed CLI as ``.venv/bin/pyrkt --dir=<data_dir> ARGS…``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def argv(self, *args: str) -> list[str]:
        if not PYRKT_BIN.exists():
            pytest.fail(f"{PYRKT_BIN} is missing: run `make venv` first")
        return [str(PYRKT_BIN), f"--dir={self.data_dir}", *args]

    def __call__(self, *args: str, timeout: float = 60, input: str | None = None,
                 env: dict[str, str] | None = None, check: bool = False) -> Result:
        """Run to completion; ``check=True`` fails the test unless the exit code is 0."""
        argv = self.argv(*args)
        try:
            proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                                  env=env, stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"$ {' '.join(argv)}\ndid not finish within {timeout}s\n"
                        f"stdout: {exc.stdout!r}\nstderr: {exc.stderr!r}")
        result = Result(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
        if check and result.code != 0:
            pytest.fail(str(result))
        return result

    def popen(self, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
        """Start without waiting (foreground `run` to signal, `logs -f`…); the caller waits."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.Popen(self.argv(*args), text=True, **kwargs)


@pytest.fixture
def data_dir(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A fresh, empty pyrkt data dir for this test; checked for leaks after privileged tests."""
    path = (tmp_path / "data").resolve()
    path.mkdir()
    yield path
    if request.node.get_closest_marker("privileged") and os.geteuid() == 0:
        problems = leaks(path)
        if problems:
            pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture
def pyrkt(data_dir: Path) -> Pyrkt:
    return Pyrkt(data_dir)


# -- leak checks ------------------------------------------------------------------------------

def leaks(data_dir: Path) -> list[str]:
    """What a test left behind, each cleaned up once reported so later tests are not affected.

    A pod still running is killed; a mount under the data dir is a leak even after the pod
    exited (pods mount in their own namespaces); then `pyrkt gc` collects every pod, after
    which no cgroup of any of them may remain.
    """
    problems = []
    killed = kill_running_pods(data_dir)
    if killed:
        problems.append("pods still running after the test (killed): " + ", ".join(killed))
    mounts = mounts_under(data_dir)
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", mount], capture_output=True)
    if mounts:
        problems.append("mounts left under the data dir (lazily unmounted): " + ", ".join(mounts))
    subcgroups = {f.read_text().strip() for f in data_dir.glob("pods/*/*/subcgroup")}
    if any(data_dir.glob("pods/*/*")):
        gc = subprocess.run([str(PYRKT_BIN), f"--dir={data_dir}", "gc", "--grace-period=0s"],
                            capture_output=True, text=True, timeout=60)
        if gc.returncode != 0 or "not removed:" in gc.stderr:  # gc exits 0 past a pod it cannot delete
            problems.append(f"pyrkt gc after the test failed: {gc.stderr.strip()}")
    cgroups = [str(h / sub) for sub in subcgroups if sub for h in Path("/sys/fs/cgroup").iterdir()
               if (h / sub).is_dir()]
    for cgroup in cgroups:
        for top, _, _ in sorted(os.walk(cgroup), key=lambda w: -len(w[0])):
            with contextlib.suppress(OSError):
                os.rmdir(top)
    if cgroups:
        problems.append("cgroups left after pyrkt gc (removed): " + ", ".join(cgroups))
    return problems


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` in this process's mount namespace."""
    root = str(path)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = unescape_mountinfo(line.split()[4])
            if point == root or point.startswith(root + "/"):
                found.append(point)
    return found


def unescape_mountinfo(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040 …)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def kill_running_pods(data_dir: Path) -> list[str]:
    """SIGKILL, by pid, the init (and process group) of every pod of data_dir still locked, and
    wait until its lock is free."""
    killed = []
    for pod in sorted(data_dir.glob("pods/run/*")):
        if not is_locked(pod):
            continue  # the pod has exited
        for name, kill, ours in (("pgid", os.killpg, os.getpgrp()), ("pid", os.kill, os.getpid())):
            try:
                target = int((pod / name).read_text().strip())
                if target > 1 and target != ours:  # never the test runner itself
                    kill(target, signal.SIGKILL)
            except (FileNotFoundError, ValueError, ProcessLookupError):
                pass
        deadline = time.monotonic() + 10
        while is_locked(pod) and time.monotonic() < deadline:
            time.sleep(0.05)
        killed.append(pod.name)
    return killed


def is_locked(pod_dir: Path) -> bool:
    """Whether some process holds the pod dir's flock (the pod is running)."""
    try:
        fd = os.open(pod_dir, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
