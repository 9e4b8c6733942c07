"""appc names (AC Name, AC Identifier), app names derived from image names, hostnames, pod UUIDs."""

from __future__ import annotations

import os

from pyrkt.errors import UsageError

# Checked with sets rather than regular expressions: compiling patterns at import costs the
# run path ~0.1 ms each.
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_AC_NAME_CHARS = _ALNUM | {"-"}
_AC_IDENTIFIER_CHARS = _ALNUM | frozenset("-._~/")


def _appc_valid(text: str, chars: frozenset[str]) -> bool:
    """appc's check (schema/types assertValid): not empty, only ``chars``, and alphanumeric at
    both edges. Separators may follow each other inside (``shorthash--8``): the stricter
    regular expression appc documents is not what appc and rkt enforce."""
    return bool(text) and chars.issuperset(text) and text[0] in _ALNUM and text[-1] in _ALNUM


def is_ac_name(text: str) -> bool:
    """An AC Name: lower case letters, digits and ``-``, starting and ending alphanumeric."""
    return _appc_valid(text, _AC_NAME_CHARS)


def is_ac_identifier(text: str) -> bool:
    """An AC Identifier: lower case letters, digits and ``-._~/``, starting and ending alphanumeric."""
    return _appc_valid(text, _AC_IDENTIFIER_CHARS)


def check_app_name(text: str) -> str:
    if not text:
        raise UsageError("invalid app name '': an app name cannot be empty")
    if not is_ac_name(text):
        raise UsageError(f"invalid app name {text!r}: want lower case letters, digits and '-', "
                         "starting and ending with a letter or digit (an AC Name)")
    return text


_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def check_hostname(text: str) -> str:
    """A hostname as RFC 1123 has it: dot-separated labels of 1-63 letters, digits and hyphens,
    none starting or ending with a hyphen, 253 characters at most."""
    labels = text.split(".")
    if len(text) > 253 or not all(
            0 < len(label) <= 63 and _HOST_CHARS.issuperset(label.lower())
            and not label.startswith("-") and not label.endswith("-") for label in labels):
        raise UsageError(f"invalid hostname {text!r}: want dot-separated labels of 1-63 letters, digits "
                         "and inner hyphens (RFC 1123)")
    return text


def check_absolute_dir(text: str, what: str) -> str:
    """An app's working directory: appc requires an absolute path."""
    if not text.startswith("/"):
        raise UsageError(f"invalid {what} {text!r}: it must be an absolute path")
    return text


def app_name_from_image(image_name: str) -> str:
    """``coreos.com/etcd`` -> ``etcd``; ``registry/library/redis:7`` -> ``redis`` (rkt's rule)."""
    base = image_name.rstrip("/").rsplit("/", 1)[-1]
    base = base.split("@", 1)[0].split(":", 1)[0].lower()
    # as appc's SanitizeACName: each character outside [a-z0-9-] becomes '-' (``a__b`` ->
    # ``a--b``, ``shorthash--8`` stays), then hyphens at either end go
    return "".join(c if c in _AC_NAME_CHARS else "-" for c in base).strip("-") or "app"


def new_uuid() -> str:
    """A random RFC 4122 version 4 UUID, without importing the uuid module (hot path)."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
