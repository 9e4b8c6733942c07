"""The appc ImageManifest of a stored image (what ``image export`` and ``image extract`` write).

Pure mapping from the internal ``Image``: the name becomes an AC Identifier, the labels
(``version``, ``os``, ``arch``, already appc's names) are kept, the app section is the image's
``AppSpec`` in appc form, annotations become appc annotations with AC Names. What appc cannot
express is dropped, never guessed: no app section for an image without a command.
"""

from __future__ import annotations

from pyrkt.model.image import Image

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

AC_VERSION = "0.8.11"  # the last appc spec release, the one rkt 1.30 wrote
# The media type recorded for an imported ACI's one layer: its blob is the whole uncompressed
# ACI tar, unpacked with ``rootfs/`` stripped and ``manifest`` left out (``layers.unpack(aci=True)``).
ACI_MEDIA_TYPE = "application/vnd.appc.aci"


def _restrict(text: str, separators: str) -> str:
    """Lowercase alphanumerics joined by single ``separators`` (appc's pattern for names)."""
    out: list[str] = []
    for ch in text.lower():
        if not (ch.isascii() and ch.isalnum()):
            ch = ch if ch in separators else "-"
            if not out or out[-1] in separators:
                continue  # no leading or doubled separator
        out.append(ch)
    return "".join(out).rstrip(separators)


def ac_identifier(name: str) -> str:
    """An AC Identifier (``[a-z0-9]+([-._~/][a-z0-9]+)*``): ``Host:5000/My_App`` -> ``host-5000/my_app``."""
    return _restrict(name, "-._~/") or "image"


def ac_name(name: str) -> str:
    """An AC Name (``[a-z0-9]+([-./][a-z0-9]+)*``), or "" when nothing of ``name`` is left."""
    return _restrict(name, "-./")


def image_manifest(image: Image) -> dict[str, Any]:
    """The appc ImageManifest (as JSON-ready dict) describing ``image``."""
    manifest: dict[str, Any] = {"acKind": "ImageManifest", "acVersion": AC_VERSION,
                                "name": ac_identifier(image.name)}
    labels = []
    seen: set[str] = set()
    for key, value in image.labels:
        label = ac_name(key)
        if label and label != "name" and label not in seen:  # appc forbids a "name" label
            seen.add(label)
            labels.append({"name": label, "value": value})
    if labels:
        manifest["labels"] = labels
    if image.app is not None and image.app.exec:
        manifest["app"] = image.app.to_appc()
    annotations = []
    seen = set()
    for key, value in image.annotations:
        name = ac_name(key)
        if name and name not in seen:
            seen.add(name)
            annotations.append({"name": name, "value": value})
    if annotations:
        manifest["annotations"] = annotations
    return manifest


def manifest_bytes(image: Image) -> bytes:
    import json

    return (json.dumps(image_manifest(image), indent=2, sort_keys=False) + "\n").encode()
