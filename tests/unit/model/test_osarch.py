"""Which os/arch labels an ACI may carry (appc, on fetch) and which an app's image needs to run
(rkt's stage0)."""

from __future__ import annotations

from pyrkt.model.osarch import manifest_os_arch_problem, runnable_os_arch_problem


def test_a_manifest_may_leave_out_os_and_arch_as_appc_says() -> None:
    assert manifest_os_arch_problem({}) is None
    assert manifest_os_arch_problem({"arch": "anything"}) is None  # arch means something only beside os
    assert manifest_os_arch_problem({"os": "linux"}) is None
    assert manifest_os_arch_problem({"os": "freebsd", "arch": "arm"}) is None


def test_a_manifest_os_and_arch_must_be_appcs() -> None:
    assert manifest_os_arch_problem({"os": "plan9"}) == "bad os 'plan9' (must be one of: darwin, freebsd, linux)"
    assert manifest_os_arch_problem({"os": "darwin", "arch": "amd64"}) == "bad arch 'amd64' for darwin"


def test_an_apps_image_runs_only_with_linux_and_an_arch_as_rkts_stage0() -> None:
    assert runnable_os_arch_problem({"os": "linux", "arch": "amd64"}) is None
    assert runnable_os_arch_problem({"arch": "amd64"}) == "missing os label in the image manifest"
    assert runnable_os_arch_problem({"os": "linux"}) == "missing arch label in the image manifest"
    assert runnable_os_arch_problem({"os": "freebsd", "arch": "amd64"}) == "bad os 'freebsd'"
