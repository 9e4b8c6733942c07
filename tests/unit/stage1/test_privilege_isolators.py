"""Privilege isolators: rkt's flags into appc isolators, and isolators into an app's capability
set and seccomp filter, as rkt's stage0 and stage1 computed them (no root)."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest

from pyrkt.errors import UsageError
from pyrkt.kernel import caps, seccomp_groups
from pyrkt.stage1 import isolators as iso
from pyrkt.stage1.isolators import SeccompFilter

RKT_WILDCARDS = "stage1/init/common/seccomp_wildcards.go"
RKT_MIRROR = "/work/.mirror/rkt+rkt/repo"


def names(*caps_: str) -> tuple[int, ...]:
    return tuple(sorted(caps.parse(c) for c in caps_))


# -- capabilities ---------------------------------------------------------------------------------

def test_without_isolators_an_app_gets_appcs_default_set() -> None:
    assert iso.capabilities(()) == tuple(sorted(caps.DEFAULT_CAPS))


def test_retain_set_replaces_the_default_set() -> None:
    assert iso.capabilities(((iso.CAPS_RETAIN, {"set": ["CAP_NET_BIND_SERVICE"]}),)) == names("CAP_NET_BIND_SERVICE")
    assert iso.capabilities(((iso.CAPS_RETAIN, {"set": ["CAP_SYS_ADMIN", "CAP_CHOWN"]}),)) == names(
        "CAP_SYS_ADMIN", "CAP_CHOWN")


def test_remove_set_subtracts_from_the_default_set_and_ignores_caps_not_in_it() -> None:
    got = iso.capabilities(((iso.CAPS_REMOVE, {"set": ["CAP_CHOWN", "CAP_SYS_ADMIN"]}),))
    assert got == tuple(sorted(caps.DEFAULT_CAPS - {caps.parse("CAP_CHOWN")}))


def test_retain_and_remove_sets_together_are_refused() -> None:
    with pytest.raises(UsageError, match="cannot have both"):
        iso.capabilities(((iso.CAPS_RETAIN, {"set": ["CAP_KILL"]}), (iso.CAPS_REMOVE, {"set": ["CAP_CHOWN"]})))


def test_insecure_capabilities_gives_every_cap_whatever_the_isolators() -> None:
    got = iso.capabilities(((iso.CAPS_RETAIN, {"set": ["CAP_KILL"]}),), insecure=True)
    assert got == tuple(sorted(caps.ALL_CAPS))


@pytest.mark.parametrize("value", [{}, {"set": []}, {"set": "CAP_KILL"}, {"set": [""]}, None])
def test_malformed_capability_isolators_are_refused(value: Any) -> None:
    with pytest.raises(UsageError, match="non-empty list"):
        iso.capabilities(((iso.CAPS_RETAIN, value),))


def test_unknown_capability_is_refused_by_name() -> None:
    with pytest.raises(UsageError, match="unknown capability 'CAP_FLY'"):
        iso.capabilities(((iso.CAPS_REMOVE, {"set": ["CAP_FLY"]}),))


# -- flags into isolators (rkt's stage0 prepareIsolators) ----------------------------------------

def test_a_caps_flag_replaces_every_capability_isolator_of_the_image() -> None:
    image = ((iso.CAPS_REMOVE, {"set": ["CAP_CHOWN"]}), ("resource/memory", {"limit": "1G"}))
    got = iso.override(image, caps_retain="CAP_SYS_ADMIN")
    assert got == (("resource/memory", {"limit": "1G"}), (iso.CAPS_RETAIN, {"set": ["CAP_SYS_ADMIN"]}))
    assert iso.capabilities(got) == names("CAP_SYS_ADMIN")
    got = iso.override(((iso.CAPS_RETAIN, {"set": ["CAP_MKNOD"]}),), caps_remove="CAP_KILL")
    assert iso.capabilities(got) == tuple(sorted(caps.DEFAULT_CAPS - {caps.parse("CAP_KILL")}))


def test_caps_retain_and_remove_on_one_image_are_refused() -> None:
    with pytest.raises(UsageError, match="cannot use both --caps-retain and --caps-remove on the same image"):
        iso.override((), caps_retain="CAP_KILL", caps_remove="CAP_CHOWN")


@pytest.mark.parametrize("text", ["CAP_KILL,", "CAP_NOPE", ",CAP_KILL"])
def test_bad_caps_flag_values_are_refused(text: str) -> None:
    with pytest.raises(UsageError):
        iso.caps_isolator("caps-retain", text)


def test_seccomp_flag_becomes_one_seccomp_isolator_replacing_the_images() -> None:
    image = ((iso.SECCOMP_RETAIN, {"set": ["read"]}),)
    got = iso.override(image, seccomp="mode=remove,errno=ENOTSUP,mkdir,@docker/default-blacklist")
    assert got == ((iso.SECCOMP_REMOVE, {"set": ["mkdir", "@docker/default-blacklist"], "errno": "ENOTSUP"}),)
    assert iso.override((), seccomp="errno=EPERM,mode=retain,read") == (
        (iso.SECCOMP_RETAIN, {"set": ["read"], "errno": "EPERM"}),)


@pytest.mark.parametrize(("text", "why"), [
    ("read,write", "no mode=retain or mode=remove"),
    ("mode=keep,read", "invalid --seccomp mode 'keep'"),
    ("mode=retain,foo=bar,read", "invalid --seccomp item 'foo=bar'"),
    ("mode=retain", "non-empty list"),
    ("mode=remove,errno=EWHAT,mkdir", "unknown errno 'EWHAT'"),
    ("mode=remove,errno=eperm,mkdir", "unknown errno 'eperm'"),
    ("mode=remove,@rkt/nothing", "unknown seccomp group '@rkt/nothing'"),
    ("mode=remove,@systemd/debug", "unknown seccomp group '@systemd/debug'"),
])
def test_bad_seccomp_flags_are_refused_before_a_pod_exists(text: str, why: str) -> None:
    with pytest.raises(UsageError, match=re.escape(why)):
        iso.seccomp_isolator(text)


# -- seccomp isolators into filters (rkt's generateSeccompFilter) --------------------------------

def filter_of(name: str, value: dict[str, Any]) -> SeccompFilter | None:
    return iso.seccomp_filter(((name, value),))


def test_no_seccomp_isolator_means_pyrkts_default_profile() -> None:
    assert iso.seccomp_filter((("resource/memory", {"limit": "1G"}),)) is None


def test_remove_set_with_errno() -> None:
    assert filter_of(iso.SECCOMP_REMOVE, {"set": ["mkdir", "mkdirat"], "errno": "ENOTSUP"}) == SeccompFilter(
        "remove", 95, ("mkdir", "mkdirat"))


def test_without_errno_a_filtered_call_kills_as_rkts() -> None:
    assert filter_of(iso.SECCOMP_RETAIN, {"set": ["read"]}) == SeccompFilter("retain", None, ("read",))


@pytest.mark.parametrize(("group", "expected"), [
    ("@docker/default-whitelist", seccomp_groups.DOCKER_DEFAULT_WHITELIST),
    ("@rkt/default-whitelist", seccomp_groups.DOCKER_DEFAULT_WHITELIST),
    ("@docker/default-blacklist", seccomp_groups.DOCKER_DEFAULT_BLACKLIST),
    ("@rkt/default-blacklist", seccomp_groups.DOCKER_DEFAULT_BLACKLIST),
])
def test_groups_expand_to_rkts_lists(group: str, expected: tuple[str, ...]) -> None:
    got = filter_of(iso.SECCOMP_REMOVE, {"set": [group, "mkdir"]})
    assert got is not None and got.names == tuple(dict.fromkeys((*expected, "mkdir")))


def test_systemd_groups_are_the_sets_of_rkts_systemd() -> None:
    got = filter_of(iso.SECCOMP_REMOVE, {"set": ["@systemd/mount", "@systemd/clock"]})
    assert got is not None
    assert got.names == ("chroot", "mount", "pivot_root", "umount2", "umount", "adjtimex", "clock_adjtime",
                         "clock_settime", "settimeofday", "stime")
    privileged = filter_of(iso.SECCOMP_REMOVE, {"set": ["@systemd/privileged"]})
    assert privileged is not None and {"settimeofday", "init_module", "iopl", "reboot"} <= set(privileged.names)
    default = filter_of(iso.SECCOMP_RETAIN, {"set": ["@systemd/default-whitelist"]})
    assert default is not None and default.names == seccomp_groups.SYSTEMD_ALWAYS_ALLOWED


def test_appc_reserved_groups() -> None:
    assert filter_of(iso.SECCOMP_RETAIN, {"set": ["@appc.io/all"]}) == SeccompFilter("none")
    assert filter_of(iso.SECCOMP_REMOVE, {"set": ["@appc.io/empty"], "errno": "EPERM"}) == SeccompFilter("default", 1)
    assert filter_of(iso.SECCOMP_RETAIN, {"set": ["@appc.io/empty"]}) == SeccompFilter("retain", None, ())
    assert filter_of(iso.SECCOMP_REMOVE, {"set": ["@appc.io/all"]}) == SeccompFilter("retain", None, ())


def test_two_seccomp_isolators_are_refused() -> None:
    with pytest.raises(UsageError, match="too many seccomp isolators"):
        iso.seccomp_filter(((iso.SECCOMP_RETAIN, {"set": ["read"]}), (iso.SECCOMP_REMOVE, {"set": ["mkdir"]})))


def test_syscall_names_are_checked_but_group_members_are_not() -> None:
    isolators = ((iso.SECCOMP_REMOVE, {"set": ["mkdir", "@docker/default-blacklist"]}),)
    iso.check_syscalls(isolators, lambda name: name == "mkdir")
    with pytest.raises(UsageError, match="unknown syscall 'mkdirx'"):
        iso.check_syscalls(((iso.SECCOMP_REMOVE, {"set": ["mkdirx"]}),), lambda name: name == "mkdir")


def test_no_new_privileges_is_accepted_and_false_is_named_as_not_honoured() -> None:
    iso.check(((iso.NO_NEW_PRIVS, True),))
    assert iso.warnings(((iso.NO_NEW_PRIVS, True),), flavor="default") == []
    assert iso.warnings(((iso.NO_NEW_PRIVS, False),), flavor="default") == [
        "isolator os/linux/no-new-privileges false is not honoured: pyrkt always sets no_new_privs"]
    with pytest.raises(UsageError, match="want true or false"):
        iso.check(((iso.NO_NEW_PRIVS, "yes"),))


def test_fly_applies_no_privilege_isolator_and_says_so() -> None:
    isolators = ((iso.CAPS_RETAIN, {"set": ["CAP_KILL"]}), ("resource/memory", {"limit": "1G"}))
    assert iso.warnings(isolators, flavor="fly") == [
        "isolator os/linux/capabilities-retain-set is not applied by the fly flavor: ignored"]
    assert iso.warnings(isolators, flavor="default") == []


def rkt_list(source: str, var: str) -> list[str]:
    body = re.search(var + r" = \[\]string\{(.*?)\n\t\}", source, re.S)
    assert body is not None
    return re.findall(r'^\s*"([^"]+)"', body.group(1), re.M)


def test_group_lists_are_rkts() -> None:
    """The lists against rkt's own source, where the mirror is on this machine."""
    try:
        source = subprocess.run(["git", "-C", RKT_MIRROR, "show", f"HEAD:{RKT_WILDCARDS}"], capture_output=True,
                                text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("rkt's source is not mirrored here")
    assert rkt_list(source, "DockerDefaultSeccompWhitelist") == list(seccomp_groups.DOCKER_DEFAULT_WHITELIST)
    assert rkt_list(source, "DockerDefaultSeccompBlacklist") == list(seccomp_groups.DOCKER_DEFAULT_BLACKLIST)
    assert rkt_list(source, "RktDefaultSeccompArmWhitelist") == list(seccomp_groups.ARM_WHITELIST)
