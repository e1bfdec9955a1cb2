"""Stack snapshots (create, list, show, delete, restore), export, abandon and adopt: the
domain of ``/stacks/{name}/{id}/snapshots``, ``.../export``, ``.../abandon`` and
``POST /stacks`` with ``adopt_stack_data``.

A snapshot's data is what abandon returns (Heat's ``prepare_abandon``): the template,
environment (its parameters holding the stack's), files, and each resource's physical
id, type, state, metadata and data (a nested stack's resources under its own). It
records the stack's definition and what it made; the physical resources themselves are
not copied (no server images or volume backups are taken). Restore updates the stack
back to the snapshot's definition (RESTORE_IN_PROGRESS -> RESTORE_COMPLETE): what was
added since goes, what was removed is made again.

Abandon deletes the stack's records and leaves its physical resources in place,
returning their description; adopt makes a stack from such a description without
making anything (ADOPT_COMPLETE), taking each resource's physical id and data.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import sqlalchemy as sa

from onestack.common import bus, db, errors
from onestack.common.timeutils import iso, utcnow
from onestack.orchestration import events, policies
from onestack.orchestration import models as m
from onestack.orchestration.engine import credentials, store
from onestack.orchestration.engine.runtime import TOPIC


class ActionInProgress(errors.Conflict):
    heat_type = "ActionInProgress"


class NotFound(errors.NotFound):
    heat_type = "NotFound"


def _busy(row: m.Stack) -> None:
    if row.status == "IN_PROGRESS":
        raise ActionInProgress(f"Stack {row.name} already has an action ({row.action}) in progress.")


def _cast(stack_id: str, action: str, ctx) -> None:
    bus.get().cast_sync(TOPIC, "stack_action", stack_id=stack_id, action=action, token=ctx.auth_token)


# ----------------------------------------------------------------- the data
def _resources(stack_id: str) -> dict[str, Any]:
    out = {}
    for r in store.resources(stack_id):
        item = {"name": r["name"], "resource_id": r["physical_id"], "type": r["type"], "action": r["action"],
                "status": r["status"], "metadata": r["metadata_"] or {}, "resource_data": r["data"] or {}}
        child = (r["data"] or {}).get("nested_stack_id")
        if child:
            item["resources"] = _resources(child)
        out[r["name"]] = item
    return out


def stack_data(stack: dict[str, Any]) -> dict[str, Any]:
    """The stack as export, abandon and snapshots describe it."""
    env = dict(stack["environment"] or {})
    env["parameters"] = {**(env.get("parameters") or {}), **(stack["parameters"] or {})}
    return {"name": stack["name"], "id": stack["id"], "action": stack["action"], "status": stack["status"],
            "environment": env, "files": stack["files"] or {}, "template": stack["template"],
            "resources": _resources(stack["id"]), "project_id": stack["project_id"],
            "stack_user_project_id": None, "tags": stack["tags"]}


def export(ctx, row: m.Stack) -> dict[str, Any]:
    policies.authorize("stacks:export", ctx, row.project_id)
    return stack_data(store.stack_dict(row))


# ----------------------------------------------------------------- snapshots
def view(s: m.Snapshot) -> dict[str, Any]:
    return {"id": s.id, "name": s.name, "action": "CREATE", "status": s.status,
            "status_reason": s.status_reason or None, "data": s.data or None, "creation_time": iso(s.created_at)}


def create_snapshot(ctx, row: m.Stack, body: Any) -> m.Snapshot:
    """Snapshot the stack (it reads only this service's records, so at once): the stack
    goes SNAPSHOT_IN_PROGRESS then SNAPSHOT_COMPLETE, as Heat's events say."""
    policies.authorize("stacks:snapshot", ctx, row.project_id)
    if not isinstance(body, dict):
        raise errors.BadRequest("The request body must be a JSON object.")
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise errors.BadRequest("The snapshot's name must be a string.")
    _busy(row)
    if row.action == "DELETE":
        raise errors.BadRequest(f"Stack {row.name} is being deleted; it cannot be snapshotted.")
    store.update_stack(row.id, action="SNAPSHOT", status="IN_PROGRESS", status_reason="Stack SNAPSHOT started",
                       updated_at=utcnow())
    events.record(row.id, row.name, events.STACK_TYPE, row.id, "SNAPSHOT", "IN_PROGRESS", "Stack SNAPSHOT started")
    stack = store.load_stack(row.id)
    data = {**stack_data(stack), "action": "SNAPSHOT", "status": "COMPLETE"}
    snap = m.Snapshot(id=str(uuid.uuid4()), stack_id=row.id, project_id=row.project_id, name=name,
                      status="COMPLETE", status_reason="Stack SNAPSHOT completed successfully", data=data,
                      created_at=utcnow())
    with db.transaction() as s:
        s.add(snap)
    reason = "Stack SNAPSHOT completed successfully"
    store.update_stack(row.id, action="SNAPSHOT", status="COMPLETE", status_reason=reason)
    events.record(row.id, row.name, events.STACK_TYPE, row.id, "SNAPSHOT", "COMPLETE", reason)
    return snap


def list_snapshots(ctx, row: m.Stack) -> list[m.Snapshot]:
    policies.authorize("stacks:list_snapshots", ctx, row.project_id)
    with db.session() as s:
        return list(s.scalars(sa.select(m.Snapshot).where(m.Snapshot.stack_id == row.id)
                              .order_by(m.Snapshot.created_at)))


def get_snapshot(ctx, row: m.Stack, snapshot_id: str, rule: str = "stacks:show_snapshot") -> m.Snapshot:
    policies.authorize(rule, ctx, row.project_id)
    with db.session() as s:
        snap = s.get(m.Snapshot, snapshot_id)
    if snap is None or snap.stack_id != row.id:
        raise NotFound(f"The Snapshot ({snapshot_id}) for Stack ({row.name}) could not be found.")
    return snap


def delete_snapshot(ctx, row: m.Stack, snapshot_id: str) -> None:
    snap = get_snapshot(ctx, row, snapshot_id, "stacks:delete_snapshot")
    with db.transaction() as s:
        s.delete(s.get(m.Snapshot, snap.id))


def restore(ctx, row: m.Stack, snapshot_id: str) -> None:
    """Update the stack back to the snapshot's template, environment and files (the engine
    runs it as RESTORE)."""
    snap = get_snapshot(ctx, row, snapshot_id, "stacks:restore_snapshot")
    if snap.status != "COMPLETE":
        raise errors.BadRequest(f"Snapshot {snapshot_id} is {snap.status}; only a COMPLETE one can be restored.")
    _busy(row)
    data = snap.data or {}
    with db.transaction() as s:
        r = s.get(m.Stack, row.id)
        if r.status == "IN_PROGRESS":
            raise ActionInProgress(f"Stack {row.name} already has an action ({r.action}) in progress.")
        r.previous = {"template": r.template, "environment": r.environment, "parameters": r.parameters,
                      "files": r.files}
        r.template, r.environment = data.get("template") or {}, data.get("environment") or {}
        r.parameters, r.files = {}, data.get("files") or {}
        r.action, r.status, r.status_reason = "RESTORE", "IN_PROGRESS", "Stack RESTORE started"
        r.updated_at = utcnow()
    _cast(row.id, "RESTORE", ctx)


# ----------------------------------------------------------------- abandon, adopt
def _tree(stack_id: str) -> list[str]:
    ids = [stack_id]
    for child in store.children(stack_id):
        ids += _tree(child["id"])
    return ids


def abandon(ctx, row: m.Stack) -> dict[str, Any]:
    """The stack's description; its records go, what it made stays."""
    policies.authorize("stacks:abandon", ctx, row.project_id)
    _busy(row)
    if row.deleted_at is not None or row.action == "DELETE":
        raise errors.BadRequest(f"Stack {row.name} is being deleted; it cannot be abandoned.")
    data = stack_data(store.stack_dict(row))
    reason = "Stack ABANDON completed: its resources were left in place"
    now = utcnow()
    for sid in reversed(_tree(row.id)):
        for r in store.resources(sid, current_only=False):
            store.drop_resource(r["id"])
        st = store.load_stack(sid)
        store.update_stack(sid, action="DELETE", status="COMPLETE", status_reason=reason, deleted_at=now,
                           trust_id=None)
        events.record(sid, st["name"], events.STACK_TYPE, sid, "DELETE", "COMPLETE", reason)
    credentials.delete_trust(row.trust_id)
    return data


def adopt_data(body: dict) -> dict | None:
    """``adopt_stack_data`` of a create (a JSON text or a map), checked; None if absent."""
    raw = body.get("adopt_stack_data")
    if raw in (None, ""):
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise errors.BadRequest("Invalid adopt data: it is not JSON.") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("template"), dict):
        raise errors.BadRequest("Invalid adopt data: it must be a map with the stack's template.")
    if not isinstance(raw.get("resources", {}), dict):
        raise errors.BadRequest("Invalid adopt data: resources must be a map.")
    return raw


def seed_resources(stack_id: str, data: dict) -> None:
    """The adopted resources' rows: their physical ids, data and metadata (the engine
    then checks each against the template)."""
    for name, r in (data.get("resources") or {}).items():
        if not isinstance(r, dict):
            continue
        rid = store.add_resource(stack_id, str(name), str(r.get("type") or ""), requires=[])
        store.save_resource(rid, physical_id=r.get("resource_id"), data=r.get("resource_data") or {},
                            metadata_=r.get("metadata") or {})
