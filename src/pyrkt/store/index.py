"""The SQLite index of the store (``<store>/index.db``, WAL): which images exist and what they use.

Schema (``PRAGMA user_version`` = 1)::

    images                                   one row per image, keyed by its id
      id TEXT PK                             "sha256:<hex>" of the image config
      name, version TEXT                     display name: the most recently imported ref
      labels TEXT                            JSON [[name, value], ...] (version, os, arch, ...)
      image TEXT                             JSON of pyrkt.model.image.Image (what pods run)
      manifest_digest, manifest_media_type   the manifest as stored in blobs/ (cat-manifest)
      size INTEGER                           bytes: its blobs + its unpacked layers
      import_time, last_used INTEGER         ns since the epoch
      source TEXT                            what was fetched: "oci:/dir:tag", "docker://..."
    refs (name, version) PK -> image_id      what "name:tag" resolves to (moves on re-import)
    image_blobs (image_id, digest) PK, role  manifest | config | layer blobs an image holds
    image_layers (image_id, position) PK     position 0 = bottom; diff_id, blob_digest,
      diff_id, blob_digest, media_type, size   media_type and unpacked size of each layer

``refs``, ``image_blobs`` and ``image_layers`` cascade on image delete. Blobs and layer dirs that
no image row mentions any more are garbage (``Store.remove``/``collect`` delete them under
the store's exclusive lock). Every write is one ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import os
import time

from pyrkt.errors import PyrktError
from pyrkt.model import jsonio
from pyrkt.model.values import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _sqlite3 import Connection
    from collections.abc import Iterable
    from typing import Any

# ``sqlite3`` is ``_sqlite3`` plus datetime adapters (which import ``datetime``) and the DB-API
# names; the index stores no dates, so it uses the C module directly: 2-3 ms less per command.


def _sqlite3() -> Any:
    """The SQLite module: CPython's private ``_sqlite3``, else the public ``sqlite3`` (an
    interpreter without the private one; tests/unit/test_private_modules.py says which)."""
    _preload()
    try:
        import _sqlite3
    except ImportError:
        import sqlite3

        return sqlite3
    return _sqlite3


class _LruCacheOnly:
    """What ``_sqlite3`` takes of ``functools`` as it loads: ``lru_cache``, which each connection
    wraps itself in as its statement cache. The real ``functools`` module costs the run path
    ~2.5 ms (it imports ``collections``, ``operator``, ``reprlib``... for the rest of it); this
    gives the same C cache (``_functools._lru_cache_wrapper``, what ``functools.lru_cache``
    builds) without them. Stands in ``sys.modules`` only while ``_sqlite3`` loads (``_preload``)."""

    __name__ = "functools"

    @staticmethod
    def lru_cache(maxsize: int | None = 128, typed: bool = False) -> Any:
        from _functools import _lru_cache_wrapper  # type: ignore[import-not-found]

        # the last argument makes cache_info()'s tuple, which sqlite never asks for
        return lambda user_function: _lru_cache_wrapper(user_function, maxsize, typed, tuple)


def _preload() -> None:
    """Load ``_sqlite3`` with ``_LruCacheOnly`` as ``functools``, unless ``functools`` is loaded
    already (then there is nothing to save) or ``_functools`` is missing; the real module is
    back (or, not loaded, still importable) as soon as ``_sqlite3`` is."""
    import sys

    if "functools" in sys.modules or "_sqlite3" in sys.modules:
        return
    try:
        import _functools  # type: ignore[import-not-found]

        _functools._lru_cache_wrapper  # noqa: B018
    except (ImportError, AttributeError):
        return
    sys.modules["functools"] = _LruCacheOnly()  # type: ignore[assignment]
    try:
        import _sqlite3  # noqa: F401
    except Exception:  # noqa: BLE001  missing, or (another CPython) asking more of functools:
        pass  # _sqlite3() imports it again with the real functools, or falls back to sqlite3
    finally:
        del sys.modules["functools"]


SCHEMA_VERSION = 1
LAST_USED_RESOLUTION = 1_000_000_000  # ns: `image list` shows seconds, `image gc` counts in hours
SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    labels TEXT NOT NULL,
    image TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    manifest_media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    import_time INTEGER NOT NULL,
    last_used INTEGER NOT NULL,
    source TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refs (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    PRIMARY KEY (name, version)
);
CREATE INDEX IF NOT EXISTS refs_image ON refs(image_id);
CREATE TABLE IF NOT EXISTS image_blobs (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    role TEXT NOT NULL,
    PRIMARY KEY (image_id, digest)
);
CREATE INDEX IF NOT EXISTS image_blobs_digest ON image_blobs(digest);
CREATE TABLE IF NOT EXISTS image_layers (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    diff_id TEXT NOT NULL,
    blob_digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (image_id, position)
);
CREATE INDEX IF NOT EXISTS image_layers_diff ON image_layers(diff_id);
"""

_RECORD_COLUMNS = ("id, name, version, labels, manifest_digest, manifest_media_type, size, "
                   "import_time, last_used, source")


class ImageRecord(Value):
    """One image as ``image list`` shows it (the Image itself is loaded only when needed)."""

    id: str
    name: str
    version: str
    labels: tuple[tuple[str, str], ...]
    manifest_digest: str
    manifest_media_type: str
    size: int
    import_time: int  # ns
    last_used: int  # ns
    source: str

    @property
    def display_name(self) -> str:
        return f"{self.name}:{self.version}" if self.version else self.name


class LayerRow(Value):
    diff_id: str
    blob_digest: str
    media_type: str
    size: int


def _record(row: tuple[Any, ...]) -> ImageRecord:
    return ImageRecord(
        id=row[0], name=row[1], version=row[2],
        labels=tuple((k, v) for k, v in jsonio.loads(row[3])),
        manifest_digest=row[4], manifest_media_type=row[5], size=row[6],
        import_time=row[7], last_used=row[8], source=row[9],
    )


class Index:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._conn: Connection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def connect(self, *, create: bool) -> Connection | None:
        """The connection, opened on first use; None when the db does not exist and ``create`` is false."""
        if self._conn is not None:
            return self._conn
        if not create:
            try:
                os.stat(self.path)
            except (FileNotFoundError, NotADirectoryError):
                return None
            except PermissionError:  # not an empty store: one this user may not read
                raise PyrktError(f"cannot read the image store in {os.path.dirname(self.path)}: permission denied "
                                 "(run as root)") from None
        sqlite3 = _sqlite3()

        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        try:
            if not create and os.statvfs(os.path.dirname(self.path)).f_flag & os.ST_RDONLY:
                # WAL readers must write the -shm file; on a read-only mount nobody can write
                # the db either, so it is read as immutable (no locks, no -shm)
                uri = "file:" + self.path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")
                conn: Connection = sqlite3.connect(uri + "?immutable=1", uri=True, isolation_level=None)
                self._conn = conn
                return conn
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                conn.execute("PRAGMA journal_mode=WAL")
                with _transaction(conn):
                    if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                        for stmt in filter(None, (s.strip() for s in SCHEMA.split(";"))):
                            conn.execute(stmt)
                        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as e:
            raise PyrktError(f"image store index {self.path}: {e}") from None
        self._conn = conn
        return conn

    # -- reads -----------------------------------------------------------------------------

    def _query(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        sqlite3 = _sqlite3()

        conn = self.connect(create=False)
        if conn is None:
            return []
        try:
            return conn.execute(sql, tuple(args)).fetchall()
        except sqlite3.Error as e:
            raise PyrktError(f"image store index {self.path}: {e}") from None

    def record(self, image_id: str) -> ImageRecord | None:
        rows = self._query(f"SELECT {_RECORD_COLUMNS} FROM images WHERE id=?", (image_id,))
        return _record(rows[0]) if rows else None

    def records(self) -> list[ImageRecord]:
        return [_record(r) for r in self._query(f"SELECT {_RECORD_COLUMNS} FROM images ORDER BY import_time")]

    def image_json(self, image_id: str) -> dict[str, Any] | None:
        rows = self._query("SELECT image FROM images WHERE id=?", (image_id,))
        return jsonio.loads(rows[0][0]) if rows else None

    def ids_with_prefix(self, prefix: str) -> list[str]:
        rows = self._query("SELECT id FROM images WHERE substr(id, 1, ?)=? ORDER BY id", (len(prefix), prefix))
        return [r[0] for r in rows]

    def by_ref(self, name: str, version: str) -> str | None:
        rows = self._query("SELECT image_id FROM refs WHERE name=? AND version=?", (name, version))
        return rows[0][0] if rows else None

    def refs_named(self, name: str) -> list[tuple[str, str, tuple[tuple[str, str], ...], int]]:
        """Every ref of ``name``: (image id, the ref's version, the image's labels, import time)."""
        rows = self._query(
            "SELECT images.id, refs.version, images.labels, images.import_time FROM refs "
            "JOIN images ON refs.image_id=images.id WHERE refs.name=?", (name,))
        return [(r[0], r[1], tuple((k, v) for k, v in jsonio.loads(r[2])), r[3]) for r in rows]

    def refs_of(self, image_id: str) -> list[tuple[str, str]]:
        """Every (name, version) that points at the image, sorted (the CRI's repo tags)."""
        rows = self._query("SELECT name, version FROM refs WHERE image_id=? ORDER BY name, version", (image_id,))
        return [(r[0], r[1]) for r in rows]

    def by_manifest(self, name: str, manifest_digest: str) -> str | None:
        rows = self._query(
            "SELECT images.id FROM images JOIN refs ON refs.image_id=images.id "
            "WHERE refs.name=? AND images.manifest_digest=? ORDER BY images.import_time DESC LIMIT 1",
            (name, manifest_digest))
        return rows[0][0] if rows else None

    def layers(self, image_id: str) -> list[LayerRow]:
        rows = self._query("SELECT diff_id, blob_digest, media_type, size FROM image_layers "
                           "WHERE image_id=? ORDER BY position", (image_id,))
        return [LayerRow(*r) for r in rows]

    def blobs(self, image_id: str) -> list[tuple[str, str]]:
        """(digest, role) of every blob the image holds; role is manifest, config or layer."""
        return [(r[0], r[1]) for r in self._query("SELECT digest, role FROM image_blobs WHERE image_id=?",
                                                  (image_id,))]

    def layer_size(self, diff_id: str) -> int | None:
        rows = self._query("SELECT size FROM image_layers WHERE diff_id=? LIMIT 1", (diff_id,))
        return int(rows[0][0]) if rows else None

    def referenced_blobs(self) -> set[str]:
        return {r[0] for r in self._query("SELECT DISTINCT digest FROM image_blobs")}

    def referenced_layers(self) -> set[str]:
        return {r[0] for r in self._query("SELECT DISTINCT diff_id FROM image_layers")}

    # -- writes ----------------------------------------------------------------------------

    def add(self, rec: ImageRecord, image: dict[str, Any], blobs: Iterable[tuple[str, str]],
            layers: list[LayerRow]) -> ImageRecord:
        """Insert the image, or refresh it and add its ref when it is already there.

        Returns the stored record (an existing image keeps its import time).
        """
        conn = self.connect(create=True)
        assert conn is not None
        with _transaction(conn):
            old = conn.execute("SELECT import_time FROM images WHERE id=?", (rec.id,)).fetchone()
            import_time = old[0] if old else rec.import_time
            conn.execute(
                "INSERT INTO images (id, name, version, labels, image, manifest_digest, manifest_media_type, "
                "size, import_time, last_used, source) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(id) DO UPDATE SET name=excluded.name, version=excluded.version, "
                "labels=excluded.labels, image=excluded.image, manifest_digest=excluded.manifest_digest, "
                "manifest_media_type=excluded.manifest_media_type, size=excluded.size, "
                "last_used=excluded.last_used, source=excluded.source",
                (rec.id, rec.name, rec.version, jsonio.dumps([list(kv) for kv in rec.labels]),
                 jsonio.dumps(image, separators=(",", ":")), rec.manifest_digest, rec.manifest_media_type,
                 rec.size, import_time, rec.last_used, rec.source))
            conn.execute("INSERT OR REPLACE INTO refs (name, version, image_id) VALUES (?,?,?)",
                         (rec.name, rec.version, rec.id))
            conn.execute("DELETE FROM image_blobs WHERE image_id=?", (rec.id,))
            conn.executemany("INSERT OR IGNORE INTO image_blobs (image_id, digest, role) VALUES (?,?,?)",
                             [(rec.id, d, role) for d, role in blobs])
            conn.execute("DELETE FROM image_layers WHERE image_id=?", (rec.id,))
            conn.executemany(
                "INSERT INTO image_layers (image_id, position, diff_id, blob_digest, media_type, size) "
                "VALUES (?,?,?,?,?,?)",
                [(rec.id, i, ly.diff_id, ly.blob_digest, ly.media_type, ly.size) for i, ly in enumerate(layers)])
        stored = self.record(rec.id)
        assert stored is not None
        return stored

    def touch(self, image_id: str, when_ns: int | None = None) -> None:
        """The image's last use is now (``when_ns``), to within ``LAST_USED_RESOLUTION``: a time
        that close to the one recorded writes nothing. Each write adds a page to the WAL, which
        every command's first connection reads whole (pyrkt's commands end without closing it),
        so runs of one image in a loop would grow what each run reads up to the checkpoint."""
        conn = self.connect(create=False)
        if conn is None:
            return
        when = when_ns or time.time_ns()
        with _transaction(conn):
            conn.execute("UPDATE images SET last_used=?1 WHERE id=?2 AND abs(last_used - ?1) >= ?3",
                         (when, image_id, LAST_USED_RESOLUTION))

    def remove(self, image_id: str) -> tuple[set[str], set[str]]:
        """Delete the image; returns the blobs and layers (diff ids) no other image uses now."""
        conn = self.connect(create=False)
        if conn is None:
            return set(), set()
        with _transaction(conn):
            blobs = {r[0] for r in conn.execute("SELECT digest FROM image_blobs WHERE image_id=?", (image_id,))}
            layers = {r[0] for r in conn.execute("SELECT diff_id FROM image_layers WHERE image_id=?", (image_id,))}
            conn.execute("DELETE FROM images WHERE id=?", (image_id,))
            still_blobs = {r[0] for r in conn.execute("SELECT DISTINCT digest FROM image_blobs")}
            still_layers = {r[0] for r in conn.execute("SELECT DISTINCT diff_id FROM image_layers")}
        return blobs - still_blobs, layers - still_layers


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any exception); SQLite errors
    (a full disk, a corrupt file, a lock held past the timeout) become PyrktErrors."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        sqlite3 = _sqlite3()

        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise PyrktError(f"image store index: {e}") from None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        sqlite3 = _sqlite3()

        try:
            self.conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")
        except sqlite3.Error as e:
            raise PyrktError(f"image store index: {e}") from None
        if isinstance(exc, sqlite3.Error):
            raise PyrktError(f"image store index: {exc}") from None


def now_ns() -> int:
    return time.time_ns()

