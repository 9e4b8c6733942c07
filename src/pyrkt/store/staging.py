"""The store's temp area and the store-wide lock that makes cleaning it safe.

Every import stages its blobs and unpacked layers in its own dir under ``<store>/tmp`` and holds
a *shared* flock on ``<store>/lock`` for as long as it runs; removal and garbage collection take
the lock *exclusively*. So whoever gets the exclusive lock knows no import is running, and
everything left in ``tmp`` belongs to a process that died (SIGKILL, power loss) and can go.
"""

from __future__ import annotations

import os
import stat

from pyrkt.kernel.lock import FileLock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path


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


def remove_tree(path: str | os.PathLike[str]) -> None:
    """``rm -rf path``, also through dirs an unpacked layer made read-only (0555) for us."""
    import shutil

    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    if os.geteuid() != 0:
        # Without CAP_DAC_OVERRIDE a 0555 dir from a layer blocks unlinking its entries.
        os.chmod(path, 0o700)
        for dirpath, dirnames, _ in os.walk(path):
            for d in dirnames:
                p = os.path.join(dirpath, d)
                if not os.path.islink(p):
                    os.chmod(p, 0o700)
    shutil.rmtree(path)
