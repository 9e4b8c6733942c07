"""The appc ImageManifest written by `image export` and `image extract`, from the internal Image."""

from __future__ import annotations

from pyrkt.model.image import AppSpec, Image, Port
from pyrkt.store.aci import ac_identifier, ac_name, image_manifest


def test_manifest_carries_name_labels_app_and_annotations() -> None:
    image = Image(
        id="sha256:" + "a" * 64, name="registry-1.docker.io/library/nginx",
        labels=(("version", "1.25"), ("os", "linux"), ("arch", "amd64")),
        app=AppSpec(exec=("/docker-entrypoint.sh", "nginx"), user="101", group="101",
                    environment=(("PATH", "/usr/bin"), ("NGINX_VERSION", "1.25")), working_directory="/srv",
                    ports=(Port("80-tcp", "tcp", 80),)),
        annotations=(("org.opencontainers.image.authors", "someone"),),
    )
    m = image_manifest(image)
    assert m["acKind"] == "ImageManifest"
    assert m["acVersion"] == "0.8.11"
    assert m["name"] == "registry-1.docker.io/library/nginx"
    assert m["labels"] == [{"name": "version", "value": "1.25"}, {"name": "os", "value": "linux"},
                           {"name": "arch", "value": "amd64"}]
    app = m["app"]
    assert app["exec"] == ["/docker-entrypoint.sh", "nginx"]
    assert (app["user"], app["group"], app["workingDirectory"]) == ("101", "101", "/srv")
    assert app["environment"] == [{"name": "PATH", "value": "/usr/bin"}, {"name": "NGINX_VERSION", "value": "1.25"}]
    assert app["ports"] == [{"name": "80-tcp", "protocol": "tcp", "port": 80, "count": 1, "socketActivated": False}]
    assert m["annotations"] == [{"name": "org.opencontainers.image.authors", "value": "someone"}]


def test_image_without_a_command_has_no_app_section() -> None:
    m = image_manifest(Image(id="sha256:" + "b" * 64, name="base", app=AppSpec()))
    assert "app" not in m
    assert "labels" not in m


def test_names_are_made_valid_ac_identifiers_and_names() -> None:
    assert ac_identifier("Host:5000/My_App") == "host-5000/my_app"
    assert ac_identifier("::") == "image"
    assert ac_name("com.example/Some Key!") == "com.example/some-key"
    assert ac_name("--") == ""


def test_a_name_label_and_duplicate_or_empty_keys_are_dropped() -> None:
    image = Image(id="sha256:" + "c" * 64, name="x", labels=(("name", "n"), ("version", "1"), ("Version", "2")),
                  annotations=(("!!", "v"), ("a", "1"), ("A", "2")))
    m = image_manifest(image)
    assert m["labels"] == [{"name": "version", "value": "1"}]
    assert m["annotations"] == [{"name": "a", "value": "1"}]
