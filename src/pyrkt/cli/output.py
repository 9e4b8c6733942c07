"""Rendering for the terminal: aligned tables, rkt's humanized times and sizes, JSON, and names
from outside (images, annotations, configs) made safe to print."""

from __future__ import annotations

import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, TextIO


def printable(text: str) -> str:
    """``text`` with every unprintable character (newline, ESC and other controls, bidi
    overrides) as a backslash escape, as Go's %q writes them: an image name or an error naming
    one stays on one line and cannot drive the terminal. Printable text is returned as it is."""
    if text.isprintable():
        return text
    from pyrkt.errors import escape

    return "".join(c if c.isprintable() else escape(c) for c in text)


def table(rows: Sequence[Sequence[str]], *, header: Sequence[str] | None, out: TextIO | None = None) -> None:
    """Print rows as rkt does, through Go's text/tabwriter as rkt sets it up (minimum width 0,
    tab width 8, padding 1, padded with tabs): each cell but a row's last is followed by the
    tabs that take it to its column's tab stop, the same for every row; the last is not padded.
    So columns line up on a terminal and ``cut -f1`` or ``awk '{print $1}'`` read them."""
    out = out or sys.stdout
    all_rows = ([list(header)] if header else []) + [[printable(c) for c in r] for r in rows]
    if not all_rows:
        return
    stops = [0] * (max(len(r) for r in all_rows) - 1)
    for r in all_rows:
        for i, cell in enumerate(r[:-1]):
            stops[i] = max(stops[i], len(cell) + TAB_PADDING)
    stops = [-(-w // TAB_WIDTH) * TAB_WIDTH for w in stops]  # up to a multiple of the tab width
    for r in all_rows:
        padded = [cell + "\t" * -(-(stops[i] - len(cell)) // TAB_WIDTH) for i, cell in enumerate(r[:-1])]
        out.write("".join(padded) + (r[-1] if r else "") + "\n")


TAB_WIDTH = 8
TAB_PADDING = 1


def humanize_ago(then: float, now: float | None = None) -> str:
    """'2 minutes ago', as rkt (go-humanize) prints pod and image times."""
    now = time.time() if now is None else now
    delta = now - then
    future = delta < 0
    delta = abs(delta)
    units = ((60, "second", 1), (3600, "minute", 60), (86400, "hour", 3600),
             (86400 * 7, "day", 86400), (86400 * 30, "week", 86400 * 7),
             (86400 * 365, "month", 86400 * 30), (float("inf"), "year", 86400 * 365))
    if delta < 1:
        return "now"
    for limit, name, size in units:
        if delta < limit:
            n = int(delta // size)
            word = f"{n} {name}{'s' if n != 1 else ''}"
            return f"{word} from now" if future else f"{word} ago"
    return "long ago"


def full_time(then: float) -> str:
    """rkt's --full time layout: 2006-01-02 15:04:05.999 -0700 MST."""
    lt = time.localtime(then)
    millis = f"{then % 1:.3f}"[1:].rstrip("0").rstrip(".")
    return time.strftime("%Y-%m-%d %H:%M:%S", lt) + millis + time.strftime(" %z %Z", lt)


def human_size(n: int) -> str:
    """IEC sizes as rkt's image list: 1.2 MiB."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def dump_json(value: Any, *, pretty: bool, out: TextIO | None = None) -> None:
    from pyrkt.model import jsonio

    out = out or sys.stdout
    if pretty:
        out.write(jsonio.dumps(value, indent=2) + "\n")
    else:
        out.write(jsonio.dumps(value, separators=(",", ":")) + "\n")


def check_format(fmt: str | None) -> str | None:
    from pyrkt.errors import UsageError

    if fmt in (None, "", "tabbed"):
        return None
    if fmt not in ("json", "json-pretty"):
        raise UsageError(f"invalid format {fmt!r}: want json or json-pretty")
    return fmt
