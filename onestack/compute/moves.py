"""Moving servers between hosts, on the API side: cold migration, resize, confirm and
revert, live migration, evacuation, and the migrations they record (``os-migrations``).

Each move is checked here as Nova's compute API checks it (state, lock, hosts; 400, 404
or 409 naming the problem), then one transaction records a migration row and the
instance action and moves the server to its task state; the conductor is cast to. It
asks the scheduler for a destination other than the source (claimed in Placement, the
migration taking over the source's allocation, as Nova does since Queens) and hands the
work to the agents of the two hosts (``compute.<host>``), which report the migration's
status as it goes:

    migrate/resize  pre-migrating -> migrating -> post-migrating -> finished (VERIFY_RESIZE)
                    -> confirming -> confirmed | reverting -> reverted   (error on failure)
    live-migration  accepted -> preparing -> running -> post-migrating -> completed
                    (error on failure, cancelled when aborted)
    evacuation      accepted -> pre-migrating -> done (failed); completed once the
                    source host is back and has removed its copy
"""

from __future__ import annotations

import logging
import uuid as uuidlib
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from onestack.common import bus, db, errors
from onestack.common.timeutils import utcnow
from onestack.compute import instances, policies, settings, states
from onestack.compute import models as m
from onestack.compute.actions import _state_error

log = logging.getLogger(__name__)

MIGRATION, RESIZE, LIVE_MIGRATION, EVACUATION = "migration", "resize", "live-migration", "evacuation"
TYPES = (MIGRATION, RESIZE, LIVE_MIGRATION, EVACUATION)
LIVE_IN_PROGRESS = ("queued", "preparing", "running", "post-migrating")


def service_is_up(svc: m.Service | None) -> bool:
    """A compute service is up while it heartbeats and nobody forced it down."""
    if svc is None or svc.forced_down or svc.last_seen_up is None:
        return False
    return (utcnow() - svc.last_seen_up).total_seconds() <= settings.current.service_down_time


def compute_service(s: Session, host: str) -> m.Service | None:
    return s.scalar(sa.select(m.Service).where(m.Service.host == host, m.Service.binary == "nova-compute"))


def _flavor_id(s: Session, flavorid) -> int | None:
    """Nova's instance_type_id: the flavor's row id (None once the flavor is deleted)."""
    return s.scalar(sa.select(m.Flavor.id).where(m.Flavor.flavorid == str(flavorid)))


def _start(s: Session, ctx, inst: m.Instance, kind: str, action: str, request_id: str, task_state: str,
           status: str, flavor: dict | None = None, dest: str | None = None) -> str:
    """The migration row, the instance action and the task state of a move; its uuid."""
    now = utcnow()
    old = dict(inst.flavor)
    mig = m.Migration(uuid=str(uuidlib.uuid4()), instance_uuid=inst.uuid, migration_type=kind, status=status,
                      source_compute=inst.host, source_node=inst.node, dest_compute=dest, dest_node=dest,
                      old_instance_type_id=_flavor_id(s, old.get("id")),
                      new_instance_type_id=_flavor_id(s, (flavor or old).get("id")), hidden=False,
                      project_id=ctx.project_id, user_id=ctx.user_id, created_at=now)
    s.add(mig)
    inst.task_state, inst.progress, inst.updated_at = task_state, 0, now
    instances.record_action(s, inst, ctx, action, request_id)
    return mig.uuid


def _get(s: Session, ctx, uuid: str, action: str, vm_states, policy: str, check_lock: bool = True) -> m.Instance:
    """The server, if ``policy`` allows the caller this move and its state allows the move."""
    inst = instances.get(s, ctx, uuid, for_update=True)
    policies.authorize(policy, ctx, {"project_id": inst.project_id})
    if check_lock and inst.locked and not ctx.is_admin:
        raise errors.Conflict(f"Instance {inst.uuid} is locked")
    if inst.vm_state not in vm_states or inst.task_state is not None:
        raise _state_error(inst, action)
    if not inst.host:
        raise errors.Conflict(f"Cannot '{action}' instance {inst.uuid}: it is not on any host")
    return inst


def _cast(topic: str, method: str, undo, **kwargs) -> None:
    """Cast the move on; if nobody serves the topic, ``undo()`` puts the server back."""
    try:
        bus.get().cast_sync(topic, method, **kwargs)
    except errors.ApiError:
        undo()
        raise


def _undo(uuid: str, migration_uuid: str, task_state: str) -> callable:
    def undo():
        with db.transaction() as s:
            inst = s.get(m.Instance, uuid)
            if inst is not None and inst.task_state == task_state:
                inst.task_state, inst.updated_at = None, utcnow()
            mig = s.scalar(sa.select(m.Migration).where(m.Migration.uuid == migration_uuid))
            if mig is not None:
                mig.status, mig.updated_at = "error", utcnow()
    return undo


# ---------------------------------------------------------------- cold migration and resize

def resize_or_migrate(ctx, uuid: str, request_id: str, *, flavor: dict | None = None,
                      host: str | None = None) -> None:
    """Resize (``flavor``) or cold-migrate (``host``: a destination, else the scheduler's
    choice) the server; the move goes on in the conductor and the agents."""
    kind = RESIZE if flavor else MIGRATION
    action = "resize" if flavor else "migrate"
    with db.transaction() as s:
        policy = "servers:action" if flavor else (
            "os-migrate-server:migrate:host" if host else "os-migrate-server:migrate")
        inst = _get(s, ctx, uuid, action, (states.ACTIVE, states.STOPPED), policy)
        if host is not None:
            if host == inst.host:
                raise errors.BadRequest("Cannot migrate to the host where the server exists.")
            if compute_service(s, host) is None:
                raise errors.BadRequest(f"Compute host {host} could not be found.")
        if not service_is_up(compute_service(s, inst.host)):
            raise errors.Conflict(f"Compute service of {inst.host} is unavailable at this time.")
        new = flavor or dict(inst.flavor)
        migration = _start(s, ctx, inst, kind, action, request_id, states.RESIZE_PREP, "pre-migrating", new)
    same_host = kind == RESIZE and settings.current.allow_resize_to_same_host
    _cast("compute.conductor", "migrate_server", _undo(uuid, migration, states.RESIZE_PREP),
          instance_uuid=uuid, migration_uuid=migration, flavor=new, host=host, same_host=same_host,
          request_id=request_id)


def _finished(s: Session, inst: m.Instance) -> m.Migration:
    mig = s.scalar(sa.select(m.Migration).where(
        m.Migration.instance_uuid == inst.uuid, m.Migration.status == "finished",
        m.Migration.migration_type.in_((MIGRATION, RESIZE))).order_by(m.Migration.id.desc()))
    if mig is None:
        raise errors.BadRequest("Instance has not been resized.")
    return mig


def confirm_resize(ctx, uuid: str, request_id: str) -> None:
    """VERIFY_RESIZE -> the server stays where it went; the source host drops its copy."""
    with db.transaction() as s:
        inst = _get(s, ctx, uuid, "confirmResize", (states.RESIZED,), "servers:action")
        mig = _finished(s, inst)
        if not service_is_up(compute_service(s, mig.source_compute)):
            raise errors.Conflict(f"Compute service of {mig.source_compute} is unavailable at this time.")
        mig.status, mig.updated_at = "confirming", utcnow()
        inst.task_state, inst.updated_at = states.RESIZE_CONFIRMING, utcnow()
        instances.record_action(s, inst, ctx, "confirmResize", request_id)
        source, migration = mig.source_compute, mig.uuid
    _cast(f"compute.{source}", "confirm_resize", _undo(uuid, migration, states.RESIZE_CONFIRMING),
          instance_uuid=uuid, migration_uuid=migration, request_id=request_id)


def revert_resize(ctx, uuid: str, request_id: str) -> None:
    """VERIFY_RESIZE -> the server goes back to its source host (and flavor)."""
    with db.transaction() as s:
        inst = _get(s, ctx, uuid, "revertResize", (states.RESIZED,), "servers:action")
        mig = _finished(s, inst)
        mig.status, mig.updated_at = "reverting", utcnow()
        inst.task_state, inst.updated_at = states.RESIZE_REVERTING, utcnow()
        instances.record_action(s, inst, ctx, "revertResize", request_id)
        dest, migration = mig.dest_compute, mig.uuid
    _cast(f"compute.{dest}", "revert_resize", _undo(uuid, migration, states.RESIZE_REVERTING),
          instance_uuid=uuid, migration_uuid=migration, request_id=request_id)


# ---------------------------------------------------------------- live migration and evacuation

def live_migrate(ctx, uuid: str, request_id: str, host: str | None, block_migration: bool | None) -> None:
    """Move the running server to ``host`` (else the scheduler's choice) without stopping it."""
    with db.transaction() as s:
        inst = _get(s, ctx, uuid, "os-migrateLive", (states.ACTIVE, states.PAUSED),
                    "os-migrate-server:migrate_live:host" if host else "os-migrate-server:migrate_live")
        if host is not None:
            if compute_service(s, host) is None:
                raise errors.BadRequest(f"Compute host {host} could not be found.")
            if host == inst.host:
                raise errors.BadRequest(f"Unable to migrate instance ({uuid}) to current host ({host}).")
            if not service_is_up(compute_service(s, host)):
                raise errors.BadRequest(f"Compute service of {host} is unavailable at this time.")
        if not service_is_up(compute_service(s, inst.host)):
            raise errors.BadRequest(f"Compute service of {inst.host} is unavailable at this time.")
        migration = _start(s, ctx, inst, LIVE_MIGRATION, "live-migration", request_id, states.MIGRATING,
                           "accepted")
    _cast("compute.conductor", "live_migrate_instance", _undo(uuid, migration, states.MIGRATING),
          instance_uuid=uuid, migration_uuid=migration, host=host, block_migration=block_migration,
          request_id=request_id)


def evacuate(ctx, uuid: str, request_id: str, host: str | None) -> None:
    """Rebuild the server on another host, its host being down (and fenced)."""
    with db.transaction() as s:
        inst = instances.get(s, ctx, uuid, for_update=True)
        policies.authorize("os-evacuate", ctx, {"project_id": inst.project_id})
        if host is not None and compute_service(s, host) is None:
            raise errors.NotFound(f"Compute host {host} not found.")
        if host is not None and host == inst.host:
            raise errors.BadRequest("The target host can't be the same one.")
        inst = _get(s, ctx, uuid, "evacuate", (states.ACTIVE, states.STOPPED, states.ERROR), "os-evacuate",
                    check_lock=False)
        if service_is_up(compute_service(s, inst.host)):
            raise errors.BadRequest(f"Compute service of {inst.host} is still in use.")
        migration = _start(s, ctx, inst, EVACUATION, "evacuate", request_id, states.REBUILDING, "accepted",
                           dest=host)
    _cast("compute.conductor", "evacuate_instance", _undo(uuid, migration, states.REBUILDING),
          instance_uuid=uuid, migration_uuid=migration, host=host, request_id=request_id)


# ---------------------------------------------------------------- in-progress live migrations

def _live(s: Session, inst: m.Instance, migration_id) -> m.Migration:
    mig = None
    if str(migration_id).isdigit():
        mig = s.scalar(sa.select(m.Migration).where(m.Migration.id == int(migration_id),
                                                    m.Migration.instance_uuid == inst.uuid))
    if mig is None:
        raise errors.NotFound(f"Migration {migration_id} not found for instance {inst.uuid}")
    return mig


def _invalid_state(mig: m.Migration, method: str) -> errors.BadRequest:
    return errors.BadRequest(f"Migration {mig.id} state of instance {mig.instance_uuid} is {mig.status}. "
                             f"Cannot {method} while the migration is in this state.")


def live_migration_force_complete(ctx, uuid: str, migration_id, request_id: str) -> None:
    with db.transaction() as s:
        inst = instances.get(s, ctx, uuid, for_update=True)
        policies.authorize("servers:migrations:force_complete", ctx, {"project_id": inst.project_id})
        if inst.locked and not ctx.is_admin:
            raise errors.Conflict(f"Instance {inst.uuid} is locked")
        if inst.vm_state != states.ACTIVE or inst.task_state != states.MIGRATING:
            raise _state_error(inst, "force_complete")
        try:
            mig = _live(s, inst, migration_id)
        except errors.NotFound as e:
            raise errors.BadRequest(e.message) from None
        if mig.status != "running":
            raise _invalid_state(mig, "force complete")
        instances.record_action(s, inst, ctx, "live_migration_force_complete", request_id)
        source, migration = mig.source_compute, mig.uuid
    bus.get().cast_sync(f"compute.{source}", "live_migration_force_complete", instance_uuid=uuid,
                        migration_uuid=migration)


def live_migration_abort(ctx, uuid: str, migration_id, request_id: str, queued_too: bool) -> None:
    with db.transaction() as s:
        inst = instances.get(s, ctx, uuid, for_update=True)
        policies.authorize("servers:migrations:delete", ctx, {"project_id": inst.project_id})
        if inst.locked and not ctx.is_admin:
            raise errors.Conflict(f"Instance {inst.uuid} is locked")
        if inst.task_state != states.MIGRATING:  # (Nova names the state it checked: the task's)
            raise errors.Conflict(f"Cannot 'abort live migration' instance {inst.uuid} while it is in task_state "
                                  f"{inst.task_state}")
        mig = _live(s, inst, migration_id)
        allowed = ("running", "queued", "preparing") if queued_too else ("running",)
        if mig.status not in allowed:
            raise _invalid_state(mig, "abort live migration")
        instances.record_action(s, inst, ctx, "live_migration_abort", request_id)
        source, migration = mig.source_compute, mig.uuid
    bus.get().cast_sync(f"compute.{source}", "live_migration_abort", instance_uuid=uuid, migration_uuid=migration)


def in_progress_live(s: Session, ctx, uuid: str) -> list[m.Migration]:
    """The server's live migrations in progress (GET /servers/{id}/migrations)."""
    inst = instances.get(s, ctx, uuid)
    policies.authorize("servers:migrations:index", ctx, {"project_id": inst.project_id})
    return list(s.scalars(sa.select(m.Migration).where(
        m.Migration.instance_uuid == inst.uuid, m.Migration.migration_type == LIVE_MIGRATION,
        m.Migration.status.in_(LIVE_IN_PROGRESS)).order_by(m.Migration.id)))


def in_progress_live_one(s: Session, ctx, uuid: str, migration_id) -> m.Migration:
    inst = instances.get(s, ctx, uuid)
    policies.authorize("servers:migrations:show", ctx, {"project_id": inst.project_id})
    mig = None
    if str(migration_id).isdigit():
        mig = s.scalar(sa.select(m.Migration).where(m.Migration.id == int(migration_id),
                                                    m.Migration.instance_uuid == inst.uuid))
    if mig is None:
        raise errors.NotFound(f"In-progress live migration {migration_id} is not found for server {uuid}.")
    if mig.migration_type != LIVE_MIGRATION:
        raise errors.NotFound(f"Migration {migration_id} for server {uuid} is not live-migration.")
    if mig.status not in LIVE_IN_PROGRESS:
        raise errors.NotFound(f"Live migration {migration_id} for server {uuid} is not in progress.")
    return mig


# ---------------------------------------------------------------- os-migrations

def list_migrations(s: Session, ctx, filters: dict, *, newest_first: bool, limit: int | None = None,
                    marker: str | None = None, since: datetime | None = None,
                    before: datetime | None = None) -> tuple[list[m.Migration], bool]:
    """Migrations matching Nova's filters (``host``: source or destination; ``status`` may
    be a list), never hidden ones, in Nova's order (from 2.59: newest first, a page after
    ``marker``, a migration uuid); whether more follow."""
    policies.authorize("os-migrations:index", ctx)
    q = sa.select(m.Migration).where(m.Migration.hidden.is_(False))
    if filters.get("status"):
        wanted = filters["status"]
        q = q.where(m.Migration.status.in_([wanted] if isinstance(wanted, str) else list(wanted)))
    if filters.get("host"):
        q = q.where(sa.or_(m.Migration.source_compute == filters["host"],
                           m.Migration.dest_compute == filters["host"]))
    elif filters.get("source_compute"):
        q = q.where(m.Migration.source_compute == filters["source_compute"])
    for key in ("migration_type", "instance_uuid"):
        if filters.get(key):
            q = q.where(getattr(m.Migration, key) == filters[key])
    if since is not None:
        q = q.where(sa.func.coalesce(m.Migration.updated_at, m.Migration.created_at) >= since)
    if before is not None:
        q = q.where(sa.func.coalesce(m.Migration.updated_at, m.Migration.created_at) <= before)
    if not newest_first:
        return list(s.scalars(q.order_by(m.Migration.id))), False
    if marker:
        mark = s.scalar(sa.select(m.Migration).where(m.Migration.uuid == marker))
        if mark is None:
            raise errors.BadRequest(f"Marker {marker} could not be found.")
        q = q.where(sa.or_(m.Migration.created_at < mark.created_at,
                           sa.and_(m.Migration.created_at == mark.created_at, m.Migration.id < mark.id)))
    q = q.order_by(m.Migration.created_at.desc(), m.Migration.id.desc())
    if limit is None:
        return list(s.scalars(q)), False
    rows = list(s.scalars(q.limit(limit + 1)))
    return rows[:limit], len(rows) > limit
