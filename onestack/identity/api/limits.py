"""Unified limits: /v3/registered_limits, /v3/limits and /v3/limits/model (the ``flat``
enforcement model). Both collections are created in batches (a list body, all or
nothing) and answer as Keystone does; the rules live in ``identity.limits``."""

from __future__ import annotations

import sqlalchemy as sa

from onestack.common import db, errors, validation
from onestack.common.http import Req, empty, json_response
from onestack.identity import core, limits
from onestack.identity import models as m
from onestack.identity.api import api, views
from onestack.identity.api.common import authorize, body_object, collection, limit_list

_ID = {"type": "string", "minLength": 1, "maxLength": 64}
_NULLABLE_ID = {"type": ["string", "null"], "minLength": 1, "maxLength": 64}
_NAME = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"[\S]+"}
# Keystone's limits are signed INTs, -1 meaning unlimited.
_LIMIT = {"type": "integer", "minimum": -1, "maximum": 0x7FFFFFFF}
_DESCRIPTION = {"type": ["string", "null"], "maxLength": 65535}

_REGISTERED_PROPS = {
    "service_id": _ID,
    "region_id": _NULLABLE_ID,
    "resource_name": _NAME,
    "default_limit": _LIMIT,
    "description": _DESCRIPTION,
}
REGISTERED_CREATE = {
    "type": "object",
    "properties": {
        "registered_limits": {
            "type": "array",
            "minItems": 1,
            "maxItems": 1000,
            "items": {
                "type": "object",
                "properties": _REGISTERED_PROPS,
                "required": ["service_id", "resource_name", "default_limit"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["registered_limits"],
    "additionalProperties": False,
}
REGISTERED_UPDATE = {
    "type": "object",
    "properties": {**_REGISTERED_PROPS, "id": _ID},
    "additionalProperties": False,
}
LIMITS_CREATE = {
    "type": "object",
    "properties": {
        "limits": {
            "type": "array",
            "minItems": 1,
            "maxItems": 1000,
            "items": {
                "type": "object",
                "properties": {
                    "service_id": _ID,
                    "region_id": _NULLABLE_ID,
                    "resource_name": _NAME,
                    "resource_limit": _LIMIT,
                    "description": _DESCRIPTION,
                    "project_id": _NULLABLE_ID,
                    "domain_id": _NULLABLE_ID,
                },
                "required": ["service_id", "resource_name", "resource_limit"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["limits"],
    "additionalProperties": False,
}
LIMIT_UPDATE = {
    "type": "object",
    "properties": {"resource_limit": _LIMIT, "description": _DESCRIPTION, "id": _ID},
    "additionalProperties": False,
}


def _matching_id(obj: dict, path_id: str) -> None:
    if "id" in obj and obj.pop("id") != path_id:
        raise errors.BadRequest(f"Invalid input for field 'id': cannot change the id of {path_id}.")


def _filters(req: Req, keys: tuple[str, ...]) -> dict:
    return {k: req.query[k] for k in keys if req.query.get(k) is not None}


# -- registered limits --------------------------------------------------------------


@api.route("/v3/registered_limits", methods=["GET"])
def list_registered_limits(req: Req):
    authorize(req, "identity:list_registered_limits")
    with db.session() as s:
        rows = limits.list_registered(s, _filters(req, ("service_id", "region_id", "resource_name")))
        rows, truncated = limit_list(rows)
        items = [views.registered_limit(req, r) for r in rows]
    return collection(req, "registered_limits", items, truncated)


@api.route("/v3/registered_limits", methods=["POST"])
def create_registered_limits(req: Req):
    authorize(req, "identity:create_registered_limits")
    body = validation.validate(REGISTERED_CREATE, req.json())
    with db.transaction() as s:
        rows = limits.create_registered(s, body["registered_limits"])
        out = [views.registered_limit(req, r) for r in rows]
    core.changed("registered_limit.created", {"resource_info": [r["id"] for r in out]})
    return json_response({"registered_limits": out}, 201)


@api.route("/v3/registered_limits/{registered_limit_id}", methods=["GET"])
def get_registered_limit(req: Req):
    authorize(req, "identity:get_registered_limit")
    with db.session() as s:
        r = limits.get_registered(s, req.path["registered_limit_id"])
        return json_response({"registered_limit": views.registered_limit(req, r)})


@api.route("/v3/registered_limits/{registered_limit_id}", methods=["PATCH"])
def update_registered_limit(req: Req):
    authorize(req, "identity:update_registered_limit")
    rid = req.path["registered_limit_id"]
    obj = validation.validate(REGISTERED_UPDATE, body_object(req, "registered_limit"))
    _matching_id(obj, rid)
    with db.transaction() as s:
        r = limits.update_registered(s, limits.get_registered(s, rid), obj)
        out = views.registered_limit(req, r)
    core.changed("registered_limit.updated", {"resource_info": rid})
    return json_response({"registered_limit": out})


@api.route("/v3/registered_limits/{registered_limit_id}", methods=["DELETE"])
def delete_registered_limit(req: Req):
    authorize(req, "identity:delete_registered_limit")
    rid = req.path["registered_limit_id"]
    with db.transaction() as s:
        limits.delete_registered(s, limits.get_registered(s, rid))
    core.changed("registered_limit.deleted", {"resource_info": rid})
    return empty()


# -- limits -------------------------------------------------------------------------------


@api.route("/v3/limits/model", methods=["GET"])
def get_limit_model(req: Req):
    authorize(req, "identity:get_limit_model")
    return json_response({"model": dict(limits.MODEL)})


def _superuser(req: Req) -> bool:
    ctx = req.ctx
    return bool(ctx.system_scope) or "admin" in ctx.roles or "service" in ctx.roles


@api.route("/v3/limits", methods=["GET"])
def list_limits(req: Req):
    authorize(req, "identity:list_limits")
    filters = _filters(req, ("service_id", "region_id", "resource_name", "project_id", "domain_id"))
    # As Keystone: administrators see every limit, a domain-scoped caller those of its
    # domain and its projects, a project-scoped one its project's only.
    ctx = req.ctx
    with db.session() as s:
        if _superuser(req):
            rows = limits.list_limits(s, filters)
        elif ctx.domain_id:
            ids = list(s.scalars(sa.select(m.Project.id).where(m.Project.domain_id == ctx.domain_id,
                                                               m.Project.is_domain.is_(False))))
            rows = limits.list_limits(s, filters, project_ids=ids, domain_id=ctx.domain_id)
        elif ctx.project_id:
            rows = limits.list_limits(s, filters, project_ids=[ctx.project_id])
        else:
            rows = []
        rows, truncated = limit_list(rows)
        items = [views.limit(req, lim, reg) for lim, reg in rows]
    return collection(req, "limits", items, truncated)


@api.route("/v3/limits", methods=["POST"])
def create_limits(req: Req):
    authorize(req, "identity:create_limits")
    body = validation.validate(LIMITS_CREATE, req.json())
    for obj in body["limits"]:
        # exactly one owner (Keystone's oneOf of project_id and domain_id)
        if bool(obj.get("project_id")) == bool(obj.get("domain_id")):
            raise errors.BadRequest(
                "Invalid input for field 'limits': each limit needs one of project_id and domain_id."
            )
    with db.transaction() as s:
        rows = limits.create_limits(s, body["limits"])
        out = [views.limit(req, lim, reg) for lim, reg in rows]
    core.changed("limit.created", {"resource_info": [r["id"] for r in out]})
    return json_response({"limits": out}, 201)


def _target(s, lim: m.Limit) -> dict:
    """What get_limit's policy reads: the limit, with its project's or domain's ids."""
    target: dict = {"project_id": lim.project_id, "domain_id": lim.domain_id}
    if lim.project_id:
        p = s.get(m.Project, lim.project_id)
        target["project"] = {"id": lim.project_id, "domain_id": p.domain_id if p else None}
    if lim.domain_id:
        target["domain"] = {"id": lim.domain_id}
    return {"limit": target}


@api.route("/v3/limits/{limit_id}", methods=["GET"])
def get_limit(req: Req):
    with db.session() as s:
        try:
            lim = limits.get_limit(s, req.path["limit_id"])
        except errors.NotFound:
            # As Keystone: policy runs first, so a caller who could see no limit gets a 403
            # whether or not this one exists.
            authorize(req, "identity:get_limit", {"limit": {}})
            raise
        authorize(req, "identity:get_limit", _target(s, lim))
        reg = limits.get_registered(s, lim.registered_limit_id)
        return json_response({"limit": views.limit(req, lim, reg)})


@api.route("/v3/limits/{limit_id}", methods=["PATCH"])
def update_limit(req: Req):
    authorize(req, "identity:update_limit")
    limit_id = req.path["limit_id"]
    obj = validation.validate(LIMIT_UPDATE, body_object(req, "limit"))
    _matching_id(obj, limit_id)
    with db.transaction() as s:
        lim = limits.get_limit(s, limit_id)
        for key, value in obj.items():
            setattr(lim, key, value)
        s.flush()
        out = views.limit(req, lim, limits.get_registered(s, lim.registered_limit_id))
    core.changed("limit.updated", {"resource_info": limit_id})
    return json_response({"limit": out})


@api.route("/v3/limits/{limit_id}", methods=["DELETE"])
def delete_limit(req: Req):
    authorize(req, "identity:delete_limit")
    limit_id = req.path["limit_id"]
    with db.transaction() as s:
        s.delete(limits.get_limit(s, limit_id))
    core.changed("limit.deleted", {"resource_info": limit_id})
    return empty()
