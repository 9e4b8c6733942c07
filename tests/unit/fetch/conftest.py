"""Makes ``tests.support`` (the test image builder) importable from these unit tests."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[3])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402

from pyrkt.store import Store  # noqa: E402


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh image store for one test."""
    s = Store.open(tmp_path / "data" / "store")
    yield s
    s.close()
