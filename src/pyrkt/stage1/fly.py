"""The ``fly`` flavor (rkt's stage1-fly): one app, a mount namespace and chroot only. The app
shares the host's pid, network, uts and ipc namespaces, gets no capability, seccomp or cgroup
restrictions, and is exec'ed directly: it holds the pod lock itself, so the pod runs exactly
as long as the app does. Foreground output goes straight to the terminal; with ``--detach``
it goes to the app's log file.

/etc files as rkt's fly: ``--dns=host`` and ``--hosts-entry=host`` bind the host's files
read-only; ``--dns`` servers (and ``--dns-search``...) write a resolv.conf into the app's root;
``--hosts-entry=IP=HOST`` binds the generated hosts file; with no ``--hosts-entry`` an image
without /etc/hosts gets a localhost stub. The image's files stay otherwise.
"""

from __future__ import annotations

import os
import sys

from pyrkt.errors import InvalidState, PyrktError, UsageError, quote
from pyrkt.kernel import fs, namespaces
from pyrkt.kernel.api import LinuxKernel
from pyrkt.model import abi
from pyrkt.model.volumes import EMPTY_VOLUMES_DIR
from pyrkt.stage1 import execute, plan
from pyrkt.stage1.poddir import (
    ETC_DIR,
    enter_env,
    read_all,
    read_layers,
    read_manifest,
    read_pid,
    wait_exit,
)


def etc_choice(pod_dir: str, config: abi.RuntimeConfig) -> tuple[tuple[str, str] | None, tuple[str, str]]:
    """What the app's /etc/resolv.conf and /etc/hosts become (rkt's fly modes), as
    ``plan.fly_app_plan`` takes them; a generated hosts file is written under the pod's
    stage1 /etc."""
    from pyrkt.network import dns

    resolv: tuple[str, str] | None = None
    if config.dns.mode == "host":
        resolv = ("bind", dns.HOST_RESOLV)
    elif config.dns.mode == "flags":
        resolv = ("copy", dns.resolv_from_flags(config.dns))
    if config.hosts_from_host:
        return resolv, ("bind", dns.HOST_HOSTS)
    if config.hosts:
        etc = os.path.join(pod_dir, ETC_DIR)
        os.makedirs(etc, exist_ok=True)
        path = os.path.join(etc, "hosts")
        fs.atomic_write(path, dns.hosts_file(config.hosts), sync=False)
        return resolv, ("bind", path)
    return resolv, ("stub", "")


def unapplied_limits(isolators: tuple[tuple[str, object], ...]) -> list[str]:
    """The resource isolators an app asks for, which the fly flavor (no cgroups) leaves out."""
    from pyrkt.model import isolators as iso

    limits, oom = iso.limits(isolators)
    return [*limits.given, *([iso.OOM_SCORE_ADJ] if oom is not None else [])]


class FlyFlavor:
    name = "fly"

    def run(self, pod_dir: str, config: abi.RuntimeConfig, lock_fd: int, *, detach: bool) -> int:
        """Start the app; the lock stays ours too until this process is done with the pod dir
        (an app that ends at once releases its copy, and a concurrent gc would take the dir
        from under the writes that follow), and is let go however it ends, so that a failed
        start's pod can be locked and cleaned up."""
        try:
            return self.start(pod_dir, config, lock_fd, detach=detach)
        finally:
            os.close(lock_fd)

    def start(self, pod_dir: str, config: abi.RuntimeConfig, lock_fd: int, *, detach: bool) -> int:
        manifest = read_manifest(pod_dir)
        if len(manifest.apps) != 1:
            raise UsageError(f"the fly flavor runs exactly one app, not {len(manifest.apps)}")
        if config.interactive:
            raise UsageError("the fly flavor does not support --interactive")
        if config.sysctls:
            raise UsageError("--sysctl cannot be used with the fly flavor: its app shares the host's namespaces")
        if config.private_users:
            raise UsageError("--private-users cannot be used with the fly flavor: its app shares the host's namespaces")
        ra = manifest.apps[0]
        name = ra.name
        for isolator in unapplied_limits(ra.app.isolators):
            sys.stderr.write(f"warning: app {name}: {isolator} isolator set but the fly flavor applies no "
                             "resource limits (as rkt's stage1-fly): ignored\n")
        for handler, _ in ra.app.event_handlers:
            sys.stderr.write(f"warning: app {name}: the {handler} event handler is not run by the fly flavor "
                             "(as rkt's stage1-fly): ignored\n")
        resolv, hosts = etc_choice(pod_dir, config)
        app = plan.fly_app_plan(
            ra, lowers=read_layers(pod_dir, name), upper=os.path.join(pod_dir, abi.OVERLAY, name, "upper"),
            work=os.path.join(pod_dir, abi.OVERLAY, name, "work"), rootfs=os.path.join(pod_dir, abi.app_rootfs(name)),
            log=os.path.join(pod_dir, abi.LOGS, f"{name}.raw"), resolv=resolv, hosts=hosts,
            volumes=plan.volume_mounts(ra, manifest.volumes, os.path.join(pod_dir, EMPTY_VOLUMES_DIR), recursive=False,
                                      propagation=False))
        if config.mds_token:  # the app shares the host's network
            app = plan.with_metadata_url(app, "127.0.0.1", config.mds_port, config.mds_token)
        for d in (abi.STATUS_DIR, abi.ENV_DIR, abi.LOGS):
            os.makedirs(os.path.join(pod_dir, d), exist_ok=True)
        fs.atomic_write(os.path.join(pod_dir, abi.ENV_DIR, name), "\0".join(app.env) + "\0", sync=False)
        fs.atomic_write(os.path.join(pod_dir, abi.FLAVOR), "fly\n", sync=False)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        go_r, go_w = os.pipe2(os.O_CLOEXEC)  # the app waits until its pid is on file: see below
        pid = os.fork()
        if pid == 0:
            try:
                os.close(err_r)
                os.close(go_w)
                if os.read(go_r, 1) != b"g":  # this process died before it wrote the pid file
                    os._exit(127)
                os.setsid()
                if detach:
                    log = os.open(app.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
                    null = os.open("/dev/null", os.O_RDONLY)
                    os.dup2(null, 0)
                    os.dup2(log, 1)
                    os.dup2(log, 2)
                from pyrkt.stage1 import users
                from pyrkt.stage1.app import find_executable

                k = LinuxKernel()
                execute.set_up_root(k, app)
                os.makedirs(app.cwd, exist_ok=True)
                os.chdir(app.cwd)
                ids = users.resolve(app.user, app.group, app.supplementary_gids)
                envd = users.environment(list(app.env), ids)
                path = find_executable(app.argv[0], envd)
                execute.become(k, ids, app.caps, app.seccomp, app.no_new_privs)
                os.set_inheritable(lock_fd, True)
                os.execve(path, list(app.argv), envd)
            except BaseException as e:
                try:
                    os.write(err_w, f"app {name}: {e}".encode())
                finally:
                    os._exit(127)
        os.close(err_w)
        os.close(go_r)
        # before the app may start: a run killed after this leaves a pod stop and gc find the
        # app of; killed before it, the app reads no "g" and exits without starting
        fs.atomic_write(os.path.join(pod_dir, abi.PID), f"{pid}\n", sync=False)
        fs.atomic_write(os.path.join(pod_dir, abi.PGID), f"{pid}\n", sync=False)
        os.write(go_w, b"g")
        os.close(go_w)
        message = read_all(err_r)
        os.close(err_r)
        if message:
            wait_exit(pid)
            raise PyrktError(message)
        fs.touch(os.path.join(pod_dir, abi.STATUS_DIR, f"{name}-started"))
        try:
            os.symlink("ready", os.path.join(pod_dir, abi.SUPERVISOR_STATUS))
        except FileExistsError:
            pass
        if detach:
            return 0
        from pyrkt.stage1 import foreground

        code = foreground.wait(pid, None)
        fs.atomic_write(os.path.join(pod_dir, abi.app_status(name)), str(code), sync=False)
        return code

    def enter(self, pod_dir: str, app: str, argv: list[str]) -> int:
        pid = read_pid(pod_dir)
        if pid is None:
            raise InvalidState(f"pod {quote(os.path.basename(pod_dir))} isn't currently running")  # rkt's words
        from pyrkt.stage1.app import find_executable

        env = enter_env(pod_dir, app, dict(os.environ))
        root_fd = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY)
        child = os.fork()
        if child == 0:
            try:
                namespaces.join(pid, ("mnt",))
                os.fchdir(root_fd)
                LinuxKernel().chroot(".")
                os.execve(find_executable(argv[0], env), argv, env)
            except BaseException as e:
                sys.stderr.write(f"pyrkt: {e}\n")
                os._exit(254)
        os.close(root_fd)
        return wait_exit(child)

    def stop(self, pod_dir: str, *, force: bool, timeout: float = abi.DEFAULT_STOP_TIMEOUT) -> float:
        """TERM (or KILL) the app's process group; the caller KILLs it after ``timeout``, the
        seconds returned."""
        pid = read_pid(pod_dir)
        if pid is None:
            return 0.0
        sig = 9 if force else 15
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        return timeout

    def gc(self, pod_dir: str) -> None:
        execute.tear_down(LinuxKernel(), str(pod_dir), "")


FLAVOR = FlyFlavor()
