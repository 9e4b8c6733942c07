"""Pod init tells an OOM kill from another SIGKILL by the app's memory cgroup counter, on v1
(``memory.oom_control``) and v2 (``memory.events``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyrkt.stage1.podinit import PodInit

V1 = "oom_kill_disable 0\nunder_oom 0\noom_kill {}\n"
V2 = "low 0\nhigh 0\nmax 3\noom {}\noom_kill {}\noom_group_kill 0\n"


@pytest.mark.parametrize(("text", "killed"), [
    (V1.format(1), True), (V1.format(0), False), (V2.format(2, 2), True), (V2.format(1, 0), False), ("", False),
])
def test_the_oom_kill_count_of_the_apps_cgroup_decides(tmp_path: Path, text: str, killed: bool) -> None:
    events = tmp_path / "events"
    events.write_text(text)
    init = PodInit({"apps": [{"name": "web", "log": "l", "oom_events": str(events)}], "tee": False})
    [app] = init.apps
    app.oom = os.open(events, os.O_RDONLY)
    try:
        assert init.oom_killed(app) is killed
    finally:
        os.close(app.oom)


def test_an_app_without_a_memory_cgroup_is_never_oom_killed() -> None:
    init = PodInit({"apps": [{"name": "web", "log": "l"}], "tee": False})
    assert init.oom_killed(init.apps[0]) is False
