"""`pyrkt image list`: the images in the store, as rkt's table or as JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyrkt.cli.flags import Flag
from pyrkt.errors import UsageError

if TYPE_CHECKING:
    from pyrkt.cli.main import Context
    from pyrkt.store import ImageRecord

USAGE = "pyrkt image list [--fields=id,name,size,importtime,lastused] [--sort=importtime] [--order=asc] [--full] [--no-legend] [--format=json]"
FLAGS = [
    Flag("fields", "list", help="comma-separated fields to show: id,name,importtime,lastused,size"),
    Flag("sort", "list", help="comma-separated fields to sort by: id,name,importtime,lastused,size"),
    Flag("order", default="asc", help="sort order: asc or desc"),
    Flag("full", "bool", help="full ids, exact times and sizes in bytes"),
    Flag("no-legend", "bool", help="suppress the header line"),
    Flag("format", default="", help="json or json-pretty instead of the table"),
]
DEFAULT_FIELDS = ["id", "name", "size", "importtime", "lastused"]
HEADERS = {"id": "ID", "name": "NAME", "size": "SIZE", "importtime": "IMPORT TIME", "lastused": "LAST USED"}


def _split(values: list[str]) -> list[str]:
    return [w.strip().lower() for v in values for w in v.split(",") if w.strip()]


def cell(rec: ImageRecord, field: str, full: bool) -> str:
    from pyrkt.cli.output import full_time, human_size, humanize_ago
    from pyrkt.store import short_id

    if field == "id":
        return rec.id if full else short_id(rec.id)
    if field == "name":
        return rec.display_name
    if field == "size":
        return str(rec.size) if full else human_size(rec.size)
    when = (rec.import_time if field == "importtime" else rec.last_used) / 1e9
    return full_time(when) if full else humanize_ago(when)


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.cli.output import check_format, dump_json, table
    from pyrkt.stage0.images import list_images, open_store

    values, rest = ctx.parse(FLAGS, args)
    if rest:
        raise UsageError(f"image list takes no arguments (got {rest[0]!r})")
    fmt = check_format(values["format"])
    fields = _split(values["fields"]) or DEFAULT_FIELDS
    for f in fields:
        if f not in HEADERS:
            raise UsageError(f"invalid field {f!r}: want one of {', '.join(HEADERS)}")
    store = open_store(ctx.config)
    try:
        records = list_images(store, sort=_split(values["sort"]) or None, order=values["order"])
    finally:
        store.close()
    if fmt is not None:
        dump_json([{"id": r.id, "name": r.display_name, "import_time": r.import_time,
                    "last_used_time": r.last_used, "size": r.size} for r in records],
                  pretty=fmt == "json-pretty", out=ctx.stdout)
        return 0
    rows = [[cell(r, f, values["full"]) for f in fields] for r in records]
    table(rows, header=None if values["no_legend"] else [HEADERS[f] for f in fields], out=ctx.stdout)
    return 0
