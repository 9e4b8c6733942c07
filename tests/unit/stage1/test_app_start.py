"""An app's start with its event handlers, through the recording Kernel: who each process
becomes (``execute.become``) and in which order, without forking or exec'ing anything."""

from __future__ import annotations

import os
from typing import Any

import pytest

from pyrkt.errors import PyrktError
from pyrkt.kernel import caps
from pyrkt.kernel.recording import RecordingKernel
from pyrkt.model.plan import AppPlan
from pyrkt.stage1 import app as app_start
from pyrkt.stage1.users import Ids

USER = Ids(1000, 1000, (), "app", "/home/app")
KEEP = frozenset(caps.DEFAULT_CAPS)


class Exec(Exception):
    """What the fake execve raises: the exec happened, this process image is gone."""


class Exit(Exception):
    pass


class FakeOs:
    """The ``os`` of pyrkt.stage1.app for one test: exec, wait and exit are recorded on the
    kernel's call list, in the order they happen with the privilege drops."""

    def __init__(self, k: RecordingKernel, codes: dict[str, int]) -> None:
        self.k = k
        self.codes = codes  # exit code of each exec'd path
        self.exited: dict[int, str] = {}
        self.last = ""

    def execve(self, path: str, argv: list[str], env: dict[str, str]) -> None:
        self.k.calls.append(("execve", path, tuple(argv)))
        self.last = path
        raise Exec(path)

    def waitpid(self, pid: int, flags: int) -> tuple[int, int]:
        path = self.exited[pid]
        self.k.calls.append(("waitpid", path))
        return pid, self.codes.get(path, 0) << 8

    def close(self, fd: int) -> None:
        self.k.calls.append(("close", fd))

    def _exit(self, code: int) -> None:
        self.k.calls.append(("_exit", code))
        raise Exit(code)

    def kill(self, pid: int, sig: int) -> None:
        raise AssertionError("nothing was signalled")

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)  # WIFEXITED, WEXITSTATUS, getpid... as the real ones


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run ``app_start.start`` for a plan; the recording kernel's calls, fork children inline."""
    def run(plan: AppPlan, codes: dict[str, int] | None = None) -> list[tuple[Any, ...]]:
        k = RecordingKernel()
        fake = FakeOs(k, codes or {})
        pids = iter(range(100, 200))

        def spawn(child: Any) -> int:
            pid = next(pids)
            k.calls.append(("fork",))
            with pytest.raises(Exec):
                child()
            fake.exited[pid] = fake.last
            return pid

        monkeypatch.setattr(app_start, "os", fake)
        monkeypatch.setattr(app_start, "spawn", spawn)
        monkeypatch.setattr(app_start._signal, "signal", lambda sig, handler: None)  # this process's stay
        monkeypatch.setattr(app_start, "find_executable", lambda name, env: name)
        with pytest.raises((Exec, Exit)):
            app_start.start(k, plan, USER, {"PATH": "/bin"}, "/bin/app", 7)
        return k.calls
    return run


def plan(*handlers: tuple[str, tuple[str, ...]]) -> AppPlan:
    return AppPlan(name="web", argv=("/bin/app",), user="1000", caps=tuple(sorted(KEEP)), seccomp=b"BPF",
                   event_handlers=handlers)


def becomes(uid: int) -> list[tuple[Any, ...]]:
    """The calls of ``execute.become`` to ``uid`` within the default caps and the filter."""
    return [("drop_bounding", KEEP), ("set_ids", uid, uid, ()),
            ("set_caps", KEEP if uid == 0 else frozenset(), uid), ("no_new_privs",), ("load_seccomp", b"BPF")]


def test_without_handlers_the_app_drops_its_privileges_and_execs(started: Any) -> None:
    assert started(plan()) == [*becomes(1000), ("execve", "/bin/app", ("/bin/app",))]


def test_pre_start_runs_as_root_before_the_app_drops_to_its_user(started: Any) -> None:
    calls = started(plan(("pre-start", ("/bin/prep", "x"))))
    assert calls == [("fork",), *becomes(0), ("execve", "/bin/prep", ("/bin/prep", "x")), ("waitpid", "/bin/prep"),
                     *becomes(1000), ("execve", "/bin/app", ("/bin/app",))]


def test_a_failing_pre_start_stops_the_app_before_it_starts(started: Any) -> None:
    with pytest.raises(PyrktError, match="pre-start event handler /bin/prep exited with 3"):
        started(plan(("pre-start", ("/bin/prep",))), {"/bin/prep": 3})


def test_post_stop_runs_as_root_after_the_app_under_a_privileged_supervisor(started: Any) -> None:
    calls = started(plan(("post-stop", ("/bin/cleanup",))), {"/bin/app": 4})
    assert calls == [("fork",), *becomes(1000), ("execve", "/bin/app", ("/bin/app",)),
                     ("close", 7),  # the supervisor leaves the error pipe to the app
                     ("waitpid", "/bin/app"),
                     ("fork",), *becomes(0), ("execve", "/bin/cleanup", ("/bin/cleanup",)), ("waitpid", "/bin/cleanup"),
                     ("_exit", 4)]  # and ends as the app ended
