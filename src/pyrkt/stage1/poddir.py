"""Reading a pod dir and waiting for processes: the helpers both flavors use, so that the fly
flavor does not import the default flavor (and with it pod init and app set-up)."""

from __future__ import annotations

import os

from pyrkt.errors import NotFound
from pyrkt.kernel import fs
from pyrkt.model import abi
from pyrkt.model.pod import PodManifest

ETC_DIR = "stage1/rootfs/etc"


def read_manifest(pod_dir: str) -> PodManifest:
    """The pod's manifest, as stage0 wrote it: the one reader in stage1."""
    return PodManifest.from_json(fs.read_json(os.path.join(pod_dir, abi.POD_MANIFEST)))


def read_layers(pod_dir: str, app: str) -> tuple[str, ...]:
    """The app's layer dirs as overlay lowers, top first (the file lists them bottom first);
    none when the pod was prepared with --no-overlay (no overlay dir: the app's rootfs is a
    copy of its image)."""
    if not os.path.isdir(os.path.join(pod_dir, abi.OVERLAY, app)):
        return ()
    return tuple(str(p) for p in reversed(fs.read_json(os.path.join(pod_dir, abi.app_layers(app)))))


def read_all(fd: int) -> str:
    return read_bytes(fd).decode(errors="replace")


def read_bytes(fd: int) -> bytes:
    """Everything until end of file."""
    chunks = []
    while True:
        try:
            b = os.read(fd, 4096)
        except InterruptedError:
            continue
        if not b:
            break
        chunks.append(b)
    return b"".join(chunks)


def wait_exit(pid: int) -> int:
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            return 254
        return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def read_pid(pod_dir: str) -> int | None:
    text = fs.read_text(os.path.join(pod_dir, abi.PID))
    try:
        return int(text) if text else None
    except ValueError:
        return None


def read_env(pod_dir: str, app: str) -> dict[str, str]:
    text = fs.read_text(os.path.join(pod_dir, abi.ENV_DIR, app))
    if text is None:
        raise NotFound(f"no environment recorded for app {app!r}")
    env = {}
    for item in text.split("\0"):
        if item:
            k, _, v = item.partition("=")
            env[k] = v
    return env


def enter_env(pod_dir: str, app: str, caller: dict[str, str]) -> dict[str, str]:
    """What ``enter`` runs with: the app's environment and, as rkt's enter, the caller's
    ``TERM`` (``vt100`` when it has none), since an entered shell is usually interactive."""
    env = read_env(pod_dir, app)
    env["TERM"] = caller.get("TERM") or "vt100"
    return env
