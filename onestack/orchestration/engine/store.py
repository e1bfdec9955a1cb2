"""The engine's reads and writes of stack and resource rows (short transactions, plain dicts)."""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from onestack.common import db
from onestack.common.timeutils import utcnow
from onestack.orchestration import models as m

STACK_FIELDS = ("id", "name", "project_id", "user_id", "username", "action", "status", "status_reason",
                "template", "environment", "files", "parameters", "previous", "tags", "timeout_mins",
                "disable_rollback", "parent_id", "parent_resource", "nested_depth", "trust_id", "secret",
                "cancel_requested", "created_at", "updated_at", "deleted_at", "outputs")
RESOURCE_FIELDS = ("id", "stack_id", "name", "type", "physical_id", "action", "status", "status_reason",
                   "properties", "attributes", "metadata_", "data", "requires", "replaced_by", "current",
                   "created_at", "updated_at")


def stack_dict(row: m.Stack) -> dict[str, Any]:
    return {k: getattr(row, k) for k in STACK_FIELDS}


def resource_dict(row: m.Resource) -> dict[str, Any]:
    return {k: getattr(row, k) for k in RESOURCE_FIELDS}


def load_stack(stack_id: str) -> dict[str, Any] | None:
    with db.session() as s:
        row = s.get(m.Stack, stack_id)
        return stack_dict(row) if row is not None else None


def cancel_requested(stack_id: str) -> str | None:
    with db.session() as s:
        return s.scalar(sa.select(m.Stack.cancel_requested).where(m.Stack.id == stack_id))


def add_stack(**fields) -> str:
    """A child stack (CREATE IN_PROGRESS) of a nested-stack resource."""
    sid = str(uuid.uuid4())
    with db.transaction() as s:
        s.add(m.Stack(id=sid, action="CREATE", status="IN_PROGRESS", status_reason="Stack CREATE started",
                      disable_rollback=True, secret=secrets.token_hex(32), outputs={}, cancel_requested=None,
                      created_at=utcnow(), **fields))
    return sid


def update_stack(stack_id: str, event: m.Event | None = None, **fields) -> None:
    """Change a stack row; ``event`` (``events.new``) is recorded in the same transaction."""
    with db.transaction() as s:
        if fields:
            s.execute(sa.update(m.Stack).where(m.Stack.id == stack_id).values(**fields))
        if event is not None:
            s.add(event)


def resources(stack_id: str, current_only: bool = True) -> list[dict[str, Any]]:
    with db.session() as s:
        q = sa.select(m.Resource).where(m.Resource.stack_id == stack_id).order_by(m.Resource.created_at)
        if current_only:
            q = q.where(m.Resource.current.is_(True))
        return [resource_dict(r) for r in s.scalars(q)]


def resource(resource_id: str) -> dict[str, Any] | None:
    with db.session() as s:
        row = s.get(m.Resource, resource_id)
        return resource_dict(row) if row is not None else None


def add_resource(stack_id: str, name: str, type_: str, *, action: str = "INIT", status: str = "COMPLETE",
                 current: bool = True, requires: list | None = None) -> str:
    rid = str(uuid.uuid4())
    with db.transaction() as s:
        s.add(m.Resource(id=rid, stack_id=stack_id, name=name, type=type_, action=action, status=status,
                         status_reason="", properties={}, attributes={}, metadata_={}, data={},
                         requires=requires or [], current=current, created_at=utcnow()))
    return rid


def add_resources(stack_id: str, items: list[tuple[str, str, list]]) -> list[dict[str, Any]]:
    """Rows (INIT COMPLETE) for ``(name, type, requires)`` each, in one transaction."""
    now = utcnow()  # (a microsecond apart: rows list in the order given, as one by one)
    rows = [{"id": str(uuid.uuid4()), "stack_id": stack_id, "name": name, "type": type_, "physical_id": None,
             "action": "INIT", "status": "COMPLETE", "status_reason": "", "properties": {}, "attributes": {},
             "metadata_": {}, "data": {}, "requires": requires or [], "replaced_by": None, "current": True,
             "created_at": now + timedelta(microseconds=i), "updated_at": None}
            for i, (name, type_, requires) in enumerate(items)]
    with db.transaction() as s:
        for i in range(0, len(rows), 50):  # (one statement for many: see apply)
            s.execute(sa.insert(m.Resource).values(rows[i:i + 50]))
    return [dict(r) for r in rows]


def save_resource(resource_id: str, event: m.Event | None = None, **fields) -> None:
    """Change a resource row; ``event`` (``events.new``) is recorded in the same transaction."""
    apply([(resource_id, fields, event)])


def drop_resource(resource_id: str, event: m.Event | None = None) -> None:
    apply([(resource_id, None, event)])


_EVENT_ATTRS = [a.key for a in sa.inspect(m.Event).column_attrs if a.key != "seq"]


def apply(changes: list[tuple[str, dict | None, m.Event | None]]) -> None:
    """Resources' changes in one transaction: ``(id, fields, event)`` each, ``fields``
    None to drop the row, the event (if any) recorded with it, in order. Few statements
    (rows changed alike in one UPDATE, the events in one INSERT): the engine shares its
    process with the APIs, and each statement waits its turn for the interpreter."""
    merged: dict[str, dict | None] = {}
    for resource_id, fields, _ in changes:
        if fields is None:
            merged[resource_id] = None
        elif merged.get(resource_id, {}) is not None:
            merged[resource_id] = {**merged.get(resource_id, {}), **fields}
    alike: dict[str, tuple[dict, list[str]]] = {}
    for resource_id, fields in merged.items():
        if fields is not None:
            key = json.dumps(fields, sort_keys=True, default=str)
            alike.setdefault(key, (fields, []))[1].append(resource_id)
    gone = [rid for rid, fields in merged.items() if fields is None]
    rows = [{k: getattr(e, k) for k in _EVENT_ATTRS} for _, _, e in changes if e is not None]
    now = utcnow()
    with db.transaction() as s:
        for fields, ids in alike.values():
            s.execute(sa.update(m.Resource).where(m.Resource.id.in_(ids)).values(updated_at=now, **fields))
        if gone:
            s.execute(sa.delete(m.Resource).where(m.Resource.id.in_(gone)))
        for i in range(0, len(rows), 50):
            s.execute(sa.insert(m.Event).values(rows[i:i + 50]))


def states(stack_id: str) -> list[dict[str, Any]]:
    """Each resource row's id, physical id, data and metadata (what arrives from outside)."""
    with db.session() as s:
        q = sa.select(m.Resource.id, m.Resource.physical_id, m.Resource.data, m.Resource.metadata_).where(
            m.Resource.stack_id == stack_id)
        return [r._asdict() for r in s.execute(q)]


def stacks_in_progress() -> list[dict[str, Any]]:
    with db.session() as s:
        q = sa.select(m.Stack).where(m.Stack.status == "IN_PROGRESS", m.Stack.deleted_at.is_(None))
        return [stack_dict(r) for r in s.scalars(q)]


def children(stack_id: str) -> list[dict[str, Any]]:
    with db.session() as s:
        q = sa.select(m.Stack).where(m.Stack.parent_id == stack_id, m.Stack.deleted_at.is_(None))
        return [stack_dict(r) for r in s.scalars(q)]
