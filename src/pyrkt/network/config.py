"""Network configurations: rkt's built-ins and the user's net.d files.

A network is a CNI conflist (a name, a cniVersion and a chain of plugin configs); a plain
``.conf`` file is read as a conflist of one plugin.
"""

from __future__ import annotations

import os
from pathlib import Path

from pyrkt.errors import NetworkSetupError, UsageError
from pyrkt.model import jsonio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

BUILTIN: dict[str, dict[str, Any]] = {
    # rkt's 99-default.conf, chained with portmap for --port
    "default": {
        "cniVersion": "0.4.0",
        "name": "default",
        "plugins": [
            {"type": "ptp", "ipMasq": True,
             "ipam": {"type": "host-local", "subnet": "172.16.28.0/24", "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    },
    # rkt's 99-default-restricted.conf: host-only, no NAT, no default route
    "default-restricted": {
        "cniVersion": "0.4.0",
        "name": "default-restricted",
        "plugins": [
            {"type": "ptp", "ipMasq": False, "ipam": {"type": "host-local", "subnet": "172.31.0.0/16"}},
        ],
    },
}


def as_conflist(conf: dict[str, Any], source: str) -> dict[str, Any]:
    if "plugins" in conf:
        if not isinstance(conf["plugins"], list) or not conf["plugins"]:
            raise NetworkSetupError(f"network config {source}: 'plugins' must be a non-empty list")
        out = dict(conf)
    else:
        plugin = {k: v for k, v in conf.items() if k not in ("name", "cniVersion")}
        out = {"cniVersion": conf.get("cniVersion", "0.4.0"), "name": conf.get("name"), "plugins": [plugin]}
    if not isinstance(out.get("name"), str) or not out["name"]:
        raise NetworkSetupError(f"network config {source}: no 'name'")
    for p in out["plugins"]:
        if not isinstance(p, dict) or not isinstance(p.get("type"), str):
            raise NetworkSetupError(f"network config {source}: every plugin needs a 'type'")
    out.setdefault("cniVersion", "0.4.0")
    return out


def load_user(config_dirs: list[Path]) -> list[tuple[str, dict[str, Any]]]:
    """(file name, conflist) from every ``net.d``, later config dirs overriding by file name."""
    files: dict[str, Path] = {}
    for d in config_dirs:
        try:
            names = os.listdir(d / "net.d")
        except (FileNotFoundError, NotADirectoryError):
            continue
        for n in names:
            if n.endswith((".conf", ".conflist", ".json")):
                files[n] = d / "net.d" / n
    out = []
    for n in sorted(files):
        path = files[n]
        try:
            conf = jsonio.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise NetworkSetupError(f"network config {path}: {e}") from None
        if not isinstance(conf, dict):
            raise NetworkSetupError(f"network config {path}: not a JSON object")
        out.append((n, as_conflist(conf, str(path))))
    return out


def networks(config_dirs: list[Path]) -> dict[str, dict[str, Any]]:
    """Every known network by name: the user's first (in file order, first name wins), then
    the built-ins they do not override."""
    found: dict[str, dict[str, Any]] = {}
    for _, conf in load_user(config_dirs):
        found.setdefault(conf["name"], conf)
    for name, conf in BUILTIN.items():
        found.setdefault(name, conf)
    return found


def select(requested: list[str], config_dirs: list[Path]) -> list[tuple[str, dict[str, Any], str]]:
    """The networks a pod joins, in order: (name, conflist, CNI_ARGS). ``all`` means every
    user network; ``default`` must be named explicitly alongside others, as in rkt."""
    known = networks(config_dirs)
    out: list[tuple[str, dict[str, Any], str]] = []
    missing = []
    for item in requested:
        name, _, args = item.partition(":")
        if name == "all":
            out += [(n, c, "") for n, c in known.items() if n not in BUILTIN]
            continue
        if name not in known:
            missing.append(name)
            continue
        out.append((name, known[name], args))
    if missing:
        raise UsageError(f"networks not found: {', '.join(missing)}")
    return out
