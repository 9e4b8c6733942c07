"""rkt's two-phase pod garbage collection, and the removal of one pod (`rm`).

Mark: exited ``run/`` pods go to ``exited-garbage/`` (the rename's ctime is the gc-marked
time), aborted ``prepare/`` pods and expired ``prepared/`` pods go to ``garbage/``. Sweep:
``exited-garbage/`` pods past their grace period and everything in ``garbage/`` are deleted
under the pod's exclusive lock: the flavor's ``teardown(pod_dir)`` first (mounts, cgroups,
netns), then the files, never crossing into a mount; so are the empty ``embryo/`` dirs of
creates killed before their first rename. Each phase returns what it did; callers
print. Any number of these may run at once: the lock decides who handles a pod, and a rename
that lost the race (ENOENT) is not an error.
"""

from __future__ import annotations

import os
import time

from pyrkt.errors import InvalidState, Locked, NotFound, PyrktError
from pyrkt.model import abi
from pyrkt.model.values import Value
from pyrkt.pods.pod import Pod, ensure_dirs
from pyrkt.pods.state import Dir, State

TYPE_CHECKING = False
if TYPE_CHECKING:  # `run --rm` and failed runs come here: no typing or dataclasses at run time
    from collections.abc import Callable, Iterable

    Teardown = Callable[[str], None]  # undoes what the pod at pod_dir set up; idempotent


class Phase(Value):
    """What one phase did: pods handled, and the ones it left and why."""

    done: tuple[str, ...] = ()
    within_grace: tuple[str, ...] = ()
    busy: tuple[str, ...] = ()  # locked by another command
    failed: tuple[tuple[str, str], ...] = ()  # (uuid, the user's line)


# -- mark --------------------------------------------------------------------------------

def mark_exited(pods_dir: str) -> Phase:
    """Exited pods in ``run/`` -> ``exited-garbage/``."""
    exited = [p for p in Pod.walk(pods_dir, (Dir.RUN,)) if p.state == State.EXITED]
    return _rename_each(exited, Dir.EXITED_GARBAGE, lock=False)


def discard_aborted(pods_dir: str) -> Phase:
    """Unlocked pods in ``prepare/`` (a prepare that died) -> ``garbage/``."""
    aborted = [p for p in Pod.walk(pods_dir, (Dir.PREPARE,)) if p.state == State.ABORTED_PREPARE]
    return _rename_each(aborted, Dir.GARBAGE, lock=False)


def discard_embryos(pods_dir: str) -> Phase:
    """Delete the dirs in ``embryo/`` that no create holds: a create killed between making its
    dir and moving it to ``prepare/`` left it empty, and no other command ever sees it."""
    done: list[str] = []
    failed: list[tuple[str, str]] = []
    for pod in Pod.walk(pods_dir, (Dir.EMBRYO,)):
        if not pod.try_lock():
            continue  # being created, or gone
        try:
            os.rmdir(pod.path)
            done.append(pod.uuid)
        except FileNotFoundError:
            pass
        except OSError as e:
            failed.append((pod.uuid, f"cannot remove {pod.path}: {e.strerror}"))
        finally:
            pod.unlock()
    return Phase(done=tuple(done), failed=tuple(failed))


def expire_prepared(pods_dir: str, older_than: float, *, now: float | None = None) -> Phase:
    """Pods in ``prepared/`` for longer than ``older_than`` seconds -> ``garbage/``.

    Moved under the exclusive lock, so a `run-prepared` that holds the pod keeps it.
    """
    now = time.time() if now is None else now
    old = [p for p in Pod.walk(pods_dir, (Dir.PREPARED,)) if _expired(p, older_than, now)]
    return _rename_each(old, Dir.GARBAGE, lock=True)


def _rename_each(pods: Iterable[Pod], dst: Dir, *, lock: bool) -> Phase:
    # An exited or aborted pod is never locked again except by gc/rm, so sampling its state
    # and renaming is safe without holding its lock; holding it would make the pod look
    # running (or preparing) to a concurrent `list` for that moment.
    done: list[str] = []
    busy: list[str] = []
    failed: list[tuple[str, str]] = []
    for pod in pods:
        if lock and not pod.try_lock():
            busy.append(pod.uuid)
            continue
        try:
            pod.transition(dst)
            done.append(pod.uuid)
        except FileNotFoundError as e:
            if os.path.isdir(pod.path):  # the pod is still here: the destination dir is missing
                failed.append((pod.uuid, f"cannot move {pod.path} to {dst.value}/: {e.strerror}"))
            # else another command moved it first
        except OSError as e:
            failed.append((pod.uuid, f"cannot move {pod.path} to {dst.value}/: {e.strerror}"))
        finally:
            pod.unlock()
    return Phase(done=tuple(done), busy=tuple(busy), failed=tuple(failed))


def _expired(pod: Pod, age: float, now: float) -> bool:
    try:
        ctime = os.lstat(pod.path).st_ctime
    except FileNotFoundError:
        return False
    return now > ctime + age


# -- sweep -------------------------------------------------------------------------------

def sweep_exited_garbage(pods_dir: str, grace: float, teardown: Teardown, *, now: float | None = None) -> Phase:
    """Delete ``exited-garbage/`` pods marked more than ``grace`` seconds ago (0: at once)."""
    now = time.time() if now is None else now
    ready: list[Pod] = []
    waiting: list[str] = []
    for pod in Pod.walk(pods_dir, (Dir.EXITED_GARBAGE,)):
        try:
            marked = os.lstat(pod.path).st_ctime
        except FileNotFoundError:
            continue
        if now > marked + grace:
            ready.append(pod)
        else:
            waiting.append(pod.uuid)
    swept = _delete_each(ready, teardown)
    return Phase(done=swept.done, within_grace=tuple(waiting), busy=swept.busy, failed=swept.failed)


def sweep_garbage(pods_dir: str, teardown: Teardown) -> Phase:
    """Delete every pod in ``garbage/``."""
    return _delete_each(Pod.walk(pods_dir, (Dir.GARBAGE,)), teardown)


def _delete_each(pods: Iterable[Pod], teardown: Teardown) -> Phase:
    done: list[str] = []
    busy: list[str] = []
    failed: list[tuple[str, str]] = []
    for pod in pods:
        if not pod.try_lock():
            if pod.relocate():
                busy.append(pod.uuid)
            continue  # else: deleted by another command meanwhile
        try:
            delete_pod(pod, teardown)
            done.append(pod.uuid)
        except Exception as e:  # whatever one pod's files or teardown do, gc goes on with the others
            failed.append((pod.uuid, _line(e)))
        finally:
            pod.unlock()
    return Phase(done=tuple(done), busy=tuple(busy), failed=tuple(failed))


def delete_pod(pod: Pod, teardown: Teardown) -> None:
    """Tear down and remove a pod the caller holds exclusively in a garbage dir.

    The stage1 rootfs goes first, as rkt: if that fails the pod manifest is still there and a
    later gc can retry. A teardown that fails leaves the pod in place for the same reason.
    """
    if pod.where not in (Dir.EXITED_GARBAGE, Dir.GARBAGE):
        raise InvalidState(f"pod {pod.uuid} is in {pod.where.value}/, not in a garbage dir; not deleting it")
    teardown(pod.path)
    remove_tree(os.path.join(pod.path, abi.STAGE1_ROOTFS))
    remove_tree(pod.path)


# -- rm ----------------------------------------------------------------------------------

def remove_now(pod: Pod, teardown: Teardown) -> None:
    """`rm`: delete an exited, prepared or aborted pod at once, as rkt's removePod.

    Exited and aborted pods are moved to their garbage dir *before* their lock is taken
    (nothing else locks them), so no other command ever sees them locked and "running".
    """
    state = pod.state
    _refuse(pod, state)
    ensure_dirs(pod.pods_dir)
    if state == State.EXITED:
        _move_unheld(pod, Dir.EXITED_GARBAGE)
    elif state == State.ABORTED_PREPARE:
        _move_unheld(pod, Dir.GARBAGE)
    for _ in range(3):
        if pod.try_lock():
            break
        if not pod.relocate():
            raise NotFound(f"pod {pod.uuid} no longer exists")
        _refuse(pod, pod.state)
    else:
        raise Locked(f'pod "{pod.uuid}" is locked by another pyrkt process')
    try:
        if pod.where == Dir.PREPARED:
            pod.transition(Dir.GARBAGE)  # under the lock: a racing run-prepared cannot take it
        delete_pod(pod, teardown)
    finally:
        pod.unlock()


def _move_unheld(pod: Pod, dst: Dir) -> None:
    try:
        pod.transition(dst)
    except FileNotFoundError:
        if not pod.relocate():
            raise NotFound(f"pod {pod.uuid} no longer exists") from None
        if pod.where != dst:
            raise
        # else a concurrent gc moved it there first


def _refuse(pod: Pod, state: State) -> None:
    if state == State.RUNNING:
        raise InvalidState(f'pod "{pod.uuid}" is currently running')
    if state in (State.EMBRYO, State.PREPARING):
        raise InvalidState(f'pod "{pod.uuid}" is currently being prepared')
    if state in (State.DELETING, State.EXITED_DELETING):
        raise InvalidState(f'pod "{pod.uuid}" is currently being deleted')
    if state == State.GONE:
        raise NotFound(f"pod {pod.uuid} no longer exists")


# -- removing files ----------------------------------------------------------------------

def remove_tree(path: str | os.PathLike[str]) -> None:
    """``rm -rf path`` that refuses to cross into a mount and copes with any depth and odd inodes.

    Mounts left below a pod (a bind-mounted volume after SIGKILL) must be unmounted by the
    teardown first: deleting through one would delete the host's files. The removal itself
    (``kernel.trees``) works through fds, so an app's 100 000-deep dir, its ``chmod 000`` dirs
    and immutable files all go, and its symlinks are removed, never followed.
    """
    from pyrkt.kernel.mount import mounts_under
    from pyrkt.kernel.trees import remove_tree as remove

    left = mounts_under(str(path))
    if left:
        raise InvalidState(f"{left[-1]} is still mounted; not removing {path}")
    remove(path)


def _line(err: BaseException) -> str:
    if isinstance(err, PyrktError):
        return err.message
    if isinstance(err, OSError) and err.filename is not None:
        return f"{err.filename}: {err.strerror}"
    if isinstance(err, OSError):
        return str(err)
    text = " ".join(str(err).split())  # one line, whatever the message held
    return f"{type(err).__name__}: {text[:200]}" if text else type(err).__name__
