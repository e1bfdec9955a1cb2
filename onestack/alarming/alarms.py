"""The alarming domain: alarms, their history and quotas, as Aodh's v2 API defines them.

Functions of (context, plain arguments) returning plain dicts (an alarm as Aodh's storage
model has it: ``alarm_id``, ``rule``, datetimes); the API renders them. A caller limited
to its project (not admin) sees only that project's alarms: another's is absent (404).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import SplitResult, urlsplit

import sqlalchemy as sa

from onestack.alarming import credentials, policies, query, rules, settings
from onestack.alarming import models as m
from onestack.common import db, errors
from onestack.common.timeutils import parse_iso, utcnow

ACTION_FIELDS = ("ok_actions", "alarm_actions", "insufficient_data_actions")
ALARM_FIELDS = ("alarm_id", "enabled", "type", "name", "description", "timestamp", "user_id", "project_id",
                "state", "state_timestamp", "state_reason", "ok_actions", "alarm_actions",
                "insufficient_data_actions", "repeat_actions", "rule", "time_constraints", "severity",
                "evaluate_timestamp")
CHANGE_FIELDS = ("event_id", "alarm_id", "type", "detail", "user_id", "project_id", "on_behalf_of",
                 "timestamp", "severity")
# the read-only attributes a client may send back (aodhclient's update PUTs what GET gave)
READ_ONLY = {"alarm_id", "timestamp", "state_timestamp", "state_reason", "evaluate_timestamp"}
LIST_FIELDS = {"all_projects", "user_id", "project_id", "type", "name", "enabled", "state", "severity",
               "timestamp", "repeat_actions"}

CREATION, RULE_CHANGE, STATE_TRANSITION, DELETION = "creation", "rule change", "state transition", "deletion"


class AlarmNotFound(errors.NotFound):
    def __init__(self, alarm_id: str):
        super().__init__(f"Alarm {alarm_id} not found")


# ------------------------------------------------------------------ rows <-> dicts
def as_dict(row: m.Alarm) -> dict:
    return {"alarm_id": row.id, "name": row.name, "description": row.description, "type": row.type,
            "enabled": row.enabled, "severity": row.severity, "state": row.state,
            "state_reason": row.state_reason, "state_timestamp": row.state_timestamp,
            "timestamp": row.timestamp, "evaluate_timestamp": row.evaluate_timestamp,
            "project_id": row.project_id, "user_id": row.user_id, "rule": row.rule,
            "time_constraints": row.time_constraints or [], "ok_actions": row.ok_actions or [],
            "alarm_actions": row.alarm_actions or [],
            "insufficient_data_actions": row.insufficient_data_actions or [],
            "repeat_actions": row.repeat_actions}


def change_dict(row: m.AlarmChange) -> dict:
    return {"event_id": row.event_id, "alarm_id": row.alarm_id, "type": row.type, "detail": row.detail,
            "user_id": row.user_id, "project_id": row.project_id, "on_behalf_of": row.on_behalf_of,
            "timestamp": row.timestamp, "severity": row.severity}


def _store(row: m.Alarm, alarm: dict) -> None:
    row.name, row.description, row.type = alarm["name"], alarm["description"], alarm["type"]
    row.enabled, row.severity, row.state = alarm["enabled"], alarm["severity"], alarm["state"]
    row.state_reason, row.state_timestamp = alarm["state_reason"], alarm["state_timestamp"]
    row.timestamp, row.project_id, row.user_id = alarm["timestamp"], alarm["project_id"], alarm["user_id"]
    row.rule, row.time_constraints = alarm["rule"], alarm["time_constraints"]
    row.ok_actions, row.alarm_actions = alarm["ok_actions"], alarm["alarm_actions"]
    row.insufficient_data_actions, row.repeat_actions = alarm["insufficient_data_actions"], alarm["repeat_actions"]


def _jsonable(data: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in data.items()}


def record(s, alarm_id: str, kind: str, detail: dict, user_id: str | None, project_id: str | None,
           on_behalf_of: str | None, severity: str | None) -> None:
    """One entry of an alarm's history (in the caller's transaction)."""
    s.add(m.AlarmChange(event_id=str(uuid.uuid4()), alarm_id=alarm_id, type=kind,
                        detail=json.dumps(_jsonable(detail)), user_id=user_id, project_id=project_id,
                        on_behalf_of=on_behalf_of, severity=severity, timestamp=utcnow()))


# ------------------------------------------------------------------ body
def _body(ctx, data: Any, old: dict | None) -> dict:
    """The alarm a POST or PUT body describes, checked (owner, state and times filled by the caller)."""
    if not isinstance(data, dict):
        raise errors.BadRequest("The request body must be a JSON object describing the alarm.")
    known = set(ALARM_FIELDS) - {"rule"} | {f"{t}_rule" for t in rules.CLIENT_TYPES}
    unknown = sorted(set(data) - known)
    if unknown:
        raise errors.BadRequest(f"Unknown attribute for argument data: {', '.join(unknown)}")
    kind = data.get("type")
    if kind is None:
        raise rules.invalid("type", None, "Mandatory field missing.")
    rules.enum("type", kind, rules.TYPES, None)
    set_rules = [t for t in rules.CLIENT_TYPES if data.get(f"{t}_rule")]
    if len(set_rules) > 1:
        raise errors.BadRequest(f"{set_rules[0]}_rule and {set_rules[1]}_rule cannot be set at the same time")
    raw_rule = data.get(f"{kind}_rule")
    if raw_rule is None or (set_rules and set_rules[0] != kind):
        raise errors.BadRequest(f"{kind}_rule must be set for {kind} type alarm")
    if kind == "composite":
        rule = rules.check_composite(raw_rule)
    else:
        rule = rules.check_rule(kind, raw_rule)
    may_log = policies.unlimited(ctx)
    alarm = {
        "type": kind,
        "name": rules.text("name", data.get("name"), mandatory=True),
        "rule": rule,
        "enabled": rules.boolean("enabled", data.get("enabled"), True),
        "repeat_actions": rules.boolean("repeat_actions", data.get("repeat_actions"), False),
        "severity": rules.enum("severity", data.get("severity"), rules.SEVERITIES, "low"),
        "state": rules.enum("state", data.get("state"), rules.STATES, "insufficient data"),
        "time_constraints": rules.check_time_constraints(data.get("time_constraints")),
    }
    if not alarm["name"].strip() or len(alarm["name"]) > 255:
        raise rules.invalid("name", alarm["name"], "Value should be 1 to 255 characters, not blank")
    alarm["description"] = rules.text("description", data.get("description")) or \
        rules.default_description(kind, rule)
    for field in ACTION_FIELDS:
        alarm[field] = rules.check_actions(field, data.get(field), may_log, settings.current.alarm_max_actions)
    for aspect in ("user_id", "project_id"):
        asked = rules.text(aspect, data.get(aspect))
        own = getattr(ctx, aspect)
        if asked is not None and asked != own and not may_log:
            if old is None or asked != old[aspect]:
                raise errors.Unauthorized(f"Not Authorized to access {aspect.removesuffix('_id')} {asked}")
        alarm[aspect] = asked or (old[aspect] if old else own)
    if kind == "gnocchi_aggregation_by_resources_threshold" and not may_log:
        rule["query"] = _scoped_query(rule["query"], alarm["project_id"], old)
    if kind == "composite" and not may_log:
        for leaf in rules.composite_leaves(rule):
            if leaf["type"] == "gnocchi_aggregation_by_resources_threshold":
                leaf["query"] = _scoped_query(leaf["query"], alarm["project_id"], old)
    return alarm


def _scoped_query(text: str, project_id: str, old: dict | None) -> str:
    """A non-admin's resource search, limited to its project's resources, as Aodh does: made
    by the project, or made for the project by the service project or the collector."""
    search = json.loads(text)
    # the collector's resources are made over the bus, by no project (or by the service project)
    makers: list[dict] = [{"=": {"created_by_project_id": None}}]
    service = credentials.service_project_id()
    if service:
        makers.append({"=": {"created_by_project_id": service}})
    perms = {"or": [{"=": {"created_by_project_id": project_id}},
                    {"and": [{"or": makers} if len(makers) > 1 else makers[0],
                             {"=": {"project_id": project_id}}]}]}
    if isinstance(search, dict) and "and" in search and search["and"] and search["and"][0] == perms:
        return text  # already scoped (an update sending back what it read)
    return json.dumps({"and": [perms, search]})


def _trust_id(action: str) -> tuple[str | None, bool]:
    url = urlsplit(action)
    if not url.scheme.startswith("trust+") or "@" not in url.netloc:
        return None, False
    return url.username, url.password == "delete"


def _link_trusts(ctx, alarm: dict, old: dict | None) -> None:
    """``trust+http(s)://`` actions: the caller delegates to ``aodh`` (one trust per alarm,
    kept across updates); the trust id rides in the URL's user part, as in Aodh."""
    previous = {t for f in ACTION_FIELDS for t, owned in map(_trust_id, (old or {}).get(f, [])) if t and owned}
    trust_id = previous.pop() if previous else None
    used = False
    for field in ACTION_FIELDS:
        for i, action in enumerate(alarm[field]):
            url = urlsplit(action)
            if not url.scheme.startswith("trust+"):
                continue
            if "@" in url.netloc:
                raise errors.BadRequest("trust URL cannot contain a trust ID.")
            if trust_id is None:
                trust_id = credentials.create_trust(ctx)
            netloc = f"{trust_id}{'' if used else ':delete'}@{url.netloc}"
            used = True
            alarm[field][i] = SplitResult(url.scheme, netloc, url.path, url.query, url.fragment).geturl()
    if trust_id is not None and not used:
        previous.add(trust_id)
    for stale in previous:
        credentials.delete_trust(stale, ctx.auth_token)


def scrub(action: str) -> str:
    """An action as shown: a trust action without its trust id."""
    url = urlsplit(action)
    if url.scheme.startswith("trust+") and "@" in url.netloc:
        url = SplitResult(url.scheme, url.netloc.rsplit("@", 1)[-1], url.path, url.query, url.fragment)
    return url.geturl()  # as Aodh shows them: "log://" is "log:"


# ------------------------------------------------------------------ quotas
def _over_quota(s, project_id: str, user_id: str) -> bool:
    def count(col, value) -> int:
        return s.scalar(sa.select(sa.func.count()).select_from(m.Alarm).where(col == value)) or 0

    quota = s.get(m.Quota, (project_id, "alarms"))
    limit = quota.limit if quota is not None else settings.current.project_alarm_quota
    if limit != -1 and count(m.Alarm.project_id, project_id) >= limit:
        return True
    user_limit = settings.current.user_alarm_quota
    return user_limit != -1 and count(m.Alarm.user_id, user_id) >= user_limit


def get_quotas(ctx, project_id: str | None) -> dict:
    project_id = project_id or ctx.project_id
    policies.authorize("telemetry:get_quotas", ctx, project_id)
    with db.session() as s:
        rows = s.scalars(sa.select(m.Quota).where(m.Quota.project_id == project_id)).all()
        quotas = [{"resource": r.resource, "limit": r.limit} for r in rows]
    if not quotas:
        quotas = [{"resource": "alarms", "limit": settings.current.project_alarm_quota}]
    return {"project_id": project_id, "quotas": quotas}


def set_quotas(ctx, body: Any) -> dict:
    if not isinstance(body, dict):
        raise errors.BadRequest("The request body must be a JSON object {project_id, quotas}.")
    project_id = rules.text("project_id", body.get("project_id"), mandatory=True)
    policies.authorize("telemetry:update_quotas", ctx, project_id)
    items = body.get("quotas") or []
    if not isinstance(items, list):
        raise rules.invalid("quotas", items, "Wrong type. Expected a list of {resource, limit}")
    checked = []
    for q in items:
        if not isinstance(q, dict):
            raise rules.invalid("quotas", q, "Wrong type. Expected {resource, limit}")
        resource = rules.enum("resource", q.get("resource"), ("alarms",), None)
        if resource is None:
            raise rules.invalid("resource", None, "Mandatory field missing.")
        limit = rules.integer("limit", q.get("limit"), None, -1)
        if limit is None:
            raise rules.invalid("limit", None, "Mandatory field missing.")
        checked.append((resource, limit))
    with db.transaction() as s:
        for resource, limit in checked:
            row = s.get(m.Quota, (project_id, resource))
            if row is None:
                s.add(m.Quota(project_id=project_id, resource=resource, limit=limit))
            else:
                row.limit = limit
        s.flush()
        rows = s.scalars(sa.select(m.Quota).where(m.Quota.project_id == project_id)).all()
        quotas = [{"resource": r.resource, "limit": r.limit} for r in rows]
    return {"project_id": project_id, "quotas": quotas}


def delete_quotas(ctx, project_id: str | None) -> None:
    if not project_id:
        raise rules.invalid("project_id", None, "Mandatory field missing.")
    policies.authorize("telemetry:delete_quotas", ctx, project_id)
    with db.transaction() as s:
        s.execute(sa.delete(m.Quota).where(m.Quota.project_id == project_id))


# ------------------------------------------------------------------ alarms
def _visible(ctx, s, alarm_id: str) -> m.Alarm:
    row = s.get(m.Alarm, alarm_id)
    if row is None or (row.project_id != ctx.project_id and not policies.unlimited(ctx)):
        raise AlarmNotFound(alarm_id)
    return row


def get(ctx, alarm_id: str, rule: str = "telemetry:get_alarm") -> dict:
    with db.session() as s:
        row = _visible(ctx, s, alarm_id)
        policies.authorize(rule, ctx, row.project_id)
        return as_dict(row)


def create(ctx, data: Any) -> dict:
    policies.authorize("telemetry:create_alarm", ctx)
    alarm = _body(ctx, data, None)
    now = utcnow()
    alarm.update(alarm_id=str(uuid.uuid4()), timestamp=now, state_timestamp=now,
                 state_reason=rules.REASON_DEFAULT, evaluate_timestamp=None)
    detail = dict(alarm)  # the history shows the actions as given, before trusts
    _link_trusts(ctx, alarm, None)
    with db.transaction() as s:
        if _over_quota(s, alarm["project_id"], alarm["user_id"]):
            raise errors.Forbidden(f"Alarm quota exceeded for user {alarm['user_id']} on project "
                                   f"{alarm['project_id']}")
        row = m.Alarm(id=alarm["alarm_id"])
        _store(row, alarm)
        s.add(row)
        record(s, row.id, CREATION, detail, ctx.user_id, ctx.project_id, ctx.project_id, alarm["severity"])
    return alarm


def update(ctx, alarm_id: str, data: Any) -> dict:
    old = get(ctx, alarm_id, "telemetry:change_alarm")
    alarm = _body(ctx, data, old)
    now = utcnow()
    alarm.update(alarm_id=alarm_id, timestamp=now, evaluate_timestamp=old["evaluate_timestamp"])
    if alarm["state"] != old["state"]:
        alarm.update(state_timestamp=now, state_reason=rules.REASON_MANUAL)
    else:
        alarm.update(state_timestamp=old["state_timestamp"], state_reason=old["state_reason"])
    _link_trusts(ctx, alarm, old)
    change = {k: v for k, v in alarm.items() if v != old.get(k) and k not in ("timestamp", "state_timestamp")}
    for field in set(change) & set(ACTION_FIELDS):  # no trust id in the history
        change[field] = [scrub(a) for a in change[field]]
    with db.transaction() as s:
        row = s.get(m.Alarm, alarm_id)
        if row is None:
            raise AlarmNotFound(alarm_id)
        _store(row, alarm)
        if change:
            record(s, alarm_id, RULE_CHANGE, change, ctx.user_id, ctx.project_id, alarm["project_id"],
                   change.get("severity"))
    return alarm


def delete(ctx, alarm_id: str) -> None:
    alarm = get(ctx, alarm_id, "telemetry:delete_alarm")
    with db.transaction() as s:
        row = s.get(m.Alarm, alarm_id)
        if row is None:
            raise AlarmNotFound(alarm_id)
        s.delete(row)
        record(s, alarm_id, DELETION, {"state": alarm["state"]}, ctx.user_id, ctx.project_id, ctx.project_id,
               alarm["severity"])
    for field in ACTION_FIELDS:
        for action in alarm[field]:
            trust_id, owned = _trust_id(action)
            if trust_id and owned:
                credentials.delete_trust(trust_id, ctx.auth_token)


def get_state(ctx, alarm_id: str) -> str:
    return get(ctx, alarm_id, "telemetry:get_alarm_state")["state"]


def set_state(ctx, alarm_id: str, state: Any) -> str:
    alarm = get(ctx, alarm_id, "telemetry:change_alarm_state")
    if state not in rules.STATES:
        raise errors.BadRequest("state invalid")
    now = utcnow()
    with db.transaction() as s:
        row = s.get(m.Alarm, alarm_id)
        if row is None:
            raise AlarmNotFound(alarm_id)
        row.state, row.state_timestamp, row.state_reason = state, now, rules.REASON_MANUAL
        record(s, alarm_id, STATE_TRANSITION, {"state": state, "state_reason": rules.REASON_MANUAL},
               ctx.user_id, ctx.project_id, alarm["project_id"], alarm["severity"])
    return state


def _sorted_page(rows: list[dict], sort: list[str], limit: Any, marker: str | None, key: str,
                 default: list[tuple[str, bool]], fields: tuple[str, ...]) -> list[dict]:
    orderby = []
    for item in sort:
        field, _, direction = item.partition(":")
        direction = direction or "asc"
        if field not in fields or direction not in ("asc", "desc"):
            raise errors.BadRequest(f"Invalid sort key or direction: {item} (a field and asc or desc)")
        orderby.append((field, direction == "desc"))
    rows = query.sort_rows(rows, orderby or default)
    if marker:
        ids = [r[key] for r in rows]
        if marker not in ids:
            raise errors.BadRequest(f"Invalid marker: {marker} is not in the listing")
        rows = rows[ids.index(marker) + 1:]
    if limit is not None:
        try:
            limit = int(limit)
        except ValueError:
            raise errors.BadRequest(f"Invalid input for field/attribute limit. Value: '{limit}'. "
                                    "Wrong type. Expected 'int'") from None
        if limit <= 0:
            raise errors.BadRequest("Limit must be positive")
        rows = rows[:limit]
    return rows


def _all_alarms(project_id: str | None) -> list[dict]:
    with db.session() as s:
        q = sa.select(m.Alarm)
        if project_id is not None:
            q = q.where(m.Alarm.project_id == project_id)
        return [as_dict(r) for r in s.scalars(q)]


def list_alarms(ctx, filters: list[tuple[str, str, str, str | None]], sort: list[str], limit: Any,
                marker: str | None) -> list[dict]:
    """GET /v2/alarms: ``filters`` are (field, op, value, type) of q.field/q.op/q.value/q.type."""
    policies.authorize("telemetry:get_alarms", ctx)
    keys = {f[0] for f in filters}
    if not keys <= LIST_FIELDS:
        raise errors.BadRequest(f"Invalid input for field/attribute field. Value: '{sorted(keys)}'. "
                                f"only fields {sorted(LIST_FIELDS)} are allowed")
    ops = {f[1] for f in filters}
    if not ops <= {"eq"}:
        raise errors.BadRequest(f"Invalid input for field/attribute op. Value: '{sorted(ops)}'. "
                                "only operations ['eq'] are allowed")
    values = {f[0]: rules.convert_value(f[2], f[3]) for f in filters}
    project = ctx.project_id
    if "all_projects" in values and str(values.pop("all_projects")).lower() in ("true", "1"):
        policies.authorize("telemetry:get_alarms:all_projects", ctx)
        asked = values.pop("project_id", None)
        project = None if asked is None else str(asked)
    elif "project_id" in values:
        project = str(values.pop("project_id"))
        if project != ctx.project_id and not policies.unlimited(ctx):
            raise errors.Unauthorized(f"Not Authorized to access project {project}")
    values.pop("all_projects", None)
    if "timestamp" in values:
        try:
            values["timestamp"] = parse_iso(str(values["timestamp"]))
        except ValueError:
            raise errors.BadRequest(f"Failed to parse the timestamp value {values['timestamp']}") from None
    rows = [a for a in _all_alarms(project)
            if all(query.matches({"=": (k, v)}, a) for k, v in values.items())]
    return _sorted_page(rows, sort, limit, marker, "alarm_id", [("timestamp", True)], ALARM_FIELDS)


def query_alarms(ctx, body: Any) -> list[dict]:
    policies.authorize("telemetry:query_alarm", ctx)
    expr, orderby, limit = _complex(body, set(ALARM_FIELDS))
    project = None
    if not policies.unlimited(ctx):
        expr = query.restrict(expr, "project_id", ctx.project_id)
        project = ctx.project_id
    rows = [a for a in _all_alarms(project) if query.matches(expr, a)]
    rows = query.sort_rows(rows, orderby or [("timestamp", True)])
    return rows[:limit] if limit else rows


def _complex(body: Any, fields: set[str]):
    if body is None or body == b"":
        body = {}
    if not isinstance(body, dict):
        raise errors.BadRequest("The request body must be a JSON object {filter, orderby, limit}.")
    unknown = sorted(set(body) - {"filter", "orderby", "limit"})
    if unknown:
        raise errors.BadRequest(f"Unknown attribute for argument body: {', '.join(unknown)}")
    return query.parse(body.get("filter"), body.get("orderby"), body.get("limit"), fields)


def history(ctx, alarm_id: str, sort: list[str], limit: Any, marker: str | None) -> list[dict]:
    get(ctx, alarm_id, "telemetry:alarm_history")
    with db.session() as s:
        q = sa.select(m.AlarmChange).where(m.AlarmChange.alarm_id == alarm_id)
        if not policies.unlimited(ctx):
            q = q.where(m.AlarmChange.on_behalf_of == ctx.project_id)
        rows = [change_dict(r) for r in s.scalars(q.order_by(m.AlarmChange.seq))]
    return _sorted_page(rows, sort, limit, marker, "event_id", [("timestamp", True)], CHANGE_FIELDS)


def query_history(ctx, body: Any) -> list[dict]:
    policies.authorize("telemetry:query_alarm_history", ctx)
    expr, orderby, limit = _complex(body, set(CHANGE_FIELDS))
    with db.session() as s:
        q = sa.select(m.AlarmChange)
        if not policies.unlimited(ctx):
            expr = query.restrict(expr, "on_behalf_of", ctx.project_id)
            q = q.where(m.AlarmChange.on_behalf_of == ctx.project_id)
        rows = [change_dict(r) for r in s.scalars(q.order_by(m.AlarmChange.seq))]
    rows = [r for r in rows if query.matches(expr, r)]
    rows = query.sort_rows(rows, orderby or [("timestamp", True)])
    return rows[:limit] if limit else rows


# ------------------------------------------------------------------ the evaluator's side
def evaluable(event: bool = False, project_id: str | None = None) -> list[dict]:
    """The enabled alarms of the threshold and composite types (or the event ones of a project)."""
    with db.session() as s:
        q = sa.select(m.Alarm).where(m.Alarm.enabled.is_(True))
        if event:
            q = q.where(m.Alarm.type == "event", m.Alarm.project_id == project_id)
        else:
            q = q.where(m.Alarm.type != "event")
        return [as_dict(r) for r in s.scalars(q)]


def mark_evaluated(alarm_ids: list[str]) -> None:
    """One write for a whole evaluation cycle."""
    if not alarm_ids:
        return
    with db.transaction() as s:
        s.execute(sa.update(m.Alarm).where(m.Alarm.id.in_(alarm_ids)).values(evaluate_timestamp=utcnow()))


def transition(alarm: dict, state: str, reason: str, service_user: str | None,
               service_project: str | None) -> bool:
    """The evaluator moves an alarm to ``state`` (history recorded); False when the alarm
    is gone meanwhile."""
    now = utcnow()
    with db.transaction() as s:
        row = s.get(m.Alarm, alarm["alarm_id"])
        if row is None:
            return False
        row.state, row.state_reason, row.state_timestamp = state, reason, now
        record(s, row.id, STATE_TRANSITION, {"state": state, "transition_reason": reason}, service_user,
               service_project, row.project_id, row.severity)
    alarm.update(state=state, state_reason=reason, state_timestamp=now)
    return True


def record_action(alarm: dict, action: str, outcome: str) -> None:
    """An action's outcome in the alarm's history (Aodh logs it; here the owner can read it)."""
    with db.transaction() as s:
        if s.get(m.Alarm, alarm["alarm_id"]) is None:
            return
        record(s, alarm["alarm_id"], "action", {"action": scrub(action), "state": alarm["state"],
                                                "outcome": outcome},
               None, None, alarm["project_id"], alarm["severity"])
