"""Parsing what an image argument asks the store for."""

from __future__ import annotations

import pytest

from pyrkt.errors import UsageError
from pyrkt.store.lookup import Lookup, check_id_prefix, name_candidates, parse_lookup, split_name


def test_names_tags_and_digests_split_like_docker_references() -> None:
    assert split_name("busybox") == ("busybox", None, None)
    assert split_name("localhost:5000/a/b:1.0") == ("localhost:5000/a/b", "1.0", None)
    assert split_name("localhost:5000/a/b") == ("localhost:5000/a/b", None, None)
    assert split_name("a/b@sha256:00") == ("a/b", None, "sha256:00")


def test_prefixed_ids_are_looked_up_by_id_only() -> None:
    assert parse_lookup("sha256:ABC") == Lookup(id_prefix="sha256:abc")
    assert parse_lookup("sha512-abc") == Lookup(id_prefix="sha512-abc")
    with pytest.raises(UsageError, match="not hexadecimal"):
        parse_lookup("sha256:xyz")


def test_bare_hex_is_tried_as_id_and_as_name() -> None:
    assert parse_lookup("deadbeef") == Lookup(id_prefix="sha256:deadbeef", name="deadbeef")
    assert parse_lookup("busybox:1.36") == Lookup(name="busybox", version="1.36")
    assert parse_lookup("example.com/app") == Lookup(name="example.com/app", version="latest")


def test_id_prefix_needs_two_hex_digits() -> None:
    check_id_prefix("sha256:ab")
    with pytest.raises(UsageError, match="image ID too short"):
        check_id_prefix("sha256:a")


def test_docker_hub_name_candidates() -> None:
    assert "registry-1.docker.io/library/redis" in name_candidates("redis")
    assert "docker.io/bitnami/redis" in name_candidates("bitnami/redis")
    assert name_candidates("quay.io/x/y") == ["quay.io/x/y"]
    assert name_candidates("localhost/y") == ["localhost/y"]
