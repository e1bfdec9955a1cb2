"""Host aggregates and the availability zones they make (Nova's AggregateAPI).

An aggregate groups compute hosts and carries metadata; its
``availability_zone`` metadata key makes its hosts an availability zone. A
host's zone is its aggregates' zone, else the zone its compute service
reports (``compute.availability_zone``, "nova" by default). A host is in one
zone at most, and a host with servers never changes zone (the servers would
silently move): the checks below refuse both, with Nova's status codes.

The scheduler reads the zones and the metadata (``host_zones``,
``host_metadata``) to keep servers in their requested zone and to match
flavor extra specs scoped ``aggregate_instance_extra_specs:`` against the
metadata of a host's aggregates (Nova's AggregateInstanceExtraSpecsFilter).
"""

from __future__ import annotations

import operator
import uuid as uuidlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from onestack.common import db, errors
from onestack.common.timeutils import utcnow
from onestack.compute import models as m
from onestack.compute import policies, settings

AZ_KEY = "availability_zone"
INTERNAL_ZONE = "internal"
SPEC_SCOPE = "aggregate_instance_extra_specs"
COMPUTE = "nova-compute"


@dataclass
class AggregateInfo:
    id: int
    uuid: str
    name: str
    created_at: datetime
    updated_at: datetime | None
    hosts: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def availability_zone(self) -> str | None:
        return self.metadata.get(AZ_KEY)


# ---------------------------------------------------------------- zones (read by the API and the scheduler)


def host_zones(s: Session, hosts: Iterable[str] | None = None) -> dict[str, str]:
    """The zone each host in an availability-zone aggregate is in."""
    q = (sa.select(m.AggregateHost.host, m.AggregateMetadata.value)
         .join(m.AggregateMetadata, m.AggregateMetadata.aggregate_id == m.AggregateHost.aggregate_id)
         .where(m.AggregateMetadata.key == AZ_KEY)
         .order_by(m.AggregateHost.aggregate_id))
    if hosts is not None:
        q = q.where(m.AggregateHost.host.in_(list(hosts)))
    out: dict[str, str] = {}
    for host, zone in s.execute(q):
        out.setdefault(host, zone)
    return out


def service_zone(svc: m.Service, zones: dict[str, str]) -> str:
    """A service's zone: its aggregates' for a compute host, else what it reported."""
    if svc.binary == COMPUTE:
        return zones.get(svc.host) or svc.zone or settings.current.availability_zone
    return svc.zone or INTERNAL_ZONE


def available_zones(s: Session) -> set[str]:
    """The zones a server may ask for: those of the enabled compute services (as Nova)."""
    rows = list(s.execute(sa.select(m.Service.host, m.Service.zone).where(
        m.Service.binary == COMPUTE, m.Service.disabled.is_(False))))
    zones = host_zones(s, [h for h, _ in rows])
    return {zones.get(h) or z or settings.current.availability_zone for h, z in rows}


def host_metadata(s: Session) -> dict[str, dict[str, set[str]]]:
    """Each aggregated host's metadata: key -> the values its aggregates give it."""
    rows = s.execute(sa.select(m.AggregateHost.host, m.AggregateMetadata.key, m.AggregateMetadata.value)
                     .join(m.AggregateMetadata,
                           m.AggregateMetadata.aggregate_id == m.AggregateHost.aggregate_id))
    out: dict[str, dict[str, set[str]]] = {}
    for host, key, value in rows:
        out.setdefault(host, {}).setdefault(key, set()).add(value)
    return out


# ---------------------------------------------------------------- flavor extra specs against metadata


def scoped_specs(extra_specs: dict | None) -> dict[str, str]:
    """The flavor's ``aggregate_instance_extra_specs:KEY`` specs, by KEY. (Nova's filter
    also reads unscoped keys; here they stay free for other uses, the filter being on
    by default.)"""
    prefix = SPEC_SCOPE + ":"
    return {k[len(prefix):]: str(v) for k, v in (extra_specs or {}).items() if k.startswith(prefix)}


def _num(op):
    return lambda x, y: op(float(x), float(y))


# Nova's extra_specs_ops: "= N" means at least N; "s" operators compare strings
_OPS = {"=": _num(operator.ge), "==": _num(operator.eq), "!=": _num(operator.ne), ">=": _num(operator.ge),
        "<=": _num(operator.le), "s==": operator.eq, "s!=": operator.ne, "s<": operator.lt,
        "s<=": operator.le, "s>": operator.gt, "s>=": operator.ge,
        "<in>": lambda x, y: y in x, "<all-in>": lambda x, ys: all(y in x for y in ys)}


def spec_matches(value: str, req: str) -> bool:
    """Does an aggregate's ``value`` satisfy the extra spec ``req`` (``<or> a <or> b``,
    ``>= 4``, ``s== x``, ``<in> sub``, or plain equality)?"""
    words = req.split()
    op = words.pop(0) if words else None
    if op == "<or>":
        return value in words[::2]
    method = _OPS.get(op)
    if method is None:
        return value == req
    if not words:
        return False
    try:
        return bool(method(value, words if op == "<all-in>" else words[0]))
    except ValueError:  # a number was compared with text
        return False


def specs_match(metadata: dict[str, set[str]], wanted: dict[str, str]) -> bool:
    """A host passes when every wanted key is in its aggregates' metadata with a matching value."""
    return all(any(spec_matches(v, req) for v in metadata.get(key, ())) for key, req in wanted.items())


# ---------------------------------------------------------------- CRUD


def _info(s: Session, agg: m.Aggregate) -> AggregateInfo:
    hosts = list(s.scalars(sa.select(m.AggregateHost.host).where(m.AggregateHost.aggregate_id == agg.id)
                           .order_by(m.AggregateHost.host)))
    meta = dict(s.execute(sa.select(m.AggregateMetadata.key, m.AggregateMetadata.value)
                          .where(m.AggregateMetadata.aggregate_id == agg.id)).all())
    return AggregateInfo(agg.id, agg.uuid, agg.name, agg.created_at, agg.updated_at, hosts, meta)


def _get(s: Session, agg_id: int) -> m.Aggregate:
    agg = s.get(m.Aggregate, agg_id)
    if agg is None:
        raise errors.NotFound(f"Aggregate {agg_id} could not be found.")
    return agg


def list_all(ctx) -> list[AggregateInfo]:
    policies.authorize("os-aggregates:index", ctx, {})
    with db.session() as s:
        aggs = list(s.scalars(sa.select(m.Aggregate).order_by(m.Aggregate.id)))
        hosts: dict[int, list[str]] = {}
        for agg_id, host in s.execute(sa.select(m.AggregateHost.aggregate_id, m.AggregateHost.host)
                                      .order_by(m.AggregateHost.host)):
            hosts.setdefault(agg_id, []).append(host)
        meta: dict[int, dict[str, str]] = {}
        for agg_id, key, value in s.execute(sa.select(m.AggregateMetadata.aggregate_id, m.AggregateMetadata.key,
                                                      m.AggregateMetadata.value)):
            meta.setdefault(agg_id, {})[key] = value
        return [AggregateInfo(a.id, a.uuid, a.name, a.created_at, a.updated_at, hosts.get(a.id, []),
                              meta.get(a.id, {})) for a in aggs]


def get(ctx, agg_id: int) -> AggregateInfo:
    policies.authorize("os-aggregates:show", ctx, {})
    with db.session() as s:
        return _info(s, _get(s, agg_id))


def _name_taken(name: str) -> str:
    return f"Aggregate {name} already exists."


def _check_name_free(s: Session, name: str, agg_id: int | None = None) -> None:
    other = s.scalar(sa.select(m.Aggregate.id).where(m.Aggregate.name == name))
    if other is not None and other != agg_id:
        raise errors.Conflict(_name_taken(name))


def create(ctx, name: str, zone: str | None) -> AggregateInfo:
    policies.authorize("os-aggregates:create", ctx, {})
    with db.transaction(conflict=_name_taken(name)) as s:
        _check_name_free(s, name)
        agg = m.Aggregate(uuid=str(uuidlib.uuid4()), name=name, created_at=utcnow(), updated_at=None)
        s.add(agg)
        s.flush()
        if zone:
            s.add(m.AggregateMetadata(aggregate_id=agg.id, key=AZ_KEY, value=zone))
        s.flush()
        return _info(s, agg)


def _instances_on(s: Session, hosts: list[str]) -> int:
    if not hosts:
        return 0
    return s.scalar(sa.select(sa.func.count()).select_from(m.Instance).where(
        m.Instance.host.in_(hosts), m.Instance.deleted.is_(False))) or 0


def _other_zones(s: Session, hosts: list[str], agg_id: int) -> set[str]:
    """The zones other aggregates give these hosts."""
    if not hosts:
        return set()
    return set(s.scalars(
        sa.select(m.AggregateMetadata.value)
        .join(m.AggregateHost, m.AggregateHost.aggregate_id == m.AggregateMetadata.aggregate_id)
        .where(m.AggregateMetadata.key == AZ_KEY, m.AggregateHost.host.in_(hosts),
               m.AggregateHost.aggregate_id != agg_id)))


def _check_new_zone(s: Session, agg: m.Aggregate, zone: str | None, what: str) -> None:
    """Nova's is_safe_to_update_az for an update or set_metadata that names a zone (400s)."""
    if not zone:
        raise errors.BadRequest(f"Cannot {what} of aggregate {agg.id}. Reason: Aggregate {agg.name} does "
                                f"not support empty named availability zone.")
    hosts = list(s.scalars(sa.select(m.AggregateHost.host).where(m.AggregateHost.aggregate_id == agg.id)))
    conflicting = sorted(z for z in _other_zones(s, hosts, agg.id) if z != zone)
    if conflicting:
        raise errors.BadRequest(f"Cannot {what} of aggregate {agg.id}. Reason: One or more hosts already in "
                                f"availability zone(s) {conflicting}.")
    if any(_effective_zone(s, h) != zone for h in hosts if _instances_on(s, [h])):
        raise errors.BadRequest(f"Cannot {what} of aggregate {agg.id}. Reason: One or more hosts contain "
                                f"instances in this zone.")


def _set_meta(s: Session, agg: m.Aggregate, metadata: dict[str, str | None]) -> None:
    for key, value in metadata.items():
        row = s.get(m.AggregateMetadata, (agg.id, key))
        if value is None:
            if row is not None:
                s.delete(row)
        elif row is None:
            s.add(m.AggregateMetadata(aggregate_id=agg.id, key=key, value=value))
        else:
            row.value = value
    agg.updated_at = utcnow()


def update(ctx, agg_id: int, changes: dict) -> AggregateInfo:
    """``changes``: ``name`` and/or ``availability_zone``."""
    policies.authorize("os-aggregates:update", ctx, {})
    name = changes.get("name")
    with db.transaction(conflict=_name_taken(name or "")) as s:
        agg = _get(s, agg_id)
        if name is not None:
            _check_name_free(s, name, agg.id)
            agg.name = name
            agg.updated_at = utcnow()
        if AZ_KEY in changes:
            _check_new_zone(s, agg, changes[AZ_KEY], "update aggregate")
            _set_meta(s, agg, {AZ_KEY: changes[AZ_KEY]})
        s.flush()
        return _info(s, agg)


def set_metadata(ctx, agg_id: int, metadata: dict[str, str | None]) -> AggregateInfo:
    """Set keys (a None value deletes one); the zone key obeys the zone rules."""
    policies.authorize("os-aggregates:set_metadata", ctx, {})
    with db.transaction() as s:
        agg = _get(s, agg_id)
        if AZ_KEY in metadata:
            _check_new_zone(s, agg, metadata[AZ_KEY], "update metadata")
        _set_meta(s, agg, metadata)
        s.flush()
        return _info(s, agg)


def delete(ctx, agg_id: int) -> None:
    policies.authorize("os-aggregates:delete", ctx, {})
    with db.transaction() as s:
        agg = _get(s, agg_id)
        if s.scalar(sa.select(sa.func.count()).select_from(m.AggregateHost).where(
                m.AggregateHost.aggregate_id == agg.id)):
            raise errors.BadRequest(f"Cannot delete aggregate {agg_id}. Reason: Host aggregate is not empty.")
        s.execute(sa.delete(m.AggregateMetadata).where(m.AggregateMetadata.aggregate_id == agg.id))
        s.delete(agg)


def _effective_zone(s: Session, host: str, without: int | None = None) -> str:
    """The host's zone (leaving aggregate ``without`` out): its aggregates', else the reported one."""
    zones = _other_zones(s, [host], without if without is not None else -1)
    if zones:
        return min(zones)
    reported = s.scalar(sa.select(m.Service.zone).where(m.Service.host == host, m.Service.binary == COMPUTE))
    return reported or settings.current.availability_zone


def _zone_of(s: Session, agg_id: int) -> str | None:
    return s.scalar(sa.select(m.AggregateMetadata.value).where(
        m.AggregateMetadata.aggregate_id == agg_id, m.AggregateMetadata.key == AZ_KEY))


def _moving(old: str | None, new: str | None, count: int, verb: str) -> errors.Conflict:
    return errors.Conflict(
        f"The host cannot be {verb} the aggregate as the availability zone of the host would change from "
        f"'{old}' to '{new}' but the host already has {count} instance(s). Move the instances away from "
        f"this host then try again (shelve_offload and unshelve move them between zones).")


def add_host(ctx, agg_id: int, host: str) -> AggregateInfo:
    policies.authorize("os-aggregates:add_host", ctx, {})
    with db.transaction(conflict=f"Aggregate {agg_id} already has host {host}.") as s:
        if s.scalar(sa.select(m.Service.id).where(m.Service.host == host, m.Service.binary == COMPUTE)) is None:
            raise errors.NotFound(f"Compute host {host} could not be found.")
        agg = _get(s, agg_id)
        if s.get(m.AggregateHost, (agg.id, host)) is not None:
            raise errors.Conflict(f"Aggregate {agg_id} already has host {host}.")
        zone = _zone_of(s, agg.id)
        if zone:
            conflicting = sorted(z for z in _other_zones(s, [host], agg.id) if z != zone)
            if conflicting:
                raise errors.Conflict(f"Cannot add host to aggregate {agg_id}. Reason: One or more hosts "
                                      f"already in availability zone(s) {conflicting}.")
            count, old = _instances_on(s, [host]), _effective_zone(s, host, agg.id)
            if count and old != zone:
                raise _moving(old, zone, count, "added to")
        s.add(m.AggregateHost(aggregate_id=agg.id, host=host))
        agg.updated_at = utcnow()
        s.flush()
        return _info(s, agg)


def remove_host(ctx, agg_id: int, host: str) -> AggregateInfo:
    policies.authorize("os-aggregates:remove_host", ctx, {})
    with db.transaction() as s:
        agg = _get(s, agg_id)
        row = s.get(m.AggregateHost, (agg.id, host))
        if row is None:
            raise errors.NotFound(f"Cannot remove host {host} in aggregate {agg_id}: the aggregate has no "
                                  f"host {host}.")
        zone = _zone_of(s, agg.id)
        if zone:
            count, new = _instances_on(s, [host]), _effective_zone(s, host, agg.id)
            if count and new != zone:
                raise _moving(zone, new, count, "removed from")
        s.delete(row)
        agg.updated_at = utcnow()
        s.flush()
        return _info(s, agg)


def forget_host(s: Session, host: str) -> None:
    """A deleted compute service leaves its aggregates (inside the caller's transaction)."""
    s.execute(sa.delete(m.AggregateHost).where(m.AggregateHost.host == host))
