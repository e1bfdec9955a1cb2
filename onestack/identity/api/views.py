"""The identity service's wire format: every resource as the v3 API shows it."""

from __future__ import annotations

from onestack.common.http import Req
from onestack.common.timeutils import iso, iso_plain
from onestack.identity import models as m
from onestack.identity import security
from onestack.identity.api.common import base, link


def domain(req: Req, d: m.Project, tags: list[str] | None = None) -> dict:
    return {
        **(d.extra or {}),
        "id": d.id,
        "name": d.name,
        "description": d.description,
        "enabled": d.enabled,
        "tags": tags or [],
        "options": {},
        "links": link(req, f"domains/{d.id}"),
    }


def project(req: Req, p: m.Project, tags: list[str] | None = None) -> dict:
    return {
        **(p.extra or {}),
        "id": p.id,
        "name": p.name,
        "domain_id": p.domain_id if not p.is_domain else None,
        "description": p.description,
        "enabled": p.enabled,
        "parent_id": p.parent_id,
        "is_domain": p.is_domain,
        "tags": tags or [],
        "options": {},
        "links": link(req, f"projects/{p.id}"),
    }


def user(req: Req, u: m.User) -> dict:
    out = {
        **(u.extra or {}),
        "id": u.id,
        "name": u.name,
        "domain_id": u.domain_id,
        "enabled": security.effectively_enabled(u),
        "password_expires_at": iso_plain(u.password_expires_at),
        "options": dict(u.options or {}),
        "links": link(req, f"users/{u.id}"),
    }
    if u.default_project_id:
        out["default_project_id"] = u.default_project_id
    return out


def group(req: Req, g: m.Group) -> dict:
    return {
        **(g.extra or {}),
        "id": g.id,
        "name": g.name,
        "domain_id": g.domain_id,
        "description": g.description,
        "links": link(req, f"groups/{g.id}"),
    }


def role(req: Req, r: m.Role) -> dict:
    return {
        **(r.extra or {}),
        "id": r.id,
        "name": r.name,
        "domain_id": None if r.domain_id == m.NULL_DOMAIN else r.domain_id,
        "description": r.description,
        "options": {},
        "links": link(req, f"roles/{r.id}"),
    }


def role_ref(req: Req, r: m.Role) -> dict:
    """A role as it appears inside implied-role answers."""
    return {"id": r.id, "name": r.name, "links": link(req, f"roles/{r.id}")}


def region(req: Req, r: m.Region) -> dict:
    return {
        **(r.extra or {}),
        "id": r.id,
        "description": r.description,
        "parent_region_id": r.parent_region_id,
        "links": link(req, f"regions/{r.id}"),
    }


def service(req: Req, s: m.Service) -> dict:
    return {
        **(s.extra or {}),
        "id": s.id,
        "type": s.type,
        "name": s.name,
        "description": s.description,
        "enabled": s.enabled,
        "links": link(req, f"services/{s.id}"),
    }


def endpoint(req: Req, e: m.Endpoint) -> dict:
    return {
        **(e.extra or {}),
        "id": e.id,
        "interface": e.interface,
        "region": e.region_id,
        "region_id": e.region_id,
        "service_id": e.service_id,
        "url": e.url,
        "enabled": e.enabled,
        "links": link(req, f"endpoints/{e.id}"),
    }


def app_credential(req: Req, c: m.AppCredential, roles: list[m.Role], secret: str | None = None) -> dict:
    out = {
        "id": c.id,
        "name": c.name,
        "description": c.description or None,
        "user_id": c.user_id,
        "project_id": c.project_id,
        "expires_at": iso_plain(c.expires_at),
        "unrestricted": c.unrestricted,
        "system": c.system,
        "roles": [{"id": r.id, "name": r.name, "domain_id": None} for r in roles],
        "access_rules": [],
        "links": link(req, f"users/{c.user_id}/application_credentials/{c.id}"),
    }
    if secret is not None:
        out["secret"] = secret
    return out


def credential(req: Req, c: m.Credential, blob: str) -> dict:
    return {
        **(c.extra or {}),
        "id": c.id,
        "user_id": c.user_id,
        "project_id": c.project_id,
        "type": c.type,
        "blob": blob,
        "links": link(req, f"credentials/{c.id}"),
    }


def ec2_credential(req: Req, c: m.Credential, blob: dict) -> dict:
    """An ec2 credential as the OS-EC2 extension shows it (``blob`` decrypted, parsed)."""
    access = blob.get("access")
    return {
        "user_id": c.user_id,
        "tenant_id": c.project_id,
        "access": access,
        "secret": blob.get("secret"),
        "trust_id": blob.get("trust_id"),
        "links": link(req, f"users/{c.user_id}/credentials/OS-EC2/{access}"),
    }


def trust(req: Req, t: m.Trust, roles: list[m.Role] | None = None) -> dict:
    """A trust (OS-TRUST); with its roles (and their links) where Keystone shows them:
    not in lists."""
    out = {
        "id": t.id,
        "trustor_user_id": t.trustor_user_id,
        "trustee_user_id": t.trustee_user_id,
        "project_id": t.project_id,
        "impersonation": t.impersonation,
        "expires_at": iso(t.expires_at, micro=True),
        "remaining_uses": t.remaining_uses,
        "redelegated_trust_id": t.redelegated_trust_id,
        "redelegation_count": t.redelegation_count,
        "links": link(req, f"OS-TRUST/trusts/{t.id}"),
    }
    if roles is not None:
        out["roles"] = [role(req, r) for r in roles]
        out["roles_links"] = {"self": f"{base(req)}/OS-TRUST/trusts/{t.id}/roles",
                              "previous": None, "next": None}
    return out


def role_assignment(req: Req, a, names: dict | None = None) -> dict:
    """One entry of GET /v3/role_assignments (``a`` is an assignments.AssignmentRef).

    ``links.assignment`` is the grant the entry comes from (the OS-INHERIT form
    for inherited grants); effective entries add ``membership`` when held through
    a group and ``prior_role`` when implied. ``names`` (include_names) maps
    "roles"/"users"/"groups"/"projects" to rows by id.
    """
    root = base(req)

    def named(kind: str, obj_id: str, with_domain: bool) -> dict:
        out: dict = {"id": obj_id}
        if names is None:
            return out
        row = names[kind].get(obj_id)
        out["name"] = row.name if row is not None else ""
        if with_domain:
            dom = names["projects"].get(row.domain_id) if row is not None else None
            out["domain"] = {"id": dom.id if dom else "", "name": dom.name if dom else ""}
        return out

    entry: dict = {}
    role_out = named("roles", a.role_id, False)
    if names is not None:
        r = names["roles"].get(a.role_id)
        if r is not None and r.domain_id != m.NULL_DOMAIN:
            dom = names["projects"].get(r.domain_id)
            role_out["domain"] = {"id": r.domain_id, "name": dom.name if dom else ""}
    entry["role"] = role_out
    if a.target == "System":
        entry["scope"] = {"system": {"all": True}}
    elif a.target == "Domain":
        entry["scope"] = {"domain": named("projects", a.target_id, False)}
    else:
        entry["scope"] = {"project": named("projects", a.target_id, True)}
    if a.user_id:
        entry["user"] = named("users", a.user_id, True)
    else:
        entry["group"] = named("groups", a.group_id, True)

    # The grant's URL: where it was made, by whom, which role.
    src_kind, src_id = a.source or (a.target, a.target_id)
    path = {"Project": f"/projects/{src_id}", "Domain": f"/domains/{src_id}"}.get(src_kind, "/system")
    if a.via_group:
        path += f"/groups/{a.via_group}"
    elif a.user_id:
        path += f"/users/{a.user_id}"
    else:
        path += f"/groups/{a.group_id}"
    path += f"/roles/{a.granted_role_id or a.role_id}"
    if a.inherited:
        entry["scope"]["OS-INHERIT:inherited_to"] = "projects"
        path = f"/OS-INHERIT{path}/inherited_to_projects"
    links = {"assignment": root + path}
    if a.via_group:
        links["membership"] = f"{root}/groups/{a.via_group}/users/{a.user_id}"
    if a.prior_role_id:
        links["prior_role"] = f"{root}/roles/{a.prior_role_id}/implies/{a.role_id}"
    entry["links"] = links
    return entry


def registered_limit(req: Req, r: m.RegisteredLimit) -> dict:
    return {
        "id": r.id,
        "service_id": r.service_id,
        "region_id": r.region_id,
        "resource_name": r.resource_name,
        "default_limit": r.default_limit,
        "description": r.description,
        "links": link(req, f"registered_limits/{r.id}"),
    }


def limit(req: Req, lim: m.Limit, reg: m.RegisteredLimit) -> dict:
    """A limit, with the service, region and resource of its registered limit."""
    return {
        "id": lim.id,
        "project_id": lim.project_id,
        "domain_id": lim.domain_id,
        "service_id": reg.service_id,
        "region_id": reg.region_id,
        "resource_name": reg.resource_name,
        "resource_limit": lim.resource_limit,
        "description": lim.description,
        "links": link(req, f"limits/{lim.id}"),
    }
