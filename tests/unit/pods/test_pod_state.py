"""The pod state machine: which (dir, lock) pairs mean which state, which moves are allowed,
and how a UUID prefix is resolved."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyrkt.errors import Ambiguous, InvalidState, NotFound, UsageError
from pyrkt.pods.pod import Pod
from pyrkt.pods.state import LOOKUP_ORDER, Dir, State, allowed, state_of

STATES = [
    (Dir.EMBRYO, False, State.EMBRYO),
    (Dir.PREPARE, True, State.PREPARING),
    (Dir.PREPARE, False, State.ABORTED_PREPARE),
    (Dir.PREPARED, False, State.PREPARED),
    (Dir.RUN, True, State.RUNNING),
    (Dir.RUN, False, State.EXITED),
    (Dir.EXITED_GARBAGE, True, State.EXITED_DELETING),
    (Dir.EXITED_GARBAGE, False, State.EXITED_GARBAGE),
    (Dir.GARBAGE, True, State.DELETING),
    (Dir.GARBAGE, False, State.GARBAGE),
]


@pytest.mark.parametrize(("where", "locked", "want"), STATES)
def test_state_is_the_directory_and_whether_its_lock_is_held(
    make_pod: Callable[..., Path], pods_dir: Path, holder: Any, where: Dir, locked: bool, want: State
) -> None:
    assert state_of(where, locked) == want
    path = make_pod(where)
    if locked:
        holder.lock(path)
    assert Pod(pods_dir, path.name, where).state == want


FORWARD = {
    (Dir.EMBRYO, Dir.PREPARE), (Dir.PREPARE, Dir.PREPARED), (Dir.PREPARE, Dir.RUN), (Dir.PREPARE, Dir.GARBAGE),
    (Dir.PREPARED, Dir.RUN), (Dir.PREPARED, Dir.GARBAGE), (Dir.RUN, Dir.EXITED_GARBAGE),
    (Dir.EXITED_GARBAGE, Dir.GARBAGE),
}


@pytest.mark.parametrize("src", list(LOOKUP_ORDER))
@pytest.mark.parametrize("dst", list(LOOKUP_ORDER))
def test_only_forward_moves_of_the_lifecycle_are_allowed(src: Dir, dst: Dir) -> None:
    assert allowed(src, dst) == ((src, dst) in FORWARD)


def test_a_refused_move_leaves_the_pod_where_it_was(make_pod: Callable[..., Path], pods_dir: Path) -> None:
    path = make_pod(Dir.RUN)
    pod = Pod(pods_dir, path.name, Dir.RUN)
    with pytest.raises(InvalidState, match="cannot move from run to prepared"):
        pod.transition(Dir.PREPARED)
    assert path.is_dir()


def test_a_pod_renamed_by_another_command_is_followed_to_its_new_state(
    make_pod: Callable[..., Path], pods_dir: Path
) -> None:
    path = make_pod(Dir.RUN)
    pod = Pod(pods_dir, path.name, Dir.RUN)
    path.rename(pods_dir / "exited-garbage" / path.name)
    assert pod.state == State.EXITED_GARBAGE
    assert pod.where == Dir.EXITED_GARBAGE


def test_a_deleted_pod_is_gone(make_pod: Callable[..., Path], pods_dir: Path) -> None:
    path = make_pod(Dir.RUN)
    pod = Pod(pods_dir, path.name, Dir.RUN)
    for f in sorted(path.rglob("*"), reverse=True):
        f.rmdir() if f.is_dir() and not f.is_symlink() else f.unlink()
    path.rmdir()
    assert pod.state == State.GONE


def test_a_unique_prefix_finds_the_pod_case_insensitively(make_pod: Callable[..., Path], pods_dir: Path) -> None:
    make_pod(Dir.RUN, "abcdef01-0000-4000-8000-000000000000")
    make_pod(Dir.PREPARED, "12345678-0000-4000-8000-000000000000")
    pod = Pod.find(pods_dir, "ABCD")
    assert (pod.uuid, pod.where) == ("abcdef01-0000-4000-8000-000000000000", Dir.RUN)


def test_a_prefix_matching_nothing_says_no_matches_found(pods_dir: Path) -> None:
    with pytest.raises(NotFound, match='no matches found for "ffff"'):
        Pod.find(pods_dir, "ffff")


def test_a_prefix_matching_several_pods_is_ambiguous(make_pod: Callable[..., Path], pods_dir: Path) -> None:
    make_pod(Dir.RUN, "abcdef01-0000-4000-8000-000000000000")
    make_pod(Dir.EXITED_GARBAGE, "abcdef02-0000-4000-8000-000000000000")
    with pytest.raises(Ambiguous, match='ambiguous uuid, 2 matches for "abcdef0"'):
        Pod.find(pods_dir, "abcdef0")


def test_an_empty_uuid_is_refused(pods_dir: Path) -> None:
    with pytest.raises(UsageError, match="UUID cannot be empty"):
        Pod.find(pods_dir, "  ")


def test_garbage_pods_are_not_found_by_prefix(make_pod: Callable[..., Path], pods_dir: Path) -> None:
    make_pod(Dir.GARBAGE, "abcdef01-0000-4000-8000-000000000000")
    with pytest.raises(NotFound):
        Pod.find(pods_dir, "abcdef01")
