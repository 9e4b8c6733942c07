"""rkt's configuration files, used as a rkt user writes them: a net.d conf in rkt's (Go's) key
casing, `pyrkt config`, paths.d giving the data dir when --dir is absent, and stage1.d choosing
the default flavor. Network traffic stays on a bridge these tests create and remove."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.integration.pods import PYRKT, Cli, make_image, mounts_under

BRIDGE = "pyrkt-cbr0"

BYTE_RECORDER = """#!/bin/sh
# a test CNI plugin: keeps what it read on stdin per command, answers ADD with a fixed result
cat > {out}/$CNI_COMMAND.stdin
if [ "$CNI_COMMAND" = ADD ]; then
  echo '{{"cniVersion":"0.3.1","ips":[{{"version":"4","address":"10.99.0.9/24"}}]}}'
fi
"""


def rkt_cased_bridge(conf: Path) -> str:
    """A bridge network as rkt's docs and users spell it (Go reads keys without regard to case)."""
    return ('{\n'
            '    "Name": "rktbridge",\n'
            '    "CNIVersion": "0.3.1",\n'
            '    "Type": "bridge",\n'
            f'    "Bridge": "{BRIDGE}",\n'
            '    "IsGateway": true,\n'
            '    "IPAM": {\n'
            '        "Type": "host-local",\n'
            '        "Subnet": "10.222.44.0/24",\n'
            f'        "DataDir": "{conf / "ipam"}"\n'
            '    }\n'
            '}\n')


def test_a_net_d_conf_in_rkts_casing_runs_a_pod_on_its_bridge(net_env: tuple[Cli, str, Path]) -> None:
    cli, image, conf = net_env
    (conf / "net.d" / "30-rktbridge.conf").write_text(rkt_cased_bridge(conf))
    try:
        r = cli("run", "--net=rktbridge", image, "--exec=/bin/sh", "--", "-c",
                "ip -4 -o addr show eth0; ping -c1 -W3 10.222.44.1 >/dev/null && echo gateway-reachable")
        assert r.code == 0, r
        assert "inet 10.222.44." in r.out and "gateway-reachable" in r.out, r
        # torn down with the pod: no veth left on the bridge, no address left reserved
        assert subprocess.run(["ip", "-o", "link", "show", "master", BRIDGE], capture_output=True, text=True).stdout == ""
        assert [p.name for p in (conf / "ipam" / "rktbridge").iterdir() if p.name[0].isdigit()] == []
    finally:
        (conf / "net.d" / "30-rktbridge.conf").unlink()
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)


def test_a_plain_conf_reaches_its_plugin_as_written(net_env: tuple[Cli, str, Path], tmp_path: Path) -> None:
    cli, image, conf = net_env
    plugin = conf / "net.d" / "byterec"
    plugin.write_text(BYTE_RECORDER.format(out=tmp_path))
    plugin.chmod(0o755)
    text = '{ "Name" : "asis",\n\t"Type": "byterec", "CNIVersion": "0.3.1", "Extra": 1.50, "\\u00e9": "x" }\n'
    (conf / "net.d" / "31-asis.conf").write_bytes(text.encode())
    try:
        r = cli("run", "--net=asis", image, "--exec=/bin/true")
        assert r.code == 0, r
    finally:
        (conf / "net.d" / "31-asis.conf").unlink()
        plugin.unlink()
    assert (tmp_path / "ADD.stdin").read_bytes() == text.encode()
    deleted = json.loads((tmp_path / "DEL.stdin").read_text())
    assert deleted["Type"] == "byterec" and deleted["prevResult"]["ips"][0]["address"] == "10.99.0.9/24"


def test_config_prints_the_merged_configuration_with_the_password_masked(tmp_path: Path) -> None:
    system, local, user = tmp_path / "system", tmp_path / "local", tmp_path / "user"
    for d, name, doc in (
        (system, "auth.d/basic.json", {"rktKind": "auth", "rktVersion": "v1", "domains": ["foo.com", "bar.com"],
                                       "type": "basic", "credentials": {"user": "sysUser", "password": "sysPassword"}}),
        (user, "auth.d/basic.json", {"rktKind": "auth", "rktVersion": "v1", "domains": ["foo.com"],
                                     "type": "basic", "credentials": {"user": "user", "password": "password"}}),
        (local, "paths.d/paths.json", {"rktKind": "paths", "rktVersion": "v1", "data": "/home/me/rkt/data"}),
    ):
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(json.dumps(doc))
    r = Cli(tmp_path / "data")("--system-config", str(system), f"--local-config={local}", f"--user-config={user}", "config")
    assert r.code == 0 and r.err == "", r
    assert "sysPassword" not in r.out and '"password"' in r.out
    entries = json.loads(r.out)["stage0"]
    assert entries[:2] == [
        {"rktVersion": "v1", "rktKind": "auth", "domains": ["bar.com"], "type": "basic",
         "credentials": {"user": "sysUser", "password": "******"}},
        {"rktVersion": "v1", "rktKind": "auth", "domains": ["foo.com"], "type": "basic",
         "credentials": {"user": "user", "password": "******"}}]
    assert {"rktVersion": "v1", "rktKind": "paths", "data": "/home/me/rkt/data", "stage1-images": ""} in entries


class NoDirCli(Cli):
    """The command line of a rkt user who relies on paths.d: no --dir."""

    def argv(self, *args: str) -> list[str]:
        return [str(PYRKT), *self.extra, *args]


def test_paths_d_gives_the_data_dir_when_dir_is_not_given(tmp_path: Path) -> None:
    data, local = tmp_path / "from-paths-d", tmp_path / "local"
    (local / "paths.d").mkdir(parents=True)
    (local / "paths.d" / "paths.json").write_text(json.dumps({"rktKind": "paths", "rktVersion": "v1", "data": str(data)}))
    cli = NoDirCli(data, extra=[f"--system-config={tmp_path / 'system'}", f"--local-config={local}"])
    try:
        r = cli("fetch", make_image(tmp_path / "busybox"))
        assert r.code == 0, r
        image = r.out.strip().splitlines()[-1]
        assert (data / "store").is_dir()
        assert image in cli("image", "list", "--no-legend", "--full").out
        r = cli("run", "--net=none", image, "--exec=/bin/sh", "--", "-c", "echo ran")
        assert r.code == 0 and r.out.strip() == "ran", r
        assert "exited" in cli("list", "--no-legend").out and os.listdir(data / "pods" / "run")  # under paths.d's dir
        # --dir still wins over paths.d
        assert Cli(tmp_path / "flag-dir", extra=cli.extra)("image", "list", "--no-legend").out == ""
    finally:
        cli.collect_all()
    assert mounts_under(tmp_path) == []


def test_stage1_d_naming_rkts_fly_stage1_makes_fly_the_default(net_env: tuple[Cli, str, Path]) -> None:
    cli, image, conf = net_env
    (conf / "stage1.d").mkdir(exist_ok=True)
    (conf / "stage1.d" / "stage1.json").write_text(json.dumps({
        "rktKind": "stage1", "rktVersion": "v1", "name": "coreos.com/rkt/stage1-fly", "version": "1.30.0",
        "location": "/usr/lib/rkt/stage1-images/stage1-fly.aci"}))
    try:
        r = cli("run", image, "--exec=/bin/sh", "--", "-c", "readlink /proc/self/ns/pid")
        assert r.code == 0 and r.err == "", r
        assert r.out.strip() == os.readlink("/proc/self/ns/pid")  # fly: the host's pid namespace
        r = cli("run", "--stage1-name=default", "--net=none", image, "--exec=/bin/sh", "--", "-c", "readlink /proc/self/ns/pid")
        assert r.code == 0 and r.out.strip() != os.readlink("/proc/self/ns/pid"), r
    finally:
        (conf / "stage1.d" / "stage1.json").unlink()
