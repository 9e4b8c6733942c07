"""A kubelet's PodSandboxConfig and ContainerConfig onto pyrkt's requests: the pod's run
options (``stage0.run.RunOptions``: hostname, DNS, networks, IPC) and ``PodRequest`` fields
(annotations, labels, sysctls), and each container's ``AppRequest`` with its volumes and devices.

Pure: no I/O but reading a Localhost seccomp profile through the ``read_profile`` a caller gives.
What pyrkt cannot honour is refused (``UsageError``: INVALID_ARGUMENT to the kubelet) when
running without it would be less safe or plainly wrong, and otherwise named in ``warnings``.
Labels and annotations are kept as the pod's and the apps' user labels and annotations, and,
as containerd's CRI plugin does, ``io.kubernetes.cri.*`` annotations record what each is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from pyrkt.api.proto import cri_pb2 as pb
from pyrkt.errors import UsageError
from pyrkt.model.abi import PRIVILEGED_ANNOTATION
from pyrkt.model.cgroup import check_parent
from pyrkt.model.isolators import CPU, CPU_SHARES, MEMORY, MIN_MEMORY, OOM_SCORE_ADJ, check_cpu
from pyrkt.model.names import check_app_name, check_hostname
from pyrkt.model.stdio import mode_annotations
from pyrkt.model.values import Value, field
from pyrkt.stage0.prepare import AppRequest, PodRequest
from pyrkt.stage0.run import RunOptions

# containerd's CRI annotations (pkg/cri/annotations), kept on pyrkt's pods and apps
CONTAINER_TYPE = "io.kubernetes.cri.container-type"
SANDBOX_NAME = "io.kubernetes.cri.sandbox-name"
SANDBOX_NAMESPACE = "io.kubernetes.cri.sandbox-namespace"
SANDBOX_UID = "io.kubernetes.cri.sandbox-uid"
SANDBOX_ID = "io.kubernetes.cri.sandbox-id"
SANDBOX_LOG_DIR = "io.kubernetes.cri.sandbox-log-directory"
CONTAINER_NAME = "io.kubernetes.cri.container-name"
IMAGE_NAME = "io.kubernetes.cri.image-name"
MAX_CONTAINER_NAME = 63  # a DNS-1123 label, as Kubernetes container names are
DEFAULT_CPU_PERIOD = 100_000  # µs: the CFS period pyrkt's CPU limits are written for
PROTOCOLS = {pb.TCP: "tcp", pb.UDP: "udp", pb.SCTP: "sctp"}
PROPAGATION = {pb.PROPAGATION_HOST_TO_CONTAINER: "rslave", pb.PROPAGATION_BIDIRECTIONAL: "rshared"}
PROPAGATION_OF = {v: k for k, v in PROPAGATION.items()}
SELINUX_FIELDS = ("user", "role", "type", "level")


class HostPort(Value):
    """One CRI port mapping, as the CNI portmap plugin's runtimeConfig takes it."""

    protocol: str
    container_port: int
    host_port: int
    host_ip: str = ""


class SandboxMapping(Value):
    """A PodSandboxConfig as pyrkt's pod: ``run`` (hostname, DNS, --net, --ipc, --pid), ``pod`` (the
    pod's user annotations and labels, --sysctl; its apps come with CreateContainer)."""

    run: RunOptions
    pod: PodRequest
    ports: tuple[HostPort, ...] = ()
    cgroup_parent: str = ""
    log_directory: str = ""
    privileged: bool = False  # whether its containers may be privileged
    warnings: tuple[str, ...] = ()


class ContainerMapping(Value):
    """A ContainerConfig as one app: ``app`` (added to the sandbox), the host ``volumes`` its
    mounts use (``--volume`` values), the ``devices`` (``--device`` values), its log file."""

    app: AppRequest
    volumes: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    log_path: str = ""
    warnings: tuple[str, ...] = field(default=())


# -- the sandbox ------------------------------------------------------------------------------

def sandbox_request(config: pb.PodSandboxConfig, *, network: str = "default") -> SandboxMapping:
    """``config`` as pyrkt's pod; ``network``: the CNI network pod-network sandboxes join."""
    warnings: list[str] = []
    meta = config.metadata
    if not meta.name:
        raise UsageError("pod sandbox: no metadata name given (PodSandboxConfig.metadata.name is empty)")
    if (config.log_directory and not config.log_directory.startswith("/")) or "\0" in config.log_directory:
        raise UsageError(f"pod sandbox {meta.name}: log directory {config.log_directory!r} is not an absolute path")
    run = RunOptions(net=[network])
    if config.hostname:
        run.hostname = check_hostname(config.hostname)
    dns = config.dns_config
    run.dns, run.dns_search, run.dns_opt = list(dns.servers), list(dns.searches), list(dns.options)

    linux = config.linux
    ns = linux.security_context.namespace_options
    if ns.network == pb.NODE:
        run.net = ["host"]
    elif ns.network != pb.POD:
        raise UsageError(f"network namespace mode {pb.NamespaceMode.Name(ns.network)} is not a sandbox's: "
                         "want POD or NODE")
    run.ipc = {pb.POD: "private", pb.NODE: "parent"}.get(ns.ipc, "")
    if not run.ipc:
        raise UsageError(f"IPC namespace mode {pb.NamespaceMode.Name(ns.ipc)} is not a sandbox's: want POD or NODE")
    if ns.pid == pb.NODE:  # hostPID: the apps in the host's PID namespace (--pid=host)
        run.pid = "host"
    if ns.pid == pb.TARGET:
        raise UsageError("PID namespace mode TARGET (a container's PID namespace) is not supported by pyrkt")
    if ns.pid == pb.CONTAINER:
        warnings.append("PID namespace per container: pyrkt's apps share the pod's PID namespace "
                        "(as shareProcessNamespace: true)")
    if ns.HasField("userns_options") and ns.userns_options.mode != pb.NODE:  # absent: the host's users
        raise UsageError(f"user namespace mode {pb.NamespaceMode.Name(ns.userns_options.mode)} (hostUsers: false) "
                         "is not supported yet: pyrkt's pods use the host's user namespace here")

    sysctls = [f"{k}={v}" for k, v in sorted(linux.sysctls.items())]
    if sysctls:
        from pyrkt.model import sysctl

        sysctl.parse_all(sysctls)  # a bad key or value fails here, before any work
    parent = check_parent(linux.cgroup_parent, "cgroup parent")  # the pod's cgroup goes below it
    if linux.HasField("overhead") or linux.HasField("resources"):
        warnings.append("pod-level resources and overhead are not applied: limits are set per container")
    if _selinux(linux.security_context.selinux_options):
        warnings.append("SELinux options are not applied: pyrkt does not label pods")
    if config.HasField("windows"):
        warnings.append("windows settings ignored: this is a Linux node")

    ports = []
    for pm in config.port_mappings:
        if pm.host_port <= 0:
            continue  # no host port asked for: nothing to forward, as containerd
        if not 0 < pm.container_port < 65536 or pm.host_port >= 65536:
            raise UsageError(f"invalid port mapping {pm.host_port}->{pm.container_port}: ports are 1-65535")
        ports.append(HostPort(PROTOCOLS.get(pm.protocol, "tcp"), pm.container_port, pm.host_port, pm.host_ip))
    if ports and run.net == ["host"]:
        warnings.append("port mappings of a host-network sandbox are not forwarded: its ports are the host's")
        ports = []

    annotations = dict(config.annotations)
    annotations.update({CONTAINER_TYPE: "sandbox", SANDBOX_NAME: meta.name, SANDBOX_NAMESPACE: meta.namespace,
                        SANDBOX_UID: meta.uid, SANDBOX_LOG_DIR: config.log_directory})
    run.sysctl = list(sysctls)  # run's --sysctl: what the starting pod applies
    pod = PodRequest(apps=[], sysctl=sysctls, user_annotations=sorted(annotations.items()),
                     user_labels=sorted(config.labels.items()), cgroup_parent=parent)
    return SandboxMapping(run=run, pod=pod, ports=tuple(ports), cgroup_parent=parent,
                          log_directory=config.log_directory, privileged=linux.security_context.privileged,
                          warnings=tuple(warnings))


def _selinux(opts: pb.SELinuxOption) -> bool:
    return any(getattr(opts, f) for f in SELINUX_FIELDS)


# -- containers -------------------------------------------------------------------------------

def stdio_modes(config: pb.ContainerConfig) -> list[tuple[str, str]]:
    """The app's stdio modes: a terminal for ``tty``, streams for ``stdin`` (both attachable, and
    logged as ever), else the default (logged, no stdin: Attach refuses it)."""
    if config.tty:
        return mode_annotations("tty" if config.stdin else "null", "tty", "tty")
    if config.stdin:
        return mode_annotations("stream", "stream", "stream")
    return []


def container_request(config: pb.ContainerConfig, sandbox: pb.PodSandboxConfig, *, sandbox_id: str = "",
                      entrypoint: Sequence[str] | None = None,
                      read_profile: Callable[[str], bytes] | None = None) -> ContainerMapping:
    """``config`` as one app of ``sandbox``. ``entrypoint``: the image's OCI Entrypoint, which
    ``args`` without a ``command`` follow (as Docker's Cmd is replaced); ``read_profile`` reads a
    Localhost seccomp profile (an OCI profile, JSON)."""
    warnings: list[str] = []
    name = check_app_name(config.metadata.name)
    if len(name) > MAX_CONTAINER_NAME:
        raise UsageError(f"container {name[:MAX_CONTAINER_NAME]}…: a container name is {MAX_CONTAINER_NAME} "
                         "characters at most (a DNS label, as Kubernetes names containers)")
    if not config.image.image:
        raise UsageError(f"container {name}: no image given")
    app = AppRequest(image=config.image.image, name=name)

    command, args = list(config.command), list(config.args)
    texts = [("command", w) for w in command + args] + [("environment variable", kv.key) for kv in config.envs]
    texts += [("working directory", config.working_dir), ("log path", config.log_path),
              ("user", config.linux.security_context.run_as_username)]
    texts += [("device", p) for d in config.devices for p in (d.host_path, d.container_path)]
    for what, text in texts:  # no argv, environment or path can carry one
        if "\0" in text:
            raise UsageError(f"container {name}: {what} {text!r} has a NUL character")
    if command:
        app.exec, app.args = command[0], command[1:] + args
    elif args:
        if entrypoint is None:
            raise UsageError(f"container {name}: args without a command need the image's entrypoint")
        words = list(entrypoint) + args
        app.exec, app.args = words[0], words[1:]
    if config.working_dir and not config.working_dir.startswith("/"):
        raise UsageError(f"container {name}: working directory {config.working_dir!r} is not absolute")
    app.working_dir = config.working_dir
    for kv in config.envs:
        try:
            value = kv.value.decode()
        except UnicodeDecodeError:
            raise UsageError(f"container {name}: environment variable {kv.key!r} is not UTF-8") from None
        if "\0" in value:
            raise UsageError(f"container {name}: environment variable {kv.key!r} has a NUL character")
        if not kv.key or "=" in kv.key:
            raise UsageError(f"container {name}: invalid environment variable name {kv.key!r}")
        app.environment.append(f"{kv.key}={value}")

    volumes, mounts = _mounts(name, config.mounts, warnings)
    app.mounts = mounts
    devices = tuple(_device(name, d) for d in config.devices)
    if config.CDI_devices:
        raise UsageError(f"container {name}: CDI devices are not supported by pyrkt")

    meta = sandbox.metadata
    annotations = dict(config.annotations)
    annotations.update({CONTAINER_TYPE: "container", CONTAINER_NAME: name, SANDBOX_ID: sandbox_id,
                        SANDBOX_NAME: meta.name, SANDBOX_NAMESPACE: meta.namespace, SANDBOX_UID: meta.uid,
                        IMAGE_NAME: config.image.user_specified_image or config.image.image})
    app.user_annotations = sorted(annotations.items())
    app.user_labels = sorted(config.labels.items())

    app.isolators = resources(name, config.linux.resources, warnings)
    _security(app, config.linux.security_context, sandbox, warnings, read_profile)
    app.annotations = stdio_modes(config) + app.annotations  # after a privileged one's mark
    if config.stdin_once:
        warnings.append(f"container {name}: stdin_once is not honoured: the app's stdin stays open after an "
                        "attach ends")
    if config.stop_signal:
        warnings.append(f"container {name}: stop signal {pb.Signal.Name(config.stop_signal)} is not used: "
                        "apps are stopped with SIGTERM")
    log_path = container_log_path(name, sandbox.log_directory, config.log_path)
    return ContainerMapping(app=app, volumes=tuple(volumes), devices=devices, log_path=log_path,
                            warnings=tuple(warnings))


def _mounts(name: str, mounts: Sequence[pb.Mount], warnings: list[str]) -> tuple[list[str], list[str]]:
    """Each CRI mount as a host volume of the pod (``NAME-mN``) and the app's mount of it."""
    volumes, out = [], []
    for i, m in enumerate(mounts):
        where = f"container {name}: mount {m.container_path or '?'}"
        if not m.container_path.startswith("/"):
            raise UsageError(f"{where}: the container path must be absolute")
        if m.HasField("image") and m.image.image:
            raise UsageError(f"{where}: image volumes are not supported by pyrkt")
        if not m.host_path.startswith("/"):
            raise UsageError(f"{where}: the host path {m.host_path!r} must be absolute")
        if m.uidMappings or m.gidMappings:
            raise UsageError(f"{where}: id-mapped mounts are not supported by pyrkt")
        if m.mount_options:
            raise UsageError(f"{where}: mount options ({', '.join(m.mount_options)}) are not supported by pyrkt")
        if m.recursive_read_only:
            raise UsageError(f"{where}: recursive read-only mounts are not supported by pyrkt")
        if m.selinux_relabel:
            warnings.append(f"{where}: SELinux relabelling is not done: pyrkt does not label pods")
        for what, path in (("container path", m.container_path), ("host path", m.host_path)):
            if "," in path or "\0" in path:
                raise UsageError(f"{where}: the {what} {path!r} has a comma or NUL character, which pyrkt's "
                                 "volumes cannot carry")
        volume = f"{name}-m{i}"
        # as containerd: the source's mount must be shared (or slave), checked when the app is added
        shared = PROPAGATION.get(m.propagation, "")
        volumes.append(f"{volume},kind=host,source={m.host_path},readOnly={str(m.readonly).lower()}"
                       + (f",propagation={shared}" if shared else ""))
        out.append(f"volume={volume},target={m.container_path}")
    return volumes, out


def _device(name: str, d: pb.Device) -> str:
    """The device as ``--device=HOSTPATH[:CONTAINERPATH]:PERMS`` (podman's syntax, as `app add`
    takes it)."""
    perms = d.permissions or "rwm"
    if not perms.isalpha() or any(c not in "rwm" for c in perms):
        raise UsageError(f"container {name}: device {d.host_path}: permissions {perms!r} are not r, w and m")
    if ":" in d.container_path:  # it would read as a host path's part
        raise UsageError(f"container {name}: device {d.host_path}: container path {d.container_path!r} has a colon")
    at = f":{d.container_path}" if d.container_path and d.container_path != d.host_path else ""
    return f"{d.host_path}{at}:{perms}"


def container_log_path(name: str, log_directory: str, log_path: str) -> str:
    """The kubelet's ``log_path``, relative to the sandbox's ``log_directory``, as one path; a
    path that is absolute or climbs out of that directory is refused (the server makes a link
    there, replacing what is at it)."""
    if not log_path:
        return ""
    import posixpath

    norm = posixpath.normpath(log_path)
    if posixpath.isabs(log_path) or norm == "." or norm.split("/", 1)[0] == "..":
        raise UsageError(f"container {name}: log path {log_path!r} is not a file path inside the sandbox's "
                         "log directory")
    return posixpath.join(log_directory, norm)


def resources(name: str, r: pb.LinuxContainerResources, warnings: list[str]) -> list[tuple[str, object]]:
    """CPU shares, the CFS quota (as a CPU limit in millicores), the memory limit and the OOM
    score as pyrkt's resource isolators. A negative value (but a quota of -1, no limit) is refused."""
    for what, value in (("CPU shares", r.cpu_shares), ("CPU period", r.cpu_period),
                        ("memory limit", r.memory_limit_in_bytes)):
        if value < 0:
            raise UsageError(f"container {name}: {what} {value} is negative")
    for what, value in (("CPU quota", r.cpu_quota), ("swap limit", r.memory_swap_limit_in_bytes)):
        if value < -1:
            raise UsageError(f"container {name}: {what} {value} is negative (-1 is no limit)")
    out: list[tuple[str, object]] = []
    if r.cpu_shares:
        out.append((CPU_SHARES, max(2, min(262144, r.cpu_shares))))
    if r.cpu_quota > 0:
        period = r.cpu_period or DEFAULT_CPU_PERIOD
        millis = -(-r.cpu_quota * 1000 // period)
        try:
            check_cpu(millis)
        except ValueError as e:
            raise UsageError(f"container {name}: CPU quota {r.cpu_quota}/{period}: {e}") from None
        if period != DEFAULT_CPU_PERIOD:
            warnings.append(f"container {name}: CPU period {period}µs: pyrkt's limit of {millis}m uses the "
                            f"{DEFAULT_CPU_PERIOD}µs period")
        out.append((CPU, {"request": f"{millis}m", "limit": f"{millis}m"}))
    if r.memory_limit_in_bytes > 0:
        if r.memory_limit_in_bytes < MIN_MEMORY:
            raise UsageError(f"container {name}: memory limit of {r.memory_limit_in_bytes} bytes too low")
        out.append((MEMORY, {"request": str(r.memory_limit_in_bytes), "limit": str(r.memory_limit_in_bytes)}))
    if r.oom_score_adj:
        out.append((OOM_SCORE_ADJ, max(-1000, min(1000, r.oom_score_adj))))
    if r.memory_swap_limit_in_bytes > 0 and r.memory_swap_limit_in_bytes != r.memory_limit_in_bytes:
        warnings.append(f"container {name}: swap limit {r.memory_swap_limit_in_bytes} is not applied")
    for what, given in (("cpuset CPUs", r.cpuset_cpus), ("cpuset memory nodes", r.cpuset_mems)):
        if given:
            warnings.append(f"container {name}: {what} {given} are not applied")
    if any(h.limit for h in r.hugepage_limits):
        warnings.append(f"container {name}: hugepage limits are not applied")
    if r.unified:
        warnings.append(f"container {name}: cgroup v2 settings ({', '.join(sorted(r.unified))}) are not applied")
    return out


def _security(app: AppRequest, sc: pb.LinuxContainerSecurityContext, sandbox: pb.PodSandboxConfig,
              warnings: list[str], read_profile: Callable[[str], bytes] | None) -> None:
    name = app.name
    _namespaces(name, sc.namespace_options, sandbox.linux.security_context.namespace_options)
    if sc.privileged:  # as containerd's: this app only, in a sandbox that allows it
        if not sandbox.linux.security_context.privileged:
            raise UsageError(f"container {name}: a privileged container needs a privileged sandbox "
                             "(its security context's privileged is false)")
        app.annotations.append((PRIVILEGED_ANNOTATION, "true"))
    for kind, held in (("user", sc.run_as_user), ("group", sc.run_as_group)):
        if held.value < 0:
            raise UsageError(f"container {name}: run as {kind} {held.value}: ids are not negative")
    if sc.HasField("run_as_user"):
        app.user = str(sc.run_as_user.value)
    elif sc.run_as_username:
        app.user = sc.run_as_username
    if sc.HasField("run_as_group"):
        app.group = str(sc.run_as_group.value)
    if sc.supplemental_groups:
        app.supplementary_gids = ",".join(str(g) for g in sc.supplemental_groups)
    if sc.supplemental_groups_policy == pb.Strict:
        warnings.append(f"container {name}: supplemental groups policy Strict is not applied: "
                        "the image's groups are merged")
    app.readonly_rootfs = sc.readonly_rootfs
    if sc.no_new_privs:
        from pyrkt.stage1.isolators import NO_NEW_PRIVS

        app.isolators.append((NO_NEW_PRIVS, True))
    if sc.privileged:  # every capability, no filter: what is asked of them is not applied, as containerd's
        if sc.capabilities.drop_capabilities:
            warnings.append(f"container {name}: capabilities dropped from a privileged container are not "
                            "dropped: it has every capability")
    else:
        app.caps_retain, app.caps_remove = capabilities(name, sc.capabilities)
        app.seccomp = seccomp(name, sc, warnings, read_profile)
    if sc.HasField("apparmor") and sc.apparmor.profile_type != pb.SecurityProfile.Unconfined or (
            sc.apparmor_profile not in ("", "unconfined")):
        warnings.append(f"container {name}: the AppArmor profile is not applied: pyrkt does not load AppArmor profiles")
    if _selinux(sc.selinux_options):
        warnings.append(f"container {name}: SELinux options are not applied: pyrkt does not label pods")
    masked, readonly = not_protected(sc.masked_paths, sc.readonly_paths)
    if (masked or readonly) and not sc.privileged:
        what = [f"masked {', '.join(masked)}"] if masked else []
        what += [f"read-only {', '.join(readonly)}"] if readonly else []
        warnings.append(f"container {name}: pyrkt applies its own /proc and /sys protection; not {'; '.join(what)}")


def _namespaces(name: str, mine: pb.NamespaceOption, pods: pb.NamespaceOption) -> None:
    """A container's namespace options (the kubelet gives its sandbox's): its apps are in the
    pod's namespaces, so a host namespace the sandbox does not share, or another container's PID
    namespace (TARGET, a debug container's), cannot be had."""
    for what, want, have in (("network", mine.network, pods.network), ("IPC", mine.ipc, pods.ipc),
                             ("PID", mine.pid, pods.pid)):
        if want == pb.NODE and have != pb.NODE:
            raise UsageError(f"container {name}: the host's {what} namespace (NODE) in a sandbox that has its own: "
                             "a container shares its sandbox's")
    if mine.pid == pb.TARGET:
        raise UsageError(f"container {name}: PID namespace mode TARGET (another container's) is not supported "
                         "by pyrkt")


def not_protected(masked: Sequence[str], readonly: Sequence[str]) -> tuple[list[str], list[str]]:
    """The kubelet's masked and read-only paths that pyrkt's stage1 leaves as they are."""
    from pyrkt.stage1.plan import INACCESSIBLE, READ_ONLY

    return ([p for p in masked if p not in INACCESSIBLE and p not in READ_ONLY],
            [p for p in readonly if p not in READ_ONLY and p not in INACCESSIBLE])


def capabilities(name: str, caps: pb.Capability) -> tuple[str, str]:
    """Kubernetes' add/drop (against the runtime's default set, which is appc's in pyrkt) as
    (--caps-retain, --caps-remove) values: retain the whole set when anything is added."""
    from pyrkt.kernel import caps as kcaps

    def names(items: Sequence[str], what: str) -> set[str] | None:
        out = set()
        for item in items:
            up = item.upper()
            if up == "ALL":
                return None
            full = up if up.startswith("CAP_") else "CAP_" + up
            try:
                kcaps.parse(full)
            except UsageError:
                raise UsageError(f"container {name}: unknown capability {item!r} to {what}") from None
            out.add(full)
        return out

    if caps.add_ambient_capabilities:
        raise UsageError(f"container {name}: ambient capabilities are not supported by pyrkt")
    default = {kcaps.name(c) for c in kcaps.DEFAULT_CAPS}
    add, drop = names(caps.add_capabilities, "add"), names(caps.drop_capabilities, "drop")
    every = {kcaps.name(c) for c in kcaps.ALL_CAPS}
    have = set(default)
    have = set() if drop is None else have - drop
    have |= every if add is None else add
    if have == default:
        return "", ""
    if have - default:
        return ",".join(sorted(have)), ""
    return "", ",".join(sorted(default - have))


UNCONFINED = "mode=retain,@appc.io/all"  # every call kept: no filter at all (stage1.isolators)


def seccomp(name: str, sc: pb.LinuxContainerSecurityContext, warnings: list[str],
            read_profile: Callable[[str], bytes] | None) -> str:
    """The --seccomp value: RuntimeDefault is pyrkt's default filter (""); Unconfined is no
    filter for this app (appc's retain-set of ``@appc.io/all``, as containerd applies none);
    Localhost is the OCI profile at that path, as retain or remove sets."""
    if sc.HasField("seccomp"):
        kind, ref = sc.seccomp.profile_type, sc.seccomp.localhost_ref
    else:  # the deprecated path field: "" or unconfined, runtime/default, localhost/<path>
        path = sc.seccomp_profile_path
        if path in ("runtime/default", "docker/default"):
            kind, ref = pb.SecurityProfile.RuntimeDefault, ""
        elif path.startswith("localhost/"):
            kind, ref = pb.SecurityProfile.Localhost, path[len("localhost/"):]
        else:
            kind, ref = pb.SecurityProfile.Unconfined, ""
    if kind == pb.SecurityProfile.RuntimeDefault:
        return ""
    if kind == pb.SecurityProfile.Unconfined:
        return UNCONFINED
    if not ref.startswith("/"):
        raise UsageError(f"container {name}: the Localhost seccomp profile {ref!r} is not an absolute path")
    if read_profile is None:
        raise UsageError(f"container {name}: no way to read the seccomp profile {ref}")
    try:
        profile = json.loads(read_profile(ref))
    except ValueError:
        raise UsageError(f"container {name}: seccomp profile {ref} is not JSON") from None
    return seccomp_from_profile(profile, f"container {name}: seccomp profile {ref}")


def seccomp_from_profile(profile: object, where: str) -> str:
    """An OCI seccomp profile as pyrkt's ``--seccomp``: a default of ERRNO with ALLOWed syscalls
    is ``mode=retain``; a default of ALLOW with ERRNO'd syscalls is ``mode=remove``. Conditions on
    arguments, other actions, or a mix, cannot be said in appc's sets and are refused."""
    if not isinstance(profile, dict):
        raise UsageError(f"{where}: not a JSON object")
    default = profile.get("defaultAction")
    modes = {"SCMP_ACT_ERRNO": ("retain", "SCMP_ACT_ALLOW"), "SCMP_ACT_ALLOW": ("remove", "SCMP_ACT_ERRNO")}
    if default not in modes:
        raise UsageError(f"{where}: default action {default!r} cannot be said in pyrkt's filter "
                         "(want SCMP_ACT_ERRNO or SCMP_ACT_ALLOW)")
    mode, action = modes[default]
    names: list[str] = []
    for rule in profile.get("syscalls") or []:
        if not isinstance(rule, dict) or rule.get("action") != action:
            raise UsageError(f"{where}: a rule with action {rule.get('action') if isinstance(rule, dict) else rule!r} "
                             f"cannot be said with default {default} (want {action} rules only)")
        if rule.get("args") or rule.get("includes") or rule.get("excludes"):
            raise UsageError(f"{where}: conditional rules (args, includes, excludes) are not supported by pyrkt")
        rule_names = rule.get("names") or ([rule["name"]] if isinstance(rule.get("name"), str) else [])
        names.extend(n for n in rule_names if isinstance(n, str) and n not in names)
    if not names:
        raise UsageError(f"{where}: it names no syscalls")
    return f"mode={mode}," + ",".join(names)
