"""The ``default`` flavor: pod init as PID 1 of new pid, mount, uts and ipc (and, for
``--net=none``, network) namespaces; each app in its own cgroups, cgroup and mount namespaces
and overlay root.

Host side, in the calling pyrkt process::

    build_plan   pod dir -> PodPlan (stage1/plan.py); pod init runs from it as a marshal'able dict
    run          cgroup, fork PID 1 (unshare NEWPID, fork, setns back; --pid=host: no NEWPID), exec pod init;
                 wait for "ready"; detach: return; foreground: forward signals and wait
    enter        setns into an app's namespaces (mnt last), fork, exec in its root
    stop         TERM pod init (it TERMs the apps, then KILLs after the timeout); --force KILL
    gc           unmount what is left under the pod dir, remove its cgroups; idempotent

Pod init itself is ``podinit.py``; app set-up is ``app.py``.
"""

from __future__ import annotations

try:
    import _signal  # type: ignore[import-not-found]  # signal without its enum wrappers (~1 ms)
except ImportError:  # an interpreter without it (tests/unit/test_private_modules.py)
    import signal as _signal  # type: ignore[no-redef]
import os
import sys
import time

from pyrkt.errors import InvalidState, PyrktError, UsageError, quote
from pyrkt.kernel import cgroups, fs, lock, namespaces, process
from pyrkt.kernel.api import LinuxKernel
from pyrkt.model import abi
from pyrkt.model.plan import EtcFiles, PodPlan, to_plain
from pyrkt.model.volumes import EMPTY_VOLUMES_DIR
from pyrkt.stage1 import plan as stage1_plan
from pyrkt.stage1.poddir import (
    ETC_DIR,
    enter_env,
    read_all,
    read_bytes,
    read_layers,
    read_manifest,
    read_pid,
    wait_exit,
)

TYPE_CHECKING = False  # typing stays off the run path; mypy reads the annotations
if TYPE_CHECKING:
    from typing import Any

    from pyrkt.model.devices import DeviceRule, HostDevice
    from pyrkt.model.plan import AppPlan
    from pyrkt.model.pod import PodManifest, RuntimeApp
    from pyrkt.stage1.isolators import SeccompFilter

STATE_FILE = "stage1/podinit.state"
ETC_PLAN = "stage1/etc-files"  # mutable pods: the pod's /etc files (marshal), for the apps added later
APP_PLAN = "plan"  # in appsinfo/<app>: an added app's plan (marshal), written by `app add`
# what `enter` joins of the app's, mnt after the others (it changes root and cwd) and the user
# namespace (--private-users; skipped when it is the host's) last: after it the host's caps are gone
ENTER_NAMESPACES = ("cgroup", "ipc", "uts", "net", "pid", "mnt", "user")
PIDS_DIR = "stage1/rootfs/rkt/pids"
HOST_RESOLV = "/etc/resolv.conf"
HOST_HOSTS = "/etc/hosts"
POD_INIT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "podinit.py")


def lean_script(path: str = "") -> str:
    """What pod init re-executes (or, ``path``, an iomux helper runs): the script's compiled
    file when it is that of the source as it is (running it skips the parse, whose peak would
    stay in the lean interpreter's heap: ~1 MiB of each idle pod's memory), else the source."""
    import _frozen_importlib_external as bootstrap  # type: ignore[import-not-found]  # loaded at start

    path = path or POD_INIT_PATH

    try:
        pyc = bootstrap.cache_from_source(path)
        st = os.stat(path)
        with open(pyc, "rb") as f:
            head = f.read(16)
    except (OSError, NotImplementedError):
        return path
    fresh = (bootstrap.MAGIC_NUMBER + bytes(4) + (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
             + (st.st_size & 0xFFFFFFFF).to_bytes(4, "little"))
    return str(pyc) if head == fresh else path


def hostname_for(config: abi.RuntimeConfig) -> str:
    return config.hostname or f"rkt-{config.uuid}"


def network_mode(config: abi.RuntimeConfig) -> str:
    return stage1_plan.network_mode(config.net)


def port_mappings(pod_dir: str) -> list[dict[str, Any]]:
    """The pod's ``--port`` forwards as CNI portMappings (for the portmap plugin)."""
    manifest = read_manifest(pod_dir)
    out = []
    for fwd in manifest.ports:
        if fwd.pod_port:  # a sandbox's: the pod's port itself
            out.append({"hostPort": fwd.host_port, "containerPort": fwd.pod_port, "protocol": fwd.protocol,
                        **({"hostIP": fwd.host_ip} if fwd.host_ip else {})})
            continue
        for ra in manifest.apps:
            for p in ra.app.ports:
                if p.name == fwd.name:
                    m: dict[str, Any] = {"hostPort": fwd.host_port, "containerPort": p.port, "protocol": p.protocol}
                    if fwd.host_ip:
                        m["hostIP"] = fwd.host_ip
                    out.append(m)
    return out


def pod_seccomp(pod_dir: str, config: abi.RuntimeConfig) -> bytes:
    """The pod's seccomp filter as BPF (compiled once, then cached), b"" with
    ``--insecure-options=seccomp``."""
    if config.disable_seccomp:
        return b""
    from pyrkt.kernel import seccomp

    return seccomp.default_bpf(config.cache_dir or os.path.join(pod_dir, "stage1"))


def app_seccomp(pod_dir: str, config: abi.RuntimeConfig, isolators: tuple[tuple[str, Any], ...],
                compiled: dict[Any, bytes]) -> bytes:
    """An app's seccomp filter as BPF: the pod's default one, or the one its seccomp isolator
    asks for, made once per distinct filter (``compiled``; on disk, cached as the default one),
    b"" with ``--insecure-options=seccomp``."""
    if config.disable_seccomp:
        return b""
    wanted = None
    if isolators:
        from pyrkt.stage1 import isolators as privileges

        wanted = privileges.seccomp_filter(isolators)
    if wanted not in compiled:
        compiled[wanted] = pod_seccomp(pod_dir, config) if wanted is None else isolator_bpf(pod_dir, config, wanted,
                                                                                             isolators)
    return compiled[wanted]


def isolator_bpf(pod_dir: str, config: abi.RuntimeConfig, wanted: SeccompFilter,
                 isolators: tuple[tuple[str, Any], ...]) -> bytes:
    """The BPF of a seccomp isolator's filter (see ``app_seccomp``); its syscall names checked."""
    if wanted.mode == "none":
        return b""
    from pyrkt.kernel import seccomp, seccomp_compile, seccomp_groups
    from pyrkt.stage1 import isolators as privileges

    privileges.check_syscalls(isolators, seccomp.syscall_known)
    if wanted.mode == "default":
        profile = seccomp_compile.DEFAULT_PROFILE
        if wanted.errno is not None:
            profile = seccomp_compile.Profile(wanted.errno, profile.allow, profile.rules)
    else:
        profile = seccomp_compile.isolator_profile(wanted.mode, wanted.errno, wanted.names,
                                                   seccomp_groups.SYSTEMD_ALWAYS_ALLOWED,
                                                   seccomp_groups.ENOSYS_UNLESS_RETAINED)
    return seccomp.cached_bpf(config.cache_dir or os.path.join(pod_dir, "stage1"), profile)


def build_plan(pod_dir: str, config: abi.RuntimeConfig, *, tee: bool, console: str = "/dev/null") -> PodPlan:
    """The pod's plan from its dir (writing each app's env file on the way)."""
    manifest = read_manifest(pod_dir)
    if not manifest.apps and not config.mutable:
        raise PyrktError("pod must contain at least one application")
    if config.interactive and len(manifest.apps) > 1:
        raise UsageError("--interactive works with exactly one app")
    compiled: dict[Any, bytes] = {}
    etc = etc_files(pod_dir, config)
    idmapped = pod_files_idmapped(pod_dir, config)
    apps = [plan_app(pod_dir, config, manifest, ra, etc, console=console, idmapped=idmapped, compiled=compiled)
            for ra in manifest.apps]
    return stage1_plan.pod_plan(config, tuple(apps), etc, console=console, tee=tee,
                                pod=pod_dir,  # until pod init enters its own root (initroot)
                                python=sys.executable, podinit=lean_script(), pids_dir=PIDS_DIR,
                                state_file=STATE_FILE, volume_devices=volume_devices(apps),
                                pod_isolators=manifest.isolators)


def plan_app(pod_dir: str, config: abi.RuntimeConfig, manifest: PodManifest, ra: RuntimeApp, etc: EtcFiles, *,
             console: str, idmapped: bool, compiled: dict[Any, bytes],
             devices: tuple[HostDevice, ...] = ()) -> AppPlan:
    """One app's plan (a `run` pod's or one added to a mutable pod, with its own ``devices``; a
    privileged one with the host's, as containerd's), its env file written."""
    name = ra.name
    privileged = stage1_plan.privileged(ra)
    if privileged:
        devices += host_device_nodes()
    app = stage1_plan.app_plan(
        ra, config, lowers=read_layers(pod_dir, name),
        upper=os.path.join(pod_dir, abi.OVERLAY, name, "upper"),
        work=os.path.join(pod_dir, abi.OVERLAY, name, "work"),
        rootfs=os.path.join(pod_dir, abi.app_rootfs(name)),
        log=abi.app_log(name), etc=etc,
        seccomp=b"" if privileged else app_seccomp(pod_dir, config, ra.app.isolators, compiled),
        console=console,  # pod init's paths: relative to pod
        volumes=stage1_plan.volume_mounts(ra, manifest.volumes, os.path.join(pod_dir, EMPTY_VOLUMES_DIR)),
        pod_dir=pod_dir, idmapped=idmapped, devices=devices, cgroups=cgroup_view())
    fs.atomic_write(os.path.join(pod_dir, abi.ENV_DIR, name), "\0".join(app.env) + "\0", sync=False)
    return app


_CGROUP_VIEW: tuple[stage1_plan.CgroupFs, ...] | None = None


def cgroup_view() -> tuple[stage1_plan.CgroupFs, ...]:
    """The host's cgroup hierarchies an app sees its own cgroups in (read once per process)."""
    global _CGROUP_VIEW
    if _CGROUP_VIEW is None:
        _CGROUP_VIEW = tuple((h.mount_point, h.version, h.controllers) for h in cgroups.hierarchies())
    return _CGROUP_VIEW


# What a privileged app does not get of the host's /dev: what every app has of its own (its
# terminals, shm, mqueue; /dev/console bound, /dev/ptmx a link to its own devpts') and, as
# containerd leaves them out, what other tools keep there.
HOST_DEV_SKIPPED = ("pts", "shm", "mqueue", "fd", ".lxc", ".lxd-mounts", ".udev", "console", "ptmx")


def host_device_nodes(dev: str = "/dev") -> tuple[HostDevice, ...]:
    """Every device node of the host's /dev (links not followed) at its own path, with its
    mode and owner, for a privileged app (``HOST_DEV_SKIPPED`` left out)."""
    import stat

    from pyrkt.model.devices import HostDevice

    out = []
    for top, dirs, files in os.walk(dev):
        if top == dev:
            dirs[:] = [d for d in dirs if d not in HOST_DEV_SKIPPED]
            files = [f for f in files if f not in HOST_DEV_SKIPPED]
        for name in sorted(files):
            path = os.path.join(top, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue  # gone meanwhile
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                out.append(HostDevice(path, "c" if stat.S_ISCHR(st.st_mode) else "b", os.major(st.st_rdev),
                                      os.minor(st.st_rdev), mode=stat.S_IMODE(st.st_mode), uid=st.st_uid,
                                      gid=st.st_gid))
    return tuple(out)


def volume_devices(apps: list[AppPlan]) -> tuple[DeviceRule, ...]:
    """Allow rules for the apps' volumes whose source is a device node, read-only ones "r",
    others "rw", as rkt's DeviceAllow= for device volumes (rkt's block-devices doc)."""
    import stat

    from pyrkt.model.devices import DeviceRule

    out = []
    for app in apps:
        for m in app.volumes:
            try:
                st = os.stat(m.source)
            except OSError:
                continue  # the app's start says so
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                out.append(DeviceRule("c" if stat.S_ISCHR(st.st_mode) else "b", os.major(st.st_rdev),
                                      os.minor(st.st_rdev), "r" if m.flags & stage1_plan.MS_RDONLY else "rw"))
    return tuple(out)


def pod_files_idmapped(pod_dir: str, config: abi.RuntimeConfig) -> bool:
    """With --private-users, whether the kernel can idmap the pod dir's filesystem for the
    pod's own files bound into its apps; if not, they are chowned by the shift instead, and
    stderr says so."""
    if not config.private_users:
        return True
    from pyrkt.kernel import mount

    why = mount.idmap_unsupported(pod_dir)
    if why is None:
        return True
    sys.stderr.write(f"warning: --private-users: the kernel cannot idmap the pod's files ({why}): "
                     "they are chowned to the pod's ids instead\n")
    return False


def with_resolv(pod: PodPlan, config: abi.RuntimeConfig, resolv: str) -> PodPlan:
    """The plan with ``resolv`` (a CNI network's DNS) bound as every app's /etc/resolv.conf."""
    etc = pod.etc.replace(resolv=resolv)
    shift = stage1_plan.id_shift(config)
    return pod.replace(etc=etc, apps=tuple(a.replace(mounts=stage1_plan.app_mounts(
        etc, console=pod.console, mask_paths=not config.disable_paths, read_only_etc=a.read_only_root,
        id_shift=shift, privileged=a.privileged)) for a in pod.apps))


def with_metadata_url(pod_dir: str, pod: PodPlan, config: abi.RuntimeConfig, host: str) -> PodPlan:
    """Every app given ``AC_METADATA_URL`` (its env file written again)."""
    apps = tuple(stage1_plan.with_metadata_url(a, host, config.mds_port, config.mds_token) for a in pod.apps)
    for app in apps:
        fs.atomic_write(os.path.join(pod_dir, abi.ENV_DIR, app.name), "\0".join(app.env) + "\0", sync=False)
    return pod.replace(apps=apps)


def etc_files(pod_dir: str, config: abi.RuntimeConfig) -> EtcFiles:
    """The /etc files bound into every app (rkt-behaviour §4.6): hostname always; hosts from
    ``--hosts-entry`` (over the image's file) or the fallback (only where the image has none);
    resolv.conf from the ``--dns*`` flags, or the host's file (``--dns=host``, ``--net=host``).
    A CNI network's DNS result is added by ``cni_resolv`` once the networks are up."""
    etc = os.path.join(pod_dir, ETC_DIR)
    hostname = hostname_for(config)
    fs.atomic_write(os.path.join(etc, "hostname"), hostname + "\n", sync=False)
    out = EtcFiles(os.path.join(etc, "hostname"), hosts=os.path.join(etc, "hosts-fallback"))
    if config.hosts_from_host:
        out = out.replace(hosts=HOST_HOSTS, hosts_override=True, hosts_readonly=True)
    elif config.hosts:
        from pyrkt.network import dns

        fs.atomic_write(os.path.join(etc, "hosts"), dns.hosts_file(config.hosts), sync=False)
        out = out.replace(hosts=os.path.join(etc, "hosts"), hosts_override=True)
    else:
        fs.atomic_write(os.path.join(etc, "hosts-fallback"),
                        f"127.0.0.1\tlocalhost localhost.localdomain localhost4 localhost4.localdomain4\n"
                        f"::1\tlocalhost localhost.localdomain localhost6 localhost6.localdomain6\n"
                        f"127.0.0.1\t{hostname}\n", sync=False)
    mode = config.dns.mode
    if mode == "flags":
        from pyrkt.network import dns

        fs.atomic_write(os.path.join(etc, "resolv.conf"), dns.resolv_from_flags(config.dns), sync=False)
        out = out.replace(resolv=os.path.join(etc, "resolv.conf"))
    elif (mode == "host" or (mode == "" and network_mode(config) == "host")) and os.path.exists(HOST_RESOLV):
        out = out.replace(resolv=HOST_RESOLV)
    return out


def cni_resolv(pod_dir: str, config: abi.RuntimeConfig) -> str:
    """resolv.conf from the first CNI network that returned DNS, unless a ``--dns*`` flag
    decided (``--dns=none`` included); the file's path, or "" when there is none."""
    if config.dns.mode:
        return ""
    from pyrkt.network import setup as network

    found = network.first_dns(pod_dir)
    if found is None:
        return ""
    from pyrkt.network import dns

    text = dns.resolv_from_cni(*found)
    if text is None:
        return ""
    path = os.path.join(pod_dir, ETC_DIR, "resolv.conf")
    fs.atomic_write(path, text, sync=False)
    return str(path)


def pod_procs_dir(paths: list[str]) -> str:
    """The pod's cgroup directory, below which all its processes are, of pod init's ``paths``
    (the first hierarchy's; on v2 pod init is in a leaf beside the apps': the pod's is above)."""
    first = paths[0]
    return os.path.dirname(first) if os.path.basename(first) == cgroups.INIT_LEAF else first


def join_cgroups(paths: list[str], pid: int) -> str:
    """Host side: move pod init (``pid``) into the pod's cgroups; what to tell it: "joined",
    or why not (it starts no app before it hears)."""
    try:
        LinuxKernel().cgroup_join(paths, pid)
        return "joined"
    except OSError as e:
        return f"{e.filename or 'cgroup.procs'}: {e.strerror}"


class DefaultFlavor:
    name = "default"

    # -- run ---------------------------------------------------------------------------

    def run(self, pod_dir: str, config: abi.RuntimeConfig, lock_fd: int, *, detach: bool) -> int:
        handed_over: list[bool] = []  # start() marks the moment pod init holds the lock alone
        userns: list[tuple[int, int]] = []  # a user namespace begun and not finished (--private-users)
        try:
            return self.start(pod_dir, config, lock_fd, detach=detach, handed_over=handed_over, userns=userns)
        except BaseException:
            for started in userns:
                LinuxKernel().cancel_user_namespace(started)
            if not handed_over:
                os.close(lock_fd)  # so the caller can lock the pod again and clean it up
            raise

    def start(self, pod_dir: str, config: abi.RuntimeConfig, lock_fd: int, *, detach: bool,
              handed_over: list[bool], userns: list[tuple[int, int]]) -> int:
        # here, not at the module's top: `app add` plans an app without them (~6 ms); imported
        # before the fork, so that pod init and its apps start without imports
        from pyrkt.stage1 import app as _app_setup  # noqa: F401
        from pyrkt.stage1 import appio, execute, initroot, podinit  # noqa: F401

        net = network_mode(config)
        # --private-users: the namespace's child spawned now, its maps written once the rest is
        # set up (by then it has unshared: no wait)
        if config.private_users:
            userns.append(LinuxKernel().start_user_namespace())
        for d in (abi.STATUS_DIR, abi.ENV_DIR, PIDS_DIR, ETC_DIR, abi.LOGS):
            os.makedirs(os.path.join(pod_dir, d), exist_ok=True)
        ready_r, ready_w = os.pipe()
        joined_r, joined_w = os.pipe()  # the host side tells pod init it is in the pod's cgroups
        tee = not detach and not config.interactive
        # --interactive from a terminal: the app gets a pty of its own, carried to and from it;
        # else (stdin or stdout a pipe or file) the app's stdio is this process's own, as
        # systemd-nspawn's pipe console: no echo of piped input, no terminal for the app
        pty = os.openpty() if config.interactive and os.isatty(0) and os.isatty(1) else None
        console = os.ttyname(pty[1]) if pty is not None else "/dev/null"
        pod = build_plan(pod_dir, config, tee=tee, console=console)
        if any(a.volumes for a in pod.apps):  # now, not in each app: forked apps start without imports
            from pyrkt.kernel import inroot  # noqa: F401
        if any(a.attachable for a in pod.apps):  # pod init opens their stdio in its own root
            appio.preload(lean_script)
        if (fs.read_text(os.path.join(pod_dir, abi.FLAVOR)) or "").strip() != self.name:  # prepare wrote it
            fs.atomic_write(os.path.join(pod_dir, abi.FLAVOR), self.name + "\n", sync=False)
        fs.atomic_write(os.path.join(pod_dir, abi.SUBCGROUP), pod.cgroup + "\n", sync=False)
        cgroup_paths, pod, warnings = execute.set_up_cgroups(LinuxKernel(), pod)
        for line in warnings:
            sys.stderr.write(f"warning: {line}\n")
        netns_path = ""
        nets: list[tuple[str, dict[str, Any], str]] | None = None
        if net == "cni":  # its netns now (pod init enters it), its networks while pod init sets up (late_network)
            from pyrkt.network import config as net_config
            from pyrkt.network import setup as network

            nets = net_config.select(list(config.net), config.config_dirs)
            netns_path = network.create_netns(pod_dir, config.uuid)
        elif config.mds_token:  # the host's loopback
            pod = with_metadata_url(pod_dir, pod, config, "127.0.0.1")
        # what pod init runs from, a plain dict it adds its fds to; the apps' plans stay values
        # (pod init is a fork of this process and starts them before it re-executes itself)
        plan = to_plain(pod.replace(apps=()))
        plan["apps"] = [{"name": a.name, "log": a.log, "plan": a, "oom_events": a.oom_events} for a in pod.apps]
        plan["ready_fd"] = ready_w
        plan["stop_timeout_file"] = abi.STOP_TIMEOUT
        if config.mutable:  # what the apps added later need (see podinit.py)
            import marshal

            # the pod's memory cgroup, where pod init opens an added app's OOM counter from
            plan["oom_dir"] = next((p for p in cgroup_paths if os.path.exists(os.path.join(p, "memory.oom_control"))
                                    or os.path.exists(os.path.join(p, "memory.events"))), "")

            from pyrkt.kernel import inroot  # noqa: F401  for added apps' volumes, set up from this fork

            fs.atomic_write(os.path.join(pod_dir, ETC_PLAN), marshal.dumps(to_plain(pod.etc)), sync=False)
            os.makedirs(os.path.join(pod_dir, abi.REQUESTS_DIR), exist_ok=True)
            plan.update(mutable=True, requests_dir=abi.REQUESTS_DIR)
        if userns:  # the pod's user namespace, for pod init to idmap its apps into and have them join
            plan["userns_fd"] = execute.make_user_namespace(LinuxKernel(), userns.pop(), pod)

        # v1 hierarchies (this host's hybrid one too): pod init moves itself, through their
        # `tasks` files, which costs no RCU grace period; on v2 the host side moves it (primed)
        self_join = all(os.path.exists(os.path.join(p, "tasks")) for p in cgroup_paths)
        if self_join:
            plan["join_paths"] = cgroup_paths
        host_pidns = -1
        if pod.host_pid:  # --pid=host: pod init kills what is left of the pod through its cgroup
            if not cgroup_paths:
                raise PyrktError("--pid=host needs a cgroup for the pod (this host has none)")
            plan["procs_dir"] = pod_procs_dir(cgroup_paths)
        else:
            host_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
            namespaces.unshare(namespaces.CLONE_NEWPID)
        if not detach:  # pod init watches this process: when it dies, the pod goes (as in rkt)
            plan["parent_fd"] = os.pidfd_open(os.getpid())
        try:
            pid = os.fork()
        except BaseException:
            if host_pidns >= 0:
                namespaces.setns(host_pidns, namespaces.CLONE_NEWPID, "host pid namespace")
            if not detach:
                os.close(plan["parent_fd"])
            raise
        if pid == 0:
            if host_pidns >= 0:
                os.close(host_pidns)  # the apps could reach it through /proc/1/fd
            os.close(joined_w)
            self.become_pod_init(pod_dir, pod, plan, netns_path, lock_fd, ready_r, ready_w, joined_r,
                                 detach=detach, pty=pty)
        if host_pidns >= 0:
            namespaces.setns(host_pidns, namespaces.CLONE_NEWPID, "host pid namespace")
            os.close(host_pidns)
        if "userns_fd" in plan:
            os.close(plan["userns_fd"])  # pod init holds it until its apps have joined
        os.close(ready_w)
        os.close(joined_r)
        # before pod init hears "joined" (and so may start the apps): a run killed after that
        # must leave a pod that stop and gc can find the pod init of; killed before it, pod init
        # reads no answer and ends. While the lock is ours too: a concurrent gc cannot move the dir.
        fs.atomic_write(os.path.join(pod_dir, abi.PID), f"{pid}\n", sync=False)
        answer = "joined" if self_join else join_cgroups(cgroup_paths, pid)
        late, net_error = b"", None
        if answer == "joined" and nets is not None:
            try:
                late = self.late_network(pod_dir, config, pod, nets)
            except Exception as e:  # pod init hears it and ends; the pod goes as after any failed start
                answer, net_error = f"error:{e}", e
        try:
            os.write(joined_w, answer.encode() + late)
        except BrokenPipeError:
            pass  # pod init is gone already; why, it has written to the ready pipe
        finally:
            os.close(joined_w)
        if not detach:
            os.close(plan["parent_fd"])
        handed_over.append(True)
        os.close(lock_fd)  # pod init holds the lock now; the pod is running exactly while it lives
        if pty is not None:
            os.close(pty[1])
        message = read_all(ready_r)
        os.close(ready_r)
        if detach:
            if not message.startswith("ready"):
                code = wait_exit(pid)
                self.gc(pod_dir)
                if net_error is not None:
                    raise net_error
                raise PyrktError(message.removeprefix("error:").strip() or f"pod init exited with {code} before the apps started")
            return 0
        from pyrkt.stage1 import foreground

        code = foreground.wait(pid, pty[0] if pty is not None else None)
        try:
            self.release(pod_dir)  # the pod has exited: its networks and mounts go now, its cgroups at gc
        except (OSError, PyrktError) as e:
            sys.stderr.write(f"pyrkt: pod {config.uuid}: teardown left for gc: {e}\n")
        if net_error is not None:
            raise net_error
        if message.startswith("error:"):
            raise PyrktError(message.removeprefix("error:").strip())
        return code

    def late_network(self, pod_dir: str, config: abi.RuntimeConfig, pod: PodPlan,
                     nets: list[tuple[str, dict[str, Any], str]]) -> bytes:
        """Host side, after pod init's fork and while it sets itself up: ADD the pod's networks
        to its netns. What pod init is told after "joined": nothing when its apps' plans stand,
        else a newline and the apps' plans again (marshal of ``to_plain``), when a network's
        DNS became their resolv.conf or ``--mds-register`` their metadata URL."""
        from pyrkt.network import setup as network

        network.add(pod_dir, config.uuid, nets, config.config_dirs, port_mappings=port_mappings(pod_dir))
        new = pod
        resolv = cni_resolv(pod_dir, config)
        if resolv:
            new = with_resolv(new, config, resolv)
        if config.mds_token:  # the host side of the pod's forwardable network
            new = with_metadata_url(pod_dir, new, config, network.host_ip(pod_dir))
        if new is pod:
            return b""
        import marshal

        if config.mutable:  # the apps added later get the network's resolv.conf too
            fs.atomic_write(os.path.join(pod_dir, ETC_PLAN), marshal.dumps(to_plain(new.etc)), sync=False)
        return b"\n" + marshal.dumps([to_plain(a) for a in new.apps])

    def become_pod_init(self, pod_dir: str, pod: PodPlan, plan: dict[str, Any], netns_path: str,
                        lock_fd: int, ready_r: int, ready_w: int, joined_r: int, *,
                        detach: bool, pty: tuple[int, int] | None) -> None:
        """In the forked child (PID 1 of the new pid namespace): finish the namespaces and become
        pod init (which later re-executes itself as a lean interpreter, see podinit.py). The
        host side moves it into the pod's cgroups meanwhile; it waits for that (``joined_r``)
        only before it starts the apps."""
        from pyrkt.stage1 import execute, initroot, podinit  # loaded already (start)

        try:
            os.close(ready_r)
            if plan.get("join_paths"):  # first: whatever it starts runs in the pod's cgroups
                LinuxKernel().cgroup_join(plan.pop("join_paths"))
            os.setsid()
            host_ns: list[int] = []
            if netns_path:  # pod init tears the networks down as a detached (or orphaned) pod exits
                from pyrkt.network import teardown  # now: in pod init's root, the host's modules are gone

                host_ns = [os.open(f"/proc/self/ns/{ns}", os.O_RDONLY) for ns in ("net", "mnt")]
                for fd in host_ns:
                    os.set_inheritable(fd, True)  # kept across pod init's re-exec, for the teardown
                plan["teardown"] = {"argv": [], "timeout": teardown.TIMEOUT, "always": detach}
            if "parent_fd" in plan:
                os.set_inheritable(plan["parent_fd"], True)  # watched across the re-exec too
            if netns_path:
                fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
                namespaces.setns(fd, namespaces.CLONE_NEWNET, f"network namespace {netns_path}")
                os.close(fd)
            if plan.get("mutable") or any(m.propagation for a in pod.apps for m in a.volumes):
                # where an app's propagating volume is copied from (execute.clone_propagated)
                plan["host_mntns"] = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
            execute.set_up_pod(LinuxKernel(), pod)  # namespaces, hostname, sysctls, lo
            if pty is not None:
                os.close(pty[0])
                for fd in (0, 1, 2):
                    os.dup2(pty[1], fd)
                os.close(pty[1])
            elif not pod.interactive:  # --interactive without a terminal: the apps get run's stdio
                null = os.open("/dev/null", os.O_RDWR)
                os.dup2(null, 0)
                if detach:
                    os.dup2(null, 1)
                    os.dup2(null, 2)
                os.close(null)
            os.set_inheritable(lock_fd, True)
            os.set_inheritable(ready_w, True)
            os.chdir(pod_dir)
            for key in list(os.environ):  # os.environ.clear() pops one by one, each from a new
                del os.environ[key]  # iterator over a dict with holes: ~0.3 ms for 35 variables
            os.environ.update({abi.LOCK_FD_ENV: str(lock_fd), "PATH": abi.STANDARD_PATH})
            process.blank_cmdline("pyrkt pod init")  # /proc/1/cmdline showed the data dir to the apps
            for sig in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGWINCH, _signal.SIGPIPE):
                _signal.signal(sig, _signal.SIG_DFL)
        except BaseException as e:
            try:
                os.write(ready_w, f"error:cannot start pod init: {e}\n".encode())
            finally:
                os._exit(254)

        def enter_root() -> dict[str, Any]:
            new = initroot.enter(LinuxKernel(), os.path.join(pod_dir, initroot.MOUNTPOINT), lock_fd, plan["podinit"])
            answer, _, late = read_bytes(joined_r).partition(b"\n")
            os.close(joined_r)
            if answer.startswith(b"error:"):  # the pod's networks (late_network)
                raise PyrktError(answer.removeprefix(b"error:").decode(errors="replace"))
            if not answer:  # the run process died, perhaps with a plugin's ADD under way: gc tears
                plan.pop("teardown", None)  # the networks down later, not this pod init now, beside it
                raise PyrktError("cannot join the pod's cgroups: the run process is gone")
            if answer != b"joined":
                raise PyrktError(f"cannot join the pod's cgroups: {answer.decode(errors='replace')}")
            if late:  # the apps' plans with what their networks gave them
                import marshal

                from pyrkt.model.plan import AppPlan, from_plain

                for spec, app in zip(plan["apps"], marshal.loads(late), strict=True):
                    spec["plan"] = from_plain(AppPlan, app)
            if host_ns:
                plan["teardown"]["argv"] = teardown.command(pod_dir, *host_ns, python=new["python"],
                                                            import_path=new["import_path"])
            return new

        code = 254
        try:
            code = podinit.run_forked(plan, enter_root)
        finally:
            os._exit(code)

    # -- enter -------------------------------------------------------------------------

    def enter(self, pod_dir: str, app: str, argv: list[str], *, tty: bool = False) -> int:
        """``tty`` (`app exec --tty`): the command gets a terminal of its own, carried to and from
        the caller's stdin and stdout as `run --interactive` carries the app's."""
        import fcntl  # noqa: F401  (--tty) imported now: after setns the host's modules are gone

        from pyrkt.stage1 import execute, users
        from pyrkt.stage1.app import TIOCSCTTY, find_executable

        target = app_host_pid(pod_dir, app)
        env = enter_env(pod_dir, app, dict(os.environ))
        config_path = os.path.join(pod_dir, abi.RUNTIME_CONFIG)
        config = abi.RuntimeConfig.from_dict(fs.read_json(config_path), where=config_path)
        ra = read_manifest(pod_dir).app(app)
        workdir = ra.app.working_directory if ra is not None else "/"
        isolators = ra.app.isolators if ra is not None else ()
        privileged = ra is not None and stage1_plan.privileged(ra)
        keep = stage1_plan.app_caps(config, isolators, privileged=privileged)  # the app's own set and filter
        bpf = b"" if privileged else app_seccomp(pod_dir, config, isolators, {})
        sub = (fs.read_text(os.path.join(pod_dir, abi.SUBCGROUP)) or "").strip()
        pod_cgroups = cgroups.enter_paths(sub, app) if sub else []
        root = users.Ids(0, 0, (), "root", "/")  # as rkt: enter runs as root, with the app's limits
        pty = os.openpty() if tty else None
        pid = os.fork()
        if pid == 0:
            code = 254
            try:
                LinuxKernel().cgroup_join(pod_cgroups)  # the pod's device policy and the app's limits hold for it too
                namespaces.join(target, ENTER_NAMESPACES)
                child = os.fork()
                if child == 0:
                    try:
                        if pty is not None:  # its own session, the pty its controlling terminal
                            os.setsid()
                            os.close(pty[0])
                            fcntl.ioctl(pty[1], TIOCSCTTY, 0)
                            for fd in (0, 1, 2):
                                os.dup2(pty[1], fd)
                            os.close(pty[1])
                        os.chdir(workdir or "/")
                        path = find_executable(argv[0], env)
                        execute.become(LinuxKernel(), root, keep, bpf, no_new_privs=not privileged)
                        os.execve(path, argv, env)
                    except BaseException as e:
                        sys.stderr.write(f"pyrkt: {e}\n")
                        os._exit(254)
                if pty is not None:
                    os.close(pty[0])
                    os.close(pty[1])
                code = wait_exit(child)
            except BaseException as e:
                sys.stderr.write(f"pyrkt: {e}\n")
            os._exit(code)
        if pty is not None:
            from pyrkt.stage1 import foreground

            os.close(pty[1])
            foreground.proxy(pty[0], pid)
        return wait_exit(pid)

    # -- stop --------------------------------------------------------------------------

    def stop(self, pod_dir: str, *, force: bool, timeout: float = abi.DEFAULT_STOP_TIMEOUT) -> float:
        """TERM pod init, which TERMs the apps and KILLs them ``timeout`` seconds later (or KILL
        it and the pod's cgroups with ``force``); returns how long the pod may take to be gone."""
        pid = read_pid(pod_dir)
        if pid is None:
            raise InvalidState(f"pod {os.path.basename(pod_dir)} has no pod init to stop")
        if not force:  # read by pod init as the TERM arrives
            fs.atomic_write(os.path.join(pod_dir, abi.STOP_TIMEOUT), f"{timeout:g}\n", sync=False)
        try:
            os.kill(pid, 9 if force else 15)
        except ProcessLookupError:
            return 0.0
        if force:
            sub = fs.read_text(os.path.join(pod_dir, abi.SUBCGROUP))
            if sub:
                cgroups.kill([p for p in cgroups.paths_for(sub.strip()) if os.path.isdir(p)])
        return timeout + abi.STOP_GRACE

    # -- gc ----------------------------------------------------------------------------

    def release(self, pod_dir: str, *, cgroups: bool = False) -> None:
        """What an exited pod holds that others need: its networks (addresses, rules) and any
        mount left; with ``cgroups`` (gc) its cgroups too. Until gc they stay, as rkt's, so
        tools can read the pod's accounting after it exited."""
        from pyrkt.stage1 import execute

        if os.path.exists(os.path.join(pod_dir, abi.NETNS)) or os.path.exists(os.path.join(pod_dir, "net")):
            from pyrkt.network import setup as network

            network.down(pod_dir)
        sub = (fs.read_text(os.path.join(pod_dir, abi.SUBCGROUP)) or "").strip() if cgroups else ""
        execute.tear_down(LinuxKernel(), str(pod_dir), sub)

    def gc(self, pod_dir: str) -> None:
        self.release(pod_dir, cgroups=True)

    # -- mutable pods (app sandbox) ----------------------------------------------------
    # The caller holds the pod's apps lock (abi.APPS_LOCK); pod init does the rest, asked
    # through the pod dir (pyrkt.stage1.mutable: `app start` needs nothing more).

    def create_app(self, pod_dir: str, manifest: PodManifest, name: str, devices: tuple[HostDevice, ...] = ()) -> None:
        """`app add`: plan the app (of ``manifest``, the pod's with it) as `run` plans its apps,
        with its own ``devices`` (``app add --device``), make its cgroups with its limits and
        its own device allow-list, and write the plan where pod init reads it at each `app start`
        (rkt writes the app's units at add)."""
        import marshal

        from pyrkt.model.plan import from_plain
        from pyrkt.stage1 import execute

        config_path = os.path.join(pod_dir, abi.RUNTIME_CONFIG)
        config = abi.RuntimeConfig.from_dict(fs.read_json(config_path), where=config_path)
        ra = manifest.app(name)
        if ra is None:
            raise PyrktError(f"pod {config.uuid} has no app {name!r}")
        with open(os.path.join(pod_dir, ETC_PLAN), "rb") as f:
            etc = from_plain(EtcFiles, marshal.load(f))
        app = plan_app(pod_dir, config, manifest, ra, etc, console="/dev/null",
                       idmapped=pod_files_idmapped(pod_dir, config), compiled={}, devices=devices)
        app = app.replace(device_rules=stage1_plan.own_device_rules(  # a privileged one's: every device
            app, stage1_plan.added_app_device_rules(config, devices, volume_devices([app]))))
        sub = (fs.read_text(os.path.join(pod_dir, abi.SUBCGROUP)) or "").strip()
        app, warnings = execute.set_up_app_cgroups(LinuxKernel(), sub, app)
        for line in warnings:
            sys.stderr.write(f"warning: {line}\n")
        fs.atomic_write(os.path.join(pod_dir, abi.APPSINFO, name, APP_PLAN), marshal.dumps(to_plain(app)), sync=False)

    def stop_app(self, pod_dir: str, name: str, timeout: float) -> None:
        """TERM the app, KILL it ``timeout`` seconds later (pod init does), and wait until it
        has exited."""
        from pyrkt.stage1.mutable import ask_pod_init  # mutable pods' only: off the run path

        ask_pod_init(pod_dir, name, "stop", arg=f"{timeout:g}")
        status = os.path.join(pod_dir, abi.app_status(name))
        deadline = time.monotonic() + timeout + abi.STOP_GRACE
        while not os.path.exists(status):
            if not lock.is_locked(pod_dir):
                return  # the pod has gone, and its apps with it
            if time.monotonic() > deadline:
                raise InvalidState(f"app {name} did not stop within {timeout + abi.STOP_GRACE:g}s")
            time.sleep(0.01)

    def remove_app(self, pod_dir: str, name: str) -> None:
        """Have pod init forget the (stopped) app, and remove its cgroups."""
        if lock.is_locked(pod_dir):
            from pyrkt.stage1.mutable import ask_pod_init

            ask_pod_init(pod_dir, name, "rm")
        sub = (fs.read_text(os.path.join(pod_dir, abi.SUBCGROUP)) or "").strip()
        if sub:
            LinuxKernel().cgroup_remove(f"{sub}/{cgroups.app_dir(name)}")


def app_host_pid(pod_dir: str, app: str) -> int:
    """The host pid of ``app``'s main process: pod init's child whose pod-side pid it recorded."""
    init = read_pid(pod_dir)
    inner = fs.read_text(os.path.join(pod_dir, PIDS_DIR, app))
    if init is None or inner is None or not lock.is_locked(pod_dir):
        raise InvalidState(f"pod {quote(os.path.basename(pod_dir))} isn't currently running")  # rkt's words
    try:
        children = open(f"/proc/{init}/task/{init}/children").read().split()
    except FileNotFoundError:
        raise InvalidState(f"pod {quote(os.path.basename(pod_dir))} isn't currently running") from None
    for child in children:
        try:
            with open(f"/proc/{child}/status") as f:
                for line in f:
                    if line.startswith("NSpid:"):
                        if line.split()[-1] == inner.strip():
                            return int(child)
                        break
        except FileNotFoundError:
            continue
    raise InvalidState(f"app {app!r} of pod {os.path.basename(pod_dir)} is not running")


def wait_gone(pod_dir: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not lock.is_locked(pod_dir):
            return True
        time.sleep(0.05)
    return False


FLAVOR = DefaultFlavor()
