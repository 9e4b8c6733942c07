"""A kubelet's PodSandboxConfig and ContainerConfig onto pyrkt's pod and app requests: what is
mapped, what is refused (INVALID_ARGUMENT to the kubelet) and what is named in a warning."""

from __future__ import annotations

import json

import pytest

from pyrkt.api.cri import mapping
from pyrkt.api.proto import cri_pb2 as pb
from pyrkt.errors import UsageError
from pyrkt.model.abi import PRIVILEGED_ANNOTATION
from pyrkt.model.isolators import CPU, CPU_SHARES, MEMORY, OOM_SCORE_ADJ
from pyrkt.stage1 import isolators as privileges
from pyrkt.stage1.isolators import NO_NEW_PRIVS

NS = pb.NamespaceOption


def sandbox(**linux: object) -> pb.PodSandboxConfig:
    ctx = pb.LinuxSandboxSecurityContext(namespace_options=linux.pop("ns", NS(network=pb.POD, pid=pb.POD, ipc=pb.POD)))
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name="web", uid="u-1", namespace="default", attempt=0),
        hostname="web-0", log_directory="/var/log/pods/default_web_u-1",
        dns_config=pb.DNSConfig(servers=["10.96.0.10"], searches=["default.svc.cluster.local"], options=["ndots:5"]),
        port_mappings=[pb.PortMapping(protocol=pb.TCP, container_port=80, host_port=8080, host_ip="127.0.0.1"),
                       pb.PortMapping(protocol=pb.UDP, container_port=53, host_port=0)],
        labels={"app": "web", "io.kubernetes.pod.name": "web"}, annotations={"kubernetes.io/config.seen": "now"},
        linux=pb.LinuxPodSandboxConfig(security_context=ctx, **linux))  # type: ignore[arg-type]


def container(**kw: object) -> pb.ContainerConfig:
    linux = kw.pop("linux", security(seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault)))
    return pb.ContainerConfig(metadata=pb.ContainerMetadata(name="nginx"), image=pb.ImageSpec(image="sha256:" + "a" * 64),
                              linux=linux, **kw)  # type: ignore[arg-type]


def security(**kw: object) -> pb.LinuxContainerConfig:
    return pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(**kw))  # type: ignore[arg-type]


def test_sandbox_hostname_dns_ports_labels_annotations_and_sysctls() -> None:
    m = mapping.sandbox_request(sandbox(sysctls={"net.ipv4.ip_unprivileged_port_start": "0"}, cgroup_parent=""))
    assert (m.run.hostname, m.run.net, m.run.ipc) == ("web-0", ["default"], "private")
    assert (m.run.dns, m.run.dns_search, m.run.dns_opt) == (["10.96.0.10"], ["default.svc.cluster.local"], ["ndots:5"])
    assert m.ports == (mapping.HostPort("tcp", 80, 8080, "127.0.0.1"),)  # no host port: nothing forwarded
    assert m.pod.user_labels == [("app", "web"), ("io.kubernetes.pod.name", "web")]
    annotations = dict(m.pod.user_annotations)
    assert annotations["kubernetes.io/config.seen"] == "now"
    assert annotations[mapping.CONTAINER_TYPE] == "sandbox"
    assert (annotations[mapping.SANDBOX_NAME], annotations[mapping.SANDBOX_NAMESPACE],
            annotations[mapping.SANDBOX_UID]) == ("web", "default", "u-1")
    assert m.pod.sysctl == m.run.sysctl == ["net.ipv4.ip_unprivileged_port_start=0"]
    assert m.log_directory == "/var/log/pods/default_web_u-1" and m.warnings == ()


def test_host_network_ipc_and_pid_map_to_net_host_ipc_parent_and_pid_host() -> None:
    m = mapping.sandbox_request(sandbox(ns=NS(network=pb.NODE, pid=pb.POD, ipc=pb.NODE)))
    assert (m.run.net, m.run.ipc, m.run.pid, m.ports) == (["host"], "parent", "", ())
    assert any("port mappings of a host-network sandbox" in w for w in m.warnings)
    m = mapping.sandbox_request(sandbox(ns=NS(network=pb.POD, pid=pb.NODE, ipc=pb.POD)))
    assert (m.run.net, m.run.ipc, m.run.pid) == (["default"], "private", "host")
    m = mapping.sandbox_request(sandbox(ns=NS(network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD)))
    assert any("share the pod's PID namespace" in w for w in m.warnings)


def test_sandbox_refusals_and_warnings_name_what_is_not_honoured() -> None:
    with pytest.raises(UsageError, match="invalid hostname"):
        mapping.sandbox_request(pb.PodSandboxConfig(metadata=pb.PodSandboxMetadata(name="web"), hostname="not_a host"))
    with pytest.raises(UsageError):
        mapping.sandbox_request(sandbox(sysctls={"kernel.panic": "1"}))  # a host-wide sysctl
    with pytest.raises(UsageError, match="user namespace mode POD"):
        ns = NS(userns_options=pb.UserNamespace(mode=pb.POD))
        mapping.sandbox_request(sandbox(ns=ns))
    with pytest.raises(UsageError, match="cgroup parent kubepods.slice: a systemd slice; pyrkt's cgroup driver"):
        mapping.sandbox_request(sandbox(cgroup_parent="kubepods.slice"))


def test_the_sandboxs_cgroup_parent_is_the_pods_without_a_warning() -> None:
    m = mapping.sandbox_request(sandbox(cgroup_parent="/kubepods/besteffort/podu-1"))
    assert m.pod.cgroup_parent == m.cgroup_parent == "kubepods/besteffort/podu-1"
    assert not [w for w in m.warnings if "cgroup" in w]


def test_command_and_args_env_workdir_labels_and_log_path() -> None:
    c = container(command=["/bin/sh", "-c"], args=["echo hi"], working_dir="/srv",
                  envs=[pb.KeyValue(key="A", value=b"1"), pb.KeyValue(key="B", value=b"x=y")],
                  labels={"io.kubernetes.container.name": "nginx"}, annotations={"a": "b"}, log_path="nginx/0.log")
    m = mapping.container_request(c, sandbox(), sandbox_id="abc")
    app = m.app
    assert (app.image, app.name, app.exec, app.args) == ("sha256:" + "a" * 64, "nginx", "/bin/sh", ["-c", "echo hi"])
    assert (app.working_dir, app.environment) == ("/srv", ["A=1", "B=x=y"])
    assert app.user_labels == [("io.kubernetes.container.name", "nginx")]
    ann = dict(app.user_annotations)
    assert (ann["a"], ann[mapping.CONTAINER_TYPE], ann[mapping.SANDBOX_ID]) == ("b", "container", "abc")
    assert m.log_path == "/var/log/pods/default_web_u-1/nginx/0.log" and m.warnings == ()


def test_args_without_command_follow_the_image_entrypoint() -> None:
    m = mapping.container_request(container(args=["-g", "daemon off;"]), sandbox(), entrypoint=["nginx"])
    assert (m.app.exec, m.app.args) == ("nginx", ["-g", "daemon off;"])
    with pytest.raises(UsageError, match="entrypoint"):
        mapping.container_request(container(args=["x"]), sandbox())
    m = mapping.container_request(container(), sandbox())
    assert (m.app.exec, m.app.args) == ("", [])  # the image's own command


def test_mounts_become_host_volumes_with_their_propagation_and_unsupported_ones_are_refused() -> None:
    c = container(mounts=[pb.Mount(container_path="/data", host_path="/srv/data", readonly=True),
                          pb.Mount(container_path="/cfg", host_path="/etc/cfg",
                                   propagation=pb.PROPAGATION_HOST_TO_CONTAINER),
                          pb.Mount(container_path="/csi", host_path="/var/lib/csi",
                                   propagation=pb.PROPAGATION_BIDIRECTIONAL)])
    m = mapping.container_request(c, sandbox())
    assert m.volumes == ("nginx-m0,kind=host,source=/srv/data,readOnly=true",
                         "nginx-m1,kind=host,source=/etc/cfg,readOnly=false,propagation=rslave",
                         "nginx-m2,kind=host,source=/var/lib/csi,readOnly=false,propagation=rshared")
    assert m.app.mounts == ["volume=nginx-m0,target=/data", "volume=nginx-m1,target=/cfg",
                            "volume=nginx-m2,target=/csi"]
    assert m.warnings == ()  # containerd asks no privileged container for Bidirectional: the API server does
    for bad, match in ((pb.Mount(container_path="/x", host_path="rel"), "must be absolute"),
                       (pb.Mount(container_path="/x", host_path="/y", mount_options=["noexec"]), "mount options"),
                       (pb.Mount(container_path="/x", image=pb.ImageSpec(image="busybox")), "image volumes")):
        with pytest.raises(UsageError, match=match):
            mapping.container_request(container(mounts=[bad]), sandbox())


def test_devices_become_device_flags_at_their_container_path() -> None:
    from pyrkt.model.devices import parse_device_flag

    m = mapping.container_request(container(devices=[
        pb.Device(host_path="/dev/fuse", container_path="/dev/fuse", permissions="rw"),
        pb.Device(host_path="/dev/sdc", container_path="/dev/xvdc", permissions="r"),
        pb.Device(host_path="/dev/net/tun")]), sandbox())
    assert m.devices == ("/dev/fuse:rw", "/dev/sdc:/dev/xvdc:r", "/dev/net/tun:rwm")
    assert [parse_device_flag(d) for d in m.devices] == [
        ("/dev/fuse", "", "rw"), ("/dev/sdc", "/dev/xvdc", "r"), ("/dev/net/tun", "", "rwm")]
    for bad, match in ((pb.Device(host_path="/dev/fuse", permissions="rx"), "permissions 'rx'"),
                       (pb.Device(host_path="/dev/fuse", permissions="/x"), "permissions '/x'"),
                       (pb.Device(host_path="/dev/fuse", container_path="/dev/a:b"), "has a colon")):
        with pytest.raises(UsageError, match=match):
            mapping.container_request(container(devices=[bad]), sandbox())


def test_resources_become_pyrkt_isolators() -> None:
    r = pb.LinuxContainerResources(cpu_shares=512, cpu_quota=50_000, cpu_period=100_000,
                                   memory_limit_in_bytes=128 << 20, oom_score_adj=-997, cpuset_cpus="0-1")
    m = mapping.container_request(container(linux=pb.LinuxContainerConfig(resources=r)), sandbox())
    assert dict(m.app.isolators) == {CPU_SHARES: 512, CPU: {"request": "500m", "limit": "500m"},
                                     MEMORY: {"request": str(128 << 20), "limit": str(128 << 20)},
                                     OOM_SCORE_ADJ: -997}
    assert [w for w in m.warnings if "cpuset CPUs 0-1 are not applied" in w]
    with pytest.raises(UsageError, match="too low"):
        mapping.container_request(container(linux=pb.LinuxContainerConfig(
            resources=pb.LinuxContainerResources(memory_limit_in_bytes=100))), sandbox())


def test_user_groups_read_only_root_and_no_new_privs() -> None:
    m = mapping.container_request(container(linux=security(run_as_user=pb.Int64Value(value=1000),
                                                            run_as_group=pb.Int64Value(value=0),
                                                            supplemental_groups=[10, 20], readonly_rootfs=True,
                                                            no_new_privs=True)), sandbox())
    app = m.app
    assert (app.user, app.group, app.supplementary_gids, app.readonly_rootfs) == ("1000", "0", "10,20", True)
    assert (NO_NEW_PRIVS, True) in app.isolators
    m = mapping.container_request(container(linux=security(run_as_username="nginx")), sandbox())
    assert (m.app.user, m.app.group) == ("nginx", "")


def privileged_sandbox() -> pb.PodSandboxConfig:
    config = sandbox()
    config.linux.security_context.privileged = True
    return config


def test_a_privileged_container_needs_a_privileged_sandbox_and_is_marked_privileged_alone() -> None:
    with pytest.raises(UsageError, match="container nginx: a privileged container needs a privileged sandbox"):
        mapping.container_request(container(linux=security(privileged=True)), sandbox())
    assert mapping.sandbox_request(privileged_sandbox()).privileged
    m = mapping.container_request(container(linux=security(
        privileged=True, capabilities=pb.Capability(drop_capabilities=["KILL"]),
        seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault))), privileged_sandbox())
    assert (PRIVILEGED_ANNOTATION, "true") in m.app.annotations
    assert (m.app.caps_retain, m.app.caps_remove, m.app.seccomp) == ("", "", "")
    assert "container nginx: capabilities dropped from a privileged container are not dropped: it has every " \
           "capability" in m.warnings
    plain = mapping.container_request(container(), privileged_sandbox())  # the sandbox allows, it does not make
    assert PRIVILEGED_ANNOTATION not in dict(plain.app.annotations)


def test_a_containers_namespaces_are_its_sandboxs() -> None:
    host = NS(network=pb.NODE, pid=pb.NODE, ipc=pb.NODE)
    m = mapping.container_request(container(linux=security(namespace_options=host)), sandbox(ns=host))
    assert m.app.name == "nginx"
    mapping.container_request(container(linux=security(namespace_options=NS(pid=pb.CONTAINER))), sandbox())
    with pytest.raises(UsageError, match="container nginx: the host's PID namespace .NODE. in a sandbox that has "
                                         "its own: a container shares its sandbox's"):
        mapping.container_request(container(linux=security(namespace_options=NS(pid=pb.NODE))), sandbox())
    with pytest.raises(UsageError, match="the host's network namespace"):
        mapping.container_request(container(linux=security(namespace_options=NS(network=pb.NODE))), sandbox())
    with pytest.raises(UsageError, match="PID namespace mode TARGET"):
        mapping.container_request(container(linux=security(namespace_options=NS(pid=pb.TARGET))), sandbox())


def test_capabilities_add_and_drop_against_appcs_default_set() -> None:
    assert mapping.capabilities("c", pb.Capability()) == ("", "")
    assert mapping.capabilities("c", pb.Capability(drop_capabilities=["NET_RAW", "MKNOD"])) == (
        "", "CAP_MKNOD,CAP_NET_RAW")
    retain, remove = mapping.capabilities("c", pb.Capability(add_capabilities=["NET_ADMIN"], drop_capabilities=["KILL"]))
    assert remove == "" and "CAP_NET_ADMIN" in retain.split(",") and "CAP_KILL" not in retain.split(",")
    from pyrkt.kernel.caps import DEFAULT_CAPS, name

    default = sorted(name(c) for c in DEFAULT_CAPS)
    assert mapping.capabilities("c", pb.Capability(drop_capabilities=["ALL"])) == ("", ",".join(default))
    assert mapping.capabilities("c", pb.Capability(drop_capabilities=["ALL"], add_capabilities=["chown"])) == (
        "", ",".join(c for c in default if c != "CAP_CHOWN"))
    with pytest.raises(UsageError, match="unknown capability 'BOGUS'"):
        mapping.capabilities("c", pb.Capability(add_capabilities=["BOGUS"]))


def test_seccomp_runtime_default_unconfined_and_localhost_profiles() -> None:
    default = pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault)
    m = mapping.container_request(container(linux=security(seccomp=default)), sandbox())
    assert m.app.seccomp == "" and m.warnings == ()
    m = mapping.container_request(container(linux=security(
        seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.Unconfined))), sandbox())
    assert m.app.seccomp == "mode=retain,@appc.io/all" and m.warnings == ()
    unconfined = privileges.seccomp_filter((privileges.seccomp_isolator(m.app.seccomp),))
    assert unconfined is not None and unconfined.mode == "none"  # stage1 gives it no filter

    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                                                              {"names": ["exit_group"], "action": "SCMP_ACT_ALLOW"}]}
    local = pb.SecurityProfile(profile_type=pb.SecurityProfile.Localhost, localhost_ref="/etc/seccomp/p.json")
    m = mapping.container_request(container(linux=security(seccomp=local)), sandbox(),
                                  read_profile=lambda path: json.dumps(profile).encode())
    assert m.app.seccomp == "mode=retain,read,write,exit_group"
    deny = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["ptrace"], "action": "SCMP_ACT_ERRNO"}]}
    assert mapping.seccomp_from_profile(deny, "p") == "mode=remove,ptrace"
    with pytest.raises(UsageError, match="conditional rules"):
        mapping.seccomp_from_profile({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0}]}]}, "p")
    with pytest.raises(UsageError, match="default action"):
        mapping.seccomp_from_profile({"defaultAction": "SCMP_ACT_KILL"}, "p")


def test_kubelets_default_masked_paths_pyrkt_does_not_mask_are_named() -> None:
    masked, readonly = mapping.not_protected(["/proc/kcore", "/proc/asound"], ["/proc/sys", "/proc/bus"])
    assert (masked, readonly) == (["/proc/asound"], [])
    m = mapping.container_request(container(linux=security(masked_paths=["/proc/asound"])), sandbox())
    assert [w for w in m.warnings if "not masked /proc/asound" in w]


def test_a_sandbox_without_metadata_is_refused() -> None:
    with pytest.raises(UsageError, match=r"pod sandbox: no metadata name given"):
        mapping.sandbox_request(pb.PodSandboxConfig())


@pytest.mark.parametrize("log_path", ["/etc/evil.log", "../../etc/evil.log", "a/../../evil.log", ".", "a/.."])
def test_a_log_path_outside_the_sandboxs_log_directory_is_refused(log_path: str) -> None:
    with pytest.raises(UsageError, match=r"container nginx: log path .* is not a file path inside the sandbox's "
                                         "log directory"):
        mapping.container_request(container(log_path=log_path), sandbox())


def test_a_log_path_is_normalised_inside_the_log_directory() -> None:
    m = mapping.container_request(container(log_path="nginx//./0.log"), sandbox())
    assert m.log_path == "/var/log/pods/default_web_u-1/nginx/0.log"


def test_a_container_name_longer_than_a_dns_label_is_refused() -> None:
    cfg = container()
    cfg.metadata.name = "x" * 64
    with pytest.raises(UsageError, match=r"a container name is 63 characters at most"):
        mapping.container_request(cfg, sandbox())
    cfg.metadata.name = "x" * 63
    assert mapping.container_request(cfg, sandbox()).app.name == "x" * 63


@pytest.mark.parametrize(("field", "value", "what"), [
    ("memory_limit_in_bytes", -5, "memory limit -5 is negative"), ("cpu_shares", -1, "CPU shares -1 is negative"),
    ("cpu_period", -1, "CPU period -1 is negative"), ("cpu_quota", -7, r"CPU quota -7 is negative \(-1 is no limit\)"),
    ("memory_swap_limit_in_bytes", -2, "swap limit -2 is negative")])
def test_negative_resources_are_refused(field: str, value: int, what: str) -> None:
    with pytest.raises(UsageError, match=f"container nginx: {what}"):
        mapping.resources("nginx", pb.LinuxContainerResources(**{field: value}), [])  # type: ignore[arg-type]


def test_minus_one_is_no_cpu_quota_and_no_swap_limit() -> None:
    warnings: list[str] = []
    assert mapping.resources("nginx", pb.LinuxContainerResources(cpu_quota=-1, memory_swap_limit_in_bytes=-1),
                             warnings) == []


def test_a_relative_working_directory_is_refused() -> None:
    with pytest.raises(UsageError, match=r"container nginx: working directory 'srv' is not absolute"):
        mapping.container_request(container(working_dir="srv"), sandbox())
    assert mapping.container_request(container(working_dir="/srv"), sandbox()).app.working_dir == "/srv"


@pytest.mark.parametrize(("change", "what"), [
    ({"command": ["echo", "a\0b"]}, "command 'a\\\\x00b'"), ({"working_dir": "/a\0"}, "working directory"),
    ({"log_path": "a\0.log"}, "log path"), ({"envs": [pb.KeyValue(key="A\0", value=b"x")]}, "environment variable"),
    ({"envs": [pb.KeyValue(key="A", value=b"x\0")]}, "environment variable 'A'"),
    ({"devices": [pb.Device(host_path="/dev/null\0")]}, "device")])
def test_a_nul_character_is_refused_when_the_container_is_created(change: dict[str, object], what: str) -> None:
    with pytest.raises(UsageError, match=f"container nginx: {what}.* has a NUL character"):
        mapping.container_request(container(**change), sandbox())


@pytest.mark.parametrize("paths", [("/m\0", "/tmp"), ("/m", "/tmp,kind=empty"), ("/m,readOnly=true", "/tmp")])
def test_a_mount_path_with_a_comma_or_nul_is_refused(paths: tuple[str, str]) -> None:
    mount = pb.Mount(container_path=paths[0], host_path=paths[1])
    with pytest.raises(UsageError, match=r"has a comma or NUL character, which pyrkt's volumes cannot carry"):
        mapping.container_request(container(mounts=[mount]), sandbox())


def test_a_relative_sandbox_log_directory_is_refused() -> None:
    config = sandbox()
    config.log_directory = "var/log/pods"
    with pytest.raises(UsageError, match=r"pod sandbox web: log directory 'var/log/pods' is not an absolute path"):
        mapping.sandbox_request(config)


def test_a_negative_user_or_group_id_is_refused() -> None:
    with pytest.raises(UsageError, match=r"container nginx: run as user -5: ids are not negative"):
        mapping.container_request(container(linux=security(run_as_user=pb.Int64Value(value=-5))), sandbox())
    with pytest.raises(UsageError, match=r"container nginx: run as group -1: ids are not negative"):
        mapping.container_request(container(linux=security(run_as_group=pb.Int64Value(value=-1))), sandbox())
