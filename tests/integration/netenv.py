"""What the CNI tests share: a data dir with its own net.d and a fetched busybox image
(``net_env``, one per test module), and a snapshot of the host's network state to compare
before and after (links, nat rules other than portmap's shared chains, IP reservations of the
default network, pyrkt's netns files)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.pods import Cli, make_image, mounts_under


def host_state() -> tuple[int, set[str], list[str], list[str]]:
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    veths = len([ln for ln in links.splitlines() if "veth" in ln])
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    kept = sorted(ln for ln in rules.splitlines() if ln.startswith("-A") and "CNI-HOSTPORT" not in ln)
    reserved = sorted(p.name for p in Path("/var/lib/cni/networks/default").glob("*")
                      if p.name not in ("lock",) and not p.name.startswith("last_reserved_ip"))
    netns = sorted(os.listdir("/run/pyrkt/netns")) if os.path.isdir("/run/pyrkt/netns") else []
    return veths, set(kept), reserved, netns


@pytest.fixture(scope="module")
def net_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cli, str, Path]]:
    base = tmp_path_factory.mktemp("net")
    conf = base / "etc"
    (conf / "net.d").mkdir(parents=True)
    cli = Cli(base / "data", extra=[f"--local-config={conf}"])
    r = cli("fetch", make_image(base / "busybox"))
    assert r.code == 0, r
    yield cli, r.out.strip().splitlines()[-1], conf
    cli.collect_all()
    assert mounts_under(base) == []


def free_port() -> int:
    """A host TCP port on 127.0.0.1 nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def served(port: int, timeout: float = 10) -> bytes:
    """What ``http://127.0.0.1:PORT/`` serves, once it does (b"" if nothing did in time)."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return bytes(urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read())
        except OSError:
            time.sleep(0.2)
    return b""


@contextlib.contextmanager
def detached_pod(cli: Cli, *args: str) -> Iterator[str]:
    """A pod ``run --detach ARGS...`` started; its UUID. Stopped and removed afterwards, and the
    host's network state must then be as it was."""
    before = host_state()
    r = cli("run", "--detach", *args)
    assert r.code == 0, r
    uuid = r.out.strip()
    try:
        yield uuid
    finally:
        cli("stop", uuid)
        cli("rm", uuid)
    assert host_state() == before
