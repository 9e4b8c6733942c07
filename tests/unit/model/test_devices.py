"""The device policy's values: the default allow-list in cgroup v1 form, --device parsing, and
the runtime config carrying the passed-in devices to stage1."""

from __future__ import annotations

import pytest

from pyrkt.errors import UsageError
from pyrkt.model import abi
from pyrkt.model.devices import ANY, DEFAULT_ALLOW, DeviceRule, HostDevice, parse_device_flag, policy


def test_default_allow_list_is_rkts_closed_policy_with_the_terminals() -> None:
    assert [r.v1() for r in DEFAULT_ALLOW] == [
        "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
        "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm",
    ]


def test_rules_print_as_the_v1_devices_files_read_them() -> None:
    assert DeviceRule("b", 7, ANY, "r").v1() == "b 7:* r"
    assert DeviceRule("c", ANY, ANY, "m").v1() == "c *:* m"
    assert DeviceRule("a", ANY, ANY).v1() == "a"


def test_policy_adds_the_extra_rules_once() -> None:
    extra = (DeviceRule("c", 10, 237, "rw"), DeviceRule("c", 1, 3, "rwm"), DeviceRule("c", 10, 237, "rw"))
    assert policy(extra) == (*DEFAULT_ALLOW, DeviceRule("c", 10, 237, "rw"))


@pytest.mark.parametrize(("text", "want"), [
    ("/dev/loop-control", ("/dev/loop-control", "", "rwm")),
    ("/dev/fuse:rw", ("/dev/fuse", "", "rw")),
    ("/dev/fuse:wr", ("/dev/fuse", "", "rw")),
    ("/dev/sda:r", ("/dev/sda", "", "r")),
    ("/dev/disk/by-path/pci-0000:00:1f.2", ("/dev/disk/by-path/pci-0000:00:1f.2", "", "rwm")),
    ("/dev/disk/by-path/pci-0000:00:1f.2:m", ("/dev/disk/by-path/pci-0000:00:1f.2", "", "m")),
    ("/dev/sdc:/dev/xvdc", ("/dev/sdc", "/dev/xvdc", "rwm")),  # podman's HOSTPATH:CONTAINERPATH[:ACCESS]
    ("/dev/sdc:/dev/xvdc:r", ("/dev/sdc", "/dev/xvdc", "r")),
    ("/dev/disk/by-path/pci-0000:00:1f.2:/dev/xvdc:rw", ("/dev/disk/by-path/pci-0000:00:1f.2", "/dev/xvdc", "rw")),
])
def test_device_flag_is_a_host_path_a_container_path_and_an_access(text: str, want: tuple[str, str, str]) -> None:
    assert parse_device_flag(text) == want


@pytest.mark.parametrize(("text", "why"), [
    ("dev/kvm", "absolute"), ("/dev/kvm:rwx", "ACCESS"), ("/dev/kvm:", "ACCESS"), ("/dev/kvm:rr", "ACCESS"),
    ("/dev/kvm:/dev/kvm2:", "ACCESS"), ("", "absolute"), (":/dev/kvm", "absolute"),
])
def test_bad_device_flags_are_refused_in_one_line(text: str, why: str) -> None:
    with pytest.raises(UsageError, match=why) as e:
        parse_device_flag(text)
    assert "\n" not in str(e.value)


def test_a_device_at_another_path_goes_through_its_flag_and_json() -> None:
    dev = HostDevice("/dev/sdc", "b", 8, 32, "r", target="/dev/xvdc")
    assert (dev.at, dev.flag()) == ("/dev/xvdc", "/dev/sdc:/dev/xvdc:r")
    assert parse_device_flag(dev.flag()) == ("/dev/sdc", "/dev/xvdc", "r")
    assert HostDevice.from_json(dev.to_json()) == dev
    assert HostDevice("/dev/fuse", "c", 10, 229).flag() == "/dev/fuse:rwm"


def test_runtime_config_carries_the_devices_through_json() -> None:
    dev = HostDevice("/dev/loop-control", "c", 10, 237, "rw", 0o600, 0, 6)
    rc = abi.RuntimeConfig(uuid="u", devices=(dev,))
    back = abi.RuntimeConfig.from_json(rc.to_json())
    assert back == rc and back.devices[0].rule() == DeviceRule("c", 10, 237, "rw")
    assert abi.RuntimeConfig.from_json(abi.RuntimeConfig(uuid="u").to_json()).devices == ()
