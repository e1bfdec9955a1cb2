"""Account and container databases: one SQLite file each, merged newest-wins.

A container database lists its objects (name, timestamp, size, content type,
ETag, deleted); an account database lists its containers with their stats.
Both keep metadata with a timestamp per key and the put/delete timestamps of
the database itself. Every change is a merge where the newer timestamp wins
(row by row, key by key), so replicating a database is merging it into its
peers; deleted rows stay as tombstones until ``reclaim`` drops old ones.

Rows are replaced (DELETE + INSERT), never updated, so each change takes a
new, larger ROWID (AUTOINCREMENT): a replica remembers per peer database the
highest ROWID it has pushed (the ``sync`` table, as Swift's sync points) and
the next pass pushes only newer rows. Triggers keep the counts and bytes of
live rows in the ``info`` row, so stats cost nothing to read.

Connections (WAL, ``synchronous=NORMAL``) are cached per file, a few dozen at
most, each used by one thread at a time under its own lock: opening one per
call would parse the schema and, on close, checkpoint and delete the WAL
every time. A cached connection is only used while its file is still the
same inode, so a database replaced by replication or moved to quarantine is
never served from a stale handle.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import quote

from onestack.object_store.node import AccountRow, ContainerRow, DbInfo

BUSY_TIMEOUT = 30.0
CACHED_CONNECTIONS = 64
BATCH = 1000  # rows per transaction when merging

_COMMON = """
CREATE TABLE info (
    kind TEXT NOT NULL, account TEXT NOT NULL, container TEXT,
    id TEXT NOT NULL, created_at TEXT NOT NULL,
    put_timestamp TEXT NOT NULL, delete_timestamp TEXT NOT NULL,
    object_count INTEGER NOT NULL DEFAULT 0, bytes_used INTEGER NOT NULL DEFAULT 0,
    container_count INTEGER NOT NULL DEFAULT 0);
CREATE TABLE metadata (key TEXT PRIMARY KEY COLLATE NOCASE, value TEXT NOT NULL,
                       timestamp TEXT NOT NULL);
CREATE TABLE sync (remote_id TEXT PRIMARY KEY, point INTEGER NOT NULL);
"""

_CONTAINER = """
CREATE TABLE objects (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,
    timestamp TEXT NOT NULL, size INTEGER NOT NULL, content_type TEXT NOT NULL,
    etag TEXT NOT NULL, deleted INTEGER NOT NULL);
CREATE TRIGGER objects_insert AFTER INSERT ON objects BEGIN
    UPDATE info SET object_count = object_count + 1 - new.deleted,
                    bytes_used = bytes_used + (1 - new.deleted) * new.size; END;
CREATE TRIGGER objects_delete AFTER DELETE ON objects BEGIN
    UPDATE info SET object_count = object_count - 1 + old.deleted,
                    bytes_used = bytes_used - (1 - old.deleted) * old.size; END;
"""

_ACCOUNT = """
CREATE TABLE containers (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,
    put_timestamp TEXT NOT NULL, delete_timestamp TEXT NOT NULL,
    object_count INTEGER NOT NULL, bytes_used INTEGER NOT NULL, deleted INTEGER NOT NULL,
    stats_timestamp TEXT NOT NULL);
CREATE TRIGGER containers_insert AFTER INSERT ON containers BEGIN
    UPDATE info SET container_count = container_count + 1 - new.deleted,
                    object_count = object_count + (1 - new.deleted) * new.object_count,
                    bytes_used = bytes_used + (1 - new.deleted) * new.bytes_used; END;
CREATE TRIGGER containers_delete AFTER DELETE ON containers BEGIN
    UPDATE info SET container_count = container_count - 1 + old.deleted,
                    object_count = object_count - (1 - old.deleted) * old.object_count,
                    bytes_used = bytes_used - (1 - old.deleted) * old.bytes_used; END;
"""

ZERO = "0000000000.00000"


def norm(ts: str | float | int) -> str:
    """Swift's normalized timestamp, so timestamps compare as strings."""
    return f"{float(ts):016.5f}"


def _connect(path: Path) -> sqlite3.Connection:
    # mode=rw: never create a database by accident (a missing file means "no such db")
    conn = sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True, timeout=BUSY_TIMEOUT,
                           isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class _Cached:
    def __init__(self, conn: sqlite3.Connection, inode: tuple[int, int]):
        self.conn, self.inode = conn, inode
        self.lock = threading.Lock()
        self.closed = False

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.conn.close()


_cache: OrderedDict[str, _Cached] = OrderedDict()
_cache_lock = threading.Lock()


@contextmanager
def connection(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to the database file ``path`` for this thread's exclusive
    use (FileNotFoundError if there is no such file)."""
    st = os.stat(path)
    inode, key, drop = (st.st_dev, st.st_ino), str(path), []
    with _cache_lock:
        entry = _cache.get(key)
        if entry is not None and entry.inode != inode:
            drop.append(_cache.pop(key))  # the file was replaced: that handle is stale
            entry = None
        if entry is None:
            entry = _cache[key] = _Cached(_connect(path), inode)
            while len(_cache) > CACHED_CONNECTIONS:
                drop.append(_cache.popitem(last=False)[1])
        else:
            _cache.move_to_end(key)
    for old in drop:
        old.close()
    with entry.lock:
        if entry.closed:  # evicted while we waited: a connection of our own
            with closing(_connect(path)) as conn:
                yield conn
            return
        try:
            yield entry.conn
        finally:
            if entry.conn.in_transaction:
                entry.conn.rollback()


def forget(prefix: str | Path = "") -> None:
    """Close cached connections of files under ``prefix`` (all by default)."""
    with _cache_lock:
        keys = [k for k in _cache if k.startswith(str(prefix))]
        drop = [_cache.pop(k) for k in keys]
    for old in drop:
        old.close()


class Db:
    """One account or container database file."""

    kind = ""
    table = ""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def exists(self) -> bool:
        return self.path.exists()

    def connect(self):
        return connection(self.path)

    # -- creation ------------------------------------------------------------------

    def create(self, tmp_dir: Path, account: str, container: str | None, put_timestamp: str,
               created_at: str | None = None) -> bool:
        """Create the file atomically (built aside, then linked into place);
        False if another writer created it first."""
        tmp = tmp_dir / f"{uuid.uuid4().hex}.db"
        try:
            with closing(sqlite3.connect(tmp, isolation_level=None)) as conn:
                conn.execute("PRAGMA journal_mode=WAL")  # persistent in the file
                conn.executescript("BEGIN;" + _COMMON + self.schema + "COMMIT;")
                conn.execute("INSERT INTO info (kind, account, container, id, created_at, "
                             "put_timestamp, delete_timestamp) VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (self.kind, account, container, uuid.uuid4().hex,
                              norm(created_at or put_timestamp), norm(put_timestamp), ZERO))
            try:
                os.link(tmp, self.path)  # unlike rename, never replaces a db someone made
            except FileExistsError:
                return False
            fsync_dir(self.path.parent)
            return True
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{tmp}{suffix}").unlink(missing_ok=True)

    # -- info and metadata -------------------------------------------------------------

    def info(self) -> DbInfo:
        with self.connect() as conn:
            return self._info(conn)

    def _info(self, conn: sqlite3.Connection) -> DbInfo:
        (created, put, delete, objects, used, containers) = conn.execute(
            "SELECT created_at, put_timestamp, delete_timestamp, object_count, bytes_used, "
            "container_count FROM info").fetchone()
        meta = {k: (v, t) for k, v, t in conn.execute("SELECT key, value, timestamp FROM metadata")
                if v != ""}
        deleted = delete > put and (containers if self.kind == "account" else objects) == 0
        return DbInfo(put, delete, created, objects, used, meta, containers, deleted)

    def identity(self) -> dict:
        with self.connect() as conn:
            row = conn.execute("SELECT account, container, id, created_at, put_timestamp, "
                               "delete_timestamp FROM info").fetchone()
        return dict(zip(("account", "container", "id", "created_at", "put_timestamp",
                         "delete_timestamp"), row, strict=True))

    def update_timestamps(self, put: str | None = None, delete: str | None = None) -> None:
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            if put is not None:
                conn.execute("UPDATE info SET put_timestamp = max(put_timestamp, ?)", (norm(put),))
            if delete is not None:
                conn.execute("UPDATE info SET delete_timestamp = max(delete_timestamp, ?)",
                             (norm(delete),))
            conn.execute("COMMIT")

    def merge_metadata(self, metadata: dict[str, tuple[str, str]]) -> None:
        """Newer timestamp wins per key; an empty value is kept as a deletion."""
        if not metadata:
            return
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            _merge_metadata(conn, ((k, v, t) for k, (v, t) in metadata.items()))
            conn.execute("COMMIT")

    # -- rows -------------------------------------------------------------------------

    def merge_rows(self, rows: Iterable[tuple]) -> int:
        """Merge rows (in the table's column order, without rowid); newer wins."""
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            n = self._merge_rows(conn, rows)
            conn.execute("COMMIT")
        return n

    def _merge_rows(self, conn: sqlite3.Connection, rows: Iterable[tuple]) -> int:
        raise NotImplementedError

    def listing(self, *, limit: int, marker: str = "", end_marker: str = "", prefix: str = "",
                delimiter: str = "", reverse: bool = False, path: str | None = None) -> list:
        with self.connect() as conn:
            return _list(conn, self.table, self.columns, self._row, limit=limit, marker=marker,
                         end_marker=end_marker, prefix=prefix, delimiter=delimiter,
                         reverse=reverse, path=path)

    def quick_check(self) -> str:
        # a connection of its own: walking every database must not evict the hot ones
        with closing(_connect(self.path)) as conn:
            return ", ".join(r[0] for r in conn.execute("PRAGMA quick_check"))

    def reclaim(self, older_than: float) -> bool:
        """Drop tombstones (rows, metadata keys) older than ``older_than`` (epoch
        seconds); True when the whole database is a deleted, empty one that old."""
        cutoff = norm(older_than)
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(f"DELETE FROM {self.table} WHERE deleted = 1 AND {self.stamp} < ?",
                         (cutoff,))
            conn.execute("DELETE FROM metadata WHERE value = '' AND timestamp < ?", (cutoff,))
            conn.execute("COMMIT")
            info = self._info(conn)
            live = conn.execute(f"SELECT count(*) FROM {self.table}").fetchone()[0]
        return info.deleted and info.delete_timestamp < cutoff and live == 0


class ContainerDb(Db):
    kind = "container"
    table = "objects"
    stamp = "timestamp"
    schema = _CONTAINER
    columns = ("name", "timestamp", "size", "content_type", "etag", "deleted")

    @staticmethod
    def _row(r: tuple) -> ContainerRow:
        return ContainerRow(r[0], r[1], r[2], r[3], r[4], bool(r[5]))

    def _merge_rows(self, conn, rows) -> int:
        n = 0
        for name, ts, size, ctype, etag, deleted in rows:
            ts = norm(ts)
            old = conn.execute("SELECT timestamp FROM objects WHERE name = ?", (name,)).fetchone()
            if old is not None and old[0] >= ts:
                continue
            if old is not None:
                conn.execute("DELETE FROM objects WHERE name = ?", (name,))
            conn.execute("INSERT INTO objects (name, timestamp, size, content_type, etag, deleted) "
                         "VALUES (?, ?, ?, ?, ?, ?)",
                         (name, ts, 0 if deleted else int(size), ctype or "", etag or "",
                          int(bool(deleted))))
            n += 1
        return n


class AccountDb(Db):
    kind = "account"
    table = "containers"
    stamp = "delete_timestamp"
    schema = _ACCOUNT
    columns = ("name", "put_timestamp", "delete_timestamp", "object_count", "bytes_used",
               "deleted", "stats_timestamp")

    @staticmethod
    def _row(r: tuple) -> AccountRow:
        return AccountRow(r[0], r[1], r[2], r[3], r[4], bool(r[5]))

    def _merge_rows(self, conn, rows) -> int:
        """As Swift's account merge: the newest put and delete timestamps each win;
        the stats of the most recent report win (``stats_timestamp``)."""
        n = 0
        for name, put, delete, objects, used, _deleted, stats_ts in rows:
            put, delete, stats_ts = norm(put), norm(delete), norm(stats_ts)
            old = conn.execute("SELECT put_timestamp, delete_timestamp, object_count, bytes_used, "
                               "stats_timestamp FROM containers WHERE name = ?", (name,)).fetchone()
            if old is not None:
                if old[4] > stats_ts:
                    objects, used = old[2], old[3]
                new = (max(put, old[0]), max(delete, old[1]), objects, used, max(stats_ts, old[4]))
                if new == tuple(old):
                    continue
                put, delete, objects, used, stats_ts = new
                conn.execute("DELETE FROM containers WHERE name = ?", (name,))
            deleted = int(delete > put)
            conn.execute("INSERT INTO containers (name, put_timestamp, delete_timestamp, "
                         "object_count, bytes_used, deleted, stats_timestamp) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (name, put, delete, 0 if deleted else int(objects),
                          0 if deleted else int(used), deleted, stats_ts))
            n += 1
        return n


def _merge_metadata(conn: sqlite3.Connection, items: Iterable[tuple[str, str, str]]) -> None:
    for key, value, ts in items:
        ts = norm(ts)
        old = conn.execute("SELECT timestamp FROM metadata WHERE key = ?", (key,)).fetchone()
        if old is None or old[0] < ts:
            # REPLACE also takes the new spelling of the key (keys compare without case)
            conn.execute("INSERT OR REPLACE INTO metadata (key, value, timestamp) VALUES (?, ?, ?)",
                         (key, value, ts))


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- listing ---------------------------------------------------------------------------


def _list(conn: sqlite3.Connection, table: str, columns: tuple[str, ...],
          transform: Callable[[tuple], object], *, limit: int, marker: str, end_marker: str,
          prefix: str, delimiter: str, reverse: bool, path: str | None) -> list:
    """Swift's listing algorithm (container and account backends): live rows in
    UTF-8 byte order (SQLite's BINARY collation of UTF-8 text; the same as
    Python's code point order), subdirectories folded into one string each."""
    if limit <= 0:
        return []
    if reverse:
        marker, end_marker = end_marker, marker
    if path is not None:
        prefix = path.rstrip("/") + "/" if path else ""
        path = prefix
        delimiter = "/"
    end_prefix = _after_prefix(prefix) if prefix else None
    orig_marker = marker
    force_gte = False
    cols = ", ".join(columns)
    results: list = []
    while len(results) < limit:
        where, args = ["deleted = 0"], []
        if end_marker and (end_prefix is None or end_marker < end_prefix):
            where.append("name < ?")
            args.append(end_marker)
        elif end_prefix is not None:
            where.append("name < ?")
            args.append(end_prefix)
        if force_gte:
            where.append("name >= ?")
            args.append(marker)
            force_gte = False
        elif marker and (not prefix or marker >= prefix):
            where.append("name > ?")
            args.append(marker)
        elif prefix:
            where.append("name >= ?")
            args.append(prefix)
        sql = (f"SELECT {cols} FROM {table} WHERE {' AND '.join(where)} "
               f"ORDER BY name {'DESC' if reverse else ''} LIMIT ?")
        asked = limit - len(results)
        rows = conn.execute(sql, (*args, asked)).fetchall()
        if not delimiter:
            return results + [transform(r) for r in rows if r[0].startswith(prefix)]
        for row in rows:
            name = row[0]
            if reverse:
                end_marker = name
            else:
                marker = name
            end = name.find(delimiter, len(prefix))
            if path is not None:
                if name == path:  # the directory marker object itself
                    continue
                if end >= 0 and len(name) > end + len(delimiter):
                    # deeper than the path: skip that whole subdirectory
                    if reverse:
                        end_marker = name[: end + len(delimiter)]
                    else:
                        marker = name[:end] + delimiter[:-1] + chr(ord(delimiter[-1]) + 1)
                        force_gte = True
                    break
            elif end >= 0:
                subdir = name[: end + len(delimiter)]
                if reverse:
                    end_marker = subdir
                else:
                    # continue after everything in the subdirectory
                    marker = name[:end] + delimiter[:-1] + chr(ord(delimiter[-1]) + 1)
                    force_gte = True
                if subdir != orig_marker:
                    results.append(subdir)
                break
            results.append(transform(row))
            if len(results) >= limit:
                break
        else:
            if len(rows) < asked:  # read to the end without a subdirectory
                break
    return results


def _after_prefix(prefix: str) -> str | None:
    """The smallest string above every name starting with ``prefix``."""
    last = ord(prefix[-1])
    return prefix[:-1] + chr(last + 1) if last < 0x10FFFF else None


# -- replication -----------------------------------------------------------------------


def open_db(path: Path) -> Db:
    """The right class for an existing database file."""
    with connection(path) as conn:
        kind = conn.execute("SELECT kind FROM info").fetchone()[0]
    return ContainerDb(path) if kind == "container" else AccountDb(path)


def state(db: Db) -> dict:
    """What a replica pushes of itself before its rows: identity, timestamps, metadata."""
    ident = db.identity()
    with db.connect() as conn:
        meta = [list(r) for r in conn.execute("SELECT key, value, timestamp FROM metadata")]
    return {**ident, "metadata": meta}


def merge_state(dst: Db, tmp_dir: Path, st: dict) -> tuple[str, int]:
    """Take a peer's ``state`` into ``dst`` (created from it if missing): the newest
    put and delete timestamps, the oldest creation, metadata newest-wins per key.
    Returns (dst's id, 1 if it was created else 0)."""
    created = 0
    if not dst.exists():
        created = int(dst.create(tmp_dir, st["account"], st["container"], st["put_timestamp"],
                                 st["created_at"]))
    with dst.connect() as conn:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE info SET put_timestamp = max(put_timestamp, ?), "
                     "delete_timestamp = max(delete_timestamp, ?), "
                     "created_at = min(created_at, ?)",
                     (norm(st["put_timestamp"]), norm(st["delete_timestamp"]),
                      norm(st["created_at"])))
        _merge_metadata(conn, (tuple(m) for m in st["metadata"]))
        conn.execute("COMMIT")
        dst_id = conn.execute("SELECT id FROM info").fetchone()[0]
    return dst_id, created


def rows_after(db: Db, remote_id: str, after: int | None, limit: int = BATCH) -> tuple[list[list], int]:
    """Rows (rowid first) changed after ``after``, or, with None, after the last
    point pushed to the replica ``remote_id`` (the ``sync`` table); and the point
    the rows reach."""
    with db.connect() as conn:
        if after is None:
            row = conn.execute("SELECT point FROM sync WHERE remote_id = ?", (remote_id,)).fetchone()
            after = row[0] if row else -1
        rows = conn.execute(f"SELECT rowid, {', '.join(db.columns)} FROM {db.table} "
                            f"WHERE rowid > ? ORDER BY rowid LIMIT ?", (after, limit)).fetchall()
    return [list(r) for r in rows], (rows[-1][0] if rows else after)


def set_sync_point(db: Db, remote_id: str, point: int) -> None:
    with db.connect() as conn:
        conn.execute("INSERT OR REPLACE INTO sync (remote_id, point) VALUES (?, ?)", (remote_id, point))


def now() -> str:
    return norm(time.time())
