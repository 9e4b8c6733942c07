"""Use cases over existing pods: list, status (with waiting), rm and gc.

Each takes the configuration and explicit arguments and returns values for the caller to
render; nothing here prints. Deleting a pod tears it down through its stage1 flavor first
(``stage1_teardown``); callers (and tests) may pass another teardown.
"""

from __future__ import annotations

import os
import time

from pyrkt.config import Config
from pyrkt.errors import NotFound, PyrktError, UsageError
from pyrkt.kernel import fs
from pyrkt.model import abi, jsonio
from pyrkt.model.values import Value
from pyrkt.pods.info import FINISHED, PodInfo, read_pod
from pyrkt.pods.pod import Pod, ensure_dirs
from pyrkt.pods.state import State

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing and collections.abc are not on list's path
    from collections.abc import Callable, Iterable
    from typing import Any

    # pod_dir -> None: undoes what the pod set up (pyrkt.pods.gc imports lazily: not on list's path)
    Teardown = Callable[[str], None]
    Clock = Callable[[], float]
    Sleep = Callable[[float], None]

POLL_INTERVAL = 0.1  # rkt polls pod state every 100ms
GRACE_PERIOD = 30 * 60.0  # rkt's gc defaults
EXPIRE_PREPARED = 24 * 3600.0
FOREVER = float("inf")


def stage1_teardown(pod_dir: str) -> None:
    """The flavor's idempotent gc: unmounts, cgroups, netns of the pod at ``pod_dir``."""
    from pyrkt.stage1 import flavor

    flavor.of_pod(pod_dir).gc(pod_dir)


# -- reading -----------------------------------------------------------------------------

def list_pods(config: Config) -> list[PodInfo]:
    """Pods in prepare, prepared, run and exited-garbage, in that order (rkt's `list`)."""
    seen: set[str] = set()
    out: list[PodInfo] = []
    for pod in Pod.walk(config.pods_dir):
        if pod.uuid in seen:
            continue  # moved to a later dir while we walked
        info = read_pod(pod)
        if info is not None:
            seen.add(pod.uuid)
            out.append(info)
    return out


def find_pod(config: Config, uuid_prefix: str) -> Pod:
    """The pod a UUID or unique UUID prefix names (rkt's errors when none or several do)."""
    return Pod.find(config.pods_dir, uuid_prefix)


def pod_status(config: Config, uuid_prefix: str) -> PodInfo:
    return inspect(find_pod(config, uuid_prefix))


def inspect(pod: Pod, *, pid_wait: float = 0.0, sleep: Sleep = time.sleep) -> PodInfo:
    """A sample of the pod; a running pod's pid file may lag its state by a moment, so wait
    up to ``pid_wait`` seconds for it, as rkt's status does."""
    deadline = time.monotonic() + pid_wait
    while True:
        info = read_pod(pod)
        if info is None:
            raise NotFound(f"pod {pod.uuid} no longer exists")
        if info.pid is not None or info.state != State.RUNNING or time.monotonic() >= deadline:
            return info
        sleep(POLL_INTERVAL)


def pod_manifest(pod: Pod) -> dict[str, Any] | None:
    """The pod's manifest as written (JSON object); None while it is still being prepared."""
    data = pod_manifest_bytes(pod)
    if data is None:
        return None
    try:
        value: dict[str, Any] = jsonio.loads(data)
    except ValueError as e:
        raise PyrktError(f"pod {pod.uuid}: unreadable pod manifest {pod.file(abi.POD_MANIFEST)}: {e}") from None
    return value


def pod_manifest_bytes(pod: Pod) -> bytes | None:
    """The pod's manifest file, byte for byte; None while the pod is still being prepared."""
    for _ in range(5):
        where = pod.where
        try:
            return fs.read_bytes(pod.file(abi.POD_MANIFEST))
        except FileNotFoundError:
            if not pod.relocate():
                raise NotFound(f"pod {pod.uuid} no longer exists") from None
            if pod.where == where:
                return None
            continue  # moved on meanwhile: read it in its new place
    raise NotFound(f"pod {pod.uuid} no longer exists")


def read_uuid_file(path: str) -> str:
    """The pod UUID saved by ``--uuid-file-save``."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError as e:
        raise NotFound(f"unable to read UUID from file {path!r}: {e.strerror}") from None
    if not text:
        raise UsageError(f"UUID file {path!r} is empty")
    return text


# -- waiting -----------------------------------------------------------------------------

def wait_finished(pod: Pod, timeout: float = FOREVER, *, clock: Clock = time.monotonic,
                  sleep: Sleep = time.sleep) -> None:
    """Return once the pod can never run again (exited, aborted, garbage or gone)."""
    _poll(lambda: is_finished(pod), timeout, f"pod {pod.uuid} to finish", clock, sleep)


def wait_ready(pod: Pod, timeout: float = FOREVER, *, clock: Clock = time.monotonic,
               sleep: Sleep = time.sleep) -> None:
    """Return once every app of the pod has started (``supervisor-status`` -> ``ready``).

    A pod that finishes without ever being ready is an error (rkt would wait forever).
    """
    def done() -> bool:
        info = read_pod(pod)
        if info is None:
            raise NotFound(f"pod {pod.uuid} no longer exists")
        if info.ready:
            return True
        if info.finished:
            raise PyrktError(f"pod {pod.uuid} {info.state.value} before it was ready")
        return False

    _poll(done, timeout, f"pod {pod.uuid} to be ready", clock, sleep)


def is_finished(pod: Pod) -> bool:
    """The pod's lock is free and its state terminal: it will never run again."""
    return pod.state in FINISHED


def _poll(done: Callable[[], bool], timeout: float, what: str, clock: Clock, sleep: Sleep) -> None:
    deadline = clock() + timeout
    while not done():
        left = deadline - clock()
        if left <= 0:
            raise PyrktError(f"timed out after {timeout:g}s waiting for {what}")
        sleep(min(POLL_INTERVAL, left))


# -- removing ----------------------------------------------------------------------------

class Removal(Value):
    """The outcome of `rm` for one argument: ``error`` is None when the pod was removed."""

    query: str
    uuid: str | None
    error: str | None = None


def remove_pods(config: Config, uuids: Iterable[str], teardown: Teardown = stage1_teardown) -> list[Removal]:
    """rkt's `rm`: remove each exited, prepared or aborted pod now; carry on past failures."""
    from pyrkt.pods import gc as podgc

    out: list[Removal] = []
    for query in uuids:
        uuid: str | None = None
        try:
            pod = find_pod(config, query)
            uuid = pod.uuid
            podgc.remove_now(pod, teardown)
            out.append(Removal(query, uuid))
        except PyrktError as e:
            out.append(Removal(query, uuid, e.message))
        except OSError as e:
            what = f"{e.filename}: {e.strerror}" if e.filename else (e.strerror or str(e))
            out.append(Removal(query, uuid, f"pod {uuid or query}: {what}"))
    return out


class GcReport(Value):
    marked: tuple[str, ...] = ()  # run -> exited-garbage
    aborted: tuple[str, ...] = ()  # prepare -> garbage
    expired: tuple[str, ...] = ()  # prepared -> garbage
    collected: tuple[str, ...] = ()  # deleted
    within_grace: tuple[str, ...] = ()
    busy: tuple[str, ...] = ()  # being handled by another command
    failed: tuple[tuple[str, str], ...] = ()  # (uuid, why)


def gc(config: Config, *, grace: float = GRACE_PERIOD,
       expire: float = EXPIRE_PREPARED, mark_only: bool = False,
       teardown: Teardown = stage1_teardown, now: float | None = None) -> GcReport:
    """rkt's `gc`: mark exited and aborted pods; unless ``mark_only``, expire old prepared pods
    and delete garbage past its grace period (seconds; 0 deletes at once)."""
    from pyrkt.pods import gc as podgc

    pods_dir = config.pods_dir
    if not os.path.isdir(pods_dir):
        return GcReport()  # no pod was ever made here
    ensure_dirs(pods_dir)
    phases = [podgc.mark_exited(pods_dir), podgc.discard_aborted(pods_dir)]
    if mark_only:
        expired = swept = garbage = podgc.Phase()
    else:
        expired = podgc.expire_prepared(pods_dir, expire, now=now)
        swept = podgc.sweep_exited_garbage(pods_dir, grace, teardown, now=now)
        garbage = podgc.sweep_garbage(pods_dir, teardown)
        phases.append(podgc.discard_embryos(pods_dir))  # never listed: nothing to print
    phases += [expired, swept, garbage]
    return GcReport(
        marked=phases[0].done,
        aborted=phases[1].done,
        expired=expired.done,
        collected=swept.done + garbage.done,
        within_grace=swept.within_grace,
        busy=tuple(u for p in phases for u in p.busy),
        failed=tuple(f for p in phases for f in p.failed),
    )
