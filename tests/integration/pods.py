"""Helpers for integration tests that run real pods: the installed CLI, a test image, and
checks that a test left nothing behind (mounts, cgroups, processes)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYRKT = REPO / ".venv" / "bin" / "pyrkt"
sys.path.insert(0, str(REPO))

from tests.support.images import build_oci_layout  # noqa: E402


@dataclass
class Result:
    code: int
    out: str
    err: str

    def __repr__(self) -> str:
        return f"Result(code={self.code}, out={self.out!r}, err={self.err!r})"


class Cli:
    """Runs `pyrkt --dir=<data dir> ...` as a user would; ``env`` is added to its environment."""

    def __init__(self, data_dir: Path, extra: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.extra = extra or []
        self.env = {**os.environ, **env} if env else None

    def argv(self, *args: str) -> list[str]:
        return [str(PYRKT), f"--dir={self.data_dir}", *self.extra, *args]

    def __call__(self, *args: str, timeout: float = 60, input: str | None = None) -> Result:
        p = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout, input=input,
                           stdin=None if input is not None else subprocess.DEVNULL, env=self.env)
        return Result(p.returncode, p.stdout, p.stderr)

    def popen(self, *args: str, **kw: object) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*args), text=True, env=self.env, **kw)  # type: ignore[call-overload]

    def pod_dir(self, uuid: str) -> Path:
        for state in ("run", "exited-garbage", "prepared", "prepare", "garbage", "embryo"):
            p = self.data_dir / "pods" / state / uuid
            if p.exists():
                return p
        raise AssertionError(f"pod {uuid} not found")

    def status(self, uuid: str) -> dict[str, str]:
        r = self("status", uuid)
        assert r.code == 0, r
        return dict(line.split("=", 1) for line in r.out.splitlines() if "=" in line)

    def stop_all(self) -> None:
        """Kill every pod of this data dir that still runs (a failed test may leave one)."""
        for line in self("list", "--no-legend", "--full").out.splitlines():
            fields = line.split()
            if fields and "running" in fields:
                self("stop", "--force", fields[0])

    def collect_all(self) -> None:
        """Stop what still runs and gc everything; fail if a pod (and so its cgroup or netns)
        could not be collected: teardown must always be able to finish."""
        self.stop_all()
        r = self("gc", "--grace-period=0s", "--expire-prepared=0s")
        left = [f"{d}/{p}" for d in ("prepare", "run", "exited-garbage", "garbage")
                for p in (os.listdir(self.data_dir / "pods" / d) if (self.data_dir / "pods" / d).is_dir() else [])]
        assert not left, (left, r)

    def wait_exited(self, uuid: str, timeout: float = 20) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.status(uuid)
            if st.get("state") != "running":
                return st
            time.sleep(0.05)
        raise AssertionError(f"pod {uuid} still running after {timeout}s")


def make_image(dest: Path, **kw: object) -> str:
    build_oci_layout(dest, **kw)  # type: ignore[arg-type]
    return f"oci:{dest}"


def mounts_under(path: Path) -> list[str]:
    root = str(path.resolve())
    with open("/proc/self/mountinfo") as f:
        return [ln.split()[4] for ln in f if ln.split()[4].startswith(root)]


def pod_cgroups(uuid: str) -> list[str]:
    found = []
    for base in Path("/sys/fs/cgroup").iterdir():
        if (base / "pyrkt" / uuid).exists():
            found.append(str(base / "pyrkt" / uuid))
    return found


def remove_cgroup_tree(top: str) -> None:
    """Remove the cgroup ``top`` (a path from each hierarchy's root, as --cgroup-parent takes
    one) and the directories below it in every hierarchy, children first, waiting a little for
    a pod's cgroup still being removed; fail if one is left."""
    roots = [p for p in Path("/sys/fs/cgroup").iterdir() if (p / "cgroup.procs").exists()] + [Path("/sys/fs/cgroup")]
    for root in roots:
        base = root / top.strip("/")
        if not base.is_dir():
            continue
        for d in sorted((p for p in [base, *base.rglob("*")] if p.is_dir()), key=lambda p: -len(p.parts)):
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
    assert not [r for r in roots if (r / top.strip("/")).exists()], top


@contextlib.contextmanager
def shared_mount(path: Path) -> Iterator[Path]:
    """``path`` (a new directory with a ``sub`` dir) made a shared mount of its own, as a
    kubelet's root dir is; every mount below it is gone at the end."""
    (path / "sub").mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True, capture_output=True)
    try:
        subprocess.run(["mount", "--make-shared", str(path)], check=True, capture_output=True)
        yield path
    finally:
        for point in mounts_under(path):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    assert mounts_under(path) == []


def pids_of_pod(uuid: str) -> list[int]:
    """Host processes whose cgroup is the pod's: ``pyrkt/UUID``, or ``PARENT/pyrkt-UUID`` of a
    pod run with ``--cgroup-parent``."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cgroup") as f:
                text = f.read()
                if f"pyrkt/{uuid}" in text or f"/pyrkt-{uuid}" in text:
                    out.append(int(d))
        except OSError:
            continue
    return out


@contextlib.contextmanager
def fetched_image(base: Path, **image: object) -> Iterator[tuple[Cli, str]]:
    """A data dir under ``base`` with a test image (``make_image``'s keywords) fetched: its
    CLI and the image's id; afterwards every pod is collected and no mount is left under ``base``."""
    cli = Cli(base / "data")
    r = cli("fetch", make_image(base / "busybox", **image))
    assert r.code == 0, r
    yield cli, r.out.strip().splitlines()[-1]
    cli.collect_all()
    assert mounts_under(base) == []


@contextlib.contextmanager
def loop_device(backing: Path) -> Iterator[str]:
    """A loop device over the file ``backing`` (a device of the test's own to pass into pods,
    read and written without touching the host's); detached afterwards."""
    dev = subprocess.run(["losetup", "--find", "--show", str(backing)], capture_output=True, text=True,
                         check=True).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "--detach", dev], check=False)
