"""Interoperable image import: discovery, ``glance-direct`` (stage, then import).

``web-download`` is not offered: onestack's machines need not reach the
internet, and a cloud that fetches any URL a user names is a way into the
operator's own network. Tasks and metadefs are not implemented.
"""

from __future__ import annotations

import logging
import threading

from onestack.common import db, errors
from onestack.common.http import Req, empty, json_response
from onestack.common.timeutils import utcnow
from onestack.image import core, formats, upload
from onestack.image import models as m
from onestack.image.api import IMPORT_METHODS as METHODS
from onestack.image.api import api
from onestack.image.api.data import fail, stream_in
from onestack.image.core import notify

log = logging.getLogger(__name__)


@api.route("/v2/info/import", ["GET"])
def import_info(req: Req):
    return json_response({"import-methods": {
        "description": "Import methods available.",
        "type": "array",
        "value": METHODS,
    }})


@api.route("/v2/info/stores", ["GET"])
def stores_info(req: Req):
    # Multiple stores are not enabled, and Glance answers 404 then.
    raise errors.NotFound("Multi backend is not supported at this site.")


def _staging(image_id: str) -> str:
    return f"{image_id}.staging"


@api.route("/v2/images/{image_id}/stage", ["PUT"], stream=True)
def stage(req: Req):
    image_id = core.check_uuid(req.path["image_id"])
    writer, got = stream_in(req, image_id, _staging(image_id), "queued", "uploading", hash_data=False)
    writer.commit()
    with db.transaction() as s:
        img = s.get(m.Image, image_id)
        if img is None or img.status != "uploading":
            core.State.store.delete(_staging(image_id))
            raise errors.Conflict(f"Image {image_id} was deleted or changed during the upload.")
        img.staged_size = got.size
        img.virtual_size = got.virtual_size
        img.updated_at = utcnow()
    return empty(204)


@api.route("/v2/images/{image_id}/import", ["POST"])
def import_image(req: Req):
    image_id = core.check_uuid(req.path["image_id"])
    body = req.json()
    method = (body.get("method") or {}).get("name") if isinstance(body, dict) else None
    if method == "web-download":
        raise errors.BadRequest("Import method web-download is not offered by this cloud (it does not "
                                "fetch URLs); stage the data with PUT /v2/images/{id}/stage and use glance-direct.")
    if method not in METHODS:
        raise errors.BadRequest(f"Import method {method!r} is not supported; available: {', '.join(METHODS)}.")
    if body.get("stores") or body.get("all_stores"):
        raise errors.BadRequest("This cloud has a single image store; 'stores' and 'all_stores' are not supported.")
    with db.transaction() as s:
        img = core.get_image(s, req.ctx, image_id, lock=True)
        core.authorize("import_image", req.ctx, core.target(img))
        if img.status != "uploading":
            raise errors.Conflict(f"Image needs to be staged before 'glance-direct' method can be used "
                                  f"(its status is {img.status}).")
        img.status = "importing"
        img.updated_at = utcnow()
    # the import runs on: the client polls the image status, as with Glance
    threading.Thread(target=_run_import, args=(image_id,), name=f"import-{image_id[:8]}", daemon=True).start()
    return empty(202)


def _run_import(image_id: str) -> None:
    store = core.State.store
    staged = _staging(image_id)
    try:
        with db.session() as s:
            img = s.get(m.Image, image_id)
            disk_format = img.disk_format if img else None
        if disk_format is None:
            store.delete(staged)
            return
        with open(store.local_path(staged), "rb") as f:
            head = f.read(formats.HEAD_BYTES)
        tail = b""
        size = store.size(staged)
        if size >= 512:
            tail = b"".join(store.read(staged, size - 512, 512))
        formats.check_header(disk_format, head, tail)
        virtual = formats.virtual_size(store.local_path(staged), disk_format, size)
        md5, secure = upload.hash_stored(store.read(staged))
        location = store.move(staged, image_id)
        with db.transaction() as s:
            img = s.get(m.Image, image_id)
            if img is None or img.status != "importing":
                store.delete(location)
                return
            img.size, img.virtual_size, img.staged_size = size, virtual, None
            img.checksum, img.os_hash_value = md5, secure
            img.os_hash_algo = core.State.settings.hash_algorithm
            img.location, img.status, img.updated_at = location, "active", utcnow()
        notify("upload", {"id": image_id, "size": size})
    except formats.FormatError as e:
        store.delete(staged)
        fail(image_id, "queued", str(e))
    except Exception:
        log.exception("import of image %s failed", image_id)
        store.delete(staged)
        fail(image_id, "queued", "unexpected error")
