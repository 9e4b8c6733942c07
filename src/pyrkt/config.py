"""Global configuration: the data dir, config dirs and security options of one command.

Built once by the CLI from rkt's global flags and passed explicitly downward; nothing below
`cli/` reads flags or the environment for these. Paths are plain strings: ``pathlib`` costs
milliseconds to import and the run/list/status path does without it.
"""

from __future__ import annotations

import os

from pyrkt.errors import UsageError
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
