"""appc names (AC Name, AC Identifier), app names derived from image names, pod UUIDs."""

from __future__ import annotations

import os
import re

from pyrkt.errors import UsageError

AC_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
AC_IDENTIFIER = re.compile(r"^[a-z0-9]+([-._~/][a-z0-9]+)*$")


def is_ac_name(text: str) -> bool:
    return bool(AC_NAME.match(text))


def check_app_name(text: str) -> str:
    if not is_ac_name(text):
        raise UsageError(f"invalid app name {text!r}: must match [a-z0-9]+(-[a-z0-9]+)*")
    return text


def app_name_from_image(image_name: str) -> str:
    """``coreos.com/etcd`` -> ``etcd``; ``registry/library/redis:7`` -> ``redis`` (rkt's rule)."""
    base = image_name.rstrip("/").rsplit("/", 1)[-1]
    base = base.split("@", 1)[0].split(":", 1)[0].lower()
    cleaned = re.sub(r"[^a-z0-9]+", "-", base).strip("-")
    return cleaned or "app"


def new_uuid() -> str:
    """A random RFC 4122 version 4 UUID, without importing the uuid module (hot path)."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
