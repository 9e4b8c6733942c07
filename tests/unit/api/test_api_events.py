"""ListenEvents: the milestones of pods and apps, image imports and removals, found by sampling
synthetic pod dirs and an empty store, filtered as the proto says."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyrkt.api import events
from pyrkt.api.proto import v1alpha_pb2 as pb
from pyrkt.config import Config
from pyrkt.model import abi
from pyrkt.pods.info import read_pod
from pyrkt.pods.pod import Pod
from pyrkt.pods.state import Dir

T0 = 1_700_000_000
E = pb.EventType


def seen(batch: list[pb.Event]) -> list[tuple[str, str, str]]:
    return [(E.Name(e.type)[11:], e.id[:8], getattr(e, "from")) for e in batch]


def test_a_pod_that_ran_and_exited_between_two_samples_has_every_milestone_in_order(
        make_pod: Callable[..., Path], pods_dir: Path, config: Config) -> None:
    before = events.sample(config)
    path = make_pod(Dir.RUN, apps=("web",), pid=9, started=T0 + 1, stamps={"web": (T0, T0 + 2, 3)})
    after = events.sample(config)
    got = events.changes(before, after, now=T0 + 100)
    uuid = path.name
    assert seen(got) == [("POD_STARTED", uuid[:8], uuid), ("APP_STARTED", uuid[:8], "web"),
                         ("APP_EXITED", uuid[:8], "web"), ("POD_EXITED", uuid[:8], uuid)]
    status = path / abi.app_status("web")
    assert [e.time for e in got[:3]] == [T0 + 1, T0 + 2, int(status.stat().st_mtime)]  # their own times
    assert got[3].time == T0 + 100  # the time it was seen
    assert [(kv.Key, kv.value) for kv in got[2].data] == [("exit_code", "3")]
    assert events.changes(after, events.sample(config), now=T0) == []  # nothing new, nothing sent


def test_prepared_aborted_and_collected_pods(make_pod: Callable[..., Path], pods_dir: Path, config: Config,
                                             holder: Any) -> None:
    prepared = make_pod(Dir.PREPARED)
    aborted = make_pod(Dir.PREPARE)  # unlocked: its prepare died
    running = make_pod(Dir.RUN, pid=1, started=T0)
    holder.lock(running)
    first = events.sample(config)
    assert seen(events.changes(events.Sample(pods={}, images={}), first, now=T0)) == [
        ("POD_PREPARE_ABORTED", aborted.name[:8], aborted.name), ("POD_PREPARED", prepared.name[:8], prepared.name),
        ("POD_STARTED", running.name[:8], running.name)]
    shutil.rmtree(prepared)
    assert seen(events.changes(first, events.sample(config), now=T0)) == [
        ("POD_GARBAGE_COLLECTED", prepared.name[:8], prepared.name)]


def test_milestones_of_a_running_pod_do_not_include_its_exit(make_pod: Callable[..., Path], pods_dir: Path,
                                                             holder: Any) -> None:
    path = make_pod(Dir.RUN, pid=1, started=T0, stamps={"web": (T0, T0, None)})
    holder.lock(path)
    info = read_pod(Pod(str(pods_dir), path.name, Dir.RUN))
    assert info is not None
    assert [E.Name(m.type) for m in events.pod_milestones(info)] == ["EVENT_TYPE_POD_STARTED",
                                                                     "EVENT_TYPE_APP_STARTED"]


def test_images_imported_and_removed() -> None:
    before = events.Sample(pods={}, images={"sha256:a": ("old:1", T0)})
    after = events.Sample(pods={}, images={"sha256:b": ("new:2", T0 + 5)})
    got = events.changes(before, after, now=T0 + 9)
    assert [(E.Name(e.type), e.id, getattr(e, "from"), e.time) for e in got] == [
        ("EVENT_TYPE_IMAGE_IMPORTED", "sha256:b", "new:2", T0 + 5),
        ("EVENT_TYPE_IMAGE_REMOVED", "sha256:a", "old:1", T0 + 9)]


def test_filter_conditions_are_all_required() -> None:
    e = events.event(pb.EVENT_TYPE_APP_EXITED, "uuid-1", "web", T0)
    assert events.wanted(e, pb.EventFilter())
    assert events.wanted(e, pb.EventFilter(types=[pb.EVENT_TYPE_APP_EXITED, pb.EVENT_TYPE_POD_EXITED], ids=["uuid-1"]))
    assert not events.wanted(e, pb.EventFilter(types=[pb.EVENT_TYPE_APP_EXITED], ids=["uuid-2"]))
    assert events.wanted(e, pb.EventFilter(names=["web"]))
    assert not events.wanted(e, pb.EventFilter(names=["db"]))
    assert not events.wanted(e, pb.EventFilter(since_time=T0 + 1))


def test_listen_sends_what_happens_after_it_starts_until_its_until_time(
        make_pod: Callable[..., Path], config: Config) -> None:
    make_pod(Dir.PREPARED)  # before the call: the baseline, never sent
    clock = [float(T0)]
    made: list[Path] = []

    def sleep(seconds: float) -> None:
        clock[0] += 1
        if not made:
            made.append(make_pod(Dir.PREPARED))

    got = list(events.listen(config, pb.EventFilter(until_time=T0 + 3), clock=lambda: clock[0], sleep=sleep))
    assert [seen(batch) for batch in got] == [[("POD_PREPARED", made[0].name[:8], made[0].name)]]
    assert clock[0] == T0 + 3  # ended at until_time


def test_listen_ends_when_the_client_goes(config: Config) -> None:
    active = iter([True, False])
    assert list(events.listen(config, pb.EventFilter(), active=lambda: next(active), sleep=lambda s: None)) == []
