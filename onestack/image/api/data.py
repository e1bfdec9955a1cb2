"""Image data: upload (``PUT .../file``), download (``GET .../file``, with Range)."""

from __future__ import annotations

import logging
import re

from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse

from onestack.common import db, errors
from onestack.common.http import Req, empty
from onestack.common.timeutils import utcnow
from onestack.image import core, upload
from onestack.image import models as m
from onestack.image.api import api
from onestack.image.core import notify

log = logging.getLogger(__name__)


def begin(req: Req, image_id: str, from_status: str, to_status: str) -> tuple[str, str | None, int | None]:
    """Move the image to its receiving status; return (disk_format, owner, byte limit)."""
    with db.transaction() as s:
        img = core.get_image(s, req.ctx, image_id, lock=True)
        core.authorize("upload_image", req.ctx, core.target(img))
        if img.status != from_status:
            raise errors.Conflict(f"Image status transition from {img.status} to {to_status} is not allowed.")
        if not img.disk_format or not img.container_format:
            raise errors.BadRequest("Properties disk_format, container_format must be set prior to saving data.")
        limit = core.bytes_allowed(s, img.owner, image_id)
        img.status = to_status
        img.updated_at = utcnow()
        return img.disk_format, img.owner, limit


def fail(image_id: str, status: str, reason: str) -> None:
    """Put the image back (``queued``: may be retried) or mark it ``killed``."""
    log.info("image %s: upload failed (%s); status -> %s", image_id, reason, status)
    with db.transaction() as s:
        img = s.get(m.Image, image_id)
        if img is not None:
            img.status = status
            img.staged_size = None
            img.updated_at = utcnow()


def stream_in(req: Req, image_id: str, name: str, from_status: str, to_status: str, hash_data: bool):
    """Receive the request body as store object ``name``; return (writer, Received)."""
    disk_format, owner, limit = begin(req, image_id, from_status, to_status)
    writer = core.State.store.writer(name)
    try:
        got = upload.receive(req.chunks(), writer, disk_format, limit, owner, hash_data)
    except ClientDisconnect:
        writer.abort()
        fail(image_id, from_status, "the client went away")
        raise errors.BadRequest("The upload was interrupted before all data arrived.") from None
    except errors.PayloadTooLarge as e:
        writer.abort()
        fail(image_id, from_status, e.message)
        raise
    except errors.BadRequest as e:  # the data is not what it claims to be
        writer.abort()
        fail(image_id, "killed", e.message)
        raise
    except BaseException:
        writer.abort()
        fail(image_id, from_status, "unexpected error")
        raise
    return writer, got


@api.route("/v2/images/{image_id}/file", ["PUT"], stream=True)
def upload_file(req: Req):
    image_id = core.check_uuid(req.path["image_id"])
    writer, got = stream_in(req, image_id, image_id, "queued", "saving", hash_data=True)
    location = writer.commit()
    with db.transaction() as s:
        img = s.get(m.Image, image_id)
        if img is None or img.status != "saving":  # deleted (or reset) while we were receiving
            core.State.store.delete(location)
            raise errors.Conflict(f"Image {image_id} was deleted or changed during the upload.")
        img.size, img.virtual_size = got.size, got.virtual_size
        img.checksum, img.os_hash_value = got.checksum, got.os_hash_value
        img.os_hash_algo = core.State.settings.hash_algorithm
        img.location = location
        img.status = "active"
        img.updated_at = utcnow()
    notify("upload", {"id": image_id, "size": got.size})
    return empty(204)


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """``Range: bytes=a-b`` -> (start, length); None: serve everything; 416 if unsatisfiable."""
    match = _RANGE.match(header.strip().replace(" ", ""))
    if match is None:  # several ranges, or another unit: serve it all (RFC 9110 allows it)
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":  # the last N bytes
        n = int(last)
        start = max(0, size - n)
        return (start, size - start) if n else None
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return -1, 0
    return start, end - start + 1


@api.route("/v2/images/{image_id}/file", ["GET"])
def download(req: Req):
    image_id = core.check_uuid(req.path["image_id"])
    ctx = req.ctx
    with db.session() as s:
        img = core.get_image(s, ctx, image_id)
        core.authorize("download_image", ctx, core.target(img))
        if img.status == "deactivated" and not core.allowed("download_deactivated", ctx, core.target(img)):
            raise errors.Forbidden("The requested image has been deactivated. Image data download is forbidden.")
        if not img.location or img.status not in ("active", "deactivated"):
            return empty(204)
        location, size, checksum = img.location, img.size, img.checksum
    store = core.State.store
    if not store.exists(location):
        raise errors.ServiceUnavailable(f"The data of image {image_id} is missing from the store.")
    headers = {"Content-Type": "application/octet-stream"}
    span = _byte_range(req.headers["range"], size) if "range" in req.headers else None
    if span == (-1, 0):
        raise _unsatisfiable(size)
    if span is None:
        headers["Content-Length"] = str(size)
        if checksum:
            headers["Content-MD5"] = checksum
        return StreamingResponse(store.read(location), 200, headers)
    start, length = span
    headers["Content-Length"] = str(length)
    headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
    return StreamingResponse(store.read(location, start, length), 206, headers)


def _unsatisfiable(size: int) -> errors.ApiError:
    return errors.RangeNotSatisfiable(f"Requested range not satisfiable: the image has {size} bytes.",
                                      headers={"Content-Range": f"bytes */{size}"})
