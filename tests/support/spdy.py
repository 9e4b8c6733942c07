"""An independent SPDY/3.1 client of the CRI streaming server, built offline from Debian's copy
of the Go library Kubernetes' own clients use:

    binary = build_client(workdir)             # go_missing(): no Go to build it with
    report = run_client(binary, "exec", url, "-stdin", "-stdout", input=b"...")

``golang-go`` compiles ``spdyclient/main.go`` (next to this file) against
``golang-github-docker-spdystream-dev``'s GOPATH tree (``github.com/moby/spdystream``;
GO111MODULE off: no module proxy, nothing fetched). The client behaves as client-go's
remotecommand and portforward do over SPDY (see its source) and prints a JSON report.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

GOPATH = "/usr/share/gocode"
PACKAGE = "github.com/moby/spdystream"
SOURCE = Path(__file__).parent / "spdyclient" / "main.go"
MISSING_GO = "the SPDY test client is built with Go: install golang-go (make test-deps)"


def go_missing() -> bool:
    return shutil.which("go") is None


def build_client(workdir: Path) -> Path:
    out = workdir / "spdyclient"
    env = {**os.environ, "GOPATH": GOPATH, "GO111MODULE": "off", "CGO_ENABLED": "0", "GOFLAGS": "",
           "GOCACHE": str(workdir / "gocache"), "GOPROXY": "off", "HOME": str(workdir)}
    p = subprocess.run(["go", "build", "-o", str(out), str(SOURCE)], env=env, capture_output=True, text=True,
                       timeout=600)
    if p.returncode != 0:
        hint = "" if os.path.isdir(os.path.join(GOPATH, "src", PACKAGE)) else \
            " (its library is missing: install golang-github-docker-spdystream-dev, make test-deps)"
        raise RuntimeError(f"go build {SOURCE.name} failed{hint}: {p.stderr.strip()}")
    return out


def run_client(binary: Path, mode: str, url: str, *flags: str, input: bytes = b"",
               timeout: float = 60) -> dict[str, Any]:
    """The client's report (its exit status 0 asserted: a failure of its own is the test's)."""
    p = subprocess.run([str(binary), *flags, mode, url], input=input, capture_output=True, timeout=timeout)
    assert p.returncode == 0, p.stderr.decode()
    report: dict[str, Any] = json.loads(p.stdout)
    return report
