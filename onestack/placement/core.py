"""Placement state and logic: policy, the standard resource classes and traits,
resource providers (trees), resource classes, traits, inventories and
aggregates. Allocations and usages are in allocations.py, the candidate search
in candidates.py; the API layer (api/) only parses requests and formats answers.

Every write that changes what a provider offers bumps the provider's
generation first (``bump``): with the generation the client sent, as a
compare-and-swap that answers 409 ``placement.concurrent_update`` when another
writer came first; the UPDATE also locks the provider's row until commit, so
the checks that follow (inventory in use, capacity) see every committed write.
"""

from __future__ import annotations

import logging
import uuid as uuidlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from onestack.common import errors
from onestack.common.policy import Enforcer
from onestack.common.timeutils import utcnow
from onestack.placement import capacity, standard
from onestack.placement import models as m
from onestack.placement.capacity import Inventory
from onestack.placement.policies import DEFAULTS

log = logging.getLogger(__name__)

RP = m.ResourceProvider.__table__
RC = m.ResourceClass.__table__
TRAIT = m.Trait.__table__
RP_TRAIT = m.ProviderTrait.__table__
RP_AGG = m.ProviderAggregate.__table__
INV = m.Inventory.__table__
ALLOC = m.Allocation.__table__
CONSUMER = m.Consumer.__table__

# Placement's error codes (microversion 1.23+)
CONCURRENT_UPDATE = "placement.concurrent_update"
DUPLICATE_NAME = "placement.duplicate_name"
INVENTORY_INUSE = "placement.inventory.inuse"
PROVIDER_INUSE = "placement.resource_provider.inuse"
CANNOT_DELETE_PARENT = "placement.resource_provider.cannot_delete_parent"
PROVIDER_NOT_FOUND = "placement.resource_provider.not_found"
QUERY_DUPLICATE_KEY = "placement.query.duplicate_key"
QUERY_BAD_VALUE = "placement.query.bad_value"
QUERY_MISSING_VALUE = "placement.query.missing_value"


class State:
    enforcer: Enforcer | None = None


def configure(policy_dir: Path | None) -> None:
    State.enforcer = Enforcer("placement", DEFAULTS, policy_dir)


def authorize(rule: str, ctx) -> None:
    if not State.enforcer.allowed(rule, ctx, {}):
        raise errors.Forbidden(f"Policy does not allow {rule} to be performed.")


def conflict(message: str, code: str = "placement.undefined_code") -> errors.Conflict:
    return errors.Conflict(message, code=code)


def norm_uuid(text: str | None) -> str | None:
    """The canonical form of a UUID (lower case, dashes), None if ``text`` is not one."""
    if not isinstance(text, str) or len(text) > 40:
        return None
    try:
        return str(uuidlib.UUID(text))
    except ValueError:
        return None


# --- standard classes and traits ------------------------------------------------------


def sync_standard(s: Session) -> None:
    """Make sure every standard resource class and trait has its row (idempotent)."""
    have = dict(s.execute(sa.select(RC.c.name, RC.c.id)).all())
    rows = [{"id": i, "name": name} for i, name in enumerate(standard.RESOURCE_CLASSES)
            if name not in have]
    if rows:
        s.execute(RC.insert(), rows)
    have_traits = set(s.scalars(sa.select(TRAIT.c.name)))
    rows = [{"name": name} for name in standard.TRAITS if name not in have_traits]
    if rows:
        s.execute(TRAIT.insert(), rows)


# --- resource classes -------------------------------------------------------------------


def rc_ids(s: Session, names) -> dict[str, int]:
    """name -> id of the resource classes among ``names`` that exist."""
    names = list(set(names))
    if not names:
        return {}
    return dict(s.execute(sa.select(RC.c.name, RC.c.id).where(RC.c.name.in_(names))).all())


def rc_names(s: Session, ids) -> dict[int, str]:
    ids = list(set(ids))
    if not ids:
        return {}
    return dict(s.execute(sa.select(RC.c.id, RC.c.name).where(RC.c.id.in_(ids))).all())


def require_rcs(s: Session, names, message: str = "No such resource class {name}.") -> dict[str, int]:
    found = rc_ids(s, names)
    for name in names:
        if name not in found:
            raise errors.BadRequest(message.format(name=name))
    return found


def list_resource_classes(s: Session) -> list[str]:
    return list(s.scalars(sa.select(RC.c.name).order_by(RC.c.id)))


def get_resource_class(s: Session, name: str) -> str:
    if s.scalar(sa.select(RC.c.id).where(RC.c.name == name)) is None:
        raise errors.NotFound(f"No such resource class {name}.")
    return name


def _custom_rc_name(name: str) -> None:
    if not standard.is_custom(name):
        raise errors.BadRequest(
            f"Invalid resource class name {name!r}: a custom resource class must start with "
            "'CUSTOM_' and use only the characters A-Z, 0-9 and _ (at most 255 characters).")


def _next_rc_id(s: Session) -> int:
    top = s.scalar(sa.select(sa.func.max(RC.c.id)))
    return max(top or 0, standard.CUSTOM_ID_START - 1) + 1


def create_resource_class(s: Session, name: str) -> None:
    _custom_rc_name(name)
    if s.scalar(sa.select(RC.c.id).where(RC.c.name == name)) is not None:
        raise conflict(f"Conflicting resource class already exists: {name}", DUPLICATE_NAME)
    s.execute(RC.insert().values(id=_next_rc_id(s), name=name))


def ensure_resource_class(s: Session, name: str) -> bool:
    """PUT /resource_classes/{name} (1.7+): True if it was created, False if it existed."""
    _custom_rc_name(name)
    if s.scalar(sa.select(RC.c.id).where(RC.c.name == name)) is not None:
        return False
    s.execute(RC.insert().values(id=_next_rc_id(s), name=name))
    return True


def rename_resource_class(s: Session, name: str, new: str) -> None:
    """PUT /resource_classes/{name} before 1.7: renames a custom class."""
    rid = s.scalar(sa.select(RC.c.id).where(RC.c.name == name))
    if rid is None:
        raise errors.NotFound(f"No such resource class {name}.")
    if name in standard.RC_SET or rid < standard.CUSTOM_ID_START:
        raise errors.BadRequest(f"Cannot update standard resource class {name}")
    _custom_rc_name(new)
    if new != name and s.scalar(sa.select(RC.c.id).where(RC.c.name == new)) is not None:
        raise conflict(f"Resource class already exists: {new}", DUPLICATE_NAME)
    s.execute(RC.update().where(RC.c.id == rid).values(name=new))


def delete_resource_class(s: Session, name: str) -> None:
    rid = s.scalar(sa.select(RC.c.id).where(RC.c.name == name))
    if rid is None:
        raise errors.NotFound(f"No such resource class {name}.")
    if name in standard.RC_SET or rid < standard.CUSTOM_ID_START:
        raise errors.BadRequest(f"Cannot delete standard resource class {name}.")
    if s.scalar(sa.select(INV.c.resource_provider_id).where(INV.c.resource_class_id == rid).limit(1)):
        raise conflict(f"Error in delete resource class: Cannot delete resource class {name}. "
                       "Class is in use in inventory.")
    if s.scalar(sa.select(ALLOC.c.id).where(ALLOC.c.resource_class_id == rid).limit(1)):
        raise conflict(f"Cannot delete resource class {name}: it has allocations.")
    s.execute(RC.delete().where(RC.c.id == rid))


# --- traits ------------------------------------------------------------------------------


def trait_ids(s: Session, names) -> dict[str, int]:
    names = list(set(names))
    if not names:
        return {}
    return dict(s.execute(sa.select(TRAIT.c.name, TRAIT.c.id).where(TRAIT.c.name.in_(names))).all())


def require_traits(s: Session, names) -> dict[str, int]:
    """name -> id, or 400 naming the traits that do not exist."""
    found = trait_ids(s, names)
    missing = sorted(set(names) - set(found))
    if missing:
        raise errors.BadRequest(f"No such trait(s): {', '.join(missing)}.")
    return found


def list_traits(s: Session, startswith: str | None = None, within: list[str] | None = None,
                associated: bool | None = None) -> list[str]:
    q = sa.select(TRAIT.c.name)
    if startswith is not None:
        q = q.where(TRAIT.c.name.startswith(startswith, autoescape=True))
    if within is not None:
        q = q.where(TRAIT.c.name.in_(within))
    linked = sa.select(RP_TRAIT.c.trait_id)
    if associated is True:
        q = q.where(TRAIT.c.id.in_(linked))
    elif associated is False:
        q = q.where(TRAIT.c.id.not_in(linked))
    return list(s.scalars(q.order_by(TRAIT.c.name)))


def trait_exists(s: Session, name: str) -> None:
    if s.scalar(sa.select(TRAIT.c.id).where(TRAIT.c.name == name)) is None:
        raise errors.NotFound(f"No such trait(s): {name}.")


def ensure_trait(s: Session, name: str) -> bool:
    """PUT /traits/{name}: True if created, False if it existed."""
    if not standard.is_custom(name):
        raise errors.BadRequest(
            f"The trait {name!r} is invalid. A valid trait must be no longer than 255 characters, "
            "start with the prefix \"CUSTOM_\" and use following characters: \"A\"-\"Z\", "
            "\"0\"-\"9\" and \"_\"")
    if s.scalar(sa.select(TRAIT.c.id).where(TRAIT.c.name == name)) is not None:
        return False
    s.execute(TRAIT.insert().values(name=name))
    return True


def delete_trait(s: Session, name: str) -> None:
    tid = s.scalar(sa.select(TRAIT.c.id).where(TRAIT.c.name == name))
    if tid is None:
        raise errors.NotFound(f"No such trait(s): {name}.")
    if not name.startswith("CUSTOM_"):
        raise errors.BadRequest(f"Cannot delete standard trait {name}.")
    if s.scalar(sa.select(RP_TRAIT.c.resource_provider_id).where(RP_TRAIT.c.trait_id == tid).limit(1)):
        raise conflict(f"The trait {name} is in use by a resource provider.")
    s.execute(TRAIT.delete().where(TRAIT.c.id == tid))


# --- resource providers ----------------------------------------------------------------------


@dataclass
class Provider:
    id: int
    uuid: str
    name: str
    generation: int
    parent_uuid: str | None
    root_uuid: str
    parent_id: int | None
    root_id: int
    updated_at: datetime


_PARENT = RP.alias("parent_rp")
_ROOT = RP.alias("root_rp")


def _provider_select():
    return sa.select(
        RP.c.id, RP.c.uuid, RP.c.name, RP.c.generation, _PARENT.c.uuid, _ROOT.c.uuid,
        RP.c.parent_provider_id, RP.c.root_provider_id, RP.c.updated_at,
    ).select_from(
        RP.outerjoin(_PARENT, _PARENT.c.id == RP.c.parent_provider_id)
        .outerjoin(_ROOT, _ROOT.c.id == RP.c.root_provider_id)
    )


def _provider(row) -> Provider:
    return Provider(row[0], row[1], row[2], row[3], row[4], row[5] or row[1], row[6],
                    row[7] or row[0], row[8])


def not_found(uuid: str) -> errors.NotFound:
    return errors.NotFound(f"No resource provider with uuid {uuid} found")


def find_provider(s: Session, uuid: str) -> Provider | None:
    u = norm_uuid(uuid)
    if u is None:
        return None
    row = s.execute(_provider_select().where(RP.c.uuid == u)).first()
    return _provider(row) if row else None


def get_provider(s: Session, uuid: str) -> Provider:
    p = find_provider(s, uuid)
    if p is None:
        raise not_found(uuid)
    return p


def provider_ids(s: Session, uuids) -> dict[str, int]:
    uuids = list(set(uuids))
    if not uuids:
        return {}
    return dict(s.execute(sa.select(RP.c.uuid, RP.c.id).where(RP.c.uuid.in_(uuids))).all())


def bump(s: Session, p: Provider, expected: int | None = None, check: bool = False) -> int:
    """Increment the provider's generation (and lock its row): with ``check``,
    only if it still is ``expected``, else 409 concurrent_update. The new generation."""
    q = RP.update().where(RP.c.id == p.id)
    if check:
        q = q.where(RP.c.generation == expected)
    res = s.execute(q.values(generation=RP.c.generation + 1, updated_at=utcnow()))
    if res.rowcount != 1:
        if s.scalar(sa.select(RP.c.id).where(RP.c.id == p.id)) is None:
            raise not_found(p.uuid)
        raise conflict(f"resource provider generation conflict: provider {p.uuid} is not at "
                       f"generation {expected}; another request changed it. Fetch it and retry.",
                       CONCURRENT_UPDATE)
    gen = s.scalar(sa.select(RP.c.generation).where(RP.c.id == p.id))
    p.generation = gen
    return gen


def lock_providers(s: Session, ids) -> None:
    """Bump (and lock) several providers, in id order so writers never deadlock."""
    now = utcnow()
    for pid in sorted(set(ids)):
        s.execute(RP.update().where(RP.c.id == pid).values(generation=RP.c.generation + 1,
                                                           updated_at=now))


def _name_taken(s: Session, name: str, but: int | None = None) -> bool:
    q = sa.select(RP.c.id).where(RP.c.name == name)
    if but is not None:
        q = q.where(RP.c.id != but)
    return s.scalar(q) is not None


def create_provider(s: Session, name: str, uuid: str | None = None,
                    parent_uuid: str | None = None) -> Provider:
    uuid = norm_uuid(uuid) if uuid else str(uuidlib.uuid4())
    if _name_taken(s, name):
        raise conflict(f"Conflicting resource provider name: {name} already exists.", DUPLICATE_NAME)
    if s.scalar(sa.select(RP.c.id).where(RP.c.uuid == uuid)) is not None:
        raise conflict(f"Conflicting resource provider uuid: {uuid} already exists.", DUPLICATE_NAME)
    parent_id = root_id = None
    if parent_uuid:
        parent = find_provider(s, parent_uuid)
        if parent is None:
            raise errors.BadRequest(f"parent provider UUID {parent_uuid} does not exist.")
        parent_id, root_id = parent.id, parent.root_id
    now = utcnow()
    res = s.execute(RP.insert().values(uuid=uuid, name=name, generation=0, parent_provider_id=parent_id,
                                       root_provider_id=root_id, created_at=now, updated_at=now))
    pid = res.inserted_primary_key[0]
    if root_id is None:
        s.execute(RP.update().where(RP.c.id == pid).values(root_provider_id=pid))
    return get_provider(s, uuid)


def _descendants(s: Session, pid: int) -> list[int]:
    out, frontier = [], [pid]
    while frontier:
        kids = list(s.scalars(sa.select(RP.c.id).where(RP.c.parent_provider_id.in_(frontier))))
        out += kids
        frontier = kids
    return out


_UNSET = object()


def update_provider(s: Session, uuid: str, name: str, parent_uuid=_UNSET,
                    allow_reparent: bool = False) -> Provider:
    p = get_provider(s, uuid)
    if _name_taken(s, name, but=p.id):
        raise conflict(f"Conflicting resource provider name: {name} already exists.", DUPLICATE_NAME)
    values: dict = {"name": name, "updated_at": utcnow()}
    if parent_uuid is not _UNSET and norm_uuid(parent_uuid) != p.parent_uuid:
        if p.parent_uuid is not None and not allow_reparent:
            raise errors.BadRequest("Re-parenting a provider is not currently allowed.")
        if parent_uuid is None:
            if not allow_reparent:
                raise errors.BadRequest("Un-parenting a provider is not currently allowed.")
            new_parent, new_root = None, p.id
        else:
            parent = find_provider(s, parent_uuid)
            if parent is None:
                raise errors.BadRequest(f"parent provider UUID {parent_uuid} does not exist.")
            subtree = _descendants(s, p.id)
            if parent.id == p.id or parent.id in subtree:
                raise errors.BadRequest("Creating loop in the provider tree is not allowed.")
            new_parent, new_root = parent.id, parent.root_id
        values.update(parent_provider_id=new_parent, root_provider_id=new_root)
        subtree = _descendants(s, p.id)
        if subtree:
            s.execute(RP.update().where(RP.c.id.in_(subtree)).values(root_provider_id=new_root))
    s.execute(RP.update().where(RP.c.id == p.id).values(**values))
    return get_provider(s, p.uuid)


def delete_provider(s: Session, uuid: str) -> None:
    p = get_provider(s, uuid)
    bump(s, p)  # lock the row: no allocation can land on it meanwhile
    if s.scalar(sa.select(ALLOC.c.id).where(ALLOC.c.resource_provider_id == p.id).limit(1)):
        raise conflict(f"Unable to delete resource provider {p.uuid}: Resource provider has "
                       "allocations.", PROVIDER_INUSE)
    if s.scalar(sa.select(RP.c.id).where(RP.c.parent_provider_id == p.id).limit(1)):
        raise conflict(f"Unable to delete parent resource provider {p.uuid}: It has child resource "
                       "providers.", CANNOT_DELETE_PARENT)
    s.execute(RP_TRAIT.delete().where(RP_TRAIT.c.resource_provider_id == p.id))
    s.execute(RP_AGG.delete().where(RP_AGG.c.resource_provider_id == p.id))
    s.execute(INV.delete().where(INV.c.resource_provider_id == p.id))
    s.execute(RP.delete().where(RP.c.id == p.id))


@dataclass
class ProviderFilter:
    name: str | None = None
    uuid: str | None = None
    in_tree: str | None = None
    member_of: list[tuple[frozenset[str], bool]] | None = None  # (any of these aggregates, negated)
    resources: dict[int, int] | None = None  # resource class id -> amount
    required: list[frozenset[int]] | None = None  # each: any of these trait ids
    forbidden: frozenset[int] = frozenset()


def usage_subquery(rc_ids_=None):
    """(resource_provider_id, resource_class_id, used) summed over allocations."""
    q = sa.select(ALLOC.c.resource_provider_id.label("rp"), ALLOC.c.resource_class_id.label("rc"),
                  sa.func.sum(ALLOC.c.used).label("used"))
    if rc_ids_ is not None:
        q = q.where(ALLOC.c.resource_class_id.in_(list(rc_ids_)))
    return q.group_by(ALLOC.c.resource_provider_id, ALLOC.c.resource_class_id).subquery()


def list_providers(s: Session, f: ProviderFilter) -> list[Provider]:
    q = _provider_select()
    if f.name is not None:
        q = q.where(RP.c.name == f.name)
    if f.uuid is not None:
        q = q.where(RP.c.uuid == (norm_uuid(f.uuid) or f.uuid))
    if f.in_tree is not None:
        tree = find_provider(s, f.in_tree)
        if tree is None:
            return []
        q = q.where(RP.c.root_provider_id == tree.root_id)
    for aggs, negated in f.member_of or []:
        members = sa.select(RP_AGG.c.resource_provider_id).where(RP_AGG.c.aggregate_uuid.in_(list(aggs)))
        q = q.where(RP.c.id.not_in(members) if negated else RP.c.id.in_(members))
    for any_of in f.required or []:
        q = q.where(RP.c.id.in_(sa.select(RP_TRAIT.c.resource_provider_id)
                                .where(RP_TRAIT.c.trait_id.in_(list(any_of)))))
    if f.forbidden:
        q = q.where(RP.c.id.not_in(sa.select(RP_TRAIT.c.resource_provider_id)
                                   .where(RP_TRAIT.c.trait_id.in_(list(f.forbidden)))))
    for rc_id, amount in (f.resources or {}).items():
        u = usage_subquery([rc_id])
        used = sa.func.coalesce(u.c.used, 0)
        able = (sa.select(INV.c.resource_provider_id)
                .select_from(INV.outerjoin(u, sa.and_(u.c.rp == INV.c.resource_provider_id,
                                                      u.c.rc == INV.c.resource_class_id)))
                .where(INV.c.resource_class_id == rc_id, INV.c.min_unit <= amount,
                       INV.c.max_unit >= amount, sa.literal(amount) % INV.c.step_size == 0,
                       (INV.c.total - INV.c.reserved) * INV.c.allocation_ratio >= used + amount))
        q = q.where(RP.c.id.in_(able))
    return [_provider(r) for r in s.execute(q.order_by(RP.c.id))]


# --- inventories ---------------------------------------------------------------------------


def inventories(s: Session, rp_id: int) -> dict[str, Inventory]:
    rows = s.execute(
        sa.select(RC.c.name, INV.c.total, INV.c.reserved, INV.c.min_unit, INV.c.max_unit,
                  INV.c.step_size, INV.c.allocation_ratio)
        .join(RC, RC.c.id == INV.c.resource_class_id)
        .where(INV.c.resource_provider_id == rp_id).order_by(RC.c.name))
    return {r[0]: Inventory(*r[1:]) for r in rows}


def used_by_class(s: Session, rp_id: int) -> dict[int, int]:
    rows = s.execute(sa.select(ALLOC.c.resource_class_id, sa.func.sum(ALLOC.c.used))
                     .where(ALLOC.c.resource_provider_id == rp_id)
                     .group_by(ALLOC.c.resource_class_id))
    return {rc: int(used) for rc, used in rows}


def make_inventory(p: Provider, rc: str, fields: dict, reserved_may_equal_total: bool) -> Inventory:
    values = {**capacity.DEFAULTS, **{k: v for k, v in fields.items() if k in capacity.FIELDS}}
    inv = Inventory(total=values["total"], reserved=values["reserved"], min_unit=values["min_unit"],
                    max_unit=values["max_unit"], step_size=values["step_size"],
                    allocation_ratio=float(values["allocation_ratio"]))
    why = capacity.inventory_problem(inv, reserved_may_equal_total)
    if why:
        raise errors.BadRequest(f"Unable to update inventory for resource provider {p.uuid}: "
                                f"Invalid inventory for '{rc}' on resource provider '{p.uuid}': {why}.")
    return inv


def _check_in_use(p: Provider, rc: str, inv: Inventory | None, used: int) -> None:
    if not used:
        return
    if inv is None:
        raise conflict(f"Inventory for '{rc}' on resource provider '{p.uuid}' in use: "
                       f"{used} allocated, so it cannot be removed.", INVENTORY_INUSE)
    if used > inv.capacity:
        raise conflict(f"Inventory for '{rc}' on resource provider '{p.uuid}' in use: {used} allocated, "
                       f"more than the new capacity {capacity.shown_capacity(inv)}.", INVENTORY_INUSE)


def replace_inventories(s: Session, p: Provider, wanted: dict[str, Inventory],
                        check_use: bool = True) -> None:
    """Make the provider's inventory exactly ``wanted`` (generation already bumped)."""
    ids = require_rcs(s, wanted, "Unknown resource class in inventory for resource provider "
                      f"{p.uuid}: {{name}}")
    current = {r.resource_class_id: r for r in s.execute(
        sa.select(INV).where(INV.c.resource_provider_id == p.id))}
    used = used_by_class(s, p.id) if check_use else {}
    names = rc_names(s, current) if check_use else {}
    wanted_ids = {ids[name]: inv for name, inv in wanted.items()}
    for rc_id in set(current) - set(wanted_ids):
        if check_use:
            _check_in_use(p, names[rc_id], None, used.get(rc_id, 0))
        s.execute(INV.delete().where(INV.c.resource_provider_id == p.id,
                                     INV.c.resource_class_id == rc_id))
    for name, inv in wanted.items():
        rc_id = ids[name]
        if check_use:
            _check_in_use(p, name, inv, used.get(rc_id, 0))
        if rc_id in current:
            old = current[rc_id]
            if Inventory(old.total, old.reserved, old.min_unit, old.max_unit, old.step_size,
                         old.allocation_ratio) != inv:
                s.execute(INV.update().where(INV.c.resource_provider_id == p.id,
                                             INV.c.resource_class_id == rc_id).values(**inv.as_dict()))
        else:
            s.execute(INV.insert().values(resource_provider_id=p.id, resource_class_id=rc_id,
                                          **inv.as_dict()))


def set_inventories(s: Session, uuid: str, generation: int, wanted: dict[str, dict],
                    reserved_may_equal_total: bool) -> tuple[dict[str, Inventory], int]:
    p = get_provider(s, uuid)
    invs = {rc: make_inventory(p, rc, fields, reserved_may_equal_total) for rc, fields in wanted.items()}
    gen = bump(s, p, generation, check=True)
    replace_inventories(s, p, invs)
    return inventories(s, p.id), gen


def set_inventory(s: Session, uuid: str, rc: str, generation: int, fields: dict,
                  reserved_may_equal_total: bool, create_only: bool = False) -> tuple[Inventory, int]:
    """PUT (create or replace) / POST (create_only) one inventory record."""
    p = get_provider(s, uuid)
    inv = make_inventory(p, rc, fields, reserved_may_equal_total)
    rc_id = require_rcs(s, [rc], f"Unknown resource class in inventory for resource provider "
                        f"{p.uuid}: {{name}}")[rc]
    gen = bump(s, p, generation, check=True)
    exists = s.scalar(sa.select(INV.c.total).where(INV.c.resource_provider_id == p.id,
                                                   INV.c.resource_class_id == rc_id)) is not None
    if exists and create_only:
        raise conflict(f"Update conflict: Inventory for '{rc}' on resource provider '{p.uuid}' "
                       "already exists.")
    _check_in_use(p, rc, inv, used_by_class(s, p.id).get(rc_id, 0))
    if exists:
        s.execute(INV.update().where(INV.c.resource_provider_id == p.id,
                                     INV.c.resource_class_id == rc_id).values(**inv.as_dict()))
    else:
        s.execute(INV.insert().values(resource_provider_id=p.id, resource_class_id=rc_id, **inv.as_dict()))
    return inv, gen


def delete_inventory(s: Session, uuid: str, rc: str) -> None:
    p = get_provider(s, uuid)
    rc_id = rc_ids(s, [rc]).get(rc)
    if rc_id is None or s.scalar(sa.select(INV.c.total).where(
            INV.c.resource_provider_id == p.id, INV.c.resource_class_id == rc_id)) is None:
        raise errors.NotFound(f"No inventory of class {rc} found for delete")
    bump(s, p)
    _check_in_use(p, rc, None, used_by_class(s, p.id).get(rc_id, 0))
    s.execute(INV.delete().where(INV.c.resource_provider_id == p.id, INV.c.resource_class_id == rc_id))


def delete_inventories(s: Session, uuid: str) -> None:
    p = get_provider(s, uuid)
    bump(s, p)
    replace_inventories(s, p, {})


# --- aggregates and provider traits ----------------------------------------------------------


def aggregates(s: Session, rp_id: int) -> list[str]:
    return list(s.scalars(sa.select(RP_AGG.c.aggregate_uuid).where(RP_AGG.c.resource_provider_id == rp_id)
                          .order_by(RP_AGG.c.aggregate_uuid)))


def set_aggregates(s: Session, uuid: str, aggs: list[str], generation: int | None,
                   with_generation: bool) -> tuple[list[str], int]:
    p = get_provider(s, uuid)
    gen = bump(s, p, generation, check=True) if with_generation else p.generation
    want = {norm_uuid(a) for a in aggs}
    have = set(aggregates(s, p.id))
    if have - want:
        s.execute(RP_AGG.delete().where(RP_AGG.c.resource_provider_id == p.id,
                                        RP_AGG.c.aggregate_uuid.in_(list(have - want))))
    if want - have:
        s.execute(RP_AGG.insert(), [{"resource_provider_id": p.id, "aggregate_uuid": a}
                                    for a in sorted(want - have)])
    return aggregates(s, p.id), gen


def provider_traits(s: Session, rp_id: int) -> list[str]:
    return list(s.scalars(sa.select(TRAIT.c.name).join(RP_TRAIT, RP_TRAIT.c.trait_id == TRAIT.c.id)
                          .where(RP_TRAIT.c.resource_provider_id == rp_id).order_by(TRAIT.c.name)))


def set_provider_traits(s: Session, uuid: str, names: list[str], generation: int | None,
                        check: bool = True) -> tuple[list[str], int]:
    p = get_provider(s, uuid)
    ids = require_traits(s, names)
    gen = bump(s, p, generation, check=check)
    have = set(s.scalars(sa.select(RP_TRAIT.c.trait_id).where(RP_TRAIT.c.resource_provider_id == p.id)))
    want = set(ids.values())
    if have - want:
        s.execute(RP_TRAIT.delete().where(RP_TRAIT.c.resource_provider_id == p.id,
                                          RP_TRAIT.c.trait_id.in_(list(have - want))))
    if want - have:
        s.execute(RP_TRAIT.insert(), [{"resource_provider_id": p.id, "trait_id": t}
                                      for t in sorted(want - have)])
    return provider_traits(s, p.id), gen
