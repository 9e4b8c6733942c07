"""Set up one app in a forked child of pod init and exec it (stage2).

Order matters and is rkt's/runc's: own session and mount namespace; the app's overlay root;
/proc, /dev, /sys and the /etc files; masked paths; pivot_root; user and groups; then
capabilities, no_new_privs and seccomp last, right before exec. Everything is imported before
pivot_root: afterwards the host's Python library is out of reach.
"""

from __future__ import annotations

import os
import stat

from pyrkt.errors import PyrktError
from pyrkt.kernel import caps, mount, namespaces, seccomp
from pyrkt.stage1 import rootfs, users

TYPE_CHECKING = False  # typing costs ~2 ms at run time; the annotations only need it for mypy
if TYPE_CHECKING:
    from typing import Any

TIOCSCTTY = 0x540E
MAX_FD = 1 << 20


def run_app(spec: dict[str, Any], plan: dict[str, Any], stdio: dict[str, int], err_w: int) -> None:
    """Never returns: execs the app, or raises for pod init to report."""
    os.setsid()
    setup_stdio(stdio, interactive=plan["interactive"])
    namespaces.unshare(namespaces.CLONE_NEWNS)
    mount.make_rprivate("/")
    root = spec["rootfs"]
    mount.overlay(spec["lowers"], spec["upper"], spec["work"], root)
    rootfs.setup(root, spec, plan)
    bpf: bytes = spec["seccomp"]
    mount.pivot_root(root)
    workdir = spec["workdir"] or "/"
    if not os.path.isdir(workdir):
        os.makedirs(workdir, 0o755, exist_ok=True)
    os.chdir(workdir)
    ids = users.resolve(spec["user"], spec["group"], spec["supplementary_gids"])
    env = users.environment(spec["env"], ids)
    path = find_executable(spec["argv"][0], env)
    close_fds(keep=err_w)
    keep = set(spec["caps"]) if spec["caps"] is not None else caps.held()
    caps.drop_bounding(keep)
    caps.set_keepcaps(True)
    os.setgroups(list(ids.groups))
    os.setresgid(ids.gid, ids.gid, ids.gid)
    os.setresuid(ids.uid, ids.uid, ids.uid)
    caps.set_caps(keep, uid=ids.uid)
    caps.set_no_new_privs()
    if bpf:
        seccomp.load_bpf(bpf)
    try:
        os.execve(path, spec["argv"], env)
    except OSError as e:
        raise PyrktError(f"cannot execute {path}: {e.strerror}") from None


def setup_stdio(stdio: dict[str, int], *, interactive: bool) -> None:
    if interactive:
        import fcntl

        try:
            fcntl.ioctl(0, TIOCSCTTY, 0)
        except OSError:
            pass  # stdin is not a terminal (e.g. redirected); the app still runs
        return
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(stdio["stdout"], 1)
    os.dup2(stdio["stderr"], 2)


def close_fds(keep: int) -> None:
    """Close every fd above stderr but ``keep`` (two close_range(2) calls)."""
    os.closerange(3, keep)
    os.closerange(keep + 1, MAX_FD)


def find_executable(name: str, env: dict[str, str]) -> str:
    """The path to exec: ``name`` itself when it has a slash, else the first match on PATH."""
    if "/" in name:
        if not os.path.exists(name):
            raise PyrktError(f"executable {name!r} not found in the image")
        return name
    for d in env.get("PATH", "").split(":"):
        candidate = os.path.join(d or ".", name)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return candidate
    raise PyrktError(f"executable {name!r} not found in the image's PATH ({env.get('PATH', '')})")
