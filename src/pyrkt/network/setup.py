"""Bringing a pod's networks up and down.

Up is two steps, so that pod init can enter the netns while the plugins run: ``create_netns``
writes the netns path (``$P/netns``) before it makes it; ``add`` (the networks ``config.select``
chose) writes per network ``$P/net/<i>-<name>.json`` (the conflist, CNI_ARGS and interface),
then runs the plugin chain with ADD, rewriting that file with each plugin's result before the
next plugin runs, and finally ``$P/net-info.json``
(what list and status show). ``down`` reads those files and DELs every network in reverse
order (plugins treat DEL of what is not there as success), then removes the netns. It is
idempotent and needs nothing but the pod dir, so gc can run it after any crash; only a plugin
whose ADD completed can make it fail (``delete``), so a refused ADD never wedges gc.
"""

from __future__ import annotations

import os
import time

from pyrkt.errors import NetworkSetupError, PyrktError
from pyrkt.kernel import fs
from pyrkt.model import abi, jsonio
from pyrkt.network import cni, config, netns

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrkt.network.config import ConfigDirs

NET_DIR = "net"


def plugin_path(config_dirs: ConfigDirs) -> list[str]:
    """Where plugins are looked for: the config dirs' net.d first (as rkt), then the system's."""
    return [os.path.join(d, "net.d") for d in reversed(config_dirs)] + list(cni.DEFAULT_PLUGIN_DIRS)


def forwardable(nets: list[tuple[str, dict[str, Any], str]]) -> str:
    """rkt's rule: port forwards go to the first network with ipMasq, else the last one."""
    for name, conflist, _ in nets:
        if any(jsonio.field(p, "ipMasq") for p in conflist["plugins"]):
            return name
    return nets[-1][0] if nets else ""


def create_netns(pod: str | os.PathLike[str], uuid: str) -> str:
    """The pod's netns, with nothing in it but its loopback, named in the pod dir; its path.
    ``add`` puts the pod's networks in it (pod init may enter it before)."""
    pod_dir = os.fspath(pod)
    path = netns.path_for(uuid)
    fs.atomic_write(os.path.join(pod_dir, abi.NETNS), path + "\n", sync=False)
    try:
        netns.create(path)
    except BaseException:
        undo(pod_dir)
        raise
    return path


def add(pod: str | os.PathLike[str], uuid: str, nets: list[tuple[str, dict[str, Any], str]],
        config_dirs: ConfigDirs, *, port_mappings: list[dict[str, Any]] | None = None) -> None:
    """ADD the pod's networks (``config.select``'s), in order, to the netns ``create_netns``
    made; on any failure every network added so far is deleted and the netns removed (``down``)."""
    pod_dir = os.fspath(pod)
    started = time.perf_counter()
    path = netns.path_for(uuid)
    try:
        target = forwardable(nets)
        os.makedirs(os.path.join(pod_dir, NET_DIR), exist_ok=True)
        search = plugin_path(config_dirs)
        info = []
        for i, (name, conflist, args) in enumerate(nets):
            runtime = {"portMappings": port_mappings} if port_mappings and name == target else None
            if runtime is None and conflist is config.BUILTIN.get(name):
                conflist = without_portmap(conflist)  # the built-in chain's portmap only serves --port
            if runtime and not any(cni.wanted_runtime(p, runtime) for p in conflist["plugins"]):
                raise NetworkSetupError(f"network {name!r} cannot forward ports: no plugin with the portMappings capability")
            record: dict[str, Any] = {"network": name, "conflist": conflist, "args": args, "ifname": f"eth{i}",
                                      "plugin_path": search, "runtime": runtime}
            rec_path = os.path.join(pod_dir, NET_DIR, f"{i:02d}-{name}.json")
            fs.atomic_write(rec_path, jsonio.dumps(record), sync=False)
            prev = None
            for j, plugin in enumerate(conflist["plugins"]):
                kind = config.plugin_type(plugin)
                result = cni.call("ADD", cni.find_plugin(kind, search), cni.plugin_input(conflist, j, prev, runtime),
                                  kind=kind, container_id=uuid, netns=path, ifname=f"eth{i}", args=args,
                                  plugin_path=search, network=name)
                prev = result if result is not None else prev
                record["result"] = prev or {}  # each plugin's result is on disk before the next runs
                record["added"] = j + 1
                fs.atomic_write(rec_path, jsonio.dumps(record), sync=False)
            info.append(net_info(record, cni.find_plugin(config.plugin_type(conflist["plugins"][0]), search)))
        fs.atomic_write(os.path.join(pod_dir, abi.NET_INFO), jsonio.dumps(info), sync=False)
    except BaseException:
        undo(pod_dir)
        raise
    cni.report_time("up", started)


def undo(pod_dir: str) -> None:
    """After a failed ``create_netns`` or ``add``: what they made goes now (the first error is
    the one to report; gc retries a teardown that fails)."""
    try:
        down(pod_dir)
    except PyrktError:
        pass


def without_portmap(conflist: dict[str, Any]) -> dict[str, Any]:
    plugins = [p for p in conflist["plugins"] if config.plugin_type(p) != "portmap"]
    return {**conflist, "plugins": plugins} if plugins else conflist


def net_info(record: dict[str, Any], plugin: str) -> dict[str, Any]:
    """rkt's NetInfo for list/status: the first IPv4 address and its mask."""
    ip, mask = "", ""
    for addr in cni.addresses(record.get("result") or {}):
        if ":" not in addr:
            ip, _, prefix = addr.partition("/")
            bits = int(prefix or 32)
            m = (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF
            mask = ".".join(str((m >> s) & 0xFF) for s in (24, 16, 8, 0))
            break
    return {"netName": record["network"], "netConf": f"net/{record['network']}", "pluginPath": plugin,
            "ifName": record["ifname"], "ip": ip, "args": record["args"], "mask": mask}


def host_ip(pod: str | os.PathLike[str]) -> str:
    """The host's address on the pod's forwardable network (rkt's GetForwardableNetHostIP): the
    gateway its result gives the pod, which ptp and bridge put on the host side."""
    records = []
    net_dir = os.path.join(pod, NET_DIR)
    for name in sorted(n for n in os.listdir(net_dir) if n.endswith(".json")):
        records.append(jsonio.loads(fs.read_file(os.path.join(net_dir, name))))
    target = forwardable([(r["network"], r["conflist"], r.get("args", "")) for r in records])
    for record in records:
        if record["network"] == target:
            for gateway in cni.gateways(record.get("result") or {}):
                if ":" not in gateway:
                    return gateway
    raise NetworkSetupError(f"network {target!r} gives the pod no IPv4 gateway: the metadata service "
                            "cannot be reached from it (--mds-register)")


def down(pod: str | os.PathLike[str], *, keep_netns: bool = False) -> None:
    """DEL every network the pod dir records, in reverse order, then remove the netns (unless
    ``keep_netns``: the caller removes it later, from the right mount namespace)."""
    pod_dir = os.fspath(pod)
    started = time.perf_counter()
    path = (fs.read_text(os.path.join(pod_dir, abi.NETNS)) or "").strip()
    errors: list[str] = []
    net_dir = os.path.join(pod_dir, NET_DIR)
    try:
        records = sorted(os.listdir(net_dir), reverse=True)
    except FileNotFoundError:
        records = []
    for name in records:
        if not name.endswith(".json"):
            continue
        rec_path = os.path.join(net_dir, name)
        try:
            record = jsonio.loads(fs.read_file(rec_path))
        except (OSError, ValueError):
            os.unlink(rec_path)  # a record cut short before its first plugin ran
            continue
        try:
            delete(record, os.path.basename(pod_dir.rstrip("/")), path)
            os.unlink(rec_path)
        except NetworkSetupError as e:
            errors.append(str(e))
    if path and not keep_netns:
        netns.remove(path)
        fs.unlink_quiet(os.path.join(pod_dir, abi.NETNS))
    cni.report_time("down", started)
    if errors:
        raise NetworkSetupError(errors[0])


def delete(record: dict[str, Any], uuid: str, path: str) -> None:
    """DEL the record's chain in reverse. A plugin whose ADD completed (``added``) must undo it:
    its failure is an error (gc retries). One whose ADD failed or never ran is told DEL as CNI
    asks, but best effort: it was refused (e.g. bad CNI_ARGS that its DEL refuses again) and
    owns nothing to undo, so its failure must not keep the pod from being collected."""
    conflist = record["conflist"]
    search = record.get("plugin_path") or list(cni.DEFAULT_PLUGIN_DIRS)
    result = record.get("result") or None
    added = int(record.get("added") or 0)
    for j in reversed(range(len(conflist["plugins"]))):
        kind = config.plugin_type(conflist["plugins"][j])
        try:
            plugin = cni.find_plugin(kind, search)
        except NetworkSetupError:
            continue  # a plugin that is not there cannot have set anything up to undo
        try:
            cni.call("DEL", plugin, cni.plugin_input(conflist, j, result, record.get("runtime")), kind=kind,
                     container_id=uuid,
                     netns=path if path and os.path.exists(path) else "", ifname=record["ifname"],
                     args=record.get("args", ""), plugin_path=search, network=record["network"])
        except NetworkSetupError:
            if j < added:
                raise


def first_dns(pod: str | os.PathLike[str]) -> tuple[str, dict[str, Any]] | None:
    """(network, dns block) of the first network, in ``--net`` order, whose result has DNS."""
    net_dir = os.path.join(pod, NET_DIR)
    try:
        names = sorted(n for n in os.listdir(net_dir) if n.endswith(".json"))
    except FileNotFoundError:
        return None
    for name in names:
        try:
            record = jsonio.loads(fs.read_file(os.path.join(net_dir, name)))
        except (OSError, ValueError):
            continue
        block = cni.dns(record.get("result") or {})
        if block:
            return str(record["network"]), block
    return None
