"""What network set-up reads back from a pod dir's records, and the built-in chain's shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyrkt.errors import NetworkSetupError
from pyrkt.network import config, setup


def write_record(pod: Path, index: int, name: str, result: dict[str, object]) -> None:
    (pod / "net").mkdir(exist_ok=True)
    (pod / "net" / f"{index:02d}-{name}.json").write_text(json.dumps({"network": name, "result": result}))


def test_first_network_in_net_order_with_dns_wins(tmp_path: Path) -> None:
    write_record(tmp_path, 0, "zeta", {"ips": []})
    write_record(tmp_path, 1, "alpha", {"dns": {"nameservers": ["10.0.0.53"]}})
    write_record(tmp_path, 2, "beta", {"dns": {"nameservers": ["10.0.0.54"]}})
    assert setup.first_dns(tmp_path) == ("alpha", {"nameservers": ["10.0.0.53"]})


def test_no_records_or_no_dns_means_none(tmp_path: Path) -> None:
    assert setup.first_dns(tmp_path) is None
    write_record(tmp_path, 0, "a", {})
    (tmp_path / "net" / "01-cut.json").write_text("{")  # cut short by a crash
    assert setup.first_dns(tmp_path) is None


def test_builtin_default_without_port_forwards_runs_ptp_alone() -> None:
    default = config.BUILTIN["default"]
    assert [p["type"] for p in setup.without_portmap(default)["plugins"]] == ["ptp"]
    assert [p["type"] for p in default["plugins"]] == ["ptp", "portmap"]  # the built-in is not changed
    only = {"name": "x", "plugins": [{"type": "portmap"}]}
    assert setup.without_portmap(only) is only


REFUSING_PLUGIN = """#!/bin/sh
echo "$CNI_COMMAND $CNI_ARGS" >> "$(dirname "$0")/calls"
echo '{"cniVersion": "0.4.0", "code": 7, "msg": "invalid IP address 999.1.1.1"}'
exit 1
"""


def refused_record(pod: Path, added: int | None) -> dict[str, object]:
    plugins = pod / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "refuser").write_text(REFUSING_PLUGIN)
    (plugins / "refuser").chmod(0o755)
    record: dict[str, object] = {
        "network": "bad", "args": "IP=999.1.1.1", "ifname": "eth0", "plugin_path": [str(plugins)],
        "conflist": {"name": "bad", "cniVersion": "0.4.0", "plugins": [{"type": "refuser"}]}}
    if added is not None:
        record.update(added=added, result={"cniVersion": "0.4.0"})
    (pod / "net").mkdir(exist_ok=True)
    (pod / "net" / "00-bad.json").write_text(json.dumps(record))
    return record


def test_del_of_a_plugin_whose_add_was_refused_is_best_effort(tmp_path: Path) -> None:
    """ADD refused (bad CNI_ARGS): DEL is still sent, with what ADD recorded, and its refusal
    does not keep the pod's networks from being torn down (gc used to fail on it forever)."""
    refused_record(tmp_path, added=None)
    setup.down(tmp_path)
    assert (tmp_path / "plugins" / "calls").read_text() == "DEL IP=999.1.1.1\n"
    assert not (tmp_path / "net" / "00-bad.json").exists()
    setup.down(tmp_path)  # idempotent


def test_del_failing_for_a_plugin_whose_add_completed_is_an_error_kept_for_gc(tmp_path: Path) -> None:
    refused_record(tmp_path, added=1)
    with pytest.raises(NetworkSetupError, match="plugin 'refuser' failed on DEL: invalid IP address 999.1.1.1"):
        setup.down(tmp_path)
    assert (tmp_path / "net" / "00-bad.json").exists()  # gc tries again


def test_the_metadata_service_host_is_the_gateway_of_the_forwardable_network(tmp_path: Path) -> None:
    def record(index: int, name: str, masq: bool, result: dict[str, object]) -> None:
        (tmp_path / "net").mkdir(exist_ok=True)
        conflist = {"name": name, "plugins": [{"type": "ptp", "ipMasq": masq}]}
        (tmp_path / "net" / f"{index:02d}-{name}.json").write_text(
            json.dumps({"network": name, "conflist": conflist, "result": result}))

    record(0, "inner", False, {"ips": [{"address": "10.1.0.5/24", "gateway": "10.1.0.1"}]})
    record(1, "outer", True, {"ips": [{"address": "fd00::5/64", "gateway": "fd00::1"},
                                      {"address": "172.16.28.5/24", "gateway": "172.16.28.1"}]})
    assert setup.host_ip(tmp_path) == "172.16.28.1"  # the first with ipMasq, its IPv4 gateway
    record(1, "outer", True, {"ip4": {"ip": "172.16.28.5/24", "gateway": "172.16.28.9"}})  # CNI 0.2
    assert setup.host_ip(tmp_path) == "172.16.28.9"
    record(1, "outer", True, {"ips": [{"address": "172.16.28.5/24"}]})
    with pytest.raises(NetworkSetupError, match="gives the pod no IPv4 gateway"):
        setup.host_ip(tmp_path)
