"""Network configurations: built-ins, net.d files overriding them, order, and bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyrkt.errors import NetworkSetupError, UsageError
from pyrkt.network import cni, config
from pyrkt.network.setup import forwardable, net_info


def write(d: Path, name: str, conf: object) -> None:
    (d / "net.d").mkdir(parents=True, exist_ok=True)
    (d / "net.d" / name).write_text(conf if isinstance(conf, str) else json.dumps(conf))


def test_builtins_are_rkts_default_and_default_restricted(tmp_path: Path) -> None:
    nets = config.networks([tmp_path])
    default = nets["default"]["plugins"][0]
    assert (default["type"], default["ipMasq"], default["ipam"]["subnet"]) == ("ptp", True, "172.16.28.0/24")
    restricted = nets["default-restricted"]["plugins"][0]
    assert (restricted["ipMasq"], restricted["ipam"]["subnet"]) == (False, "172.31.0.0/16")


def test_user_conf_overrides_a_builtin_by_name_and_later_config_dirs_win(tmp_path: Path) -> None:
    system, local = tmp_path / "system", tmp_path / "local"
    write(system, "50-default.conf", {"cniVersion": "0.4.0", "name": "default", "type": "bridge"})
    write(local, "50-default.conf", {"cniVersion": "1.0.0", "name": "default", "type": "macvlan"})
    nets = config.networks([system, local])
    assert nets["default"]["plugins"] == [{"type": "macvlan"}]
    assert nets["default"]["cniVersion"] == "1.0.0"


def test_networks_come_in_lexicographic_file_order_and_first_name_wins(tmp_path: Path) -> None:
    write(tmp_path, "20-b.conflist", {"cniVersion": "1.0.0", "name": "b", "plugins": [{"type": "bridge"}]})
    write(tmp_path, "10-a.conf", {"name": "a", "type": "ptp"})
    write(tmp_path, "30-a.conf", {"name": "a", "type": "ignored"})
    chosen = config.select(["all"], [tmp_path])
    assert [name for name, _, _ in chosen] == ["a", "b"]
    assert chosen[0][1]["plugins"] == [{"type": "ptp"}]


def test_cni_args_travel_with_the_network(tmp_path: Path) -> None:
    [(name, _, args)] = config.select(["default:IP=172.16.28.9;K=V"], [tmp_path])
    assert (name, args) == ("default", "IP=172.16.28.9;K=V")


def test_unknown_networks_are_rkts_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="networks not found: x, y"):
        config.select(["default", "x", "y"], [tmp_path])


@pytest.mark.parametrize("text, complaint", [
    ("{not json", "50-bad.conf"),
    ("[1, 2]", "not a JSON object"),
    ('{"type": "ptp"}', "no 'name'"),
    ('{"name": "n", "plugins": []}', "'plugins' must be a non-empty list"),
    ('{"name": "n", "plugins": [{"ipam": {}}]}', "every plugin needs a 'type'"),
])
def test_malformed_net_d_files_name_the_file_and_the_fault(tmp_path: Path, text: str, complaint: str) -> None:
    write(tmp_path, "50-bad.conf", text)
    with pytest.raises(NetworkSetupError, match="50-bad.conf") as e:
        config.networks([tmp_path])
    assert complaint in str(e.value)


def test_addresses_from_results_of_every_cni_version() -> None:
    assert cni.addresses({"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.5/16"}, {"address": "fd00::5/64"}]}) == [
        "10.1.0.5/16", "fd00::5/64"]
    assert cni.addresses({"cniVersion": "0.2.0", "ip4": {"ip": "10.2.0.7/24"}}) == ["10.2.0.7/24"]
    assert cni.addresses({}) == []


def test_net_info_is_what_list_shows() -> None:
    record = {"network": "default", "ifname": "eth0", "args": "", "result": {"ips": [{"address": "172.16.28.5/24"}]}}
    info = net_info(record, "/usr/lib/cni/ptp")
    assert (info["netName"], info["ip"], info["mask"], info["ifName"]) == ("default", "172.16.28.5", "255.255.255.0", "eth0")


def test_plugin_config_chains_prev_result_and_runtime_config_by_capability() -> None:
    conflist = {"cniVersion": "1.0.0", "name": "n",
                "plugins": [{"type": "ptp"}, {"type": "portmap", "capabilities": {"portMappings": True}}]}
    runtime = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    first = cni.plugin_config(conflist, 0, None, runtime)
    assert first == {"type": "ptp", "name": "n", "cniVersion": "1.0.0"}
    second = cni.plugin_config(conflist, 1, {"ips": []}, runtime)
    assert second["prevResult"] == {"ips": []} and second["runtimeConfig"] == runtime


def test_forwardable_network_is_the_first_with_ipmasq_else_the_last() -> None:
    plain = {"plugins": [{"type": "bridge"}]}
    masq = {"plugins": [{"type": "ptp", "ipMasq": True}]}
    assert forwardable([("a", plain, ""), ("b", masq, ""), ("c", masq, "")]) == "b"
    assert forwardable([("a", plain, ""), ("c", plain, "")]) == "c"


RKT_CASED = '{\n  "Name": "bridge0",  "CNIVersion": "0.3.1",\n  "Type": "bridge", "IPMasq": true,\n  "IPAM": {"Type": "host-local"}\n}\n'


def test_a_net_d_conf_in_rkts_casing_is_accepted(tmp_path: Path) -> None:
    write(tmp_path, "10-bridge0.conf", RKT_CASED)
    net = config.networks([tmp_path])["bridge0"]
    assert (net["name"], net["cniVersion"], config.plugin_type(net["plugins"][0])) == ("bridge0", "0.3.1", "bridge")
    assert forwardable([("bridge0", net, "")]) == "bridge0"  # its IPMasq counts


def test_a_plain_conf_reaches_its_plugin_byte_for_byte(tmp_path: Path) -> None:
    write(tmp_path, "10-bridge0.conf", RKT_CASED)
    net = config.networks([tmp_path])["bridge0"]
    assert cni.plugin_input(net, 0, None) == RKT_CASED
    # with a previous result to pass (DEL), it is given as the CNI spec builds it, keys as written
    deleted = json.loads(cni.plugin_input(net, 0, {"ips": []}))
    assert deleted["prevResult"] == {"ips": []} and deleted["Type"] == "bridge" and deleted["IPAM"]
    assert (deleted["name"], deleted["cniVersion"]) == ("bridge0", "0.3.1") and "Name" not in deleted


def test_a_conflist_in_rkts_casing_is_accepted(tmp_path: Path) -> None:
    write(tmp_path, "20-v.conflist", {"Name": "v", "CniVersion": "1.0.0", "Plugins": [
        {"Type": "ptp"}, {"type": "portmap", "Capabilities": {"PortMappings": True}}]})
    net = config.networks([tmp_path])["v"]
    runtime = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    assert json.loads(cni.plugin_input(net, 0, None, runtime)) == {"Type": "ptp", "name": "v", "cniVersion": "1.0.0"}
    assert json.loads(cni.plugin_input(net, 1, {"ips": []}, runtime))["runtimeConfig"] == runtime


def test_a_conf_without_a_name_in_any_casing_is_still_refused(tmp_path: Path) -> None:
    write(tmp_path, "10-x.conf", {"Names": "x", "Type": "bridge"})
    with pytest.raises(NetworkSetupError, match="no 'name'"):
        config.networks([tmp_path])
