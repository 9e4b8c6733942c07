"""Parsing what an image argument asks the store for."""

from __future__ import annotations

import pytest

from pyrkt.errors import UsageError
from pyrkt.store.lookup import (
    Candidate,
    Lookup,
    check_id_prefix,
    choose,
    name_candidates,
    parse_lookup,
    split_name,
)


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
    assert parse_lookup("example.com/app") == Lookup(name="example.com/app")


def test_id_prefix_needs_two_hex_digits() -> None:
    check_id_prefix("sha256:ab")
    with pytest.raises(UsageError, match="image ID too short"):
        check_id_prefix("sha256:a")


def test_docker_hub_name_candidates() -> None:
    assert "registry-1.docker.io/library/redis" in name_candidates("redis")
    assert "docker.io/bitnami/redis" in name_candidates("bitnami/redis")
    assert name_candidates("quay.io/x/y") == ["quay.io/x/y"]
    assert name_candidates("localhost/y") == ["localhost/y"]


def test_rkt_names_carry_a_version_and_labels() -> None:
    assert parse_lookup("coreos.com/foo:1.30.0,os=linux") == Lookup(name="coreos.com/foo", version="1.30.0",
                                                                    labels=(("os", "linux"),))
    assert parse_lookup("coreos.com/foo,version=2,channel=beta") == Lookup(name="coreos.com/foo", version="2",
                                                                          labels=(("channel", "beta"),))
    assert str(parse_lookup("coreos.com/foo:1,os=linux")) == "coreos.com/foo:1,os=linux"
    for bad, why in [("a,b", "has no value"), ("a,name=x", "'name' is not a label"), ("a,Os=x", "AC Identifier"),
                     ("a,x=1,x=2", "given twice"), ("a:", "empty version"), ("a:1,version=2", "two versions")]:
        with pytest.raises(UsageError, match=why):
            parse_lookup(bad)


def _c(image_id: str, version: str, when: int, **labels: str) -> Candidate:
    return Candidate(image_id, version, tuple(labels.items()), when)


def test_choice_is_rkts_get_aci() -> None:
    refs = [_c("old", "1.0", 1, os="linux"), _c("new", "2.0", 3, os="linux"), _c("beta", "1.5", 2, channel="beta")]
    assert choose(refs, None, ()) == refs[1]  # no version asked: any, the newest import
    assert choose(refs, "1.0", ()) == refs[0]
    assert choose(refs, None, (("channel", "beta"),)) == refs[2]
    assert choose(refs, "latest", ()) is None  # 'latest' asked for is a version like any other
    assert choose(refs, "3.0", ()) is None
    with_latest = [*refs, _c("tagged", "latest", 0)]
    assert choose(with_latest, None, ()) == with_latest[3]  # ...but preferred when none is asked
