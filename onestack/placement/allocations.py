"""Allocations of consumers, usages, and the reshaper.

A write replaces the whole set of allocations of one or more consumers in one
transaction: the consumers' rows are locked first (their generation bumped,
compared with the client's at 1.28+; a new consumer's row is inserted, so two
creators of one consumer collide on its key), then every provider losing or
gaining allocations, in id order (``core.lock_providers``). Only then is
capacity checked, so the check sees every committed allocation and none can
land beside it until commit, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session

from onestack.common import errors
from onestack.common.timeutils import utcnow
from onestack.placement import capacity, core
from onestack.placement.capacity import Inventory
from onestack.placement.core import ALLOC, CONSUMER, INV, RC, RP

# project and user of allocations written before 1.8 without them (Placement's defaults)
INCOMPLETE = "00000000-0000-0000-0000-000000000000"


@dataclass
class ConsumerWrite:
    uuid: str
    allocations: dict[str, dict[str, int]]  # provider uuid -> resource class -> amount
    project_id: str = INCOMPLETE
    user_id: str = INCOMPLETE
    generation: int | None = None
    check_generation: bool = False  # 1.28+: the client's consumer generation must match
    consumer_type: str | None = None  # None: keep the stored one (a new consumer's is unknown)
    mappings: dict = field(default_factory=dict)  # 1.34+: accepted and ignored


def _generation_conflict(uuid: str, sent, have) -> errors.Conflict:
    sent_s = "null" if sent is None else sent
    have_s = "None" if have is None else have
    return core.conflict(f"consumer generation conflict - expected {sent_s} but got {have_s} "
                         f"(consumer {uuid})", core.CONCURRENT_UPDATE)


def _lock_consumer(s: Session, w: ConsumerWrite, now) -> bool:
    """Bump (and lock) the consumer's row, checking its generation when asked;
    insert it if it is new and gets allocations. True if the consumer existed."""
    q = CONSUMER.update().where(CONSUMER.c.uuid == w.uuid)
    if w.check_generation:
        if w.generation is None:
            have = s.scalar(sa.select(CONSUMER.c.generation).where(CONSUMER.c.uuid == w.uuid))
            if have is not None:
                raise _generation_conflict(w.uuid, None, have)
            q = None
        else:
            q = q.where(CONSUMER.c.generation == w.generation)
    if q is not None:
        values = {"generation": CONSUMER.c.generation + 1, "updated_at": now,
                  "project_id": w.project_id, "user_id": w.user_id}
        if w.consumer_type is not None:
            values["consumer_type"] = w.consumer_type
        if s.execute(q.values(**values)).rowcount == 1:
            return True
        have = s.scalar(sa.select(CONSUMER.c.generation).where(CONSUMER.c.uuid == w.uuid))
        if w.check_generation:
            raise _generation_conflict(w.uuid, w.generation, have)
    if w.allocations:
        # a concurrent creator of the same consumer makes this an IntegrityError: a 409
        s.execute(CONSUMER.insert().values(uuid=w.uuid, project_id=w.project_id, user_id=w.user_id,
                                           consumer_type=w.consumer_type, generation=1,
                                           created_at=now, updated_at=now))
    return False


def _inventory_rows(s: Session, rp_ids) -> dict[tuple[int, int], Inventory]:
    rows = s.execute(sa.select(INV.c.resource_provider_id, INV.c.resource_class_id, INV.c.total,
                               INV.c.reserved, INV.c.min_unit, INV.c.max_unit, INV.c.step_size,
                               INV.c.allocation_ratio).where(INV.c.resource_provider_id.in_(list(rp_ids))))
    return {(r[0], r[1]): Inventory(*r[2:]) for r in rows}


def _usage_rows(s: Session, rp_ids) -> dict[tuple[int, int], int]:
    rows = s.execute(sa.select(ALLOC.c.resource_provider_id, ALLOC.c.resource_class_id,
                               sa.func.sum(ALLOC.c.used))
                     .where(ALLOC.c.resource_provider_id.in_(list(rp_ids)))
                     .group_by(ALLOC.c.resource_provider_id, ALLOC.c.resource_class_id))
    return {(r[0], r[1]): int(r[2]) for r in rows}


def lock_consumers(s: Session, writes: list[ConsumerWrite]) -> None:
    """Lock (and check) the consumers of ``writes``: the first step of every
    write, so writers always lock consumers before providers and never deadlock."""
    now = utcnow()
    for w in sorted(writes, key=lambda w: w.uuid):
        _lock_consumer(s, w, now)


def write(s: Session, writes: list[ConsumerWrite], recheck: set[int] | frozenset = frozenset(),
          consumers_locked: bool = False) -> None:
    """Replace the allocations of every consumer in ``writes`` atomically.

    ``recheck``: providers whose every allocation is checked against their
    inventory afterwards (the reshaper changed those inventories)."""
    rp_uuids = {u for w in writes for u in w.allocations}
    rp_ids = core.provider_ids(s, rp_uuids)
    for u in sorted(rp_uuids):
        if u not in rp_ids:
            raise errors.BadRequest(f"Allocation for resource provider '{u}' that does not exist.")
    rc_ids = core.require_rcs(s, {rc for w in writes for res in w.allocations.values() for rc in res})
    if not consumers_locked:
        lock_consumers(s, writes)
    consumers = [w.uuid for w in writes]
    old = s.execute(sa.select(ALLOC.c.consumer_uuid, ALLOC.c.resource_provider_id,
                              ALLOC.c.resource_class_id, ALLOC.c.used)
                    .where(ALLOC.c.consumer_uuid.in_(consumers))).all()
    new = [(w.uuid, rp_ids[rp], rc_ids[rc], amount)
           for w in writes for rp, res in w.allocations.items() for rc, amount in res.items()]
    core.lock_providers(s, {r[1] for r in old} | {r[1] for r in new} | set(recheck))
    s.execute(ALLOC.delete().where(ALLOC.c.consumer_uuid.in_(consumers)))
    if new:
        s.execute(ALLOC.insert(), [{"consumer_uuid": c, "resource_provider_id": rp, "resource_class_id": rc,
                                    "used": amount} for c, rp, rc, amount in new])
    emptied = [w.uuid for w in writes if not w.allocations]
    if emptied:
        s.execute(CONSUMER.delete().where(CONSUMER.c.uuid.in_(emptied)))
    _check(s, old, new, set(recheck))


def _check(s: Session, old, new, recheck: set[int]) -> None:
    """409 unless every new allocation fits its inventory's units, and every
    (provider, class) whose usage grew (or on a ``recheck`` provider) is within capacity."""
    delta: dict[tuple[int, int], int] = defaultdict(int)
    for _c, rp, rc, amount in new:
        delta[(rp, rc)] += amount
    for _c, rp, rc, amount in old:
        delta[(rp, rc)] -= amount
    touched = {rp for rp, _rc in delta} | recheck
    if not touched:
        return
    invs = _inventory_rows(s, touched)
    usage = _usage_rows(s, touched)
    names = None

    def label(rp: int, rc: int) -> tuple[str, str]:
        nonlocal names
        if names is None:
            names = (dict(s.execute(sa.select(RP.c.id, RP.c.uuid).where(RP.c.id.in_(list(touched)))).all()),
                     dict(s.execute(sa.select(RC.c.id, RC.c.name)).all()))
        return names[1].get(rc, str(rc)), names[0].get(rp, str(rp))

    for _c, rp, rc, amount in new:
        inv = invs.get((rp, rc))
        if inv is None:
            rc_name, rp_uuid = label(rp, rc)
            raise core.conflict(f"Unable to allocate inventory: resource provider '{rp_uuid}' has no "
                                f"inventory of class '{rc_name}'.")
        why = capacity.unit_problem(inv, amount)
        if why:
            rc_name, rp_uuid = label(rp, rc)
            raise core.conflict(f"Unable to allocate inventory: Unable to create allocation for "
                                f"'{rc_name}' on resource provider '{rp_uuid}': {why}.")
    pairs = {k for k, d in delta.items() if d > 0} | {k for k in usage if k[0] in recheck}
    for rp, rc in sorted(pairs):
        used = usage.get((rp, rc), 0)
        inv = invs.get((rp, rc))
        if inv is None:
            if used:
                rc_name, rp_uuid = label(rp, rc)
                raise core.conflict(f"Unable to allocate inventory: resource provider '{rp_uuid}' has "
                                    f"no inventory of class '{rc_name}'.")
            continue
        if used > inv.capacity:
            rc_name, rp_uuid = label(rp, rc)
            raise core.conflict(
                f"Unable to allocate inventory: Unable to create allocation for '{rc_name}' on resource "
                f"provider '{rp_uuid}'. The requested amount would exceed the capacity "
                f"({used} of {capacity.shown_capacity(inv)} would be used).")


def delete_consumer(s: Session, uuid: str) -> None:
    """DELETE /allocations/{consumer}: 404 when it has none."""
    now = utcnow()
    if s.execute(CONSUMER.update().where(CONSUMER.c.uuid == uuid).values(
            generation=CONSUMER.c.generation + 1, updated_at=now)).rowcount != 1:
        raise errors.NotFound(f"No allocations for consumer '{uuid}'")
    rps = set(s.scalars(sa.select(ALLOC.c.resource_provider_id).where(ALLOC.c.consumer_uuid == uuid)))
    core.lock_providers(s, rps)
    s.execute(ALLOC.delete().where(ALLOC.c.consumer_uuid == uuid))
    s.execute(CONSUMER.delete().where(CONSUMER.c.uuid == uuid))
    if not rps:
        raise errors.NotFound(f"No allocations for consumer '{uuid}'")


# --- reads ---------------------------------------------------------------------------------


@dataclass
class ConsumerAllocations:
    allocations: dict[str, dict]  # provider uuid -> {"generation", "resources"}
    project_id: str | None = None
    user_id: str | None = None
    generation: int | None = None
    consumer_type: str | None = None


def consumer_allocations(s: Session, uuid: str) -> ConsumerAllocations:
    c = s.execute(sa.select(CONSUMER.c.project_id, CONSUMER.c.user_id, CONSUMER.c.generation,
                            CONSUMER.c.consumer_type).where(CONSUMER.c.uuid == uuid)).first()
    rows = s.execute(sa.select(RP.c.uuid, RP.c.generation, RC.c.name, ALLOC.c.used)
                     .join(RP, RP.c.id == ALLOC.c.resource_provider_id)
                     .join(RC, RC.c.id == ALLOC.c.resource_class_id)
                     .where(ALLOC.c.consumer_uuid == uuid).order_by(RP.c.uuid, RC.c.name))
    out: dict[str, dict] = {}
    for rp, gen, rc, used in rows:
        out.setdefault(rp, {"generation": gen, "resources": {}})["resources"][rc] = used
    if not out or c is None:
        return ConsumerAllocations({})
    return ConsumerAllocations(out, c.project_id, c.user_id, c.generation, c.consumer_type)


def provider_allocations(s: Session, rp_id: int) -> dict[str, dict[str, int]]:
    rows = s.execute(sa.select(ALLOC.c.consumer_uuid, RC.c.name, ALLOC.c.used)
                     .join(RC, RC.c.id == ALLOC.c.resource_class_id)
                     .where(ALLOC.c.resource_provider_id == rp_id)
                     .order_by(ALLOC.c.consumer_uuid, RC.c.name))
    out: dict[str, dict[str, int]] = {}
    for consumer, rc, used in rows:
        out.setdefault(consumer, {})[rc] = used
    return out


def provider_usages(s: Session, rp_id: int) -> dict[str, int]:
    """Every class the provider has inventory of (or allocations of), with the sum allocated."""
    names = dict(s.execute(sa.select(RC.c.id, RC.c.name).join(INV, INV.c.resource_class_id == RC.c.id)
                           .where(INV.c.resource_provider_id == rp_id)).all())
    used = core.used_by_class(s, rp_id)
    missing = set(used) - set(names)
    if missing:
        names.update(core.rc_names(s, missing))
    return {names[rc]: used.get(rc, 0) for rc in sorted(names, key=lambda i: names[i])}


def usages(s: Session, project_id: str, user_id: str | None = None, consumer_type: str | None = None,
           by_type: bool = False) -> dict:
    """GET /usages. ``by_type`` (1.38+): grouped by consumer type with consumer_count;
    ``consumer_type`` 'all' puts everything under 'all', 'unknown' means no type."""
    q = (sa.select(CONSUMER.c.consumer_type, RC.c.name, sa.func.sum(ALLOC.c.used))
         .select_from(ALLOC.join(CONSUMER, CONSUMER.c.uuid == ALLOC.c.consumer_uuid)
                      .join(RC, RC.c.id == ALLOC.c.resource_class_id))
         .where(CONSUMER.c.project_id == project_id))
    cq = (sa.select(CONSUMER.c.consumer_type, sa.func.count())
          .where(CONSUMER.c.project_id == project_id))
    if user_id is not None:
        q = q.where(CONSUMER.c.user_id == user_id)
        cq = cq.where(CONSUMER.c.user_id == user_id)
    if consumer_type not in (None, "all"):
        cond = CONSUMER.c.consumer_type.is_(None) if consumer_type == "unknown" else \
            CONSUMER.c.consumer_type == consumer_type
        q, cq = q.where(cond), cq.where(cond)
    rows = s.execute(q.group_by(CONSUMER.c.consumer_type, RC.c.name)).all()
    if not by_type:
        out: dict[str, int] = defaultdict(int)
        for _t, rc, used in rows:
            out[rc] += int(used)
        return dict(out)

    def key(t):
        return "all" if consumer_type == "all" else (t or "unknown")

    grouped: dict[str, dict] = {}
    for t, count in s.execute(cq.group_by(CONSUMER.c.consumer_type)):
        g = grouped.setdefault(key(t), {"consumer_count": 0})
        g["consumer_count"] += count
    for t, rc, used in rows:
        g = grouped.setdefault(key(t), {"consumer_count": 0})
        g[rc] = g.get(rc, 0) + int(used)
    return grouped


# --- reshaper --------------------------------------------------------------------------------


def reshape(s: Session, inventories: dict[str, tuple[int | None, dict[str, dict]]],
            writes: list[ConsumerWrite], reserved_may_equal_total: bool = True) -> None:
    """POST /reshaper: replace inventories of several providers and allocations of
    several consumers at once; only the final state must be consistent."""
    providers = []
    for uuid in inventories:  # canonical uuids
        p = core.find_provider(s, uuid)
        if p is None:
            raise errors.BadRequest(f"Resource provider {uuid} in the reshaper inventories does not exist.",
                                    code=core.PROVIDER_NOT_FOUND)
        providers.append(p)
    wanted = {p.id: {rc: core.make_inventory(p, rc, f, reserved_may_equal_total)
                     for rc, f in inventories[p.uuid][1].items()} for p in providers}
    lock_consumers(s, writes)
    # every provider this touches, locked in id order (as every other writer does)
    ids = set(wanted) | set(core.provider_ids(s, {u for w in writes for u in w.allocations}).values()) | \
        set(s.scalars(sa.select(ALLOC.c.resource_provider_id).where(
            ALLOC.c.consumer_uuid.in_([w.uuid for w in writes]))))
    by_id = {p.id: p for p in providers}
    for pid in sorted(ids):
        p = by_id.get(pid)
        if p is None:
            core.lock_providers(s, [pid])
            continue
        generation = inventories[p.uuid][0]
        core.bump(s, p, generation, check=generation is not None)
        core.replace_inventories(s, p, wanted[pid], check_use=False)
    write(s, writes, recheck=set(wanted), consumers_locked=True)
