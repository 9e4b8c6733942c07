"""The ``image`` flavor: a stage1 ACI that follows rkt's stage1 ABI runs the pod.

stage0 rendered the image into ``stage1/rootfs`` and wrote its manifest to ``stage1/manifest``;
its annotations ``coreos.com/rkt/stage1/{run,enter,stop,gc}`` name the entrypoints (paths in
that rootfs) and ``coreos.com/rkt/stage1/interface-version`` (1 when absent) which ``run``
arguments it takes. As rkt's stage0, this flavor mounts each app's root at
``stage1/rootfs/opt/stage2/<app>/rootfs`` and runs the entrypoints on the host, in the pod dir,
with ``RKT_LOCK_FD`` naming the pod's lock fd for ``run``. rkt runs a pod only in the
foreground; ``--detach`` starts ``run`` in a session of its own, its output in
``logs/stage1.log``, and returns once it has written ``pid`` or ``ppid``. The crossing entrypoints
(``app/*``, ``attach``) have no pyrkt command that would call them.
"""

from __future__ import annotations

import os
import sys

from pyrkt.errors import PyrktError, UsageError
from pyrkt.kernel import fs
from pyrkt.kernel.api import LinuxKernel
from pyrkt.model import abi, jsonio
from pyrkt.stage1 import execute
from pyrkt.stage1.poddir import read_all, read_layers, read_manifest, read_pid, wait_exit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrkt.kernel.api import Kernel

PREFIX = "coreos.com/rkt/stage1/"
INTERFACE_VERSION = PREFIX + "interface-version"
RKT_LOCK_FD = "RKT_LOCK_FD"
STAGE1_LOG = "logs/stage1.log"  # a detached run entrypoint's stdout and stderr
DETACH_TIMEOUT = 60.0


def manifest_annotations(manifest: object, where: str) -> dict[str, str]:
    """The annotations of a stage1 image manifest (appc JSON), checked to be name/value pairs."""
    items = manifest.get("annotations") if isinstance(manifest, dict) else None
    out: dict[str, str] = {}
    for item in items if isinstance(items, list) else ():
        if not (isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("value"), str)):
            raise PyrktError(f"{where}: an annotation is not a name/value pair: {item!r}")
        out[item["name"]] = item["value"]
    return out


def interface_version(ann: dict[str, str], where: str) -> int:
    """rkt's rule: an image without the annotation speaks version 1."""
    text = ann.get(INTERFACE_VERSION)
    if text is None:
        return 1
    try:
        return int(text)
    except ValueError:
        raise PyrktError(f"{where}: {INTERFACE_VERSION} {text!r} is not a number") from None


def read_annotations(pod_dir: str) -> dict[str, str]:
    path = os.path.join(pod_dir, abi.STAGE1_MANIFEST)
    return manifest_annotations(fs.read_json(path), path)


def entrypoint(pod_dir: str, ann: dict[str, str], name: str) -> str:
    """The host path of entrypoint ``name`` (``run``, ``enter``...) in the pod's stage1 rootfs."""
    value = ann.get(PREFIX + name)
    if not value:
        raise UsageError(f"{name} is not implemented by the pod's stage1 image (its manifest has no "
                         f"{PREFIX + name} annotation)")
    return os.path.join(pod_dir, abi.STAGE1_ROOTFS, value.lstrip("/"))


def dns_conf_mode(config: abi.RuntimeConfig) -> tuple[str, str]:
    """rkt's ``--dns-conf-mode`` (resolv, hosts) for the ``--dns*``/``--hosts-entry`` flags:
    ``stage0`` when stage0 writes the file (``etc/rkt-resolv.conf``, ``etc/rkt-hosts``)."""
    resolv = {"host": "host", "none": "none", "flags": "stage0"}.get(config.dns.mode, "default")
    hosts = "host" if config.hosts_from_host else "stage0" if config.hosts else "default"
    return resolv, hosts


def run_argv(path: str, config: abi.RuntimeConfig, version: int) -> tuple[list[str], list[str]]:
    """rkt's ``run`` argv for a stage1 of interface ``version``, and a warning for each flag
    the stage1 is too old to take (as rkt, the flag is then left out)."""
    argv = [path]
    warnings = []
    if config.debug:
        argv.append("--debug")
    argv.append("--net=" + ",".join(config.net))
    if config.interactive:
        argv.append("--interactive")
    if len(config.config_dirs) > 1:
        argv.append("--local-config=" + config.config_dirs[1])
    if config.hostname:
        if version > 1:
            argv.append("--hostname=" + config.hostname)
        else:
            warnings.append("--hostname option is not supported by stage1")
    resolv, hosts = dns_conf_mode(config)
    if (resolv, hosts) != ("default", "default"):
        if version > 3:
            argv.append(f"--dns-conf-mode=resolv={resolv},hosts={hosts}")
        else:
            warnings.append("--dns-conf-mode option not supported by stage1")
    if version > 2:
        flags = (("--disable-capabilities-restriction", config.disable_capabilities),
                 ("--disable-paths", config.disable_paths), ("--disable-seccomp", config.disable_seccomp))
        argv += [flag for flag, on in flags if on]
    if config.ipc != "auto":
        if version >= 6:
            argv.append("--ipc=" + config.ipc)
        else:
            warnings.append("--ipc option is not supported by stage1")
    if config.pid:
        warnings.append(f"--pid={config.pid} option is not supported by stage1")  # pyrkt's own: no stage1 image has it
    argv.append(config.uuid)
    return argv, warnings


def write_dns_files(pod_dir: str, config: abi.RuntimeConfig) -> None:
    """The files ``--dns-conf-mode=…stage0`` promises in the stage1 rootfs (rkt's names)."""
    resolv, hosts = dns_conf_mode(config)
    if "stage0" not in (resolv, hosts):
        return
    from pyrkt.network import dns

    etc = os.path.join(pod_dir, abi.STAGE1_ROOTFS, "etc")
    os.makedirs(etc, exist_ok=True)
    if resolv == "stage0":
        fs.atomic_write(os.path.join(etc, "rkt-resolv.conf"), dns.resolv_from_flags(config.dns), sync=False)
    if hosts == "stage0":
        fs.atomic_write(os.path.join(etc, "rkt-hosts"), dns.hosts_file(config.hosts), sync=False)


def mount_apps(k: Kernel, pod_dir: str) -> None:
    """Each app's root at ``stage1/rootfs/opt/stage2/<app>/rootfs``: its layers under its
    writable overlay dirs, as rkt's stage0 mounts them before it runs stage1."""
    for app in read_manifest(pod_dir).apps:
        overlay = os.path.join(pod_dir, abi.OVERLAY, app.name)
        if not os.path.isdir(overlay):  # --no-overlay: prepare copied the image there already
            continue
        k.overlay(list(read_layers(pod_dir, app.name)), os.path.join(overlay, "upper"), os.path.join(overlay, "work"),
                  os.path.join(pod_dir, abi.app_rootfs(app.name)))


def spawn(argv: list[str], cwd: str, env: dict[str, str], *, keep_fd: int = -1, log: str = "") -> int:
    """fork + exec ``argv`` in ``cwd``; returns the child's pid once the exec has succeeded (a
    failed exec is one PyrktError naming the entrypoint). ``log``: detach it (a session of its
    own, stdin from /dev/null, stdout and stderr appended to that file)."""
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(err_r)
            import signal

            signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # Python ignores it; an entrypoint gets the default
            os.chdir(cwd)
            if log:
                os.setsid()
                out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
                null = os.open("/dev/null", os.O_RDONLY)
                os.dup2(null, 0)
                os.dup2(out, 1)
                os.dup2(out, 2)
            if keep_fd >= 0:
                os.set_inheritable(keep_fd, True)
            os.execve(argv[0], argv, env)
        except BaseException as e:
            try:
                why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
                os.write(err_w, f"stage1 entrypoint {argv[0]}: {why}".encode())
            finally:
                os._exit(254)
    os.close(err_w)
    message = read_all(err_r)
    os.close(err_r)
    if message:
        wait_exit(pid)
        raise PyrktError(message)
    return pid


def wait_started(pod_dir: str, pid: int, timeout: float = DETACH_TIMEOUT) -> None:
    """``--detach``: return once the detached ``run`` entrypoint has written ``pid`` or
    ``ppid`` (all the ABI says of a started pod); one that exits first, or writes neither in
    ``timeout`` seconds (then killed), fails the run, its log named."""
    import time

    log = os.path.join(pod_dir, STAGE1_LOG)
    deadline = time.monotonic() + timeout
    while not (os.path.exists(os.path.join(pod_dir, abi.PID)) or os.path.exists(os.path.join(pod_dir, abi.PPID))):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            raise PyrktError(f"the stage1 run entrypoint exited (status {code}) before it wrote pid or ppid; see {log}")
        if time.monotonic() > deadline:
            os.killpg(pid, 9)
            wait_exit(pid)
            raise PyrktError(f"the stage1 run entrypoint wrote no pid or ppid in {timeout:g}s: killed; see {log}")
        time.sleep(0.02)


def pod_pid(pod_dir: str) -> int | None:
    """The process to enter: ``pid``, or the one child of ``ppid`` (rkt's two ways)."""
    pid = read_pid(pod_dir)
    if pid is not None:
        return pid
    text = fs.read_text(os.path.join(pod_dir, abi.PPID))
    if not text or not text.strip().isdigit():
        return None
    ppid = text.strip()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = fs.read_text(f"/proc/{entry}/stat")
        if stat and stat[stat.rfind(")") + 2:].split(" ", 2)[1] == ppid:
            return int(entry)
    return None


class ImageFlavor:
    name = "image"

    def run(self, pod_dir: str, config: abi.RuntimeConfig, lock_fd: int, *, detach: bool) -> int:
        try:
            ann = read_annotations(pod_dir)
            where = os.path.join(pod_dir, abi.STAGE1_MANIFEST)
            argv, warnings = run_argv(entrypoint(pod_dir, ann, "run"), config, interface_version(ann, where))
            for line in warnings:
                sys.stderr.write(f"warning: {line}\n")
            write_dns_files(pod_dir, config)
            mount_apps(LinuxKernel(), pod_dir)
            env = dict(os.environ)
            env[RKT_LOCK_FD] = env[abi.LOCK_FD_ENV] = str(lock_fd)
            env["RKT_SELINUX_CONTEXT"] = env["RKT_SELINUX_MOUNT_CONTEXT"] = ""  # rkt's, empty without SELinux
            log = os.path.join(pod_dir, STAGE1_LOG) if detach else ""
            pid = spawn(argv, pod_dir, env, keep_fd=lock_fd, log=log)
        finally:
            os.close(lock_fd)  # the stage1 holds the lock now (or, on failure, nobody: the pod can go)
        # The ABI asks a stage1 only for rkt/status/<app>; the -started stamps that status and
        # list read (rkt's own stage1 writes them) are stage0's to write here.
        for app in read_manifest(pod_dir).apps:
            stamp = os.path.join(pod_dir, abi.app_status(app.name) + "-started")
            if not os.path.exists(stamp):
                fs.touch(stamp)
        if detach:
            wait_started(pod_dir, pid)
            return 0
        from pyrkt.stage1 import foreground

        return foreground.wait(pid, None)

    def enter(self, pod_dir: str, app: str, argv: list[str]) -> int:
        pid = pod_pid(pod_dir)
        if pid is None:
            raise PyrktError(f"pod {os.path.basename(pod_dir)}: its stage1 wrote no pid or ppid file")
        path = entrypoint(pod_dir, read_annotations(pod_dir), "enter")
        return wait_exit(spawn([path, f"--pid={pid}", f"--appname={app}", "--", *argv], pod_dir, dict(os.environ)))

    def stop(self, pod_dir: str, *, force: bool, timeout: float = abi.DEFAULT_STOP_TIMEOUT) -> float:
        """The stage1's ``stop`` entrypoint (rkt's has no timeout: the caller KILLs after
        ``timeout``, the seconds returned)."""
        path = entrypoint(pod_dir, read_annotations(pod_dir), "stop")
        argv = [path, *(["--force"] if force else []), os.path.basename(pod_dir)]
        code = wait_exit(spawn(argv, pod_dir, dict(os.environ)))
        if code != 0:
            raise PyrktError(f"stage1 stop entrypoint {path} exited with status {code}")
        return timeout

    def gc(self, pod_dir: str) -> None:
        """The stage1's ``gc`` entrypoint for a pod that ran (in ``exited-garbage/``, as rkt),
        then every mount left under the pod dir. A failing entrypoint is reported, and the
        pod still goes (as rkt)."""
        if os.path.basename(os.path.dirname(pod_dir)) == "exited-garbage":
            try:
                self.stage1_gc(pod_dir)
            except (OSError, ValueError, PyrktError) as e:
                why = e.message if isinstance(e, PyrktError) else str(e)
                sys.stderr.write(f"warning: problem performing stage1 GC on {os.path.basename(pod_dir)}: {why}\n")
        execute.tear_down(LinuxKernel(), pod_dir, "")

    def stage1_gc(self, pod_dir: str) -> None:
        if not os.path.exists(os.path.join(pod_dir, abi.STAGE1_MANIFEST)):
            return  # a prepare that died before it wrote the stage1
        ann = read_annotations(pod_dir)
        if PREFIX + "gc" not in ann:
            return
        argv = [entrypoint(pod_dir, ann, "gc")]
        text = fs.read_text(os.path.join(pod_dir, abi.RUNTIME_CONFIG))
        rc = abi.RuntimeConfig.from_dict(jsonio.loads(text)) if text else None
        if rc is not None and rc.debug:
            argv.append("--debug")
        if rc is not None and len(rc.config_dirs) > 1 and interface_version(ann, abi.STAGE1_MANIFEST) >= 5:
            argv += ["--local-config", rc.config_dirs[1]]
        argv.append(os.path.basename(pod_dir))
        code = wait_exit(spawn(argv, pod_dir, dict(os.environ)))
        if code != 0:
            raise PyrktError(f"gc entrypoint {argv[0]} exited with status {code}")

FLAVOR = ImageFlavor()
