"""Fixtures shared by the integration tests of one area (the suite-wide ones are in tests/)."""

from __future__ import annotations

import os
import shutil
import subprocess
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


# The CNI portmap plugin makes these shared chains (and the nat table's jumps to them) the first
# time a pod forwards a port, and never removes them. Made by this test session, they go with it.
HOSTPORT_CHAINS = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK")
HOSTPORT_JUMPS = (("PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"),
                  ("OUTPUT", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"),
                  ("POSTROUTING", "-m", "comment", "--comment", "CNI portfwd requiring masquerade",
                   "-j", "CNI-HOSTPORT-MASQ"))


def nat(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", "-w", "-t", "nat", *args], capture_output=True, text=True)


@pytest.fixture(scope="session", autouse=True)
def portmap_chains_made_here_go() -> Iterator[None]:
    """Leave the host's nat table as the session found it: portmap's shared chains, when this
    session made them and no pod forwards a port through them any more."""
    usable = os.geteuid() == 0 and shutil.which("iptables") is not None
    existed = usable and nat("-S", HOSTPORT_CHAINS[0]).returncode == 0
    yield
    if not usable or existed or nat("-S", HOSTPORT_CHAINS[0]).returncode != 0:
        return
    if any(line.startswith("-A CNI-HOSTPORT-DNAT") for line in nat("-S", HOSTPORT_CHAINS[0]).stdout.splitlines()):
        return  # still in use (a pod of another session): portmap's own to clean
    for jump in HOSTPORT_JUMPS:
        while nat("-D", *jump).returncode == 0:
            pass
    for chain in HOSTPORT_CHAINS:
        nat("-F", chain)
        nat("-X", chain)
