"""Synthetic pod dirs, laid out as stage0/stage1 would leave them, and locks held on them.

A pod is "running" while some open file description holds its dir's flock; the test process
can be that holder through a second fd of its own (flock conflicts between descriptions).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyrkt.model import abi
from pyrkt.model.image import AppSpec, Image
from pyrkt.model.pod import PodManifest, RuntimeApp, RuntimeImage
from pyrkt.pods.pod import ensure_dirs
from pyrkt.pods.state import Dir

IMAGE_ID = "sha256:" + "0123456789ab" * 5 + "cdef"


def write_pod(
    pods_dir: Path,
    where: Dir,
    uuid: str,
    *,
    apps: tuple[str, ...] = ("web",),
    manifest: bool = True,
    created: float | None = 1_700_000_000.0,
    pid: int | None = None,
    started: float | None = None,
    nets: list[dict[str, Any]] | None = None,
    stamps: dict[str, tuple[float | None, float | None, int | None]] | None = None,
    ready: bool = False,
) -> Path:
    """A pod dir in ``where``; ``stamps[app] = (created, started, exit code)`` times/values."""
    ensure_dirs(pods_dir)
    path = pods_dir / where.value / uuid
    path.mkdir()
    (path / abi.STATUS_DIR).mkdir(parents=True)
    if manifest:
        pm = PodManifest(
            apps=tuple(
                RuntimeApp(name=a, image=RuntimeImage(id=IMAGE_ID, name=f"example.com/{a}"), app=AppSpec(exec=("/bin/sh",)))
                for a in apps
            ),
            user_labels=(("tier", "front"),),
        )
        (path / abi.POD_MANIFEST).write_text(json.dumps(pm.to_json()))
        for a in apps:
            (path / abi.APPSINFO / a).mkdir(parents=True)
            image = Image(id=IMAGE_ID, name=f"example.com/{a}", labels=(("version", "1.0"),))
            (path / abi.app_manifest(a)).write_text(json.dumps(image.to_json()))
    if created is not None:
        (path / abi.POD_CREATED).touch()
        os.utime(path / abi.POD_CREATED, (created, created))
    if pid is not None:
        (path / abi.PID).write_text(f"{pid}\n")
        if started is not None:
            os.utime(path / abi.PID, (started, started))
    if nets is not None:
        (path / abi.NET_INFO).write_text(json.dumps(nets))
    for app, (c, s, code) in (stamps or {}).items():
        status = path / abi.app_status(app)
        for suffix, t in (("-created", c), ("-started", s)):
            if t is not None:
                stamp = Path(f"{status}{suffix}")
                stamp.touch()
                os.utime(stamp, (t, t))
        if code is not None:
            status.write_text(f"{code}\n")
    if ready:
        os.symlink("ready", path / abi.SUPERVISOR_STATUS)
    return path


class Holder:
    """Holds exclusive flocks on pod dirs, as a pod init (or a preparing command) would."""

    def __init__(self) -> None:
        self.fds: list[int] = []

    def lock(self, path: Path) -> int:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.fds.append(fd)
        return fd

    def release(self, fd: int) -> None:
        os.close(fd)
        self.fds.remove(fd)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()


@pytest.fixture
def pods_dir(tmp_path: Path) -> Path:
    d = tmp_path / "pods"
    ensure_dirs(d)
    return d


@pytest.fixture
def make_pod(pods_dir: Path) -> Callable[..., Path]:
    counter = iter(range(1, 10_000))

    def make(where: Dir, uuid: str | None = None, **kw: Any) -> Path:
        uuid = uuid or f"{next(counter):08x}-0000-4000-8000-000000000000"
        return write_pod(pods_dir, where, uuid, **kw)

    return make


@pytest.fixture
def holder() -> Iterator[Holder]:
    h = Holder()
    yield h
    h.close()
