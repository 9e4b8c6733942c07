"""A CRI container's HostToContainer mount on the real kernel: a tmpfs the host mounts below the
host path after the container started is visible to ExecSync; ContainerStatus reports the
propagation; a host path on a private mount is refused as containerd refuses it. Every mount
the test makes is gone at its end."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from tests.integration.pods import mounts_under, shared_mount
from tests.integration.test_cri import Cri
from tests.integration.test_cri_pods import cri, image, rt, run_sandbox, sandbox_config, wait_state

from pyrkt.api.proto import cri_pb2 as pb

__all__ = ["cri", "image"]  # the fixtures this module's tests use
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="pods need root")


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@pytest.fixture()
def shared_source(tmp_path: Path) -> Iterator[Path]:
    with shared_mount(tmp_path / "kubelet") as src:
        yield src


def container(image: str, host_path: Path, propagation: int) -> pb.ContainerConfig:
    return pb.ContainerConfig(metadata=pb.ContainerMetadata(name="watcher"), image=pb.ImageSpec(image=image),
                              command=["sleep", "1000"],
                              mounts=[pb.Mount(container_path="/host", host_path=str(host_path),
                                               propagation=propagation)])


def test_a_host_mount_made_after_the_container_started_is_seen_through_host_to_container(
        cri: Cri, image: tuple[Path, str], tmp_path: Path, shared_source: Path) -> None:
    config = sandbox_config(tmp_path, "propagation")
    sid = run_sandbox(cri, config)
    try:
        c = container(image[1], shared_source, pb.PROPAGATION_HOST_TO_CONTAINER)
        cid = rt(cri, "CreateContainer", pb.CreateContainerRequest(pod_sandbox_id=sid, config=c,
                                                                    sandbox_config=config)).container_id
        rt(cri, "StartContainer", pb.StartContainerRequest(container_id=cid))
        wait_state(cri, cid, pb.CONTAINER_RUNNING)
        sh("mount", "-t", "tmpfs", "-o", "size=1m", "late", str(shared_source / "sub"))
        try:
            (shared_source / "sub" / "hello").write_text("mounted late\n")
            r = rt(cri, "ExecSync", pb.ExecSyncRequest(container_id=cid, cmd=["cat", "/host/sub/hello"], timeout=30))
            assert (r.exit_code, r.stdout) == (0, b"mounted late\n"), r
        finally:
            sh("umount", str(shared_source / "sub"))
        [mount] = rt(cri, "ContainerStatus", pb.ContainerStatusRequest(container_id=cid)).status.mounts
        assert (mount.container_path, mount.propagation) == ("/host", pb.PROPAGATION_HOST_TO_CONTAINER)
    finally:
        rt(cri, "StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=sid))
        rt(cri, "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
    assert mounts_under(shared_source) == [str(shared_source)]


def test_bidirectional_from_a_private_host_path_is_an_invalid_argument(
        cri: Cri, image: tuple[Path, str], tmp_path: Path) -> None:
    config = sandbox_config(tmp_path, "private")
    sid = run_sandbox(cri, config)
    try:
        private = tmp_path / "private"
        private.mkdir()
        with pytest.raises(grpc.RpcError) as e:
            rt(cri, "CreateContainer", pb.CreateContainerRequest(
                pod_sandbox_id=sid, config=container(image[1], private, pb.PROPAGATION_BIDIRECTIONAL),
                sandbox_config=config))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "propagation=rshared needs a source on a shared mount" in str(e.value.details())
    finally:
        rt(cri, "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
