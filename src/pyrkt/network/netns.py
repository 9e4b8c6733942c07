"""A pod's network namespace, kept alive as a bind-mounted file (``ip netns`` style)."""

from __future__ import annotations

import os

from pyrkt.errors import NetworkSetupError
from pyrkt.kernel import mount, namespaces

NETNS_DIR = "/run/pyrkt/netns"


def path_for(uuid: str) -> str:
    return f"{NETNS_DIR}/{uuid}"


def create(path: str) -> None:
    """Make a new netns and bind it onto ``path`` (from a child, so the caller stays put)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    os.close(fd)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            namespaces.unshare(namespaces.CLONE_NEWNET)
            mount.bind("/proc/self/ns/net", path)
            namespaces.loopback_up()
            code = 0
        except BaseException as e:
            os.write(w, str(e).encode())
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        err = f.read().decode()
    _, status = os.waitpid(pid, 0)
    if status != 0:
        remove(path)
        raise NetworkSetupError(f"cannot create network namespace {path}: {err or 'unknown error'}")


def remove(path: str) -> None:
    """Unmount and delete; idempotent."""
    mount.umount(path, mount.MNT_DETACH, missing_ok=True)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
