"""Regions, services and endpoints, and the service catalog built from them."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from onestack.common import errors
from onestack.identity import core
from onestack.identity import models as m

INTERFACES = ("public", "internal", "admin")


def get_region(s: Session, region_id: str) -> m.Region:
    return core.fetch(s, m.Region, region_id, "region")


def get_service(s: Session, service_id: str) -> m.Service:
    return core.fetch(s, m.Service, service_id, "service")


def get_endpoint(s: Session, endpoint_id: str) -> m.Endpoint:
    return core.fetch(s, m.Endpoint, endpoint_id, "endpoint")


def check_parent_region(s: Session, region_id: str | None, parent_id: str | None) -> None:
    if parent_id is None:
        return
    seen = {region_id} if region_id else set()
    cur = parent_id
    while cur:
        if cur in seen:
            raise errors.BadRequest(
                f"Circular reference: region {region_id} cannot have parent {parent_id}."
            )
        seen.add(cur)
        parent = s.get(m.Region, cur)
        if parent is None:
            raise errors.BadRequest(f"Parent region {cur} not found.")
        cur = parent.parent_region_id


_PROJECT_VARS = ("$(project_id)s", "%(project_id)s", "$(tenant_id)s", "%(tenant_id)s")


def substitute(url: str, project_id: str | None) -> str | None:
    """Fill the project id into an endpoint URL that names it (Swift's
    ``.../AUTH_$(project_id)s``); None when it names it and there is no project."""
    if not any(v in url for v in _PROJECT_VARS):
        return url
    if not project_id:
        return None
    for v in _PROJECT_VARS:
        url = url.replace(v, project_id)
    return url


def build(s: Session, project_id: str | None = None) -> list[dict]:
    """The catalog in a token: enabled services with their enabled endpoints,
    URLs filled in for the token's project (endpoints that need one are left
    out of tokens without a project, as Keystone does)."""
    services = s.scalars(sa.select(m.Service).where(m.Service.enabled.is_(True)).order_by(m.Service.type))
    endpoints: dict[str, list[m.Endpoint]] = {}
    for ep in s.scalars(sa.select(m.Endpoint).where(m.Endpoint.enabled.is_(True))):
        url = substitute(ep.url, project_id)
        if url is not None:
            endpoints.setdefault(ep.service_id, []).append((ep, url))
    out = []
    for svc in services:
        out.append(
            {
                "endpoints": [
                    {
                        "id": ep.id,
                        "interface": ep.interface,
                        "region": ep.region_id,
                        "region_id": ep.region_id,
                        "url": url,
                    }
                    for ep, url in sorted(endpoints.get(svc.id, []), key=lambda e: e[0].interface)
                ],
                "id": svc.id,
                "type": svc.type,
                "name": svc.name,
            }
        )
    return out


def ensure_entry(s: Session, type_: str, name: str, description: str, url: str, region: str) -> None:
    """Create (or repoint) a service and its three endpoints; used by bootstrap."""
    svc = s.scalar(sa.select(m.Service).where(m.Service.type == type_, m.Service.name == name))
    if svc is None:
        svc = m.Service(id=core.new_id(), type=type_, name=name, description=description,
                        enabled=True, extra={})
        s.add(svc)
        s.flush()
    existing = {ep.interface: ep for ep in s.scalars(
        sa.select(m.Endpoint).where(m.Endpoint.service_id == svc.id, m.Endpoint.region_id == region))}
    for interface in INTERFACES:
        ep = existing.get(interface)
        if ep is None:
            s.add(m.Endpoint(id=core.new_id(), service_id=svc.id, interface=interface,
                             region_id=region, url=url, enabled=True, extra={}))
        elif ep.url != url:
            ep.url = url
