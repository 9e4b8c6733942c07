"""rkt's per-app argument syntax for run and prepare."""

from __future__ import annotations

import pytest

from pyrkt.cli.commands.apps import parse_pod_and_apps
from pyrkt.cli.commands.run import RUN_FLAGS, run_options
from pyrkt.cli.flags import FlagSet
from pyrkt.errors import UsageError


def parse(*args: str):  # type: ignore[no-untyped-def]
    return parse_pod_and_apps(FlagSet(RUN_FLAGS), list(args))


def test_images_take_the_per_app_flags_that_follow_them() -> None:
    values, apps = parse("--net=none", "img-a", "--name=a", "--exec=/bin/a", "img-b", "--user=5")
    assert values["net"] == "none"
    assert [(a.image, a.name, a.exec, a.user) for a in apps] == [
        ("img-a", "a", "/bin/a", ""), ("img-b", "", "", "5")]


def test_double_dash_gives_args_to_the_preceding_image_until_triple_dash() -> None:
    _, apps = parse("img-a", "--", "-c", "echo --name=x", "---", "img-b", "--", "x", "y")
    assert apps[0].args == ["-c", "echo --name=x"]
    assert apps[1].args == ["x", "y"]


def test_per_app_flag_before_any_image_is_refused() -> None:
    with pytest.raises(UsageError, match="--exec must follow an image"):
        parse("--exec=/bin/true", "img")


@pytest.mark.parametrize("args", [("-x", "img"), ("img", "-x"), ("img", "--", "a", "---", "-d")])
def test_a_one_dash_word_outside_app_args_is_an_unknown_flag_not_an_image(args: tuple[str, ...]) -> None:
    with pytest.raises(UsageError, match="unknown shorthand flag '-[xd]'"):
        parse(*args)


def test_pod_flags_may_come_between_apps_and_bare_net_means_default() -> None:
    values, apps = parse("img-a", "--detach", "--net", "img-b")
    assert values["detach"] is True
    assert run_options(values).net == ["default"]
    assert [a.image for a in apps] == ["img-a", "img-b"]


def test_repeated_environment_flags_accumulate_per_app() -> None:
    _, apps = parse("img", "--environment=A=1", "--environment", "B=2")
    assert apps[0].environment == ["A=1", "B=2"]


def test_net_list_rejects_duplicates_and_host_with_others() -> None:
    from pyrkt.stage0.run import parse_net

    assert parse_net("a,b:IP=10.1.1.5;K=V") == ["a", "b:IP=10.1.1.5;K=V"]
    with pytest.raises(UsageError):
        parse_net("a,a")
    with pytest.raises(UsageError):
        parse_net("host,a")


def test_sysctl_is_a_pod_flag_of_run_prepare_and_run_prepared() -> None:
    from pyrkt.cli.commands import prepare, run_prepared
    from pyrkt.cli.commands.run import pod_request

    values, apps = parse("--sysctl=net.ipv4.ip_forward=1", "img", "--sysctl", "kernel.shmmni=100")
    assert run_options(values).sysctl == ["net.ipv4.ip_forward=1", "kernel.shmmni=100"]
    assert pod_request(values, apps).sysctl == ["net.ipv4.ip_forward=1", "kernel.shmmni=100"]
    values, _ = parse_pod_and_apps(FlagSet(prepare.FLAGS), ["--sysctl=fs.mqueue.msg_max=5", "img"])
    assert values["sysctl"] == ["fs.mqueue.msg_max=5"]
    values, rest = FlagSet(run_prepared.FLAGS).parse(["--sysctl=net.ipv4.ip_forward=0", "UUID"])
    assert run_options(values).sysctl == ["net.ipv4.ip_forward=0"] and rest == ["UUID"]


def test_readonly_rootfs_follows_its_image() -> None:
    _, apps = parse("img-a", "--readonly-rootfs", "img-b", "--readonly-rootfs=false")
    assert [a.readonly_rootfs for a in apps] == [True, False]
    with pytest.raises(UsageError, match="--readonly-rootfs must follow an image"):
        parse("--readonly-rootfs", "img")


def test_mount_before_any_image_is_the_pods_and_after_one_that_apps() -> None:
    from pyrkt.cli.commands.run import pod_request

    values, apps = parse("--volume=data,kind=empty", "--mount=volume=data,target=/all", "img-a",
                         "--mount", "volume=data,target=/a", "--volume=h,kind=host,source=/tmp", "img-b")
    req = pod_request(values, apps)
    assert req.mounts == ["volume=data,target=/all"]
    assert req.volumes == ["data,kind=empty", "h,kind=host,source=/tmp"]
    assert [a.mounts for a in apps] == [["volume=data,target=/a"], []]


def test_privilege_flags_belong_to_the_image_they_follow() -> None:
    _, apps = parse("img-a", "--caps-retain=CAP_NET_BIND_SERVICE", "--seccomp=mode=remove,errno=ENOTSUP,mkdir",
                    "img-b", "--caps-remove", "CAP_CHOWN")
    assert [(a.caps_retain, a.caps_remove, a.seccomp) for a in apps] == [
        ("CAP_NET_BIND_SERVICE", "", "mode=remove,errno=ENOTSUP,mkdir"), ("", "CAP_CHOWN", "")]
    with pytest.raises(UsageError, match="--caps-retain must follow an image"):
        parse("--caps-retain=CAP_KILL", "img")
    with pytest.raises(UsageError, match="--seccomp needs a value"):
        parse("img", "--seccomp=")


def test_privileged_marks_the_image_it_follows_and_takes_no_privilege_flags() -> None:
    _, apps = parse("img-a", "--privileged", "img-b")
    assert apps[0].annotations == [("pyrkt.io/privileged", "true")] and apps[1].annotations == []
    with pytest.raises(UsageError, match="--privileged must follow an image"):
        parse("--privileged", "img")
    with pytest.raises(UsageError, match="--privileged gives every capability and no seccomp filter: it takes "
                                         "no --caps-remove"):
        parse("img", "--privileged", "--caps-remove=CAP_CHOWN")


def test_rkts_deprecated_cap_flags_are_taken_with_cobras_warning() -> None:
    flags = FlagSet(RUN_FLAGS)
    _, apps = parse_pod_and_apps(flags, ["img", "--cap-retain=CAP_KILL", "img-b", "--cap-remove=CAP_CHOWN"])
    assert [(a.caps_retain, a.caps_remove) for a in apps] == [("CAP_KILL", ""), ("", "CAP_CHOWN")]
    assert flags.notes == ["Flag --cap-retain has been deprecated, use --caps-retain instead",
                           "Flag --cap-remove has been deprecated, use --caps-remove instead"]


def test_stdio_modes_follow_their_image_and_become_its_stage2_annotations() -> None:
    _, apps = parse("img-a", "--stdin=tty", "--stdout=tty", "--stderr", "tty", "img-b", "--stdout=null")
    assert apps[0].annotations == [("coreos.com/rkt/stage2/stdin", "tty"), ("coreos.com/rkt/stage2/stdout", "tty"),
                                   ("coreos.com/rkt/stage2/stderr", "tty")]
    assert apps[1].annotations == [("coreos.com/rkt/stage2/stdout", "null")]


@pytest.mark.parametrize(("args", "why"), [(("--stdin=tty", "img"), "--stdin must follow an image"),
                                           (("img", "--stdin=log"), 'invalid stdin mode "log"'),
                                           (("img", "--stderr=bogus"), 'invalid stderr mode "bogus"'),
                                           (("img", "--stdout="), "--stdout needs a value")])
def test_bad_stdio_flags_are_refused(args: tuple[str, ...], why: str) -> None:
    with pytest.raises(UsageError, match=why):
        parse(*args)


def test_stage1_flags_are_the_stage1_image_kinds() -> None:
    # stage1_choice reads the kinds off the flags, so that run does without stage1image's import
    from pyrkt.cli.commands.run import STAGE1_FLAGS
    from pyrkt.stage0.stage1image import KINDS

    assert tuple(f.name.removeprefix("stage1-") for f in STAGE1_FLAGS) == KINDS
