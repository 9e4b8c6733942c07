"""The ``image`` flavor's pure side: reading a stage1 manifest's annotations and rkt's ``run``
argv per stage1 interface version."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from pyrkt.errors import PyrktError, UsageError
from pyrkt.model import abi
from pyrkt.stage1 import flavor
from pyrkt.stage1.image import (
    dns_conf_mode,
    entrypoint,
    interface_version,
    manifest_annotations,
    pod_pid,
    run_argv,
)

FULL = abi.RuntimeConfig(uuid="u-1", net=("default",), hostname="h", interactive=True, debug=True,
                         disable_capabilities=True, disable_paths=True, disable_seccomp=True, ipc="private",
                         config_dirs=("/usr/lib/pyrkt", "/etc/pyrkt"), dns=abi.Dns(mode="flags", servers=("10.0.0.1",)),
                         hosts_from_host=True)


def test_run_argv_of_a_version_6_stage1_has_every_flag_in_rkts_order() -> None:
    argv, warnings = run_argv("/p/stage1/rootfs/init", FULL, 6)
    assert argv == ["/p/stage1/rootfs/init", "--debug", "--net=default", "--interactive", "--local-config=/etc/pyrkt",
                    "--hostname=h", "--dns-conf-mode=resolv=stage0,hosts=host", "--disable-capabilities-restriction",
                    "--disable-paths", "--disable-seccomp", "--ipc=private", "u-1"]
    assert warnings == []


def test_an_older_stage1_gets_no_newer_flags_and_a_warning_for_each_asked_for() -> None:
    argv, warnings = run_argv("/r", FULL, 1)
    assert argv == ["/r", "--debug", "--net=default", "--interactive", "--local-config=/etc/pyrkt", "u-1"]
    assert warnings == ["--hostname option is not supported by stage1", "--dns-conf-mode option not supported by stage1",
                        "--ipc option is not supported by stage1"]
    argv, warnings = run_argv("/r", FULL, 3)
    assert "--disable-seccomp" in argv and "--hostname=h" in argv and len(warnings) == 2
    argv, warnings = run_argv("/r", FULL.replace(pid="host"), 6)
    assert warnings == ["--pid=host option is not supported by stage1"] and not any("pid" in a for a in argv)


def test_defaults_add_no_optional_flag_and_networks_are_one_comma_list() -> None:
    config = abi.RuntimeConfig(uuid="u", net=("a:IP=10.1.1.1", "b"))
    assert run_argv("/r", config, 6) == (["/r", "--net=a:IP=10.1.1.1,b", "u"], [])


@pytest.mark.parametrize(("dns", "hosts", "host_hosts", "want"), [
    ("", (), False, ("default", "default")), ("host", (), False, ("host", "default")),
    ("none", (("10.0.0.1", "db"),), False, ("none", "stage0")), ("flags", (), True, ("stage0", "host")),
])
def test_dns_conf_mode_follows_rkts_flags(dns: str, hosts: tuple[tuple[str, str], ...], host_hosts: bool,
                                          want: tuple[str, str]) -> None:
    config = abi.RuntimeConfig(uuid="u", dns=abi.Dns(mode=dns), hosts=hosts, hosts_from_host=host_hosts)
    assert dns_conf_mode(config) == want


def test_annotations_and_interface_version_as_rkt_reads_them() -> None:
    ann = manifest_annotations({"annotations": [{"name": "coreos.com/rkt/stage1/run", "value": "/init"}]}, "m")
    assert ann == {"coreos.com/rkt/stage1/run": "/init"}
    assert interface_version(ann, "m") == 1  # no annotation: version 1
    assert interface_version({"coreos.com/rkt/stage1/interface-version": "5"}, "m") == 5
    with pytest.raises(PyrktError, match="'five' is not a number"):
        interface_version({"coreos.com/rkt/stage1/interface-version": "five"}, "m")
    with pytest.raises(PyrktError, match="not a name/value pair"):
        manifest_annotations({"annotations": [{"name": "x"}]}, "m")


def test_an_entrypoint_is_a_path_in_the_stage1_rootfs_and_a_missing_one_is_named() -> None:
    ann = {"coreos.com/rkt/stage1/stop": "/bin/stop"}
    assert entrypoint("/pod", ann, "stop") == "/pod/stage1/rootfs/bin/stop"
    with pytest.raises(UsageError, match="enter is not implemented by the pod's stage1 image .*stage1/enter annotation"):
        entrypoint("/pod", ann, "enter")


def test_the_pid_to_enter_is_the_pid_file_or_the_one_child_of_ppid(tmp_path: Path) -> None:
    assert pod_pid(str(tmp_path)) is None
    child = os.fork()
    if child == 0:
        time.sleep(30)
        os._exit(0)
    try:
        (tmp_path / "ppid").write_text(f"{os.getpid()}\n")  # this process: its one child is the pod's
        assert pod_pid(str(tmp_path)) == child
        (tmp_path / "pid").write_text("4242\n")
        assert pod_pid(str(tmp_path)) == 4242
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)


def test_built_in_flavors_and_rkts_names_for_them_are_not_images() -> None:
    assert flavor.built_in("coreos.com/rkt/stage1-fly") == "fly"
    assert flavor.built_in("default") == "default"
    assert flavor.built_in("image") is None and flavor.built_in("example.com/stage1") is None


def test_each_apps_root_is_an_overlay_of_its_layers_at_opt_stage2(tmp_path: Path) -> None:
    from pyrkt.kernel.recording import RecordingKernel
    from pyrkt.model.image import AppSpec
    from pyrkt.model.pod import PodManifest, RuntimeApp, RuntimeImage
    from pyrkt.stage1.image import mount_apps

    apps = tuple(RuntimeApp(n, RuntimeImage("sha512-x"), AppSpec(exec=("/bin/true",))) for n in ("web", "db"))
    (tmp_path / "pod").write_text(json.dumps(PodManifest(apps=apps).to_json()))
    for n in ("web", "db"):
        (tmp_path / "appsinfo" / n).mkdir(parents=True)
        (tmp_path / "appsinfo" / n / "layers").write_text(json.dumps([f"/store/{n}-bottom", f"/store/{n}-top"]))
        (tmp_path / "overlay" / n).mkdir(parents=True)
    (tmp_path / "overlay" / "db").rmdir()  # db was prepared --no-overlay: its rootfs is a copy, not mounted
    k = RecordingKernel()
    mount_apps(k, str(tmp_path))
    p = str(tmp_path)
    assert k.calls == [
        ("overlay", (f"/store/{n}-top", f"/store/{n}-bottom"), f"{p}/overlay/{n}/upper", f"{p}/overlay/{n}/work",
         f"{p}/stage1/rootfs/opt/stage2/{n}/rootfs") for n in ("web",)]
