"""The flags the fly flavor cannot honour (its one app shares the host's network, UTS, IPC and
PID namespaces, has the host's whole /dev and no cgroup): refused in one line before anything
is prepared, or named in a `warning:` line; what it is made for (`--net=host`, no `--net`)
passes silently."""

from __future__ import annotations

import pytest

from pyrkt.cli.commands.apps import parse_pod_and_apps
from pyrkt.cli.commands.run import RUN_FLAGS, run_options
from pyrkt.cli.flags import FlagSet
from pyrkt.config import Config
from pyrkt.errors import UsageError
from pyrkt.model.devices import HostDevice
from pyrkt.model.stdio import mode_annotations
from pyrkt.stage0.prepare import fly_pod
from pyrkt.stage0.run import RunOptions, check_options, fly_options


def fly_run(*args: str) -> RunOptions:
    """`run --stage1-name=fly ARGS IMG` as the CLI makes its run options."""
    flags = FlagSet(RUN_FLAGS)
    values, apps = parse_pod_and_apps(flags, [*args, "busybox"])
    assert len(apps) == 1
    values["stage1_name"] = "fly"
    return run_options(values, flags.given)


@pytest.mark.parametrize("args", [(), ("--net=host",), ("--net=host", "--ipc=parent", "--pid=host"), ("--ipc=auto",)])
def test_fly_takes_the_hosts_namespaces_silently(capsys: pytest.CaptureFixture[str], args: tuple[str, ...]) -> None:
    check_options(Config(), fly_run(*args))
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize(("args", "line"), [
    (("--net=none",), "--net=none cannot be used with the fly flavor: its app shares the host's network "
                      "(only --net=host)"),
    (("--net=default",), "--net=default cannot be used with the fly flavor"),
    (("--net",), "--net=default cannot be used with the fly flavor"),
    (("--net=mynet:IP=10.1.0.5",), "--net=mynet:IP=10.1.0.5 cannot be used with the fly flavor"),
    (("--ipc=private",), "--ipc=private cannot be used with the fly flavor: its app shares the host's IPC namespace"),
    (("--pid=private",), "--pid=private: the fly flavor's apps share the host's PID namespace"),
    (("--interactive",), "the fly flavor does not support --interactive"),
])
def test_fly_refuses_namespaces_and_modes_it_cannot_give(capsys: pytest.CaptureFixture[str], args: tuple[str, ...],
                                                         line: str) -> None:
    with pytest.raises(UsageError) as err:
        check_options(Config(), fly_run(*args))
    assert str(err.value).startswith(line)
    assert capsys.readouterr() == ("", "")  # no warning before a refusal


def test_fly_warns_that_hostname_is_ignored_as_rkts_fly(capsys: pytest.CaptureFixture[str]) -> None:
    check_options(Config(), fly_run("--hostname=flyhost"))
    assert capsys.readouterr() == ("", "warning: --hostname=flyhost is not supported by the fly flavor (its app "
                                       "shares the host's hostname): ignored\n")


def test_run_prepared_checks_a_fly_pods_flags_by_its_recorded_flavor() -> None:
    with pytest.raises(UsageError, match="^--net=none cannot be used with the fly flavor"):
        fly_options(RunOptions(net=["none"], net_given=True))
    fly_options(RunOptions())  # run-prepared with no flag: the default --net is not the user's


def test_only_given_flags_count_as_given() -> None:
    assert not fly_run().net_given
    assert fly_run("--net=host").net_given


def device(target: str = "", access: str = "rwm") -> HostDevice:
    return HostDevice("/dev/fuse", "c", 10, 229, access=access, target=target)


def test_fly_pod_takes_one_app_with_default_streams_and_host_devices() -> None:
    assert fly_pod([("app", ())], False, (device(),)) == []
    assert fly_pod([("app", ())], False, (device(access="mrw"),)) == []


@pytest.mark.parametrize(("apps", "ports", "devices", "line"), [
    ([("a", ()), ("b", ())], False, (), "the fly flavor runs exactly one app, not 2"),
    ([("a", ())], True, (), "--port cannot be used with the fly flavor: its app shares the host's network"),
    ([("a", tuple(mode_annotations("", "null", "")))], False, (),
     "app a: the fly flavor does not support --stdin, --stdout or --stderr"),
    ([("a", ())], False, (device(target="/dev/myfuse"),),
     "--device=/dev/fuse:/dev/myfuse:rwm: the fly flavor binds the host's /dev as it is"),
])
def test_fly_pod_refuses_what_it_cannot_lay_out(apps: list[tuple[str, tuple[tuple[str, str], ...]]], ports: bool,
                                                devices: tuple[HostDevice, ...], line: str) -> None:
    with pytest.raises(UsageError) as err:
        fly_pod(apps, ports, devices)
    assert str(err.value).startswith(line)


def test_fly_pod_warns_that_a_devices_access_is_not_applied() -> None:
    assert fly_pod([("a", ())], False, (device(access="r"),)) == [
        "--device=/dev/fuse:r: the fly flavor has no device allow-list, its app may use every device of the "
        "host's /dev: access r ignored"]
