"""The index: resource types, resources (with history) and metrics.

Who sees what (Gnocchi's default policy): an admin sees everything; anyone else the
resources whose project or creating project is theirs, and the metrics they created or
that belong to such a resource. ``ctx=None`` is the service itself (the bus ingest).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa

from onestack.common import db, errors
from onestack.metric import policies, query
from onestack.metric.models import ArchivePolicy, Metric, Resource, ResourceHistory, ResourceType
from onestack.metric.timeutil import iso, to_datetime

# Gnocchi's namespace for ids that are not UUIDs (gnocchi/utils.py RESOURCE_ID_NAMESPACE)
RESOURCE_ID_NAMESPACE = uuid.UUID("0a7a15ff-aa13-4ac2-897c-9bdf30ce175b")
ATTR_TYPES = ("string", "uuid", "number", "bool", "datetime")
COMMON = ("id", "type", "original_resource_id", "project_id", "user_id", "started_at", "ended_at",
          "revision_start", "revision_end", "creator", "created_by_user_id", "created_by_project_id", "metrics")


def _s(required: bool = False) -> dict:
    return {"type": "string", "required": required, "min_length": 0, "max_length": 255}


def _u(required: bool = False) -> dict:
    return {"type": "uuid", "required": required}


# Ceilometer's resource types (gnocchi_resources.yaml), the attributes the collector sends
BUILTIN_TYPES = {
    "generic": {},
    "instance": {"display_name": _s(), "flavor_id": _s(), "flavor_name": _s(), "image_ref": _s(),
                 "host": _s(), "server_group": _s(), "created_at": {"type": "datetime", "required": False},
                 "launched_at": {"type": "datetime", "required": False},
                 "deleted_at": {"type": "datetime", "required": False}},
    "instance_disk": {"name": _s(), "instance_id": _u()},
    "instance_network_interface": {"name": _s(), "instance_id": _u()},
    "volume": {"display_name": _s(), "volume_type": _s()},
    "image": {"name": _s(), "container_format": _s(), "disk_format": _s()},
    "network": {"name": _s()},
    "swift_account": {},
}
NAME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*$")


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def ensure_types() -> None:
    with db.transaction() as s:
        for name, attrs in BUILTIN_TYPES.items():
            if s.get(ResourceType, name) is None:
                s.add(ResourceType(name=name, attributes=attrs, state="active"))


# -- resource types


def type_view(t: ResourceType) -> dict:
    return {"name": t.name, "state": t.state, "attributes": t.attributes}


def list_types() -> list[dict]:
    with db.session() as s:
        return [type_view(t) for t in s.scalars(sa.select(ResourceType).order_by(ResourceType.name))]


def get_type(name: str) -> ResourceType:
    with db.session() as s:
        t = s.get(ResourceType, name)
    if t is None:
        raise errors.NotFound(f"Resource type {name} does not exist")
    return t


def _attr_schema(name: str, spec) -> dict:
    if not isinstance(name, str) or not NAME_RE.match(name) or name in COMMON:
        raise errors.BadRequest(f"Invalid input: '{name}' is not a valid attribute name")
    if not isinstance(spec, dict) or spec.get("type") not in ATTR_TYPES:
        raise errors.BadRequest(f"Invalid input: attribute {name} needs a type among {', '.join(ATTR_TYPES)}")
    out = {"type": spec["type"], "required": bool(spec.get("required", True))}
    if spec["type"] == "string":
        out["min_length"] = int(spec.get("min_length", 0))
        out["max_length"] = int(spec.get("max_length", 255))
    if spec["type"] == "number":
        out["min"] = spec.get("min")
        out["max"] = spec.get("max")
    if "options" in spec and isinstance(spec["options"], dict):
        out["options"] = spec["options"]
    return out


def create_type(ctx, body: dict) -> dict:
    if ctx is not None and not ctx.is_admin:
        raise errors.Forbidden("Access was denied to this resource: resource types are managed by admins.")
    name = body.get("name")
    # Gnocchi takes any string as a type's name (e.g. telemetry-tempest-plugin's "instance-like");
    # "/" would make it unreachable in URLs
    if not isinstance(name, str) or not name.strip() or "/" in name or len(name) > 255:
        raise errors.BadRequest("Invalid input: required key not provided or invalid @ data['name']")
    attrs = body.get("attributes") or {}
    if not isinstance(attrs, dict):
        raise errors.BadRequest("Invalid input: attributes must be an object")
    t = ResourceType(name=name, attributes={k: _attr_schema(k, v) for k, v in attrs.items()}, state="active")
    with db.transaction(conflict=f"Resource type {name} already exists") as s:
        if s.get(ResourceType, name) is not None:
            raise errors.Conflict(f"Resource type {name} already exists")
        s.add(t)
    return type_view(t)


def patch_type(ctx, name: str, ops) -> dict:
    """JSON patch (add/remove of ``/attributes/<name>``), as Gnocchi allows."""
    if ctx is not None and not ctx.is_admin:
        raise errors.Forbidden("Access was denied to this resource: resource types are managed by admins.")
    if not isinstance(ops, list):
        raise errors.BadRequest("Invalid input: a JSON patch (a list of operations) is required")
    with db.transaction() as s:
        t = s.get(ResourceType, name)
        if t is None:
            raise errors.NotFound(f"Resource type {name} does not exist")
        attrs = dict(t.attributes)
        for op in ops:
            if not isinstance(op, dict) or not str(op.get("path", "")).startswith("/attributes/"):
                raise errors.BadRequest("Invalid input: patch operations work on /attributes/<name>")
            attr = op["path"][len("/attributes/"):]
            if op.get("op") == "add":
                attrs[attr] = _attr_schema(attr, op.get("value"))
            elif op.get("op") == "remove":
                if attr not in attrs:
                    raise errors.BadRequest(f"Invalid input: attribute {attr} does not exist")
                del attrs[attr]
            else:
                raise errors.BadRequest(f"Invalid input: patch op {op.get('op')!r} is not supported "
                                        "(add, remove)")
        t.attributes = attrs
    return type_view(t)


def delete_type(ctx, name: str) -> None:
    if ctx is not None and not ctx.is_admin:
        raise errors.Forbidden("Access was denied to this resource: resource types are managed by admins.")
    if name in BUILTIN_TYPES:
        raise errors.BadRequest(f"Resource type {name} is built in and cannot be deleted")
    with db.transaction() as s:
        t = s.get(ResourceType, name)
        if t is None:
            raise errors.NotFound(f"Resource type {name} does not exist")
        if s.scalar(sa.select(sa.func.count()).select_from(Resource).where(Resource.type == name)):
            raise errors.BadRequest(f"Resource type {name} is still in use")
        s.delete(t)


# -- visibility


def _visible_resources(stmt, ctx):
    if ctx is None or ctx.is_admin:
        return stmt
    return stmt.where(sa.or_(Resource.project_id == ctx.project_id,
                             Resource.created_by_project_id == ctx.project_id))


def _can_see_metric(ctx, m: Metric, r: Resource | None) -> bool:
    if ctx is None or ctx.is_admin or m.created_by_project_id == ctx.project_id:
        return True
    return r is not None and ctx.project_id in (r.project_id, r.created_by_project_id)


# -- resources


def resource_uuid(value) -> str:
    if not isinstance(value, str) or not value or len(value) > 255 or "/" in value:
        raise errors.BadRequest(f"Invalid input: invalid resource id {value!r}")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return str(uuid.uuid5(RESOURCE_ID_NAMESPACE, value))


def _check_attr(name: str, spec: dict, value):
    if value is None:
        if spec.get("required"):
            raise errors.BadRequest(f"Invalid input: attribute {name} is required and cannot be null")
        return None
    kind = spec["type"]
    if kind == "string":
        if not isinstance(value, str):
            raise errors.BadRequest(f"Invalid input: attribute {name} must be a string")
        if not spec.get("min_length", 0) <= len(value) <= spec.get("max_length", 255):
            raise errors.BadRequest(f"Invalid input: attribute {name} length out of bounds")
        return value
    if kind == "uuid":
        try:
            return str(uuid.UUID(str(value)))
        except ValueError:
            raise errors.BadRequest(f"Invalid input: attribute {name} must be a UUID") from None
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise errors.BadRequest(f"Invalid input: attribute {name} must be a number")
        if spec.get("min") is not None and value < spec["min"] or \
                spec.get("max") is not None and value > spec["max"]:
            raise errors.BadRequest(f"Invalid input: attribute {name} out of bounds")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise errors.BadRequest(f"Invalid input: attribute {name} must be a boolean")
        return value
    return iso(to_datetime(value, name))  # datetime


def _attributes(schema: dict, body: dict, creating: bool) -> dict:
    extra = set(body) - set(schema) - set(COMMON)
    if extra:
        raise errors.BadRequest(f"Invalid input: extra keys not allowed @ data['{sorted(extra)[0]}']")
    out = {}
    for name, spec in schema.items():
        if name in body:
            out[name] = _check_attr(name, spec, body[name])
        elif creating:
            if spec.get("required"):
                raise errors.BadRequest(f"Invalid input: required key not provided @ data['{name}']")
            out[name] = None
    return out


def resource_doc(r: Resource, metrics: dict[str, str] | None = None, revision_end=None) -> dict:
    creator = f"{r.created_by_user_id}:{r.created_by_project_id}"
    doc = {"id": r.id, "type": r.type, "original_resource_id": r.original_resource_id,
           "project_id": r.project_id, "user_id": r.user_id, "creator": creator,
           "created_by_user_id": r.created_by_user_id, "created_by_project_id": r.created_by_project_id,
           "started_at": iso(r.started_at), "ended_at": iso(r.ended_at),
           "revision_start": iso(r.revision_start), "revision_end": iso(revision_end),
           "metrics": metrics or {}}
    doc.update(r.attributes or {})
    return doc


def _metrics_of(s, resource_ids: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {rid: {} for rid in resource_ids}
    for i in range(0, len(resource_ids), 500):
        chunk = resource_ids[i:i + 500]
        for mid, name, rid in s.execute(sa.select(Metric.id, Metric.name, Metric.resource_id)
                                        .where(Metric.resource_id.in_(chunk))):
            out[rid][name] = mid
    return out


def _time_field(body: dict, key: str):
    return to_datetime(body[key], key) if body.get(key) is not None else None


def create_resource(ctx, rtype: str, body: dict, created_by: tuple[str | None, str | None] | None = None) -> dict:
    t = get_type(rtype)
    if not isinstance(body, dict):
        raise errors.BadRequest("Invalid input: the resource must be an object")
    if "id" not in body:
        raise errors.BadRequest("Invalid input: required key not provided @ data['id']")
    original = body["id"]
    rid = resource_uuid(original)
    attrs = _attributes(t.attributes, body, creating=True)
    for key in ("user_id", "project_id"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise errors.BadRequest(f"Invalid input: {key} must be a string")
    stamp = now()
    by_user, by_project = created_by or ((ctx.user_id, ctx.project_id) if ctx else (None, None))
    r = Resource(id=rid, type=rtype, original_resource_id=original, project_id=body.get("project_id"),
                 user_id=body.get("user_id"), created_by_user_id=by_user, created_by_project_id=by_project,
                 started_at=_time_field(body, "started_at") or stamp, ended_at=_time_field(body, "ended_at"),
                 revision_start=stamp, attributes=attrs)
    if r.ended_at and r.ended_at < r.started_at:
        raise errors.BadRequest("Invalid input: ended_at is before started_at")
    metrics_body = body.get("metrics") or {}
    if not isinstance(metrics_body, dict):
        raise errors.BadRequest("Invalid input: metrics must be an object")
    with db.transaction(conflict=f"Resource {rid} already exists") as s:
        if s.get(Resource, rid) is not None:
            raise errors.Conflict(f"Resource {rid} already exists")
        s.add(r)
        s.flush()
        names = _attach_metrics(s, ctx, r, metrics_body, by_user, by_project)
    return resource_doc(r, names)


def _attach_metrics(s, ctx, r: Resource, metrics_body: dict, by_user, by_project,
                    own: set[str] = frozenset()) -> dict[str, str]:
    """``{"name": {"archive_policy_name", "unit"}}`` or ``{"name": "<metric id>"}`` onto ``r``
    (``own``: ids the resource had, which its updater may name again)."""
    names = dict(_metrics_of(s, [r.id])[r.id])
    for name, spec in metrics_body.items():
        if name in names:
            raise errors.Conflict(f"Named metric {name} already exists")
        if isinstance(spec, str):
            m = s.get(Metric, spec)
            if m is None or (spec not in own and not _can_see_metric(ctx, m, None)):
                raise errors.BadRequest(f"Invalid input: metric {spec} does not exist")
            if m.resource_id is not None:
                raise errors.BadRequest(f"Invalid input: metric {spec} is already attached to a resource")
            m.resource_id, m.name = r.id, name
        elif isinstance(spec, dict):
            m = new_metric(s, name, spec.get("archive_policy_name"), spec.get("unit"), r.id, by_user, by_project)
        else:
            raise errors.BadRequest(f"Invalid input: metric {name} must be an object or a metric id")
        names[name] = m.id
    return names


def new_metric(s, name, policy_name, unit, resource_id, by_user, by_project) -> Metric:
    if name is not None and (not isinstance(name, str) or not name or "/" in name or len(name) > 255):
        raise errors.BadRequest(f"Invalid input: invalid metric name {name!r}")
    if unit is not None and (not isinstance(unit, str) or len(unit) > 31):
        raise errors.BadRequest("Invalid input: unit must be a string of at most 31 characters")
    policy_name = policy_name or policies.policy_for(name)
    if not isinstance(policy_name, str) or s.get(ArchivePolicy, policy_name) is None:
        raise errors.BadRequest(f"Archive policy {policy_name} does not exist")
    m = Metric(id=str(uuid.uuid4()), archive_policy_name=policy_name, name=name, unit=unit,
               resource_id=resource_id, created_by_user_id=by_user, created_by_project_id=by_project)
    s.add(m)
    return m


def _load_resource(s, ctx, rtype: str, rid: str) -> Resource:
    try:
        key = resource_uuid(rid)
    except errors.BadRequest:
        raise errors.NotFound(f"Resource {rid} does not exist") from None
    r = s.get(Resource, key)
    if r is None or (rtype != "generic" and r.type != rtype):
        if rtype != "generic" and s.get(ResourceType, rtype) is None:
            raise errors.NotFound(f"Resource type {rtype} does not exist")
        raise errors.NotFound(f"Resource {rid} does not exist")
    if ctx is not None and not ctx.is_admin and ctx.project_id not in (r.project_id, r.created_by_project_id):
        raise errors.NotFound(f"Resource {rid} does not exist")
    return r


def get_resource(ctx, rtype: str, rid: str) -> dict:
    with db.session() as s:
        r = _load_resource(s, ctx, rtype, rid)
        return resource_doc(r, _metrics_of(s, [r.id])[r.id])


def update_resource(ctx, rtype: str, rid: str, body: dict) -> dict:
    if not isinstance(body, dict):
        raise errors.BadRequest("Invalid input: the resource must be an object")
    for key in ("id", "type", "original_resource_id", "creator", "created_by_user_id",
                "created_by_project_id", "revision_start", "revision_end"):
        if key in body:
            raise errors.BadRequest(f"Invalid input: extra keys not allowed @ data['{key}']")
    with db.transaction() as s:
        r = _load_resource(s, ctx, rtype, rid)
        t = s.get(ResourceType, r.type)
        attrs = _attributes(t.attributes, body, creating=False)
        before = resource_doc(r)
        changed = False
        for key in ("user_id", "project_id"):
            if key in body and body[key] != getattr(r, key):
                setattr(r, key, body[key])
                changed = True
        for key in ("started_at", "ended_at"):
            if key in body:
                value = _time_field(body, key)
                if value != getattr(r, key):
                    setattr(r, key, value)
                    changed = True
        if r.ended_at and r.ended_at < r.started_at:
            raise errors.BadRequest("Invalid input: ended_at is before started_at")
        merged = {**(r.attributes or {}), **attrs}
        if merged != (r.attributes or {}):
            r.attributes = merged
            changed = True
        if changed:  # the former revision goes to the history
            stamp = now()
            before.pop("metrics", None)
            s.add(ResourceHistory(resource_id=r.id, revision_start=r.revision_start, revision_end=stamp,
                                  document=before))
            r.revision_start = stamp
        if "metrics" in body:  # the resource's whole set, as Gnocchi: the others are detached
            if not isinstance(body["metrics"], dict):
                raise errors.BadRequest("Invalid input: metrics must be an object")
            own = set(_metrics_of(s, [r.id])[r.id].values())
            s.execute(sa.update(Metric).where(Metric.resource_id == r.id).values(resource_id=None, name=None))
            s.flush()
            _attach_metrics(s, ctx, r, body["metrics"], ctx.user_id if ctx else None,
                            ctx.project_id if ctx else None, own=own)
        s.flush()
        return resource_doc(r, _metrics_of(s, [r.id])[r.id])


def delete_resource(ctx, rtype: str, rid: str) -> list[str]:
    """Deletes the resource and its metrics; returns the metric ids (their series go too)."""
    with db.transaction() as s:
        r = _load_resource(s, ctx, rtype, rid)
        ids = list(s.scalars(sa.select(Metric.id).where(Metric.resource_id == r.id)))
        s.execute(sa.delete(Metric).where(Metric.resource_id == r.id))
        s.execute(sa.delete(ResourceHistory).where(ResourceHistory.resource_id == r.id))
        s.delete(r)
    return ids


def history(ctx, rtype: str, rid: str) -> list[dict]:
    with db.session() as s:
        r = _load_resource(s, ctx, rtype, rid)
        metrics = _metrics_of(s, [r.id])[r.id]
        old = list(s.scalars(sa.select(ResourceHistory).where(ResourceHistory.resource_id == r.id)
                             .order_by(ResourceHistory.revision_start)))
        docs = [{**h.document, "metrics": metrics, "revision_start": iso(h.revision_start),
                 "revision_end": iso(h.revision_end)} for h in old]
        return docs + [resource_doc(r, metrics)]


def search_resources(ctx, rtype: str, q: dict | None = None, details: bool = True, limit: int | None = None,
                     marker: str | None = None, sort: list[str] | None = None,
                     with_history: bool = False) -> list[dict]:
    """Resources of ``rtype`` (``generic``: all) the caller sees that match the query."""
    if rtype != "generic":
        get_type(rtype)
    pred = query.compile_json(q)
    with db.session() as s:
        # plain rows, not ORM objects: a search may read thousands of resources
        stmt = _visible_resources(sa.select(Resource.__table__), ctx)
        if rtype != "generic":
            stmt = stmt.where(Resource.type == rtype)
        rows = list(s.execute(stmt))
        metrics = _metrics_of(s, [r.id for r in rows])
        docs = [resource_doc(r, metrics[r.id]) for r in rows]
        if with_history:
            hist = list(s.scalars(sa.select(ResourceHistory).where(
                ResourceHistory.resource_id.in_([r.id for r in rows]))))
            docs += [{**h.document, "metrics": metrics.get(h.resource_id, {}),
                      "revision_start": iso(h.revision_start), "revision_end": iso(h.revision_end)}
                     for h in hist]
    if rtype == "generic" and not details:
        docs = [{k: d[k] for k in COMMON} for d in docs]
    docs = [d for d in docs if pred(d)]
    return paginate(docs, limit, marker, sort or ["revision_start:asc", "started_at:asc"])


def paginate(docs: list[dict], limit, marker, sort: list[str]) -> list[dict]:
    for key in reversed(sort + ["id:asc"]):
        field, _, direction = key.partition(":")
        direction = direction.partition("-")[0]  # "desc-nullslast": nulls go last anyway
        if direction not in ("", "asc", "desc"):
            raise errors.BadRequest(f"Invalid sort direction in {key!r}")
        docs.sort(key=lambda d, f=field: (d.get(f) is None, str(d.get(f)) if d.get(f) is not None else ""),
                  reverse=direction == "desc")
    if marker:
        ids = [d["id"] for d in docs]
        if marker not in ids:
            raise errors.BadRequest(f"Invalid marker: `{marker}'")
        docs = docs[ids.index(marker) + 1:]
    return docs[:limit] if limit else docs


# -- metrics


def metric_doc(m: Metric, policy: ArchivePolicy, resource: Resource | None = None,
               with_resource: bool = False) -> dict:
    doc = {"id": m.id, "archive_policy": policies.view(policy), "name": m.name, "unit": m.unit,
           "resource_id": m.resource_id, "creator": f"{m.created_by_user_id}:{m.created_by_project_id}",
           "created_by_user_id": m.created_by_user_id, "created_by_project_id": m.created_by_project_id}
    if with_resource:
        doc["resource"] = resource_doc(resource) if resource is not None else None
    return doc


def create_metric(ctx, body: dict) -> dict:
    if not isinstance(body, dict):
        raise errors.BadRequest("Invalid input: the metric must be an object")
    extra = set(body) - {"name", "unit", "archive_policy_name", "resource_id"}
    if extra:
        raise errors.BadRequest(f"Invalid input: extra keys not allowed @ data['{sorted(extra)[0]}']")
    with db.transaction(conflict=f"Named metric {body.get('name')} already exists") as s:
        rid = body.get("resource_id")
        r = None
        if rid is not None:
            if not body.get("name"):
                raise errors.BadRequest("Invalid input: a metric on a resource needs a name")
            r = _load_resource(s, ctx, "generic", rid)
            if body["name"] in _metrics_of(s, [r.id])[r.id]:
                raise errors.Conflict(f"Named metric {body['name']} already exists")
        m = new_metric(s, body.get("name"), body.get("archive_policy_name"), body.get("unit"),
                       r.id if r else None, ctx.user_id if ctx else None, ctx.project_id if ctx else None)
        s.flush()
        return metric_doc(m, s.get(ArchivePolicy, m.archive_policy_name))


def load_metric(ctx, metric_id: str) -> tuple[Metric, ArchivePolicy]:
    with db.session() as s:
        m = s.get(Metric, metric_id) if _is_uuid(metric_id) else None
        r = s.get(Resource, m.resource_id) if m is not None and m.resource_id else None
        if m is None or not _can_see_metric(ctx, m, r):
            raise errors.NotFound(f"Metric {metric_id} does not exist")
        return m, s.get(ArchivePolicy, m.archive_policy_name)


def load_named_metric(ctx, rtype: str, rid: str, name: str) -> tuple[Metric, ArchivePolicy]:
    with db.session() as s:
        r = _load_resource(s, ctx, rtype, rid)
        m = s.scalar(sa.select(Metric).where(Metric.resource_id == r.id, Metric.name == name))
        if m is None:
            raise errors.NotFound(f"Metric {name} does not exist")
        return m, s.get(ArchivePolicy, m.archive_policy_name)


def get_metric(ctx, metric_id: str) -> dict:
    m, p = load_metric(ctx, metric_id)
    with db.session() as s:
        r = s.get(Resource, m.resource_id) if m.resource_id else None
    return metric_doc(m, p, r, with_resource=True)


def list_metrics(ctx, filters: dict, limit=None, marker=None, sort=None) -> list[dict]:
    with db.session() as s:
        stmt = sa.select(Metric, Resource).outerjoin(Resource, Metric.resource_id == Resource.id)
        if ctx is not None and not ctx.is_admin:
            stmt = stmt.where(sa.or_(Metric.created_by_project_id == ctx.project_id,
                                     Resource.project_id == ctx.project_id,
                                     Resource.created_by_project_id == ctx.project_id))
        for key in ("name", "unit", "archive_policy_name", "resource_id", "created_by_user_id",
                    "created_by_project_id"):
            if filters.get(key) is not None:
                stmt = stmt.where(getattr(Metric, key) == filters[key])
        rows = list(s.execute(stmt))
        pols = {p.name: p for p in s.scalars(sa.select(ArchivePolicy))}
    docs = [metric_doc(m, pols[m.archive_policy_name]) for m, _ in rows]
    return paginate(docs, limit, marker, sort or ["id:asc"])


def resource_metrics(ctx, rtype: str, rid: str) -> list[dict]:
    with db.session() as s:
        r = _load_resource(s, ctx, rtype, rid)
        ms = list(s.scalars(sa.select(Metric).where(Metric.resource_id == r.id).order_by(Metric.name)))
        pols = {p.name: p for p in s.scalars(sa.select(ArchivePolicy))}
    return [metric_doc(m, pols[m.archive_policy_name]) for m in ms]


def add_resource_metrics(ctx, rtype: str, rid: str, body: dict) -> list[dict]:
    if not isinstance(body, dict):
        raise errors.BadRequest("Invalid input: expected an object of metric name -> metric")
    with db.transaction(conflict="Named metric already exists") as s:
        r = _load_resource(s, ctx, rtype, rid)
        _attach_metrics(s, ctx, r, body, ctx.user_id if ctx else None, ctx.project_id if ctx else None)
    return resource_metrics(ctx, rtype, rid)


def delete_metric(ctx, metric_id: str) -> None:
    m, _ = load_metric(ctx, metric_id)
    if ctx is not None and not ctx.is_admin and m.created_by_project_id != ctx.project_id:
        with db.session() as s:
            r = s.get(Resource, m.resource_id) if m.resource_id else None
        if r is None or ctx.project_id not in (r.project_id, r.created_by_project_id):
            raise errors.Forbidden("Access was denied to this resource.")
    with db.transaction() as s:
        s.execute(sa.delete(Metric).where(Metric.id == m.id))


def metrics_by_ids(ctx, ids: list[str]) -> tuple[dict[str, tuple[Metric, ArchivePolicy]], list[str]]:
    """The visible metrics among ``ids`` and the ids that are unknown (or not visible)."""
    found: dict[str, tuple[Metric, ArchivePolicy]] = {}
    valid = [i for i in ids if _is_uuid(i)]
    admin = ctx is None or ctx.is_admin
    with db.session() as s:
        pols = {p.name: p for p in s.scalars(sa.select(ArchivePolicy))}
        # plain rows: a batch or an aggregate reads thousands (the resources only to check who sees them)
        stmt = sa.select(Metric.__table__) if admin else sa.select(
            Metric.__table__, Resource.project_id.label("r_project"),
            Resource.created_by_project_id.label("r_creator")).outerjoin(Resource, Metric.resource_id == Resource.id)
        for i in range(0, len(valid), 500):
            for m in s.execute(stmt.where(Metric.id.in_(valid[i:i + 500]))):
                if admin or ctx.project_id in (m.created_by_project_id, m.r_project, m.r_creator):
                    found[m.id] = (m, pols[m.archive_policy_name])
    return found, [i for i in ids if i not in found]


def metric_policies(ids: list[str]) -> dict[str, ArchivePolicy]:
    """The archive policy of each of ``ids`` (metrics of resources the caller's search saw:
    no visibility check), two columns of one query per 500."""
    out: dict[str, ArchivePolicy] = {}
    with db.session() as s:
        pols = {p.name: p for p in s.scalars(sa.select(ArchivePolicy))}
        for i in range(0, len(ids), 500):
            for mid, name in s.execute(sa.select(Metric.id, Metric.archive_policy_name)
                                       .where(Metric.id.in_(ids[i:i + 500]))):
                out[mid] = pols[name]
    return out


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except (ValueError, AttributeError, TypeError):
        return False
