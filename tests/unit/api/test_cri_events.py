"""GetContainerEvents: the events that take a container from one sampled state to the next, and
the stream sent as the sandboxes change between samples."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from pyrkt.api.cri import events
from pyrkt.api.proto import cri_pb2 as pb
from pyrkt.errors import NotFound
from pyrkt.pods.state import State

CREATED, STARTED, STOPPED, DELETED = (pb.CONTAINER_CREATED_EVENT, pb.CONTAINER_STARTED_EVENT,
                                      pb.CONTAINER_STOPPED_EVENT, pb.CONTAINER_DELETED_EVENT)


@pytest.mark.parametrize(("before", "after", "sent"), [
    (None, pb.CONTAINER_CREATED, [CREATED]),
    (None, pb.CONTAINER_RUNNING, [CREATED, STARTED]),
    (None, pb.CONTAINER_EXITED, [CREATED, STARTED, STOPPED]),
    (pb.CONTAINER_CREATED, pb.CONTAINER_RUNNING, [STARTED]),
    (pb.CONTAINER_CREATED, pb.CONTAINER_EXITED, [STARTED, STOPPED]),  # it ran between two samples
    (pb.CONTAINER_RUNNING, pb.CONTAINER_EXITED, [STOPPED]),
    (pb.CONTAINER_RUNNING, pb.CONTAINER_UNKNOWN, [STOPPED]),  # its pod stopped without recording it
    (pb.CONTAINER_EXITED, pb.CONTAINER_RUNNING, [STARTED]),  # `app start` again
    (pb.CONTAINER_RUNNING, None, [STOPPED, DELETED]),
    (pb.CONTAINER_EXITED, None, [DELETED]),
    (pb.CONTAINER_CREATED, None, [DELETED]),
    (pb.CONTAINER_RUNNING, pb.CONTAINER_RUNNING, []),
    (None, None, []),
])
def test_each_change_is_the_events_that_lead_to_it(before: int | None, after: int | None, sent: list[int]) -> None:
    assert events.steps(before, after) == sent


class Node:
    """What GetContainerEvents reads of the server's Pods: the sandboxes and the statuses."""

    def __init__(self) -> None:
        self.pods: dict[str, dict[str, str]] = {}  # sandbox id -> app name -> rkt's app state

    def sandboxes(self) -> list[Any]:
        return [SimpleNamespace(uuid=sid, state=State.RUNNING,
                                apps=[SimpleNamespace(name=name, state=st, exit_code=0 if st == "exited" else None)
                                      for name, st in apps.items()])
                for sid, apps in self.pods.items()]

    def sandbox_status(self, sid: str) -> pb.PodSandboxStatus:
        if sid not in self.pods:
            raise NotFound(f"pod sandbox {sid!r} not found")
        return pb.PodSandboxStatus(id=sid)

    def container_status(self, cid: str) -> pb.ContainerStatus:
        sid, _, name = cid.partition("-")
        return pb.ContainerStatus(id=cid, state=events.container_state(self.sandboxes()[0], SimpleNamespace(
            name=name, state=self.pods[sid][name], exit_code=None)))


def test_the_stream_sends_what_changed_between_samples_with_the_sandboxs_statuses() -> None:
    node = Node()
    node.pods["s1"] = {"old": "running"}  # there before the call: nothing is sent for it
    script = [lambda: node.pods["s1"].update(web="created"),
              lambda: node.pods["s1"].update(web="running", old="exited"),
              lambda: node.pods["s1"].pop("web"),
              lambda: node.pods.pop("s1")]
    turns = iter(script)

    def sleep(_: float) -> None:
        next(turns)()

    active = iter([True] * len(script) + [False])
    got = list(events.watch(node, active=lambda: next(active), sleep=sleep))  # type: ignore[arg-type]
    assert [(e.container_id, e.container_event_type) for e in got] == [
        ("s1-web", CREATED), ("s1-old", STOPPED), ("s1-web", STARTED), ("s1-web", STOPPED), ("s1-web", DELETED),
        ("s1-old", DELETED)]
    assert [e.pod_sandbox_status.id for e in got] == ["s1"] * 5 + [""]  # the sandbox gone: no status
    assert [[s.id for s in e.containers_statuses] for e in got[:2]] == [["s1-old", "s1-web"], ["s1-old", "s1-web"]]
    assert [s.id for s in got[3].containers_statuses] == ["s1-old"]
