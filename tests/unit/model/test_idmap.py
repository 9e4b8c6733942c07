"""The pod's id range of --private-users: rkt's random 65536-aligned shift, its file format and
the host ids a copy of the image gets."""

from __future__ import annotations

import pytest

from pyrkt.errors import PyrktError
from pyrkt.model.idmap import DEFAULT_COUNT, IdRange, subordinate_ranges


def test_a_random_range_is_65536_aligned_above_host_ids_and_below_2_31() -> None:
    seen = set()
    for _ in range(200):
        r = IdRange.random()
        assert r.count == DEFAULT_COUNT == 65536
        assert r.shift % 65536 == 0 and 65536 <= r.shift and r.shift + r.count <= 1 << 31
        seen.add(r.shift)
    assert len(seen) > 150  # random, not one range for every pod


def test_the_range_is_kept_as_rkts_shift_colon_count_and_read_back() -> None:
    r = IdRange(1835008, 65536)
    assert str(r) == "1835008:65536"
    assert IdRange.parse("1835008:65536\n") == r
    assert r.map_line() == "0 1835008 65536\n"


@pytest.mark.parametrize("text", ["", "1835008", "x:65536", "1835008:-1", "0:65536", "1835008:0", "4294967295:2"])
def test_a_bad_or_out_of_bounds_range_is_refused_in_one_line(text: str) -> None:
    with pytest.raises(PyrktError, match="private-users-prepared: .*(invalid id range|out of bounds)"):
        IdRange.parse(text)


def test_inside_ids_map_to_shifted_host_ids_and_ids_beyond_the_range_to_the_pods_nobody() -> None:
    r = IdRange(1835008, 65536)
    assert (r.host(0), r.host(1000), r.host(65535)) == (1835008, 1836008, 1835008 + 65535)
    assert r.host(70000) == r.host(-1) == 1835008 + 65534
    assert r.contains(1835008) and r.contains(1835008 + 65535)
    assert not r.contains(0) and not r.contains(1835008 + 65536)


def test_a_random_range_avoids_the_hosts_subordinate_ids() -> None:
    avoid = subordinate_ranges("alice:100000:65536\n# comment\nbob:1073741824:1073741824\nbad line\n")
    assert avoid == ((100000, 65536), (1 << 30, 1 << 30))
    for _ in range(200):
        r = IdRange.random(avoid=((0, 1 << 30),))
        assert r.shift >= 1 << 30
    for _ in range(200):
        r = IdRange.random(avoid=avoid)
        assert r.shift + r.count <= 100000 or 165536 <= r.shift < 1 << 30
