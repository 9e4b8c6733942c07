"""Checks on an image store that tests share."""

from __future__ import annotations

import os

from pyrkt.store import Store


def assert_store_empty(store: Store) -> None:
    """Nothing was committed and nothing was left behind: no image, blob, layer or temp file."""
    assert store.list() == []
    assert list(store.blobs.walk()) == []
    assert store.layers.walk() == []
    assert not store.tmp.exists() or os.listdir(store.tmp) == []
