"""Pull policies, decided in one place (fetch.policy) for every source that the store can hold."""

from __future__ import annotations

import pytest

from pyrkt.errors import NotFound, UsageError
from pyrkt.fetch.policy import check_pull_policy, use_stored
from pyrkt.model.image import Image

STORED = Image(id="sha256:" + "a" * 64, name="example.com/app")


@pytest.mark.parametrize(("policy", "fresh", "used"), [
    ("never", False, True), ("new", False, True), ("update", False, False), ("update", True, True),
])
def test_what_the_store_holds_is_used_unless_update_asks_the_source_again(policy: str, fresh: bool,
                                                                          used: bool) -> None:
    assert use_stored(policy, STORED, what="x", fresh=fresh) == (STORED if used else None)


def test_nothing_stored_is_fetched_except_with_never_which_says_what_is_missing() -> None:
    assert use_stored("new", None, what="x") is None
    assert use_stored("update", None, what="x") is None
    with pytest.raises(NotFound) as err:
        use_stored("never", None, what="docker://busybox")
    assert str(err.value) == 'image "docker://busybox" not found in the store (pull policy never)'
    with pytest.raises(NotFound, match="^stored for linux/arm64$"):
        use_stored("never", None, what="x", missing="stored for linux/arm64")


def test_an_unknown_policy_is_one_line() -> None:
    assert check_pull_policy("new") == "new"
    with pytest.raises(UsageError, match="invalid pull policy 'always': want never, new or update"):
        check_pull_policy("always")
