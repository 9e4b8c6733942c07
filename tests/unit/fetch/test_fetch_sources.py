"""Which source an image argument names, and how a path is split from its tag."""

from __future__ import annotations

import pytest

from pyrkt.errors import UsageError
from pyrkt.fetch.sources import Source, check_signature, parse_source


def exists_only(*paths: str):  # type: ignore[no-untyped-def]
    return lambda p: p in paths


def test_local_prefixes_split_path_and_tag() -> None:
    ex = exists_only("/img", "/a.tar")
    assert parse_source("oci:/img", exists=ex) == Source("oci", "/img")
    assert parse_source("oci:/img:1.0", exists=ex) == Source("oci", "/img", "1.0")
    assert parse_source("oci-archive:/a.tar:v2", exists=ex) == Source("oci-archive", "/a.tar", "v2")


def test_a_path_that_exists_with_a_colon_is_not_split() -> None:
    assert parse_source("oci:/odd:name", exists=exists_only("/odd:name")) == Source("oci", "/odd:name")


def test_a_suffix_with_a_slash_is_part_of_the_path() -> None:
    assert parse_source("oci:/x:y/z", exists=exists_only()) == Source("oci", "/x:y/z")


def test_docker_archive_ref_keeps_its_own_colons() -> None:
    ex = exists_only("/s.tar")
    assert parse_source("docker-archive:/s.tar:example/busybox:latest", exists=ex) == \
        Source("docker-archive", "/s.tar", "example/busybox:latest")
    assert parse_source("docker-archive:/s.tar", exists=ex) == Source("docker-archive", "/s.tar")
    assert parse_source("docker-archive:/gone.tar:a:b", exists=ex) == Source("docker-archive", "/gone.tar", "a:b")


def test_remote_and_store_arguments() -> None:
    assert parse_source("docker://busybox").kind == "docker"
    assert parse_source("docker:busybox") == Source("docker", "busybox")
    assert parse_source("https://example.com/app.aci").kind == "https"
    assert parse_source("./app.aci").kind == "aci-file"
    assert parse_source("file:///srv/app.aci") == Source("aci-file", "/srv/app.aci")
    assert parse_source("example.com/app:1.0") == Source("store", "example.com/app:1.0")
    assert parse_source("sha256:abcd") == Source("store", "sha256:abcd")
    assert not parse_source("busybox").is_local and parse_source("oci:/x").is_local


@pytest.mark.parametrize("arg", ["oci:/x", "oci-archive:/x.tar", "docker-archive:/x.tar", "docker://busybox"])
def test_a_signature_is_refused_for_oci_and_docker_images(arg: str) -> None:
    with pytest.raises(UsageError, match=f"^--signature cannot be used with {arg}: an OCI or Docker image has no "
                                         "appc detached signature"):
        check_signature(arg, parse_source(arg, exists=exists_only()))


@pytest.mark.parametrize("arg", ["./app.aci", "https://example.com/app.aci", "example.com/app:1.0"])
def test_a_signature_goes_with_an_aci_file_url_or_discovered_name(arg: str) -> None:
    check_signature(arg, parse_source(arg, exists=exists_only()))


SHA = "sha256:" + "ab" * 32


@pytest.mark.parametrize("kind", ["oci", "oci-archive"])
def test_an_at_in_a_local_reference_starts_a_digest(kind: str) -> None:
    ex = exists_only("/img", "/odd@dir", "/tag@dir")
    assert parse_source(f"{kind}:/img@{SHA}", exists=ex) == Source(kind, "/img", SHA)
    assert parse_source(f"{kind}:/gone@{SHA}", exists=ex) == Source(kind, "/gone", SHA)  # not found later
    assert parse_source(f"{kind}:/odd@dir", exists=ex) == Source(kind, "/odd@dir")  # a path that exists is one
    assert parse_source(f"{kind}:/tag@dir:1.0", exists=ex) == Source(kind, "/tag@dir", "1.0")
    assert parse_source(f"{kind}:/a@b/img:1.0", exists=ex) == Source(kind, "/a@b/img", "1.0")  # not in the last name


@pytest.mark.parametrize("kind", ["oci", "oci-archive"])
@pytest.mark.parametrize("digest", ["sha256:zz", "sha256:" + "a" * 63, "sha1:" + "a" * 40, "latest", "",
                                    "sha512:" + "a" * 64])
def test_a_malformed_digest_of_a_local_reference_is_refused_in_one_line(kind: str, digest: str) -> None:
    arg = f"{kind}:/img@{digest}"
    with pytest.raises(UsageError) as e:
        parse_source(arg, exists=exists_only("/img"))
    assert str(e.value) == (f"invalid image reference {arg!r}: bad digest {digest!r}: "
                            "want sha256:<64 hex digits> or sha512:<128 hex digits>")
