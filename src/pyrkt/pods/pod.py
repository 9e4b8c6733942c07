"""``Pod``: one pod dir, its UUID, where it is and whether its lock is held.

``Pod.create`` makes ``embryo/<uuid>``, locks it and moves it to ``prepare/`` (preparing).
``transition`` renames the dir to another state dir; the lock travels with the inode, so
``prepare -> run`` keeps the pod locked for pod init to inherit. ``find`` resolves a UUID
prefix across the listed dirs with rkt's errors.
"""

from __future__ import annotations

import os
import time

from pyrkt.errors import Ambiguous, InvalidState, Locked, NotFound, UsageError, quote
from pyrkt.kernel.lock import FileLock
from pyrkt.model import abi
from pyrkt.model.names import new_uuid
from pyrkt.pods.state import LISTED, LOOKUP_ORDER, Dir, State, allowed, state_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator


def _wait_gone(path: str) -> None:
    for _ in range(100):
        if not os.path.lexists(path):
            return
        time.sleep(0.01)


class Pod:
    def __init__(self, pods_dir: str, uuid: str, where: Dir, lock: FileLock | None = None) -> None:
        self.pods_dir = pods_dir
        self.uuid = uuid
        self.where = where
        self.lock = lock

    def __repr__(self) -> str:
        return f"Pod({self.uuid}, {self.where.value})"

    @property
    def path(self) -> str:
        return os.path.join(self.pods_dir, self.where.value, self.uuid)

    def file(self, name: str) -> str:
        return os.path.join(self.pods_dir, self.where.value, self.uuid, name)

    # -- creation and lookup ------------------------------------------------------------

    @classmethod
    def create(cls, pods_dir: str, uuid: str | None = None) -> Pod:
        """A new pod in ``prepare/``, exclusively locked by the caller.

        gc deletes an embryo dir it can lock (what a create killed before its rename left),
        so one made a moment ago may go before this create locks it: then it is made again."""
        ensure_dirs(pods_dir)
        uuid = uuid or new_uuid()
        embryo = os.path.join(pods_dir, Dir.EMBRYO.value, uuid)
        for _ in range(5):
            os.mkdir(embryo, 0o750)
            try:
                lock = FileLock.open(embryo)
            except FileNotFoundError:
                continue  # a gc took it first
            held = lock.try_exclusive()
            try:
                same = held and os.path.samestat(os.fstat(lock.fd), os.stat(embryo))
            except FileNotFoundError:
                same = False
            if same:
                pod = cls(pods_dir, uuid, Dir.EMBRYO, lock)
                pod.transition(Dir.PREPARE)
                return pod
            lock.close()  # a gc holds it or removed it: it is going or gone
            _wait_gone(embryo)
        raise Locked(f"pod {uuid}: its new dir was removed under it again and again")

    @classmethod
    def load(cls, pods_dir: str, uuid: str) -> Pod:
        """The pod with exactly this UUID, wherever it is (rkt's lookup order)."""
        for d in LOOKUP_ORDER:
            if os.path.isdir(os.path.join(pods_dir, d.value, uuid)):
                return cls(pods_dir, uuid, d)
        raise NotFound(f"no matches found for {quote(uuid)}")

    @classmethod
    def find(cls, pods_dir: str, prefix: str) -> Pod:
        """Resolve a UUID or unique UUID prefix, as rkt: 'no matches found', 'ambiguous uuid'."""
        prefix = prefix.strip().lower()
        if not prefix:
            raise UsageError("UUID cannot be empty")
        matches: dict[str, Dir] = {}
        for d in LISTED:
            try:
                names = os.listdir(os.path.join(pods_dir, d.value))
            except FileNotFoundError:
                continue
            for name in names:
                if name.startswith(prefix) and name not in matches:
                    matches[name] = d
        if not matches:
            raise NotFound(f"no matches found for {quote(prefix)}")
        if len(matches) > 1:
            raise Ambiguous(f"ambiguous uuid, {len(matches)} matches for {quote(prefix)}")
        (uuid, _), = matches.items()
        return cls.load(pods_dir, uuid)

    @classmethod
    def walk(cls, pods_dir: str, dirs: tuple[Dir, ...] = LISTED) -> Iterator[Pod]:
        for d in dirs:
            try:
                names = sorted(os.listdir(os.path.join(pods_dir, d.value)))
            except FileNotFoundError:
                continue
            for name in names:
                if ".tmp" in name:
                    continue
                yield cls(pods_dir, name, d)

    # -- state ------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The state now; a pod that moved meanwhile is followed to its new dir."""
        for _ in range(5):
            try:
                if self.lock is not None and self.lock.fd >= 0:
                    return state_of(self.where, True)
                lk = FileLock.open(self.path)
            except FileNotFoundError:
                if not self.relocate():
                    return State.GONE
                continue
            try:
                return state_of(self.where, not lk.try_shared())
            finally:
                lk.close()
        return State.GONE

    def relocate(self) -> bool:
        """Find the pod again after another command renamed it; False when it is gone."""
        for d in LOOKUP_ORDER:
            if os.path.isdir(os.path.join(self.pods_dir, d.value, self.uuid)):
                self.where = d
                return True
        return False

    def transition(self, dst: Dir) -> None:
        if not allowed(self.where, dst):
            raise InvalidState(f"pod {self.uuid}: cannot move from {self.where.value} to {dst.value}")
        os.rename(self.path, os.path.join(self.pods_dir, dst.value, self.uuid))
        self.where = dst

    def try_lock(self) -> bool:
        """Take the exclusive lock without waiting; False if another process holds it."""
        if self.lock is not None and self.lock.fd >= 0:
            return True
        try:
            lk = FileLock.open(self.path)
        except FileNotFoundError:
            return False
        if not lk.try_exclusive():
            lk.close()
            return False
        self.lock = lk
        # it may have been renamed between our open and our lock
        if not os.path.isdir(self.path):
            self.unlock()
            return False
        return True

    def lock_or_raise(self) -> None:
        if not self.try_lock():
            raise Locked(f"pod {self.uuid} is locked by another pyrkt process")

    def unlock(self) -> None:
        if self.lock is not None:
            self.lock.close()
            self.lock = None

    # -- times ------------------------------------------------------------------------

    def created(self) -> float | None:
        for name in (abi.POD_CREATED, abi.POD_MANIFEST):
            try:
                return os.stat(self.file(name)).st_mtime
            except FileNotFoundError:
                continue
        return None

    def started(self) -> float | None:
        try:
            return os.stat(self.file(abi.PID)).st_mtime
        except FileNotFoundError:
            return None

    def gc_marked(self) -> float | None:
        if self.where not in (Dir.EXITED_GARBAGE, Dir.GARBAGE):
            return None
        try:
            return os.stat(self.path).st_ctime
        except FileNotFoundError:
            return None

    def pid(self) -> int | None:
        try:
            with open(self.file(abi.PID)) as f:
                return int(f.read().strip())
        except (FileNotFoundError, ValueError):
            return None

    def age(self) -> float:
        try:
            return time.time() - os.stat(self.path).st_ctime
        except FileNotFoundError:
            return 0.0


def ensure_dirs(pods_dir: str) -> None:
    for d in LOOKUP_ORDER:
        os.makedirs(os.path.join(pods_dir, d.value), mode=0o750, exist_ok=True)
