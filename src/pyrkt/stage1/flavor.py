"""The flavor interface and the registry of flavors by name.

A flavor turns a prepared pod dir into running processes and cleans up after them::

    run(pod_dir, config, lock_fd, *, detach)  start the pod; foreground: wait and return rkt's
                                              exit code; detach: return 0 once apps started
    enter(pod_dir, app, argv)                 run argv inside a running app; its exit code
    stop(pod_dir, *, force)                   TERM (then KILL after a timeout), or KILL
    gc(pod_dir)                               idempotent teardown of whatever the pod left
                                              (mounts, cgroups, netns); safe after SIGKILL

Flavors are modules, imported only when used. ``default`` and ``fly`` are built in; ``image``
runs a stage1 image (rkt's stage1 ABI) that stage0 rendered into the pod dir, so no command
line names it: ``--stage1-name`` naming anything but a built-in flavor names an image.
"""

from __future__ import annotations

import os
import sys

from pyrkt.errors import UsageError
from pyrkt.model import abi

TYPE_CHECKING = False  # the Protocol exists for mypy; typing stays off the run path

FLAVORS = {"default": "pyrkt.stage1.default", "fly": "pyrkt.stage1.fly", "image": "pyrkt.stage1.image"}
BUILT_IN = ("default", "fly")
ALIASES = {"coreos.com/rkt/stage1-coreos": "default", "coreos.com/rkt/stage1-fly": "fly",
           "stage1-fly": "fly", "stage1-coreos": "default", "coreos": "default"}


if TYPE_CHECKING:
    from typing import Protocol

    class Flavor(Protocol):
        name: str

        def run(self, pod_dir: str, config: abi.RuntimeConfig, lock_fd: int, *, detach: bool) -> int: ...

        def enter(self, pod_dir: str, app: str, argv: list[str]) -> int: ...

        def stop(self, pod_dir: str, *, force: bool, timeout: float) -> float: ...

        def gc(self, pod_dir: str) -> None: ...


def canonical(name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in FLAVORS:
        raise UsageError(f"unknown stage1 flavor {name!r} (known: {', '.join(BUILT_IN)})")
    return name


def built_in(name: str) -> str | None:
    """The built-in flavor ``name`` (or one of rkt's names for it) stands for, else None."""
    name = ALIASES.get(name, name)
    return name if name in BUILT_IN else None


def get(name: str) -> Flavor:
    module_name = FLAVORS[canonical(name)]
    __import__(module_name)  # not importlib.import_module: importlib (and warnings) cost the run path
    flavor: Flavor = sys.modules[module_name].FLAVOR  # type: ignore[attr-defined]
    return flavor


def of_pod(pod_dir: str) -> Flavor:
    """The flavor a pod was run with (``default`` when the pod never recorded one)."""
    try:
        with open(os.path.join(pod_dir, abi.FLAVOR)) as f:
            name = f.read().strip() or "default"
    except FileNotFoundError:
        name = "default"
    return get(name)
