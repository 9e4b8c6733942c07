"""Mount propagation of host volumes (pyrkt's ``propagation=rslave|rshared``, the CRI's
HostToContainer and Bidirectional), without root: the volume syntax, the check of the source's
host mount, the plan's binds, and the executor's chain host namespace -> app namespace through
the recording kernel. tests/integration/test_mount_propagation.py proves it on the kernel."""

from __future__ import annotations

import pytest

from pyrkt.errors import PyrktError, UsageError
from pyrkt.kernel import mount as kmount
from pyrkt.kernel.namespaces import CLONE_NEWNS
from pyrkt.kernel.recording import RecordingKernel
from pyrkt.model.abi import RuntimeConfig
from pyrkt.model.image import AppSpec
from pyrkt.model.plan import EtcFiles
from pyrkt.model.pod import RuntimeApp, RuntimeImage
from pyrkt.model.volumes import AppMount, Volume, parse_volume
from pyrkt.stage0 import volumes as stage0_volumes
from pyrkt.stage1 import execute, plan

ETC = EtcFiles("/pod/etc/hostname")
VOLUMES = (Volume("plain", "host", "/srv/plain"), Volume("down", "host", "/srv/down", propagation="rslave"),
           Volume("both", "host", "/srv/both", propagation="rshared", read_only=True),
           Volume("priv", "host", "/srv/priv", propagation="private"))


def app(*mounts: AppMount) -> RuntimeApp:
    return RuntimeApp("web", RuntimeImage("sha256:x"), AppSpec(exec=("/bin/true",)), mounts=mounts)


def app_plan(*mounts: AppMount) -> plan.AppPlan:
    ra = app(*mounts)
    return plan.app_plan(ra, RuntimeConfig(uuid="u"), lowers=("/l",), upper="/u", work="/w", rootfs="/r", log="",
                         seccomp=b"", etc=ETC, volumes=plan.volume_mounts(ra, VOLUMES, "/pod/shared"))


def test_the_volume_flag_takes_a_propagation_for_host_volumes_only() -> None:
    assert parse_volume("v,kind=host,source=/s,propagation=rslave").propagation == "rslave"
    assert parse_volume("v,kind=host,source=/s").propagation is None
    vol = parse_volume("v,kind=host,source=/s,propagation=rshared")
    assert Volume.from_json(vol.to_json()) == vol and vol.to_json()["propagation"] == "rshared"
    with pytest.raises(UsageError, match="invalid propagation 'shared': want private, rslave, rshared"):
        parse_volume("v,kind=host,source=/s,propagation=shared")
    with pytest.raises(UsageError, match="propagation is for host volumes only"):
        parse_volume("v,kind=empty,propagation=rslave")
    with pytest.raises(UsageError, match="unknown volume parameter 'bind-propagation'"):
        parse_volume("v,kind=host,source=/s,bind-propagation=rslave")


MOUNTINFO = """\
22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
30 22 0:40 / /srv rw,relatime shared:5 - tmpfs tmpfs rw
31 30 0:41 / /srv/down rw,relatime master:5 - tmpfs tmpfs rw
32 22 0:42 / /srvx rw shared:9 - tmpfs tmpfs rw
"""


def test_the_mount_a_source_is_on_and_its_propagation_come_from_mountinfo() -> None:
    assert kmount.propagation("/srv/both/x", MOUNTINFO) == ("/srv", "shared")
    assert kmount.propagation("/srv/down", MOUNTINFO) == ("/srv/down", "slave")
    assert kmount.propagation("/srvy", MOUNTINFO) == ("/", "private")  # /srvx is no parent of /srvy


def test_prepare_refuses_a_source_whose_mount_cannot_carry_the_propagation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kmount, "propagation", lambda path: ("/srv", "slave"))
    stage0_volumes.check_propagation(Volume("down", "host", "/srv/a", propagation="rslave"))
    with pytest.raises(UsageError) as e:
        stage0_volumes.check_propagation(Volume("both", "host", "/srv/a", propagation="rshared"))
    assert str(e.value) == ("volume both: propagation=rshared needs a source on a shared mount: /srv/a is on /srv, "
                            "which is slave (`mount --make-rshared /srv` makes it shared)")
    monkeypatch.setattr(kmount, "propagation", lambda path: ("/", "private"))
    with pytest.raises(UsageError, match="on a shared or slave mount: /srv/a is on /, which is private"):
        stage0_volumes.check_propagation(Volume("down", "host", "/srv/a", propagation="rslave"))


def test_the_plan_marks_only_the_volumes_that_asked_and_fly_refuses_them() -> None:
    ra = app(AppMount("plain", "/p"), AppMount("down", "/d"), AppMount("both", "/b"), AppMount("priv", "/v"))
    assert [(m.target, m.propagation) for m in plan.volume_mounts(ra, VOLUMES, "/s")] == [
        ("/p", ""), ("/d", "rslave"), ("/b", "rshared"), ("/v", "")]
    with pytest.raises(UsageError, match="volume down: propagation=rslave works with the default flavor only"):
        plan.volume_mounts(ra, VOLUMES, "/s", recursive=False, propagation=False)


@pytest.mark.parametrize("target", ["/", "/etc", "/dev", "/data"])
def test_a_bidirectional_volume_may_hold_none_of_the_apps_own_mounts(target: str) -> None:
    mounts = [AppMount("both", target)] + ([AppMount("plain", "/data/sub")] if target == "/data" else [])
    with pytest.raises(UsageError, match=f"volume at {target} with propagation=rshared would send pyrkt's own mount"):
        app_plan(*mounts)
    app_plan(AppMount("down", "/etc"))  # a slave sends nothing back


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/null", "/dev//tty"])
def test_a_volume_over_a_device_node_pyrkt_makes_is_refused_naming_it(target: str) -> None:
    with pytest.raises(UsageError, match=f"^app web: volume at {target}: pyrkt makes the device node {target} there; "
                                         "mount it elsewhere$"):
        app_plan(AppMount("plain", target))
    app_plan(AppMount("plain", "/dev/zeros"))


def test_the_app_copies_its_propagating_volumes_in_the_host_namespace_then_attaches_them() -> None:
    p = app_plan(AppMount("plain", "/p"), AppMount("down", "/d"), AppMount("both", "/b"))
    k = RecordingKernel()
    trees = execute.clone_propagated(k, p, host_mntns=7)
    assert k.calls == [("setns", 7, CLONE_NEWNS), ("clone_volume", "/srv/down", True),
                       ("clone_volume", "/srv/both", True)]
    assert trees == {"/d": 1000, "/b": 1001}
    k = RecordingKernel()
    execute.set_up_root(k, p, trees=trees)
    volume_calls = [c for c in k.calls if c[0] in ("bind_in_root", "attach_in_root")]
    assert volume_calls == [("bind_in_root", "/srv/plain", "/r", "/p", True, False),
                            ("attach_in_root", 1000, "/r", "/d", False, "rslave"),
                            ("attach_in_root", 1001, "/r", "/b", True, "rshared")]
    assert k.names().index("make_rprivate") < k.names().index("attach_in_root")  # the rest stays private
    assert trees == {}


def test_an_app_without_propagating_volumes_never_leaves_the_pods_namespace() -> None:
    k = RecordingKernel()
    assert execute.clone_propagated(k, app_plan(AppMount("plain", "/p")), host_mntns=-1) == {}
    assert k.calls == []
    with pytest.raises(PyrktError, match="propagation=rslave needs the host's mount namespace"):
        execute.clone_propagated(k, app_plan(AppMount("down", "/d")), host_mntns=-1)
