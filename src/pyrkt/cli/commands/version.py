"""`pyrkt version`, in rkt's shape."""

from __future__ import annotations

import os
import sys

from pyrkt import __version__
from pyrkt.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = "pyrkt version"
APPC_VERSION = "0.8.11"


def run(ctx: Context, args: list[str]) -> int:
    _, rest = ctx.parse([], args)
    if rest:
        raise UsageError(f"version takes no arguments (got {rest[0]!r})")
    machine = os.uname().machine  # what platform.machine() says, without importing platform
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    ctx.stdout.write(
        f"pyrkt Version: {__version__}\n"
        f"appc Version: {APPC_VERSION}\n"
        f"Python Version: {sys.version.split()[0]}\n"
        f"Python OS/Arch: linux/{arch}\n"
        "Features: +OCI-LAYOUT +DOCKER-ARCHIVE +REGISTRY +ACI +CNI -TPM -SDJOURNAL\n"
    )
    return 0
