"""Garbage collection phases and `rm` on synthetic pod dirs: who moves, who is deleted, who is
left alone (running, busy, within the grace period), and the teardown before deletion."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyrkt.errors import InvalidState, NotFound, PyrktError
from pyrkt.model import abi
from pyrkt.pods import gc
from pyrkt.pods.pod import Pod
from pyrkt.pods.state import LOOKUP_ORDER, Dir

HOUR = 3600.0


class Teardowns:
    """A teardown callback that records the pod dirs it was given (and can fail)."""

    def __init__(self, fail: bool = False) -> None:
        self.seen: list[Path] = []
        self.fail = fail

    def __call__(self, pod: str) -> None:
        pod_dir = Path(pod)
        assert pod_dir.is_dir(), "teardown must run before the pod dir is removed"
        self.seen.append(pod_dir)
        if self.fail:
            raise PyrktError(f"cannot remove cgroup of {pod_dir.name}")


def where_is(pods_dir: Path, uuid: str) -> str | None:
    found = [d.value for d in LOOKUP_ORDER if (pods_dir / d.value / uuid).exists()]
    assert len(found) <= 1
    return found[0] if found else None


# -- mark ---------------------------------------------------------------------------------

def test_exited_pods_are_marked_and_running_ones_stay(
    make_pod: Callable[..., Path], pods_dir: Path, holder: Any
) -> None:
    exited = make_pod(Dir.RUN)
    running = make_pod(Dir.RUN)
    holder.lock(running)
    phase = gc.mark_exited(pods_dir)
    assert phase.done == (exited.name,)
    assert where_is(pods_dir, exited.name) == "exited-garbage"
    assert where_is(pods_dir, running.name) == "run"


def test_marking_sets_the_gc_marked_time(make_pod: Callable[..., Path], pods_dir: Path) -> None:
    exited = make_pod(Dir.RUN)
    before = time.time()
    gc.mark_exited(pods_dir)
    marked = Pod(pods_dir, exited.name, Dir.EXITED_GARBAGE).gc_marked()
    assert marked is not None and marked >= before - 1


def test_aborted_prepares_go_to_garbage_and_preparing_ones_stay(
    make_pod: Callable[..., Path], pods_dir: Path, holder: Any
) -> None:
    aborted = make_pod(Dir.PREPARE, manifest=False)
    preparing = make_pod(Dir.PREPARE, manifest=False)
    holder.lock(preparing)
    assert gc.discard_aborted(pods_dir).done == (aborted.name,)
    assert where_is(pods_dir, aborted.name) == "garbage"
    assert where_is(pods_dir, preparing.name) == "prepare"


def test_an_embryo_a_killed_create_left_is_deleted_and_one_being_created_stays(
    pods_dir: Path, holder: Any
) -> None:
    left = pods_dir / "embryo" / "00000001-0000-4000-8000-000000000000"
    creating = pods_dir / "embryo" / "00000002-0000-4000-8000-000000000000"
    left.mkdir()
    creating.mkdir()
    holder.lock(creating)
    assert gc.discard_embryos(pods_dir).done == (left.name,)
    assert not left.exists() and creating.is_dir()


def test_a_create_whose_embryo_a_gc_removed_before_its_lock_makes_it_again(
    pods_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyrkt.kernel.lock import FileLock
    from pyrkt.pods import pod as podmod

    real_open = FileLock.open
    removed: list[tuple[str, ...]] = []

    def open_after_a_gc(path: str, **kw: Any) -> FileLock:
        if not removed:  # the embryo is not locked yet: a gc takes it
            removed.append(())
            removed[0] = gc.discard_embryos(str(pods_dir)).done
        return real_open(path, **kw)

    monkeypatch.setattr(podmod.FileLock, "open", staticmethod(open_after_a_gc))
    pod = Pod.create(str(pods_dir), "00000003-0000-4000-8000-000000000000")
    assert removed == [(pod.uuid,)]
    assert pod.where == Dir.PREPARE and pod.state.value == "preparing"
    assert os.listdir(pods_dir / "embryo") == []
    pod.unlock()


def test_prepared_pods_expire_after_the_given_age_only(make_pod: Callable[..., Path], pods_dir: Path) -> None:
    pod = make_pod(Dir.PREPARED)
    assert gc.expire_prepared(pods_dir, 24 * HOUR, now=time.time() + 23 * HOUR).done == ()
    assert where_is(pods_dir, pod.name) == "prepared"
    assert gc.expire_prepared(pods_dir, 24 * HOUR, now=time.time() + 25 * HOUR).done == (pod.name,)
    assert where_is(pods_dir, pod.name) == "garbage"


def test_an_expired_prepared_pod_held_by_run_prepared_is_left_alone(
    make_pod: Callable[..., Path], pods_dir: Path, holder: Any
) -> None:
    pod = make_pod(Dir.PREPARED)
    holder.lock(pod)
    phase = gc.expire_prepared(pods_dir, 0, now=time.time() + 1)
    assert (phase.done, phase.busy) == ((), (pod.name,))
    assert where_is(pods_dir, pod.name) == "prepared"


def test_a_rename_that_lost_the_race_is_not_an_error(make_pod: Callable[..., Path], pods_dir: Path) -> None:
    pod_dir = make_pod(Dir.RUN)
    pod = Pod(pods_dir, pod_dir.name, Dir.RUN)
    os.rename(pod_dir, pods_dir / "exited-garbage" / pod_dir.name)  # another gc was faster
    phase = gc._rename_each([pod], Dir.EXITED_GARBAGE, lock=False)
    assert (phase.done, phase.failed) == ((), ())


# -- sweep --------------------------------------------------------------------------------

def test_exited_garbage_within_the_grace_period_is_kept(make_pod: Callable[..., Path], pods_dir: Path) -> None:
    pod = make_pod(Dir.EXITED_GARBAGE)
    teardown = Teardowns()
    phase = gc.sweep_exited_garbage(pods_dir, 30 * 60, teardown, now=time.time() + 29 * 60)
    assert (phase.done, phase.within_grace) == ((), (pod.name,))
    assert teardown.seen == [] and pod.is_dir()


def test_exited_garbage_past_the_grace_period_is_torn_down_then_deleted(
    make_pod: Callable[..., Path], pods_dir: Path
) -> None:
    pod = make_pod(Dir.EXITED_GARBAGE, pid=1)
    teardown = Teardowns()
    phase = gc.sweep_exited_garbage(pods_dir, 30 * 60, teardown, now=time.time() + 31 * 60)
    assert phase.done == (pod.name,)
    assert teardown.seen == [pod]
    assert where_is(pods_dir, pod.name) is None


def test_a_zero_grace_period_deletes_at_once(make_pod: Callable[..., Path], pods_dir: Path) -> None:
    pod = make_pod(Dir.EXITED_GARBAGE)
    assert gc.sweep_exited_garbage(pods_dir, 0, Teardowns()).done == (pod.name,)


def test_a_pod_being_deleted_by_another_command_is_skipped(
    make_pod: Callable[..., Path], pods_dir: Path, holder: Any
) -> None:
    pod = make_pod(Dir.EXITED_GARBAGE)
    holder.lock(pod)
    teardown = Teardowns()
    phase = gc.sweep_exited_garbage(pods_dir, 0, teardown)
    assert (phase.done, phase.busy) == ((), (pod.name,))
    assert teardown.seen == [] and pod.is_dir()


def test_a_failed_teardown_leaves_the_pod_for_a_later_gc(make_pod: Callable[..., Path], pods_dir: Path) -> None:
    pod = make_pod(Dir.EXITED_GARBAGE)
    phase = gc.sweep_exited_garbage(pods_dir, 0, Teardowns(fail=True))
    assert phase.done == ()
    assert phase.failed == ((pod.name, f"cannot remove cgroup of {pod.name}"),)
    assert (pod / abi.POD_MANIFEST).is_file()
    assert Pod(pods_dir, pod.name, Dir.EXITED_GARBAGE).try_lock(), "the lock was released"


def test_any_failure_of_one_pod_is_reported_on_one_line_and_the_others_are_deleted(
        make_pod: Callable[..., Path], pods_dir: Path) -> None:
    bad, good = make_pod(Dir.GARBAGE), make_pod(Dir.GARBAGE)

    def teardown(pod_dir: str) -> None:
        if pod_dir.endswith(bad.name):
            raise RecursionError("maximum recursion depth exceeded\nwhile calling a Python object")

    phase = gc.sweep_garbage(pods_dir, teardown)
    assert phase.done == (good.name,)
    assert phase.failed == ((bad.name, "RecursionError: maximum recursion depth exceeded while calling a Python object"),)
    assert bad.is_dir() and not good.exists()


def test_a_pod_with_a_tree_deeper_than_path_max_is_deleted(make_pod: Callable[..., Path], pods_dir: Path) -> None:
    pod = make_pod(Dir.GARBAGE)
    upper = pod / "overlay" / "upper" / "tmp"
    upper.mkdir(parents=True)
    fd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(2500):  # "d/" * 2500: 5000 bytes, past PATH_MAX
        os.mkdir("d", dir_fd=fd)
        child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
    os.fchmod(fd, 0o000)
    os.close(fd)
    phase = gc.sweep_garbage(pods_dir, Teardowns())
    assert (phase.done, phase.failed) == ((pod.name,), ())
    assert not pod.exists()


def test_everything_in_garbage_is_deleted_with_teardown(make_pod: Callable[..., Path], pods_dir: Path) -> None:
    a, b = make_pod(Dir.GARBAGE), make_pod(Dir.GARBAGE, manifest=False)
    teardown = Teardowns()
    phase = gc.sweep_garbage(pods_dir, teardown)
    assert sorted(phase.done) == sorted([a.name, b.name])
    assert sorted(teardown.seen) == sorted([a, b])
    assert os.listdir(pods_dir / "garbage") == []


def test_a_pod_outside_the_garbage_dirs_is_never_deleted(make_pod: Callable[..., Path], pods_dir: Path) -> None:
    path = make_pod(Dir.RUN)
    pod = Pod(pods_dir, path.name, Dir.RUN)
    with pytest.raises(InvalidState, match="not in a garbage dir"):
        gc.delete_pod(pod, Teardowns())
    assert path.is_dir()


# -- rm -----------------------------------------------------------------------------------

@pytest.mark.parametrize("where", [Dir.RUN, Dir.PREPARED, Dir.PREPARE, Dir.EXITED_GARBAGE, Dir.GARBAGE])
def test_rm_removes_exited_prepared_and_aborted_pods(
    make_pod: Callable[..., Path], pods_dir: Path, where: Dir
) -> None:
    path = make_pod(where)
    teardown = Teardowns()
    gc.remove_now(Pod(pods_dir, path.name, where), teardown)
    assert where_is(pods_dir, path.name) is None
    assert [p.name for p in teardown.seen] == [path.name]


@pytest.mark.parametrize(("where", "why"), [
    (Dir.RUN, "is currently running"),
    (Dir.PREPARE, "is currently being prepared"),
    (Dir.EXITED_GARBAGE, "is currently being deleted"),
    (Dir.GARBAGE, "is currently being deleted"),
])
def test_rm_refuses_pods_in_use(
    make_pod: Callable[..., Path], pods_dir: Path, holder: Any, where: Dir, why: str
) -> None:
    path = make_pod(where)
    holder.lock(path)
    with pytest.raises(InvalidState, match=f'pod "{path.name}" {why}'):
        gc.remove_now(Pod(pods_dir, path.name, where), Teardowns())
    assert path.is_dir()


def test_rm_of_a_pod_that_vanished_says_so(make_pod: Callable[..., Path], pods_dir: Path) -> None:
    path = make_pod(Dir.RUN)
    pod = Pod(pods_dir, path.name, Dir.RUN)
    os.rename(path, pods_dir.parent / "elsewhere")
    with pytest.raises(NotFound, match="no longer exists"):
        gc.remove_now(pod, Teardowns())


# -- removing files -----------------------------------------------------------------------

def test_remove_tree_refuses_to_cross_into_a_mount(
    make_pod: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyrkt.kernel import mount

    path = make_pod(Dir.GARBAGE)
    volume = str(path / abi.app_rootfs("web") / "data")
    monkeypatch.setattr(mount, "mounts_under", lambda p: [volume] if p == str(path) else [])
    with pytest.raises(InvalidState, match=f"{volume} is still mounted; not removing {path}"):
        gc.remove_tree(path)
    assert path.is_dir()


def test_remove_tree_removes_read_only_directories(tmp_path: Path) -> None:
    top = tmp_path / "pod"
    (top / "a" / "b").mkdir(parents=True)
    (top / "a" / "b" / "f").write_text("x")
    os.chmod(top / "a" / "b", 0o500)
    os.chmod(top / "a", 0o500)
    gc.remove_tree(top)
    assert not top.exists()


def test_remove_tree_of_a_missing_path_is_a_no_op(tmp_path: Path) -> None:
    gc.remove_tree(tmp_path / "nothing")
