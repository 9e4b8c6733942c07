"""Go duration syntax for --grace-period, --expire-prepared and status --wait."""

from __future__ import annotations

import math

import pytest

from pyrkt.cli.durations import format_duration, parse_duration, parse_wait
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
