"""The appc ACE validator as two ACIs, built offline from Debian's copy of the appc spec:

    binary = build_validator(workdir)          # go_missing(): no Go to build it with
    main, sidekick = validator_acis(binary, workdir)

``golang-go`` compiles ``github.com/appc/spec/ace`` from ``golang-github-appc-spec-dev``'s
GOPATH tree (GO111MODULE off: no module proxy, nothing fetched) into one static binary; each
ACI holds it as ``/ace-validator`` with the image manifest the spec's ``ace/`` directory
describes for its ``main`` and ``sidekick`` images.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.support.aci import appc_arch, build_aci
from tests.support.images import Entry

GOPATH = "/usr/share/gocode"
PACKAGE = "github.com/appc/spec/ace"
MISSING_GO = "the ACE validator is built with Go: install golang-go (make test-deps)"


def go_missing() -> bool:
    return shutil.which("go") is None


def build_validator(workdir: Path) -> Path:
    """``ace-validator``: static (no libc in the images), from the offline GOPATH tree."""
    out = workdir / "ace-validator"
    env = {**os.environ, "GOPATH": GOPATH, "GO111MODULE": "off", "CGO_ENABLED": "0", "GOFLAGS": "",
           "GOCACHE": str(workdir / "gocache"), "GOPROXY": "off", "HOME": str(workdir)}
    p = subprocess.run(["go", "build", "-o", str(out), PACKAGE], env=env, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        hint = "" if os.path.isdir(os.path.join(GOPATH, "src", PACKAGE)) else \
            " (its sources are missing: install golang-github-appc-spec-dev, make test-deps)"
        raise RuntimeError(f"go build {PACKAGE} failed{hint}: {p.stderr.strip()}")
    return out


def _manifest(kind: str) -> dict[str, Any]:
    """The image manifest of ``ace-validator-<kind>``: the values the validator's own checks
    expect (its working directory, environment, mount point, app name, event handlers)."""
    labels = [{"name": "version", "value": "0.8.11"}, {"name": "os", "value": "linux"},
              {"name": "arch", "value": appc_arch()}]
    app: dict[str, Any] = {"exec": ["/ace-validator", kind], "user": "0", "group": "0",
                           "mountPoints": [{"name": "database", "path": "/db", "readOnly": False}]}
    manifest: dict[str, Any] = {"acKind": "ImageManifest", "acVersion": "0.8.11",
                                "name": f"coreos.com/ace-validator-{kind}", "labels": labels, "app": app}
    if kind == "main":
        app.update({
            "eventHandlers": [{"name": "pre-start", "exec": ["/ace-validator", "prestart"]},
                              {"name": "post-stop", "exec": ["/ace-validator", "poststop"]}],
            "workingDirectory": "/opt/acvalidator",
            "environment": [{"name": "IN_ACE_VALIDATOR", "value": "correct"}],
            "ports": [{"name": "www", "protocol": "tcp", "port": 80}],
            "isolators": [{"name": "resource/memory", "value": {"limit": "1G"}}],
        })
        manifest["annotations"] = [{"name": "created", "value": "2014-10-27T19:32:27.67021798Z"},
                                   {"name": "homepage", "value": "https://github.com/appc/spec"},
                                   {"name": "lorem", "value": "ipsum"}]
    return manifest


def validator_acis(binary: Path, workdir: Path) -> tuple[Path, Path]:
    """``ace-validator-main.aci`` and ``ace-validator-sidekick.aci`` in ``workdir``."""
    program = Entry.file(binary.read_bytes(), mode=0o755)
    out = []
    for kind in ("main", "sidekick"):
        dest = workdir / f"ace-validator-{kind}.aci"
        members = [("rootfs", Entry.dir()), ("rootfs/ace-validator", program)]
        if kind == "main":
            members += [("rootfs/opt", Entry.dir()), ("rootfs/opt/acvalidator", Entry.dir())]
        build_aci(dest, _manifest(kind), with_rootfs=False, extra_members=members)
        out.append(dest)
    return out[0], out[1]
