"""GetContainerEvents, the stream the kubelet's evented PLEG reads: a container's creation,
start, stop and deletion, each with its sandbox's status and the statuses of the sandbox's
containers as they are then.

Nothing tells the server when an app changes (pod init writes rkt's status files; another
`pyrkt` command may act on the pod), so, as the api-service's ListenEvents, the stream samples
the containers' states every ``INTERVAL`` seconds and sends what changed since the last sample,
in order: a container seen for the first time running is sent as created, then started; one
that started and ended between two samples as started, then stopped. Only what changes after
the call starts is sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from pyrkt.api.cri.pods import Pods, container_id, container_state
from pyrkt.api.proto import cri_pb2 as pb
from pyrkt.errors import NotFound

INTERVAL = 0.5  # seconds between two samples

Sample = dict[str, tuple[int, str]]  # container id -> (its pb.ContainerState, its sandbox's id)


def steps(before: int | None, after: int | None) -> list[pb.ContainerEventType]:
    """The events that take a container from state ``before`` to ``after`` (None: not there)."""
    out: list[pb.ContainerEventType] = []
    if before is None:
        if after is None:
            return out
        out.append(pb.CONTAINER_CREATED_EVENT)
        before = pb.CONTAINER_CREATED
    if after is None:
        if before == pb.CONTAINER_RUNNING:
            out.append(pb.CONTAINER_STOPPED_EVENT)
        return [*out, pb.CONTAINER_DELETED_EVENT]
    if after == before:
        return out
    if after == pb.CONTAINER_RUNNING:  # from created, or started again after it exited
        out.append(pb.CONTAINER_STARTED_EVENT)
    elif after in (pb.CONTAINER_EXITED, pb.CONTAINER_UNKNOWN):
        if before == pb.CONTAINER_CREATED:  # it ran between two samples
            out.append(pb.CONTAINER_STARTED_EVENT)
        if before != pb.CONTAINER_EXITED:
            out.append(pb.CONTAINER_STOPPED_EVENT)
    return out


def sample(pods: Pods) -> Sample:
    return {container_id(info.uuid, app.name): (container_state(info, app), info.uuid)
            for info in pods.sandboxes() for app in info.apps}


def watch(pods: Pods, *, active: Callable[[], bool],
          sleep: Callable[[float], None] = time.sleep) -> Iterator[pb.ContainerEventResponse]:
    """The responses of one GetContainerEvents call, until the client goes."""
    before = sample(pods)
    while active():
        sleep(INTERVAL)
        after = sample(pods)
        now = time.time_ns()
        sandboxes: dict[str, tuple[pb.PodSandboxStatus | None, list[pb.ContainerStatus]]] = {}
        for cid in sorted(before.keys() | after.keys()):
            was, now_is = before.get(cid), after.get(cid)
            kinds = steps(was[0] if was else None, now_is[0] if now_is else None)
            if not kinds:
                continue
            sid = (now_is or was or (0, ""))[1]
            if sid not in sandboxes:
                sandboxes[sid] = statuses(pods, sid, [c for c, (_, s) in after.items() if s == sid])
            sandbox, containers = sandboxes[sid]
            for kind in kinds:
                event = pb.ContainerEventResponse(container_id=cid, container_event_type=kind, created_at=now,
                                                  containers_statuses=containers)
                if sandbox is not None:
                    event.pod_sandbox_status.CopyFrom(sandbox)
                yield event
        before = after


def statuses(pods: Pods, sid: str, cids: list[str]) -> tuple[pb.PodSandboxStatus | None, list[pb.ContainerStatus]]:
    """The sandbox's status (None once it is gone) and its containers' (those still there)."""
    try:
        sandbox: pb.PodSandboxStatus | None = pods.sandbox_status(sid)
    except NotFound:
        sandbox = None
    containers = []
    for cid in sorted(cids):
        try:
            containers.append(pods.container_status(cid))
        except NotFound:
            pass
    return sandbox, containers
