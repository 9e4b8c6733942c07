"""The regression guard of the start-up diet: `run`, `list` and `status` must not import heavy
modules, neither when their modules load nor while the commands run.

Each check starts a fresh interpreter (what a user's `pyrkt` pays) and reads ``sys.modules``
at the end. The numbers behind the list, measured on the dev machine: dataclasses ~7 ms
(inspect, ast, dis, tokenize) plus ~1 ms per decorated class, typing ~3 ms, shutil ~2 ms
(zlib, bz2, lzma), hashlib ~3.5 ms, platform ~1 ms; the others belong to other commands
(fetch, the API service) and cost more.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pyrkt.pods.pod import Pod

HOT_MODULES = (
    "pyrkt.cli.main", "pyrkt.cli.commands.run", "pyrkt.cli.commands.list_pods",
    "pyrkt.cli.commands.status", "pyrkt.stage0.run", "pyrkt.stage0.prepare", "pyrkt.stage0.manage",
    "pyrkt.stage0.images", "pyrkt.store", "pyrkt.fetch", "pyrkt.stage1.default", "pyrkt.stage1.flavor",
)
HEAVY = frozenset({
    "dataclasses", "inspect", "ast", "http", "urllib.request", "httpx", "tarfile", "hashlib",
    "shutil", "platform", "argparse", "asyncio", "grpc", "google", "tqdm", "rich",  # google: protobuf
    "typing",  # annotations come from `if TYPE_CHECKING:` blocks (TYPE_CHECKING = False)
    # ~10 ms together: pathlib (with re, fnmatch, urllib.parse, ipaddress), json (its fallbacks
    # compile regexes; model.jsonio calls _json directly), enum, sqlite3's wrapper (datetime)
    "pathlib", "re", "json", "enum", "sqlite3", "datetime", "urllib",
    # ~4.5 ms together: ctypes (struct, types, ctypes._endian; the kernel modules use
    # pyrkt.kernel.cdata on _ctypes), functools (collections, operator, reprlib, keyword; _sqlite3
    # loads without it: store.index._preload)
    "ctypes", "types", "struct", "functools", "collections", "operator", "reprlib",
})


def modules_after(code: str, tmp_path: Path) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    out = tmp_path / "modules.json"
    script = (f"{code}\nimport sys\nloaded = sorted(sys.modules)\n"
              f"import json\nopen({str(out)!r}, 'w').write(json.dumps(loaded))\n")
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path,
                   stdout=subprocess.DEVNULL, timeout=60)
    return set(json.loads(out.read_text()))


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m in HEAVY or m.split(".")[0] in HEAVY)


def test_hot_path_modules_import_nothing_heavy(tmp_path: Path) -> None:
    # and what run loads on its way: the store index's SQLite, libc, the stage1 modules pod init runs
    modules = modules_after("import " + ", ".join(HOT_MODULES) + "\nfrom pyrkt.store.index import _sqlite3\n"
                            "_sqlite3()\nfrom pyrkt.kernel import libc, mount\nlibc.libc()\n"
                            "from pyrkt.stage1 import app, appio, execute, foreground, initroot, podinit", tmp_path)
    assert set(HOT_MODULES) <= modules
    assert heavy_in(modules) == []


def test_list_command_imports_nothing_heavy(tmp_path: Path) -> None:
    data = tmp_path / "data"
    Pod.create(data / "pods").unlock()  # an aborted prepare: a pod for list to read
    modules = modules_after(f"from pyrkt.cli.main import main\nmain(['--dir={data}', 'list'])", tmp_path)
    assert "pyrkt.stage0.manage" in modules
    assert heavy_in(modules) == []


def test_status_command_imports_nothing_heavy(tmp_path: Path) -> None:
    data = tmp_path / "data"
    pod = Pod.create(data / "pods")
    pod.unlock()
    modules = modules_after(f"from pyrkt.cli.main import main\nmain(['--dir={data}', 'status', '{pod.uuid}'])",
                            tmp_path)
    assert "pyrkt.pods.info" in modules
    assert heavy_in(modules) == []


# what a run on a CNI network (the default one) imports on top, in the run process and in pod
# init; they run the plugins without subprocess (~7 ms: threading, selectors, signal's enums)
NETWORK_MODULES = ("pyrkt.network.config", "pyrkt.network.setup", "pyrkt.network.cni", "pyrkt.network.netns",
                   "pyrkt.network.teardown")
NETWORK_HEAVY = HEAVY | {"subprocess", "threading", "selectors", "signal"}


def test_default_network_modules_import_nothing_heavy(tmp_path: Path) -> None:
    modules = modules_after("import " + ", ".join(HOT_MODULES + NETWORK_MODULES), tmp_path)
    assert set(NETWORK_MODULES) <= modules
    assert sorted(m for m in modules if m in NETWORK_HEAVY or m.split(".")[0] in NETWORK_HEAVY) == []


def test_the_teardown_interpreter_imports_nothing_heavy(tmp_path: Path) -> None:
    """What a detached pod's init runs as it exits (``pyrkt stop`` waits for it): its imports,
    up to where the teardown starts (here it stops at once: no argv)."""
    modules = modules_after("from pyrkt.network import teardown\nassert teardown.main([]) == 1", tmp_path)
    assert {"pyrkt.network.setup", "pyrkt.kernel.mount"} <= modules
    assert sorted(m for m in modules if m in NETWORK_HEAVY or m.split(".")[0] in NETWORK_HEAVY) == []
