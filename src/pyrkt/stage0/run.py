"""Run a pod: prepare (or take a prepared pod), write its runtime config, and hand it to its
stage1 flavor. Foreground runs return the pod's exit code (rkt's rules); ``--detach`` returns
once every app has started; ``--rm`` removes the pod after it exits.
"""

from __future__ import annotations

import os
import sys

from pyrkt.config import Config, check_writable
from pyrkt.errors import InvalidState, NetworkSetupError, PyrktError, UsageError, quote
from pyrkt.kernel import fs
from pyrkt.model import abi
from pyrkt.model.names import check_hostname
from pyrkt.model.values import Value, field
from pyrkt.pods.pod import Pod
from pyrkt.pods.state import Dir, State
from pyrkt.stage0.prepare import PodRequest, discard, host_devices, pod_sysctls, prepare

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

    from pyrkt.fetch.ui import FetchUI


class RunOptions(Value, frozen=False):
    """rkt's run-time flags (the ones run-prepared takes too) and pyrkt's additions."""

    net: list[str] = field(default_factory=lambda: ["default"])
    net_given: bool = False  # --net was on the command line (the fly flavor takes only --net=host)
    hostname: str = ""
    interactive: bool = False
    detach: bool = False
    rm: bool = False
    ipc: str = "auto"
    pid: str = ""  # --pid: "host" (the host's PID namespace) or "private"; "": the flavor's own
    stage1_name: str = "default"
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_opt: list[str] = field(default_factory=list)
    dns_domain: str = ""
    hosts_entry: list[str] = field(default_factory=list)
    sysctl: list[str] = field(default_factory=list)  # --sysctl KEY=VALUE; run-prepared's over the prepared pod's
    mds_register: bool = False  # --mds-register: the pod registered with the data dir's metadata service
    mutable: bool = False  # `app sandbox`: no app at start, apps added later (detached)


def parse_net(text: str) -> list[str]:
    """``--net`` value -> list of networks; '' and 'default' mean the default network."""
    if text in ("", "true"):
        return ["default"]
    nets = [n for n in (x.strip() for x in text.split(",")) if n]
    names = [n.split(":", 1)[0] for n in nets]
    if len(set(names)) != len(names):
        raise UsageError(f"--net={text}: a network may be given only once")
    if ("host" in names or "none" in names) and len(names) > 1:
        raise UsageError(f"--net={text}: host and none cannot be combined with other networks")
    return nets or ["default"]


def check_options(config: Config, opts: RunOptions) -> None:
    from pyrkt.stage1 import flavor

    name = flavor.canonical(opts.stage1_name)
    if opts.detach and opts.interactive:
        raise UsageError("--detach and --interactive cannot be used together")
    if opts.detach and opts.rm:
        raise UsageError("--rm works with foreground runs only: remove a detached pod with `pyrkt rm` once it exits")
    if opts.ipc not in ("auto", "private", "parent"):
        raise UsageError(f"invalid --ipc={opts.ipc!r}: want auto, private or parent")
    if opts.pid not in ("", "private", "host"):
        raise UsageError(f"invalid --pid={opts.pid!r}: want private or host")
    if opts.hostname:
        check_hostname(opts.hostname)
    dns_fields(opts)  # bad --dns*/--hosts-entry values fail before any work
    sysctl_fields(opts, name)  # and so do --sysctl values the pod may not set
    if name == "fly":  # and the flags the fly flavor cannot honour
        fly_options(opts)
    if opts.mds_register:
        check_mds(config, opts, name)
    names = [n.split(":", 1)[0] for n in opts.net]
    if name == "default" and names not in (["host"], ["none"]):
        from pyrkt.network import config as netconf

        netconf.select(list(opts.net), config.dirs.names())  # unknown networks fail before any work


def fly_options(opts: RunOptions) -> None:
    """The run-time flags the fly flavor cannot honour, its app sharing the host's network, UTS,
    IPC and PID namespaces: refused in one line, or (``--hostname``, as rkt's fly) named in a
    ``warning:`` line on stderr. ``--net=host`` and no ``--net`` are its own mode."""
    if opts.pid == "private":
        raise UsageError("--pid=private: the fly flavor's apps share the host's PID namespace")
    if opts.ipc == "private":
        raise UsageError("--ipc=private cannot be used with the fly flavor: its app shares the host's IPC namespace")
    if opts.interactive:
        raise UsageError("the fly flavor does not support --interactive")
    if opts.net_given and [n.split(":", 1)[0] for n in opts.net] != ["host"]:
        raise UsageError(f"--net={','.join(opts.net)} cannot be used with the fly flavor: its app shares the host's "
                         "network (only --net=host)")
    if opts.hostname:
        sys.stderr.write(f"warning: --hostname={opts.hostname} is not supported by the fly flavor (its app shares "
                         "the host's hostname): ignored\n")


def check_mds(config: Config, opts: RunOptions, flavor_name: str) -> None:
    """``--mds-register`` needs a network that reaches the host (rkt refuses --net=none) and a
    metadata service now (as rkt's run-prepared checks, before a pod is made or moved)."""
    from pyrkt.stage0 import mds

    if [n.split(":", 1)[0] for n in opts.net] == ["none"]:
        raise UsageError("--mds-register does not work with --net=none: use host, default or another network")
    if flavor_name == "image":
        raise UsageError("--mds-register works with the default and fly flavors, not a stage1 image")
    mds.check_reachable(config)


def dns_fields(opts: RunOptions) -> dict[str, Any]:
    """The ``--dns*`` and ``--hosts-entry`` flags, checked, as runtime-config fields (none when
    no such flag was given, so the common run path never imports the parser)."""
    if not (opts.dns or opts.dns_search or opts.dns_opt or opts.dns_domain or opts.hosts_entry):
        return {}
    from pyrkt.network import dns

    hosts = dns.parse_hosts(opts.hosts_entry)
    return {"dns": dns.parse_dns(opts.dns, opts.dns_search, opts.dns_opt, opts.dns_domain),
            "hosts_from_host": hosts == "host",
            "hosts": () if isinstance(hosts, str) else tuple((ip, host) for ip, host in hosts)}


def sysctl_fields(opts: RunOptions, flavor_name: str) -> dict[str, Any]:
    """The pod's ``--sysctl`` values as a runtime-config field, refused (one line naming the key)
    unless the pod has the namespace that owns each: its own network for net.*, its own IPC
    namespace for the IPC keys."""
    sysctls = pod_sysctls(opts.sysctl, flavor_name)
    if not sysctls:
        return {}
    from pyrkt.model import sysctl

    names = [n.split(":", 1)[0] for n in opts.net]
    sysctl.check_namespaces(sysctls, host_net=names == ["host"], host_ipc=opts.ipc == "parent")
    return {"sysctls": tuple(sysctls.items())}


def check_ports(ports: bool, opts: RunOptions) -> None:
    if ports and [n.split(":", 1)[0] for n in opts.net] in (["host"], ["none"]):
        raise UsageError(f"--port cannot be used with --net={opts.net[0]}")


def run(config: Config, req: PodRequest, opts: RunOptions, out: TextIO, *, ui: FetchUI | None = None) -> int:
    """Prepare and start a pod; ``ui``: how image fetches show progress and ask (default: headless)."""
    check_options(config, opts)
    check_ports(bool(req.ports), opts)
    prime_cgroups(req.stage1_name)
    pod = prepare(config, req, ui=ui)
    try:
        if req.pod_manifest:  # its ports and sysctls were not flags of this command
            adopt_manifest(pod, opts)
        pod.transition(Dir.RUN)
    except BaseException:
        discard(pod)
        raise
    return start(config, pod, opts, out)


def prime_cgroups(stage1_name: str) -> None:
    """A flavor that puts its pod in cgroups starts the kernel's wait for that now, while the
    pod is prepared (``cgroups.prime_join``)."""
    from pyrkt.stage1 import flavor

    if flavor.canonical(stage1_name) == "default":
        from pyrkt.kernel import cgroups

        cgroups.prime_join()


def run_prepared(config: Config, uuid: str, opts: RunOptions, out: TextIO) -> int:
    check_options(config, opts)
    check_writable(config.data_dir)
    pod = Pod.find(config.pods_dir, uuid)
    if pod.where != Dir.PREPARED:
        raise InvalidState(f"pod {quote(pod.uuid)} is not prepared (it is {pod.state.value})")
    if not pod.try_lock():
        raise InvalidState(f"pod {pod.uuid} is being run by another pyrkt process")
    try:  # locked: the pod dir stays where it is until we move it
        adopt_manifest(pod, opts)
        recorded = (fs.read_text(pod.file(abi.FLAVOR)) or opts.stage1_name).strip()
        if recorded == "fly":  # check_options took the flags as the default flavor's
            fly_options(opts)
        prime_cgroups(recorded)
        sysctl_fields(opts, recorded)
        pod.transition(Dir.RUN)
    except FileNotFoundError:
        pod.unlock()
        raise InvalidState(f"pod {pod.uuid} was already run by another pyrkt process") from None
    except BaseException:
        pod.unlock()
        raise
    return start(config, pod, opts, out)


def adopt_manifest(pod: Pod, opts: RunOptions) -> None:
    """What the pod's own manifest says of how it runs: its forwarded ports need a network of
    its own, and its sysctls are set by pod init (before this command's ``--sysctl``)."""
    from pyrkt.stage1.poddir import read_manifest

    manifest = read_manifest(pod.path)
    check_ports(bool(manifest.ports), opts)
    if manifest.sysctls:  # the prepared pod's, then this command's
        opts.sysctl = [f"{k}={v}" for k, v in manifest.sysctls] + opts.sysctl


def runtime_config(config: Config, pod: Pod, opts: RunOptions) -> abi.RuntimeConfig:
    from pyrkt.model import jsonio
    from pyrkt.stage1 import flavor

    recorded = fs.read_text(pod.file(abi.FLAVOR)) or opts.stage1_name
    devices = fs.read_text(pod.file(abi.DEVICES))
    private_users = (fs.read_text(pod.file(abi.PRIVATE_USERS)) or "").strip()
    return abi.RuntimeConfig(
        uuid=pod.uuid,
        flavor=flavor.canonical(recorded.strip()),
        net=tuple(opts.net),
        hostname=opts.hostname,
        interactive=opts.interactive,
        debug=config.debug,
        disable_capabilities=config.is_insecure("capabilities"),
        disable_paths=config.is_insecure("paths"),
        disable_seccomp=config.is_insecure("seccomp"),
        cache_dir=config.cache_dir,
        devices=host_devices(jsonio.loads(devices)) if devices else (),  # the host's numbers now
        ipc=opts.ipc,
        pid=opts.pid,
        config_dirs=tuple(config.dirs.names()),
        **dns_fields(opts),
        **sysctl_fields(opts, flavor.canonical(recorded.strip())),
        private_users=private_users,
        **mds_fields(config, pod, opts),
        mutable=opts.mutable,
        cgroup_parent=(fs.read_text(pod.file(abi.CGROUP_PARENT)) or "").strip(),
    )


def mds_fields(config: Config, pod: Pod, opts: RunOptions) -> dict[str, Any]:
    """``--mds-register``: the pod registered now (its token on disk, the service's port)."""
    if not opts.mds_register:
        return {}
    from pyrkt.stage0 import mds

    token, port = mds.register(config, pod.path, pod.uuid)
    return {"mds_token": token, "mds_port": port}


def forwarded_ports(pod_dir: str) -> list[tuple[int, str, str]]:
    """(host port, protocol, host IP) of every ``--port`` forward a pod dir records."""
    from pyrkt.stage1.poddir import read_manifest

    try:
        manifest = read_manifest(pod_dir)
    except (OSError, ValueError):
        return []
    protocols = {p.name: p.protocol for a in manifest.apps for p in a.app.ports}
    return [(f.host_port, f.protocol if f.pod_port else protocols.get(f.name, "tcp"), f.host_ip)
            for f in manifest.ports]


def check_port_conflicts(config: Config, pod: Pod, nets: list[str]) -> None:
    """Refuse a host port another running pod already forwards: portmap would add a second,
    shadowed DNAT rule without a word."""
    mine = forwarded_ports(pod.path)
    if not mine:
        return
    from pyrkt.network import config as netconf
    from pyrkt.network import setup as netsetup

    network = netsetup.forwardable(netconf.select(nets, config.dirs.names()))
    for other in Pod.walk(config.pods_dir, (Dir.RUN,)):
        if other.uuid == pod.uuid or other.state != State.RUNNING:
            continue
        for port, proto, ip in forwarded_ports(other.path):
            for my_port, my_proto, my_ip in mine:
                if (port, proto) == (my_port, my_proto) and (not ip or not my_ip or ip == my_ip):
                    raise NetworkSetupError(f"network {network!r}: plugin 'portmap': host port {port}/{proto} "
                                            f"is already forwarded to pod {other.uuid}")


def start(config: Config, pod: Pod, opts: RunOptions, out: TextIO) -> int:
    """Hand a locked pod in ``run/`` to its flavor; the lock fd goes to pod init."""
    from pyrkt.stage1 import flavor

    try:
        rc = runtime_config(config, pod, opts)
        os.makedirs(rc.cache_dir, exist_ok=True)
        check_port_conflicts(config, pod, opts.net)
        fs.atomic_write(pod.file(abi.RUNTIME_CONFIG), rc.to_json(), sync=False)
        fl = flavor.get(rc.flavor)
    except BaseException:
        discard(pod)
        raise
    assert pod.lock is not None
    lock_fd = pod.lock.fd
    pod.lock.fd = -1  # ownership passes to the flavor (and then to pod init)
    pod.lock = None
    try:
        code = fl.run(pod.path, rc, lock_fd, detach=opts.detach)
    except PyrktError:
        if pod.try_lock():
            discard(pod)
        raise
    if opts.detach:
        out.write(pod.uuid + "\n")
        out.flush()
        return 0
    if opts.rm:
        remove_exited(pod)
    return code


def remove_exited(pod: Pod) -> None:
    if pod.state != State.EXITED or not pod.try_lock():
        return
    discard(pod)


