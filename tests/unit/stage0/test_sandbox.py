"""The pure parts of mutable pods: `app sandbox --port` (rkt's form), `app add --mnt-volume`,
and the pod port they leave in the manifest."""

from __future__ import annotations

import pytest

from pyrkt.errors import UsageError
from pyrkt.model.pod import PodManifest, PodPort
from pyrkt.model.volumes import Volume
from pyrkt.stage0.sandbox import mnt_volume, parse_sandbox_ports


def test_sandbox_port_names_the_pods_own_port() -> None:
    assert parse_sandbox_ports(["http:tcp:80:127.0.0.1:8080", "dns:udp:53:::1:5353"]) == (
        PodPort("http", 8080, "127.0.0.1", pod_port=80, protocol="tcp"),
        PodPort("dns", 5353, "::1", pod_port=53, protocol="udp"))


@pytest.mark.parametrize(("spec", "why"), [
    ("http:tcp:80:8080", "want NAME:PROTO:PODPORT:HOSTIP:HOSTPORT"),
    ("Http:tcp:80:127.0.0.1:8080", "not a valid AC Name"),
    ("http:sctp:80:127.0.0.1:8080", "invalid protocol 'sctp'"),
    ("http:tcp:0:127.0.0.1:8080", "'0' is not a port number"),
    ("http:tcp:80:127.0.0.1:70000", "'70000' is not a port number"),
    ("http:tcp:80:localhost:8080", "could not parse IP 'localhost'"),
])
def test_bad_sandbox_ports_are_refused_naming_what_is_wrong(spec: str, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        parse_sandbox_ports([spec])


def test_a_sandbox_port_survives_the_manifest_round_trip() -> None:
    manifest = PodManifest(apps=(), ports=(PodPort("http", 8080, "127.0.0.1", pod_port=80, protocol="tcp"),))
    doc = manifest.to_json()
    assert doc["ports"] == [{"name": "http", "hostPort": 8080, "hostIP": "127.0.0.1",
                             "podPort": {"name": "http", "protocol": "tcp", "port": 80}}]
    assert PodManifest.from_json(doc).ports == manifest.ports


def test_mnt_volume_is_a_volume_and_its_target_in_one_flag() -> None:
    volume, target = mnt_volume("name=data,kind=host,source=/srv,readOnly=true,target=/data")
    assert (volume, target) == (Volume("data", "host", source="/srv", read_only=True), "/data")
    volume, target = mnt_volume("target=/scratch,kind=empty,name=tmp")
    assert (volume.name, volume.kind, target) == ("tmp", "empty", "/scratch")


@pytest.mark.parametrize(("text", "why"), [
    ("name=data,kind=empty", "target=PATH"),
    ("name=data,kind=empty,target=rel", "target=PATH"),
    ("kind=empty,target=/x", "name=NAME"),
    ("name=data,target=/x", "no kind"),
])
def test_bad_mnt_volumes_are_refused(text: str, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        mnt_volume(text)
