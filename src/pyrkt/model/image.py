"""The internal image model: what to unpack (layers) and what to run (the app).

OCI, Docker schema 2 and appc ACI images all become an ``Image``; nothing downstream knows
which format an image came from, except ``format`` for display. Serialised as plain JSON
(``to_json``/``from_json``) into the store index and into every pod dir (``appsinfo``).
"""

from __future__ import annotations

from pyrkt.model.values import Value, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Port(Value):
    name: str
    protocol: str
    port: int
    count: int = 1
    socket_activated: bool = False


class MountPoint(Value):
    name: str
    path: str
    read_only: bool = False


class AciOrigin(Value):
    """What an appc image keeps of its ACI: its ``sha512`` (rkt's id), the blob of its tar,
    its ``pathWhitelist``, and the ids of its dependencies and how deep they nest."""

    sha512: str = ""
    blob: str = ""
    path_whitelist: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()
    dependency_depth: int = 0

    def to_extra(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sha512": self.sha512, "aci_blob": self.blob}
        if self.path_whitelist:
            out["path_whitelist"] = list(self.path_whitelist)
        if self.dependencies:
            out["dependencies"] = list(self.dependencies)
            out["dependency_depth"] = self.dependency_depth
        return out

    @classmethod
    def from_extra(cls, d: dict[str, Any]) -> AciOrigin | None:
        if "aci_blob" not in d and "sha512" not in d:
            return None
        depth = d.get("dependency_depth", 0)
        return cls(str(d.get("sha512") or ""), str(d.get("aci_blob") or ""),
                   tuple(str(p) for p in d.get("path_whitelist") or ()),
                   tuple(str(i) for i in d.get("dependencies") or ()), depth if isinstance(depth, int) else 0)


class AppSpec(Value):
    """appc's ``app`` section: how to run the image's main process."""

    exec: tuple[str, ...] = ()
    user: str = "0"
    group: str = "0"
    supplementary_gids: tuple[int, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    working_directory: str = "/"
    ports: tuple[Port, ...] = ()
    mount_points: tuple[MountPoint, ...] = ()
    isolators: tuple[tuple[str, Any], ...] = ()
    event_handlers: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (pre-start|post-stop, exec)
    user_annotations: tuple[tuple[str, str], ...] = ()  # free-form, never change how the app runs
    user_labels: tuple[tuple[str, str], ...] = ()

    def to_appc(self) -> dict[str, Any]:
        out: dict[str, Any] = {"exec": list(self.exec), "user": self.user, "group": self.group}
        if self.supplementary_gids:
            out["supplementaryGIDs"] = list(self.supplementary_gids)
        if self.working_directory:
            out["workingDirectory"] = self.working_directory
        out["environment"] = [{"name": k, "value": v} for k, v in self.environment]
        if self.ports:
            out["ports"] = [
                {"name": p.name, "protocol": p.protocol, "port": p.port, "count": p.count,
                 "socketActivated": p.socket_activated}
                for p in self.ports
            ]
        if self.mount_points:
            out["mountPoints"] = [{"name": m.name, "path": m.path, "readOnly": m.read_only} for m in self.mount_points]
        if self.isolators:
            out["isolators"] = [{"name": n, "value": v} for n, v in self.isolators]
        if self.event_handlers:
            out["eventHandlers"] = [{"name": n, "exec": list(e)} for n, e in self.event_handlers]
        if self.user_annotations:
            out["userAnnotations"] = dict(self.user_annotations)
        if self.user_labels:
            out["userLabels"] = dict(self.user_labels)
        return out

    @classmethod
    def from_appc(cls, d: dict[str, Any]) -> AppSpec:
        return cls(
            exec=tuple(d.get("exec") or ()),
            user=str(d.get("user", "0")),
            group=str(d.get("group", "0")),
            supplementary_gids=tuple(int(g) for g in d.get("supplementaryGIDs") or ()),
            environment=tuple((e["name"], e["value"]) for e in d.get("environment") or ()),
            working_directory=d.get("workingDirectory") or "/",
            ports=tuple(
                Port(p["name"], p.get("protocol", "tcp"), int(p["port"]), int(p.get("count", 1)),
                     bool(p.get("socketActivated", False)))
                for p in d.get("ports") or ()
            ),
            mount_points=tuple(
                MountPoint(m["name"], m["path"], bool(m.get("readOnly", False))) for m in d.get("mountPoints") or ()
            ),
            isolators=tuple((i["name"], i.get("value")) for i in d.get("isolators") or ()),
            event_handlers=tuple((h["name"], tuple(h["exec"])) for h in d.get("eventHandlers") or ()),
            user_annotations=tuple((str(k), str(v)) for k, v in (d.get("userAnnotations") or {}).items()),
            user_labels=tuple((str(k), str(v)) for k, v in (d.get("userLabels") or {}).items()),
        )


class Image(Value):
    """A stored image. ``id`` is ``sha256:<hex>`` of the image config (OCI/Docker)."""

    id: str
    name: str
    labels: tuple[tuple[str, str], ...] = ()
    layers: tuple[str, ...] = ()  # diff ids ("sha256:<hex>"), bottom layer first
    app: AppSpec | None = None
    annotations: tuple[tuple[str, str], ...] = ()
    format: str = "oci"  # "oci" | "docker" | "appc"
    # Where it came from, for the store (not compared). Written as one "extra" object, as before.
    manifest_digest: str = field(default="", compare=False)  # the manifest's blob
    aci: AciOrigin | None = field(default=None, compare=False)  # appc images only

    def label(self, name: str, default: str = "") -> str:
        for k, v in self.labels:
            if k == name:
                return v
        return default

    @property
    def display_name(self) -> str:
        """``name:version`` as rkt shows it (``name`` alone when there is no version)."""
        version = self.label("version")
        return f"{self.name}:{version}" if version else self.name

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "labels": [{"name": k, "value": v} for k, v in self.labels],
            "layers": list(self.layers),
            "app": self.app.to_appc() if self.app is not None else None,
            "annotations": [{"name": k, "value": v} for k, v in self.annotations],
            "format": self.format,
            "extra": self.extra(),
        }

    def extra(self) -> dict[str, Any]:
        """The store's facts about the image, as the JSON object ``extra`` (its shape since v1)."""
        out: dict[str, Any] = {"manifest_digest": self.manifest_digest} if self.manifest_digest else {}
        if self.aci is not None:
            out.update(self.aci.to_extra())
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Image:
        extra = d.get("extra") or {}
        return cls(
            id=d["id"],
            name=d["name"],
            labels=tuple((x["name"], x["value"]) for x in d.get("labels") or ()),
            layers=tuple(d.get("layers") or ()),
            app=AppSpec.from_appc(d["app"]) if d.get("app") is not None else None,
            annotations=tuple((x["name"], x["value"]) for x in d.get("annotations") or ()),
            format=d.get("format", "oci"),
            manifest_digest=str(extra.get("manifest_digest") or ""),
            aci=AciOrigin.from_extra(extra),
        )
