"""`pyrkt cri`'s --stream-addr: checked, and an address off loopback named in a warning."""

from __future__ import annotations

import pytest

from pyrkt.cli.commands import cri
from pyrkt.errors import UsageError


@pytest.mark.parametrize(("addr", "quiet"), [("127.0.0.1:0", True), ("127.0.0.2:10010", True), ("[::1]:0", True),
                                              ("localhost:0", True), ("0.0.0.0:10010", False),
                                              ("192.0.2.7:0", False), ("node.example:0", False)])
def test_only_loopback_goes_without_a_warning(addr: str, quiet: bool) -> None:
    assert cri.loopback(cri.check_stream_addr(addr)) is quiet


def test_a_stream_address_wants_host_and_port() -> None:
    with pytest.raises(UsageError, match="want HOST:PORT"):
        cri.check_stream_addr("127.0.0.1")
