"""--sysctl: which keys a pod may set, their spellings, and the values it may give them."""

from __future__ import annotations

import pytest

from pyrkt.errors import UsageError
from pyrkt.model import sysctl
from pyrkt.model.pod import PodManifest


@pytest.mark.parametrize("item, key, path, namespace", [
    ("net.ipv4.ip_unprivileged_port_start=0", "net.ipv4.ip_unprivileged_port_start",
     "net/ipv4/ip_unprivileged_port_start", "net"),
    ("net/ipv4/ip_unprivileged_port_start=0", "net.ipv4.ip_unprivileged_port_start",
     "net/ipv4/ip_unprivileged_port_start", "net"),
    # sysctl(8): with dots, "/" stands for a dot inside a name; with slashes, dots are literal
    ("net.ipv4.conf.eth0/100.rp_filter=0", "net.ipv4.conf.eth0/100.rp_filter", "net/ipv4/conf/eth0.100/rp_filter",
     "net"),
    ("net/ipv4/conf/eth0.100/rp_filter=0", "net.ipv4.conf.eth0/100.rp_filter", "net/ipv4/conf/eth0.100/rp_filter",
     "net"),
    ("kernel.shmmax=1000", "kernel.shmmax", "kernel/shmmax", "ipc"),
    ("kernel.sem=250 32000 32 128", "kernel.sem", "kernel/sem", "ipc"),
    ("kernel/shm_rmid_forced=1", "kernel.shm_rmid_forced", "kernel/shm_rmid_forced", "ipc"),
    ("fs.mqueue.queues_max=10", "fs.mqueue.queues_max", "fs/mqueue/queues_max", "ipc"),
])
def test_namespaced_keys_are_accepted_in_both_spellings(item: str, key: str, path: str, namespace: str) -> None:
    s = sysctl.parse(item)
    assert (s.key, s.path, s.namespace) == (key, path, namespace)
    assert s.value == item.split("=", 1)[1]


@pytest.mark.parametrize("item", [
    "vm.swappiness=61", "kernel.randomize_va_space=0", "vm.overcommit_memory=1", "kernel.panic_on_oops=1",
    "fs.file-max=1", "kernel.msgmax.x=1", "fs.mqueue=1", "fs.mqueue.a.b=1", "kernel=1", "kernel.core_pattern=|/x",
    "fs/mqueue.queues_max=1",  # slash form: one name "mqueue.queues_max", not fs.mqueue.*
])
def test_keys_of_host_wide_sysctls_are_refused_by_name(item: str) -> None:
    key = item.split("=", 1)[0]
    with pytest.raises(UsageError, match="not a sysctl of the pod's own namespaces") as e:
        sysctl.parse(item)
    assert len(str(e.value).splitlines()) == 1
    assert sysctl.components(key)[0] in str(e.value)


@pytest.mark.parametrize("item", ["kernel.hostname=x", "kernel/domainname=x"])
def test_hostname_and_domainname_point_at_hostname_flag(item: str) -> None:
    with pytest.raises(UsageError, match="--hostname"):
        sysctl.parse(item)


@pytest.mark.parametrize("item", [
    "net/../vm/swappiness=1", "net.ipv4./..vm=1", "net..ipv4.ip_forward=1", "/proc/sys/net/ipv4/ip_forward=1",
    "net.ipv4.ip_forward.=1", "net.ipv4.conf.//.forwarding=1", "net.ipv4 .ip_forward=1", "net.ipv4.ip*=1",
    "net/ipv4/conf/../../../vm/swappiness=1", "net.ipv4.conf.a\nb.forwarding=1", "=1", "net.ipv4.ip_forward",
    "",
])
def test_malformed_keys_are_refused(item: str) -> None:
    with pytest.raises(UsageError, match="invalid --sysctl") as e:
        sysctl.parse(item)
    assert len(str(e.value).splitlines()) == 1


@pytest.mark.parametrize("value", ["", "1\n2", "1\r", "\x1b[31m", "a\x00b", "x" * 4097])
def test_values_must_be_one_printable_line(value: str) -> None:
    with pytest.raises(UsageError, match="invalid --sysctl value") as e:
        sysctl.parse("net.ipv4.ip_forward=" + value)
    assert len(str(e.value).splitlines()) == 1


@pytest.mark.parametrize("item", [
    "kernel.shmmax=18446744073709551615", "kernel.shmmni=0x10", "kernel.msgmax=010", "kernel.shm_rmid_forced= 1\t",
    "kernel.sem=250\t32000 32  128", "net.ipv4.ip_local_port_range=1024 65000", "net.ipv4.ping_group_range=0 -1",
    "net.ipv4.tcp_rmem=4096 131072 6291456", "net.ipv4.conf.eth0/100.rp_filter=2", "net.ipv6.conf.all.forwarding=1",
    "net.core.somaxconn=4096", "net.unix.max_dgram_qlen=10", "fs.mqueue.msg_max=-1", "net.ipv4.neigh.default.gc_stale_time=60",
    # strings where the kernel takes strings, and subtrees whose format pyrkt leaves to the kernel
    "net.ipv4.tcp_congestion_control=reno", "net.ipv4.ip_local_reserved_ports=8080,9000-9100",
    "net.ipv6.conf.eth0.stable_secret=2001:db8::1", "net.ipv6.icmp.ratemask=0-1,3", "net.netfilter.nf_log.2=NONE",
    "net.ipv4.vs.sync_threshold=3 50", "net.sctp.sctp_hmac_alg=sha1",
])
def test_values_in_the_kernels_format_are_kept(item: str) -> None:
    key, _, value = item.partition("=")
    assert sysctl.parse(item).value == value


@pytest.mark.parametrize("item, want", [
    ("kernel.shmmax=abc", "an integer"), ("kernel.shmmax=1.5", "an integer"), ("kernel.shmmax=1 2", "an integer"),
    ("kernel.shmmni=09", "an integer"), ("kernel.msgmax=0x", "an integer"), ("kernel.msgmax=+1", "an integer"),
    ("kernel.msgmax=18446744073709551616", "an integer"), ("fs.mqueue.queues_max=ten", "an integer"),
    ("net.ipv4.ip_unprivileged_port_start=many", "an integer"), ("net.ipv4.conf.all.rp_filter=yes", "an integer"),
    ("net.core.somaxconn=1k", "an integer"), ("net.ipv4.ip_forward=\u00a01", "an integer"),
    ("kernel.sem=250 32000 32", "4 integers separated by spaces"),
    ("kernel.sem=250 32000 32 128 1", "4 integers separated by spaces"),
    ("net.ipv4.ip_local_port_range=1024", "2 integers separated by spaces"),
    ("net.ipv4.ip_local_port_range=1024-65000", "2 integers separated by spaces"),
    ("net.ipv4.tcp_wmem=4096 x 1", "3 integers separated by spaces"),
])
def test_values_the_kernel_would_refuse_are_refused_naming_the_key(item: str, want: str) -> None:
    key, _, value = item.partition("=")
    with pytest.raises(UsageError) as e:
        sysctl.parse(item)
    assert str(e.value) == f"invalid --sysctl value {value!r} for {key}: want {want}"
    with pytest.raises(UsageError, match=f"for {key}: want"):  # and so are a runtime config's (run-prepared)
        sysctl.check_namespaces({key: value}, host_net=False, host_ipc=False)


def test_later_values_win_and_values_may_hold_equals_signs() -> None:
    got = sysctl.parse_all(["net.ipv4.ip_forward=1", "net/ipv4/ip_forward=0", "net.ipv4.tcp_congestion_control=a=b"])
    assert got == {"net.ipv4.ip_forward": "0", "net.ipv4.tcp_congestion_control": "a=b"}


def test_a_pod_sharing_a_namespace_with_the_host_may_not_set_its_sysctls() -> None:
    both = {"net.ipv4.ip_forward": "1", "kernel.shmmni": "100"}
    assert [s.namespace for s in sysctl.check_namespaces(both, host_net=False, host_ipc=False)] == ["net", "ipc"]
    with pytest.raises(UsageError, match=r"net.ipv4.ip_forward: .*--net=host"):
        sysctl.check_namespaces(both, host_net=True, host_ipc=False)
    with pytest.raises(UsageError, match=r"kernel.shmmni: .*--ipc=parent"):
        sysctl.check_namespaces(both, host_net=False, host_ipc=True)


def test_runtime_config_values_are_checked_again() -> None:
    with pytest.raises(UsageError, match="vm.swappiness"):
        sysctl.check_namespaces({"vm.swappiness": "1"}, host_net=False, host_ipc=False)


def test_pod_manifest_keeps_sysctls_as_the_appc_pod_isolator() -> None:
    m = PodManifest(apps=(), sysctls=(("net.ipv4.ip_forward", "1"),))
    d = m.to_json()
    assert d["isolators"] == [{"name": "os/unix/sysctl", "value": {"net.ipv4.ip_forward": "1"}}]
    assert PodManifest.from_json(d).sysctls == m.sysctls
    assert PodManifest(apps=()).to_json()["isolators"] == []
