"""The one exception tree of pyrkt.

Every message is the single line a user sees, lower case, naming the object (and path) that was
wrong. The CLI prints ``pyrkt: <message>`` and exits 254, as rkt does for its own failures;
library code never exits. Classes are chosen by what a caller can do about the failure::

    PyrktError                 anything pyrkt itself refuses or fails at       (exit 254)
    ├── UsageError             a wrong flag, argument or combination of them
    ├── NotFound               an image, pod, app, blob or file that is not there
    ├── Ambiguous              a prefix (UUID, image id) that matches several things
    ├── InvalidState           e.g. rm of a running pod, enter of an exited one
    ├── Locked                 another pyrkt command holds the lock
    ├── ImageError             a corrupt or unusable image (manifest, layer, config)
    │   └── IntegrityError     bytes that do not match their digest or signature
    ├── FetchError             a source (registry, https, file) failed
    │   └── AccessDenied       it refused us (401: who we are, 403: what we asked)
    ├── NetworkSetupError      a CNI plugin failed
    └── KernelError            a privileged call failed; keeps the call and the path
"""

from __future__ import annotations

EXIT_CODE = 254

_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def escape(c: str) -> str:
    """One unprintable character as Go's %q writes it: ``\\n``, ``\\x1b``, ``\\u202e``."""
    if c in _ESCAPES:
        return _ESCAPES[c]
    o = ord(c)
    if o < 0x80:
        return f"\\x{o:02x}"
    return f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


def quote(text: str) -> str:
    """``text`` in double quotes as Go's %q (rkt's messages) writes it: ``bad os "freebsd"``,
    ``no matches found for "ab"``. Quotes and backslashes are escaped, and so is every
    unprintable character, so a quoted name stays on one line and cannot drive the terminal."""
    return '"' + "".join(
        "\\" + c if c in '"\\' else c if c.isprintable() else escape(c) for c in text) + '"'


def undecodable(text: str) -> bool:
    """Whether ``text`` holds bytes that were not UTF-8: an argv or file name decoded by Python
    with surrogateescape carries each as a lone surrogate U+DC80..U+DCFF."""
    return any("\udc80" <= c <= "\udcff" for c in text)


class PyrktError(Exception):
    """Base of every error pyrkt reports; ``str(err)`` is the user's line."""

    code = "pyrkt-error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(PyrktError):
    code = "usage"


class NotFound(PyrktError):
    code = "not-found"


class Ambiguous(PyrktError):
    code = "ambiguous"


class InvalidState(PyrktError):
    code = "invalid-state"


class Locked(PyrktError):
    code = "locked"


class ImageError(PyrktError):
    code = "image"


class IntegrityError(ImageError):
    code = "integrity"


class FetchError(PyrktError):
    code = "fetch"


class AccessDenied(FetchError):
    """A registry or web server refused the request: ``status`` 401 (no or wrong credentials)
    or 403 (credentials that may not do this)."""

    code = "access"

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


class NetworkSetupError(PyrktError):
    code = "network"


class KernelError(PyrktError):
    """A system call failed: the message names the call, the path and the errno text."""

    code = "kernel"

    def __init__(self, call: str, errno: int, detail: str = "") -> None:
        import os

        text = os.strerror(errno)
        super().__init__(f"{call}{': ' + detail if detail else ''}: {text}")
        self.call = call
        self.errno = errno
