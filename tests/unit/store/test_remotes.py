"""The remote cache records (URL -> image, ETag, max-age) and their pure parts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyrkt.store.remotes import Remote, RemoteCache, parse_max_age

URL = "https://example.com/app-1.0.aci"


def test_a_record_round_trips_through_its_file(tmp_path: Path) -> None:
    cache = RemoteCache(tmp_path)
    remote = Remote(url=URL, image_id="sha512-" + "a" * 64, signature_url=URL + ".asc", etag='"v1"',
                    max_age=600, download_time=1700000000.5)
    assert cache.get(URL) is None
    cache.put(remote)
    assert cache.get(URL) == remote
    assert cache.get(URL + "?other") is None
    [name] = os.listdir(tmp_path / "remotes")
    assert name.endswith(".json") and len(name) == 64 + len(".json")
    assert oct((tmp_path / "remotes" / name).stat().st_mode & 0o777) == "0o600"


def test_a_new_record_replaces_the_old_one(tmp_path: Path) -> None:
    cache = RemoteCache(tmp_path)
    cache.put(Remote(url=URL, image_id="sha512-1", etag='"1"'))
    cache.put(Remote(url=URL, image_id="sha512-2", etag='"2"'))
    got = cache.get(URL)
    assert got is not None and (got.image_id, got.etag) == ("sha512-2", '"2"')
    cache.remove(URL)
    cache.remove(URL)
    assert cache.get(URL) is None


@pytest.mark.parametrize("data", [b"", b"{", b"[]", b'{"url": 1}', b'{"url": "x", "imageId": ""}',
                                  b'{"url": "x", "imageId": "y", "cacheMaxAge": "soon"}'])
def test_a_damaged_record_is_a_cache_miss(tmp_path: Path, data: bytes) -> None:
    cache = RemoteCache(tmp_path)
    cache.path(URL).parent.mkdir(parents=True)
    cache.path(URL).write_bytes(data)
    assert cache.get(URL) is None


def test_a_record_for_another_url_in_the_file_is_a_miss(tmp_path: Path) -> None:
    cache = RemoteCache(tmp_path)
    cache.put(Remote(url="https://other/x.aci", image_id="sha512-1"))
    os.rename(cache.path("https://other/x.aci"), cache.path(URL))
    assert cache.get(URL) is None


@pytest.mark.parametrize(("header", "seconds"), [
    (None, 0),
    ("", 0),
    ("max-age=600", 600),
    ("public, max-age=60", 60),
    ("Max-Age = 30", 30),
    ('max-age="45"', 45),
    ("max-age=600, no-cache", 0),
    ("no-store, max-age=600", 0),
    ("max-age=-5", 0),
    ("max-age=soon", 0),
    ("private", 0),
])
def test_cache_control_gives_max_age(header: str | None, seconds: int) -> None:
    assert parse_max_age(header) == seconds


def test_a_record_is_fresh_only_within_its_max_age() -> None:
    remote = Remote(url=URL, image_id="sha512-1", max_age=60, download_time=1000.0)
    assert remote.is_fresh(now=1000.0)
    assert remote.is_fresh(now=1059.9)
    assert not remote.is_fresh(now=1060.0)
    assert not remote.is_fresh(now=999.0)  # the clock went back: ask again
    assert not remote.replace(max_age=0).is_fresh(now=1000.0)


def test_prune_removes_the_records_of_images_no_longer_stored(tmp_path: Path) -> None:
    cache = RemoteCache(tmp_path)
    cache.put(Remote(url="https://e.test/a.aci", image_id="sha512-aaa"))
    cache.put(Remote(url="https://e.test/b.aci", image_id="sha512-bbb"))
    cache.path("https://e.test/c.aci").write_bytes(b"not json")
    assert cache.prune({"sha512-aaa"}) == 2
    assert cache.get("https://e.test/a.aci") is not None
    assert cache.get("https://e.test/b.aci") is None
    assert sorted(os.listdir(cache.dir)) == [cache.path("https://e.test/a.aci").name]
    assert RemoteCache(tmp_path / "none").prune(set()) == 0
