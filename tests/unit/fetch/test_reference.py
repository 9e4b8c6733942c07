"""docker:// references as Docker users write them."""

from __future__ import annotations

import pytest

from pyrkt.errors import UsageError
from pyrkt.fetch.reference import DOCKER_HUB, Reference, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("text", "registry", "repository", "tag", "digest"), [
    ("nginx", DOCKER_HUB, "library/nginx", "latest", None),
    ("nginx:1.25", DOCKER_HUB, "library/nginx", "1.25", None),
    ("user/app", DOCKER_HUB, "user/app", "latest", None),
    ("docker.io/nginx", DOCKER_HUB, "library/nginx", "latest", None),
    ("index.docker.io/user/app:v2", DOCKER_HUB, "user/app", "v2", None),
    ("host:5000/ns/name:tag", "host:5000", "ns/name", "tag", None),
    ("127.0.0.1:5000/busybox", "127.0.0.1:5000", "busybox", "latest", None),
    ("localhost/name", "localhost", "name", "latest", None),
    ("quay.io/coreos/etcd:v3.5.0", "quay.io", "coreos/etcd", "v3.5.0", None),
    (f"host:5000/name@{DIGEST}", "host:5000", "name", None, DIGEST),
    (f"name:1.0@{DIGEST}", DOCKER_HUB, "library/name", "1.0", DIGEST),
    ("[::1]:5000/a/b_c__d-e.f", "[::1]:5000", "a/b_c__d-e.f", "latest", None),
])
def test_references_are_split_as_docker_does(text: str, registry: str, repository: str, tag: str | None,
                                              digest: str | None) -> None:
    assert parse_reference(text) == Reference(registry, repository, tag, digest)


def test_a_digest_is_what_is_asked_for_and_the_name_is_registry_and_repository() -> None:
    ref = parse_reference(f"host:5000/ns/name:1.0@{DIGEST}")
    assert ref.ref == DIGEST
    assert ref.name == "host:5000/ns/name"
    assert str(ref) == f"host:5000/ns/name:1.0@{DIGEST}"
    assert parse_reference("nginx").ref == "latest"


def test_a_first_component_without_dot_or_port_is_a_docker_hub_namespace() -> None:
    assert parse_reference("myuser/app").registry == DOCKER_HUB


@pytest.mark.parametrize(("text", "complaint"), [
    ("", "empty"),
    ("Nginx", "repository names"),
    ("host:5000/", "repository names"),
    ("name@sha256:123", "bad digest"),
    ("name:bad/tag", "bad registry"),
    ("name:-x", "bad tag"),
    ("host:99999/name", "bad registry"),
    ("a..b/name:1", "bad registry"),
    ("ns/UPPER", "repository names"),
])
def test_malformed_references_are_refused_with_what_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(UsageError, match=complaint):
        parse_reference(text)


@pytest.mark.parametrize("digest", ["sha256:zz", "sha256:" + "a" * 63, "sha256:" + "A" * 64, "sha512:" + "a" * 64,
                                    "md5:" + "a" * 32, "sha256", "", "sha256:" + "a" * 64 + "\n"])
def test_a_digest_after_at_must_be_algorithm_colon_hex(digest: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_reference(f"name@{digest}")
    assert str(e.value) == (f"invalid docker image reference {'name@' + digest!r}: bad digest {digest!r}: "
                            "want sha256:<64 hex digits> or sha512:<128 hex digits>")


def test_sha512_digests_are_references_too() -> None:
    assert parse_reference("name@sha512:" + "b" * 128).digest == "sha512:" + "b" * 128
