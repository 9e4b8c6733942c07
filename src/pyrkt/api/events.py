"""What ListenEvents streams: the changes of pods, apps and images, found by reading the on-disk
state again and again (there is no daemon to announce them).

Every ``POLL_INTERVAL`` the service samples each pod's milestones (prepared, prepare aborted,
started, exited, each app started and exited) and the stored images, and sends the milestones
and images that are new since the last sample, in one response. A pod that starts and exits
between two samples still gets both events, in order; one that disappears is garbage collected.
The first sample, when the call starts, is the baseline: only what happens after it is sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from pyrkt.api.proto import v1alpha_pb2 as pb
from pyrkt.config import Config
from pyrkt.model.values import Value
from pyrkt.pods.info import PodInfo
from pyrkt.pods.state import State
from pyrkt.stage0 import manage
from pyrkt.store import Store

POLL_INTERVAL = 0.5
NS = 1_000_000_000
EXITED_STATES = (State.EXITED, State.EXITED_DELETING, State.EXITED_GARBAGE)


class Milestone(Value):
    """One thing that happened once: ``key`` tells it apart from every other of its subject."""

    key: tuple[str, ...]
    type: pb.EventType
    id: str
    name: str
    time: int = 0  # seconds since the epoch when known, else 0 (the time it was seen is used)
    data: tuple[tuple[str, str], ...] = ()


def pod_milestones(info: PodInfo) -> list[Milestone]:
    """What ``info`` says has happened to its pod so far, oldest first."""
    out = []
    uuid = info.uuid

    def add(what: str, kind: pb.EventType, ns: int | None, name: str = "", **data: str) -> None:
        out.append(Milestone(key=(uuid, what, name), type=kind, id=uuid, name=name or uuid,
                             time=(ns or 0) // NS, data=tuple(data.items())))

    if info.state == State.PREPARED:
        add("prepared", pb.EVENT_TYPE_POD_PREPARED, info.created_at)
    if info.state == State.ABORTED_PREPARE:
        add("aborted", pb.EVENT_TYPE_POD_PREPARE_ABORTED, None)
    if info.started_at is not None:
        add("started", pb.EVENT_TYPE_POD_STARTED, info.started_at)
    for app in info.apps:
        if app.started_at is not None:
            add("app-started", pb.EVENT_TYPE_APP_STARTED, app.started_at, app.name)
        if app.state == "exited":
            extra = {"exit_code": str(app.exit_code)} if app.exit_code is not None else {}
            add("app-exited", pb.EVENT_TYPE_APP_EXITED, app.finished_at, app.name, **extra)
    if info.state in EXITED_STATES:
        add("exited", pb.EVENT_TYPE_POD_EXITED, None)
    return out


class Sample(Value):
    """The milestones of every listed pod and the stored images (id -> name) at one moment."""

    pods: dict[str, tuple[Milestone, ...]]
    images: dict[str, tuple[str, int]]  # id -> (name, import time in seconds)


def sample(config: Config) -> Sample:
    pods = {info.uuid: tuple(pod_milestones(info)) for info in manage.list_pods(config)}
    store = Store(config.store_dir)  # not Store.open: this service changes nothing
    try:
        images = {r.id: (r.display_name, r.import_time // NS) for r in store.list()}
    finally:
        store.close()
    return Sample(pods=pods, images=images)


def changes(before: Sample, after: Sample, now: int) -> list[pb.Event]:
    """The events that lead from ``before`` to ``after``; ``now``: the time for those whose
    own time is unknown."""
    out = []
    for uuid, milestones in after.pods.items():
        seen = {m.key for m in before.pods.get(uuid, ())}
        for m in milestones:
            if m.key not in seen:
                out.append(event(m.type, m.id, m.name, m.time or now, m.data))
    for uuid in before.pods.keys() - after.pods.keys():
        out.append(event(pb.EVENT_TYPE_POD_GARBAGE_COLLECTED, uuid, uuid, now))
    for image_id, (name, imported) in after.images.items():
        if image_id not in before.images:
            out.append(event(pb.EVENT_TYPE_IMAGE_IMPORTED, image_id, name, imported or now))
    for image_id in before.images.keys() - after.images.keys():
        out.append(event(pb.EVENT_TYPE_IMAGE_REMOVED, image_id, before.images[image_id][0], now))
    return out


def event(kind: pb.EventType, subject: str, name: str, when: int, data: tuple[tuple[str, str], ...] = ()) -> pb.Event:
    e = pb.Event(type=kind, id=subject, time=when, data=[pb.KeyValue(Key=k, value=v) for k, v in data])
    setattr(e, "from", name)  # a Python keyword: not a keyword argument
    return e


def wanted(event: pb.Event, f: pb.EventFilter) -> bool:
    """The filter's conditions, all of them: types, ids, names (``from``) and since_time."""
    if f.types and event.type not in f.types:
        return False
    if f.ids and event.id not in f.ids:
        return False
    if f.names and getattr(event, "from") not in f.names:
        return False
    return not (f.since_time and event.time < f.since_time)


def listen(config: Config, f: pb.EventFilter, *, active: Callable[[], bool] = lambda: True,
           clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
           ) -> Iterator[list[pb.Event]]:
    """The batches of events after the call starts, until the client goes or ``until_time``."""
    last = sample(config)
    while active():
        now = clock()
        if f.until_time and now >= f.until_time:
            return
        sleep(POLL_INTERVAL if not f.until_time else max(0.0, min(POLL_INTERVAL, f.until_time - now)))
        current = sample(config)
        events = [e for e in changes(last, current, int(clock())) if wanted(e, f)]
        last = current
        if events:
            yield events
