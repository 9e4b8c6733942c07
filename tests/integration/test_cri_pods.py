"""`pyrkt cri`'s pod sandboxes and containers, driven as a kubelet drives them: a gRPC client
runs a sandbox (host network, or a real CNI network from the kubelet's conf dir), creates and
starts containers of a fetched busybox image, reads their states, exit codes and logs at the
kubelet's log path, execs into one, stops and removes all of it; a SIGKILLed server, started
again, finds everything from the pod dirs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from tests.integration.netenv import free_port, served
from tests.integration.pods import Cli, loop_device, make_image, mounts_under
from tests.integration.test_cri import Cri, start

from pyrkt.api.proto import cri_pb2 as pb
from pyrkt.kernel.cgroups import app_dir

HTTPD = "mkdir -p /www && echo served by web > /www/index.html && exec httpd -f -p 8080 -h /www"
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="pods need root")


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A data dir with the busybox test image fetched: (data dir, image id)."""
    base = tmp_path_factory.mktemp("cri-pods")
    cli = Cli(base / "data")
    r = cli("fetch", make_image(base / "busybox", cmd=("sh", "-c", "echo hello")))
    assert r.code == 0, r
    full = cli("image", "list", "--full", "--no-legend", "--fields=id")  # the id the kubelet is given
    yield base / "data", full.out.strip()
    cli.collect_all()
    assert mounts_under(base) == []


@pytest.fixture()
def cri(image: tuple[Path, str], tmp_path: Path) -> Iterator[Cri]:
    conf = tmp_path / "net.d"
    conf.mkdir()
    server = start(image[0], tmp_path / "run" / "cri.sock", conf)
    try:
        yield server
    finally:
        server.stop()


def rt(cri: Cri, method: str, request: Any) -> Any:
    response = getattr(pb, type(request).__name__.removesuffix("Request") + "Response")
    return cri.client.call("RuntimeService", method, request, response)


def sandbox_config(tmp_path: Path, name: str, *, host_net: bool = True) -> pb.PodSandboxConfig:
    logs = tmp_path / "logs" / name
    ns = pb.NamespaceOption(network=pb.NODE if host_net else pb.POD, ipc=pb.POD, pid=pb.POD)
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=f"uid-{name}", namespace="default", attempt=0),
        hostname=name, log_directory=str(logs), labels={"app": name, "tier": "test"},
        annotations={"note": "kept"},
        linux=pb.LinuxPodSandboxConfig(security_context=pb.LinuxSandboxSecurityContext(namespace_options=ns)))


def run_sandbox(cri: Cri, config: pb.PodSandboxConfig) -> str:
    return str(rt(cri, "RunPodSandbox", pb.RunPodSandboxRequest(config=config)).pod_sandbox_id)


def create(cri: Cri, sid: str, config: pb.PodSandboxConfig, image: str, name: str, *command: str) -> str:
    c = pb.ContainerConfig(metadata=pb.ContainerMetadata(name=name), image=pb.ImageSpec(image=image),
                           command=list(command), log_path=f"{name}/0.log", labels={"c": name},
                           annotations={"k8s": name})
    return str(rt(cri, "CreateContainer", pb.CreateContainerRequest(pod_sandbox_id=sid, config=c,
                                                                     sandbox_config=config)).container_id)


def status(cri: Cri, cid: str) -> pb.ContainerStatus:
    return rt(cri, "ContainerStatus", pb.ContainerStatusRequest(container_id=cid)).status


def wait_state(cri: Cri, cid: str, state: int, timeout: float = 20) -> pb.ContainerStatus:
    deadline = time.monotonic() + timeout
    while True:
        st = status(cri, cid)
        if st.state == state:
            return st
        assert time.monotonic() < deadline, st
        time.sleep(0.05)


def containers(cri: Cri, f: pb.ContainerFilter | None = None) -> dict[str, int]:
    return {c.id: c.state for c in rt(cri, "ListContainers", pb.ListContainersRequest(filter=f)).containers}


def test_sandbox_with_two_containers_status_exec_logs_stop_remove(cri: Cri, image: tuple[Path, str],
                                                                  tmp_path: Path) -> None:
    config = sandbox_config(tmp_path, "two")
    sid = run_sandbox(cri, config)
    st = rt(cri, "PodSandboxStatus", pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status
    assert (st.id, st.state, st.metadata.name, st.metadata.uid) == (sid, pb.SANDBOX_READY, "two", "uid-two")
    assert dict(st.labels) == {"app": "two", "tier": "test"} and dict(st.annotations) == {"note": "kept"}
    assert st.linux.namespaces.options.network == pb.NODE and st.created_at > 0

    done = create(cri, sid, config, image[1], "done", "sh", "-c", "echo out; echo err >&2")
    sleeper = create(cri, sid, config, image[1], "sleeper", "sleep", "1000")
    assert done == f"{sid}-done"
    assert status(cri, done).state == pb.CONTAINER_CREATED
    rt(cri, "StartContainer", pb.StartContainerRequest(container_id=done))
    rt(cri, "StartContainer", pb.StartContainerRequest(container_id=sleeper))
    exited = wait_state(cri, done, pb.CONTAINER_EXITED)
    assert (exited.exit_code, exited.reason) == (0, "Completed")
    assert exited.finished_at >= exited.started_at > 0 and exited.image_ref == image[1]
    assert exited.metadata.name == "done" and dict(exited.labels) == {"c": "done"}
    assert dict(exited.annotations) == {"k8s": "done"}
    log = tmp_path / "logs" / "two" / "done" / "0.log"
    assert exited.log_path == str(log)
    lines = log.read_text().splitlines()  # the CRI log format: time stream tag text
    assert sorted(ln.split(" ", 1)[1] for ln in lines) == ["stderr F err", "stdout F out"]
    running = wait_state(cri, sleeper, pb.CONTAINER_RUNNING)
    assert running.started_at > 0

    r = rt(cri, "ExecSync", pb.ExecSyncRequest(container_id=sleeper, cmd=["sh", "-c", "echo hi; echo oh >&2; exit 3"],
                                               timeout=30))
    assert (r.stdout, r.stderr, r.exit_code) == (b"hi\n", b"oh\n", 3)
    with pytest.raises(grpc.RpcError) as late:
        rt(cri, "ExecSync", pb.ExecSyncRequest(container_id=sleeper, cmd=["sleep", "100"], timeout=1))
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    assert r.exit_code == 3
    hostname = rt(cri, "ExecSync", pb.ExecSyncRequest(container_id=sleeper, cmd=["hostname"], timeout=30))
    assert hostname.stdout == b"two\n"

    stats = rt(cri, "ContainerStats", pb.ContainerStatsRequest(container_id=sleeper)).stats
    assert stats.attributes.id == sleeper and stats.memory.working_set_bytes.value > 0
    assert stats.cpu.usage_core_nano_seconds.value > 0
    listed = rt(cri, "ListContainerStats", pb.ListContainerStatsRequest()).stats
    assert sorted(s.attributes.id for s in listed) == sorted([done, sleeper])
    pod_stats = rt(cri, "PodSandboxStats", pb.PodSandboxStatsRequest(pod_sandbox_id=sid)).stats
    assert pod_stats.linux.memory.working_set_bytes.value > 0 and len(pod_stats.linux.containers) == 2
    assert [s.attributes.id for s in rt(cri, "ListPodSandboxStats", pb.ListPodSandboxStatsRequest()).stats] == [sid]

    rt(cri, "UpdateContainerResources", pb.UpdateContainerResourcesRequest(
        container_id=sleeper, linux=pb.LinuxContainerResources(memory_limit_in_bytes=64 << 20, cpu_shares=512)))
    limits = json.loads(Cli(cri.data_dir)("app", "status", sid, "--app=sleeper", "--format=json").out)["limits"]
    assert limits["memory"] == 64 << 20 and limits["cpu_shares"] == 512, limits
    memory = Path("/sys/fs/cgroup/memory/pyrkt") / sid / app_dir("sleeper") / "memory.limit_in_bytes"
    if memory.exists():  # cgroup v1, as here
        assert int(memory.read_text()) == 64 << 20
    sleeper_log = tmp_path / "logs" / "two" / "sleeper" / "0.log"
    rt(cri, "ReopenContainerLog", pb.ReopenContainerLogRequest(container_id=sleeper))  # not moved: nothing to do
    assert sleeper_log.is_symlink()

    assert containers(cri) == {done: pb.CONTAINER_EXITED, sleeper: pb.CONTAINER_RUNNING}
    assert containers(cri, pb.ContainerFilter(state=pb.ContainerStateValue(state=pb.CONTAINER_RUNNING))) == {
        sleeper: pb.CONTAINER_RUNNING}
    assert list(containers(cri, pb.ContainerFilter(label_selector={"c": "done"}))) == [done]
    assert list(containers(cri, pb.ContainerFilter(pod_sandbox_id="nope"))) == []

    t0 = time.monotonic()
    rt(cri, "StopContainer", pb.StopContainerRequest(container_id=sleeper, timeout=2))
    assert time.monotonic() - t0 < 15
    stopped = status(cri, sleeper)
    assert (stopped.exit_code, stopped.reason) == (143, "Error"), stopped  # TERM killed it, as containerd says
    rkt = Cli(cri.data_dir)("app", "status", sid, "--app=sleeper")
    assert "exit_code=0" in rkt.out.splitlines(), rkt  # rkt's rule for an app the pod stopped
    rt(cri, "StopContainer", pb.StopContainerRequest(container_id=sleeper, timeout=2))  # stopped already
    rt(cri, "RemoveContainer", pb.RemoveContainerRequest(container_id=done))
    rt(cri, "RemoveContainer", pb.RemoveContainerRequest(container_id=done))  # idempotent
    assert not log.exists() and list(containers(cri)) == [sleeper]

    rt(cri, "StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=sid))
    rt(cri, "StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=sid))
    items = rt(cri, "ListPodSandbox", pb.ListPodSandboxRequest()).items
    assert [(i.id, i.state) for i in items] == [(sid, pb.SANDBOX_NOTREADY)]
    rt(cri, "RemoveContainer", pb.RemoveContainerRequest(container_id=sleeper))  # of a stopped sandbox
    assert containers(cri) == {} and not sleeper_log.is_symlink()
    rt(cri, "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
    rt(cri, "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
    assert rt(cri, "ListPodSandbox", pb.ListPodSandboxRequest()).items == []
    assert containers(cri) == {}


def test_stopped_containers_report_how_their_process_really_ended(cri: Cri, image: tuple[Path, str],
                                                                   tmp_path: Path) -> None:
    """As containerd: killed by the TERM 143, by the KILL after the timeout 137 (reason Error);
    one that handles the TERM and exits 0 is Completed."""
    config = sandbox_config(tmp_path, "stops")
    sid = run_sandbox(cri, config)
    try:
        ids = {"termed": create(cri, sid, config, image[1], "termed", "sleep", "1000"),
               "killed": create(cri, sid, config, image[1], "killed", "sh", "-c", "trap '' TERM; sleep 1000"),
               "clean": create(cri, sid, config, image[1], "clean", "sh", "-c",
                               "trap 'exit 0' TERM; while :; do sleep 0.1; done")}
        for cid in ids.values():
            rt(cri, "StartContainer", pb.StartContainerRequest(container_id=cid))
            wait_state(cri, cid, pb.CONTAINER_RUNNING)
        time.sleep(0.3)  # the shells' traps in place
        for cid in ids.values():
            rt(cri, "StopContainer", pb.StopContainerRequest(container_id=cid, timeout=1))
        got = {name: (status(cri, cid).exit_code, status(cri, cid).reason) for name, cid in ids.items()}
        assert got == {"termed": (143, "Error"), "killed": (137, "Error"), "clean": (0, "Completed")}
        codes = {name: json.loads(Cli(cri.data_dir)("app", "status", sid, f"--app={name}", "--format=json").out)
                 ["exit_code"] for name in ids}
        assert codes == {"termed": 0, "killed": 0, "clean": 0}  # rkt's rule for apps the pod stopped
    finally:
        rt(cri, "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sid))


def test_a_container_given_a_device_reads_it_and_its_neighbour_cannot(cri: Cri, image: tuple[Path, str],
                                                                      tmp_path: Path) -> None:
    backing = tmp_path / "disk.img"
    backing.write_bytes(b"on the disk" + bytes(1 << 20))
    config = sandbox_config(tmp_path, "devs")
    sid = run_sandbox(cri, config)
    with loop_device(backing) as loop:
        try:
            probe = "head -c 11 /dev/xvdc; echo; head -c 11 " + loop + " 2>&1; exit 0"
            c = pb.ContainerConfig(metadata=pb.ContainerMetadata(name="disk"), image=pb.ImageSpec(image=image[1]),
                                   command=["sleep", "1000"], log_path="disk/0.log",
                                   devices=[pb.Device(host_path=loop, container_path="/dev/xvdc", permissions="r")])
            disk = str(rt(cri, "CreateContainer", pb.CreateContainerRequest(
                pod_sandbox_id=sid, config=c, sandbox_config=config)).container_id)
            other = create(cri, sid, config, image[1], "other", "sleep", "1000")
            for cid in (disk, other):
                rt(cri, "StartContainer", pb.StartContainerRequest(container_id=cid))
                wait_state(cri, cid, pb.CONTAINER_RUNNING)
            r = rt(cri, "ExecSync", pb.ExecSyncRequest(container_id=disk, cmd=["sh", "-c", probe], timeout=30))
            assert r.stdout.decode().splitlines() == ["on the disk", f"head: {loop}: No such file or directory"], r
            n = loop.removeprefix("/dev/loop")
            r = rt(cri, "ExecSync", pb.ExecSyncRequest(
                container_id=other, cmd=["sh", "-c", f"mknod /tmp/d b 7 {n} 2>&1; ls /dev/xvdc 2>&1; exit 0"],
                timeout=30))
            assert r.stdout.decode().splitlines() == ["mknod: /tmp/d: Operation not permitted",
                                                      "ls: /dev/xvdc: No such file or directory"], r
            c.metadata.name, c.devices[0].host_path = "gone", "/dev/no-such-device"
            with pytest.raises(grpc.RpcError) as missing:
                rt(cri, "CreateContainer", pb.CreateContainerRequest(pod_sandbox_id=sid, config=c,
                                                                     sandbox_config=config))
            assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "container gone: --device=/dev/no-such-device:/dev/xvdc:r: No such file" in str(
                missing.value.details())
        finally:
            rt(cri, "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sid))


def test_unknown_ids_are_not_found_and_bad_configs_invalid(cri: Cri, image: tuple[Path, str], tmp_path: Path) -> None:
    for method, request in [("PodSandboxStatus", pb.PodSandboxStatusRequest(pod_sandbox_id="nope")),
                            ("ContainerStatus", pb.ContainerStatusRequest(container_id="nope")),
                            ("StartContainer", pb.StartContainerRequest(container_id="0" * 36 + "-x"))]:
        with pytest.raises(grpc.RpcError) as e:
            rt(cri, method, request)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND, method
    config = sandbox_config(tmp_path, "bad")
    config.linux.security_context.namespace_options.pid = pb.TARGET  # hostPID (NODE) is taken: test_cri_security
    with pytest.raises(grpc.RpcError) as bad:
        run_sandbox(cri, config)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "mode TARGET" in str(bad.value.details())
    with pytest.raises(grpc.RpcError) as nonet:  # a pod network, and no CNI config in the kubelet's dir
        run_sandbox(cri, sandbox_config(tmp_path, "nonet", host_net=False))
    assert nonet.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no network config found" in str(nonet.value.details())
    cli = Cli(cri.data_dir)
    other = cli("run", "--net=none", image[1], f"--uuid-file-save={tmp_path / 'uuid'}")  # a pod of `pyrkt run`
    assert other.code == 0, other
    uuid = (tmp_path / "uuid").read_text().strip()
    rt(cri, "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=uuid))  # not the kubelet's: left alone
    assert cli("status", uuid).code == 0 and rt(cri, "ListPodSandbox", pb.ListPodSandboxRequest()).items == []
    assert cli("rm", uuid).code == 0
    sysctl = sandbox_config(tmp_path, "sysctl")
    sysctl.linux.sysctls["vm.swappiness"] = "61"
    with pytest.raises(grpc.RpcError) as bad_sysctl:
        run_sandbox(cri, sysctl)
    assert bad_sysctl.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "vm.swappiness" in str(bad_sysctl.value.details())
    assert rt(cri, "ListPodSandbox", pb.ListPodSandboxRequest()).items == []
    ipc = sandbox_config(tmp_path, "hostipc")
    ipc.linux.security_context.namespace_options.ipc = pb.NODE
    sid = run_sandbox(cri, ipc)
    try:
        st = rt(cri, "PodSandboxStatus", pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status
        assert st.linux.namespaces.options.ipc == pb.NODE
        nolog = pb.ContainerConfig(metadata=pb.ContainerMetadata(name="x"), image=pb.ImageSpec(image=image[1]),
                                   log_path="x.log")
        ipc.log_directory = ""
        with pytest.raises(grpc.RpcError) as relative:
            rt(cri, "CreateContainer", pb.CreateContainerRequest(pod_sandbox_id=sid, config=nolog, sandbox_config=ipc))
        assert relative.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert containers(cri) == {}  # nothing added
        with pytest.raises(grpc.RpcError) as missing:
            create(cri, sid, ipc, "sha256:" + "0" * 64, "y", "true")
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        rt(cri, "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sid))


def test_a_sigkilled_server_started_again_finds_sandbox_and_containers(cri: Cri, image: tuple[Path, str],
                                                                      tmp_path: Path) -> None:
    config = sandbox_config(tmp_path, "again")
    sid = run_sandbox(cri, config)
    cid = create(cri, sid, config, image[1], "box", "sleep", "1000")
    rt(cri, "StartContainer", pb.StartContainerRequest(container_id=cid))
    wait_state(cri, cid, pb.CONTAINER_RUNNING)
    os.kill(cri.proc.pid, signal.SIGKILL)
    cri.proc.wait(timeout=30)
    cri.client.channel.close()
    again = start(cri.data_dir, cri.sock, cri.cni_conf)
    cri.proc, cri.client = again.proc, again.client
    assert containers(cri) == {cid: pb.CONTAINER_RUNNING}
    items = rt(cri, "ListPodSandbox", pb.ListPodSandboxRequest(filter=pb.PodSandboxFilter(label_selector={"app": "again"})))
    assert [(i.id, i.state, i.metadata.name) for i in items.items] == [(sid, pb.SANDBOX_READY, "again")]
    rt(cri, "StopContainer", pb.StopContainerRequest(container_id=cid, timeout=5))
    assert status(cri, cid).state == pb.CONTAINER_EXITED
    rt(cri, "RemoveContainer", pb.RemoveContainerRequest(container_id=cid))
    rt(cri, "StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=sid))
    rt(cri, "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
    assert containers(cri) == {}


def test_a_pod_network_from_the_kubelets_cni_dir_gives_the_sandbox_its_ip(cri: Cri, image: tuple[Path, str],
                                                                         tmp_path: Path) -> None:
    (cri.cni_conf / "10-k8s.conflist").write_text(json.dumps({
        "cniVersion": "0.4.0", "name": "k8s-pods", "plugins": [
            {"type": "ptp", "ipam": {"type": "host-local", "subnet": "10.226.7.0/24",
                                     "dataDir": str(tmp_path / "ipam")}},
            {"type": "portmap", "capabilities": {"portMappings": True}}]}))
    config = sandbox_config(tmp_path, "netted", host_net=False)
    port = free_port()
    config.port_mappings.append(pb.PortMapping(protocol=pb.TCP, container_port=8080, host_port=port))  # every host address
    config.dns_config.CopyFrom(pb.DNSConfig(servers=["10.226.7.53"], searches=["svc.test"]))
    config.linux.sysctls["net.ipv4.ip_unprivileged_port_start"] = "0"
    sid = run_sandbox(cri, config)
    try:
        st = rt(cri, "PodSandboxStatus", pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status
        assert st.network.ip.startswith("10.226.7.") and st.linux.namespaces.options.network == pb.POD
        cid = create(cri, sid, config, image[1], "box", "sleep", "1000")
        rt(cri, "StartContainer", pb.StartContainerRequest(container_id=cid))
        r = rt(cri, "ExecSync", pb.ExecSyncRequest(container_id=cid, cmd=["ip", "-o", "-4", "addr"], timeout=30))
        assert st.network.ip in r.stdout.decode(), r
        resolv = rt(cri, "ExecSync", pb.ExecSyncRequest(container_id=cid, cmd=["cat", "/etc/resolv.conf"], timeout=30))
        assert b"nameserver 10.226.7.53" in resolv.stdout and b"search svc.test" in resolv.stdout, resolv
        port_start = rt(cri, "ExecSync", pb.ExecSyncRequest(
            container_id=cid, cmd=["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"], timeout=30))
        assert port_start.stdout == b"0\n"
        web = create(cri, sid, config, image[1], "web", "sh", "-c", HTTPD)
        rt(cri, "StartContainer", pb.StartContainerRequest(container_id=web))
        assert served(port) == b"served by web\n"
        # the pod init is SIGKILLed: StopPodSandbox still tears its network down
        pid = int((Path(Cli(cri.data_dir).pod_dir(sid)) / "pid").read_text())
        os.kill(pid, signal.SIGKILL)
        rt(cri, "StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=sid))
        assert not any(p.name == st.network.ip for p in (tmp_path / "ipam" / "k8s-pods").iterdir())
        rules = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
        assert f"--dport {port} " not in rules  # the port mapping went with the network
    finally:
        rt(cri, "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sid))


def test_a_container_over_its_memory_limit_is_oomkilled(cri: Cri, image: tuple[Path, str], tmp_path: Path) -> None:
    config = sandbox_config(tmp_path, "oom")
    sid = run_sandbox(cri, config)
    c = pb.ContainerConfig(metadata=pb.ContainerMetadata(name="hog"), image=pb.ImageSpec(image=image[1]),
                           command=["sh", "-c", 'a=$(head -c 134217728 /dev/zero | tr "\\0" x); echo survived'],
                           linux=pb.LinuxContainerConfig(resources=pb.LinuxContainerResources(
                               memory_limit_in_bytes=32 << 20)))
    cid = rt(cri, "CreateContainer", pb.CreateContainerRequest(pod_sandbox_id=sid, config=c,
                                                                sandbox_config=config)).container_id
    rt(cri, "StartContainer", pb.StartContainerRequest(container_id=cid))
    st = wait_state(cri, cid, pb.CONTAINER_EXITED, timeout=60)
    assert (st.exit_code, st.reason) == (137, "OOMKilled"), st
    rt(cri, "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
    assert rt(cri, "ListPodSandbox", pb.ListPodSandboxRequest()).items == []


def test_log_rotation_by_the_kubelet_then_reopen(cri: Cri, image: tuple[Path, str], tmp_path: Path) -> None:
    config = sandbox_config(tmp_path, "rotate")
    sid = run_sandbox(cri, config)
    try:
        cid = create(cri, sid, config, image[1], "ticker", "sh", "-c",
                     "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done")
        rt(cri, "StartContainer", pb.StartContainerRequest(container_id=cid))
        log = tmp_path / "logs" / "rotate" / "ticker" / "0.log"
        assert wait_for(lambda: log.exists() and "tick 3" in log.read_text())
        rotated = log.parent / "0.log.20260101-000000"
        log.rename(rotated)  # what the kubelet's container log manager does, then it asks to reopen
        rt(cri, "ReopenContainerLog", pb.ReopenContainerLogRequest(container_id=cid))
        assert not rotated.is_symlink() and "stdout F tick 3" in rotated.read_text()
        assert log.is_symlink()
        assert wait_for(lambda: log.read_text().count("tick") >= 3)
        first = int(log.read_text().splitlines()[0].rsplit(" ", 1)[1])
        assert first > 3  # the new file starts where the rotated one ended
        old_last = int(rotated.read_text().splitlines()[-1].rsplit(" ", 1)[1])
        assert first >= old_last
    finally:
        rt(cri, "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sid))


def wait_for(check: Any, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_container_whose_log_cannot_be_linked_is_not_left_half_made(cri: Cri, image: tuple[Path, str],
                                                                      tmp_path: Path) -> None:
    config = sandbox_config(tmp_path, "loglink")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "loglink").write_text("a file where the kubelet's log directory should be\n")
    sid = run_sandbox(cri, config)
    with pytest.raises(grpc.RpcError) as refused:
        create(cri, sid, config, image[1], "lost", "true")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == (f"container lost: cannot link its log at {tmp_path}/logs/loglink/lost/0.log: "
                                       "Not a directory")
    assert containers(cri) == {}
    config.log_directory = str(tmp_path / "logs" / "fixed")  # the same name again, once the log can be linked
    assert create(cri, sid, config, image[1], "lost", "true") == f"{sid}-lost"
    rt(cri, "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
    assert containers(cri) == {}


def test_a_user_the_image_lacks_is_refused_at_create_leaving_no_container(cri: Cri, image: tuple[Path, str],
                                                                         tmp_path: Path) -> None:
    """containerd refuses an unknown run_as_username (or image User) when the container is
    created; so does pyrkt, FAILED_PRECONDITION naming the user and the image. A user file
    mounted over the image's is only known at the start, which then fails the same way."""
    cli = Cli(cri.data_dir)
    assert cli("fetch", make_image(tmp_path / "ghostly", cmd=("true",), user="ghost")).code == 0
    names = dict(line.split() for line in cli("image", "list", "--full", "--no-legend", "--fields=id,name").out.splitlines())
    ghostly_id = next(i for i, n in names.items() if "ghostly" in n)
    config = sandbox_config(tmp_path, "users")
    sid = run_sandbox(cri, config)
    try:
        def container(name: str, image_id: str, **sc: Any) -> pb.ContainerConfig:
            return pb.ContainerConfig(metadata=pb.ContainerMetadata(name=name), image=pb.ImageSpec(image=image_id),
                                      command=["true"], log_path=f"{name}/0.log",
                                      linux=pb.LinuxContainerConfig(
                                          security_context=pb.LinuxContainerSecurityContext(**sc)))

        for c, user, img in ((container("named", image[1], run_as_username="nobody2"), "nobody2", names[image[1]]),
                             (container("imaged", ghostly_id), "ghost", names[ghostly_id])):
            with pytest.raises(grpc.RpcError) as refused:
                rt(cri, "CreateContainer", pb.CreateContainerRequest(pod_sandbox_id=sid, config=c,
                                                                     sandbox_config=config))
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert refused.value.details() == (f"app '{c.metadata.name}': user '{user}' not found in /etc/passwd "
                                               f"of image '{img.removesuffix(':latest')}'"), refused.value.details()
        assert containers(cri) == {}  # nothing added
        appsinfo = cri.data_dir / "pods" / "run" / sid / "appsinfo"
        assert not appsinfo.exists() or list(appsinfo.iterdir()) == []
        # the same user found: the same name is created and runs
        ok = container("named", image[1], run_as_username="app")
        cid = str(rt(cri, "CreateContainer", pb.CreateContainerRequest(pod_sandbox_id=sid, config=ok,
                                                                       sandbox_config=config)).container_id)
        rt(cri, "StartContainer", pb.StartContainerRequest(container_id=cid))
        assert wait_state(cri, cid, pb.CONTAINER_EXITED).exit_code == 0

        passwd = tmp_path / "passwd"
        passwd.write_text("root:x:0:0:root:/root:/bin/sh\n")
        over = container("over", image[1], run_as_username="app")
        over.mounts.append(pb.Mount(container_path="/etc/passwd", host_path=str(passwd), readonly=True))
        cid = str(rt(cri, "CreateContainer", pb.CreateContainerRequest(pod_sandbox_id=sid, config=over,
                                                                       sandbox_config=config)).container_id)
        with pytest.raises(grpc.RpcError) as at_start:  # a user error, not an INTERNAL one
            rt(cri, "StartContainer", pb.StartContainerRequest(container_id=cid))
        assert at_start.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "user 'app' not found in the image's /etc/passwd" in str(at_start.value.details())
    finally:
        rt(cri, "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sid))


def test_an_empty_id_is_invalid_naming_its_field_an_unknown_one_is_stopped_and_removed(cri: Cri) -> None:
    for method, request, field in [
            ("StopPodSandbox", pb.StopPodSandboxRequest(), "pod_sandbox_id"),
            ("RemovePodSandbox", pb.RemovePodSandboxRequest(), "pod_sandbox_id"),
            ("PodSandboxStatus", pb.PodSandboxStatusRequest(), "pod_sandbox_id"),
            ("PodSandboxStats", pb.PodSandboxStatsRequest(), "pod_sandbox_id"),
            ("PortForward", pb.PortForwardRequest(port=[80]), "pod_sandbox_id"),
            ("CreateContainer", pb.CreateContainerRequest(config=pb.ContainerConfig(
                metadata=pb.ContainerMetadata(name="x"))), "pod_sandbox_id"),
            ("StartContainer", pb.StartContainerRequest(), "container_id"),
            ("StopContainer", pb.StopContainerRequest(), "container_id"),
            ("RemoveContainer", pb.RemoveContainerRequest(), "container_id"),
            ("ContainerStatus", pb.ContainerStatusRequest(), "container_id"),
            ("ContainerStats", pb.ContainerStatsRequest(), "container_id"),
            ("UpdateContainerResources", pb.UpdateContainerResourcesRequest(), "container_id"),
            ("ReopenContainerLog", pb.ReopenContainerLogRequest(), "container_id"),
            ("ExecSync", pb.ExecSyncRequest(cmd=["true"]), "container_id"),
            ("Exec", pb.ExecRequest(cmd=["true"], stdout=True), "container_id"),
            ("Attach", pb.AttachRequest(stdout=True), "container_id")]:
        with pytest.raises(grpc.RpcError) as empty:
            rt(cri, method, request)
        assert (empty.value.code(), empty.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, f"{field} is empty"), method
    gone = "0" * 36
    rt(cri, "StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=gone))  # the CRI's idempotence: no error
    rt(cri, "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=gone))
    rt(cri, "RemoveContainer", pb.RemoveContainerRequest(container_id=gone + "-x"))
    with pytest.raises(grpc.RpcError) as unknown:
        rt(cri, "PodSandboxStatus", pb.PodSandboxStatusRequest(pod_sandbox_id=gone))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_container_events_follow_a_container_from_creation_to_deletion(cri: Cri, image: tuple[Path, str],
                                                                       tmp_path: Path) -> None:
    """GetContainerEvents (the kubelet's evented PLEG): created, started, stopped (its exit code
    in the statuses sent with the event), deleted; each with the sandbox's status."""
    stream = cri.client.channel.unary_stream("/runtime.v1.RuntimeService/GetContainerEvents",
                                             request_serializer=pb.GetEventsRequest.SerializeToString,
                                             response_deserializer=pb.ContainerEventResponse.FromString)
    call = stream(pb.GetEventsRequest(), timeout=120)
    config = sandbox_config(tmp_path, "events")
    sid = run_sandbox(cri, config)
    cid = create(cri, sid, config, image[1], "short", "sh", "-c", "sleep 1; exit 3")
    time.sleep(0.8)  # a sample between the creation and the start
    rt(cri, "StartContainer", pb.StartContainerRequest(container_id=cid))
    wait_state(cri, cid, pb.CONTAINER_EXITED)
    time.sleep(0.8)
    rt(cri, "RemoveContainer", pb.RemoveContainerRequest(container_id=cid))
    seen: list[pb.ContainerEventResponse] = []
    for event in call:
        if event.container_id == cid:
            seen.append(event)
        if event.container_event_type == pb.CONTAINER_DELETED_EVENT:
            break
    call.cancel()
    assert [e.container_event_type for e in seen] == [pb.CONTAINER_CREATED_EVENT, pb.CONTAINER_STARTED_EVENT,
                                                      pb.CONTAINER_STOPPED_EVENT, pb.CONTAINER_DELETED_EVENT]
    assert all(e.pod_sandbox_status.id == sid and e.created_at > 0 for e in seen)
    stopped = seen[2].containers_statuses
    assert [(s.id, s.state, s.exit_code) for s in stopped] == [(cid, pb.CONTAINER_EXITED, 3)]
    assert list(seen[3].containers_statuses) == []  # gone from the sandbox
    rt(cri, "StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=sid))
    rt(cri, "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
