"""The store's temp area and the store-wide lock that makes cleaning it safe.

Every import stages its blobs and unpacked layers in its own dir under ``<store>/tmp`` and holds
a *shared* flock on ``<store>/lock`` for as long as it runs; removal and garbage collection take
the lock *exclusively*. So whoever gets the exclusive lock knows no import is running, and
everything left in ``tmp`` belongs to a process that died (SIGKILL, power loss) and can go.
"""

from __future__ import annotations

import os

from pyrkt.kernel.lock import FileLock

__all__ = ["clean_tmp", "new_session_dir", "remove_tree", "store_lock"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path


def remove_tree(path: str | os.PathLike[str]) -> None:
    """The store's one remover (``kernel.trees``: any depth, through 0555 dirs), imported when
    used: `run` takes the store lock but removes nothing."""
    from pyrkt.kernel.trees import remove_tree as remove

    remove(path)


def store_lock(store_dir: str | os.PathLike[str]) -> FileLock:
    return FileLock.open(os.path.join(store_dir, "lock"), create=True)


def new_session_dir(tmp_dir: Path) -> Path:
    import tempfile
    from pathlib import Path

    tmp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"import-{os.getpid()}-", dir=tmp_dir))


def clean_tmp(tmp_dir: Path) -> int:
    """Remove everything in ``tmp_dir``; the caller holds the store lock exclusively."""
    removed = 0
    try:
        names = os.listdir(tmp_dir)
    except FileNotFoundError:
        return 0
    for name in names:
        remove_tree(os.path.join(tmp_dir, name))
        removed += 1
    return removed
