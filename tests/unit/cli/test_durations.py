"""Go duration syntax for --grace-period, --expire-prepared and status --wait."""

from __future__ import annotations

import math
import time

import pytest

from pyrkt.cli.durations import format_duration, parse_duration, parse_time_ns, parse_wait
from pyrkt.errors import UsageError


@pytest.mark.parametrize(("text", "seconds"), [
    ("30m", 1800.0), ("24h", 86400.0), ("1h30m", 5400.0), ("500ms", 0.5), ("0s", 0.0), ("0", 0.0),
    ("1.5s", 1.5), ("1m0.5s", 60.5), ("10s", 10.0), ("250us", 0.00025), ("3µs", 0.000003), ("7ns", 7e-9),
    ("-5m", -300.0), ("+2h", 7200.0), (".5s", 0.5), ("2h45m30s", 9930.0),
])
def test_go_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "m", "1x", "1.2.3s", "ten", "1h m", "--1s", "s5"])
def test_malformed_durations_are_refused_naming_the_value(text: str) -> None:
    with pytest.raises(UsageError, match=f"invalid duration {text!r}"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["2562048h", "99999999999999h", "9223372036854775808ns", "-9223372036854775809ns"])
def test_durations_beyond_gos_int64_nanoseconds_are_refused(text: str) -> None:
    with pytest.raises(UsageError, match=f"invalid duration {text!r}: out of range"):
        parse_duration(text)


def test_the_longest_go_durations_still_parse() -> None:
    assert parse_duration("2562047h47m16.854775807s") == pytest.approx(9223372036.854775807)
    assert parse_duration("-9223372036854775808ns") == pytest.approx(-9223372036.854775808)


@pytest.mark.parametrize(("seconds", "text"), [
    (1800, "30m0s"), (86400, "24h0m0s"), (5400, "1h30m0s"), (310, "5m10s"), (0, "0s"), (0.5, "500ms"),
    (1.5, "1.5s"), (60.5, "1m0.5s"), (0.00025, "250µs"), (-300, "-5m0s"), (10, "10s"),
])
def test_durations_print_as_go_does(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(("text", "want"), [
    ("true", math.inf), ("", math.inf), ("1", math.inf), ("false", None), ("0", None), ("0s", None),
    ("10s", 10.0), ("1m", 60.0), ("-1s", math.inf),
])
def test_wait_values_are_booleans_or_timeouts(text: str, want: float | None) -> None:
    assert parse_wait(text) == want


def test_a_bad_wait_value_is_refused() -> None:
    with pytest.raises(UsageError):
        parse_wait("soon")


NOW = 1_765_015_200 * 10**9  # 2025-12-06T10:00:00Z


@pytest.mark.parametrize(("text", "ns"), [
    ("2025-12-06T10:00:00Z", NOW),
    ("2025-12-06T10:00:00.123456789Z", NOW + 123_456_789),
    ("2025-12-06T11:00:00+01:00", NOW),
    ("2025-12-06T10:00:00.5-00:30", NOW + 1_800_500_000_000),
    ("1765015200", NOW), ("1765015200.25", NOW + 250_000_000),
    ("10m", NOW - 600 * 10**9), ("1h30m", NOW - 5400 * 10**9), ("0s", NOW),
])
def test_log_times_are_rfc3339_unix_times_or_durations_before_now(text: str, ns: int) -> None:
    assert parse_time_ns(text, "since", NOW) == ns


def test_a_time_without_a_zone_and_a_date_are_local() -> None:
    local = int(time.mktime((2025, 12, 6, 10, 0, 0, 0, 0, -1))) * 10**9
    assert parse_time_ns("2025-12-06T10:00:00", "since", NOW) == local
    assert parse_time_ns("2025-12-06", "until", NOW) == local - 10 * 3600 * 10**9


@pytest.mark.parametrize("text", ["", "yesterday", "-10m", "2025-13-01", "2025-12-06T25:00:00Z", "1.2.3", "1e9"])
def test_bad_log_times_are_refused_naming_the_flag(text: str) -> None:
    with pytest.raises(UsageError, match=f"invalid --until={text!r}: want a time"):
        parse_time_ns(text, "until", NOW)
