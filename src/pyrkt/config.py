"""Global configuration: the data dir, config dirs and security options of one command.

Built once by the CLI from rkt's global flags and passed explicitly downward; nothing below
`cli/` reads flags or the environment for these. Paths are plain strings: ``pathlib`` costs
milliseconds to import and the run/list/status path does without it.
"""

from __future__ import annotations

import os

from pyrkt.errors import PyrktError, UsageError
from pyrkt.model.values import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

DEFAULT_DATA_DIR = "/var/lib/pyrkt"
DEFAULT_LOCAL_CONFIG = "/etc/pyrkt"
DEFAULT_SYSTEM_CONFIG = "/usr/lib/pyrkt"

# rkt's --insecure-options vocabulary (rkt/flag/secflags.go), with its two groups.
INSECURE_FETCH = frozenset({"image", "tls", "http", "pubkey"})
INSECURE_RUN = frozenset({"capabilities", "paths", "seccomp"})
INSECURE_KNOWN = INSECURE_FETCH | INSECURE_RUN | {"ondisk"}


def parse_insecure_options(text: str) -> frozenset[str]:
    """``"image,tls"`` -> {"image", "tls"}; the groups all-fetch, all-run and all expand."""
    out: set[str] = set()
    for word in (w.strip().lower() for w in text.split(",")):
        if word in ("", "none"):
            continue
        if word == "all-fetch":
            out |= INSECURE_FETCH
        elif word == "all-run":
            out |= INSECURE_RUN
        elif word == "all":
            out |= INSECURE_FETCH | INSECURE_RUN
        elif word in INSECURE_KNOWN:
            out.add(word)
        else:
            raise UsageError(f"unknown insecure option {word!r} (known: none, {', '.join(sorted(INSECURE_KNOWN))}, all-fetch, all-run, all)")
    return frozenset(out)


def _nearest_existing(path: str) -> tuple[str, os.stat_result]:
    """``path`` or its closest ancestor that exists, with its stat."""
    while True:
        try:
            return path, os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            parent = os.path.dirname(path)
            if parent == path:
                raise
            path = parent


def check_data_dir(path: str) -> str:
    """``path`` (absolute) if it is, or can become, pyrkt's data directory: a directory, or
    missing below one. ``--dir`` naming a file is a UsageError, not a traceback later on."""
    import stat

    path = os.path.abspath(path)
    try:
        found, st = _nearest_existing(path)
    except OSError:  # unreadable or unreachable: whatever uses it next says how
        return path
    if not stat.S_ISDIR(st.st_mode):
        where = "" if found == path else f" ({found} is not a directory)"
        raise UsageError(f"data directory {path} is not a directory{where}")
    return path


def check_writable(path: str) -> None:
    """PyrktError unless pyrkt can write the data directory ``path`` (or create it): a
    read-only mount or a directory root may not write is reported before any work starts."""
    import errno

    try:
        found, _ = _nearest_existing(path)
    except OSError:
        return
    if os.statvfs(found).f_flag & os.ST_RDONLY:
        reason = os.strerror(errno.EROFS)
    elif not os.access(found, os.W_OK | os.X_OK):
        reason = os.strerror(errno.EACCES)
    else:
        return
    where = "" if found == path else f" (at {found})"
    raise PyrktError(f"data directory {path} is not writable: {reason.lower()}{where}")


class Config(Value):
    data_dir: str = DEFAULT_DATA_DIR
    local_config: str = DEFAULT_LOCAL_CONFIG
    system_config: str = DEFAULT_SYSTEM_CONFIG
    user_config: str | None = None
    debug: bool = False
    insecure: frozenset[str] = frozenset()
    trust_keys_from_https: bool = False

    @property
    def pods_dir(self) -> str:
        return os.path.join(self.data_dir, "pods")

    @property
    def store_dir(self) -> str:
        return os.path.join(self.data_dir, "store")

    @property
    def tmp_dir(self) -> str:
        return os.path.join(self.data_dir, "tmp")

    @property
    def locks_dir(self) -> str:
        return os.path.join(self.data_dir, "locks")

    @property
    def cache_dir(self) -> str:
        return os.path.join(self.data_dir, "cache")

    def config_dir_names(self) -> list[str]:
        """Config dirs in override order: system, local, user (later wins), as rkt."""
        dirs = [self.system_config, self.local_config]
        if self.user_config is not None:
            dirs.append(self.user_config)
        return dirs

    def config_dirs(self) -> list[Path]:
        """``config_dir_names`` as Paths, for the fetchers (off the run path)."""
        from pathlib import Path

        return [Path(d) for d in self.config_dir_names()]

    def is_insecure(self, option: str) -> bool:
        return option in self.insecure
