"""`pyrkt cri`'s hostPID sandboxes and privileged containers, driven as a kubelet drives them: a
container of a hostPID sandbox sees the host's processes, its orphans come back to pod init,
and stopping the sandbox kills the pod's processes and nothing else; a privileged container (in
a privileged sandbox) has every capability, a read-write /sys and the host's devices, its
neighbours do not (one of them Unconfined: no seccomp filter, nothing else)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from tests.integration import test_cri_pods
from tests.integration.pods import pids_of_pod
from tests.integration.test_cri import Cri
from tests.integration.test_cri_pods import create, rt, run_sandbox, sandbox_config, wait_state

from pyrkt.api.proto import cri_pb2 as pb

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="pods need root")
image, cri = test_cri_pods.image, test_cri_pods.cri  # its fixtures: a data dir with busybox, a server


def exec_sync(cri: Cri, cid: str, *cmd: str) -> pb.ExecSyncResponse:
    return rt(cri, "ExecSync", pb.ExecSyncRequest(container_id=cid, cmd=list(cmd), timeout=30))


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith("PPid:")))


def test_host_pid_sandbox_sees_the_host_and_stops_only_its_own(cri: Cri, image: tuple[Path, str],
                                                               tmp_path: Path) -> None:
    bystander = subprocess.Popen(["sleep", "300"])  # a host process the pod's stop must leave alone
    try:
        config = sandbox_config(tmp_path, "hostpid")
        config.linux.security_context.namespace_options.pid = pb.NODE
        sid = run_sandbox(cri, config)
        st = rt(cri, "PodSandboxStatus", pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status
        assert st.linux.namespaces.options.pid == pb.NODE
        cid = create(cri, sid, config, image[1], "main", "sh", "-c", "(sleep 1001 &); exec sleep 1000")
        rt(cri, "StartContainer", pb.StartContainerRequest(container_id=cid))
        wait_state(cri, cid, pb.CONTAINER_RUNNING)
        me = exec_sync(cri, cid, "cat", f"/proc/{os.getpid()}/cmdline")
        assert me.exit_code == 0 and b"pytest" in me.stdout, me  # the test's own process, from inside
        assert exec_sync(cri, cid, "cat", f"/proc/{bystander.pid}/cmdline").stdout == b"sleep\x00300\x00"

        pids = pids_of_pod(sid)
        init = int((image[0] / "pods" / "run" / sid / "pid").read_text())
        orphans = []
        for _ in range(100):
            orphans = [p for p in pids_of_pod(sid) if open(f"/proc/{p}/cmdline").read() == "sleep\x001001\x00"]
            if orphans:
                break
            time.sleep(0.05)
        assert orphans and parent_of(orphans[0]) == init  # re-parented to pod init, its subreaper
        assert init in pids

        rt(cri, "StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=sid))
        assert pids_of_pod(sid) == []
        assert bystander.poll() is None  # still running: no kill(-1) in the host's namespace
        rt(cri, "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
        assert not any((image[0] / "pods" / d / sid).exists() for d in ("run", "exited-garbage", "garbage"))
    finally:
        bystander.kill()
        bystander.wait()


def test_privileged_container_alone_has_every_cap_a_writable_sys_and_the_host_devices(cri: Cri, image: tuple[Path, str],
                                                                       tmp_path: Path) -> None:
    config = sandbox_config(tmp_path, "plain")
    sid = run_sandbox(cri, config)
    try:
        c = pb.ContainerConfig(metadata=pb.ContainerMetadata(name="admin"), image=pb.ImageSpec(image=image[1]),
                               command=["sleep", "1000"], linux=pb.LinuxContainerConfig(
                                   security_context=pb.LinuxContainerSecurityContext(privileged=True)))
        with pytest.raises(grpc.RpcError) as refused:
            rt(cri, "CreateContainer", pb.CreateContainerRequest(pod_sandbox_id=sid, config=c, sandbox_config=config))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "a privileged container needs a privileged sandbox" in (refused.value.details() or "")
    finally:
        rt(cri, "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sid))

    config = sandbox_config(tmp_path, "priv")
    config.linux.security_context.privileged = True
    sid = run_sandbox(cri, config)
    try:
        c.metadata.name = "admin"
        admin = str(rt(cri, "CreateContainer", pb.CreateContainerRequest(
            pod_sandbox_id=sid, config=c, sandbox_config=config)).container_id)

        def plain(name: str, seccomp: int) -> str:
            cfg = pb.ContainerConfig(metadata=pb.ContainerMetadata(name=name), image=pb.ImageSpec(image=image[1]),
                                     command=["sleep", "1000"], linux=pb.LinuxContainerConfig(
                                         security_context=pb.LinuxContainerSecurityContext(
                                             seccomp=pb.SecurityProfile(profile_type=seccomp))))
            return str(rt(cri, "CreateContainer", pb.CreateContainerRequest(
                pod_sandbox_id=sid, config=cfg, sandbox_config=config)).container_id)

        web, free = plain("web", pb.SecurityProfile.RuntimeDefault), plain("free", pb.SecurityProfile.Unconfined)
        for cid in (admin, web, free):
            rt(cri, "StartContainer", pb.StartContainerRequest(container_id=cid))
            wait_state(cri, cid, pb.CONTAINER_RUNNING)
        script = ("grep -E '^(CapEff|Seccomp):' /proc/self/status; awk '$2==\"/sys\"{print $4}' /proc/mounts; "
                  "(: < /dev/kmsg) 2>/dev/null && echo kmsg || echo no-kmsg")
        with open("/proc/self/status") as f:
            every = next(line.split()[1] for line in f if line.startswith("CapBnd:"))
        got = exec_sync(cri, admin, "sh", "-c", script).stdout.decode().split()
        assert got[:4] == ["CapEff:", every, "Seccomp:", "0"] and got[4].startswith("rw,") and got[5] == "kmsg", got
        got = exec_sync(cri, web, "sh", "-c", script).stdout.decode().split()
        assert got[1] != every and got[3] == "2" and got[4].startswith("ro,") and got[5] == "no-kmsg", got
        got = exec_sync(cri, free, "sh", "-c", script).stdout.decode().split()  # Unconfined: no filter, no more
        assert got[1] != every and got[3] == "0" and got[4].startswith("ro,") and got[5] == "no-kmsg", got
    finally:
        rt(cri, "StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=sid))
        rt(cri, "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
