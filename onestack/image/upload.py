"""Receiving image data: stream it to the store, hash it, check its format.

Used by both ways data arrives (``PUT .../file`` and glance-direct's
``PUT .../stage``). Memory stays flat: each piece is hashed, written and
dropped; the first 64 KiB are kept to check the header as soon as they are in,
so a mismatched upload is refused early rather than after a gigabyte.
"""

from __future__ import annotations

import errno
import hashlib
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
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


class Pipeline:
    """Hash and write each piece on threads of their own, in order, overlapping
    with the receiving of the next pieces.

    md5 (Glance's ``checksum``), the secure hash (``os_hash_value``, sha512 unless
    ``image.hash_algorithm`` says otherwise) and the write each
    have one thread, so each sees the pieces in order; hashlib and os.write
    release the GIL, so on two cores they run beside the event loop that is
    receiving. At most ``DEPTH`` pieces are in flight: memory stays bounded and
    a slow disk slows the client down.
    """

    DEPTH = 4

    def __init__(self, write: Callable[[bytes], None] | None, hash_data: bool = True):
        self.md5 = hashlib.md5(usedforsecurity=False) if hash_data else None
        self.secure = hashlib.new(core.State.settings.hash_algorithm) if hash_data else None
        steps = [f for f in (self.md5 and self.md5.update, self.secure and self.secure.update, write) if f]
        self._lanes = [(ThreadPoolExecutor(1, thread_name_prefix="image-data"), step) for step in steps]
        self._inflight: deque[list[Future]] = deque()

    def feed(self, data: bytes) -> None:
        while len(self._inflight) >= self.DEPTH:
            self._settle(self._inflight.popleft())
        self._inflight.append([pool.submit(step, data) for pool, step in self._lanes])

    @staticmethod
    def _settle(futures: list[Future]) -> None:
        for future in futures:
            future.result()  # re-raises a failed write here

    def drain(self) -> None:
        while self._inflight:
            self._settle(self._inflight.popleft())

    def close(self) -> None:
        for future in (f for group in self._inflight for f in group):
            future.cancel()
        for pool, _ in self._lanes:
            pool.shutdown(wait=True)  # no thread may write after the caller aborts


def receive(chunks: Iterable[bytes], writer: Writer, disk_format: str, limit: int | None,
            owner: str | None, hash_data: bool = True) -> Received:
    """Write every chunk; raise ApiError (after which the caller aborts the writer)."""
    pipeline = Pipeline(writer.write, hash_data)
    head = bytearray()
    checked = False
    tail = b""
    size = 0
    try:
        for data in chunks:
            size += len(data)
            if limit is not None and size > limit:
                raise core.too_large(limit, owner)
            pipeline.feed(data)
            if not checked:
                head += data[: formats.HEAD_BYTES - len(head)]
                if len(head) >= formats.HEAD_BYTES and disk_format != "vhd":
                    _check(disk_format, bytes(head))
                    checked = True
            tail = (tail + data)[-512:] if len(data) < 512 else data[-512:]
        pipeline.drain()
        if not checked:
            _check(disk_format, bytes(head), tail)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # Glance's StorageFull: a 413, and the image may be uploaded again once there is room
        raise errors.PayloadTooLarge(f"Image storage media is full: {e.strerror}.") from None
    finally:
        pipeline.close()
    try:
        virtual = formats.virtual_size(writer.path, disk_format, size)
    except formats.FormatError as e:
        raise errors.BadRequest(str(e)) from None
    return Received(
        size=size,
        checksum=pipeline.md5.hexdigest() if hash_data else None,
        os_hash_value=pipeline.secure.hexdigest() if hash_data else None,
        virtual_size=virtual,
    )


def _check(disk_format: str, head: bytes, tail: bytes = b"") -> None:
    try:
        formats.check_header(disk_format, head, tail)
    except formats.FormatError as e:
        raise errors.BadRequest(str(e)) from None


def hash_stored(pieces: Iterable[bytes]) -> tuple[str, str]:
    """md5 and the secure hash of data already in the store (glance-direct import)."""
    pipeline = Pipeline(None)
    try:
        for data in pieces:
            pipeline.feed(data)
        pipeline.drain()
    finally:
        pipeline.close()
    return pipeline.md5.hexdigest(), pipeline.secure.hexdigest()
