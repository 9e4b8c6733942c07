"""A pod manifest the user wrote (``--pod-manifest=FILE``): read and checked as appc's schema
and rkt's stage0 do, and reified against its images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pyrkt.errors import ImageError, UsageError
from pyrkt.model.image import AppSpec, Image, Port
from pyrkt.model.pod import RuntimeImage
from pyrkt.stage0.podmanifest import image_argument, parse, read, reify

ID = "sha256:" + "ab" * 32
IMAGE = Image(id=ID, name="example.com/web", labels=(("version", "1.0"), ("os", "linux")),
              app=AppSpec(exec=("/bin/httpd", "-f"), user="0", group="0", ports=(Port("http", "tcp", 80),),
                          isolators=(("resource/memory", {"limit": "1G"}),)))


def app(name: str = "web", **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": {"id": ID}, **extra}


def pod(*apps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"acVersion": "0.8.11", "acKind": "PodManifest", "apps": list(apps or [app()]), **extra}


def load(d: Any) -> Any:
    return parse(json.dumps(d), "pod.json")


def test_a_full_manifest_is_read_with_every_part() -> None:
    section = {"exec": ["/bin/sh", "-c", "echo hi"], "user": "1000", "group": "1000", "workingDirectory": "/tmp",
               "environment": [{"name": "A", "value": "1"}], "userAnnotations": {"owner": "ops"},
               "isolators": [{"name": "os/linux/no-new-privileges", "value": True}]}
    f = load(pod(
        app("web", image={"id": ID[:20], "name": "example.com/web", "labels": [{"name": "version", "value": "1.0"}]},
            annotations=[{"name": "example.com/team", "value": "blue"}],
            mounts=[{"volume": "data", "path": "/data"}]),
        app("side", app=section),
        volumes=[{"name": "data", "kind": "empty"}],
        ports=[{"name": "http", "hostPort": 8080, "hostIP": "127.0.0.1"}],
        isolators=[{"name": "os/unix/sysctl", "value": {"net.ipv4.ip_forward": "1"}},
                   {"name": "resource/cpu", "value": {"limit": "1"}}],
        annotations=[{"name": "created-by", "value": "hand"}],
        userAnnotations={"a": "b"}, userLabels={"tier": "front"}))
    m = f.manifest
    assert f.image_apps == {"web"} and f.notes == ()
    assert [a.name for a in m.apps] == ["web", "side"]
    assert m.apps[0].image == RuntimeImage(ID[:20], "example.com/web", (("version", "1.0"),))
    assert m.apps[0].annotations == (("example.com/team", "blue"),)
    assert m.apps[0].mounts[0].volume == "data"
    side = m.apps[1].app
    assert (side.exec, side.user, side.working_directory) == (("/bin/sh", "-c", "echo hi"), "1000", "/tmp")
    assert side.user_annotations == (("owner", "ops"),)
    assert side.isolators == (("os/linux/no-new-privileges", True),)
    assert m.volumes[0].kind == "empty"
    assert (m.ports[0].name, m.ports[0].host_port, m.ports[0].host_ip) == ("http", 8080, "127.0.0.1")
    assert m.sysctls == (("net.ipv4.ip_forward", "1"),)
    assert m.isolators == (("resource/cpu", {"limit": "1"}),)
    assert m.annotations == (("created-by", "hand"),)
    assert (m.user_annotations, m.user_labels) == ((("a", "b"),), (("tier", "front"),))


@pytest.mark.parametrize("text, message", [
    ("{", "invalid JSON"),
    ("[]", "the pod manifest: want a JSON object"),
    (json.dumps({**pod(), "acKind": "ImageManifest"}), 'missing or bad ACKind (must be "PodManifest")'),
    (json.dumps({"apps": [app()]}), "missing or bad ACKind"),
    (json.dumps(pod(acVersion="latest")), 'acVersion "latest" is not a semantic version'),
    (json.dumps({**pod(), "apps": []}), "pod must contain at least one application"),
    (json.dumps(pod(app("Web"))), 'app name "Web" is not a valid AC Name'),
    (json.dumps(pod(app("web"), app("web"))), 'duplicate apps of name "web"'),
    (json.dumps(pod({"name": "web", "image": {"name": "example.com/web"}})), 'no image ID for app "web"'),
    (json.dumps(pod(app(image={"id": "busybox"}))), 'image id "busybox" is not an image ID'),
    (json.dumps(pod(volumes=[{"name": "data", "kind": "tmpfs"}])), "unrecognized volume kind"),
    (json.dumps(pod(volumes=[{"name": "data", "kind": "host", "source": "rel"}])), "must be an absolute path"),
    (json.dumps(pod(volumes=[{"name": "data", "kind": "empty"}, {"name": "data", "kind": "host", "source": "/x"}])),
     'duplicate volumes of name "data"'),
    (json.dumps(pod(app(mounts=[{"volume": "data"}]))), "app web: mount: want an object with a volume and a path"),
    (json.dumps(pod(app(app={"exec": ["/bin/true"], "group": "0"}))), "app web: app: user is required"),
    (json.dumps(pod(app(app={"exec": [], "user": "0", "group": "0"}))), "exec is empty"),
    (json.dumps(pod(app(app={"exec": ["x"], "user": "0", "group": "0", "workingDirectory": "tmp"}))),
     "workingDirectory must be an absolute path"),
    (json.dumps(pod(app(app={"exec": ["x"], "user": "0", "group": "0",
                             "environment": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}))),
     'duplicate environment variable of name "A"'),
    (json.dumps(pod(app(app={"exec": ["x"], "user": "0", "group": "0",
                             "eventHandlers": [{"name": "on-start", "exec": ["x"]}]}))), "bad eventHandler name"),
    (json.dumps(pod(app(annotations=[{"name": "Bad Name", "value": "x"}]))), "is not a valid AC Identifier"),
    (json.dumps(pod(annotations=[{"name": "a", "value": "1"}, {"name": "a", "value": "2"}])),
     'duplicate annotations of name "a"'),
    (json.dumps(pod(ports=[{"name": "http", "hostPort": 70000}])), "port http: hostPort: want a whole number"),
    (json.dumps(pod(ports=[{"name": "http", "hostPort": 80, "hostIP": "localhost"}])), "is not an IP address"),
    (json.dumps(pod(ports=[{"name": "x", "hostPort": 80, "podPort": {"name": "x", "port": 0}}])),
     "port x: podPort port: want a whole number from 1 to 65535"),
    (json.dumps(pod(ports=[{"name": "x", "hostPort": 80, "podPort": {"name": "x", "port": 80, "protocol": "sctp"}}])),
     'port x: podPort protocol "sctp" is not tcp or udp'),
    (json.dumps(pod(ports=[{"name": "x", "hostPort": 80, "podPort": {"port": 80, "socketActivated": True}}])),
     "podPort count and socketActivated are not honoured"),
    (json.dumps(pod(ports=[{"name": "x", "hostPort": 80, "podPort": {"port": 80, "count": 3}}])),
     "podPort count and socketActivated are not honoured"),
    (json.dumps(pod(ports=[{"name": "x", "hostPort": 80, "podPort": [80]}])), "port x: podPort must be an object"),
    (json.dumps(pod(isolators=[{"name": "os/unix/sysctl", "value": ["net.x"]}])),
     "isolator os/unix/sysctl: want a JSON object"),
    (json.dumps(pod(userLabels={"a": 1})), 'userLabels "a": want a string'),
    (json.dumps(pod(app(annotations=[{"name": "coreos.com/rkt/stage2/stdout", "value": "tty-ish"}]))),
     'app web: invalid stdout mode "tty-ish"'),
])
def test_a_malformed_manifest_is_one_line_naming_the_file_and_the_fault(text: str, message: str) -> None:
    with pytest.raises(UsageError) as err:
        parse(text, "pod.json")
    line = str(err.value)
    assert line.startswith("pod manifest pod.json: ") and message in line and "\n" not in line, line


def test_a_name_from_the_file_cannot_break_the_line() -> None:
    with pytest.raises(UsageError) as err:
        load(pod(app("web\n\x1b[2Jevil")))
    assert "\n" not in str(err.value) and "\x1b" not in str(err.value)


def test_unknown_fields_are_named_in_notes_not_dropped_silently() -> None:
    f = load(pod(app(mount=[{"volume": "x", "path": "/x"}]), volumnes=[]))
    assert f.notes == ('pod manifest pod.json: unknown field "volumnes" ignored',
                       'pod manifest pod.json: app web: unknown field "mount" ignored')


def test_an_unreadable_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=f"cannot read pod manifest {tmp_path}/missing.json: No such file"):
        read(str(tmp_path / "missing.json"))
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe")
    with pytest.raises(UsageError, match="pod manifest .*: (not UTF-8 text|invalid JSON)"):
        read(str(tmp_path / "bin.json"))


def test_an_app_without_an_app_section_takes_its_images_with_the_images_full_id_and_name() -> None:
    f = load(pod(app(image={"id": ID[:12]})))
    [web] = reify(f, [IMAGE]).apps
    assert web.app == IMAGE.app
    assert web.image == RuntimeImage(ID, "example.com/web", IMAGE.labels)


def test_an_app_section_replaces_the_images_as_a_whole() -> None:
    f = load(pod(app(app={"exec": ["/bin/echo", "override"], "user": "5", "group": "6"})))
    [web] = reify(f, [IMAGE]).apps
    assert (web.app.exec, web.app.user, web.app.group) == (("/bin/echo", "override"), "5", "6")
    assert web.app.ports == () and web.app.isolators == ()  # nothing of the image's app section is merged


def test_an_app_with_no_app_section_anywhere_is_refused() -> None:
    with pytest.raises(ImageError, match="no app section in the pod manifest or the image manifest"):
        reify(load(pod()), [IMAGE.replace(app=None)])


def test_forwarded_ports_must_name_one_apps_port_and_a_host_port_once() -> None:
    m = reify(load(pod(ports=[{"name": "http", "hostPort": 8080}])), [IMAGE])
    assert m.ports[0].host_port == 8080
    with pytest.raises(UsageError, match='port name "https" could not be found in any apps'):
        reify(load(pod(ports=[{"name": "https", "hostPort": 8443}])), [IMAGE])
    two = pod(ports=[{"name": "http", "hostPort": 8080}, {"name": "alt", "hostPort": 8080}],
              apps=[app(app={"exec": ["x"], "user": "0", "group": "0",
                             "ports": [{"name": "http", "protocol": "tcp", "port": 80},
                                       {"name": "alt", "protocol": "tcp", "port": 81}]})])
    with pytest.raises(UsageError, match="host port 8080/tcp is forwarded twice"):
        reify(load(two), [IMAGE])


def test_a_pod_port_forwards_to_the_pods_own_port_which_no_app_need_name() -> None:
    """rkt's podPort (`app sandbox --port`'s form) in a pod manifest: the host port goes to that
    port of the pod, whatever listens there; it reads back from the written manifest as given."""
    m = reify(load(pod(ports=[{"name": "dns", "hostPort": 5353, "hostIP": "127.0.0.1",
                               "podPort": {"name": "dns", "protocol": "udp", "port": 53}}])), [IMAGE])
    (fwd,) = m.ports
    assert (fwd.name, fwd.host_port, fwd.host_ip, fwd.pod_port, fwd.protocol) == ("dns", 5353, "127.0.0.1", 53, "udp")
    assert reify(load(m.to_json()), [IMAGE]) == m
    both = pod(ports=[{"name": "http", "hostPort": 8080}, {"name": "raw", "hostPort": 8080,
                                                           "podPort": {"name": "raw", "protocol": "tcp", "port": 81}}])
    with pytest.raises(UsageError, match="host port 8080/tcp is forwarded twice"):
        reify(load(both), [IMAGE])


def test_the_written_manifest_reads_back_as_the_same_pod() -> None:
    """What `cat-manifest` prints is a pod manifest `--pod-manifest` takes."""
    m = reify(load(pod(app(annotations=[{"name": "k", "value": "v"}]), userAnnotations={"a": "b"},
                       isolators=[{"name": "resource/cpu", "value": {"limit": "1"}}])), [IMAGE])
    again = reify(load(m.to_json()), [IMAGE])
    assert again == m


def test_an_image_is_fetched_by_the_name_and_labels_it_has_in_the_manifest() -> None:
    assert image_argument(RuntimeImage(ID, "example.com/web", (("version", "1.0"), ("os", "linux")))) == \
        "example.com/web:1.0,os=linux"
    assert image_argument(RuntimeImage(ID, "example.com/web")) == "example.com/web"
