"""Default policy of the alarming service (Aodh's rule names, its secure-RBAC defaults).

Members act on the alarms of their own project, readers read them; admins act on every
project's (``all_projects``), set quotas, and may create ``log://`` actions. Operators
override any rule in ``<policy dir>/alarming.yaml``. An alarm of another project is not
forbidden but absent (404), as in Aodh.
"""

from __future__ import annotations

from onestack.common.policy import Enforcer

ADMIN = "role:admin"
OWNER = "project_id:%(target.project_id)s"
MEMBER = f"{ADMIN} or (role:member and {OWNER})"
READER = f"{ADMIN} or (role:reader and {OWNER})"

DEFAULTS: dict[str, str] = {
    "context_is_admin": ADMIN,
    # not segregated: the caller sees every project (Aodh's "segregation" rule)
    "segregation": ADMIN,
    "telemetry:get_alarm": READER,
    "telemetry:get_alarms": READER,
    "telemetry:get_alarms:all_projects": ADMIN,
    "telemetry:query_alarm": READER,
    "telemetry:create_alarm": MEMBER,
    "telemetry:change_alarm": MEMBER,
    "telemetry:delete_alarm": MEMBER,
    "telemetry:get_alarm_state": READER,
    "telemetry:change_alarm_state": MEMBER,
    "telemetry:alarm_history": READER,
    "telemetry:query_alarm_history": READER,
    "telemetry:get_quotas": READER,
    "telemetry:update_quotas": ADMIN,
    "telemetry:delete_quotas": ADMIN,
}

enforcer = Enforcer("alarming", DEFAULTS)


def configure(policy_dir) -> Enforcer:
    global enforcer
    enforcer = Enforcer("alarming", DEFAULTS, policy_dir)
    return enforcer


def authorize(rule: str, ctx, project_id: str | None = None) -> None:
    enforcer.authorize(rule, ctx, {"project_id": project_id or ctx.project_id})


def allowed(rule: str, ctx, project_id: str | None = None) -> bool:
    return enforcer.allowed(rule, ctx, {"project_id": project_id or ctx.project_id})


def unlimited(ctx) -> bool:
    """The caller is not limited to its own project (Aodh's segregation)."""
    return enforcer.allowed("segregation", ctx, {})
