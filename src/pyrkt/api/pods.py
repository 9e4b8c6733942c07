"""Pods as the v1alpha API shows them: ``PodInfo`` (what `list` and `status` read) to ``Pod``
messages, and rkt's pod filters.

The mapping follows rkt's api-service: an embryo pod is its id and state only; networks are
given for running and exited pods, the cgroup for running ones; ``pid`` is -1 and an app's
``exit_code`` -1 until they are known. Unlike rkt, an app's state is its own (an app that
exited in a running pod is EXITED), as `list` shows it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pyrkt.api.proto import v1alpha_pb2 as pb
from pyrkt.model.pod import AC_VERSION
from pyrkt.pods.info import AppInfo, PodInfo
from pyrkt.pods.state import State

POD_STATES: dict[State, pb.PodState] = {
    State.EMBRYO: pb.POD_STATE_EMBRYO,
    State.PREPARING: pb.POD_STATE_PREPARING,
    State.ABORTED_PREPARE: pb.POD_STATE_ABORTED_PREPARE,
    State.PREPARED: pb.POD_STATE_PREPARED,
    State.RUNNING: pb.POD_STATE_RUNNING,
    State.EXITED: pb.POD_STATE_EXITED,
    # rkt left "exited deleting" UNDEFINED; it is a pod being deleted like any other
    State.EXITED_DELETING: pb.POD_STATE_DELETING,
    State.DELETING: pb.POD_STATE_DELETING,
    State.EXITED_GARBAGE: pb.POD_STATE_GARBAGE,
    State.GARBAGE: pb.POD_STATE_GARBAGE,
}
APP_STATES: dict[str, pb.AppState] = {"running": pb.APP_STATE_RUNNING, "exited": pb.APP_STATE_EXITED}
IMAGE_TYPES: dict[str, pb.ImageType] = {"appc": pb.IMAGE_TYPE_APPC, "docker": pb.IMAGE_TYPE_DOCKER,
                                        "oci": pb.IMAGE_TYPE_OCI}
# the version of each image format, as ImageFormat.version reports it
FORMAT_VERSIONS = {"appc": AC_VERSION, "docker": "2", "oci": "1"}  # Docker schema 2; OCI image-spec v1


def key_values(pairs: Iterable[tuple[str, str]]) -> list[pb.KeyValue]:
    return [pb.KeyValue(Key=k, value=v) for k, v in pairs]


def image_format(fmt: str) -> pb.ImageFormat:
    return pb.ImageFormat(type=IMAGE_TYPES.get(fmt, pb.IMAGE_TYPE_UNDEFINED), version=FORMAT_VERSIONS.get(fmt, ""))


def pod_message(info: PodInfo, *, manifest: bytes | None = None) -> pb.Pod:
    """The ``Pod`` message of one pod; ``manifest``: the pod manifest's bytes, when asked for."""
    state = POD_STATES.get(info.state, pb.POD_STATE_UNDEFINED)
    pod = pb.Pod(id=info.uuid, state=state, pid=-1)
    if state in (pb.POD_STATE_EMBRYO, pb.POD_STATE_UNDEFINED):
        return pod  # nothing more is known of it
    pod.apps.extend(app_message(a) for a in info.apps)
    pod.annotations.extend(key_values(info.annotations))
    if manifest is not None:
        pod.manifest = manifest
    if state in (pb.POD_STATE_RUNNING, pb.POD_STATE_EXITED):
        for net in info.networks:
            if ":" in net.ip:
                pod.networks.append(pb.Network(name=net.net_name, ipv6=net.ip))
            else:
                pod.networks.append(pb.Network(name=net.net_name, ipv4=net.ip))
    if state == pb.POD_STATE_RUNNING:
        pod.cgroup = info.cgroup
    if info.pid is not None:
        pod.pid = info.pid
    pod.created_at = info.created_at or 0
    pod.started_at = info.started_at or 0
    pod.gc_marked_at = info.gc_marked_at or 0
    return pod


def app_message(app: AppInfo) -> pb.App:
    image = pb.Image(base_format=image_format(app.image.format if app.image else "appc"), id=app.image_id)
    if app.image is not None:
        image.name = app.image.name
        image.version = app.image.label("version") or "latest"  # as rkt
    return pb.App(
        name=app.name,
        image=image,
        state=APP_STATES.get(app.state, pb.APP_STATE_UNDEFINED),
        exit_code=app.exit_code if app.exit_code is not None else -1,
        annotations=key_values(app.annotations),
    )


# -- filters --------------------------------------------------------------------------------

def matches_any(pod: pb.Pod, filters: Sequence[pb.PodFilter]) -> bool:
    """rkt's rule: no filter matches every pod; else a pod must match one of the filters."""
    return not filters or any(matches(pod, f) for f in filters)


def matches(pod: pb.Pod, f: pb.PodFilter) -> bool:
    """Whether ``pod`` meets every condition ``f`` sets (an empty condition is no condition)."""
    if f.ids and pod.id not in f.ids:
        return False
    if f.states and pod.state not in f.states:
        return False
    if f.app_names and not set(f.app_names) <= {a.name for a in pod.apps}:
        return False
    if f.image_ids and not set(f.image_ids) <= {a.image.id for a in pod.apps}:
        return False
    if f.network_names and not set(f.network_names) <= {n.name for n in pod.networks}:
        return False
    if f.annotations and not contains_all(pod.annotations, f.annotations):
        return False
    if f.cgroups and pod.cgroup not in f.cgroups:
        return False
    if f.pod_sub_cgroups and not (pod.cgroup and any(c.startswith(pod.cgroup) for c in f.pod_sub_cgroups)):
        return False  # rkt's test: the pod's cgroup is a prefix of one of them
    return True


def contains_all(have: Iterable[pb.KeyValue], want: Iterable[pb.KeyValue]) -> bool:
    """Every wanted key is there with the wanted value (the first pair of a key counts, as rkt)."""
    values: dict[str, str] = {}
    for kv in have:
        values.setdefault(kv.Key, kv.value)
    return all(kv.Key in values and values[kv.Key] == kv.value for kv in want)
