"""Unified limits, as Keystone keeps them: registered limits give the default limit of
a resource of a service (optionally in one region); limits override it for one project
or one domain. The enforcement model is ``flat``: the project hierarchy plays no part,
so any value is accepted and nothing is checked across parents and children.

A limit names its service, region and resource through its registered limit, so a
registered limit that limits refer to cannot be deleted or pointed elsewhere (403)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from onestack.common import errors
from onestack.identity import catalog, core
from onestack.identity import models as m

MODEL = {
    "name": "flat",
    "description": "Limit enforcement and validation does not take project hierarchy into consideration.",
}
_IDENTITY = ("service_id", "region_id", "resource_name")


def _invalid(attribute: str, target: str) -> errors.BadRequest:
    # Keystone's ValidationError for a reference to something that does not exist.
    return errors.BadRequest(
        f"Expecting to find {attribute} in {target}. The server could not comply with the "
        "request since it is either malformed or otherwise incorrect. The client is assumed "
        "to be in error."
    )


def _duplicate(kind: str) -> errors.Conflict:
    return errors.Conflict(f"Conflict occurred attempting to store {kind} - Duplicate entry.")


def _check_refs(s: Session, obj: dict, target: str) -> None:
    """The service, region, project and domain ``obj`` names exist (a 400 otherwise). A
    project that is a domain makes a domain limit, as in Keystone."""
    lookups = (("service_id", catalog.get_service), ("region_id", catalog.get_region),
               ("project_id", core.get_project), ("domain_id", core.get_domain))
    for key, get in lookups:
        if obj.get(key) is None:
            continue
        try:
            found = get(s, obj[key])
        except errors.NotFound:
            raise _invalid(key, target) from None
        if key == "project_id" and found.is_domain:
            obj["domain_id"] = obj.pop("project_id")


# -- registered limits --------------------------------------------------------------


def get_registered(s: Session, registered_limit_id: str) -> m.RegisteredLimit:
    r = s.get(m.RegisteredLimit, registered_limit_id)
    if r is None:
        raise errors.NotFound(f"Could not find registered limit for {registered_limit_id}.")
    return r


def find_registered(s: Session, service_id: str, region_id: str | None,
                    resource_name: str) -> m.RegisteredLimit | None:
    return s.scalar(sa.select(m.RegisteredLimit).where(
        m.RegisteredLimit.service_id == service_id,
        m.RegisteredLimit.region_id.is_(None) if region_id is None
        else m.RegisteredLimit.region_id == region_id,
        m.RegisteredLimit.resource_name == resource_name,
    ))


def list_registered(s: Session, filters: dict) -> list[m.RegisteredLimit]:
    q = sa.select(m.RegisteredLimit).order_by(m.RegisteredLimit.resource_name, m.RegisteredLimit.id)
    for key, value in filters.items():
        q = q.where(getattr(m.RegisteredLimit, key) == value)
    return list(s.scalars(q))


def create_registered(s: Session, objs: list[dict]) -> list[m.RegisteredLimit]:
    """All of ``objs`` (validated bodies) or none of them."""
    out = []
    for obj in objs:
        _check_refs(s, obj, "registered_limit")
        if find_registered(s, obj["service_id"], obj.get("region_id"), obj["resource_name"]):
            raise _duplicate("registered_limit")
        r = m.RegisteredLimit(id=core.new_id(), service_id=obj["service_id"],
                              region_id=obj.get("region_id"), resource_name=obj["resource_name"],
                              default_limit=obj["default_limit"], description=obj.get("description"))
        s.add(r)
        s.flush()  # (so a duplicate later in the same request is found)
        out.append(r)
    return out


def refer_to(s: Session, *, service_id: str | None = None, region_id: str | None = None) -> bool:
    """Whether any registered limit names this service (or region): those cannot go
    while it does (Keystone's foreign keys refuse it too)."""
    q = sa.select(m.RegisteredLimit.id)
    if service_id is not None:
        q = q.where(m.RegisteredLimit.service_id == service_id)
    if region_id is not None:
        q = q.where(m.RegisteredLimit.region_id == region_id)
    return s.scalar(q.limit(1)) is not None


def _referenced(s: Session, r: m.RegisteredLimit) -> bool:
    return s.scalar(sa.select(m.Limit.id).where(m.Limit.registered_limit_id == r.id).limit(1)) is not None


def _in_use(r: m.RegisteredLimit) -> errors.Forbidden:
    return errors.Forbidden(
        f"Unable to update or delete registered limit {r.id} because there are project "
        "limits associated with it."
    )


def update_registered(s: Session, r: m.RegisteredLimit, obj: dict) -> m.RegisteredLimit:
    _check_refs(s, obj, "registered_limit")
    new = {key: obj.get(key, getattr(r, key)) for key in _IDENTITY}
    if any(new[key] != getattr(r, key) for key in _IDENTITY):
        # Limits reach their service and resource through this row: moving it would move
        # them too. (Its default and description may still change.)
        if _referenced(s, r):
            raise _in_use(r)
        other = find_registered(s, new["service_id"], new["region_id"], new["resource_name"])
        if other is not None and other.id != r.id:
            raise _duplicate("registered_limit")
    for key, value in obj.items():
        setattr(r, key, value)
    s.flush()
    return r


def delete_registered(s: Session, r: m.RegisteredLimit) -> None:
    if _referenced(s, r):
        raise _in_use(r)
    s.delete(r)


# -- limits -----------------------------------------------------------------------------


def get_limit(s: Session, limit_id: str) -> m.Limit:
    row = s.get(m.Limit, limit_id)
    if row is None:
        raise errors.NotFound(f"Could not find limit for {limit_id}.")
    return row


def list_limits(s: Session, filters: dict, project_ids: list[str] | None = None,
                domain_id: str | None = None) -> list[tuple[m.Limit, m.RegisteredLimit]]:
    """Limits with their registered limits; ``project_ids``/``domain_id`` (when given)
    narrow them to what a non-admin caller may see."""
    q = (sa.select(m.Limit, m.RegisteredLimit)
         .join(m.RegisteredLimit, m.Limit.registered_limit_id == m.RegisteredLimit.id)
         .order_by(m.RegisteredLimit.resource_name, m.Limit.id))
    for key, value in filters.items():
        model = m.Limit if key in ("project_id", "domain_id") else m.RegisteredLimit
        q = q.where(getattr(model, key) == value)
    if project_ids is not None:
        visible = m.Limit.project_id.in_(project_ids)
        if domain_id is not None:
            visible = sa.or_(visible, m.Limit.domain_id == domain_id)
        q = q.where(visible)
    return [(lim, reg) for lim, reg in s.execute(q)]


def create_limits(s: Session, objs: list[dict]) -> list[tuple[m.Limit, m.RegisteredLimit]]:
    """All of ``objs`` (validated bodies) or none of them."""
    out = []
    for obj in objs:
        _check_refs(s, obj, "limit")
        reg = find_registered(s, obj["service_id"], obj.get("region_id"), obj["resource_name"])
        if reg is None:
            raise errors.Forbidden("Unable to create a limit that has no corresponding registered limit.")
        owner = (m.Limit.project_id == obj["project_id"]) if obj.get("project_id") \
            else (m.Limit.domain_id == obj["domain_id"])
        if s.scalar(sa.select(m.Limit.id).where(m.Limit.registered_limit_id == reg.id, owner)):
            raise _duplicate("limit")
        row = m.Limit(id=core.new_id(), registered_limit_id=reg.id, project_id=obj.get("project_id"),
                      domain_id=obj.get("domain_id"), resource_limit=obj["resource_limit"],
                      description=obj.get("description"))
        s.add(row)
        s.flush()
        out.append((row, reg))
    return out


def delete_for_project(s: Session, project_id: str) -> None:
    """A deleted project (or domain) takes its limits with it, as in Keystone."""
    s.execute(sa.delete(m.Limit).where(sa.or_(m.Limit.project_id == project_id,
                                              m.Limit.domain_id == project_id)))
