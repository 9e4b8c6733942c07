"""OCI/Docker image config -> pyrkt's Image, following docker2aci, and back (``oci_config``)."""

from __future__ import annotations

import pytest

from pyrkt.errors import ImageError
from pyrkt.fetch.convert import (
    appc_arch,
    image_from_config,
    oci_arch,
    oci_config,
    parse_env,
    parse_ports,
    parse_user,
    sanitize_name,
)
from pyrkt.model.image import AppSpec, Image, MountPoint, Port

DIFF = "sha256:" + "1" * 64


def config(**c: object) -> dict[str, object]:
    return {"architecture": "amd64", "os": "linux", "config": c, "rootfs": {"type": "layers", "diff_ids": [DIFF]}}


def test_exec_is_entrypoint_then_cmd_and_env_workdir_map() -> None:
    image = image_from_config(
        config(Entrypoint=["/bin/sh", "-c"], Cmd=["echo hi"], Env=["PATH=/bin", "EMPTY=", "A=b=c"], WorkingDir="/srv"),
        image_id="sha256:" + "2" * 64, name="example/app", tag="1.0", fmt="oci")
    assert image.app is not None
    assert image.app.exec == ("/bin/sh", "-c", "echo hi")
    assert image.app.environment == (("PATH", "/bin"), ("EMPTY", ""), ("A", "b=c"))
    assert image.app.working_directory == "/srv"
    assert image.labels == (("version", "1.0"), ("os", "linux"), ("arch", "amd64"))
    assert image.layers == (DIFF,) and image.display_name == "example/app:1.0"


def test_defaults_when_the_config_says_nothing() -> None:
    image = image_from_config(config(), image_id="sha256:" + "2" * 64, name="n", tag="latest", fmt="oci")
    assert image.app is not None
    assert (image.app.exec, image.app.user, image.app.group, image.app.working_directory) == ((), "0", "0", "/")


@pytest.mark.parametrize("user,expected", [
    ("", ("0", "0")), ("1000", ("1000", "1000")), ("1000:50", ("1000", "50")),
    ("app", ("app", "app")), ("app:staff", ("app", "staff")), ("app:", ("app", "app")),
])
def test_user_and_group_follow_docker2aci(user: str, expected: tuple[str, str]) -> None:
    assert parse_user(user) == expected


def test_exposed_ports_are_named_port_dash_protocol() -> None:
    assert parse_ports({"80/tcp": {}, "53/udp": {}, "8080": {}}) == (
        Port("53-udp", "udp", 53), Port("80-tcp", "tcp", 80), Port("8080-tcp", "tcp", 8080))
    with pytest.raises(ImageError, match="invalid exposed port"):
        parse_ports({"http/tcp": {}})


def test_volumes_become_mount_points_and_labels_annotations() -> None:
    image = image_from_config(config(Volumes={"/var/lib/data": {}}, Labels={"maintainer": "me"}),
                              image_id="sha256:" + "2" * 64, name="n", tag="t", fmt="docker")
    assert image.app is not None
    assert image.app.mount_points == (MountPoint("volume-var-lib-data", "/var/lib/data"),)
    assert image.annotations == (("maintainer", "me"),)


def test_odd_env_entries_do_not_crash() -> None:
    assert parse_env(["", "NOVALUE", "=x"]) == (("NOVALUE", ""),)
    with pytest.raises(ImageError, match="Env holds 3, not a string"):
        parse_env(["A=1", 3])


def test_arch_labels_use_appc_names() -> None:
    assert [appc_arch(a, v) for a, v in [("amd64", ""), ("arm64", "v8"), ("arm", "v7"), ("386", "")]] == \
        ["amd64", "aarch64", "armv7l", "i386"]


def test_config_without_diff_ids_is_refused() -> None:
    with pytest.raises(ImageError, match="rootfs.diff_ids"):
        image_from_config({"config": {}}, image_id="sha256:" + "2" * 64, name="n", tag="t", fmt="oci")


def test_names_made_from_file_names() -> None:
    assert sanitize_name("My_Image.tar") == "my_image"
    assert sanitize_name("Some Dir!") == "some-dir"
    assert sanitize_name("busybox-oci") == "busybox-oci"
    assert sanitize_name("___") == "image"


def test_oci_config_gives_the_same_app_back() -> None:
    app = AppSpec(exec=("/bin/app", "--serve"), user="app", group="staff", environment=(("A", "1"), ("B", "x=y")),
                  working_directory="/srv", ports=(Port("53-udp", "udp", 53), Port("80-tcp", "tcp", 80)),
                  mount_points=(MountPoint("volume-var-data", "/var/data"),))
    image = Image("sha512-00", "example.com/app", labels=(("version", "2.0"), ("os", "linux"), ("arch", "aarch64")),
                  app=app, annotations=(("maintainer", "me"),))
    config, lost = oci_config(image, [DIFF])
    assert lost == []
    assert (config["os"], config["architecture"]) == ("linux", "arm64")
    back = image_from_config(config, image_id="sha256:" + "3" * 64, name="example.com/app", tag="2.0", fmt="oci")
    assert back.app == app
    assert back.labels == image.labels and back.annotations == image.annotations and back.layers == (DIFF,)


def test_oci_config_names_what_it_cannot_hold() -> None:
    app = AppSpec(exec=("/x",), supplementary_gids=(5,), isolators=(("resource/memory", {"limit": "1G"}),),
                  ports=(Port("http", "tcp", 80, count=2),), mount_points=(MountPoint("data", "/data", read_only=True),))
    config, lost = oci_config(Image("sha512-00", "app", app=app), [DIFF])
    assert lost == ["isolators", "supplementaryGIDs", "port names", "mount point names", "read-only mount points"]
    assert config["config"]["ExposedPorts"] == {"80/tcp": {}, "81/tcp": {}}  # type: ignore[index]


@pytest.mark.parametrize("arch", ["amd64", "i386", "aarch64", "armv6l", "armv7l", "ppc64le", "s390x"])
def test_oci_arch_is_the_reverse_of_appc_arch(arch: str) -> None:
    assert appc_arch(*oci_arch(arch)) == arch


GOOD = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [DIFF]},
        "config": {"User": "", "Env": None, "Cmd": "sh", "Entrypoint": None, "Volumes": {"/a": None, "/b": {}},
                   "Labels": None, "ExposedPorts": {"80/tcp": {}}, "WorkingDir": "", "ArgsEscaped": True,
                   "Memory": 0},
        "history": [{"created_by": "x", "empty_layer": True}]}


@pytest.mark.parametrize("where, value, field, shown, want", [
    ("config", {"User": 5}, "config.User", "a number (5)", "a string"),
    ("config", {"User": ["root"]}, "config.User", "an array", "a string"),
    ("config", {"Env": ["A=1", 3]}, "config.Env", "an array whose item 1 is a number (3)", "an array of strings"),
    ("config", {"Env": "A=1"}, "config.Env", 'a string ("A=1")', "an array of strings"),
    ("config", {"Cmd": ["sh", None]}, "config.Cmd", "an array whose item 1 is null", "an array of strings"),
    ("config", {"Entrypoint": {"a": "b"}}, "config.Entrypoint", "an object", "an array of strings"),
    ("config", {"WorkingDir": 1}, "config.WorkingDir", "a number (1)", "a string"),
    ("config", {"ExposedPorts": ["80/tcp"]}, "config.ExposedPorts", "an array", "an object of empty objects"),
    ("config", {"ExposedPorts": {"80/tcp": 1}}, "config.ExposedPorts", "an object whose '80/tcp' is a number (1)",
     "an object of empty objects"),
    ("config", {"Labels": {"a": 1}}, "config.Labels", "an object whose 'a' is a number (1)", "an object of strings"),
    ("config", {"Labels": {"a": None}}, "config.Labels", "an object whose 'a' is null", "an object of strings"),
    ("config", {"Volumes": ["/data"]}, "config.Volumes", "an array", "an object of empty objects"),
    ("config", {"Memory": "1g"}, "config.Memory", 'a string ("1g")', "an integer"),
    ("top", {"os": 5}, "os", "a number (5)", "a string"),
    ("top", {"architecture": ["amd64"]}, "architecture", "an array", "a string"),
    ("top", {"config": "x"}, "config", "a string", "an object"),
    ("top", {"history": [{"empty_layer": "no"}]}, "history[0].empty_layer", 'a string ("no")', "a boolean"),
])
def test_config_fields_of_the_wrong_type_are_refused_naming_field_and_image(
        where: str, value: dict[str, object], field: str, shown: str, want: str) -> None:
    assert image_from_config(GOOD, image_id="sha256:" + "2" * 64, name="n", tag="t", fmt="docker").app is not None
    bad = {**GOOD, "config": {**GOOD["config"], **value}} if where == "config" else {**GOOD, **value}  # type: ignore[dict-item]
    what = "oci:/img: config sha256:" + "2" * 64
    with pytest.raises(ImageError) as e:
        image_from_config(bad, image_id="sha256:" + "2" * 64, name="n", tag="t", fmt="docker", what=what)
    assert str(e.value) == f"{what}: {field} is {shown}, want {want}"


def test_docker_configs_upper_case_config_is_checked_too() -> None:
    with pytest.raises(ImageError, match=r"^c: Config.User is a number \(5\), want a string$"):
        image_from_config({**GOOD, "config": None, "Config": {"User": 5}}, image_id="sha256:" + "2" * 64, name="n",
                          tag="t", fmt="docker", what="c")
