"""/v3/regions, /v3/services and /v3/endpoints: the catalog's building blocks."""

from __future__ import annotations

import sqlalchemy as sa

from onestack.common import db, errors, validation
from onestack.common.http import Req, empty, json_response
from onestack.identity import catalog as logic
from onestack.identity import core, limits
from onestack.identity import models as m
from onestack.identity.api import api, views
from onestack.identity.api.common import (
    authorize,
    body_object,
    collection,
    limit_list,
    query_bool,
)
from onestack.identity.resources import split_extra

# Region ids are chosen by clients; keep them within the id column.
REGION_ID_MAX = m.Region.__table__.c.id.type.length
_NULLABLE_TEXT = {"type": ["string", "null"], "maxLength": 65535}

_REGION_PROPS = {
    "id": {"type": "string", "maxLength": REGION_ID_MAX},
    "description": _NULLABLE_TEXT,
    "parent_region_id": {"type": ["string", "null"], "maxLength": REGION_ID_MAX},
}
REGION_CREATE = {"type": "object", "properties": _REGION_PROPS}
REGION_UPDATE = {"type": "object", "properties": _REGION_PROPS, "minProperties": 1}
REGION_CORE = {"id", "description", "parent_region_id", "links"}

_SERVICE_PROPS = {
    "type": {"type": "string", "minLength": 1, "maxLength": 255},
    "name": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": _NULLABLE_TEXT,
    "enabled": validation.BOOLEAN,
}
SERVICE_CREATE = {"type": "object", "properties": _SERVICE_PROPS, "required": ["type"]}
SERVICE_UPDATE = {"type": "object", "properties": _SERVICE_PROPS, "minProperties": 1}
SERVICE_CORE = {"id", "type", "name", "description", "enabled", "links"}

_ENDPOINT_PROPS = {
    "interface": {"type": "string", "enum": list(logic.INTERFACES)},
    "service_id": {"type": "string", "minLength": 1, "maxLength": 64},
    "region_id": {"type": ["string", "null"], "maxLength": REGION_ID_MAX},
    "region": {"type": ["string", "null"], "maxLength": REGION_ID_MAX},
    # Keystone's own limits: a scheme, then anything; at most 225 characters.
    "url": {"type": "string", "maxLength": 225, "pattern": "^[a-zA-Z0-9+.-]+:.+"},
    "enabled": validation.BOOLEAN,
    "name": {"type": "string", "maxLength": 255},
    "description": _NULLABLE_TEXT,
}
ENDPOINT_CREATE = {
    "type": "object",
    "properties": _ENDPOINT_PROPS,
    "required": ["interface", "service_id", "url"],
}
ENDPOINT_UPDATE = {"type": "object", "properties": _ENDPOINT_PROPS, "minProperties": 1}
# name/description live in extra, as in Keystone; "region" is only ever region_id's echo.
ENDPOINT_CORE = {"id", "interface", "service_id", "region_id", "region", "url", "enabled", "links"}


def _require_matching_id(obj: dict, path_id: str, what: str) -> None:
    """An ``id`` in an update body may only repeat the one in the URL."""
    if "id" in obj and obj["id"] != path_id:
        raise errors.BadRequest(
            f"Invalid input for field 'id': cannot change the id of {what} {path_id}."
        )



def _merge_extra(row, extra: dict) -> None:
    if extra:
        row.extra = {**(row.extra or {}), **extra}


# -- regions ---------------------------------------------------------------------


def _check_parent(s, region_id: str | None, parent_id: str | None) -> None:
    # Keystone answers 404 for a missing parent, 400 for a cycle.
    if parent_id is not None and s.get(m.Region, parent_id) is None:
        raise errors.NotFound(f"Could not find region: {parent_id}.")
    logic.check_parent_region(s, region_id, parent_id)


def _create_region(req: Req, obj: dict):
    validation.validate(REGION_CREATE, obj)
    authorize(req, "identity:create_region")
    # An empty or missing id means "pick one for me" (Keystone's historical POST).
    region_id = obj.get("id") or core.new_id()
    parent_id = obj.get("parent_region_id")
    duplicate = f"Conflict occurred attempting to store region - Duplicate ID, {region_id}."
    with db.transaction(duplicate) as s:
        if s.get(m.Region, region_id) is not None:
            raise errors.Conflict(duplicate)
        _check_parent(s, region_id, parent_id)
        r = m.Region(
            id=region_id,
            description=obj.get("description") or "",
            parent_region_id=parent_id,
            extra=split_extra(obj, REGION_CORE),
        )
        s.add(r)
        s.flush()
        out = views.region(req, r)
    core.changed("region.created", {"resource_info": region_id})
    return json_response({"region": out}, 201)


@api.route("/v3/regions", methods=["GET"])
def list_regions(req: Req):
    authorize(req, "identity:list_regions")
    q = sa.select(m.Region).order_by(m.Region.id)
    if "parent_region_id" in req.query:
        q = q.where(m.Region.parent_region_id == req.query["parent_region_id"])
    with db.session() as s:
        rows, truncated = limit_list(list(s.scalars(q)))
        return collection(req, "regions", [views.region(req, r) for r in rows], truncated)


@api.route("/v3/regions", methods=["POST"])
def create_region(req: Req):
    return _create_region(req, body_object(req, "region"))


@api.route("/v3/regions/{region_id}", methods=["PUT"])
def put_region(req: Req):
    """Create a region with the id in the URL (the documented way to choose an id)."""
    obj = body_object(req, "region")
    region_id = req.path["region_id"]
    if obj.get("id") not in (None, "", region_id):
        raise errors.BadRequest(
            f"Conflicting region IDs specified: {region_id!r} != {obj['id']!r}."
        )
    if len(region_id) > REGION_ID_MAX:
        raise errors.BadRequest(
            f"Invalid input for field 'id': longer than {REGION_ID_MAX} characters."
        )
    return _create_region(req, {**obj, "id": region_id})


@api.route("/v3/regions/{region_id}", methods=["GET"])
def get_region(req: Req):
    authorize(req, "identity:get_region")
    with db.session() as s:
        return json_response(
            {"region": views.region(req, logic.get_region(s, req.path["region_id"]))}
        )


@api.route("/v3/regions/{region_id}", methods=["PATCH"])
def update_region(req: Req):
    obj = body_object(req, "region")
    validation.validate(REGION_UPDATE, obj)
    authorize(req, "identity:update_region")
    region_id = req.path["region_id"]
    _require_matching_id(obj, region_id, "region")
    with db.transaction() as s:
        r = logic.get_region(s, region_id)
        if "parent_region_id" in obj:
            _check_parent(s, r.id, obj["parent_region_id"])
            r.parent_region_id = obj["parent_region_id"]
        if "description" in obj:
            r.description = obj["description"] or ""
        _merge_extra(r, split_extra(obj, REGION_CORE))
        s.flush()
        out = views.region(req, r)
    core.changed("region.updated", {"resource_info": region_id})
    return json_response({"region": out})


@api.route("/v3/regions/{region_id}", methods=["DELETE"])
def delete_region(req: Req):
    authorize(req, "identity:delete_region")
    region_id = req.path["region_id"]
    with db.transaction() as s:
        r = logic.get_region(s, region_id)
        if s.scalar(sa.select(m.Region.id).where(m.Region.parent_region_id == r.id).limit(1)):
            raise errors.Conflict(f"Unable to delete region {r.id} because it has child regions.")
        # Endpoints name their region without a foreign key: refuse rather than
        # leave them pointing nowhere (Keystone answers 403 here too).
        if s.scalar(sa.select(m.Endpoint.id).where(m.Endpoint.region_id == r.id).limit(1)):
            raise errors.Forbidden(
                f"Unable to delete region {r.id} because it has associated endpoints."
            )
        if limits.refer_to(s, region_id=r.id):
            raise errors.Forbidden(f"Unable to delete region {r.id} because registered limits refer to it.")
        s.delete(r)
    core.changed("region.deleted", {"resource_info": region_id})
    return empty()


# -- services --------------------------------------------------------------------


@api.route("/v3/services", methods=["GET"])
def list_services(req: Req):
    authorize(req, "identity:list_services")
    q = sa.select(m.Service).order_by(m.Service.type, m.Service.name, m.Service.id)
    if "type" in req.query:
        q = q.where(m.Service.type == req.query["type"])
    if "name" in req.query:
        q = q.where(m.Service.name == req.query["name"])
    enabled = query_bool(req, "enabled")
    if enabled is not None:
        q = q.where(m.Service.enabled.is_(enabled))
    with db.session() as s:
        rows, truncated = limit_list(list(s.scalars(q)))
        return collection(req, "services", [views.service(req, x) for x in rows], truncated)


@api.route("/v3/services", methods=["POST"])
def create_service(req: Req):
    obj = body_object(req, "service")
    validation.validate(SERVICE_CREATE, obj)
    authorize(req, "identity:create_service")
    with db.transaction() as s:
        svc = m.Service(
            id=core.new_id(),  # as in Keystone, a client-sent id is not used
            type=obj["type"],
            name=obj.get("name", ""),
            description=obj.get("description") or "",
            enabled=obj.get("enabled", True),
            extra=split_extra(obj, SERVICE_CORE),
        )
        s.add(svc)
        s.flush()
        out = views.service(req, svc)
    core.changed("service.created", {"resource_info": svc.id})
    return json_response({"service": out}, 201)


@api.route("/v3/services/{service_id}", methods=["GET"])
def get_service(req: Req):
    authorize(req, "identity:get_service")
    with db.session() as s:
        return json_response(
            {"service": views.service(req, logic.get_service(s, req.path["service_id"]))}
        )


@api.route("/v3/services/{service_id}", methods=["PATCH"])
def update_service(req: Req):
    obj = body_object(req, "service")
    validation.validate(SERVICE_UPDATE, obj)
    authorize(req, "identity:update_service")
    service_id = req.path["service_id"]
    _require_matching_id(obj, service_id, "service")
    with db.transaction() as s:
        svc = logic.get_service(s, service_id)
        for key in ("type", "name", "enabled"):
            if key in obj:
                setattr(svc, key, obj[key])
        if "description" in obj:
            svc.description = obj["description"] or ""
        _merge_extra(svc, split_extra(obj, SERVICE_CORE))
        s.flush()
        out = views.service(req, svc)
    core.changed("service.updated", {"resource_info": service_id})
    return json_response({"service": out})


@api.route("/v3/services/{service_id}", methods=["DELETE"])
def delete_service(req: Req):
    authorize(req, "identity:delete_service")
    service_id = req.path["service_id"]
    with db.transaction() as s:
        svc = logic.get_service(s, service_id)
        if limits.refer_to(s, service_id=svc.id):
            raise errors.Forbidden(f"Unable to delete service {svc.id} because registered limits refer to it.")
        # A service takes its endpoints with it (explicitly, whatever the database's FKs do).
        s.execute(sa.delete(m.Endpoint).where(m.Endpoint.service_id == svc.id))
        s.delete(svc)
    core.changed("service.deleted", {"resource_info": service_id})
    return empty()


# -- endpoints -------------------------------------------------------------------


def _endpoint_region(s, obj: dict) -> tuple[bool, str | None, bool]:
    """(given, region id, region created) of an endpoint body.

    ``region_id`` must name an existing region (400 otherwise). The legacy
    ``region`` attribute, which keystoneclient and old Tempest still send,
    creates its region when missing, exactly as Keystone does.
    """
    if obj.get("region_id") is not None:
        if s.get(m.Region, obj["region_id"]) is None:
            raise errors.BadRequest(
                f"Invalid input for field 'region_id': region {obj['region_id']} does not exist."
            )
        return True, obj["region_id"], False
    if obj.get("region") is not None:
        name = obj["region"]
        if not name:
            raise errors.BadRequest("Invalid input for field 'region': must not be empty.")
        if s.get(m.Region, name) is None:
            s.add(m.Region(id=name, description="", parent_region_id=None, extra={}))
            s.flush()
            return True, name, True
        return True, name, False
    return ("region_id" in obj or "region" in obj), None, False


def _check_service(s, service_id: str) -> None:
    if s.get(m.Service, service_id) is None:
        raise errors.BadRequest(
            f"Invalid input for field 'service_id': service {service_id} does not exist."
        )


@api.route("/v3/endpoints", methods=["GET"])
def list_endpoints(req: Req):
    authorize(req, "identity:list_endpoints")
    q = sa.select(m.Endpoint).order_by(m.Endpoint.service_id, m.Endpoint.interface, m.Endpoint.id)
    interface = req.query.get("interface")
    if interface is not None:
        if interface not in logic.INTERFACES:
            raise errors.BadRequest(
                f"Invalid input for field 'interface': {interface!r} is not one of "
                f"{', '.join(logic.INTERFACES)}."
            )
        q = q.where(m.Endpoint.interface == interface)
    if "service_id" in req.query:
        q = q.where(m.Endpoint.service_id == req.query["service_id"])
    if "region_id" in req.query:
        q = q.where(m.Endpoint.region_id == req.query["region_id"])
    enabled = query_bool(req, "enabled")
    if enabled is not None:
        q = q.where(m.Endpoint.enabled.is_(enabled))
    with db.session() as s:
        rows, truncated = limit_list(list(s.scalars(q)))
        return collection(req, "endpoints", [views.endpoint(req, e) for e in rows], truncated)


@api.route("/v3/endpoints", methods=["POST"])
def create_endpoint(req: Req):
    obj = body_object(req, "endpoint")
    validation.validate(ENDPOINT_CREATE, obj)
    authorize(req, "identity:create_endpoint")
    # (a legacy "region" may be created here, possibly racing another request)
    with db.transaction("Conflict occurred attempting to store endpoint: retry the request.") as s:
        _check_service(s, obj["service_id"])
        _, region_id, created_region = _endpoint_region(s, obj)
        ep = m.Endpoint(
            id=core.new_id(),  # a client-sent id is not used, as in Keystone
            service_id=obj["service_id"],
            interface=obj["interface"],
            region_id=region_id,
            url=obj["url"],
            enabled=obj.get("enabled", True),
            extra=split_extra(obj, ENDPOINT_CORE),
        )
        s.add(ep)
        s.flush()
        out = views.endpoint(req, ep)
    if created_region:
        core.changed("region.created", {"resource_info": region_id})
    core.changed("endpoint.created", {"resource_info": ep.id})
    return json_response({"endpoint": out}, 201)


@api.route("/v3/endpoints/{endpoint_id}", methods=["GET"])
def get_endpoint(req: Req):
    authorize(req, "identity:get_endpoint")
    with db.session() as s:
        return json_response(
            {"endpoint": views.endpoint(req, logic.get_endpoint(s, req.path["endpoint_id"]))}
        )


@api.route("/v3/endpoints/{endpoint_id}", methods=["PATCH"])
def update_endpoint(req: Req):
    obj = body_object(req, "endpoint")
    validation.validate(ENDPOINT_UPDATE, obj)
    authorize(req, "identity:update_endpoint")
    endpoint_id = req.path["endpoint_id"]
    _require_matching_id(obj, endpoint_id, "endpoint")
    with db.transaction("Conflict occurred attempting to update endpoint: retry the request.") as s:
        ep = logic.get_endpoint(s, endpoint_id)
        if "service_id" in obj:
            _check_service(s, obj["service_id"])
            ep.service_id = obj["service_id"]
        given, region_id, created_region = _endpoint_region(s, obj)
        if given:
            ep.region_id = region_id
        for key in ("interface", "url", "enabled"):
            if key in obj:
                setattr(ep, key, obj[key])
        _merge_extra(ep, split_extra(obj, ENDPOINT_CORE))
        s.flush()
        out = views.endpoint(req, ep)
    if created_region:
        core.changed("region.created", {"resource_info": region_id})
    core.changed("endpoint.updated", {"resource_info": endpoint_id})
    return json_response({"endpoint": out})


@api.route("/v3/endpoints/{endpoint_id}", methods=["DELETE"])
def delete_endpoint(req: Req):
    authorize(req, "identity:delete_endpoint")
    endpoint_id = req.path["endpoint_id"]
    with db.transaction() as s:
        s.delete(logic.get_endpoint(s, endpoint_id))
    core.changed("endpoint.deleted", {"resource_info": endpoint_id})
    return empty()
