"""Receiving image data: stream it to the store, hash it, check its format.

Used by both ways data arrives (``PUT .../file`` and glance-direct's
``PUT .../stage``). Memory stays flat: each piece is hashed, written and
dropped; the first 64 KiB are kept to check the header as soon as they are in,
so a mismatched upload is refused early rather than after a gigabyte.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from onestack.common import errors
from onestack.image import core, formats
from onestack.image.store import Writer


@dataclass
class Received:
    size: int
    checksum: str | None
    os_hash_value: str | None
    virtual_size: int | None


class Hasher:
    """md5 (Glance's ``checksum``) and sha512 (``os_hash_value``) of a stream.

    hashlib releases the GIL on large buffers, so each digest runs on a thread
    of its own while the caller writes the same piece: hashing then costs the
    time of the slower digest, not of both plus the write.
    """

    def __init__(self):
        from concurrent.futures import ThreadPoolExecutor

        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha512 = hashlib.sha512()
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="image-hash")
        self._pending = []

    def update(self, data: bytes) -> None:
        self.wait()  # each digest must see the pieces in order
        self._pending = [self._pool.submit(self.md5.update, data), self._pool.submit(self.sha512.update, data)]

    def wait(self) -> None:
        for future in self._pending:
            future.result()
        self._pending = []

    def close(self) -> None:
        self.wait()
        self._pool.shutdown(wait=False)


def receive(chunks: Iterable[bytes], writer: Writer, disk_format: str, limit: int | None,
            owner: str | None, hash_data: bool = True) -> Received:
    """Write every chunk; raise ApiError (after which the caller aborts the writer)."""
    hasher = Hasher() if hash_data else None
    head = bytearray()
    checked = False
    tail = b""
    size = 0
    try:
        for data in chunks:
            size += len(data)
            if limit is not None and size > limit:
                raise core.too_large(limit, owner)
            if hasher:
                hasher.update(data)
            writer.write(data)
            if not checked:
                head += data[: formats.HEAD_BYTES - len(head)]
                if len(head) >= formats.HEAD_BYTES and disk_format != "vhd":
                    _check(disk_format, bytes(head))
                    checked = True
            tail = (tail + data)[-512:] if len(data) < 512 else data[-512:]
        if not checked:
            _check(disk_format, bytes(head), tail)
        if hasher:
            hasher.wait()
    finally:
        if hasher:
            hasher.close()
    try:
        virtual = formats.virtual_size(writer.path, disk_format, size)
    except formats.FormatError as e:
        raise errors.BadRequest(str(e)) from None
    return Received(
        size=size,
        checksum=hasher.md5.hexdigest() if hasher else None,
        os_hash_value=hasher.sha512.hexdigest() if hasher else None,
        virtual_size=virtual,
    )


def _check(disk_format: str, head: bytes, tail: bytes = b"") -> None:
    try:
        formats.check_header(disk_format, head, tail)
    except formats.FormatError as e:
        raise errors.BadRequest(str(e)) from None


def hash_stored(pieces: Iterable[bytes]) -> tuple[str, str]:
    """md5 and sha512 of data already in the store (glance-direct import)."""
    hasher = Hasher()
    try:
        for data in pieces:
            hasher.update(data)
        hasher.wait()
    finally:
        hasher.close()
    return hasher.md5.hexdigest(), hasher.sha512.hexdigest()
