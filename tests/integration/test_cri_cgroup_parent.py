"""A CRI sandbox's ``cgroup_parent`` on the real kernel: the pod's cgroup goes below the
kubelet's pod cgroup, so a container's limits are enforced there; removing the sandbox takes
the pod's own cgroup back and leaves the kubelet's."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.pods import remove_cgroup_tree
from tests.integration.test_cri import Cri
from tests.integration.test_cri_pods import cri, image, rt, run_sandbox, sandbox_config, wait_state

from pyrkt.api.proto import cri_pb2 as pb
from pyrkt.kernel.cgroups import app_dir

__all__ = ["cri", "image"]  # the fixtures this module's tests use
ROOT = Path("/sys/fs/cgroup")
pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="pods need root"),
              pytest.mark.skipif(not (ROOT / "memory" / "cgroup.procs").exists(), reason="no cgroup v1 memory")]


@pytest.fixture()
def kubepods() -> Iterator[str]:
    """The kubelet's pod cgroup, as a cgroupfs kubelet names it; removed (with its parent) at the end."""
    top = f"pyrkt-test-{secrets.token_hex(4)}"
    yield f"/{top}/burstable/poduid-1"
    remove_cgroup_tree(top)


def test_a_containers_memory_limit_is_set_below_the_sandboxs_cgroup_parent(
        cri: Cri, image: tuple[Path, str], tmp_path: Path, kubepods: str) -> None:
    config = sandbox_config(tmp_path, "parented")
    config.linux.cgroup_parent = kubepods
    sid = run_sandbox(cri, config)
    try:
        c = pb.ContainerConfig(metadata=pb.ContainerMetadata(name="sleeper"), image=pb.ImageSpec(image=image[1]),
                               command=["sleep", "1000"], linux=pb.LinuxContainerConfig(
                                   resources=pb.LinuxContainerResources(memory_limit_in_bytes=48 << 20)))
        cid = rt(cri, "CreateContainer", pb.CreateContainerRequest(pod_sandbox_id=sid, config=c,
                                                                    sandbox_config=config)).container_id
        rt(cri, "StartContainer", pb.StartContainerRequest(container_id=cid))
        wait_state(cri, cid, pb.CONTAINER_RUNNING)
        own = ROOT / "memory" / kubepods.lstrip("/") / f"pyrkt-{sid}"
        limit = own / app_dir("sleeper") / "memory.limit_in_bytes"
        assert limit.read_text().strip() == str(48 << 20)
        assert (own / app_dir("sleeper") / "cgroup.procs").read_text().split()  # the container runs there
        assert not (ROOT / "memory" / "pyrkt" / sid).exists()
        stats = rt(cri, "ContainerStats", pb.ContainerStatsRequest(container_id=cid)).stats
        assert stats.memory.working_set_bytes.value > 0  # read from the cgroup below the parent
    finally:
        rt(cri, "StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=sid))
        rt(cri, "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
    assert not own.exists()
    assert own.parent.is_dir()  # the kubelet's, which it removes itself


def test_a_systemd_slice_as_cgroup_parent_is_an_invalid_argument(
        cri: Cri, image: tuple[Path, str], tmp_path: Path) -> None:
    config = sandbox_config(tmp_path, "sliced")
    config.linux.cgroup_parent = "kubepods-burstable-poduid_1.slice"
    with pytest.raises(Exception) as e:
        run_sandbox(cri, config)
    assert "pyrkt's cgroup driver is cgroupfs" in str(e.value)
    assert rt(cri, "ListPodSandbox", pb.ListPodSandboxRequest()).items == []
