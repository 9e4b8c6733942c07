"""How much one import may write: the ``store`` config kind and the budget an import draws on.

An image's layers are small when compressed and may expand to anything (a gzip of zeros, a
GNU sparse file of a terabyte). ``ImportBudget`` is charged as an import writes: the blobs it
stages, the uncompressed tar stream of each layer as it is read, and the holes of sparse files
(so a file counts at its full apparent size, what any later copy of it would write). Passing
``maxImportBytes`` or eating into the free-space reserve of the store's filesystem stops the
import with an ImageError before the bytes are written. The settings come from
``<config dir>/store.d/*.json``, rkt's config shape::

    {"rktKind": "store", "rktVersion": "v1", "maxImportBytes": 68719476736, "minFreeBytes": 1073741824}
"""

from __future__ import annotations

import os

from pyrkt.errors import ImageError, UsageError
from pyrkt.model import jsonio
from pyrkt.model.values import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import IO

GiB = 1 << 30
MiB = 1 << 20
DEFAULT_MAX_IMPORT_BYTES = 64 * GiB
RESERVE_FRACTION = 20  # default reserve: 1/20 (5 %) of the filesystem, at most 1 GiB
RESERVE_CAP = GiB
CHECK_MIN, CHECK_MAX = MiB, 64 * MiB  # statvfs after this many bytes charged, nearer the reserve sooner
SLOTS = 256  # processes of one import charging at once (the session and its forked unpackers)

STORE_D = "store.d"
_KEYS = {"maxImportBytes": "max_import_bytes", "minFreeBytes": "min_free_bytes"}


class ImportLimits(Value):
    """``max_import_bytes``: what one import may write and expand to in all; ``min_free_bytes``:
    the free space an import leaves on the store's filesystem (None: 5 % of it, at most 1 GiB)."""

    max_import_bytes: int = DEFAULT_MAX_IMPORT_BYTES
    min_free_bytes: int | None = None

    def reserve(self, fs_bytes: int) -> int:
        if self.min_free_bytes is not None:
            return self.min_free_bytes
        return min(fs_bytes // RESERVE_FRACTION, RESERVE_CAP)


def read_import_limits(config_dirs: Iterable[str | os.PathLike[str]]) -> ImportLimits:
    """The ``store`` settings of ``config_dirs`` (system, local, user: a later dir overrides a
    key); one dir setting a key in two files is an error, as rkt's ``paths`` kind."""
    from pyrkt.config import kind_files

    settings: dict[str, int] = {}
    for files in kind_files(config_dirs, STORE_D):
        seen: dict[str, str] = {}
        for path in files:
            for key, value in parse_store_config(_read(path), path).items():
                if key in seen:
                    raise UsageError(f"store config {path!r}: {key} is also set in {seen[key]!r} "
                                     "(one file per setting in a config dir)")
                seen[key] = path
                settings[key] = value
    return ImportLimits(**{_KEYS[k]: v for k, v in settings.items()})


def parse_store_config(raw: bytes, where: str) -> dict[str, int]:
    """The settings of one ``store.d`` file, by their canonical key names. Keys match without
    regard to case, as Go's JSON decoding in rkt does; unknown keys are refused."""
    try:
        data = jsonio.loads(raw)
    except ValueError as e:  # the type only: a parser's message could quote the file
        raise UsageError(f"store config {where!r} is not valid JSON: {type(e).__name__}") from None
    if not isinstance(data, dict):
        raise UsageError(f"store config {where!r} is not a JSON object")
    fields = {jsonio.fold_key(k): (k, v) for k, v in data.items()}
    kind = fields.pop("rktkind", (None, None))[1]
    version = fields.pop("rktversion", (None, None))[1]
    if kind != "store":
        raise UsageError(f"store config {where!r}: rktKind {kind!r} does not belong in {STORE_D} (want store)")
    if version != "v1":
        raise UsageError(f"store config {where!r}: unsupported rktVersion {version!r} of store (want v1)")
    known = {jsonio.fold_key(k): k for k in _KEYS}
    out: dict[str, int] = {}
    for low, (key, value) in fields.items():
        if low not in known:
            raise UsageError(f"store config {where!r}: unknown setting {key!r} (known: {', '.join(_KEYS)})")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UsageError(f"store config {where!r}: {known[low]} must be a number of bytes, not {value!r}")
        out[known[low]] = value
    return out


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(1 << 20)
    except OSError as e:
        raise UsageError(f"store config {path!r}: {e.strerror}") from None


def format_bytes(n: int) -> str:
    """``64 GiB``, ``1.5 MiB``, ``512 bytes``: a limit as a person reads it."""
    for unit, size in (("TiB", 1 << 40), ("GiB", GiB), ("MiB", MiB), ("KiB", 1 << 10)):
        if n >= size:
            text = f"{n / size:.1f}".removesuffix(".0")
            return f"{text} {unit}"
    return f"{n} bytes"


class ImportBudget:
    """The bytes one import has written, shared by the session and the processes it forks.

    Each process adds to its own slot of a shared anonymous mapping and checks the sum of all
    slots, so forked unpackers of one import draw on one budget without a lock. The parent
    takes a slot for a child with ``new_slot`` before forking (the child calls ``use_slot``)
    and folds it back into its own with ``release_slot`` once the child is reaped.
    """

    def __init__(self, limits: ImportLimits, store_dir: str, source: str) -> None:
        import mmap

        self.limits = limits
        self.store_dir = store_dir
        self.source = source
        self._mem = mmap.mmap(-1, 8 * (SLOTS + 1))  # MAP_SHARED | MAP_ANONYMOUS: inherited by children
        self._cells = memoryview(self._mem).cast("q")
        self._cells[0] = 1  # slots in use: 1..n
        self._free: list[int] = []
        self._slot = 1
        self._unchecked = 0  # bytes charged by this process since the last statvfs
        self._check_after = 0  # the first charge looks at the filesystem

    @property
    def used(self) -> int:
        cells = self._cells
        return sum(cells[1:cells[0] + 1])

    def charge(self, n: int, what: str) -> None:
        """Count ``n`` more bytes written (or about to be) for ``what`` ("layer sha256:…")."""
        if n <= 0:
            return
        self._cells[self._slot] += n
        if self.used > self.limits.max_import_bytes:
            raise self.over_limit(what)
        self._unchecked += n
        if self._unchecked >= self._check_after:
            self.check_free(what)

    def check_fits(self, n: int, what: str) -> None:
        """Refuse ahead of writing when ``n`` more bytes would pass the limit (a member's size)."""
        if self.used + n > self.limits.max_import_bytes:
            raise self.over_limit(what)

    def over_limit(self, what: str) -> ImageError:
        what = what.removeprefix(f"{self.source}: ")
        return ImageError(f"image {self.source}: {what} expands past the "
                          f"{format_bytes(self.limits.max_import_bytes)} import limit "
                          f"(store setting maxImportBytes)")

    def check_free(self, what: str) -> None:
        st = os.statvfs(self.store_dir)
        free = st.f_bavail * st.f_frsize
        reserve = self.limits.reserve(st.f_blocks * st.f_frsize)
        if free < reserve:
            what = what.removeprefix(f"{self.source}: ")
            raise ImageError(f"image {self.source}: {what} would leave less than {format_bytes(reserve)} free "
                             f"on the filesystem of {self.store_dir} (store setting minFreeBytes)")
        self._unchecked = 0
        # Half-way (or less, with several processes writing) to the reserve, look again.
        self._check_after = max(CHECK_MIN, min(CHECK_MAX, (free - reserve) // 4))

    # -- slots of forked processes ---------------------------------------------------------

    def new_slot(self) -> int:
        """A slot for a process about to be forked (0: none left, it charges the parent's)."""
        if self._free:
            return self._free.pop()
        n = self._cells[0]
        if n >= SLOTS:
            return 0
        self._cells[n + 1] = 0
        self._cells[0] = n + 1
        return n + 1

    def use_slot(self, slot: int) -> None:
        """In the forked child: charge ``slot`` from now on."""
        if slot:
            self._slot = slot

    def release_slot(self, slot: int) -> None:
        """In the parent, once the child is gone: keep its bytes, free its slot."""
        if slot:
            self._cells[1] += self._cells[slot]
            self._cells[slot] = 0
            self._free.append(slot)


class ChargedStream:
    """A stream whose bytes are charged to a budget as they are read (a layer's tar stream) or
    before they are written (a tar an import makes)."""

    def __init__(self, raw: IO[bytes], budget: ImportBudget, what: str) -> None:
        self.raw = raw
        self.budget = budget
        self.what = what

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.budget.charge(len(data), self.what)
        return data

    def write(self, data: bytes) -> int:
        self.budget.charge(len(data), self.what)
        return self.raw.write(data)
