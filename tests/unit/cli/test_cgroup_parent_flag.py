"""--cgroup-parent: a pod flag of run, prepare and app sandbox (not run-prepared), checked by
prepare before any work; the default flavor's only."""

from __future__ import annotations

import pytest

from pyrkt.cli.commands import app_sandbox, prepare, run, run_prepared
from pyrkt.cli.commands.apps import parse_pod_and_apps
from pyrkt.cli.flags import FlagSet
from pyrkt.errors import UsageError
from pyrkt.stage0.prepare import PodRequest, cgroup_parent


@pytest.mark.parametrize("flags", [run.RUN_FLAGS, prepare.OWN_FLAGS])
def test_run_and_prepare_take_it_into_the_pod_request(flags: list) -> None:  # type: ignore[type-arg]
    values, apps = parse_pod_and_apps(FlagSet(flags), ["--cgroup-parent=/kubepods/pod1", "img"])
    assert run.pod_request(values, apps).cgroup_parent == "/kubepods/pod1"
    values, apps = parse_pod_and_apps(FlagSet(flags), ["img"])
    assert run.pod_request(values, apps).cgroup_parent == ""


def test_app_sandbox_takes_it_and_run_prepared_does_not() -> None:
    assert "cgroup-parent" in {f.name for f in app_sandbox.FLAGS}
    assert "cgroup-parent" not in {f.name for f in run_prepared.FLAGS}


def test_prepare_checks_it_and_refuses_it_outside_the_default_flavor() -> None:
    req = PodRequest(apps=[], cgroup_parent="/kubepods/pod1/")
    assert cgroup_parent(req, "default") == "kubepods/pod1"
    assert cgroup_parent(PodRequest(apps=[]), "fly") == ""
    with pytest.raises(UsageError, match="default flavor only, not fly: the fly flavor puts its pod in no cgroup"):
        cgroup_parent(req, "fly")
    with pytest.raises(UsageError, match="stage1 ABI has no way"):
        cgroup_parent(req, "image")
    with pytest.raises(UsageError, match="pyrkt's cgroup driver is cgroupfs"):
        cgroup_parent(PodRequest(apps=[], cgroup_parent="kubepods.slice"), "default")
