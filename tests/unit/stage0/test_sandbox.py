"""The pure parts of mutable pods: `app sandbox --port` (rkt's form), `app add --mnt-volume`,
the pod port they leave in the manifest, and what `app rm` asks of pod init."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyrkt.errors import UsageError
from pyrkt.model import abi
from pyrkt.model.pod import PodManifest, PodPort
from pyrkt.model.volumes import Volume
from pyrkt.pods.pod import Pod
from pyrkt.pods.state import Dir
from pyrkt.stage0.sandbox import forget, mnt_volume, parse_sandbox_ports
from pyrkt.stage1.mutable import RUNNING, AppRunning


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


class Flavor:
    """What `app rm` asks of the default flavor; ``started``: the start a killed `app start`
    asked for, which pod init finishes while `app rm` is on its way."""

    def __init__(self, pod: Pod, started: bool) -> None:
        self.pod, self.started = pod, started
        self.calls: list[str] = []

    def stop_app(self, pod_dir: str, name: str, timeout: float) -> None:
        self.calls.append("stop")
        Path(self.pod.file(abi.app_status(name))).write_text("0")

    def remove_app(self, pod_dir: str, name: str) -> None:
        self.calls.append("rm")
        if self.started and not Path(self.pod.file(abi.app_status(name))).exists():
            raise AppRunning(f"app {name}: {RUNNING}")


@pytest.mark.parametrize(("stamps", "started_meanwhile", "calls"), [
    (["-created"], False, ["rm"]),  # created, never started
    (["-created", "-started"], False, ["stop", "rm"]),  # running
    (["-created"], True, ["rm", "stop", "rm"]),  # started by pod init after the state was read
])
def test_rm_stops_the_app_first_also_when_its_start_was_still_under_way(
        tmp_path: Path, stamps: list[str], started_meanwhile: bool, calls: list[str]) -> None:
    pod = Pod(str(tmp_path), "5e3a7f9c-0000-4000-8000-000000000001", Dir.RUN)
    status = Path(pod.file(abi.app_status("web")))
    status.parent.mkdir(parents=True)
    for stamp in stamps:
        Path(f"{status}{stamp}").write_text("")
    flavor = Flavor(pod, started_meanwhile)
    forget(flavor, pod, "web", 1.0)  # type: ignore[arg-type]
    assert flavor.calls == calls
