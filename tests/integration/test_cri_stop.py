"""StopPodSandbox of a sandbox on a pod network, with its container exited (the server tears the
network down before it stops pod init) or still running (pod init tears it down as it exits):
either way the address, the netns and its bind mount are gone and the sandbox is not ready."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.integration.pods import Cli
from tests.integration.test_cri import Cri
from tests.integration.test_cri_pods import create, cri, image, rt, run_sandbox, sandbox_config, wait_state

from pyrkt.api.proto import cri_pb2 as pb

__all__ = ["cri", "image"]  # the fixtures, from test_cri_pods
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="pods need root")


@pytest.mark.parametrize("command", [("true",), ("sleep", "1000")], ids=["exited", "running"])
def test_stop_sandbox_tears_its_network_down(cri: Cri, image: tuple[Path, str], tmp_path: Path,
                                             command: tuple[str, ...]) -> None:
    (cri.cni_conf / "10-k8s.conflist").write_text(json.dumps({
        "cniVersion": "0.4.0", "name": "k8s-stop", "plugins": [
            {"type": "ptp", "ipam": {"type": "host-local", "subnet": "10.226.13.0/24",
                                     "dataDir": str(tmp_path / "ipam")}}]}))
    config = sandbox_config(tmp_path, "stopped", host_net=False)
    sid = run_sandbox(cri, config)
    try:
        ip = rt(cri, "PodSandboxStatus", pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status.network.ip
        assert ip.startswith("10.226.13.")
        cid = create(cri, sid, config, image[1], "app", *command)
        rt(cri, "StartContainer", pb.StartContainerRequest(container_id=cid))
        wait_state(cri, cid, pb.CONTAINER_EXITED if command == ("true",) else pb.CONTAINER_RUNNING)
        netns = (Cli(cri.data_dir).pod_dir(sid) / "netns").read_text().strip()
        assert os.path.exists(netns)

        rt(cri, "StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=sid))
        st = rt(cri, "PodSandboxStatus", pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status
        assert st.state == pb.SANDBOX_NOTREADY
        assert status_state(cri, cid) == pb.CONTAINER_EXITED
        assert ip not in os.listdir(tmp_path / "ipam" / "k8s-stop")
        assert not os.path.exists(netns) and not (Cli(cri.data_dir).pod_dir(sid) / "netns").exists()
        rt(cri, "StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=sid))  # again: nothing left, no error
    finally:
        rt(cri, "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sid))


def status_state(cri: Cri, cid: str) -> int:
    return int(rt(cri, "ContainerStatus", pb.ContainerStatusRequest(container_id=cid)).status.state)
