"""Global configuration: the data dir, config dirs and security options of one command.

Built once by the CLI from rkt's global flags and passed explicitly downward; nothing below
`cli/` reads flags or the environment for these.
"""

from __future__ import annotations

from pathlib import Path

from pyrkt.errors import UsageError
from pyrkt.model.values import Value

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
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    local_config: Path = Path(DEFAULT_LOCAL_CONFIG)
    system_config: Path = Path(DEFAULT_SYSTEM_CONFIG)
    user_config: Path | None = None
    debug: bool = False
    insecure: frozenset[str] = frozenset()
    trust_keys_from_https: bool = False

    @property
    def pods_dir(self) -> Path:
        return self.data_dir / "pods"

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "store"

    @property
    def tmp_dir(self) -> Path:
        return self.data_dir / "tmp"

    @property
    def locks_dir(self) -> Path:
        return self.data_dir / "locks"

    def config_dirs(self) -> list[Path]:
        """Config dirs in override order: system, local, user (later wins), as rkt."""
        dirs = [self.system_config, self.local_config]
        if self.user_config is not None:
            dirs.append(self.user_config)
        return dirs

    def is_insecure(self, option: str) -> bool:
        return option in self.insecure
