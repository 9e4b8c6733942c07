"""Pod states, exactly rkt's (Documentation/devel/pod-lifecycle.md).

A pod's state is a pure function of the directory holding its UUID and of whether the
directory's flock is held::

    directory        locked            unlocked
    embryo/          embryo            embryo
    prepare/         preparing         aborted prepare
    prepared/        prepared          prepared
    run/             running           exited
    exited-garbage/  exited deleting   exited garbage
    garbage/         deleting          garbage

Transitions are renames between directories (``TRANSITIONS``); every other move is refused.
"""

from __future__ import annotations

import enum


class Dir(enum.Enum):
    EMBRYO = "embryo"
    PREPARE = "prepare"
    PREPARED = "prepared"
    RUN = "run"
    EXITED_GARBAGE = "exited-garbage"
    GARBAGE = "garbage"


# lookup order when a UUID is searched (first match wins), as rkt
LOOKUP_ORDER = (Dir.EMBRYO, Dir.PREPARE, Dir.PREPARED, Dir.RUN, Dir.EXITED_GARBAGE, Dir.GARBAGE)
# directories that `list` and UUID prefixes search
LISTED = (Dir.PREPARE, Dir.PREPARED, Dir.RUN, Dir.EXITED_GARBAGE)


class State(enum.Enum):
    EMBRYO = "embryo"
    PREPARING = "preparing"
    ABORTED_PREPARE = "aborted prepare"
    PREPARED = "prepared"
    RUNNING = "running"
    EXITED = "exited"
    EXITED_DELETING = "exited deleting"
    EXITED_GARBAGE = "exited garbage"
    DELETING = "deleting"
    GARBAGE = "garbage"
    GONE = "gone"


_STATE = {
    (Dir.EMBRYO, True): State.EMBRYO,
    (Dir.EMBRYO, False): State.EMBRYO,
    (Dir.PREPARE, True): State.PREPARING,
    (Dir.PREPARE, False): State.ABORTED_PREPARE,
    (Dir.PREPARED, True): State.PREPARED,
    (Dir.PREPARED, False): State.PREPARED,
    (Dir.RUN, True): State.RUNNING,
    (Dir.RUN, False): State.EXITED,
    (Dir.EXITED_GARBAGE, True): State.EXITED_DELETING,
    (Dir.EXITED_GARBAGE, False): State.EXITED_GARBAGE,
    (Dir.GARBAGE, True): State.DELETING,
    (Dir.GARBAGE, False): State.GARBAGE,
}

TRANSITIONS: frozenset[tuple[Dir, Dir]] = frozenset({
    (Dir.EMBRYO, Dir.PREPARE),
    (Dir.PREPARE, Dir.PREPARED),
    (Dir.PREPARE, Dir.RUN),
    (Dir.PREPARE, Dir.GARBAGE),
    (Dir.PREPARED, Dir.RUN),
    (Dir.PREPARED, Dir.GARBAGE),
    (Dir.RUN, Dir.EXITED_GARBAGE),
    (Dir.EXITED_GARBAGE, Dir.GARBAGE),
})


def state_of(where: Dir, locked: bool) -> State:
    return _STATE[(where, locked)]


def allowed(src: Dir, dst: Dir) -> bool:
    return (src, dst) in TRANSITIONS
