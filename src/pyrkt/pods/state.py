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

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import ClassVar


class _Named:
    """One of a fixed set of named constants (``Dir.RUN``, ``State.EXITED``), compared by
    identity. Not ``enum.Enum``: importing enum (and re, functools) costs the run/list/status
    commands milliseconds, and these constants need nothing but a name and a value."""

    __slots__ = ("name", "value")

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self.value = value

    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self.name}"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        return getattr, (type(self), self.name)


class Dir(_Named):
    """A state directory under ``pods/``."""

    EMBRYO: ClassVar[Dir]
    PREPARE: ClassVar[Dir]
    PREPARED: ClassVar[Dir]
    RUN: ClassVar[Dir]
    EXITED_GARBAGE: ClassVar[Dir]
    GARBAGE: ClassVar[Dir]


Dir.EMBRYO = Dir("EMBRYO", "embryo")
Dir.PREPARE = Dir("PREPARE", "prepare")
Dir.PREPARED = Dir("PREPARED", "prepared")
Dir.RUN = Dir("RUN", "run")
Dir.EXITED_GARBAGE = Dir("EXITED_GARBAGE", "exited-garbage")
Dir.GARBAGE = Dir("GARBAGE", "garbage")


# lookup order when a UUID is searched (first match wins), as rkt
LOOKUP_ORDER = (Dir.EMBRYO, Dir.PREPARE, Dir.PREPARED, Dir.RUN, Dir.EXITED_GARBAGE, Dir.GARBAGE)
# directories that `list` and UUID prefixes search
LISTED = (Dir.PREPARE, Dir.PREPARED, Dir.RUN, Dir.EXITED_GARBAGE)


class State(_Named):
    """A pod's state, as rkt names it (``value``)."""

    EMBRYO: ClassVar[State]
    PREPARING: ClassVar[State]
    ABORTED_PREPARE: ClassVar[State]
    PREPARED: ClassVar[State]
    RUNNING: ClassVar[State]
    EXITED: ClassVar[State]
    EXITED_DELETING: ClassVar[State]
    EXITED_GARBAGE: ClassVar[State]
    DELETING: ClassVar[State]
    GARBAGE: ClassVar[State]
    GONE: ClassVar[State]


State.EMBRYO = State("EMBRYO", "embryo")
State.PREPARING = State("PREPARING", "preparing")
State.ABORTED_PREPARE = State("ABORTED_PREPARE", "aborted prepare")
State.PREPARED = State("PREPARED", "prepared")
State.RUNNING = State("RUNNING", "running")
State.EXITED = State("EXITED", "exited")
State.EXITED_DELETING = State("EXITED_DELETING", "exited deleting")
State.EXITED_GARBAGE = State("EXITED_GARBAGE", "exited garbage")
State.DELETING = State("DELETING", "deleting")
State.GARBAGE = State("GARBAGE", "garbage")
State.GONE = State("GONE", "gone")


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
