"""Go duration syntax for flags (``30m``, ``1h30m``, ``500ms``, ``0s``), as rkt's flags take it.

``parse_duration`` gives seconds; ``format_duration`` prints seconds back the way Go's
``time.Duration.String`` does (``30m0s``, ``24h0m0s``, ``1.5s``, ``500ms``), because rkt's
messages show durations that way ("still within grace period (30m0s)").
"""

from __future__ import annotations

from pyrkt.errors import UsageError

_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
       "m": 60_000_000_000, "h": 3_600_000_000_000}
MAX_NS = 2**63 - 1
_BOOL = {"1": True, "t": True, "true": True, "0": False, "f": False, "false": False}


def parse_duration_ns(text: str) -> int:
    """``"1h30m"`` -> nanoseconds; the grammar is Go's ``time.ParseDuration``."""
    s = text.strip()
    bad = UsageError(f"invalid duration {text!r}: want a number with a unit, e.g. 30s, 5m, 1h30m, 500ms")
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise bad
    total = 0
    i = 0
    while i < len(s):
        start = i
        while i < len(s) and (s[i].isdigit() or s[i] == "."):
            i += 1
        number = s[start:i]
        if number in ("", ".") or number.count(".") > 1:
            raise bad
        ustart = i
        while i < len(s) and not (s[i].isdigit() or s[i] == "."):
            i += 1
        unit = _NS.get(s[ustart:i])
        if unit is None:
            raise bad
        whole, _, frac = number.partition(".")
        total += int(whole or "0") * unit
        if frac:
            # exact: scale the fraction's digits by the unit without going through a float
            total += int(frac) * unit // 10 ** len(frac)
    if total > MAX_NS + (sign < 0):  # as Go's: a time.Duration is int64 nanoseconds (about 292 years)
        raise UsageError(f"invalid duration {text!r}: out of range (at most 2562047h47m16.854775807s)")
    return sign * total


def parse_duration(text: str) -> float:
    """``"30m"`` -> 1800.0 seconds."""
    return parse_duration_ns(text) / 1e9


def parse_period(text: str, flag: str) -> float:
    """A ``--grace-period``-like duration in seconds; a negative one is refused (Go's flag
    takes it, but "since 5s in the future" collects nothing and says nothing)."""
    seconds = parse_duration(text)
    if seconds < 0:
        raise UsageError(f"invalid --{flag}={text!r}: must not be negative")
    return seconds


def parse_wait(text: str) -> float | None:
    """rkt's ``--wait[=bool|duration]``: None = do not wait, ``inf`` = no timeout, else seconds.

    ``true`` (or the flag alone) waits forever, ``false`` and ``0`` do not wait, a negative
    duration waits forever and a positive one is the timeout.
    """
    word = text.strip()
    if word == "" or _BOOL.get(word.lower()) is True:
        return float("inf")
    if _BOOL.get(word.lower()) is False:
        return None
    seconds = parse_duration(word)
    if seconds == 0:
        return None
    return float("inf") if seconds < 0 else seconds


def format_duration(seconds: float) -> str:
    """Go's ``Duration.String``: 1800 -> ``30m0s``, 0.5 -> ``500ms``, 0 -> ``0s``."""
    ns = round(seconds * 1e9)
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _decimal(ns, size) + unit
    hours, rest = divmod(ns, _NS["h"])
    minutes, rest = divmod(rest, _NS["m"])
    out = _decimal(rest, _NS["s"]) + "s"
    if hours or minutes:
        out = f"{minutes}m" + out
    if hours:
        out = f"{hours}h" + out
    return sign + out


def _decimal(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = str(frac).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


def parse_time_ns(text: str, flag: str, now_ns: int) -> int:
    """A point in time as podman's ``logs --since/--until`` take it, in ns since the epoch: an
    RFC 3339 time (``2026-12-06T10:00:00Z``, ``…+01:00``, fractions of a second; without a zone
    the local time), a date (local midnight), a Unix time in seconds (``1765015200.5``), or a
    Go duration before ``now_ns`` (``10m``, ``1h30m``)."""
    value = text.strip()
    bad = UsageError(f"invalid --{flag}={text!r}: want a time (2006-01-02T15:04:05Z, 2006-01-02, a Unix time in "
                     "seconds) or a duration before now (10m, 1h30m)")
    if not value or value.startswith("-"):
        raise bad
    whole, dot, frac = value.partition(".")
    if whole.isdigit() and (not dot or frac.isdigit()):  # a Unix time
        return int(whole) * 1_000_000_000 + int((frac + "000000000")[:9])
    if value[:4].isdigit() and value[4:5] == "-":
        import datetime

        try:
            when = datetime.datetime.fromisoformat(value)
        except ValueError:
            raise bad from None
        seconds = int(when.timestamp())  # a naive time is the local time, as Go's ParseInLocation(Local)
        return seconds * 1_000_000_000 + when.microsecond * 1_000 + nanos_beyond_micro(value)
    try:
        return now_ns - parse_duration_ns(value)
    except UsageError:
        raise bad from None


def nanos_beyond_micro(value: str) -> int:
    """The digits of a time's fraction past the sixth (datetime keeps microseconds), as ns."""
    _, dot, rest = value.partition(".")
    digits = ""
    for c in rest if dot else "":
        if not c.isdigit():
            break
        digits += c
    return int((digits[6:9] + "000")[:3]) if len(digits) > 6 else 0
