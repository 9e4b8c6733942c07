"""Reifying apps: names, exec, env precedence, user overrides."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pyrkt.errors import ImageError, InvalidState, UsageError
from pyrkt.model.image import AppSpec, Image, MountPoint
from pyrkt.model.pod import RuntimeApp
from pyrkt.stage0.prepare import (
    AppRequest,
    PodRequest,
    check_users,
    host_devices,
    merge_env,
    read_env_file,
    reify,
    unapplied_privileges,
    unhonoured,
)

IMAGE = Image(
    id="sha256:" + "ab" * 32,
    name="example.com/busybox",
    labels=(("version", "1.36"),),
    app=AppSpec(exec=("sh", "-c", "echo hi"), user="0", group="0", environment=(("PATH", "/bin"), ("A", "image"))),
)


def test_app_name_defaults_to_the_last_part_of_the_image_name() -> None:
    [app] = reify(PodRequest(apps=[AppRequest(image="x")]), [IMAGE])
    assert app.name == "busybox"
    assert app.app.exec == ("sh", "-c", "echo hi")


def test_two_apps_with_one_name_are_refused() -> None:
    with pytest.raises(UsageError, match="multiple apps with name busybox: "):
        reify(PodRequest(apps=[AppRequest(image="x"), AppRequest(image="x")]), [IMAGE, IMAGE])


def test_exec_replaces_entrypoint_and_cmd_and_args_are_appended() -> None:
    [app] = reify(PodRequest(apps=[AppRequest(image="x", exec="/bin/echo", args=["a", "b"])]), [IMAGE])
    assert app.app.exec == ("/bin/echo", "a", "b")
    [app] = reify(PodRequest(apps=[AppRequest(image="x", args=["more"])]), [IMAGE])
    assert app.app.exec == ("sh", "-c", "echo hi", "more")


def test_image_without_command_needs_exec() -> None:
    bare = Image(id=IMAGE.id, name="scratch", app=None)
    with pytest.raises(ImageError, match="no command"):
        reify(PodRequest(apps=[AppRequest(image="x")]), [bare])


def test_env_precedence_image_file_set_env_environment(tmp_path: Path) -> None:
    f = tmp_path / "env"
    f.write_text("; comment\n# another\nA=file\nF=file\n")
    req = PodRequest(apps=[AppRequest(image="x", environment=["E=app", "S=app"])],
                     set_env=["A=set", "S=set"], set_env_file=[str(f)])
    [app] = reify(req, [IMAGE])
    env = dict(app.app.environment)
    assert env == {"PATH": "/bin", "A": "set", "F": "file", "S": "app", "E": "app"}


def test_inherited_env_never_overrides_the_image(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("A", "parent")
    monkeypatch.setenv("ONLY_PARENT", "yes")
    [app] = reify(PodRequest(apps=[AppRequest(image="x")], inherit_env=True), [IMAGE])
    env = dict(app.app.environment)
    assert env["A"] == "image" and env["ONLY_PARENT"] == "yes"


def test_bad_env_syntax_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--set-env"):
        reify(PodRequest(apps=[AppRequest(image="x")], set_env=["NOEQUALS"]), [IMAGE])
    with pytest.raises(UsageError, match="^invalid --set-env 'A=\\\\udcff': not UTF-8 text$"):
        reify(PodRequest(apps=[AppRequest(image="x")], set_env=["A=\udcff"]), [IMAGE])
    with pytest.raises(UsageError, match="cannot read"):
        read_env_file(str(tmp_path / "missing"))
    (tmp_path / "latin1").write_bytes(b"A=1\nCAF\xc9=2\n")
    with pytest.raises(UsageError, match=f"^cannot read --set-env-file {tmp_path}/latin1: byte 7 is not UTF-8 text$"):
        read_env_file(str(tmp_path / "latin1"))


def test_merge_env_keeps_first_position_and_last_value() -> None:
    assert merge_env([("A", "1"), ("B", "1")], [("A", "2")]) == (("A", "2"), ("B", "1"))


def test_user_and_workdir_overrides() -> None:
    [app] = reify(PodRequest(apps=[AppRequest(image="x", user="app", group="staff", working_dir="/tmp",
                                              supplementary_gids="5,6")]), [IMAGE])
    assert (app.app.user, app.app.group, app.app.working_directory, app.app.supplementary_gids) == (
        "app", "staff", "/tmp", (5, 6))


def test_device_flag_takes_the_host_nodes_numbers_mode_and_owner() -> None:
    import os

    st = os.stat("/dev/null")
    [dev] = host_devices(["/dev/null:rw"])
    assert (dev.path, dev.kind, dev.major, dev.minor, dev.access) == ("/dev/null", "c", 1, 3, "rw")
    assert (dev.mode, dev.uid, dev.gid) == (st.st_mode & 0o7777, st.st_uid, st.st_gid)


def test_device_flag_may_put_the_node_at_another_path_under_dev() -> None:
    [dev] = host_devices(["/dev/null:/dev/sink:rw"])
    assert (dev.path, dev.target, dev.at, dev.major, dev.minor, dev.access) == (
        "/dev/null", "/dev/sink", "/dev/sink", 1, 3, "rw")
    [same] = host_devices(["/dev/null:/dev/./null"])
    assert same.target == "" and same.at == "/dev/null"


@pytest.mark.parametrize(("flag", "why"), [
    ("/dev/no-such-device", "No such file"), ("/dev/shm", "not a character or block device"),
    ("/etc/passwd", "under /dev"), ("/dev/../etc/passwd", "under /dev"), ("/dev/pts/ptmx", "every app's /dev has its own pts"),
    ("/dev/null:/etc/null", "container path must be under /dev"), ("/dev/null:/dev/../null", "under /dev"),
    ("/dev/null:/dev/shm/x", "every app's /dev has its own shm"),
])
def test_device_flag_naming_no_device_node_is_refused(flag: str, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        host_devices([flag])


def test_sysctls_are_checked_against_the_pods_namespaces_and_flavor() -> None:
    from pyrkt.stage0.prepare import pod_sysctls
    from pyrkt.stage0.run import RunOptions, sysctl_fields

    assert sysctl_fields(RunOptions(), "default") == {}
    opts = RunOptions(net=["none"], sysctl=["net.ipv4.ip_forward=1", "kernel.shmmni=100"])
    assert sysctl_fields(opts, "default") == {"sysctls": (("net.ipv4.ip_forward", "1"), ("kernel.shmmni", "100"))}
    with pytest.raises(UsageError, match="net.ipv4.ip_forward: .*--net=host"):
        sysctl_fields(RunOptions(net=["host"], sysctl=["net.ipv4.ip_forward=1"]), "default")
    with pytest.raises(UsageError, match="kernel.shmmni: .*--ipc=parent"):
        sysctl_fields(RunOptions(ipc="parent", sysctl=["kernel.shmmni=100"]), "default")
    with pytest.raises(UsageError, match="fly flavor"):
        pod_sysctls(["net.ipv4.ip_forward=1"], "fly")
    assert pod_sysctls([], "fly") == {}


def test_unknown_image_isolators_are_named_as_not_honoured_but_mount_points_are_honoured() -> None:
    spec = IMAGE.app.replace(isolators=(("resource/memory", {"limit": "1G"}),
                                        ("os/linux/capabilities-retain-set", {"set": ["CAP_CHOWN"]}),
                                        ("os/linux/selinux-context", {"user": "u", "role": "r", "type": "t"}),
                                        ("resource/block-bandwidth", {"default": True, "limit": "1M"})),
                             mount_points=(MountPoint("data", "/var/lib/data"),))
    image = IMAGE.replace(app=spec)
    apps = reify(PodRequest(apps=[AppRequest(image="x", name="db")]), [image])
    lines = unhonoured(apps, [image])
    assert [line.split(": ", 1)[1] for line in lines] == [  # resources and privileges are honoured: not named
        "isolator os/linux/selinux-context is not honoured yet: ignored",
        "isolator resource/block-bandwidth is not honoured yet: ignored",
    ]
    assert all(line.startswith("app db (image example.com/busybox") for line in lines)
    assert unhonoured(reify(PodRequest(apps=[AppRequest(image="x")]), [IMAGE]), [IMAGE]) == []


def test_privilege_flags_become_isolators_of_the_apps_manifest_replacing_the_images() -> None:
    spec = IMAGE.app.replace(isolators=(("os/linux/capabilities-remove-set", {"set": ["CAP_CHOWN"]}),
                                        ("os/linux/seccomp-retain-set", {"set": ["read"]})))
    image = IMAGE.replace(app=spec)
    (app,) = reify(PodRequest(apps=[AppRequest(image="x", caps_retain="CAP_NET_BIND_SERVICE",
                                               seccomp="mode=remove,errno=ENOTSUP,mkdir")]), [image])
    assert app.app.isolators == (
        ("os/linux/capabilities-retain-set", {"set": ["CAP_NET_BIND_SERVICE"]}),
        ("os/linux/seccomp-remove-set", {"set": ["mkdir"], "errno": "ENOTSUP"}))
    (app,) = reify(PodRequest(apps=[AppRequest(image="x")]), [image])
    assert app.app.isolators == spec.isolators  # without flags the image's stay


@pytest.mark.parametrize(("request_", "why"), [
    (AppRequest(image="x", name="db", caps_retain="CAP_KILL", caps_remove="CAP_CHOWN"),
     "app db: cannot use both --caps-retain and --caps-remove on the same image"),
    (AppRequest(image="x", name="db", seccomp="mode=remove,mkdirx"), "app db: unknown syscall 'mkdirx'"),
    (AppRequest(image="x", name="db", seccomp="mode=retain,@docker/nothing"), "unknown seccomp group"),
])
def test_bad_privilege_flags_are_refused_naming_the_app(request_: AppRequest, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        reify(PodRequest(apps=[request_]), [IMAGE])


def test_bad_privilege_isolators_of_an_image_are_refused() -> None:
    image = IMAGE.replace(app=IMAGE.app.replace(isolators=(("os/linux/capabilities-retain-set", {"set": ["CAP_X"]}),)))
    with pytest.raises(UsageError, match="unknown capability 'CAP_X'"):
        reify(PodRequest(apps=[AppRequest(image="x")]), [image])


def test_the_fly_flavor_names_the_privilege_isolators_it_does_not_apply() -> None:
    apps = reify(PodRequest(apps=[AppRequest(image="x", name="db", caps_remove="CAP_CHOWN")]), [IMAGE])
    assert unapplied_privileges(apps, "fly") == [
        "app db: isolator os/linux/capabilities-remove-set is not applied by the fly flavor: ignored"]
    assert unapplied_privileges(apps, "default") == []


def test_a_stage1_image_names_a_privileged_app_it_does_not_make_privileged() -> None:
    apps = reify(PodRequest(apps=[AppRequest(image="x", name="admin", annotations=[("pyrkt.io/privileged", "true")])]),
                 [IMAGE])
    assert unapplied_privileges(apps, "image") == ["app admin: --privileged is not applied by the image stage1"]
    assert unapplied_privileges(apps, "default") == unapplied_privileges(apps, "fly") == []  # fly's apps are so


def test_uuid_file_save_writes_into_a_fifo_or_a_link_and_replaces_only_a_regular_file(tmp_path: Path) -> None:
    from pyrkt.stage0.prepare import save_uuid

    save_uuid(str(tmp_path / "new"), "u1")
    (tmp_path / "target").write_text("old")
    (tmp_path / "link").symlink_to("target")
    save_uuid(str(tmp_path / "link"), "u2")  # written through, as rkt: /dev/stdout stays a link
    assert (tmp_path / "new").read_text() == "u1\n" and (tmp_path / "target").read_text() == "u2\n"
    assert (tmp_path / "link").is_symlink()
    os.mkfifo(tmp_path / "fifo")
    reader = os.open(tmp_path / "fifo", os.O_RDONLY | os.O_NONBLOCK)
    try:
        save_uuid(str(tmp_path / "fifo"), "u3")  # as /dev/null: never renamed over
        assert os.read(reader, 100) == b"u3\n"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo").st_mode)
    with pytest.raises(UsageError, match=f"^--uuid-file-save={tmp_path} is a directory$"):
        save_uuid(str(tmp_path), "u4")


def image_layers(tmp_path: Path, passwd: str | None, group: str | None = None) -> list[str]:
    """Two layers: the bottom one with /etc/passwd, the top one linking /etc/group to it (or not)."""
    bottom, top = tmp_path / "l0", tmp_path / "l1"
    (bottom / "etc").mkdir(parents=True)
    (top / "usr/lib").mkdir(parents=True)
    if passwd is not None:
        (bottom / "etc/passwd").write_text(passwd)
    if group is not None:
        (top / "usr/lib/group").write_text(group)
        (top / "etc").mkdir()
        os.symlink("../usr/lib/group", top / "etc/group")
    return [str(bottom), str(top)]


def users_app(user: str, group: str = "", mounts: tuple[str, ...] = ()) -> RuntimeApp:
    from pyrkt.model.pod import RuntimeImage
    from pyrkt.model.volumes import AppMount

    return RuntimeApp(name="web", image=RuntimeImage(IMAGE.id, IMAGE.name),
                      app=AppSpec(exec=("sh",), user=user, group=group),
                      mounts=tuple(AppMount(f"v{i}", p) for i, p in enumerate(mounts)))


def test_a_user_or_group_name_the_image_lacks_is_refused_naming_it_and_the_image(tmp_path: Path) -> None:
    layers = image_layers(tmp_path, "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
                          "root:x:0:\nstaff:x:50:app\n")
    for user, group in (("app", ""), ("root", "staff"), ("0", "0"), ("4242", "4343"), ("/bin/sh", "/bin/sh")):
        check_users([users_app(user, group)], [layers])
    with pytest.raises(InvalidState) as err:  # a CRI caller's FAILED_PRECONDITION
        check_users([users_app("nobody")], [layers])
    assert str(err.value) == "app 'web': user 'nobody' not found in /etc/passwd of image 'example.com/busybox'"
    with pytest.raises(InvalidState, match="group 'wheel' not found in /etc/group of image"):
        check_users([users_app("app", "wheel")], [layers])


def test_an_image_without_passwd_has_no_user_names(tmp_path: Path) -> None:
    layers = image_layers(tmp_path, None)
    check_users([users_app("65534")], [layers])
    with pytest.raises(InvalidState, match="user 'root' not found in /etc/passwd"):
        check_users([users_app("root")], [layers])


def test_a_user_database_mounted_over_is_left_for_the_start(tmp_path: Path) -> None:
    layers = image_layers(tmp_path, "root:x:0:0::/root:/bin/sh\n")
    check_users([users_app("nobody", mounts=("/etc/passwd",))], [layers])
    check_users([users_app("nobody", "wheel", mounts=("/etc/",))], [layers])
    with pytest.raises(InvalidState):
        check_users([users_app("nobody", mounts=("/etc/group", "/data"))], [layers])
