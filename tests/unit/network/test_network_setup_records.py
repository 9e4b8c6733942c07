"""What network set-up reads back from a pod dir's records, and the built-in chain's shape."""

from __future__ import annotations

import json
from pathlib import Path

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
