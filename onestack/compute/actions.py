"""Server actions on the API side: state checks, task states, and the cast to the host.

Each action checks the server's state as Nova does (409 naming the state
otherwise), refuses a locked server to non-admins, records an instance action
(``os-instance-actions``), moves the server to its task state and casts the
work to the compute agent that holds it.
"""

from __future__ import annotations

import sqlalchemy as sa

from onestack.common import db, errors
from onestack.common.timeutils import utcnow
from onestack.compute import clients, instances, network, policies, states
from onestack.compute import models as m

ANY = None


def _state_error(inst: m.Instance, action: str) -> errors.Conflict:
    if inst.task_state:
        return errors.Conflict(f"Cannot '{action}' instance {inst.uuid} while it is in task_state "
                               f"{inst.task_state}")
    return errors.Conflict(f"Cannot '{action}' instance {inst.uuid} while it is in vm_state {inst.vm_state}")


def begin(ctx, uuid: str, action: str, request_id: str, *, vm_states, task_state: str | None,
          task_states=(None,), record: str | None = None, changes: dict | None = None,
          check_lock: bool = True, need_host: bool = True) -> m.Instance:
    """Check and move a server into ``task_state`` in one transaction; record the action."""
    with db.transaction() as s:
        inst = instances.get(s, ctx, uuid)
        policies.authorize("servers:action", ctx, {"project_id": inst.project_id})
        if check_lock and inst.locked and not ctx.is_admin:
            raise errors.Conflict(f"Instance {inst.uuid} is locked")
        if vm_states is not ANY and inst.vm_state not in vm_states:
            raise _state_error(inst, action)
        if task_states is not ANY and inst.task_state not in task_states:
            raise _state_error(inst, action)
        if need_host and not inst.host:
            raise errors.Conflict(f"Cannot '{action}' instance {inst.uuid}: it is not on any host")
        inst.task_state = task_state
        for k, v in (changes or {}).items():
            setattr(inst, k, v)
        inst.updated_at = utcnow()
        instances.record_action(s, inst, ctx, record or action, request_id)
        s.flush()
        s.expunge(inst)
        return inst


def delete(ctx, uuid: str, request_id: str) -> None:
    with db.transaction() as s:
        inst = instances.get(s, ctx, uuid)
        policies.authorize("servers:delete", ctx, {"project_id": inst.project_id})
        if inst.locked and not ctx.is_admin:
            raise errors.Conflict(f"Instance {inst.uuid} is locked")
        instances.record_action(s, inst, ctx, "delete", request_id)
        host = inst.host
        if not host or inst.vm_state == states.SHELVED_OFFLOADED:
            instances.mark_deleted(s, inst)
        else:
            inst.task_state = states.DELETING
            inst.updated_at = utcnow()
        s.flush()
        s.expunge(inst)
    if not host or inst.vm_state == states.DELETED:
        clients.release_allocations(uuid)
        _free_ports(inst)
        _free_volumes(ctx, inst)
        return
    instances.cast_to_host(inst, "terminate_instance", request_id=request_id)


def _free_ports(inst: m.Instance) -> None:
    try:
        network.deallocate(inst.uuid, inst.network_info or [])
    except errors.ApiError:
        pass


def _free_volumes(ctx, inst: m.Instance) -> None:
    """A server that never reached a host: its reservations go, and its volumes marked
    delete_on_termination too (the agent does this for servers it holds)."""
    for bdm in inst.block_device_mapping or []:
        if bdm.get("destination_type") != "volume" or not bdm.get("volume_id"):
            continue
        try:
            vc = clients.get().volume
            if bdm.get("attachment_id"):
                vc.delete(f"/attachments/{bdm['attachment_id']}", token=ctx.auth_token, ok=(200, 204, 404))
            if bdm.get("delete_on_termination"):
                vc.delete(f"/volumes/{bdm['volume_id']}", token=ctx.auth_token, ok=(202, 204, 404))
        except errors.ApiError:
            pass


def lock(ctx, uuid: str, request_id: str, reason: str | None) -> None:
    with db.transaction() as s:
        inst = instances.get(s, ctx, uuid)
        policies.authorize("servers:action", ctx, {"project_id": inst.project_id})
        inst.locked = True
        inst.locked_by = "admin" if ctx.is_admin and ctx.project_id != inst.project_id else "owner"
        inst.locked_reason = reason
        inst.updated_at = utcnow()
        instances.record_action(s, inst, ctx, "lock", request_id)


def unlock(ctx, uuid: str, request_id: str) -> None:
    with db.transaction() as s:
        inst = instances.get(s, ctx, uuid)
        policies.authorize("servers:action", ctx, {"project_id": inst.project_id})
        if inst.locked and inst.locked_by == "admin" and not ctx.is_admin:
            policies.authorize("os-lock-server:unlock:unlock_override", ctx)
        inst.locked, inst.locked_by, inst.locked_reason = False, None, None
        inst.updated_at = utcnow()
        instances.record_action(s, inst, ctx, "unlock", request_id)


def reset_state(ctx, uuid: str, request_id: str, state: str) -> None:
    policies.authorize("os-admin-actions:reset_state", ctx)
    if state not in ("active", "error"):
        raise errors.BadRequest(f"Invalid input for field/attribute state. Value: {state}. "
                                f"{state!r} is not one of ['active', 'error']")
    with db.transaction() as s:
        inst = instances.get(s, ctx, uuid)
        inst.vm_state, inst.task_state, inst.updated_at = state, None, utcnow()
        instances.record_action(s, inst, ctx, "resetState", request_id)
        instances.notify_later(s, "update", inst)


def servers_of_group(s, group: str) -> list[str]:
    g = s.scalar(sa.select(m.ServerGroup).where(m.ServerGroup.uuid == group))
    return list(g.members or []) if g else []
