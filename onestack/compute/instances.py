"""Servers on the API side: lookups, listing, the create request, actions records.

The API never touches a hypervisor: it writes the instance record, then hands
work to the conductor (create) or the instance's compute agent (everything
else) over the bus, as the book's chapter 4 tells the 13 steps of a boot.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import itertools
import json
import logging
import re
import secrets
import uuid as uuidlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from onestack.common import booleans, bus, db, errors
from onestack.common.microversion import Version
from onestack.common.pagination import parse_limit
from onestack.common.timeutils import iso, parse_iso, utcnow
from onestack.compute import flavors, policies, quotas, states
from onestack.compute import models as m
from onestack.compute.bfv import volume_backed

log = logging.getLogger(__name__)

GiB = 1 << 30
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


def is_uuid(text) -> bool:
    return isinstance(text, str) and bool(UUID_RE.match(text))


def not_found(uuid: str) -> errors.NotFound:
    return errors.NotFound(f"Instance {uuid} could not be found.")


def get(s: Session, ctx, uuid: str, for_update: bool = False) -> m.Instance:
    """A server the caller may see (404 otherwise: never reveal another project's);
    ``for_update`` locks its row (PostgreSQL) for a read-modify-write."""
    inst = s.get(m.Instance, uuid, with_for_update=for_update) if is_uuid(uuid) else None
    if inst is None or inst.deleted:
        raise not_found(uuid)
    if inst.project_id != ctx.project_id and not ctx.is_admin:
        raise not_found(uuid)
    return inst


def hostname_of(name: str) -> str:
    """A DNS label made from a display name, as Nova sanitises it."""
    h = re.sub(r"[^\w.\- ]", "", name.lower()).replace(" ", "-").replace("_", "-")
    h = re.sub(r"[.\-]+$", "", re.sub(r"^[.\-]+", "", h))[:63]
    return h or "server"


def record_action(s: Session, inst: m.Instance, ctx, action: str, request_id: str) -> m.InstanceAction:
    now = utcnow()
    a = m.InstanceAction(instance_uuid=inst.uuid, request_id=request_id, action=action,
                         project_id=ctx.project_id if ctx else inst.project_id,
                         user_id=ctx.user_id if ctx else inst.user_id, start_time=now, updated_at=now)
    s.add(a)
    return a


def fault(code: int, message: str, details: str = "") -> dict:
    return {"code": code, "message": message[:255], "details": details, "created": iso(utcnow())}


# ---------------------------------------------------------------- listing

_SORT_KEYS = {"created_at": m.Instance.created_at, "updated_at": m.Instance.updated_at,
              "display_name": m.Instance.name, "uuid": m.Instance.uuid, "vm_state": m.Instance.vm_state,
              "task_state": m.Instance.task_state, "power_state": m.Instance.power_state,
              "host": m.Instance.host, "node": m.Instance.node, "launched_at": m.Instance.launched_at,
              "terminated_at": m.Instance.terminated_at, "availability_zone": m.Instance.availability_zone,
              "key_name": m.Instance.key_name, "project_id": m.Instance.project_id,
              "user_id": m.Instance.user_id, "hostname": m.Instance.hostname, "image_ref": m.Instance.image_ref,
              "launch_index": m.Instance.launch_index, "locked": m.Instance.locked,
              "display_description": m.Instance.description}
_ADMIN_ONLY_SORT = {"host", "node"}
MAX_LIMIT = 1000  # the largest page, with or without ``limit`` (Nova's [api] max_limit)


@dataclass
class ListQuery:
    filters: dict = field(default_factory=dict)
    limit: int | None = None
    marker: str | None = None
    sort: list[tuple[str, str]] = field(default_factory=list)


def list_servers(s: Session, ctx, q, v, detail: bool = True) -> tuple[list[SimpleNamespace], bool, int]:
    """The servers a list request selects, in order, one page (objects with the attributes of
    ``Instance`` the list views show: all but system metadata, requested networks and key
    data; ``detail`` False: uuid and name); whether more follow; the page size.
    Filters, order, marker and limit are SQL; only regular expressions are matched here."""
    admin = ctx.is_admin
    stmt = sa.select(m.Instance)
    all_tenants = "all_tenants" in q and (q["all_tenants"] == "" or booleans.parse_bool(q["all_tenants"], "all_tenants"))
    if all_tenants:
        policies.authorize("servers:detail:get_all_tenants", ctx)
    if not (all_tenants and admin):
        project = q.get("project_id") or q.get("tenant_id") if admin and all_tenants else None
        stmt = stmt.where(m.Instance.project_id == (project or ctx.project_id))
    elif q.get("project_id") or q.get("tenant_id"):
        stmt = stmt.where(m.Instance.project_id == (q.get("project_id") or q.get("tenant_id")))
    deleted = q.get("deleted")
    changes = q.get("changes-since")
    if deleted and admin:
        stmt = stmt.where(m.Instance.deleted == booleans.parse_bool(deleted, "deleted"))
    elif not changes:  # changes-since shows servers deleted since then too, as Nova
        stmt = stmt.where(m.Instance.deleted.is_(False))
    since = None
    if changes:
        try:
            since = parse_iso(changes)
        except ValueError:
            raise errors.BadRequest(f"Invalid filter field: changes-since: {changes!r} is not a time.") from None
        stmt = stmt.where(m.Instance.updated_at >= since)
    before = q.get("changes-before")
    if before:
        if v < Version(2, 66):
            raise errors.BadRequest("Invalid filter field: changes-before.")
        try:
            until = parse_iso(before)
        except ValueError:
            raise errors.BadRequest(f"Invalid filter field: changes-before: {before!r} is not a time.") from None
        if since is not None and until < since:
            raise errors.BadRequest("The value of changes-since must be less than or equal to changes-before.")
        stmt = stmt.where(m.Instance.updated_at <= until)
    if "status" in q:
        vms = []
        for st in q.getlist("status"):
            got = states.vm_states_for(st)
            if not got:
                if v >= Version(2, 38):
                    raise errors.BadRequest(f"Invalid status value: {st}")
                return [], False, 0
            vms += got
        stmt = stmt.where(m.Instance.vm_state.in_(vms))
    for key, col in (("image", m.Instance.image_ref), ("reservation_id", m.Instance.reservation_id),
                     ("availability_zone", m.Instance.availability_zone), ("key_name", m.Instance.key_name),
                     ("user_id", m.Instance.user_id), ("vm_state", m.Instance.vm_state),
                     ("task_state", m.Instance.task_state)):
        if q.get(key):
            value = q[key].rsplit("/", 1)[-1] if key == "image" else q[key]
            stmt = stmt.where(col == value)
    if q.get("power_state"):
        try:
            stmt = stmt.where(m.Instance.power_state == int(q["power_state"]))
        except ValueError:
            pass
    for key in ("host", "node"):
        if q.get(key):
            if not admin:
                continue  # Nova ignores admin-only filters for others
            stmt = stmt.where((m.Instance.host if key == "host" else m.Instance.node) == q[key])
    if "locked" in q:
        if v < Version(2, 73):
            raise errors.BadRequest("Invalid filter field: locked.")
        stmt = stmt.where(m.Instance.locked == booleans.parse_bool(q["locked"], "locked"))
    if q.get("flavor"):  # the flavor snapshot is a JSON document: its id, in SQL
        stmt = stmt.where(m.Instance.flavor["id"].as_string() == q["flavor"].rsplit("/", 1)[-1])
    dialect = s.get_bind().dialect.name
    for key in ("tags", "tags-any", "not-tags", "not-tags-any"):
        if key in q:
            has = [_has_tag(dialect, t) for t in dict.fromkeys(q[key].split(",")) if t]
            every, some = sa.and_(sa.true(), *has), sa.or_(sa.false(), *has)
            stmt = stmt.where({"tags": every, "tags-any": some, "not-tags": ~every, "not-tags-any": ~some}[key])
    order = _order(q, admin)
    stmt = stmt.order_by(*[x for col, d in order for x in _order_by(col, d)])
    marker = q.get("marker")
    if marker:
        # as Nova: the marker may be any server, a deleted one too; only one that never was is a 400
        mark = s.get(m.Instance, marker) if is_uuid(marker) else None
        if mark is None:
            raise errors.BadRequest(f"marker [{marker}] not found")
        stmt = stmt.where(_after(order, mark))
    limit = parse_limit(q.get("limit"), MAX_LIMIT)
    limit = MAX_LIMIT if limit is None else limit
    if limit == 0:
        return [], False, limit
    matches, needs = _regex_filters(q)
    # rows, not ORM objects: a page is only read, and only what its view shows
    cols = _DETAIL_COLUMNS if detail else [m.Instance.uuid, m.Instance.name, *needs]
    stmt = stmt.with_only_columns(*(sa.cast(c, sa.Text).label(c.key) if c.key in _JSON_KEYS else c
                                    for c in cols))
    if matches is None:
        rows = list(_decoded(s.execute(stmt.limit(limit + 1))))
    else:
        # regular expressions (Python's, as the API documents them) are the only filters not
        # in SQL: the rows stream in the SQL order, the page fills with those that match
        rows = list(itertools.islice(filter(matches, _decoded(s.execute(stmt.execution_options(yield_per=500)))),
                                     limit + 1))
    return rows[:limit], len(rows) > limit, limit


# what no list view shows (and are the larger documents)
_DETAIL_COLUMNS = [getattr(m.Instance, a.key) for a in m.Instance.__mapper__.column_attrs
                   if a.key not in ("system_metadata", "requested_networks", "key_data")]
_JSON_KEYS = frozenset(a.key for a in m.Instance.__mapper__.column_attrs if isinstance(a.columns[0].type, sa.JSON))
_UNSEEN = object()


def _decoded(rows: Iterable[sa.Row]) -> Iterator[SimpleNamespace]:
    """The rows as objects with ``Instance``'s attribute names, their JSON documents (read
    as text) decoded once per distinct text: a page's servers share flavors, security
    groups, empty metadata and tags, so most are decoded once a page rather than once a
    server. Equal documents are one object then: the views copy what they show, never
    change it."""
    memo: dict[str, object] = {}
    fields: tuple[str, ...] | None = None
    documents: list[int] = []
    for row in rows:
        if fields is None:
            fields = row._fields
            documents = [i for i, k in enumerate(fields) if k in _JSON_KEYS]
        values = list(row)
        for i in documents:
            text = values[i]
            if text is None:
                continue
            value = memo.get(text, _UNSEEN)
            if value is _UNSEEN:
                if len(memo) > 4096:  # a long scan (regular expression filters) keeps little
                    memo.clear()
                value = memo[text] = json.loads(text)
            values[i] = value
        item = SimpleNamespace()
        item.__dict__.update(zip(fields, values, strict=True))
        yield item


def _has_tag(dialect: str, tag: str) -> sa.ColumnElement[bool]:
    """Whether the server's tags (a JSON list) hold ``tag``, as each database asks it."""
    if dialect == "postgresql":
        return sa.cast(m.Instance.tags, JSONB).has_key(tag)
    if dialect in ("mysql", "mariadb"):
        return sa.func.json_contains(m.Instance.tags, sa.func.json_quote(tag)) == 1
    each = sa.func.json_each(m.Instance.tags).table_valued("value")
    return sa.exists().select_from(each).where(each.c.value == tag)


def _regex_filters(q) -> tuple[Callable[[m.Instance], bool] | None, set]:
    """The name/hostname/description and ip/ip6 filters: regular expressions, matched here;
    and the columns they read."""
    tests, needs = [], set()
    for key, attr in (("name", "name"), ("ip", None), ("ip6", None), ("hostname", "hostname"),
                      ("description", "description")):
        if not q.get(key):
            continue
        try:
            rx = re.compile(q[key])
        except re.error:
            raise errors.BadRequest(f"Invalid filter field: {key}: not a regular expression.") from None
        needs.add(getattr(m.Instance, attr or "network_info"))
        if attr:
            tests.append(lambda r, rx=rx, attr=attr: bool(getattr(r, attr)) and bool(rx.search(getattr(r, attr))))
        else:
            version = 6 if key == "ip6" else 4
            tests.append(lambda r, rx=rx, version=version: any(
                rx.match(ip["ip_address"]) for vif in r.network_info or [] for ip in vif.get("fixed_ips", [])
                if ip.get("version", 4) == version))
    if not tests:
        return None, needs
    return (lambda r: all(t(r) for t in tests)), needs


def _order(q, admin: bool) -> list[tuple]:
    """``sort_key``/``sort_dir`` as columns and directions (Nova's default: created_at desc),
    then uuid, so the order is total and a marker names one place in it."""
    keys = q.getlist("sort_key") or ["created_at"]
    dirs = q.getlist("sort_dir")
    order = []
    for i, k in enumerate(keys):
        if k not in _SORT_KEYS:
            raise errors.BadRequest(f"Invalid sort_key {k}.")
        if k in _ADMIN_ONLY_SORT and not admin:
            raise errors.Forbidden(f"Only administrators can sort servers by {k}")
        d = dirs[i] if i < len(dirs) else (dirs[0] if dirs else "desc")
        if d not in ("asc", "desc"):
            raise errors.BadRequest(f"Invalid sort_dir {d}: asc or desc.")
        order.append((_SORT_KEYS[k], d))
    if all(col is not m.Instance.uuid for col, _ in order):
        order.append((m.Instance.uuid, "desc"))
    return order


# NULL sorts before every value (first ascending, last descending), on every database


def _order_by(col, d: str) -> list:
    nulls = [col.is_not(None)] if col.nullable else []  # False (NULL) before True
    if d == "asc":
        return [*nulls, col.asc()]
    return [*(x.desc() for x in nulls), col.desc()]


def _after(order, mark: m.Instance) -> sa.ColumnElement[bool]:
    """The rows after ``mark`` in ``order`` (a keyset: equal on the first keys, beyond on the next)."""
    ors, equal = [], []
    for col, d in order:
        value = getattr(mark, col.key)
        if d == "asc":
            beyond = col.is_not(None) if value is None else col > value
        elif value is None:
            beyond = sa.false()
        else:
            beyond = sa.or_(col < value, col.is_(None)) if col.nullable else col < value
        ors.append(sa.and_(*equal, beyond))
        equal.append(col.is_(None) if value is None else col == value)
    return sa.or_(*ors)


# ---------------------------------------------------------------- create

@dataclass
class BuildRequest:
    """What a create request asks for, validated (the scheduler's RequestSpec)."""

    name: str
    flavor: dict
    image: dict | None
    image_ref: str
    networks: list | str  # "auto" | "none" | [{"uuid"|"port"|"fixed_ip"|"tag"}]
    security_groups: list[str]
    key_name: str | None
    key_data: str | None
    user_data: str | None
    metadata: dict
    availability_zone: str | None
    force_host: str | None
    config_drive: bool
    min_count: int
    max_count: int
    description: str | None
    tags: list[str]
    block_device_mapping: list[dict]
    access_ip_v4: str | None = None
    access_ip_v6: str | None = None
    admin_pass: str | None = None
    group: str | None = None
    hints: dict = field(default_factory=dict)


def decode_user_data(value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise errors.BadRequest("Invalid input for field/attribute user_data: must be a base64 string.")
    if len(value) > 65535:
        raise errors.BadRequest("Invalid input for field/attribute user_data: longer than 65535 characters.")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise errors.BadRequest("User data needs to be valid base 64.") from None
    return value


NAME_MAX = 255
TAG_RE = re.compile(r"^[^,/]{1,60}$")
MAX_TAGS = 50


def check_name(name, what: str = "name") -> str:
    if not isinstance(name, str):
        raise errors.BadRequest(f"Invalid input for field/attribute {what}. Value: {name}. "
                                f"{name!r} is not of type 'string'")
    if not name.strip() or len(name) > NAME_MAX:
        raise errors.BadRequest(f"Invalid input for field/attribute {what}. Value: {name}. "
                                f"{what} must be 1-{NAME_MAX} characters and not only spaces.")
    if name != name.strip():
        raise errors.BadRequest(f"Invalid input for field/attribute {what}. Value: {name}. "
                                f"Leading or trailing whitespace is not allowed.")
    return name


def check_ip(value, version: int, field: str):
    try:
        ip = ipaddress.ip_address(value)
        if ip.version != version:
            raise ValueError
        return str(ip)  # the canonical form, as Nova stores it
    except (TypeError, ValueError):
        raise errors.BadRequest(f"Invalid input for field/attribute {field}. Value: {value}. "
                                f"{value!r} is not a 'ipv{version}'") from None


def check_tag(tag) -> str:
    if not isinstance(tag, str) or not TAG_RE.match(tag):
        raise errors.BadRequest(f"Invalid tag {tag!r}: 1-60 characters, no ',' or '/'.")
    return tag


def next_device(used: set[str]) -> str:
    """The next free virtio name after the root disk (vdb, vdc, ...), as /dev/vdX."""
    for c in "bcdefghijklmnopqrstuvwxy":
        if f"vd{c}" not in used:
            return f"/dev/vd{c}"
    raise errors.Forbidden("The maximum number of volumes is attached to this server.")


def check_metadata(md, what: str = "metadata") -> dict:
    if not isinstance(md, dict):
        raise errors.BadRequest(f"Invalid input for field/attribute {what}: must be an object.")
    for k, v in md.items():
        if not isinstance(k, str) or not 1 <= len(k) <= 255:
            raise errors.BadRequest(f"Invalid input for field/attribute {what}: keys must be 1-255 characters.")
        if not isinstance(v, str):
            raise errors.BadRequest(f"Invalid input for field/attribute {what}: value of {k!r} must be a string.")
        if len(v) > 255:
            raise errors.BadRequest(f"Invalid input for field/attribute {what}: value of {k!r} is longer "
                                    f"than 255 characters.")
    return md


def new_reservation_id() -> str:
    return "r-" + secrets.token_hex(4)


def create_records(s: Session, ctx, req: BuildRequest, request_id: str) -> list[m.Instance]:
    """Write the instance rows (BUILD/scheduling) and their create actions."""
    count = req.max_count
    quotas.check_servers(s, ctx.project_id, count, req.flavor["vcpus"] * 1, req.flavor["memory_mb"])
    # a request for several may be satisfied with fewer, down to min_count
    if count > req.min_count:
        for n in range(count, req.min_count - 1, -1):
            try:
                quotas.check_servers(s, ctx.project_id, n, req.flavor["vcpus"], req.flavor["memory_mb"])
                count = n
                break
            except errors.Forbidden:
                if n == req.min_count:
                    raise
    now = utcnow()
    reservation = new_reservation_id()
    out = []
    for i in range(count):
        name = req.name if count == 1 else f"{req.name}-{i + 1}"
        inst = m.Instance(
            uuid=str(uuidlib.uuid4()), project_id=ctx.project_id, user_id=ctx.user_id, name=name,
            hostname=hostname_of(name), description=req.description, image_ref=req.image_ref,
            flavor=req.flavor, vm_state=states.BUILDING, task_state=states.SCHEDULING, power_state=0,
            availability_zone=req.availability_zone, key_name=req.key_name, key_data=req.key_data,
            user_data=req.user_data, config_drive="True" if req.config_drive else "",
            metadata_=dict(req.metadata), system_metadata={"image": req.image or {}},
            tags=list(req.tags), security_groups=list(req.security_groups),
            requested_networks=req.networks, network_info=[],
            block_device_mapping=req.block_device_mapping, locked=False,
            access_ip_v4=req.access_ip_v4, access_ip_v6=req.access_ip_v6, reservation_id=reservation,
            launch_index=i, progress=0, server_group=req.group, created_at=now, updated_at=now,
            deleted=False)
        s.add(inst)
        record_action(s, inst, ctx, "create", request_id)
        out.append(inst)
    if req.group:
        g = s.scalar(sa.select(m.ServerGroup).where(m.ServerGroup.uuid == req.group))
        members = list(g.members or [])
        limit = quotas.limits(s, ctx.project_id).get("server_group_members", -1)
        if limit >= 0 and len(members) + len(out) > limit:
            raise errors.Forbidden("Quota exceeded, too many servers in group")
        g.members = members + [i.uuid for i in out]
    s.flush()
    return out


def schedule(uuids: list[str], req: BuildRequest, request_id: str) -> None:
    """Hand the new instances to the conductor (which asks the scheduler, then casts to hosts)."""
    spec = {"flavor": req.flavor, "image": req.image or {}, "availability_zone": req.availability_zone,
            "force_host": req.force_host, "group": req.group, "hints": req.hints,
            "volume_backed": volume_backed(req.block_device_mapping)}
    try:
        bus.get().cast_sync("compute.conductor", "build_instances", instance_uuids=uuids, spec=spec,
                            request_id=request_id)
    except errors.ApiError as e:  # the bus is down: the servers exist, and say why they will not build
        log.warning("build request of %s not delivered: %s", ", ".join(uuids), e.message)
        fail_builds(uuids, f"The build request could not reach the compute conductor: {e.message}")


def fail_builds(uuids: list[str], message: str) -> None:
    """Servers still building go to ERROR with ``message`` as their fault."""
    with db.transaction() as s:
        for inst in s.scalars(sa.select(m.Instance).where(m.Instance.uuid.in_(uuids))):
            if inst.deleted or inst.vm_state != states.BUILDING:
                continue
            inst.vm_state, inst.task_state = states.ERROR, None
            inst.fault = fault(500, message)
            inst.updated_at = utcnow()


def cast_to_host(inst: m.Instance, method: str, **kwargs) -> None:
    cast_to(inst.host, method, instance_uuid=inst.uuid, **kwargs)


def cast_to(host: str, method: str, **kwargs) -> None:
    """Cast to the compute agent of ``host`` (bus topic ``compute.<host>``)."""
    bus.get().cast_sync(f"compute.{host}", method, **kwargs)


def select_destination(inst: m.Instance) -> dict | None:
    """Ask the scheduler for a host for ``inst`` (unshelve): {"host", "node"} or None."""
    spec = {"flavor": inst.flavor, "availability_zone": inst.availability_zone, "group": inst.server_group,
            "volume_backed": volume_backed(inst.block_device_mapping)}
    dests = bus.get().call_sync("compute.scheduler", "select_destinations", spec=spec,
                                instance_uuids=[inst.uuid], project_id=inst.project_id, user_id=inst.user_id)
    return dests[0] if dests else None


def call_host(inst: m.Instance, method: str, timeout: float = 60, **kwargs):
    try:
        return bus.get().call_sync(f"compute.{inst.host}", method, timeout=timeout, instance_uuid=inst.uuid,
                                   **kwargs)
    except errors.ServiceUnavailable:
        raise errors.Conflict(f"Compute host {inst.host} is not available.") from None


def set_task(uuid: str, task_state: str | None, expected: tuple = (None,), **changes) -> m.Instance:
    """Move an instance to a task state if nobody else moved it (409 otherwise)."""
    with db.transaction() as s:
        inst = s.get(m.Instance, uuid, with_for_update=True)
        if inst is None or inst.deleted:
            raise not_found(uuid)
        if expected is not None and inst.task_state not in expected:
            raise errors.Conflict(f"Cannot perform the action while the instance is in task_state "
                                  f"{inst.task_state}")
        inst.task_state = task_state
        for k, v in changes.items():
            setattr(inst, k, v)
        inst.updated_at = utcnow()
        return inst


def hard_delete_unscheduled(uuid: str) -> None:
    """A server no host holds (still scheduling, or failed to schedule): deleted at once."""
    with db.transaction() as s:
        inst = s.get(m.Instance, uuid)
        if inst is None or inst.deleted:
            return
        mark_deleted(s, inst)


def mark_deleted(s: Session, inst: m.Instance) -> None:
    now = utcnow()
    inst.deleted = True
    inst.deleted_at = now
    inst.terminated_at = now
    inst.vm_state = states.DELETED
    inst.task_state = None
    inst.power_state = 0
    inst.updated_at = now
    if inst.server_group:
        g = s.scalar(sa.select(m.ServerGroup).where(m.ServerGroup.uuid == inst.server_group))
        if g is not None:
            g.members = [u for u in (g.members or []) if u != inst.uuid]
    notify_later(s, "delete.end", inst)


# --- lifecycle notifications --------------------------------------------------------
# ``compute.instance.create.end`` (the server became ACTIVE), ``.update`` (renamed, resized,
# another vm_state) and ``.delete.end``, as Nova notifies them (the payload reduced to what
# telemetry makes its instance resources of). Each goes out once its transaction commits;
# a rolled-back one notifies nothing.

_PENDING = "compute_notifications"


def notification(inst: m.Instance) -> dict:
    f = inst.flavor or {}
    return {"instance_id": inst.uuid, "project_id": inst.project_id, "user_id": inst.user_id,
            "display_name": inst.name, "flavor_id": f.get("id"), "flavor_name": f.get("name"),
            "vcpus": f.get("vcpus"), "memory_mb": f.get("memory_mb"), "image_ref": inst.image_ref or None,
            "host": inst.host, "state": inst.vm_state, "created_at": iso(inst.created_at),
            "deleted_at": iso(inst.deleted_at),
            # Ceilometer's server_group: the metadata Heat gives an autoscaling group's members
            "server_group": (inst.metadata_ or {}).get("metering.server_group")}


def notify_later(s: Session, event: str, inst: m.Instance) -> None:
    """``compute.instance.<event>`` of ``inst`` as it is now, sent when ``s`` commits."""
    s.info.setdefault(_PENDING, {})[(event, inst.uuid)] = notification(inst)


def _after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    for (event, _), payload in (pending or {}).items():
        try:
            bus.get().notify(f"compute.instance.{event}", payload, publisher="compute")
        except Exception:  # noqa: BLE001 (the change is made; a lost event must not undo it)
            log.exception("compute.instance.%s of %s was not sent", event, payload["instance_id"])


sa.event.listen(Session, "after_commit", _after_commit)
sa.event.listen(Session, "after_soft_rollback", lambda session, previous: session.info.pop(_PENDING, None))


__all__ = ["flavors", "get", "list_servers", "create_records", "schedule", "BuildRequest"]
