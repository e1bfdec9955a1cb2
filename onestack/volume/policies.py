"""Default policy of the volume service (Cinder's rule names, simplified defaults).

Members act on the volumes, snapshots, backups and transfers of their own
project; readers read them; admins act on everything. Types, services, host
attributes, force-delete and reset-status are admin's. Operators override any
rule in ``<policy dir>/volume.yaml``.
"""

from __future__ import annotations

from onestack.common import errors
from onestack.common.policy import Enforcer

ADMIN = "role:admin"
OWNER = "project_id:%(target.project_id)s"
MEMBER = f"{ADMIN} or (role:member and {OWNER})"
READER = f"{ADMIN} or (role:reader and {OWNER})"
ANY = "@"

DEFAULTS: dict[str, str] = {
    "admin_api": ADMIN,
    # volumes
    "volume:create": MEMBER,
    "volume:create_from_image": MEMBER,
    "volume:get": READER,
    "volume:get_all": READER,
    "volume:get_all_tenants": ADMIN,
    "volume:update": MEMBER,
    "volume:delete": MEMBER,
    "volume:force_delete": ADMIN,
    "volume:extend": MEMBER,
    "volume:extend_attached_volume": MEMBER,
    "volume:retype": MEMBER,
    "volume:update_readonly_flag": MEMBER,
    "volume:update_volume_metadata": MEMBER,
    "volume:delete_volume_metadata": MEMBER,
    "volume:get_volume_metadata": READER,
    "volume:multiattach": MEMBER,
    "volume:attachment_create": MEMBER,
    "volume:attachment_update": MEMBER,
    "volume:attachment_delete": MEMBER,
    "volume:attachment_complete": MEMBER,
    "volume_extension:volume_actions:upload_image": MEMBER,
    "volume_extension:volume_actions:upload_public": ADMIN,
    "volume_extension:volume_admin_actions:reset_status": ADMIN,
    "volume_extension:volume_admin_actions:force_delete": ADMIN,
    "volume_extension:volume_admin_actions:force_detach": ADMIN,
    "volume_extension:volume_host_attribute": ADMIN,
    "volume_extension:volume_mig_status_attribute": ADMIN,
    "volume_extension:volume_image_metadata:show": READER,
    "volume_extension:volume_image_metadata:set": MEMBER,
    "volume_extension:volume_image_metadata:remove": MEMBER,
    "volume:update_volume_admin_metadata": ADMIN,
    # snapshots
    "volume:create_snapshot": MEMBER,
    "volume:get_snapshot": READER,
    "volume:get_all_snapshots": READER,
    "volume:update_snapshot": MEMBER,
    "volume:delete_snapshot": MEMBER,
    "volume:update_snapshot_metadata": MEMBER,
    "volume:delete_snapshot_metadata": MEMBER,
    "volume:get_snapshot_metadata": READER,
    "volume_extension:snapshot_admin_actions:reset_status": ADMIN,
    "volume_extension:snapshot_admin_actions:force_delete": ADMIN,
    # backups
    "backup:create": MEMBER,
    "backup:get": READER,
    "backup:get_all": READER,
    "backup:update": MEMBER,
    "backup:delete": MEMBER,
    "backup:restore": MEMBER,
    "backup:backup-export": ADMIN,
    "backup:backup-import": ADMIN,
    "volume_extension:backup_admin_actions:reset_status": ADMIN,
    "volume_extension:backup_admin_actions:force_delete": ADMIN,
    # transfers
    "volume:create_transfer": MEMBER,
    "volume:get_transfer": READER,
    "volume:get_all_transfers": READER,
    "volume:accept_transfer": "role:member or role:admin",
    "volume:delete_transfer": MEMBER,
    # types
    "volume_extension:types_manage": ADMIN,
    "volume_extension:access_types_extra_specs": ADMIN,
    "volume_extension:volume_type_access": ADMIN,
    "volume_extension:volume_type_access:addProjectAccess": ADMIN,
    "volume_extension:volume_type_access:removeProjectAccess": ADMIN,
    "volume_extension:type_get": ANY,
    "volume_extension:type_get_all": ANY,
    # quotas, limits, services, zones
    "volume_extension:quotas:show": READER,
    "volume_extension:quotas:update": ADMIN,
    "volume_extension:quotas:delete": ADMIN,
    "volume_extension:quota_classes": ADMIN,
    "volume_extension:services:index": ADMIN,
    "volume_extension:services:update": ADMIN,
    "volume_extension:availability_zone_list": ANY,
    "volume_extension:capabilities": ADMIN,
    "scheduler_extension:scheduler_stats:get_pools": ADMIN,
    "limits_extension:used_limits": READER,
    "message:get_all": READER,
}


class State:
    enforcer: Enforcer | None = None


def configure(policy_dir) -> None:
    State.enforcer = Enforcer("volume", DEFAULTS, policy_dir)


def authorize(rule: str, ctx, target: dict | None = None) -> None:
    if not State.enforcer.allowed(rule, ctx, target or {"project_id": ctx.project_id}):
        raise errors.Forbidden(f"Policy doesn't allow {rule} to be performed.")


def allowed(rule: str, ctx, target: dict | None = None) -> bool:
    return State.enforcer.allowed(rule, ctx, target or {"project_id": ctx.project_id})
