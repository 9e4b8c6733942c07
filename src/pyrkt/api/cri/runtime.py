"""The RuntimeService calls that need no sandbox: Version, Status (is the runtime ready, is
there a pod network), UpdateRuntimeConfig (the node's pod CIDR) and RuntimeConfig (the cgroup
driver), and the server's settings.

What the kubelet tells the runtime is kept on disk (``<data dir>/cri/runtime-config.json``), so
a restarted server knows it again; nothing lives only in the server's memory.
"""

from __future__ import annotations

import ipaddress
import json
import os

from pyrkt import __version__
from pyrkt.api.proto import cri_pb2 as pb
from pyrkt.errors import UsageError
from pyrkt.model.values import Value

RUNTIME_NAME = "pyrkt"
RUNTIME_API_VERSION = "v1"
KUBELET_API_VERSION = "0.1.0"  # VersionResponse.version: the kubelet's API version the CRI names
RUNTIME_CONFIG = "runtime-config.json"
CNI_SUFFIXES = (".conf", ".conflist", ".json")  # what CNI's libcni loads from a conf dir


class Settings(Value):
    """How the server was started (``pyrkt cri`` flags) and where its state is."""

    state_dir: str  # <data dir>/cri
    cni_conf_dir: str = "/etc/cni/net.d"
    cni_bin_dirs: tuple[str, ...] = ()
    stream_addr: str = "127.0.0.1:0"


def version() -> pb.VersionResponse:
    return pb.VersionResponse(version=KUBELET_API_VERSION, runtime_name=RUNTIME_NAME, runtime_version=__version__,
                              runtime_api_version=RUNTIME_API_VERSION)


def cni_config(conf_dir: str) -> tuple[str, str]:
    """(the first CNI network config in ``conf_dir``, as libcni orders them, or "";
    why there is none)."""
    try:
        names = sorted(n for n in os.listdir(conf_dir) if n.endswith(CNI_SUFFIXES))
    except OSError as e:
        return "", f"cannot read CNI config dir {conf_dir}: {e.strerror}"
    bad = []
    for name in names:
        path = os.path.join(conf_dir, name)
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            bad.append(f"{name}: {getattr(e, 'strerror', None) or e}")
            continue
        if isinstance(data, dict) and isinstance(data.get("name"), str) and (
                isinstance(data.get("type"), str) or isinstance(data.get("plugins"), list)):
            return path, ""
        bad.append(f"{name}: not a CNI network config (no name, or no type or plugins)")
    if bad:
        return "", f"no usable network config in {conf_dir} ({'; '.join(bad)})"
    return "", f"no network config found in {conf_dir}"


def status(settings: Settings, *, verbose: bool = False, stream_address: str = "") -> pb.StatusResponse:
    """RuntimeReady always (pyrkt is daemonless: nothing else has to be up); NetworkReady when
    the CNI conf dir holds a network config. ``stream_address``: the streaming server's
    HOST:PORT as bound (``--stream-addr``'s port 0 chooses one)."""
    conf, why = cni_config(settings.cni_conf_dir)
    conditions = [pb.RuntimeCondition(type="RuntimeReady", status=True)]
    if conf:
        conditions.append(pb.RuntimeCondition(type="NetworkReady", status=True))
    else:
        conditions.append(pb.RuntimeCondition(type="NetworkReady", status=False, reason="NetworkPluginNotReady",
                                              message=f"network plugin is not ready: {why}"))
    out = pb.StatusResponse(status=pb.RuntimeStatus(conditions=conditions))
    if verbose:
        info = {"cniConfDir": settings.cni_conf_dir, "cniBinDirs": ":".join(settings.cni_bin_dirs),
                "cniConfig": conf, "streamAddress": stream_address or settings.stream_addr,
                "podCIDR": read_runtime_config(settings.state_dir).get("podCIDR", "")}
        out.info.update({"config": json.dumps(info, sort_keys=True)})
    return out


def runtime_config() -> pb.RuntimeConfigResponse:
    """The cgroup driver the kubelet must match (it asks at start, with
    KubeletCgroupDriverFromCRI): cgroupfs, since pyrkt makes its cgroups as paths in each
    hierarchy itself and never asks systemd for a slice."""
    return pb.RuntimeConfigResponse(linux=pb.LinuxRuntimeConfiguration(cgroup_driver=pb.CGROUPFS))


def check_cidr(text: str) -> str:
    """A pod CIDR (``10.88.0.0/16``, or several comma-separated for dual stack), normalised; "" clears it."""
    if not text:
        return ""
    out = []
    for part in text.split(","):
        try:
            out.append(str(ipaddress.ip_network(part.strip(), strict=False)))
        except ValueError:
            raise UsageError(f"invalid pod CIDR {part.strip()!r}: want an address/prefix such as 10.88.0.0/16") from None
    return ",".join(out)


def read_runtime_config(state_dir: str) -> dict[str, str]:
    try:
        with open(os.path.join(state_dir, RUNTIME_CONFIG)) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def update_runtime_config(state_dir: str, request: pb.UpdateRuntimeConfigRequest) -> None:
    """Keep the pod CIDR the kubelet gives on disk (written atomically), for Status to show.
    The pods' addresses come from the node's CNI config, as with CRI-O (containerd writes a
    config from it only with its conf_template option, which pyrkt has not)."""
    cidr = check_cidr(request.runtime_config.network_config.pod_cidr)
    data = read_runtime_config(state_dir)
    if data.get("podCIDR", "") == cidr:
        return
    data["podCIDR"] = cidr
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    path = os.path.join(state_dir, RUNTIME_CONFIG)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
