"""Default policy of the orchestration service (Heat's rule names, simplified defaults).

Members act on the stacks and software configs of their own project; readers read
them; admins act on everything (``global_tenant`` listings). Resource types, template
versions and validation are open to any authenticated user. Operators override any
rule in ``<policy dir>/orchestration.yaml``. A stack of another project is not
forbidden but absent (404), as in Heat.
"""

from __future__ import annotations

from onestack.common.policy import Enforcer

ADMIN = "role:admin"
OWNER = "project_id:%(target.project_id)s"
MEMBER = f"{ADMIN} or (role:member and {OWNER})"
READER = f"{ADMIN} or (role:reader and {OWNER})"
ANY = "@"

DEFAULTS: dict[str, str] = {
    "stacks:create": MEMBER,
    "stacks:index": READER,
    "stacks:global_index": ADMIN,
    "stacks:show": READER,
    "stacks:update": MEMBER,
    "stacks:delete": MEMBER,
    "stacks:abandon": MEMBER,
    "stacks:preview": MEMBER,
    "stacks:template": READER,
    "stacks:snapshot": MEMBER,
    "stacks:list_snapshots": READER,
    "stacks:show_snapshot": READER,
    "stacks:delete_snapshot": MEMBER,
    "stacks:restore_snapshot": MEMBER,
    "stacks:export": MEMBER,
    "stacks:action": MEMBER,
    "stacks:validate_template": ANY,
    "resource:index": READER,
    "resource:show": READER,
    "resource:metadata": READER,
    "resource:signal": MEMBER,
    "resource:mark_unhealthy": MEMBER,
    "events:index": READER,
    "resource_types:index": ANY,
    "resource_types:show": ANY,
    "software_configs:create": MEMBER,
    "software_configs:show": READER,
    "software_configs:index": READER,
    "software_configs:global_index": ADMIN,
    "software_configs:delete": MEMBER,
    "software_deployments:create": MEMBER,
    "software_deployments:index": READER,
    "software_deployments:show": READER,
    "software_deployments:update": MEMBER,
    "software_deployments:delete": MEMBER,
    "software_deployments:metadata": READER,
    "build_info:build_info": ANY,
}

enforcer = Enforcer("orchestration", DEFAULTS)


def configure(policy_dir) -> Enforcer:
    global enforcer
    enforcer = Enforcer("orchestration", DEFAULTS, policy_dir)
    return enforcer


def authorize(rule: str, ctx, project_id: str | None = None) -> None:
    enforcer.authorize(rule, ctx, {"project_id": project_id or ctx.project_id})


def allowed(rule: str, ctx, project_id: str | None = None) -> bool:
    return enforcer.allowed(rule, ctx, {"project_id": project_id or ctx.project_id})
