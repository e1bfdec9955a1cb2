"""The engine's reads and writes of stack and resource rows (short transactions, plain dicts)."""

from __future__ import annotations

import secrets
import uuid
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


def add_stack(**fields) -> str:
    """A child stack (CREATE IN_PROGRESS) of a nested-stack resource."""
    sid = str(uuid.uuid4())
    with db.transaction() as s:
        s.add(m.Stack(id=sid, action="CREATE", status="IN_PROGRESS", status_reason="Stack CREATE started",
                      disable_rollback=True, secret=secrets.token_hex(32), outputs={}, cancel_requested=None,
                      created_at=utcnow(), **fields))
    return sid


def update_stack(stack_id: str, **fields) -> None:
    with db.transaction() as s:
        row = s.get(m.Stack, stack_id)
        if row is None:
            return
        for k, v in fields.items():
            setattr(row, k, v)


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


def save_resource(resource_id: str, **fields) -> None:
    with db.transaction() as s:
        row = s.get(m.Resource, resource_id)
        if row is None:
            return
        for k, v in fields.items():
            setattr(row, k, v)
        row.updated_at = utcnow()


def drop_resource(resource_id: str) -> None:
    with db.transaction() as s:
        row = s.get(m.Resource, resource_id)
        if row is not None:
            s.delete(row)


def stacks_in_progress() -> list[dict[str, Any]]:
    with db.session() as s:
        q = sa.select(m.Stack).where(m.Stack.status == "IN_PROGRESS", m.Stack.deleted_at.is_(None))
        return [stack_dict(r) for r in s.scalars(q)]


def children(stack_id: str) -> list[dict[str, Any]]:
    with db.session() as s:
        q = sa.select(m.Stack).where(m.Stack.parent_id == stack_id, m.Stack.deleted_at.is_(None))
        return [stack_dict(r) for r in s.scalars(q)]
