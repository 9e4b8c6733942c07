"""CNI networking with the real plugins (Debian's containernetworking-plugins): the default
network, user networks from net.d, the CNI contract, failures, and teardown that leaves the
host as it was. Traffic stays between the host and netns/veths/bridges these tests make."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

from tests.integration.netenv import detached_pod, free_port, host_state, served
from tests.integration.pods import Cli, make_image

RECORDING_PLUGIN = """#!/bin/sh
# a test CNI plugin: records what it was given, answers with a fixed result
log={log}
{{ echo "COMMAND=$CNI_COMMAND"; echo "CONTAINERID=$CNI_CONTAINERID"; echo "NETNS=$CNI_NETNS";
   echo "IFNAME=$CNI_IFNAME"; echo "ARGS=$CNI_ARGS"; echo "PATH=$CNI_PATH"; echo "STDIN=$(cat)"; }} >> "$log"
if [ "$CNI_COMMAND" = ADD ]; then
  echo '{{"cniVersion":"0.4.0","ips":[{{"version":"4","address":"10.99.0.7/24"}}]}}'
fi
"""

FAILING_PLUGIN = """#!/bin/sh
cat >/dev/null
if [ "$CNI_COMMAND" = ADD ]; then
  echo '{"cniVersion":"0.4.0","code":11,"msg":"address pool exhausted","details":"test"}'
  exit 1
fi
"""


def test_default_network_gives_eth0_a_route_to_the_host_and_leaves_nothing(net_env: tuple[Cli, str, Path]) -> None:
    cli, image, _ = net_env
    before = host_state()
    r = cli("run", image, "--exec=/bin/sh", "--", "-c",
            "ip -4 -o addr show eth0; ip route | grep default; "
            "ping -c1 -W3 $(ip route | awk '/default/ {print $3}') >/dev/null && echo host-reachable")
    assert r.code == 0, r
    assert re.search(r"eth0\s+inet 172\.16\.28\.\d+/24", r.out), r.out
    assert "default via 172.16.28.1" in r.out and "host-reachable" in r.out
    assert host_state() == before


def test_list_and_status_show_the_pods_networks(net_env: tuple[Cli, str, Path]) -> None:
    cli, image, _ = net_env
    uuid = cli("run", "--detach", image, "--exec=/bin/sleep", "--", "1000").out.strip()
    try:
        st = cli.status(uuid)
        assert re.fullmatch(r"default:ip4=172\.16\.28\.\d+", st["networks"]), st
        listed = cli("list", "--no-legend").out
        assert st["networks"] in listed
        pods = json.loads(cli("list", "--format=json").out)
        [pod] = [p for p in pods if p["name"] == uuid]
        assert pod["networks"][0]["netName"] == "default" and pod["networks"][0]["ifName"] == "eth0"
        assert st["networks"].endswith(pod["networks"][0]["ip"])
    finally:
        cli("stop", uuid)
        cli("rm", uuid)


def test_two_pods_on_a_user_bridge_network_reach_each_other(net_env: tuple[Cli, str, Path]) -> None:
    cli, image, conf = net_env
    (conf / "net.d" / "10-testbr.conf").write_text(json.dumps({
        "cniVersion": "0.4.0", "name": "testbr", "type": "bridge", "bridge": "pyrkt-tbr0", "isGateway": True,
        "ipam": {"type": "host-local", "subnet": "10.222.33.0/24", "dataDir": str(conf / "ipam")}}))
    try:
        a = cli("run", "--detach", "--net=testbr", image, "--exec=/bin/sleep", "--", "1000").out.strip()
        ip_a = cli.status(a)["networks"].split("=")[1]
        r = cli("run", "--net=testbr", image, "--exec=/bin/sh", "--", "-c",
                f"ping -c1 -W3 {ip_a} >/dev/null && echo reached; ip -4 -o addr show eth0")
        assert r.code == 0 and "reached" in r.out and "10.222.33." in r.out, r
        cli("stop", a)
        cli("rm", a)
    finally:
        (conf / "net.d" / "10-testbr.conf").unlink()
        subprocess.run(["ip", "link", "del", "pyrkt-tbr0"], capture_output=True)


def test_cni_contract_env_stdin_and_del_on_exit(net_env: tuple[Cli, str, Path], tmp_path: Path) -> None:
    cli, image, conf = net_env
    log = tmp_path / "calls.log"
    plugin = conf / "net.d" / "recorder"
    plugin.write_text(RECORDING_PLUGIN.format(log=log))
    plugin.chmod(0o755)
    (conf / "net.d" / "20-rec.conf").write_text(json.dumps({"cniVersion": "0.4.0", "name": "rec", "type": "recorder"}))
    save = tmp_path / "uuid"
    try:
        r = cli("run", "--net=rec:IP=10.99.0.7;K=V", f"--uuid-file-save={save}", image, "--exec=/bin/true")
        assert r.code == 0, r
    finally:
        (conf / "net.d" / "20-rec.conf").unlink()
    uuid = save.read_text().strip()
    calls = log.read_text().split("COMMAND=")[1:]
    assert [c.splitlines()[0] for c in calls] == ["ADD", "DEL"]
    add = dict(line.split("=", 1) for line in ("COMMAND=" + calls[0]).splitlines())
    assert add["CONTAINERID"] == uuid and add["IFNAME"] == "eth0" and add["ARGS"] == "IP=10.99.0.7;K=V"
    assert add["NETNS"] == f"/run/pyrkt/netns/{uuid}"
    assert add["PATH"].split(":")[0] == str(conf / "net.d") and "/usr/lib/cni" in add["PATH"]
    stdin = json.loads(add["STDIN"])
    assert (stdin["name"], stdin["cniVersion"], stdin["type"]) == ("rec", "0.4.0", "recorder")
    deleted = json.loads(dict(line.split("=", 1) for line in ("COMMAND=" + calls[1]).splitlines())["STDIN"])
    assert deleted["prevResult"]["ips"][0]["address"] == "10.99.0.7/24"


def test_failing_plugin_is_one_line_naming_network_and_plugin(net_env: tuple[Cli, str, Path]) -> None:
    cli, image, conf = net_env
    plugin = conf / "net.d" / "failer"
    plugin.write_text(FAILING_PLUGIN)
    plugin.chmod(0o755)
    (conf / "net.d" / "30-fail.conf").write_text(json.dumps({"cniVersion": "0.4.0", "name": "failnet", "type": "failer"}))
    before = host_state()
    pods_before = sorted(os.listdir(cli.data_dir / "pods" / "run"))
    try:
        r = cli("run", "--net=failnet", image, "--exec=/bin/true")
    finally:
        (conf / "net.d" / "30-fail.conf").unlink()
    assert r.code == 254
    assert len(r.err.strip().splitlines()) == 1, r
    assert "failnet" in r.err and "failer" in r.err and "address pool exhausted" in r.err
    assert host_state() == before
    assert sorted(os.listdir(cli.data_dir / "pods" / "run")) == pods_before


def test_unknown_network_is_rkts_error(net_env: tuple[Cli, str, Path]) -> None:
    cli, image, _ = net_env
    r = cli("run", "--net=default,bogus", image, "--exec=/bin/true")
    assert r.code == 254 and "networks not found: bogus" in r.err, r


def test_sigkill_of_pod_init_then_gc_tears_the_network_down(net_env: tuple[Cli, str, Path]) -> None:
    cli, image, _ = net_env
    before = host_state()
    uuid = cli("run", "--detach", image, "--exec=/bin/sleep", "--", "1000").out.strip()
    os.kill(int(cli.status(uuid)["pid"]), 9)
    cli.wait_exited(uuid)
    assert host_state() != before  # the veth, reservation and netns are still there
    r = cli("gc", "--grace-period=0s")
    assert r.code == 0, r
    deadline = time.monotonic() + 5
    while host_state() != before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert host_state() == before


def test_port_forward_serves_httpd_in_a_pod_to_the_host(net_env: tuple[Cli, str, Path], tmp_path: Path) -> None:
    """The rkt demo's shape: a web server in a pod, fetched from the host through --port."""
    cli, _, _ = net_env
    src = make_image(tmp_path / "web", exposed_ports=("80/tcp",), cmd=("httpd", "-f", "-p", "80", "-h", "/www"),
                     extra_layers=({"www/index.html": b"hello from the pod\n"},))
    port = free_port()
    with detached_pod(cli, f"--port=80-tcp:127.0.0.1:{port}", src):
        assert served(port) == b"hello from the pod\n"


def test_port_errors(net_env: tuple[Cli, str, Path], tmp_path: Path) -> None:
    cli, image, _ = net_env
    r = cli("run", "--port=80-tcp:8080", image, "--exec=/bin/true")
    assert r.code == 254 and "no app has a port named '80-tcp'" in r.err, r
    src = make_image(tmp_path / "web", exposed_ports=("80/tcp",))
    r = cli("run", "--net=host", "--port=80-tcp:8080", src, "--exec=/bin/true")
    assert r.code == 254 and "--net=host" in r.err, r
    r = cli("run", "--port=80-tcp:notaport", src, "--exec=/bin/true")
    assert r.code == 254 and "NAME:[HOSTIP:]HOSTPORT" in r.err, r


def test_a_host_port_another_pod_forwards_is_refused(net_env: tuple[Cli, str, Path], tmp_path: Path) -> None:
    import socket

    cli, _, _ = net_env
    src = make_image(tmp_path / "web", exposed_ports=("80/tcp",), cmd=("httpd", "-f", "-p", "80"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    first = cli("run", "--detach", f"--port=80-tcp:{port}", src)
    assert first.code == 0, first
    uuid = first.out.strip()
    try:
        before = host_state()
        r = cli("run", "--detach", f"--port=80-tcp:{port}", src)
        assert r.code == 254 and len(r.err.strip().splitlines()) == 1, r
        assert f"{port}/tcp is already forwarded to pod {uuid}" in r.err and "'default'" in r.err and "portmap" in r.err
        assert host_state() == before
    finally:
        cli("stop", uuid)
        cli("rm", uuid)


def test_port_forward_is_reachable_from_another_host_through_the_hosts_address(
        net_env: tuple[Cli, str, Path], tmp_path: Path) -> None:
    """Another pod (a host of its own, in a netns this test made) reaches the forward through
    an address of the host's (its gateway, the host side of its veth), not only 127.0.0.1."""
    import socket

    cli, image, _ = net_env
    src = make_image(tmp_path / "web", exposed_ports=("80/tcp",), cmd=("httpd", "-f", "-p", "80", "-h", "/www"),
                     extra_layers=({"www/index.html": b"served\n"},))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uuid = cli("run", "--detach", f"--port=80-tcp:{port}", src).out.strip()
    try:
        r = cli("run", image, "--exec=/bin/sh", "--", "-c",
                f"gw=$(ip route | awk '/default/ {{print $3}}'); "
                f"for i in 1 2 3 4 5; do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 $gw {port} && break; sleep 0.3; done")
        assert r.code == 0 and r.out.startswith("HTTP/1.1 200") and r.out.endswith("\n\nserved\n"), r
    finally:
        cli("stop", uuid)
        cli("rm", uuid)


def test_bad_net_d_and_missing_plugin_are_one_line_errors_that_leave_nothing(net_env: tuple[Cli, str, Path]) -> None:
    cli, image, conf = net_env
    pods_before = run_pods(cli)
    before = host_state()
    (conf / "net.d" / "40-broken.conf").write_text("{not json")
    try:
        r = cli("run", "--net=default", image, "--exec=/bin/true")
        assert r.code == 254 and len(r.err.strip().splitlines()) == 1 and "40-broken.conf" in r.err, r
    finally:
        (conf / "net.d" / "40-broken.conf").unlink()
    (conf / "net.d" / "41-ghost.conf").write_text(json.dumps({"cniVersion": "1.0.0", "name": "ghost", "type": "nosuchplugin"}))
    try:
        r = cli("run", "--net=ghost", image, "--exec=/bin/true")
        assert r.code == 254 and len(r.err.strip().splitlines()) == 1, r
        assert "nosuchplugin" in r.err and "not found" in r.err
    finally:
        (conf / "net.d" / "41-ghost.conf").unlink()
    assert host_state() == before
    assert run_pods(cli) == pods_before
    assert os.listdir(cli.data_dir / "pods" / "exited-garbage") == []  # removed, not left for gc


def run_pods(cli: Cli) -> list[str]:
    d = cli.data_dir / "pods" / "run"
    return sorted(os.listdir(d)) if d.is_dir() else []


def test_a_cni_1_0_conflist_network_with_the_real_plugins(net_env: tuple[Cli, str, Path]) -> None:
    cli, image, conf = net_env
    (conf / "net.d" / "50-v1.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "v1net", "plugins": [
            {"type": "ptp", "ipam": {"type": "host-local", "subnet": "10.224.55.0/24", "dataDir": str(conf / "ipam")}},
            {"type": "tuning", "sysctl": {"net.core.somaxconn": "512"}}]}))
    before = host_state()
    try:
        r = cli("run", "--net=v1net", image, "--exec=/bin/sh", "--", "-c",
                "ip -4 -o addr show eth0; cat /proc/sys/net/core/somaxconn")
        assert r.code == 0, r
        assert "10.224.55." in r.out and r.out.splitlines()[-1] == "512"
    finally:
        (conf / "net.d" / "50-v1.conflist").unlink()
    assert host_state() == before


def test_default_restricted_is_host_only(net_env: tuple[Cli, str, Path]) -> None:
    cli, image, _ = net_env
    before = host_state()
    r = cli("run", "--net=default-restricted", image, "--exec=/bin/sh", "--", "-c",
            "ip -4 -o addr show eth0; ip route | grep -c default")
    assert "172.31." in r.out and r.out.splitlines()[1] == "0", r  # an address, no default route
    assert host_state() == before


def test_an_address_conflict_is_a_one_line_error_naming_network_and_plugin(net_env: tuple[Cli, str, Path]) -> None:
    cli, image, _ = net_env
    first = cli("run", "--detach", "--net=default:IP=172.16.28.200", image, "--exec=/bin/sleep", "--", "1000")
    assert first.code == 0, first
    uuid = first.out.strip()
    try:
        assert cli.status(uuid)["networks"] == "default:ip4=172.16.28.200"
        before = host_state()
        r = cli("run", "--net=default:IP=172.16.28.200", image, "--exec=/bin/true")
        assert r.code == 254 and len(r.err.strip().splitlines()) == 1, r
        assert "'default'" in r.err and "'ptp'" in r.err and "172.16.28.200" in r.err
        assert host_state() == before
    finally:
        cli("stop", uuid)
        cli("rm", uuid)
