"""Flavors (``/flavors``), their access lists (``os-flavor-access``) and extra specs
(``os-extra_specs``), as the Nova api-ref describes them up to 2.79.

Visibility: admins see every flavor; others the public ones and the private
ones their project was given access to (a flavor one may not see is a 404).
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from onestack.common import booleans, db, errors, validation
from onestack.common.http import Req, empty, json_response
from onestack.common.microversion import Version
from onestack.common.timeutils import utcnow
from onestack.compute import models as m
from onestack.compute.api import api, body_of, mv
from onestack.compute.api import helpers as h
from onestack.compute.api.views import base_url, links

V_DESCRIPTION = Version(2, 55)
V_EXTRA_SPECS = Version(2, 61)
V_SWAP_INT = Version(2, 75)
V_PUBLIC_CONFLICT = Version(2, 7)

SORT_KEYS = {"created_at", "description", "disabled", "ephemeral_gb", "flavorid", "id", "is_public",
             "memory_mb", "name", "root_gb", "rxtx_factor", "swap", "updated_at", "vcpu_weight", "vcpus"}
LIST_QUERY = {"sort_key", "sort_dir", "limit", "marker", "minRam", "minDisk", "is_public"}

# ---------------------------------------------------------------- request schemas

_INT_POS = {"type": ["integer", "string"], "pattern": "^[0-9]+$", "minimum": 1, "maximum": 0x7FFFFFFF}
_INT_NONNEG = {"type": ["integer", "string"], "pattern": "^[0-9]+$", "minimum": 0, "maximum": 0x7FFFFFFF}
_BOOL = validation.BOOLEAN_LIKE
_DESCRIPTION = {"type": ["string", "null"], "maxLength": 65535, "pattern": r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"}


def _create_schema(v: Version) -> dict:
    props = {
        "name": {"type": "string", "minLength": 1, "maxLength": 255},
        "id": {"type": ["string", "number", "null"], "minLength": 1, "maxLength": 255,
               "pattern": r"^(?! )[a-zA-Z0-9. _-]+(?<! )$"},
        "ram": _INT_POS, "vcpus": _INT_POS, "disk": _INT_NONNEG,
        "OS-FLV-EXT-DATA:ephemeral": _INT_NONNEG, "swap": _INT_NONNEG,
        "rxtx_factor": {"type": ["number", "string"], "pattern": r"^[0-9]+(\.[0-9]+)?$",
                        "exclusiveMinimum": True, "minimum": 0, "maximum": 3.40282e38},
        "os-flavor-access:is_public": _BOOL,
    }
    if v >= V_DESCRIPTION:
        props["description"] = _DESCRIPTION
    return {"type": "object", "properties": props, "required": ["name", "ram", "vcpus", "disk"],
            "additionalProperties": False}


_CREATE_SCHEMAS = {False: _create_schema(Version(2, 1)), True: _create_schema(V_DESCRIPTION)}
_UPDATE_SCHEMA = {"type": "object", "properties": {"description": _DESCRIPTION}, "required": ["description"],
                  "additionalProperties": False}
_TENANT_SCHEMA = {"type": "object",
                  "properties": {"tenant": {"type": "string", "minLength": 1, "maxLength": 255,
                                            "pattern": "^[a-zA-Z0-9-]*$"}},
                  "required": ["tenant"], "additionalProperties": False}
_SPEC_KEY = r"^[a-zA-Z0-9-_:. ]{1,255}$"
_SPEC_VALUE = {"type": ["string", "number", "boolean"], "minLength": 0, "maxLength": 255}
_SPECS_SCHEMA = {"type": "object", "patternProperties": {_SPEC_KEY: _SPEC_VALUE}, "additionalProperties": False}

# ---------------------------------------------------------------- views


def view(f: m.Flavor, v: Version, base: str, brief: bool = False) -> dict:
    """One flavor: ``brief`` as ``GET /flavors`` lists it, else in full."""
    out: dict = {"id": f.flavorid, "name": f.name}
    if v >= V_DESCRIPTION:
        out["description"] = f.description
    out["links"] = links(base, "flavors", f.flavorid)
    if brief:
        return out
    out.update({
        "ram": f.memory_mb, "disk": f.root_gb, "vcpus": f.vcpus,
        "swap": f.swap if (f.swap or v >= V_SWAP_INT) else "",
        "OS-FLV-EXT-DATA:ephemeral": f.ephemeral_gb or 0,
        "OS-FLV-DISABLED:disabled": bool(f.disabled),
        "os-flavor-access:is_public": bool(f.is_public),
        "rxtx_factor": float(f.rxtx_factor if f.rxtx_factor is not None else 1.0),
    })
    if v >= V_EXTRA_SPECS:
        out["extra_specs"] = dict(f.extra_specs or {})
    return out


def _access_view(f: m.Flavor, projects: list[str]) -> dict:
    return {"flavor_access": [{"flavor_id": f.flavorid, "tenant_id": p} for p in projects]}


# ---------------------------------------------------------------- lookups


def _visible(s, ctx, f: m.Flavor | None) -> bool:
    if f is None:
        return False
    if f.is_public or ctx.is_admin:
        return True
    return s.get(m.FlavorAccess, (f.id, ctx.project_id)) is not None


def get_flavor(s, ctx, flavorid: str) -> m.Flavor:
    """The flavor ``flavorid`` if the caller may see it, else 404."""
    f = s.scalar(sa.select(m.Flavor).where(m.Flavor.flavorid == str(flavorid)))
    if not _visible(s, ctx, f):
        raise errors.NotFound(f"Flavor {flavorid} could not be found.")
    return f


def _projects(s, f: m.Flavor) -> list[str]:
    return list(s.scalars(sa.select(m.FlavorAccess.project_id).where(m.FlavorAccess.flavor_id == f.id)
                          .order_by(m.FlavorAccess.project_id)))


def _is_public_filter(req: Req, ctx) -> bool | None:
    """Nova's ``is_public`` query: admins choose (``none``: all), others see public."""
    if not ctx.is_admin:
        return True
    raw = req.query.get("is_public")
    if raw is None:
        return True
    if raw.strip().lower() == "none":
        return None
    try:
        return h.parse_bool(raw, "is_public")
    except errors.BadRequest:
        raise errors.BadRequest(f"Invalid is_public filter [{raw}]") from None


def _int_filter(req: Req, name: str) -> int | None:
    raw = req.query.get(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise errors.BadRequest(f"Invalid {name} filter [{raw}]") from None


def _sort_value(f: m.Flavor, key: str):
    v = getattr(f, key, None)
    return (v is None, v if v is not None else 0)


def _list(req: Req, brief: bool):
    h.strict_query(req, LIST_QUERY)
    ctx = req.ctx
    is_public = _is_public_filter(req, ctx)
    min_ram, min_disk = _int_filter(req, "minRam"), _int_filter(req, "minDisk")
    sort_key = req.query.get("sort_key") or "flavorid"
    sort_dir = req.query.get("sort_dir") or "asc"
    if sort_key not in SORT_KEYS:
        raise errors.BadRequest("Sort key supplied was not valid.")
    if sort_dir not in ("asc", "desc"):
        raise errors.BadRequest("Unknown sort direction, must be 'desc' or 'asc'")
    limit, marker = h.limit_marker(req)
    with db.session() as s:
        q = sa.select(m.Flavor)
        if not ctx.is_admin:
            q = q.where(m.Flavor.disabled.is_(False))
        if is_public is not None:
            cond = m.Flavor.is_public.is_(is_public)
            if is_public and ctx.project_id:
                shared = sa.select(m.FlavorAccess.flavor_id).where(m.FlavorAccess.project_id == ctx.project_id)
                cond = sa.or_(cond, m.Flavor.id.in_(shared))
            q = q.where(cond)
        if min_ram is not None:
            q = q.where(m.Flavor.memory_mb >= min_ram)
        if min_disk is not None:
            q = q.where(m.Flavor.root_gb >= min_disk)
        flavors = list(s.scalars(q))
        flavors.sort(key=lambda f: f.id, reverse=sort_dir == "desc")
        flavors.sort(key=lambda f: _sort_value(f, sort_key), reverse=sort_dir == "desc")
        if marker is not None:
            mf = s.scalar(sa.select(m.Flavor).where(m.Flavor.flavorid == marker))
            if not _visible(s, ctx, mf):
                raise errors.BadRequest(f"marker [{marker}] not found")
            flavors = [f for f in flavors if _after(f, mf, sort_key, sort_dir)]
        items = flavors[:limit]
        v, base = mv(req), base_url(req)
        body: dict = {"flavors": [view(f, v, base, brief) for f in items]}
        nxt = h.next_links(req, "flavors" if brief else "flavors/detail", items,
                           items[-1].flavorid if items else None, limit)
        if nxt:
            body["flavors_links"] = nxt
    return json_response(body)


def _after(f: m.Flavor, marker: m.Flavor, key: str, direction: str) -> bool:
    a, b = (_sort_value(f, key), f.id), (_sort_value(marker, key), marker.id)
    return a > b if direction == "asc" else a < b


# ---------------------------------------------------------------- flavors


@api.route("/v2.1/flavors", ["GET"])
def list_flavors(req: Req):
    return _list(req, brief=True)


@api.route("/v2.1/flavors/detail", ["GET"])
def list_flavors_detail(req: Req):
    return _list(req, brief=False)


@api.route("/v2.1/flavors/{flavor_id}", ["GET"])
def show_flavor(req: Req):
    with db.session() as s:
        f = get_flavor(s, req.ctx, req.path["flavor_id"])
        return json_response({"flavor": view(f, mv(req), base_url(req))})


def _int(value, name: str, minimum: int) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise errors.BadRequest(f"Invalid input for field/attribute {name}.") from None
    if n < minimum or n > 0x7FFFFFFF:
        raise errors.BadRequest(f"Invalid input for field/attribute {name}. Value: {value}. "
                                f"{n} is not in the range {minimum}..{0x7FFFFFFF}")
    return n


@api.route("/v2.1/flavors", ["POST"])
def create_flavor(req: Req):
    h.authorize("os-flavor-manage:create", req.ctx, {})
    v = mv(req)
    body = body_of(req, "flavor")
    validation.validate(_CREATE_SCHEMAS[v >= V_DESCRIPTION], body, style=validation.NOVA)
    name = h.check_name(body["name"])
    flavorid = body.get("id")
    if flavorid is None or str(flavorid).strip() in ("", "auto"):
        flavorid = str(uuid.uuid4())
    elif isinstance(flavorid, float) and flavorid.is_integer():
        flavorid = str(int(flavorid))
    else:
        flavorid = str(flavorid)
    ram = _int(body["ram"], "ram", 1)
    vcpus = _int(body["vcpus"], "vcpus", 1)
    disk = _int(body["disk"], "disk", 0)
    ephemeral = _int(body.get("OS-FLV-EXT-DATA:ephemeral", 0), "OS-FLV-EXT-DATA:ephemeral", 0)
    swap = _int(body.get("swap", 0), "swap", 0)
    try:
        rxtx = float(body.get("rxtx_factor", 1.0))
    except ValueError:
        raise errors.BadRequest("Invalid input for field/attribute rxtx_factor.") from None
    if not rxtx > 0:
        raise errors.BadRequest("Invalid input for field/attribute rxtx_factor: it must be greater than 0.")
    is_public = booleans.to_bool(body.get("os-flavor-access:is_public", True))
    with db.transaction(conflict=f"Flavor with ID {flavorid} already exists.") as s:
        if s.scalar(sa.select(m.Flavor.id).where(m.Flavor.name == name)) is not None:
            raise errors.Conflict(f"Flavor with name {name} already exists.")
        if s.scalar(sa.select(m.Flavor.id).where(m.Flavor.flavorid == flavorid)) is not None:
            raise errors.Conflict(f"Flavor with ID {flavorid} already exists.")
        f = m.Flavor(flavorid=flavorid, name=name, memory_mb=ram, vcpus=vcpus, root_gb=disk,
                     ephemeral_gb=ephemeral, swap=swap, rxtx_factor=rxtx, is_public=is_public, disabled=False,
                     description=body.get("description"), extra_specs={}, created_at=utcnow())
        s.add(f)
        s.flush()
        out = view(f, v, base_url(req))
    return json_response({"flavor": out})


@api.route("/v2.1/flavors/{flavor_id}", ["PUT"])
def update_flavor(req: Req):
    v = mv(req)
    if v < V_DESCRIPTION:
        raise errors.NotFound("The resource could not be found.")
    h.authorize("os-flavor-manage:update", req.ctx, {})
    body = body_of(req, "flavor")
    validation.validate(_UPDATE_SCHEMA, body, style=validation.NOVA)
    with db.transaction() as s:
        f = get_flavor(s, req.ctx, req.path["flavor_id"])
        f.description = body["description"]
        f.updated_at = utcnow()
        s.flush()
        out = view(f, v, base_url(req))
    return json_response({"flavor": out})


@api.route("/v2.1/flavors/{flavor_id}", ["DELETE"])
def delete_flavor(req: Req):
    h.authorize("os-flavor-manage:delete", req.ctx, {})
    with db.transaction() as s:
        f = get_flavor(s, req.ctx, req.path["flavor_id"])
        s.execute(sa.delete(m.FlavorAccess).where(m.FlavorAccess.flavor_id == f.id))
        s.delete(f)
    return empty(202)


# ---------------------------------------------------------------- access


@api.route("/v2.1/flavors/{flavor_id}/os-flavor-access", ["GET"])
def list_access(req: Req):
    h.authorize("os-flavor-access", req.ctx, {})
    with db.session() as s:
        f = get_flavor(s, req.ctx, req.path["flavor_id"])
        if f.is_public:
            raise errors.NotFound("Access list not available for public flavors.")
        return json_response(_access_view(f, _projects(s, f)))


@api.route("/v2.1/flavors/{flavor_id}/action", ["POST"])
def flavor_action(req: Req):
    data = req.json()
    if not isinstance(data, dict) or len(data) != 1:
        raise errors.BadRequest("Malformed request body: exactly one action is expected.")
    action, args = next(iter(data.items()))
    if action not in ("addTenantAccess", "removeTenantAccess"):
        raise errors.BadRequest(f"There is no such action: {action}")
    h.authorize("os-flavor-access:" + ("add_tenant_access" if action == "addTenantAccess"
                                       else "remove_tenant_access"), req.ctx, {}, fallback="os_compute_api:os-flavor-access")
    if not isinstance(args, dict):
        raise errors.BadRequest(f"Invalid input for field/attribute {action}: it must be an object.")
    validation.validate(_TENANT_SCHEMA, args, style=validation.NOVA)
    tenant = args["tenant"]
    if action == "addTenantAccess":
        h.verify_project(req.ctx, tenant)
    flavorid = req.path["flavor_id"]
    with db.transaction(conflict=f"Flavor access already exists for flavor {flavorid} and project "
                                 f"{tenant} combination.") as s:
        f = get_flavor(s, req.ctx, flavorid)
        row = s.get(m.FlavorAccess, (f.id, tenant))
        if action == "addTenantAccess":
            if f.is_public and mv(req) >= V_PUBLIC_CONFLICT:
                raise errors.Conflict("Can not add access to a public flavor.")
            if row is not None:
                raise errors.Conflict(f"Flavor access already exists for flavor {flavorid} and project "
                                      f"{tenant} combination.")
            s.add(m.FlavorAccess(flavor_id=f.id, project_id=tenant))
        else:
            if row is None:
                raise errors.NotFound(f"Flavor access not found for {flavorid} / {tenant} combination.")
            s.delete(row)
        s.flush()
        out = _access_view(f, _projects(s, f))
    return json_response(out)


# ---------------------------------------------------------------- extra specs


def _spec_values(specs: dict) -> dict:
    out = {}
    for k, val in specs.items():
        if isinstance(val, bool):
            val = str(val)
        elif isinstance(val, (int, float)):
            val = str(val)
            if len(val) > 255:
                raise errors.BadRequest(f"extra_specs value of {k} has more than 255 characters.")
        out[k] = val
    return out


@api.route("/v2.1/flavors/{flavor_id}/os-extra_specs", ["GET"])
def list_specs(req: Req):
    with db.session() as s:
        f = get_flavor(s, req.ctx, req.path["flavor_id"])
        return json_response({"extra_specs": dict(f.extra_specs or {})})


@api.route("/v2.1/flavors/{flavor_id}/os-extra_specs", ["POST"])
def create_specs(req: Req):
    h.authorize("os-flavor-extra-specs:create", req.ctx, {},
                fallback="os_compute_api:os-flavor-extra-specs:manage")
    specs = body_of(req, "extra_specs")
    validation.validate(_SPECS_SCHEMA, specs, style=validation.NOVA)
    specs = _spec_values(specs)
    with db.transaction() as s:
        f = get_flavor(s, req.ctx, req.path["flavor_id"])
        f.extra_specs = {**(f.extra_specs or {}), **specs}
        f.updated_at = utcnow()
    return json_response({"extra_specs": specs})


@api.route("/v2.1/flavors/{flavor_id}/os-extra_specs/{key}", ["GET"])
def show_spec(req: Req):
    key = req.path["key"]
    with db.session() as s:
        f = get_flavor(s, req.ctx, req.path["flavor_id"])
        specs = f.extra_specs or {}
        if key not in specs:
            raise errors.NotFound(f"Flavor {f.flavorid} has no extra specs with key {key}.")
        return json_response({key: specs[key]})


@api.route("/v2.1/flavors/{flavor_id}/os-extra_specs/{key}", ["PUT"])
def update_spec(req: Req):
    h.authorize("os-flavor-extra-specs:update", req.ctx, {},
                fallback="os_compute_api:os-flavor-extra-specs:manage")
    key = req.path["key"]
    body = req.json()
    if not isinstance(body, dict):
        raise errors.BadRequest("Malformed request body: an object is expected.")
    validation.validate(_SPECS_SCHEMA, body, style=validation.NOVA)
    if len(body) > 1:
        raise errors.BadRequest("Request body contains too many items")
    if key not in body:
        raise errors.BadRequest("Request body and URI mismatch")
    body = _spec_values(body)
    with db.transaction() as s:
        f = get_flavor(s, req.ctx, req.path["flavor_id"])
        f.extra_specs = {**(f.extra_specs or {}), **body}
        f.updated_at = utcnow()
    return json_response(body)


@api.route("/v2.1/flavors/{flavor_id}/os-extra_specs/{key}", ["DELETE"])
def delete_spec(req: Req):
    h.authorize("os-flavor-extra-specs:delete", req.ctx, {},
                fallback="os_compute_api:os-flavor-extra-specs:manage")
    key = req.path["key"]
    with db.transaction() as s:
        f = get_flavor(s, req.ctx, req.path["flavor_id"])
        specs = dict(f.extra_specs or {})
        if key not in specs:
            raise errors.NotFound(f"Flavor {f.flavorid} has no extra specs with key {key}.")
        del specs[key]
        f.extra_specs = specs
        f.updated_at = utcnow()
    return empty(200)
