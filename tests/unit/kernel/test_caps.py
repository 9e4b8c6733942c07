"""Capability names and the plan of which caps an app keeps (pure; no root needed)."""

from __future__ import annotations

import pytest

from pyrkt.errors import UsageError
from pyrkt.kernel import caps


@pytest.mark.parametrize("text", ["CAP_NET_ADMIN", "net_admin", "NET_ADMIN", "cap_net_admin", " net_admin "])
def test_capability_names_are_accepted_with_or_without_prefix_in_any_case(text: str) -> None:
    assert caps.parse(text) == 12


def test_every_capability_up_to_checkpoint_restore_has_its_kernel_number() -> None:
    assert caps.parse("CAP_CHOWN") == 0
    assert caps.parse("sys_admin") == 21
    assert caps.parse("sys_resource") == 24
    assert caps.parse("audit_read") == 37
    assert caps.parse("checkpoint_restore") == 40
    assert [caps.parse(caps.name(n)) for n in range(41)] == list(range(41))
    assert caps.ALL_CAPS == frozenset(range(41))


def test_unknown_capability_is_a_usage_error_naming_it() -> None:
    with pytest.raises(UsageError, match="unknown capability 'CAP_FLY'"):
        caps.parse("CAP_FLY")


def test_parse_all_reads_a_list_of_names() -> None:
    assert caps.parse_all(["kill", "CAP_NET_BIND_SERVICE"]) == {5, 10}


def test_names_of_numbers_newer_than_pyrkt_are_still_printable() -> None:
    assert caps.name(7) == "CAP_SETUID"
    assert caps.name(45) == "CAP_45"


def test_default_set_is_the_appc_fourteen_with_rkt_s_mask() -> None:
    assert len(caps.DEFAULT_CAPS) == 14
    assert caps.mask(caps.DEFAULT_CAPS) == 0xA80425FB
    assert {caps.name(c) for c in caps.DEFAULT_CAPS} >= {"CAP_AUDIT_WRITE", "CAP_SYS_CHROOT", "CAP_SETFCAP"}
    assert "CAP_SYS_ADMIN" not in {caps.name(c) for c in caps.DEFAULT_CAPS}


def test_mask_and_from_mask_are_inverse() -> None:
    assert caps.from_mask(0xA80425FB) == set(caps.DEFAULT_CAPS)
    assert caps.from_mask(0) == set()
    assert caps.mask({0, 40}) == 1 | 1 << 40


def test_plan_without_isolators_is_the_default_set() -> None:
    assert caps.plan_caps(retain=None, remove=None, insecure=False) == set(caps.DEFAULT_CAPS)


def test_plan_retain_set_replaces_the_default_set() -> None:
    assert caps.plan_caps(retain={12, 5}, remove=None, insecure=False) == {12, 5}


def test_plan_empty_retain_set_keeps_no_caps() -> None:
    assert caps.plan_caps(retain=set(), remove=None, insecure=False) == set()


def test_plan_remove_set_subtracts_from_the_default_set() -> None:
    planned = caps.plan_caps(retain=None, remove={caps.parse("net_raw"), caps.parse("net_admin")}, insecure=False)
    assert planned == set(caps.DEFAULT_CAPS) - {13}


def test_plan_refuses_retain_and_remove_together() -> None:
    with pytest.raises(UsageError, match="retain-set and remove-set"):
        caps.plan_caps(retain={5}, remove={13}, insecure=False)


def test_plan_insecure_capabilities_keeps_every_cap() -> None:
    assert caps.plan_caps(retain=None, remove=None, insecure=True) == set(range(41))
    assert caps.plan_caps(retain={5}, remove=None, insecure=True) == set(range(41))


def test_plan_does_not_alias_the_default_set() -> None:
    planned = caps.plan_caps(retain=None, remove=None, insecure=False)
    planned.add(21)
    assert 21 not in caps.DEFAULT_CAPS


def test_last_cap_is_what_this_kernel_reports() -> None:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        assert caps.last_cap() == int(f.read())
