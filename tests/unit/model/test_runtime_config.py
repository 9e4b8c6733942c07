"""The runtime config: typed fields across the stage0 -> stage1 ABI, and its version checked
on read."""

from __future__ import annotations

import json

import pytest

from pyrkt.errors import PyrktError
from pyrkt.model import abi
from pyrkt.model.abi import Dns, RuntimeConfig


def full() -> RuntimeConfig:
    return RuntimeConfig(uuid="u", ipc="parent", config_dirs=("/etc/pyrkt", "/home/u/.config/pyrkt"),
                         dns=Dns("flags", ("1.1.1.1",), ("a.example",), ("ndots:2",), "d.example"),
                         hosts=(("10.0.0.1", "db"),), sysctls=(("net.ipv4.ip_forward", "1"), ("kernel.shmmni", "9")))


def test_every_field_survives_the_file() -> None:
    assert RuntimeConfig.from_json(full().to_json()) == full()
    assert RuntimeConfig.from_json(RuntimeConfig(uuid="u", hosts_from_host=True).to_json()).hosts_from_host


def test_no_untyped_extra_crosses_the_abi() -> None:
    d = json.loads(full().to_json())
    assert "extra" not in d and d["version"] == abi.INTERFACE_VERSION
    assert d["dns"]["servers"] == ["1.1.1.1"] and d["sysctls"][0] == ["net.ipv4.ip_forward", "1"]


@pytest.mark.parametrize("version", [1, 99, None])
def test_a_config_of_another_interface_version_is_refused_naming_both(version: int | None) -> None:
    d = json.loads(full().to_json())
    if version is None:
        del d["version"]
    else:
        d["version"] = version
    with pytest.raises(PyrktError) as e:
        RuntimeConfig.from_dict(d, where="pods/run/u/runtime-config")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("pods/run/u/runtime-config: ")
    assert f"version {version}" in msg and f"version {abi.INTERFACE_VERSION}" in msg


def test_an_unknown_field_is_refused_not_a_traceback() -> None:
    d = json.loads(full().to_json())
    d["extra"] = {"ipc": "parent"}
    with pytest.raises(PyrktError, match="unknown field 'extra'"):
        RuntimeConfig.from_dict(d)


def test_the_metadata_service_token_and_port_cross_the_abi() -> None:
    rc = RuntimeConfig(uuid="u", mds_token="ab" * 16, mds_port=18112)
    assert RuntimeConfig.from_json(rc.to_json()) == rc
