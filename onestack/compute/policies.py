"""Default policy of the compute service (Nova's rule names, simplified defaults).

Members act on the servers, keypairs and server groups of their own project;
admins on everything; host-level views (services, hypervisors, host names of
servers) are admin-only. Operators override any rule in ``<policy dir>/compute.yaml``.
"""

from __future__ import annotations

from onestack.common import errors
from onestack.common.policy import Enforcer

ADMIN = "role:admin"
OWNER = "project_id:%(target.project_id)s"
MEMBER = f"{ADMIN} or (role:member and {OWNER})"
READER = f"{ADMIN} or (role:reader and {OWNER})"
ANY = "@"

_P = "os_compute_api:"
DEFAULTS: dict[str, str] = {
    "admin_api": ADMIN,
    _P + "servers:index": READER,
    _P + "servers:detail": READER,
    _P + "servers:index:get_all_tenants": ADMIN,
    _P + "servers:detail:get_all_tenants": ADMIN,
    _P + "servers:allow_all_filters": ADMIN,
    _P + "servers:show": READER,
    _P + "servers:show:host_status": ADMIN,
    _P + "extended_server_attributes": ADMIN,
    _P + "servers:create": MEMBER,
    _P + "servers:create:forced_host": ADMIN,
    _P + "servers:create:requested_destination": ADMIN,
    _P + "servers:update": MEMBER,
    _P + "servers:delete": MEMBER,
    _P + "servers:action": MEMBER,  # every server action of an owner
    _P + "os-lock-server:unlock:unlock_override": ADMIN,
    _P + "os-admin-actions:reset_state": ADMIN,
    _P + "os-server-diagnostics": ADMIN,
    _P + "os-instance-actions:events": ADMIN,
    _P + "os-instance-actions:events:details": ADMIN,
    _P + "os-flavor-manage:create": ADMIN,
    _P + "os-flavor-manage:update": ADMIN,
    _P + "os-flavor-manage:delete": ADMIN,
    _P + "os-flavor-access": ADMIN,
    _P + "os-flavor-extra-specs:manage": ADMIN,
    _P + "os-keypairs:other_user": ADMIN,
    _P + "os-services": ADMIN,
    _P + "os-hypervisors": ADMIN,
    _P + "os-availability-zone:detail": ADMIN,
    _P + "os-quota-sets:update": ADMIN,
    _P + "os-quota-sets:show": READER,
    _P + "os-quota-sets:other_project": ADMIN,
    _P + "os-simple-tenant-usage:list": ADMIN,
    _P + "os-simple-tenant-usage:show": READER,
    _P + "os-server-groups:index:all_projects": ADMIN,
    _P + "os-migrate-server:migrate": ADMIN,
    _P + "os-migrate-server:migrate:host": ADMIN,
    _P + "os-migrate-server:migrate_live": ADMIN,
    _P + "os-migrate-server:migrate_live:host": ADMIN,
    _P + "os-evacuate": ADMIN,
    _P + "os-migrations:index": ADMIN,
    _P + "servers:migrations:index": ADMIN,
    _P + "servers:migrations:show": ADMIN,
    _P + "servers:migrations:force_complete": ADMIN,
    _P + "servers:migrations:delete": ADMIN,
    _P + "os-remote-consoles": MEMBER,
    _P + "os-attach-interfaces:list": READER,
    _P + "os-attach-interfaces:show": READER,
    _P + "os-attach-interfaces:create": MEMBER,
    _P + "os-attach-interfaces:delete": MEMBER,
    _P + "os-flavor-access:add_tenant_access": ADMIN,
    _P + "os-flavor-access:remove_tenant_access": ADMIN,
    _P + "os-flavor-extra-specs:create": ADMIN,
    _P + "os-flavor-extra-specs:update": ADMIN,
    _P + "os-flavor-extra-specs:delete": ADMIN,
    _P + "os-keypairs:index": f"{ADMIN} or user_id:%(target.user_id)s",
    _P + "os-keypairs:show": f"{ADMIN} or user_id:%(target.user_id)s",
    _P + "os-keypairs:create": f"{ADMIN} or user_id:%(target.user_id)s",
    _P + "os-keypairs:delete": f"{ADMIN} or user_id:%(target.user_id)s",
    _P + "os-quota-sets:detail": READER,
    _P + "os-quota-sets:delete": ADMIN,
    _P + "os-quota-class-sets:show": ADMIN,
    _P + "os-quota-class-sets:update": ADMIN,
    _P + "limits:other_project": ADMIN,
    _P + "os-services:list": ADMIN,
    _P + "os-services:update": ADMIN,
    _P + "os-services:delete": ADMIN,
    _P + "os-hypervisors:list": ADMIN,
    _P + "os-hypervisors:list-detail": ADMIN,
    _P + "os-hypervisors:statistics": ADMIN,
    _P + "os-hypervisors:show": ADMIN,
    _P + "os-hypervisors:uptime": ADMIN,
    _P + "os-hypervisors:search": ADMIN,
    _P + "os-hosts": ADMIN,
    _P + "os-aggregates:index": ADMIN,
    _P + "os-aggregates:show": ADMIN,
    _P + "os-aggregates:create": ADMIN,
    _P + "os-aggregates:update": ADMIN,
    _P + "os-aggregates:delete": ADMIN,
    _P + "os-aggregates:add_host": ADMIN,
    _P + "os-aggregates:remove_host": ADMIN,
    _P + "os-aggregates:set_metadata": ADMIN,
    _P + "os-server-groups:index": READER,
    _P + "os-server-groups:create": MEMBER,
    _P + "os-server-groups:show": READER,
    _P + "os-server-groups:delete": MEMBER,
    _P + "os-server-external-events:create": f"{ADMIN} or role:service",  # Cinder's, Neutron's service users
}


class State:
    enforcer: Enforcer | None = None


def configure(policy_dir) -> None:
    State.enforcer = Enforcer("compute", DEFAULTS, policy_dir)


def authorize(rule: str, ctx, target: dict | None = None) -> None:
    name = rule if rule.startswith(_P) or rule == "admin_api" else _P + rule
    if not State.enforcer.allowed(name, ctx, target or {"project_id": ctx.project_id}):
        raise errors.Forbidden(f"Policy doesn't allow {name} to be performed.")


def allowed(rule: str, ctx, target: dict | None = None) -> bool:
    name = rule if rule.startswith(_P) or rule == "admin_api" else _P + rule
    return State.enforcer.allowed(name, ctx, target or {"project_id": ctx.project_id})
