"""Merging layers as overlayfs shows them: which layer each path of the merged tree comes from."""

from __future__ import annotations

from pyrkt.store.squash import LayerListing, plan_squash, tar_order


def layer(*entries: str, opaque: tuple[str, ...] = ()) -> LayerListing:
    """``"a/"`` is a dir, ``"-a"`` a whiteout of ``a``, anything else a file."""
    kinds = {"": "dir"}
    for e in entries:
        if e.startswith("-"):
            kinds[e[1:]] = "whiteout"
        elif e.endswith("/"):
            kinds[e.rstrip("/")] = "dir"
        else:
            kinds[e] = "other"
    return LayerListing(kinds, frozenset(opaque))


def test_upper_file_wins_and_lower_files_stay() -> None:
    plan = plan_squash([layer("etc/", "etc/passwd", "etc/group"), layer("etc/", "etc/passwd")])
    assert plan == {"": 1, "etc": 1, "etc/passwd": 1, "etc/group": 0}


def test_whiteout_hides_a_lower_file_and_is_not_itself_in_the_tree() -> None:
    plan = plan_squash([layer("etc/", "etc/gone", "etc/kept"), layer("etc/", "-etc/gone")])
    assert "etc/gone" not in plan
    assert plan["etc/kept"] == 0


def test_whiteout_of_a_dir_hides_its_whole_subtree() -> None:
    plan = plan_squash([layer("usr/", "usr/share/", "usr/share/doc", "usr/bin/"), layer("-usr/share")])
    assert set(plan) == {"", "usr", "usr/bin"}


def test_whiteout_of_something_no_lower_layer_has_changes_nothing() -> None:
    assert plan_squash([layer("a"), layer("-b")]) == {"": 1, "a": 0}


def test_opaque_dir_hides_lower_contents_but_keeps_its_own() -> None:
    plan = plan_squash([layer("d/", "d/old", "d/sub/", "d/sub/x", "e"), layer("d/", "d/new", opaque=("d",))])
    assert set(plan) == {"", "d", "d/new", "e"}
    assert plan["d"] == 1


def test_file_over_a_dir_replaces_the_subtree_and_dir_over_a_file_replaces_the_file() -> None:
    plan = plan_squash([layer("a/", "a/x", "b"), layer("a", "b/", "b/y")])
    assert plan == {"": 1, "a": 1, "b": 1, "b/y": 1}


def test_a_path_whited_out_then_recreated_higher_up_comes_back_without_its_old_children() -> None:
    plan = plan_squash([layer("d/", "d/old"), layer("-d"), layer("d/", "d/new")])
    assert set(plan) == {"", "d", "d/new"}
    assert plan["d"] == 2


def test_tar_order_puts_parents_before_children() -> None:
    assert tar_order(["a/b", "a-b", "a", "", "a/b/c"]) == ["", "a", "a/b", "a/b/c", "a-b"]
