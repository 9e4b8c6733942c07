"""`pyrkt image render IMAGE DIR`: as `image extract` (OCI and Docker images have no dependencies
to render), kept because rkt users and scripts call it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyrkt.cli.commands import image_extract

if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = image_extract.USAGE.replace("pyrkt image extract", "pyrkt image render", 1)
FLAGS = image_extract.FLAGS


def run(ctx: Context, args: list[str]) -> int:
    return image_extract.run(ctx, args, command="render")
