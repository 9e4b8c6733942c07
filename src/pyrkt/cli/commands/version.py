"""`pyrkt version`, in rkt's shape."""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING

from pyrkt import __version__

if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = "pyrkt version"
APPC_VERSION = "0.8.11"


def run(ctx: Context, args: list[str]) -> int:
    ctx.parse([], args)
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    ctx.stdout.write(
        f"pyrkt Version: {__version__}\n"
        f"appc Version: {APPC_VERSION}\n"
        f"Python Version: {platform.python_version()}\n"
        f"Python OS/Arch: linux/{arch}\n"
        "Features: +OCI +DOCKER +ACI -TPM -SDJOURNAL\n"
    )
    return 0
