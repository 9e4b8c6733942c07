"""Fixtures shared by the integration tests of one area (the suite-wide ones are in tests/)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.netenv import net_env  # noqa: F401  (the CNI tests' data dir and image)
from tests.support.aci import new_key, stop_agent

GpgKeys = dict[str, tuple[str, Path, Path]]  # who -> (fingerprint, public key file, gpg home)


@pytest.fixture(scope="module")
def gpg_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GpgKeys]:
    """Two real gpg signing keys, alice's and bob's, for ACI signature tests."""
    out = {}
    for who in ("alice", "bob"):
        home = tmp_path_factory.mktemp(f"gnupg-{who}")
        fpr, pub = new_key(home, f"{who}@example.com")
        out[who] = (fpr, pub, home)
    yield out
    for _, _, home in out.values():
        stop_agent(home)
