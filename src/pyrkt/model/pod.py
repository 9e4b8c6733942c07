"""The appc pod manifest (``$P/pod``): the reified description of a pod's apps.

Every app names its image by id and carries its resolved ``app`` section (image defaults with
the user's per-app flags applied), so a pod runs from its own manifest even after `image rm`.
"""

from __future__ import annotations

from pyrkt.model.image import AppSpec
from pyrkt.model.values import Value
from pyrkt.model.volumes import AppMount, Volume

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

AC_VERSION = "0.8.11"
SYSCTL_ISOLATOR = "os/unix/sysctl"


class RuntimeImage(Value):
    id: str
    name: str = ""
    labels: tuple[tuple[str, str], ...] = ()


class RuntimeApp(Value):
    name: str
    image: RuntimeImage
    app: AppSpec
    read_only_rootfs: bool = False
    annotations: tuple[tuple[str, str], ...] = ()
    mounts: tuple[AppMount, ...] = ()


class PodPort(Value):
    name: str
    host_port: int
    host_ip: str = ""
    # appc's podPort, which `app sandbox --port` gives (no app names the port then): 0 for none
    pod_port: int = 0
    protocol: str = "tcp"


class PodManifest(Value):
    apps: tuple[RuntimeApp, ...]
    ports: tuple[PodPort, ...] = ()
    volumes: tuple[Volume, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    user_annotations: tuple[tuple[str, str], ...] = ()
    user_labels: tuple[tuple[str, str], ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()  # --sysctl, kept as appc's pod isolator os/unix/sysctl
    isolators: tuple[tuple[str, Any], ...] = ()  # the other pod isolators of a --pod-manifest, as given

    def app(self, name: str) -> RuntimeApp | None:
        for a in self.apps:
            if a.name == name:
                return a
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "acVersion": AC_VERSION,
            "acKind": "PodManifest",
            "apps": [
                {
                    "name": a.name,
                    "image": {
                        "name": a.image.name,
                        "id": a.image.id,
                        "labels": [{"name": k, "value": v} for k, v in a.image.labels],
                    },
                    "app": a.app.to_appc(),
                    "readOnlyRootFS": a.read_only_rootfs,
                    "mounts": [m.to_json() for m in a.mounts],
                    "annotations": [{"name": k, "value": v} for k, v in a.annotations],
                }
                for a in self.apps
            ],
            "volumes": [v.to_json() for v in self.volumes],
            "isolators": ([{"name": SYSCTL_ISOLATOR, "value": dict(self.sysctls)}] if self.sysctls else [])
            + [{"name": n, "value": v} for n, v in self.isolators],
            "annotations": [{"name": k, "value": v} for k, v in self.annotations],
            "ports": [
                {"name": p.name, "hostPort": p.host_port, **({"hostIP": p.host_ip} if p.host_ip else {}),
                 **({"podPort": {"name": p.name, "protocol": p.protocol, "port": p.pod_port}} if p.pod_port else {})}
                for p in self.ports
            ],
            "userAnnotations": dict(self.user_annotations),
            "userLabels": dict(self.user_labels),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PodManifest:
        apps = []
        for a in d.get("apps") or ():
            img = a.get("image") or {}
            apps.append(
                RuntimeApp(
                    name=a["name"],
                    image=RuntimeImage(
                        id=img.get("id", ""),
                        name=img.get("name", ""),
                        labels=tuple((x["name"], x["value"]) for x in img.get("labels") or ()),
                    ),
                    app=AppSpec.from_appc(a.get("app") or {}),
                    read_only_rootfs=bool(a.get("readOnlyRootFS", False)),
                    annotations=tuple((x["name"], x["value"]) for x in a.get("annotations") or ()),
                    mounts=tuple(AppMount.from_json(m) for m in a.get("mounts") or ()),
                )
            )
        return cls(
            apps=tuple(apps),
            ports=tuple(PodPort(p["name"], int(p["hostPort"]), p.get("hostIP", ""),
                                int((p.get("podPort") or {}).get("port", 0)),
                                (p.get("podPort") or {}).get("protocol", "tcp")) for p in d.get("ports") or ()),
            volumes=tuple(Volume.from_json(v) for v in d.get("volumes") or ()),
            annotations=tuple((x["name"], x["value"]) for x in d.get("annotations") or ()),
            user_annotations=tuple((d.get("userAnnotations") or {}).items()),
            user_labels=tuple((d.get("userLabels") or {}).items()),
            sysctls=tuple((str(k), str(v)) for i in d.get("isolators") or () if i.get("name") == SYSCTL_ISOLATOR
                          for k, v in (i.get("value") or {}).items()),
            isolators=tuple((i["name"], i.get("value")) for i in d.get("isolators") or ()
                            if i.get("name") != SYSCTL_ISOLATOR),
        )
