"""Volume types: CRUD, extra specs, public/private with project access, the default type."""

from __future__ import annotations

import sqlalchemy as sa

from onestack.common import db, errors
from onestack.common.booleans import parse_bool
from onestack.common.http import Req, empty, json_response
from onestack.common.timeutils import utcnow
from onestack.volume import core, policies
from onestack.volume import models as m
from onestack.volume.api import body_of, route, views
from onestack.volume.api.volumes import check_text


def _manage(req: Req) -> None:
    policies.authorize("volume_extension:types_manage", req.ctx)


@route("/types", ["GET"])
def types_index(req: Req):
    ctx = req.ctx
    policies.authorize("volume_extension:type_get_all", ctx)
    is_public = req.query.get("is_public")
    with db.session() as s:
        rows = list(s.scalars(sa.select(m.VolumeType).order_by(m.VolumeType.name)))
        if is_public is not None and is_public.lower() != "none":
            want = parse_bool(is_public, "is_public")
            rows = [t for t in rows if t.is_public == want]
        rows = [t for t in rows if core.type_visible(s, ctx, t)]
        return json_response({"volume_types": [views.volume_type(t, ctx.is_admin) for t in rows]})


@route("/types/default", ["GET"])
def type_default(req: Req):
    with db.session() as s:
        t = core.default_type(s)
        if t is None:
            raise errors.NotFound("Default volume type can not be found.")
        return json_response({"volume_type": views.volume_type(t, req.ctx.is_admin)})


@route("/types", ["POST"])
def type_create(req: Req):
    _manage(req)
    body = body_of(req, "volume_type")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise errors.BadRequest("Invalid input for field/attribute name: it must be a non-empty string of at "
                                "most 255 characters.")
    specs = body.get("extra_specs") or {}
    _check_specs(specs)
    public = parse_bool(body.get("os-volume-type-access:is_public", body.get("is_public", True)), "is_public")
    with db.transaction(conflict=f"Volume Type {name} already exists.") as s:
        if s.scalar(sa.select(m.VolumeType).where(m.VolumeType.name == name)) is not None:
            raise errors.Conflict(f"Volume Type {name} already exists.")
        t = m.VolumeType(id=core.new_id(), name=name, description=check_text(body.get("description"), "description"),
                         is_public=public, extra_specs=specs, created_at=utcnow())
        s.add(t)
        s.flush()
        return json_response({"volume_type": views.volume_type(t, True)})


def _check_specs(specs) -> dict:
    if not isinstance(specs, dict):
        raise errors.BadRequest("Invalid input for field/attribute extra_specs: it must be an object.")
    for k, v in specs.items():
        if not isinstance(k, str) or not 1 <= len(k) <= 255:
            raise errors.BadRequest("Invalid input for field/attribute extra_specs: keys must be 1 to 255 "
                                    "characters.")
        if not isinstance(v, (str, int, float, bool)) or len(str(v)) > 255:
            raise errors.BadRequest(f"Invalid input for field/attribute extra_specs: the value of {k} must be "
                                    f"a string.")
    return {k: str(v) for k, v in specs.items()}


def _get(s, req: Req, type_id: str) -> m.VolumeType:
    t = s.get(m.VolumeType, type_id)
    if t is None or not core.type_visible(s, req.ctx, t):
        raise errors.NotFound(f"Volume type {type_id} could not be found.")
    return t


@route("/types/{type_id}", ["GET"])
def type_show(req: Req):
    with db.session() as s:
        if req.path["type_id"] == "default":
            return type_default(req)
        t = _get(s, req, req.path["type_id"])
        return json_response({"volume_type": views.volume_type(t, req.ctx.is_admin)})


@route("/types/{type_id}", ["PUT"])
def type_update(req: Req):
    _manage(req)
    body = body_of(req, "volume_type")
    with db.transaction(conflict="A volume type of that name already exists.") as s:
        t = _get(s, req, req.path["type_id"])
        if "name" in body:
            name = body["name"]
            if not isinstance(name, str) or not name.strip():
                raise errors.BadRequest("Invalid input for field/attribute name: it must be a non-empty string.")
            if t.name == core.settings.current.default_volume_type and name != t.name:
                raise errors.BadRequest("The default volume type cannot be renamed.")
            t.name = name
        if "description" in body:
            t.description = check_text(body["description"], "description")
        if "is_public" in body:
            t.is_public = parse_bool(body["is_public"], "is_public")
        t.updated_at = utcnow()
        s.flush()
        return json_response({"volume_type": views.volume_type(t, True)})


@route("/types/{type_id}", ["DELETE"])
def type_delete(req: Req):
    _manage(req)
    with db.transaction() as s:
        t = _get(s, req, req.path["type_id"])
        if t.name == core.settings.current.default_volume_type:
            raise errors.BadRequest("The default volume type cannot be deleted.")
        used = s.scalar(sa.select(sa.func.count()).select_from(m.Volume).where(
            m.Volume.volume_type_id == t.id, m.Volume.deleted.is_(False)))
        if used:
            raise errors.BadRequest(f"Target volume type is still in use: {used} volume(s) have type {t.name}.")
        s.delete(t)
    return empty(202)


# -------------------------------------------------------------------- extra specs


@route("/types/{type_id}/extra_specs", ["GET"])
def specs_show(req: Req):
    with db.session() as s:
        t = _get(s, req, req.path["type_id"])
        specs = views.volume_type(t, req.ctx.is_admin)["extra_specs"]
        return json_response({"extra_specs": specs})


@route("/types/{type_id}/extra_specs", ["POST"])
def specs_create(req: Req):
    policies.authorize("volume_extension:types_manage", req.ctx)
    data = req.json()
    if not isinstance(data, dict) or not isinstance(data.get("extra_specs"), dict):
        raise errors.BadRequest("Missing required element 'extra_specs' in request body.")
    specs = _check_specs(data["extra_specs"])
    with db.transaction() as s:
        t = _get(s, req, req.path["type_id"])
        t.extra_specs = {**(t.extra_specs or {}), **specs}
        t.updated_at = utcnow()
    return json_response({"extra_specs": specs})


@route("/types/{type_id}/extra_specs/{key}", ["GET"])
def spec_show(req: Req):
    with db.session() as s:
        t = _get(s, req, req.path["type_id"])
        specs = views.volume_type(t, req.ctx.is_admin)["extra_specs"]
        key = req.path["key"]
        if key not in specs:
            raise errors.NotFound(f"Volume Type {t.id} has no extra specs with key {key}.")
        return json_response({key: specs[key]})


@route("/types/{type_id}/extra_specs/{key}", ["PUT"])
def spec_update(req: Req):
    policies.authorize("volume_extension:types_manage", req.ctx)
    data = req.json()
    key = req.path["key"]
    if not isinstance(data, dict) or key not in data:
        raise errors.BadRequest("Request body and URI mismatch.")
    if len(data) > 1:
        raise errors.BadRequest("Request body contains too many items.")
    specs = _check_specs(data)
    with db.transaction() as s:
        t = _get(s, req, req.path["type_id"])
        t.extra_specs = {**(t.extra_specs or {}), **specs}
        t.updated_at = utcnow()
    return json_response(specs)


@route("/types/{type_id}/extra_specs/{key}", ["DELETE"])
def spec_delete(req: Req):
    policies.authorize("volume_extension:types_manage", req.ctx)
    key = req.path["key"]
    with db.transaction() as s:
        t = _get(s, req, req.path["type_id"])
        if key not in (t.extra_specs or {}):
            raise errors.NotFound(f"Volume Type {t.id} has no extra specs with key {key}.")
        t.extra_specs = {k: v for k, v in t.extra_specs.items() if k != key}
        t.updated_at = utcnow()
    return empty(202)


# -------------------------------------------------------------------- access


@route("/types/{type_id}/os-volume-type-access", ["GET"])
def access_list(req: Req):
    policies.authorize("volume_extension:volume_type_access", req.ctx)
    with db.session() as s:
        t = _get(s, req, req.path["type_id"])
        if t.is_public:
            raise errors.NotFound("Access list not available for public volume types.")
        rows = s.scalars(sa.select(m.VolumeTypeAccess).where(m.VolumeTypeAccess.volume_type_id == t.id))
        return json_response({"volume_type_access": [{"volume_type_id": t.id, "project_id": r.project_id}
                                                     for r in rows]})


@route("/types/{type_id}/action", ["POST"])
def type_action(req: Req):
    data = req.json()
    if not isinstance(data, dict) or len(data) != 1:
        raise errors.BadRequest("Invalid request body: it must name exactly one action.")
    name, arg = next(iter(data.items()))
    if name not in ("addProjectAccess", "removeProjectAccess"):
        raise errors.BadRequest(f"There is no such action: {name}")
    policies.authorize(f"volume_extension:volume_type_access:{name}", req.ctx)
    project = (arg or {}).get("project") if isinstance(arg, dict) else None
    if not project:
        raise errors.BadRequest("Missing required element 'project' in request body.")
    with db.transaction() as s:
        t = _get(s, req, req.path["type_id"])
        if t.is_public:
            raise errors.BadRequest("Invalid volume type: Type access modification is not applicable to public "
                                    "volume type.")
        row = s.get(m.VolumeTypeAccess, (t.id, project))
        if name == "addProjectAccess":
            if row is not None:
                raise errors.Conflict(f"Volume type access for {t.id} / {project} combination already exists.")
            s.add(m.VolumeTypeAccess(volume_type_id=t.id, project_id=project))
        else:
            if row is None:
                raise errors.NotFound(f"Volume type access not found for {t.id} / {project} combination.")
            s.delete(row)
    return empty(202)
