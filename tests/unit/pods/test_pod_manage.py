"""The stage0 use cases over pods: list, status waits, rm of several pods, a whole gc run."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyrkt.config import Config
from pyrkt.errors import PyrktError
from pyrkt.model import abi
from pyrkt.pods.pod import Pod
from pyrkt.pods.state import Dir, State
from pyrkt.stage0 import manage


@pytest.fixture
def config(pods_dir: Path) -> Config:
    return Config(data_dir=pods_dir.parent)


def no_teardown(pod_dir: Path) -> None:
    pass


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.hooks: list[Callable[[], None]] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        if self.hooks:
            self.hooks.pop(0)()


def test_list_walks_prepare_prepared_run_and_exited_garbage_in_that_order(
    make_pod: Callable[..., Path], config: Config, holder: Any
) -> None:
    holder.lock(make_pod(Dir.PREPARE, "40000000-0000-4000-8000-000000000000", manifest=False))
    make_pod(Dir.PREPARED, "30000000-0000-4000-8000-000000000000")
    make_pod(Dir.RUN, "20000000-0000-4000-8000-000000000000")
    make_pod(Dir.EXITED_GARBAGE, "10000000-0000-4000-8000-000000000000")
    make_pod(Dir.GARBAGE, "00000000-0000-4000-8000-000000000000")
    make_pod(Dir.EMBRYO, "50000000-0000-4000-8000-000000000000")
    pods = manage.list_pods(config)
    assert [(p.uuid[0], p.state) for p in pods] == [
        ("4", State.PREPARING), ("3", State.PREPARED), ("2", State.EXITED), ("1", State.EXITED_GARBAGE),
    ]


def test_status_resolves_a_prefix(make_pod: Callable[..., Path], config: Config) -> None:
    make_pod(Dir.PREPARED, "abcdef00-0000-4000-8000-000000000000")
    assert manage.pod_status(config, "abc").uuid == "abcdef00-0000-4000-8000-000000000000"


def test_wait_finished_returns_when_the_pod_exits(
    make_pod: Callable[..., Path], pods_dir: Path, holder: Any
) -> None:
    path = make_pod(Dir.RUN)
    fd = holder.lock(path)
    t = FakeTime()
    t.hooks = [lambda: None, lambda: holder.release(fd)]
    manage.wait_finished(Pod(pods_dir, path.name, Dir.RUN), math.inf, clock=t.clock, sleep=t.sleep)
    assert t.now == pytest.approx(0.2)


def test_wait_finished_times_out_on_a_running_pod(
    make_pod: Callable[..., Path], pods_dir: Path, holder: Any
) -> None:
    path = make_pod(Dir.RUN)
    holder.lock(path)
    t = FakeTime()
    with pytest.raises(PyrktError, match=f"timed out after 1s waiting for pod {path.name} to finish"):
        manage.wait_finished(Pod(pods_dir, path.name, Dir.RUN), 1.0, clock=t.clock, sleep=t.sleep)
    assert t.now == pytest.approx(1.0)


def test_a_prepared_pod_is_not_finished(make_pod: Callable[..., Path], pods_dir: Path) -> None:
    path = make_pod(Dir.PREPARED)
    assert not manage.is_finished(Pod(pods_dir, path.name, Dir.PREPARED))


def test_wait_ready_returns_once_supervisor_status_points_to_ready(
    make_pod: Callable[..., Path], pods_dir: Path, holder: Any
) -> None:
    path = make_pod(Dir.RUN)
    holder.lock(path)
    t = FakeTime()
    t.hooks = [lambda: os.symlink("ready", path / abi.SUPERVISOR_STATUS)]
    manage.wait_ready(Pod(pods_dir, path.name, Dir.RUN), 5.0, clock=t.clock, sleep=t.sleep)
    assert t.now == pytest.approx(0.1)


def test_wait_ready_fails_when_the_pod_exits_without_being_ready(
    make_pod: Callable[..., Path], pods_dir: Path
) -> None:
    path = make_pod(Dir.RUN)
    t = FakeTime()
    with pytest.raises(PyrktError, match="exited before it was ready"):
        manage.wait_ready(Pod(pods_dir, path.name, Dir.RUN), math.inf, clock=t.clock, sleep=t.sleep)


def test_rm_carries_on_past_failures_and_reports_each(
    make_pod: Callable[..., Path], config: Config, holder: Any
) -> None:
    exited = make_pod(Dir.RUN, "aaaa0000-0000-4000-8000-000000000000")
    running = make_pod(Dir.RUN, "bbbb0000-0000-4000-8000-000000000000")
    holder.lock(running)
    prepared = make_pod(Dir.PREPARED, "cccc0000-0000-4000-8000-000000000000")
    results = manage.remove_pods(config, ["aaaa", "bbbb", "nope", "", "cccc"], no_teardown)
    assert [(r.query, r.uuid, r.error) for r in results] == [
        ("aaaa", exited.name, None),
        ("bbbb", running.name, f'pod "{running.name}" is currently running'),
        ("nope", None, 'no matches found for "nope"'),
        ("", None, "UUID cannot be empty"),
        ("cccc", prepared.name, None),
    ]
    assert not exited.exists() and not prepared.exists() and running.is_dir()


def test_gc_marks_then_a_later_gc_past_the_grace_period_deletes(
    make_pod: Callable[..., Path], config: Config, holder: Any
) -> None:
    exited = make_pod(Dir.RUN)
    running = make_pod(Dir.RUN)
    holder.lock(running)
    aborted = make_pod(Dir.PREPARE, manifest=False)
    prepared = make_pod(Dir.PREPARED)
    first = manage.gc(config, teardown=no_teardown)
    assert (first.marked, first.aborted, first.expired) == ((exited.name,), (aborted.name,), ())
    assert (first.collected, first.within_grace) == ((aborted.name,), (exited.name,))
    later = manage.gc(config, teardown=no_teardown, now=time.time() + 3600)
    assert later.collected == (exited.name,)
    assert later.marked == later.within_grace == later.failed == ()
    assert running.is_dir() and prepared.is_dir()


def test_gc_mark_only_moves_but_deletes_nothing(make_pod: Callable[..., Path], config: Config) -> None:
    exited = make_pod(Dir.RUN)
    aborted = make_pod(Dir.PREPARE, manifest=False)
    report = manage.gc(config, grace=0, expire=0, mark_only=True, teardown=no_teardown)
    assert (report.marked, report.aborted, report.collected) == ((exited.name,), (aborted.name,), ())
    assert (Path(config.pods_dir) / "exited-garbage" / exited.name).is_dir()
    assert (Path(config.pods_dir) / "garbage" / aborted.name).is_dir()


def test_gc_with_zero_grace_and_expiry_deletes_all_but_running_pods(
    make_pod: Callable[..., Path], config: Config, holder: Any
) -> None:
    holder.lock(make_pod(Dir.RUN))
    for where in (Dir.RUN, Dir.PREPARE, Dir.PREPARED, Dir.EXITED_GARBAGE, Dir.GARBAGE):
        make_pod(where)
    report = manage.gc(config, grace=0, expire=0, teardown=no_teardown, now=time.time() + 1)
    assert len(report.collected) == 5
    assert [p.state for p in manage.list_pods(config)] == [State.RUNNING]


def test_cat_manifest_reads_the_pods_own_manifest(make_pod: Callable[..., Path], pods_dir: Path) -> None:
    path = make_pod(Dir.PREPARED, apps=("web",))
    manifest = manage.pod_manifest(Pod(pods_dir, path.name, Dir.PREPARED))
    assert manifest is not None
    assert manifest["acKind"] == "PodManifest" and [a["name"] for a in manifest["apps"]] == ["web"]


def test_an_app_command_on_a_pod_without_apps_says_so(make_pod: Callable[..., Path], config: Config) -> None:
    from pyrkt.stage0.control import pick_app

    make_pod(Dir.RUN, "abcdef01-0000-4000-8000-000000000000", apps=())
    make_pod(Dir.RUN, "abcdef02-0000-4000-8000-000000000000", apps=("web", "db"))
    pod = manage.find_pod(config, "abcdef01")
    with pytest.raises(PyrktError, match=r"^pod abcdef01-0000-4000-8000-000000000000 has no apps \(add one with "
                                         r"`pyrkt app add`\)$"):
        pick_app(pod, "")
    with pytest.raises(PyrktError, match=r"has 2 apps \(web, db\): choose one with --app$"):
        pick_app(manage.find_pod(config, "abcdef02"), "")
