"""Pull UX against the real Docker Distribution registry (the fixtures of test_registry.py): the
progress display on a terminal (a pty) and not elsewhere or with ``--quiet``, and
``--platform`` choosing another platform's image from a multi-arch index."""

from __future__ import annotations

import os
import pty
import re
import select
import time
from pathlib import Path

import pytest
from tests.conftest import Pyrkt
from tests.integration.test_registry import (  # noqa: F401 (fixtures)
    Registry,
    busybox,
    one_line_error,
    pytestmark,
    registry,
)
from tests.support.images import build_oci_layout, host_arch, image_id_of
from tests.unit.fetch.test_registry_platform import platform_image_id

OTHER = "linux/s390x" if host_arch() != "s390x" else "linux/amd64"


def on_a_terminal(pyrkt: Pyrkt, *args: str, timeout: float = 60) -> tuple[int, str]:
    """(exit code, everything written) of ``pyrkt ARGS`` with stdin, stdout and stderr a pty."""
    argv = pyrkt.argv(*args)
    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdio is the pty's slave end
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the pty
                break
            if not data:
                break
            out += data
        else:
            os.kill(pid, 9)
            pytest.fail(f"$ {' '.join(argv)} did not finish within {timeout}s: {bytes(out)!r}")
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace").replace("\r\n", "\n")


@pytest.fixture(scope="module")
def multi(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:  # noqa: F811
    """(docker:// reference, layout) of an index with the host's platform and OTHER."""
    layout = build_oci_layout(tmp_path_factory.mktemp("multi") / "layout",
                              platforms=(OTHER, f"linux/{host_arch()}"), cmd=("sh", "-c", "uname -m"))
    return registry.push(layout, "tests/multi-progress", all_platforms=True), layout


def test_a_fetch_on_a_terminal_shows_each_layer_and_a_total_line(
        pyrkt: Pyrkt, busybox: tuple[str, str]) -> None:  # noqa: F811
    ref, image_id = busybox
    code, out = on_a_terminal(pyrkt, "--insecure-options=http", "fetch", ref)
    assert code == 0, out
    drawn = [line.rsplit("\x1b[2K", 1)[-1] for line in out.splitlines() if "\x1b[2K" in line]
    totals = [line for line in drawn if line.startswith("total ")]
    assert totals and " / " in totals[-1] and "/s" in totals[-1] and " in 0:" in totals[-1], out
    last_layers = drawn[len(drawn) - len(drawn) // len(totals):-1]  # the final drawing's layer lines
    assert last_layers and all(re.fullmatch(r"[0-9a-f]{12} +[0-9.]+ [kMG]?B / [0-9.]+ [kMG]?B +done", line)
                               for line in last_layers), out
    assert out.splitlines()[-1] == image_id[:len("sha256:") + 12]


def test_quiet_on_a_terminal_prints_only_the_image_id(pyrkt: Pyrkt, busybox: tuple[str, str]) -> None:  # noqa: F811
    ref, image_id = busybox
    code, out = on_a_terminal(pyrkt, "--insecure-options=http", "fetch", "--quiet", ref)
    assert code == 0, out
    assert out == image_id[:len("sha256:") + 12] + "\n"


def test_a_fetch_whose_stderr_is_not_a_terminal_shows_no_progress(
        pyrkt: Pyrkt, busybox: tuple[str, str]) -> None:  # noqa: F811
    ref, image_id = busybox
    r = pyrkt("--insecure-options=http", "fetch", ref)
    assert r.code == 0 and r.err == "" and r.out == image_id[:len("sha256:") + 12] + "\n", r


def test_platform_fetches_another_platform_of_an_index(pyrkt: Pyrkt, multi: tuple[str, Path]) -> None:
    ref, layout = multi
    r = pyrkt("--insecure-options=http", "fetch", "--full", f"--platform={OTHER}", ref)
    assert r.code == 0, r
    assert r.out.strip() == platform_image_id(layout, OTHER) != image_id_of(layout)
    r = pyrkt("--insecure-options=http", "fetch", "--full", f"--platform=linux/{host_arch()}", ref)
    assert r.code == 0 and r.out.strip() == image_id_of(layout), r


def test_run_with_another_platform_fetches_it_although_the_tag_is_stored_for_the_host(
        pyrkt: Pyrkt, multi: tuple[str, Path]) -> None:
    ref, layout = multi
    r = pyrkt("--insecure-options=http", "fetch", "--full", f"--platform=linux/{host_arch()}", ref)
    assert r.code == 0 and r.out.strip() == image_id_of(layout), r
    r = pyrkt("--insecure-options=http", "fetch", "--full", "--pull-policy=never", f"--platform={OTHER}", ref)
    assert r.code == 254 and "is stored for linux/" in r.err and f"not {OTHER} (pull policy never)" in r.err, r
    r = pyrkt("--insecure-options=http", "fetch", "--full", "--pull-policy=new", f"--platform={OTHER}", ref)
    assert r.code == 0 and r.out.strip() == platform_image_id(layout, OTHER), r
    r = pyrkt("--insecure-options=http", "fetch", "--full", "--pull-policy=new", f"--platform={OTHER}", ref)
    assert r.code == 0 and r.out.strip() == platform_image_id(layout, OTHER), r  # now the stored one


def test_a_platform_the_index_lacks_is_one_line_listing_the_platforms_it_has(
        pyrkt: Pyrkt, registry: Registry, multi: tuple[str, Path]) -> None:  # noqa: F811
    ref, _ = multi
    have = ", ".join(sorted((OTHER, f"linux/{host_arch()}")))
    for command in (("fetch",), ("prepare", "--quiet")):
        r = pyrkt("--insecure-options=http", *command, "--platform=linux/riscv64", ref)
        line = one_line_error(r, r.code, r.err)
        assert line.startswith(f"pyrkt: {registry.host}/tests/multi-progress: manifest sha256:"), line
        assert line.endswith(f"has no image for linux/riscv64 (it has: {have})"), line
    assert "multi-progress" not in pyrkt("image", "list", "--no-legend").out


def test_a_malformed_platform_is_refused_before_anything_is_fetched(
        pyrkt: Pyrkt, registry: Registry, multi: tuple[str, Path]) -> None:  # noqa: F811
    ref, _ = multi
    before = len(registry.pyrkt_requests("manifests"))
    r = pyrkt("--insecure-options=http", "fetch", "--platform=arm64", ref)
    assert r.code != 0 and "invalid --platform='arm64'" in r.err, r
    assert len(registry.pyrkt_requests("manifests")) == before
