"""What the proxy sees of a storage device: the ``Node`` interface.

The proxy (``api/``) never touches files: it asks the ring which devices hold
a partition and talks to each device through a ``Node``. ``LocalNode`` (in
``storage.py``) serves a device directory of this host; ``RemoteNode``
(``remote.py``) is the same interface over HTTP to the node server of another
host (``server.py``), so the ring and the proxy work unchanged across machines.
``DeviceStore`` is what the replicator and the expirer see of a device, local
(``localstore.py``) or remote, in the same way.

Conventions
-----------
* ``timestamp`` is Swift's normalized form: ``"%016.5f" % time.time()``
  (e.g. ``"1732180000.12345"``); newer always wins, on every replica.
* ``part`` is the ring partition; ``account`` is ``AUTH_<project_id>``.
* Names are str (UTF-8 in paths and databases); the proxy has validated them.
* Object metadata is a flat ``dict[str, str]`` of headers as the proxy wants
  them back (``Content-Type``, ``ETag``, ``Content-Length``, ``X-Timestamp``,
  ``X-Object-Meta-*``, ``X-Delete-At``, ``X-Object-Manifest``,
  ``X-Static-Large-Object``, ``Content-Disposition``, ``Content-Encoding``,
  ``X-Object-Sysmeta-*`` ...), names in the case the proxy wrote them.
* Database metadata (accounts, containers) is ``dict[str, tuple[str, str]]``:
  header name -> (value, timestamp); an empty value deletes the key; merging
  keeps the newer timestamp per key.
* Every method raises ``NodeUnavailable`` when the device cannot serve (its
  directory is gone, unmounted, or unreadable): the proxy then counts it as a
  failed replica and tries the next node.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field


class NodeUnavailable(Exception):
    """The device cannot serve the request (missing, unmounted, I/O error)."""


class NotEmpty(Exception):
    """A container delete found objects in the container."""


@dataclass
class ObjectInfo:
    """What a replica holds for one object name."""

    timestamp: str
    deleted: bool = False  # a tombstone (newer than any data it replaced)
    metadata: dict[str, str] = field(default_factory=dict)  # empty for tombstones
    size: int = 0
    expired: bool = False  # X-Delete-At is in the past: treat as not found


class ObjectWriter(ABC):
    """One replica of an object being written: ``write`` pieces, then ``commit``."""

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def commit(self, metadata: dict[str, str]) -> None:
        """Make the data visible with ``metadata`` (final ETag and Content-Length
        included); atomically replaces older data of the name."""

    @abstractmethod
    def abort(self) -> None:
        """Drop what was written; nothing becomes visible."""


class ObjectReader(ABC):
    info: ObjectInfo

    @abstractmethod
    def read(self, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """The data from ``offset``, ``length`` bytes (None: to the end), in ~1 MiB pieces."""

    @abstractmethod
    def close(self) -> None: ...


@dataclass
class ContainerRow:
    """One object as a container listing shows it."""

    name: str
    timestamp: str
    size: int
    content_type: str
    etag: str
    deleted: bool = False


@dataclass
class AccountRow:
    """One container as an account listing shows it."""

    name: str
    put_timestamp: str
    delete_timestamp: str
    object_count: int
    bytes_used: int
    deleted: bool = False


@dataclass
class DbInfo:
    """Stats and metadata of an account or container database."""

    put_timestamp: str
    delete_timestamp: str
    created_at: str
    object_count: int  # for accounts: objects in all its containers
    bytes_used: int
    metadata: dict[str, tuple[str, str]]
    container_count: int = 0  # accounts only
    deleted: bool = False  # deleted (delete_timestamp > put_timestamp and empty)


class Node(ABC):
    """One storage device (see the module docstring for conventions)."""

    id: int
    name: str
    zone: int

    # -- objects -------------------------------------------------------------
    @abstractmethod
    def object_writer(self, part: int, account: str, container: str, obj: str,
                      timestamp: str) -> ObjectWriter: ...

    @abstractmethod
    def object_info(self, part: int, account: str, container: str, obj: str) -> ObjectInfo | None:
        """Newest data or tombstone held for the name; None if nothing at all."""

    @abstractmethod
    def object_reader(self, part: int, account: str, container: str, obj: str) -> ObjectReader | None:
        """An open reader of the newest data; None if missing, deleted or expired."""

    @abstractmethod
    def object_post(self, part: int, account: str, container: str, obj: str, timestamp: str,
                    metadata: dict[str, str]) -> bool:
        """Replace the user metadata (X-Object-Meta-*, X-Delete-At, Content-Type,
        Content-Disposition, Content-Encoding) of existing data; False if none."""

    @abstractmethod
    def object_delete(self, part: int, account: str, container: str, obj: str, timestamp: str) -> bool:
        """Write a tombstone; True if live data was there."""

    # -- containers ------------------------------------------------------------
    @abstractmethod
    def container_put(self, part: int, account: str, container: str, timestamp: str,
                      metadata: dict[str, tuple[str, str]]) -> bool:
        """Create (or revive) the container database; merge metadata. True if created."""

    @abstractmethod
    def container_info(self, part: int, account: str, container: str) -> DbInfo | None: ...

    @abstractmethod
    def container_post(self, part: int, account: str, container: str,
                       metadata: dict[str, tuple[str, str]]) -> bool:
        """Merge metadata; False if the container does not exist."""

    @abstractmethod
    def container_delete(self, part: int, account: str, container: str, timestamp: str) -> bool:
        """Mark deleted; raise NotEmpty if it holds objects; False if it did not exist."""

    @abstractmethod
    def container_update(self, part: int, account: str, container: str, row: ContainerRow) -> None:
        """Record an object PUT (or, with ``row.deleted``, a DELETE) in the listing;
        the newer timestamp wins. Creates nothing: a missing container is ignored."""

    @abstractmethod
    def container_list(self, part: int, account: str, container: str, *, limit: int,
                       marker: str = "", end_marker: str = "", prefix: str = "",
                       delimiter: str = "", reverse: bool = False,
                       path: str | None = None) -> list[ContainerRow | str] | None:
        """Live objects in name order (reversed with ``reverse``); with ``delimiter``,
        a str item is a subdirectory (``prefix`` + up to and including the delimiter).
        None when this device has no database for the container (the proxy then reads
        another replica: one created while this device was away lives on a handoff)."""

    # -- accounts ----------------------------------------------------------------
    @abstractmethod
    def account_put(self, part: int, account: str, timestamp: str) -> bool:
        """Create the account database if missing (accounts are created on first use)."""

    @abstractmethod
    def account_info(self, part: int, account: str) -> DbInfo | None: ...

    @abstractmethod
    def account_post(self, part: int, account: str, metadata: dict[str, tuple[str, str]]) -> bool: ...

    @abstractmethod
    def account_update(self, part: int, account: str, row: AccountRow) -> None:
        """Record a container's stats (or its deletion) in the account listing."""

    @abstractmethod
    def account_list(self, part: int, account: str, *, limit: int, marker: str = "",
                     end_marker: str = "", prefix: str = "", delimiter: str = "",
                     reverse: bool = False) -> list[AccountRow | str] | None:
        """Like ``container_list``: None when this device has no database for the account."""


class DeviceStore(ABC):
    """A device as the replicator and the expirer see it: partitions, the files of
    object suffixes (``<part>/<suffix>/<hash>/<file>``, see storage.py), databases
    by hash and the expiry index. ``LocalStore`` works on a directory of this host,
    ``RemoteStore`` over HTTP; the replicator moves data between any two of them.
    Methods raise ``NodeUnavailable`` when the device cannot serve, and
    ``FileNotFoundError`` for a file or database that is not (or no longer) there."""

    name: str

    @abstractmethod
    def available(self) -> bool: ...

    @abstractmethod
    def clean_tmp(self) -> None:
        """Drop files of writes that never finished (older than a day)."""

    @abstractmethod
    def partitions(self, kind: str) -> list[int]:
        """Partitions with data of a kind (``objects``, ``containers``, ``accounts``)."""

    # -- objects -------------------------------------------------------------------------
    @abstractmethod
    def suffix_hashes(self, part: int, reclaim_before: float | None = None) -> dict[str, str]:
        """suffix -> md5 of the names of the files that count in it. With
        ``reclaim_before`` (the device's own pass) obsolete files, tombstones older
        than that and empty directories are removed first."""

    @abstractmethod
    def hash_listings(self, part: int, suffix: str) -> dict[str, tuple[str | None, str | None]]:
        """hash -> (newest .data or .ts, newer .meta) of the suffix's objects."""

    @abstractmethod
    def read_file(self, part: int, suffix: str, hsh: str, name: str) -> Iterator[bytes]: ...

    @abstractmethod
    def install_file(self, part: int, suffix: str, hsh: str, name: str,
                     data: Iterable[bytes]) -> None:
        """Write a file of an object (atomically), then drop what it makes obsolete."""

    @abstractmethod
    def remove_suffixes(self, part: int, digests: dict[str, str]) -> int:
        """Remove the suffixes whose hash is still the given one (data handed off to
        its primaries); the number removed."""

    # -- databases -----------------------------------------------------------------------
    @abstractmethod
    def databases(self, kind: str, part: int) -> list[str]:
        """Hashes of the partition's databases."""

    @abstractmethod
    def db_state(self, kind: str, part: int, hsh: str) -> dict | None:
        """Identity, timestamps and metadata of a database (``dbs.state``)."""

    @abstractmethod
    def db_rows(self, kind: str, part: int, hsh: str, remote_id: str, after: int | None,
                limit: int) -> tuple[list[list], int]:
        """Rows changed since ``after`` (None: since the last push to ``remote_id``),
        rowid first; and the point reached."""

    @abstractmethod
    def db_synced(self, kind: str, part: int, hsh: str, remote_id: str, point: int) -> None:
        """Remember that ``remote_id`` has every row up to ``point``."""

    @abstractmethod
    def db_merge(self, kind: str, part: int, hsh: str, state: dict | None,
                 rows: list[list]) -> tuple[str, int]:
        """Merge a peer's state (creating the database from it if missing) and rows
        (without rowid); (this database's id, rows it took plus 1 if created)."""

    @abstractmethod
    def db_reclaim(self, kind: str, part: int, hsh: str, before: float) -> bool:
        """Drop tombstones older than ``before``; True if the whole database went."""

    @abstractmethod
    def db_remove(self, kind: str, part: int, hsh: str) -> None: ...

    # -- expiry ----------------------------------------------------------------------------
    @abstractmethod
    def expiring_due(self, now: float) -> dict:
        """``{"due": [[entry, name, delete_at, timestamp], ...], "checked": n, "removed": n}``:
        index entries due by ``now`` whose object still expires then, with the object's
        newest timestamp (stale entries are removed)."""

    @abstractmethod
    def expiring_done(self, entries: list[str]) -> int:
        """Remove those of the given index entries whose object is no longer due."""
