"""Network configurations: rkt's built-ins and the user's net.d files.

A network is a CNI conflist (a name, a cniVersion and a chain of plugin configs); a plain
``.conf`` file is read as a conflist of one plugin. Files are read as rkt reads them: keys
without regard to case, and a plain .conf reaches its plugin as written.
"""

from __future__ import annotations

import os

from pyrkt.errors import NetworkSetupError, UsageError
from pyrkt.model import jsonio
from pyrkt.network import cni

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    ConfigDirs = Sequence[str | os.PathLike[str]]  # the config dirs, lowest precedence first

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




def as_conflist(conf: dict[str, Any], source: str, text: str | None = None) -> dict[str, Any]:
    """The conflist a net.d document stands for. Keys are read as rkt and the Go plugins read
    them, without regard to case (``"Name"``, ``"Type"``); the plugin configs stay as written,
    and a plain .conf's ``text`` is kept to be handed to its plugin unchanged."""
    name = jsonio.field(conf, "name")
    version = jsonio.field(conf, "cniVersion", "0.4.0")
    plugins = jsonio.field(conf, "plugins")
    if plugins is not None:
        if not isinstance(plugins, list) or not plugins:
            raise NetworkSetupError(f"network config {source}: 'plugins' must be a non-empty list")
        out = {"cniVersion": version, "name": name, "plugins": list(plugins)}
    else:
        plugin = {k: v for k, v in conf.items() if jsonio.fold_key(k) not in ("name", "cniversion")}
        out = {"cniVersion": version, "name": name, "plugins": [plugin]}
        if text is not None:
            out[cni.RAW_CONF] = text
    if not isinstance(name, str) or not name:
        raise NetworkSetupError(f"network config {source}: no 'name'")
    for p in out["plugins"]:
        if not isinstance(p, dict) or not isinstance(jsonio.field(p, "type"), str):
            raise NetworkSetupError(f"network config {source}: every plugin needs a 'type'")
    return out


def plugin_type(plugin: dict[str, Any]) -> str:
    """A plugin config's ``type`` (``"Type"`` too, as the Go plugins read it)."""
    return str(jsonio.field(plugin, "type", ""))


def load_user(config_dirs: ConfigDirs) -> list[tuple[str, dict[str, Any]]]:
    """(file name, conflist) from every ``net.d``, later config dirs overriding by file name."""
    files: dict[str, str] = {}
    for d in config_dirs:
        net_d = os.path.join(d, "net.d")
        try:
            names = os.listdir(net_d)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for n in names:
            if n.endswith((".conf", ".conflist", ".json")):
                files[n] = os.path.join(net_d, n)
    out = []
    for n in sorted(files):
        path = files[n]
        try:
            with open(path, "rb") as f:
                raw = f.read()
            conf = jsonio.loads(raw)
            text = raw.decode()  # the bytes as written, to hand on (loads checked they are UTF-8)
        except (OSError, ValueError) as e:
            raise NetworkSetupError(f"network config {path}: {e}") from None
        if not isinstance(conf, dict):
            raise NetworkSetupError(f"network config {path}: not a JSON object")
        out.append((n, as_conflist(conf, path, text)))
    return out


def networks(config_dirs: ConfigDirs) -> dict[str, dict[str, Any]]:
    """Every known network by name: the user's first (in file order, first name wins), then
    the built-ins they do not override."""
    found: dict[str, dict[str, Any]] = {}
    for _, conf in load_user(config_dirs):
        found.setdefault(conf["name"], conf)
    for name, conf in BUILTIN.items():
        found.setdefault(name, conf)
    return found


def select(requested: list[str], config_dirs: ConfigDirs) -> list[tuple[str, dict[str, Any], str]]:
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
