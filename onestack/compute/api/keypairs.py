"""Keypairs (``/os-keypairs``): generate or import, list, show, delete — per user.

2.2 adds ``type`` (ssh | x509) and moves create to 201 and delete to 204;
2.10 lets admins act for another user (``user_id``); 2.35 pages the list.
"""

from __future__ import annotations

from onestack.common import db, validation
from onestack.common.http import Req, empty, json_response
from onestack.common.microversion import Version
from onestack.common.timeutils import iso_plain
from onestack.compute import keypairs
from onestack.compute import models as m
from onestack.compute.api import api, body_of, mv
from onestack.compute.api import helpers as h

V_TYPE = Version(2, 2)
V_USER = Version(2, 10)
V_PAGING = Version(2, 35)

_NAME = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[_\- a-zA-Z0-9]+$"}


def _schema(v: Version) -> dict:
    props: dict = {"name": _NAME, "public_key": {"type": "string"}}
    if v >= V_TYPE:
        props["type"] = {"type": "string", "enum": list(keypairs.TYPES)}
    if v >= V_USER:
        props["user_id"] = {"type": "string"}
    return {"type": "object", "properties": props, "required": ["name"], "additionalProperties": False}


_SCHEMAS = {k: _schema(k) for k in (Version(2, 1), V_TYPE, V_USER)}

# ---------------------------------------------------------------- views


def _created_view(kp: m.KeyPair, private: str | None, v: Version) -> dict:
    out = {"name": kp.name, "public_key": kp.public_key, "fingerprint": kp.fingerprint, "user_id": kp.user_id}
    if private is not None:
        out["private_key"] = private
    if v >= V_TYPE:
        out["type"] = kp.type
    return out


def _list_view(kp: m.KeyPair, v: Version) -> dict:
    out = {"name": kp.name, "public_key": kp.public_key, "fingerprint": kp.fingerprint}
    if v >= V_TYPE:
        out["type"] = kp.type
    return {"keypair": out}


def _show_view(kp: m.KeyPair, v: Version) -> dict:
    out = {"name": kp.name, "public_key": kp.public_key, "fingerprint": kp.fingerprint, "user_id": kp.user_id,
           "id": kp.id, "created_at": iso_plain(kp.created_at), "updated_at": None, "deleted": False,
           "deleted_at": None}
    if v >= V_TYPE:
        out["type"] = kp.type
    return out


# ---------------------------------------------------------------- routes


def _user(req: Req, action: str) -> str:
    """The user whose keypairs a request is about: the caller's, or (2.10+, admins)
    the ``user_id`` it names."""
    ctx = req.ctx
    user_id = ctx.user_id
    if mv(req) >= V_USER:
        wanted = req.query.get("user_id")
        if wanted and wanted != ctx.user_id:
            h.authorize(f"os-keypairs:{action}", ctx, {"user_id": wanted},
                        fallback="os_compute_api:os-keypairs:other_user")
            user_id = wanted
    return user_id


def _strict(req: Req, extra: set[str] = frozenset()) -> None:
    allowed = {"user_id"} | set(extra) if mv(req) >= V_USER else set(extra)
    h.strict_query(req, allowed)


@api.route("/v2.1/os-keypairs", ["GET"])
def list_keypairs(req: Req):
    v = mv(req)
    _strict(req, {"limit", "marker"} if v >= V_PAGING else set())
    user_id = _user(req, "index")
    with db.session() as s:
        rows = keypairs.list_for(s, user_id)
        body: dict = {}
        if v >= V_PAGING:
            limit, marker = h.limit_marker(req)
            rows = h.page_after(rows, marker, lambda k: k.name, limit)
            nxt = h.next_links(req, "os-keypairs", rows, rows[-1].name if rows else None, limit)
            body["keypairs"] = [_list_view(k, v) for k in rows]
            if nxt:
                body["keypairs_links"] = nxt
        else:
            body["keypairs"] = [_list_view(k, v) for k in rows]
    return json_response(body)


@api.route("/v2.1/os-keypairs", ["POST"])
def create_keypair(req: Req):
    v = mv(req)
    ctx = req.ctx
    body = body_of(req, "keypair")
    schema = _SCHEMAS[V_USER if v >= V_USER else V_TYPE if v >= V_TYPE else Version(2, 1)]
    validation.validate(schema, body, style=validation.NOVA)
    name = h.check_name(body["name"])
    user_id = ctx.user_id
    if body.get("user_id") and body["user_id"] != ctx.user_id:
        h.authorize("os-keypairs:create", ctx, {"user_id": body["user_id"]},
                    fallback="os_compute_api:os-keypairs:other_user")
        user_id = body["user_id"]
    with db.transaction(conflict=f"Key pair '{name}' already exists.") as s:
        kp, private = keypairs.create(s, user_id=user_id, project_id=ctx.project_id, name=name,
                                      key_type=body.get("type", "ssh"), public_key=body.get("public_key"))
        out = _created_view(kp, private, v)
    return json_response({"keypair": out}, 201 if v >= V_TYPE else 200)


@api.route("/v2.1/os-keypairs/{name}", ["GET"])
def show_keypair(req: Req):
    _strict(req)
    user_id = _user(req, "show")
    with db.session() as s:
        kp = keypairs.get(s, user_id, req.path["name"])
        return json_response({"keypair": _show_view(kp, mv(req))})


@api.route("/v2.1/os-keypairs/{name}", ["DELETE"])
def delete_keypair(req: Req):
    _strict(req)
    user_id = _user(req, "delete")
    with db.transaction() as s:
        keypairs.delete(s, user_id, req.path["name"])
    return empty(204 if mv(req) >= V_TYPE else 202)
