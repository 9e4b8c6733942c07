"""Planning tar members: paths, whiteouts, opaque markers and what is refused."""

from __future__ import annotations

import pytest

from pyrkt.errors import ImageError
from pyrkt.store.members import plan_member

LAYER = "sha256:" + "ab" * 32


def plan(name: str, type_flag: bytes = b"0", linkname: str = ""):  # type: ignore[no-untyped-def]
    return plan_member(name, type_flag, linkname, layer=LAYER)


def test_member_paths_are_normalised_to_components() -> None:
    assert plan("./usr//bin/sh").parts == ("usr", "bin", "sh")
    assert plan("etc/", b"5").kind == "dir"


def test_whiteout_names_the_hidden_entry() -> None:
    p = plan("etc/.wh.motd")
    assert (p.kind, p.parts) == ("whiteout", ("etc", "motd"))


def test_top_level_whiteout() -> None:
    assert plan(".wh.tmp").parts == ("tmp",)


def test_opaque_marker_names_its_directory() -> None:
    p = plan("var/cache/.wh..wh..opq")
    assert (p.kind, p.parts) == ("opaque", ("var", "cache"))


def test_aufs_metadata_and_what_is_inside_it_is_skipped() -> None:
    assert plan(".wh..wh.plnk", b"5").kind == "skip"
    assert plan(".wh..wh.plnk/123.456", b"0").kind == "skip"


def test_whiteout_of_a_hardlink_member_is_still_a_whiteout() -> None:
    assert plan("a/.wh.b", b"1", "a/c").kind == "whiteout"


@pytest.mark.parametrize("name", ["../etc/passwd", "a/../../b", "/etc/passwd", "a/.."])
def test_escaping_paths_are_refused_naming_layer_and_member(name: str) -> None:
    with pytest.raises(ImageError) as err:
        plan(name)
    assert LAYER in str(err.value) and repr(name) in str(err.value)


@pytest.mark.parametrize("target", ["/etc/shadow", "../outside", "a/../../x"])
def test_hardlinks_out_of_the_layer_are_refused(target: str) -> None:
    with pytest.raises(ImageError, match="hardlink to .*outside the layer"):
        plan("x", b"1", target)


def test_hardlink_inside_the_layer_is_planned_with_its_target() -> None:
    p = plan("bin/b", b"1", "./bin/a")
    assert (p.kind, p.link_parts) == ("hardlink", ("bin", "a"))


def test_unknown_member_type_is_refused() -> None:
    with pytest.raises(ImageError, match="unsupported tar type"):
        plan("x", b"V")


def test_a_file_cannot_replace_the_layer_root() -> None:
    with pytest.raises(ImageError, match="root"):
        plan("./", b"0")
    assert plan("./", b"5").parts == ()
