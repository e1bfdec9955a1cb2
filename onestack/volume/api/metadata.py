"""The metadata sub-resource shared by volumes and snapshots:
``/<things>/{id}/metadata`` (GET, POST merge, PUT replace) and
``/<things>/{id}/metadata/{key}`` (GET, PUT, DELETE), with Cinder's messages."""

from __future__ import annotations

from collections.abc import Callable

from onestack.common import db, errors
from onestack.common.http import Req, empty, json_response
from onestack.volume import core, policies
from onestack.volume.api import route


def check_metadata(meta, field: str = "metadata") -> dict:
    if not isinstance(meta, dict):
        raise errors.BadRequest(f"Invalid input for field/attribute {field}: it must be an object.")
    for k, v in meta.items():
        if not isinstance(k, str) or not 1 <= len(k) <= 255:
            raise errors.BadRequest(f"Invalid input for field/attribute {field}: keys must be 1 to 255 "
                                    f"characters.")
        if not isinstance(v, str) or len(v) > 255:
            raise errors.BadRequest(f"Invalid input for field/attribute {field}: value of '{k}' must be a "
                                    f"string of at most 255 characters.")
    return meta


def optional_metadata(body: dict, field: str = "metadata"):
    """A create body's metadata: absent or null is none; anything else must be an object
    (``[]`` is refused, as Cinder's schema does, not taken for an empty one)."""
    meta = body.get(field)
    return {} if meta is None else meta


def register(base: str, id_key: str, get: Callable, policy: dict[str, str],
             writable: Callable | None = None) -> None:
    """Routes for the metadata of the rows ``get(session, ctx, id)`` finds under ``base``
    (``/volumes/{volume_id}``); ``policy`` names the rule of "get", "update", "delete";
    ``writable(row)`` may refuse a write (raise)."""

    def load(s, req: Req, action: str):
        row = get(s, req.ctx, req.path[id_key])
        policies.authorize(policy[action], req.ctx, {"project_id": row.project_id})
        if action != "get" and writable is not None:
            writable(row)
        return row

    def show(req: Req):
        with db.session() as s:
            return json_response({"metadata": dict(load(s, req, "get").metadata_ or {})})

    def write(req: Req, replace: bool):
        data = req.json()
        if not isinstance(data, dict) or "metadata" not in data:
            raise errors.BadRequest("Malformed request body: it must have a 'metadata' object.")
        meta = check_metadata(data["metadata"])
        with db.transaction() as s:
            row = load(s, req, "update")
            row.metadata_ = dict(meta) if replace else {**(row.metadata_ or {}), **meta}
            core.touch(row)
            return json_response({"metadata": dict(row.metadata_)})

    def item_show(req: Req):
        key = req.path["key"]
        with db.session() as s:
            row = load(s, req, "get")
            if key not in (row.metadata_ or {}):
                raise errors.NotFound(f"Metadata item was not found: {key}.")
            return json_response({"meta": {key: row.metadata_[key]}})

    def item_update(req: Req):
        data = req.json()
        meta = data.get("meta") if isinstance(data, dict) else None
        key = req.path["key"]
        if not isinstance(meta, dict):
            raise errors.BadRequest("Malformed request body: it must have a 'meta' object.")
        if key not in meta:
            raise errors.BadRequest("Request body and URI mismatch.")
        if len(meta) > 1:
            raise errors.BadRequest("Request body contains too many items.")
        check_metadata(meta, "meta")
        with db.transaction() as s:
            row = load(s, req, "update")
            row.metadata_ = {**(row.metadata_ or {}), key: meta[key]}
            core.touch(row)
        return json_response({"meta": {key: meta[key]}})

    def item_delete(req: Req):
        key = req.path["key"]
        with db.transaction() as s:
            row = load(s, req, "delete")
            if key not in (row.metadata_ or {}):
                raise errors.NotFound(f"Metadata item was not found: {key}.")
            row.metadata_ = {k: v for k, v in row.metadata_.items() if k != key}
            core.touch(row)
        return empty(200)

    kind = base.split("/")[1]
    for fn, path, methods in ((show, "/metadata", ["GET"]),
                              (lambda req: write(req, False), "/metadata", ["POST"]),
                              (lambda req: write(req, True), "/metadata", ["PUT"]),
                              (item_show, "/metadata/{key}", ["GET"]),
                              (item_update, "/metadata/{key}", ["PUT"]),
                              (item_delete, "/metadata/{key}", ["DELETE"])):
        fn.__name__ = f"{kind}_metadata_{methods[0].lower()}{'_item' if '{key}' in path else ''}"
        route(base + path, methods)(fn)
