"""How an unpacked layer marks what overlayfs must hide: a whiteout is a character device 0:0
named like the entry it hides; an opaque directory carries ``trusted.overlay.opaque=y`` and
hides everything below it in lower layers. Tiny on purpose: prepare's executable check uses it
on the run path."""

from __future__ import annotations

import os
import stat

OPAQUE_XATTR = "trusted.overlay.opaque"


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False
