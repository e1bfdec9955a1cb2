"""Stack and resource events: written by the engine at every transition, read by the API.

A stack's own transitions are events too, under the stack's name with type
``OS::Heat::Stack`` (as Heat lists them).
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from onestack.common import db
from onestack.common.timeutils import utcnow
from onestack.orchestration import models as m

STACK_TYPE = "OS::Heat::Stack"


def new(stack_id: str, resource_name: str, resource_type: str, physical_id: str | None, action: str,
        status: str, reason: str = "", properties: dict | None = None) -> m.Event:
    """An event row, for the caller to add in its own transaction (with the resource's change)."""
    return m.Event(id=str(uuid.uuid4()), stack_id=stack_id, resource_name=resource_name,
                   resource_type=resource_type, physical_id=physical_id, action=action, status=status,
                   status_reason=reason or "", properties=properties or {}, created_at=utcnow())


def record(stack_id: str, resource_name: str, resource_type: str, physical_id: str | None, action: str,
           status: str, reason: str = "", properties: dict | None = None) -> None:
    with db.transaction() as s:
        s.add(new(stack_id, resource_name, resource_type, physical_id, action, status, reason, properties))


def query(s, stack_ids: list[str], resource_name: str | None = None) -> list[m.Event]:
    q = sa.select(m.Event).where(m.Event.stack_id.in_(stack_ids)).order_by(m.Event.seq)
    if resource_name is not None:
        q = q.where(m.Event.resource_name == resource_name)
    return list(s.scalars(q))
