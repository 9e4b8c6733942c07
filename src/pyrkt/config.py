"""Global configuration: the data dir, config dirs (``ConfigDirs``) and security options of one
command, and rkt's configuration files in those dirs.

Built once by the CLI from rkt's global flags and passed explicitly downward; nothing below
`cli/` reads flags or the environment for these. Paths are plain strings: ``pathlib`` costs
milliseconds to import and the run/list/status path does without it.

rkt's files are ``<config dir>/<kind>.d/*.json``, each with ``rktKind`` and ``rktVersion`` (read
here: ``kind_files``, ``read_kind``), in the system, local and user dirs, a later dir overriding
an earlier one. This module reads the ``paths`` kind (``paths.d``: the data dir when ``--dir``
is not given) and the ``stage1`` kind (``stage1.d``: the default stage1); ``auth``/``dockerAuth``
are read by fetch/auth.py and pyrkt's own ``store`` kind by store/limits.py.
"""

from __future__ import annotations

import os

from pyrkt.errors import PyrktError, UsageError
from pyrkt.model import jsonio
from pyrkt.model.values import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path
    from typing import Any

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


class ConfigDirs(Value):
    """rkt's config dirs: ``system`` (the vendor's defaults), ``local`` (the admin's; ``pyrkt
    trust`` stores keys there) and ``user`` (optional). Where they say different things, a
    later one wins: user over local over system."""

    system: str = DEFAULT_SYSTEM_CONFIG
    local: str = DEFAULT_LOCAL_CONFIG
    user: str | None = None

    def names(self) -> list[str]:
        """The dirs in override order: system, local, then user if there is one."""
        return [self.system, self.local] if self.user is None else [self.system, self.local, self.user]

    def paths(self) -> list[Path]:
        """``names`` as Paths, for the fetchers and the networks (off the run path)."""
        from pathlib import Path

        return [Path(d) for d in self.names()]


# -- rkt's configuration files -----------------------------------------------------------------

PATHS_D = "paths.d"
STAGE1_D = "stage1.d"
STAGE1_SCHEMES = ("docker", "file", "http", "https")  # rkt's allowed stage1 location URLs


def kind_files(dirs: Iterable[str | os.PathLike[str]], subdir: str) -> list[list[str]]:
    """The config files of ``subdir`` (``auth.d``…) in each of ``dirs`` (config dirs, in
    override order: ``ConfigDirs.names()``):
    per dir, its ``*.json`` files by name. As rkt, nothing else counts: not files with other
    names (notes beside the configuration), not what is in subdirectories."""
    import stat

    out = []
    for d in dirs:
        path = os.path.join(d, subdir)
        try:
            names = sorted(n for n in os.listdir(path) if n.endswith(".json"))
        except FileNotFoundError:
            names = []
        except NotADirectoryError:  # as rkt: a config dir (or its kind dir) that is a file is an error
            where = os.fspath(d) if os.path.exists(d) and not os.path.isdir(d) else path
            raise UsageError(f"config dir {where!r} is not a directory") from None
        except OSError as e:
            raise UsageError(f"config dir {path!r}: {e.strerror}") from None
        files = []
        for n in names:
            try:
                if stat.S_ISREG(os.stat(os.path.join(path, n)).st_mode):
                    files.append(os.path.join(path, n))
            except OSError:
                continue  # a dangling link: there is no file to read
        out.append(files)
    return out


def json_error_place(e: ValueError) -> str:
    """What is wrong with a config file that is not JSON, and where, without quoting it (a
    parser's whole message could quote a secret): ``Expecting value at line 3 column 9``."""
    from json import JSONDecodeError

    if isinstance(e, JSONDecodeError):
        return f"{e.msg} at line {e.lineno} column {e.colno}"
    if isinstance(e, UnicodeDecodeError):
        return f"byte {e.start} is not UTF-8 text"
    return str(e) if isinstance(e, jsonio.TooDeep) else type(e).__name__


def read_kind(path: str, kinds: tuple[str, ...], *, what: str = "config file") -> tuple[str, dict[str, Any]]:
    """(rktKind, document) of the config file ``path``, which must be one of ``kinds`` (the
    kinds of its directory) at rktVersion v1. Keys are read as rkt reads them, without regard
    to case (``field``); ``what`` names the file in errors ("credentials file" keeps it
    apart from those of secrets)."""
    where = f"{what} {path!r}"
    try:
        with open(path, "rb") as f:
            data = jsonio.loads(f.read(1 << 20))
    except OSError as e:
        raise UsageError(f"{where}: {e.strerror}") from None
    except ValueError as e:
        raise UsageError(f"{where} is not readable JSON: {json_error_place(e)}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{where} is not a JSON object")
    kind, version = jsonio.field(data, "rktKind"), jsonio.field(data, "rktVersion")
    subdir = os.path.basename(os.path.dirname(path))
    if not kind:
        raise UsageError(f"{where}: no rktKind")
    if not version:
        raise UsageError(f"{where}: no rktVersion")
    if kind not in kinds:
        raise UsageError(f"{where}: rktKind {kind!r} does not belong in {subdir} (want {' or '.join(kinds)})")
    if version != "v1":
        raise UsageError(f"{where}: unsupported rktVersion {version!r} of {kind} (want v1)")
    return kind, data


def _settings(path: str, data: dict[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    """The non-empty string settings ``names`` of one file; other keys are refused."""
    extra = jsonio.unknown_keys(data, ("rktKind", "rktVersion") + names)
    if extra:
        raise UsageError(f"config file {path!r}: unknown setting {extra[0]!r} (known: {', '.join(names)})")
    out = {}
    for name in names:
        value = jsonio.field(data, name, "")
        if not isinstance(value, str):
            raise UsageError(f"config file {path!r}: {name} must be a string, not {value!r}")
        if value:
            out[name] = value
    return out


class PathsConfig(Value):
    """rkt's ``paths`` kind: the data dir and the dir of stage1 images, and the files that
    set them ("" where none did)."""

    data: str = ""
    stage1_images: str = ""
    data_file: str = ""
    stage1_images_file: str = ""


def read_paths(dirs: ConfigDirs) -> PathsConfig:
    """The merged ``paths.d`` of ``dirs``: each setting from the last dir that sets it; one dir
    setting it in two files is an error, as is a relative path (as rkt)."""
    found: dict[str, tuple[str, str]] = {}
    for files in kind_files(dirs.names(), PATHS_D):
        seen: dict[str, str] = {}
        for path in files:
            _, doc = read_kind(path, ("paths",))
            for name, value in _settings(path, doc, ("data", "stage1-images")).items():
                if name in seen:
                    raise UsageError(f"config file {path!r}: {name} is also set in {seen[name]!r} "
                                     "(one file per setting in a config dir)")
                if not os.path.isabs(value):
                    raise UsageError(f"config file {path!r}: {name} must be an absolute path, not {value!r}")
                seen[name] = path
                found[name] = (value, path)
    data, data_file = found.get("data", ("", ""))
    images, images_file = found.get("stage1-images", ("", ""))
    return PathsConfig(data, images, data_file, images_file)


class Stage1Config(Value):
    """rkt's ``stage1`` kind: the default stage1 image's ``name`` and ``version`` (set together)
    and ``location``, and the file each came from ("" where none did)."""

    name: str = ""
    version: str = ""
    location: str = ""
    name_file: str = ""
    location_file: str = ""


def read_stage1(dirs: ConfigDirs) -> Stage1Config:
    """The merged ``stage1.d`` of ``dirs``: name+version from the last dir that sets them,
    location likewise; one dir setting either in two files is an error (as rkt)."""
    name = version = location = name_file = location_file = ""
    for files in kind_files(dirs.names(), STAGE1_D):
        seen: dict[str, str] = {}
        for path in files:
            _, doc = read_kind(path, ("stage1",))
            got = _settings(path, doc, ("name", "version", "location"))
            if ("name" in got) != ("version" in got):
                have, missing = ("name", "version") if "name" in got else ("version", "name")
                raise UsageError(f"config file {path!r}: the default stage1 image's {have} is set, its {missing} is not")
            if "location" in got:
                check_stage1_location(got["location"], path)
            for key in ("name", "location"):
                if key in got and key in seen:
                    raise UsageError(f"config file {path!r}: the default stage1 image's {key} is also set in "
                                     f"{seen[key]!r} (one file per setting in a config dir)")
                if key in got:
                    seen[key] = path
            if "name" in got:
                name, version, name_file = got["name"], got["version"], path
            if "location" in got:
                location, location_file = got["location"], path
    return Stage1Config(name, version, location, name_file, location_file)


def check_stage1_location(location: str, path: str) -> None:
    """An absolute path or a URL of one of rkt's schemes (file, http, https, docker)."""
    if os.path.isabs(location):
        return
    import re

    m = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):", location)
    scheme = m.group(1) if m else ""
    if not scheme:
        raise UsageError(f"config file {path!r}: the default stage1 image's location {location!r} is neither "
                         "an absolute path nor a URL")
    if scheme.lower() not in STAGE1_SCHEMES:
        raise UsageError(f"config file {path!r}: the default stage1 image's location has scheme {scheme!r} "
                         f"(want {', '.join(STAGE1_SCHEMES)})")


def data_dir_for(dir_flag: str, dirs: ConfigDirs) -> tuple[str, str]:
    """(data dir, where it came from) as rkt decides it: ``--dir`` if given, else the ``data``
    of ``paths.d``, else the default."""
    if dir_flag:
        return check_data_dir(dir_flag), "--dir"
    paths = read_paths(dirs)
    if paths.data:
        return check_data_dir(paths.data), paths.data_file
    return check_data_dir(DEFAULT_DATA_DIR), "default"


class Config(Value):
    data_dir: str = DEFAULT_DATA_DIR
    dirs: ConfigDirs = ConfigDirs()
    debug: bool = False
    insecure: frozenset[str] = frozenset()
    trust_keys_from_https: bool = False
    data_dir_source: str = "default"  # "--dir", the paths.d file that set it, or "default"

    def stage1_default(self) -> Stage1Config:
        """The default stage1 the ``stage1.d`` files name, read when asked (as rkt reads them
        only when it chooses a stage1, so a bad file fails run and prepare, not list)."""
        return read_stage1(self.dirs)

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

    def is_insecure(self, option: str) -> bool:
        return option in self.insecure
