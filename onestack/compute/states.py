"""Nova's instance states, and the API status each combination shows."""

from __future__ import annotations

# vm_state
ACTIVE, BUILDING, STOPPED, PAUSED, SUSPENDED, RESCUED, RESIZED = (
    "active", "building", "stopped", "paused", "suspended", "rescued", "resized")
ERROR, DELETED, SHELVED, SHELVED_OFFLOADED, SOFT_DELETED = (
    "error", "deleted", "shelved", "shelved_offloaded", "soft-delete")

# task_state
SCHEDULING, NETWORKING, BLOCK_DEVICE_MAPPING, SPAWNING = (
    "scheduling", "networking", "block_device_mapping", "spawning")
DELETING, REBOOTING, REBOOTING_HARD = "deleting", "rebooting", "rebooting_hard"
POWERING_OFF, POWERING_ON, PAUSING, UNPAUSING = "powering-off", "powering-on", "pausing", "unpausing"
SUSPENDING, RESUMING, RESCUING, UNRESCUING = "suspending", "resuming", "rescuing", "unrescuing"
REBUILDING, RESIZE_PREP, RESIZE_MIGRATING, RESIZE_FINISH = (
    "rebuilding", "resize_prep", "resize_migrating", "resize_finish")
RESIZE_REVERTING, RESIZE_CONFIRMING = "resize_reverting", "resize_confirming"
RESIZE_MIGRATED, MIGRATING, REBUILD_SPAWNING = "resize_migrated", "migrating", "rebuild_spawning"
IMAGE_SNAPSHOT, IMAGE_UPLOADING, IMAGE_PENDING_UPLOAD = (
    "image_snapshot", "image_uploading", "image_pending_upload")
SHELVING, SHELVING_IMAGE_UPLOADING, SHELVING_OFFLOADING, UNSHELVING = (
    "shelving", "shelving_image_uploading", "shelving_offloading", "unshelving")

_TASK_STATUS = {
    REBOOTING: "REBOOT", "reboot_pending": "REBOOT", "reboot_started": "REBOOT",
    REBOOTING_HARD: "HARD_REBOOT", "reboot_pending_hard": "HARD_REBOOT", "reboot_started_hard": "HARD_REBOOT",
    REBUILDING: "REBUILD", "rebuild_block_device_mapping": "REBUILD", "rebuild_spawning": "REBUILD",
    MIGRATING: "MIGRATING", RESIZE_PREP: "RESIZE", RESIZE_MIGRATING: "RESIZE",
    RESIZE_MIGRATED: "RESIZE", RESIZE_FINISH: "RESIZE", "updating_password": "PASSWORD",
}

_VM_STATUS = {
    ACTIVE: "ACTIVE", BUILDING: "BUILD", STOPPED: "SHUTOFF", RESIZED: "VERIFY_RESIZE",
    PAUSED: "PAUSED", SUSPENDED: "SUSPENDED", RESCUED: "RESCUE", ERROR: "ERROR", DELETED: "DELETED",
    SOFT_DELETED: "SOFT_DELETED", SHELVED: "SHELVED", SHELVED_OFFLOADED: "SHELVED_OFFLOADED",
}


def status(vm_state: str, task_state: str | None) -> str:
    """The API's ``status`` of a server (Nova's status_from_state)."""
    if vm_state == RESIZED and task_state == RESIZE_REVERTING:
        return "REVERT_RESIZE"
    if vm_state in (ACTIVE, STOPPED, ERROR) and task_state in _TASK_STATUS:
        if vm_state == ACTIVE or task_state.startswith(("resize", "rebuild", "migrat")):
            return _TASK_STATUS[task_state]
    return _VM_STATUS.get(vm_state, "UNKNOWN")


def vm_states_for(status_name: str) -> list[str]:
    """The vm_states behind a status filter (``?status=ACTIVE``)."""
    s = status_name.upper()
    out = [vm for vm, st in _VM_STATUS.items() if st == s]
    if s in ("REBOOT", "HARD_REBOOT", "REBUILD", "RESIZE", "MIGRATING", "PASSWORD"):
        out.append(ACTIVE)
    if s == "REVERT_RESIZE":
        out.append(RESIZED)
    return out


STATUSES = set(_VM_STATUS.values()) | set(_TASK_STATUS.values()) | {"REVERT_RESIZE"}
