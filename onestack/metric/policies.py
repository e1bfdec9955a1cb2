"""Archive policies and archive policy rules (Gnocchi's), and their defaults."""

from __future__ import annotations

import fnmatch

import sqlalchemy as sa

from onestack.common import db, errors
from onestack.metric import carbonara
from onestack.metric.models import ArchivePolicy, ArchivePolicyRule, Metric
from onestack.metric.timeutil import span_text, to_timespan

DEFAULT_METHODS = ["mean", "min", "max", "sum", "std", "count"]
ALL_METHODS = list(carbonara.METHODS) + [f"rate:{m}" for m in carbonara.METHODS]
DAY = 86400.0
# Gnocchi's defaults (gnocchi/archive_policy.py): name -> (back_window, [(granularity, timespan)], methods)
DEFAULTS = {
    "bool": (3600, [(1.0, 365 * DAY)], ["last"]),
    "low": (0, [(300.0, 30 * DAY)], DEFAULT_METHODS),
    "medium": (0, [(60.0, 7 * DAY), (3600.0, 365 * DAY)], DEFAULT_METHODS),
    "high": (0, [(1.0, 3600.0), (60.0, 7 * DAY), (3600.0, 365 * DAY)], DEFAULT_METHODS),
}
DEFAULT_RULE = "default"


def ensure_defaults(default_policy: str) -> None:
    """The four default policies and the default rule (``*`` -> ``[metric] default_archive_policy``)."""
    with db.transaction() as s:
        for name, (back, items, methods) in DEFAULTS.items():
            if s.get(ArchivePolicy, name) is None:
                s.add(ArchivePolicy(name=name, back_window=back, aggregation_methods=list(methods),
                                    definition=[{"granularity": g, "points": int(span / g)} for g, span in items]))
        s.flush()
        if s.get(ArchivePolicy, default_policy) is not None and s.get(ArchivePolicyRule, DEFAULT_RULE) is None:
            s.add(ArchivePolicyRule(name=DEFAULT_RULE, metric_pattern="*", archive_policy_name=default_policy))


def view(p: ArchivePolicy) -> dict:
    return {"name": p.name, "back_window": p.back_window,
            "definition": [{"granularity": span_text(d["granularity"]), "points": d.get("points"),
                            "timespan": span_text(d["granularity"] * d["points"]) if d.get("points") else None}
                           for d in p.definition],
            "aggregation_methods": sorted(p.aggregation_methods)}


def rule_view(r: ArchivePolicyRule) -> dict:
    return {"name": r.name, "metric_pattern": r.metric_pattern, "archive_policy_name": r.archive_policy_name}


def _require_admin(ctx) -> None:
    if ctx is not None and not ctx.is_admin:
        raise errors.Forbidden("Access was denied to this resource: archive policies are managed by admins.")


def _definition(items) -> list[dict]:
    if not isinstance(items, list):
        raise errors.BadRequest("Invalid input: expected a list for dictionary value @ data['definition']")
    if not items:
        raise errors.BadRequest("Invalid input: length of value must be at least 1 for dictionary value "
                                "@ data['definition']")
    out = []
    for i, d in enumerate(items):
        if not isinstance(d, dict):
            raise errors.BadRequest(f"Invalid input: definition[{i}] must be an object")
        extra = set(d) - {"granularity", "points", "timespan"}
        if extra:
            raise errors.BadRequest(f"Invalid input: extra keys not allowed @ data['definition'][{i}]"
                                    f"['{sorted(extra)[0]}']")
        g = to_timespan(d["granularity"], "granularity") if d.get("granularity") is not None else None
        span = to_timespan(d["timespan"]) if d.get("timespan") is not None else None
        points = d.get("points")
        if isinstance(points, str) and points.strip().isdigit():  # the CLI sends "60"
            points = int(points)
        if points is not None and (isinstance(points, bool) or not isinstance(points, int) or points <= 0):
            raise errors.BadRequest(f"Invalid input: definition[{i}].points must be a positive integer")
        if g is None:
            if points is None or span is None:
                raise errors.BadRequest("Invalid input: at least two of granularity/points/timespan "
                                        "must be provided")
            g = span / points
        if points is None and span is not None:
            points = int(span / g)
            if points <= 0:
                raise errors.BadRequest(f"Invalid input: definition[{i}]: timespan is shorter than "
                                        "the granularity")
        elif points is not None and span is not None and abs(points * g - span) > 1e-6:
            raise errors.BadRequest("Invalid input: timespan ≠ granularity × points")
        out.append({"granularity": g, "points": points})
    grans = [d["granularity"] for d in out]
    if len(set(grans)) != len(grans):
        raise errors.BadRequest("Invalid input: more than one archive policy definition uses the same "
                                "granularity")
    return out


def _methods(value, current: list[str] | None = None) -> list[str]:
    """Gnocchi's syntax: names, ``*`` for all, ``+name``/``-name`` to change the defaults."""
    if value is None:
        return list(current or DEFAULT_METHODS)
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise errors.BadRequest("Invalid input: aggregation_methods must be a list of strings")
    base = set(current or DEFAULT_METHODS) if all(m[:1] in "+-" for m in value) and value else set()
    for m in value:
        if m == "*":
            base |= set(ALL_METHODS)
        elif m.startswith("-"):
            base.discard(m[1:])
        else:
            name = m[1:] if m.startswith("+") else m
            if not carbonara.valid_method(name):
                raise errors.BadRequest(f"Invalid input: aggregation method '{name}' is not supported "
                                        f"(supported: {', '.join(ALL_METHODS)})")
            base.add(name)
    return sorted(base)


def create(ctx, body: dict) -> dict:
    _require_admin(ctx)
    extra = set(body) - {"name", "back_window", "definition", "aggregation_methods"}
    if extra:
        raise errors.BadRequest(f"Invalid input: extra keys not allowed @ data['{sorted(extra)[0]}']")
    for key in ("name", "definition"):
        if key not in body:
            raise errors.BadRequest(f"Invalid input: required key not provided @ data['{key}']")
    name = body["name"]
    if not isinstance(name, str) or not name or len(name) > 255 or "/" in name:
        raise errors.BadRequest("Invalid input: name must be a non-empty string without '/'")
    back = body.get("back_window", 0)
    if isinstance(back, bool) or not isinstance(back, int) or back < 0:
        raise errors.BadRequest("Invalid input: back_window must be a non-negative integer")
    policy = ArchivePolicy(name=name, back_window=back, definition=_definition(body["definition"]),
                           aggregation_methods=_methods(body.get("aggregation_methods")))
    with db.transaction(conflict=f"Archive policy {name} already exists") as s:
        if s.get(ArchivePolicy, name) is not None:
            raise errors.Conflict(f"Archive policy {name} already exists")
        s.add(policy)
    return view(policy)


def get(name: str) -> ArchivePolicy:
    with db.session() as s:
        p = s.get(ArchivePolicy, name)
    if p is None:
        raise errors.NotFound(f"Archive policy {name} does not exist")
    return p


def all_policies() -> dict[str, ArchivePolicy]:
    with db.session() as s:
        return {p.name: p for p in s.scalars(sa.select(ArchivePolicy))}


def list_() -> list[dict]:
    return [view(p) for p in sorted(all_policies().values(), key=lambda p: p.name)]


def update(ctx, name: str, body: dict) -> dict:
    """Only the definition's points/timespan may change (granularities stay), as in Gnocchi."""
    _require_admin(ctx)
    extra = set(body) - {"definition"}
    if extra:
        raise errors.BadRequest(f"Invalid input: extra keys not allowed @ data['{sorted(extra)[0]}']")
    new = _definition(body.get("definition"))
    with db.transaction() as s:
        p = s.get(ArchivePolicy, name)
        if p is None:
            raise errors.NotFound(f"Archive policy {name} does not exist")
        if sorted(d["granularity"] for d in new) != sorted(d["granularity"] for d in p.definition):
            raise errors.BadRequest("Archive policy update cannot change the granularities: only their "
                                    "timespan or points")
        p.definition = new
    return view(p)


def delete(ctx, name: str) -> None:
    _require_admin(ctx)
    with db.transaction() as s:
        p = s.get(ArchivePolicy, name)
        if p is None:
            raise errors.NotFound(f"Archive policy {name} does not exist")
        used = s.scalar(sa.select(sa.func.count()).select_from(Metric).where(Metric.archive_policy_name == name))
        rules = s.scalar(sa.select(sa.func.count()).select_from(ArchivePolicyRule)
                         .where(ArchivePolicyRule.archive_policy_name == name))
        if used or rules:
            raise errors.BadRequest(f"Archive policy {name} is still in use")
        s.delete(p)


# -- rules


def create_rule(ctx, body: dict) -> dict:
    _require_admin(ctx)
    extra = set(body) - {"name", "metric_pattern", "archive_policy_name"}
    if extra:
        raise errors.BadRequest(f"Invalid input: extra keys not allowed @ data['{sorted(extra)[0]}']")
    for key in ("name", "metric_pattern", "archive_policy_name"):
        if not isinstance(body.get(key), str) or not body[key]:
            raise errors.BadRequest(f"Invalid input: required key not provided @ data['{key}']")
    get(body["archive_policy_name"]).name  # noqa: B018  (404 when unknown)
    rule = ArchivePolicyRule(name=body["name"], metric_pattern=body["metric_pattern"],
                             archive_policy_name=body["archive_policy_name"])
    with db.transaction(conflict=f"Archive policy rule {body['name']} already exists") as s:
        if s.get(ArchivePolicyRule, rule.name) is not None:
            raise errors.Conflict(f"Archive policy rule {rule.name} already exists")
        s.add(rule)
    return rule_view(rule)


def get_rule(name: str) -> dict:
    with db.session() as s:
        r = s.get(ArchivePolicyRule, name)
    if r is None:
        raise errors.NotFound(f"Archive policy rule {name} does not exist")
    return rule_view(r)


def list_rules() -> list[dict]:
    with db.session() as s:
        rules = list(s.scalars(sa.select(ArchivePolicyRule)))
    # Gnocchi lists the most specific pattern first
    return [rule_view(r) for r in sorted(rules, key=lambda r: (-len(r.metric_pattern), r.name))]


def rename_rule(ctx, name: str, body: dict) -> dict:
    _require_admin(ctx)
    new = body.get("name")
    if set(body) - {"name"} or not isinstance(new, str) or not new:
        raise errors.BadRequest("Invalid input: only a new 'name' may be given")
    with db.transaction(conflict=f"Archive policy rule {new} already exists") as s:
        r = s.get(ArchivePolicyRule, name)
        if r is None:
            raise errors.NotFound(f"Archive policy rule {name} does not exist")
        if new != name and s.get(ArchivePolicyRule, new) is not None:
            raise errors.Conflict(f"Archive policy rule {new} already exists")
        made = ArchivePolicyRule(name=new, metric_pattern=r.metric_pattern,
                                 archive_policy_name=r.archive_policy_name)
        s.delete(r)
        s.flush()
        s.add(made)
    return rule_view(made)


def delete_rule(ctx, name: str) -> None:
    _require_admin(ctx)
    with db.transaction() as s:
        r = s.get(ArchivePolicyRule, name)
        if r is None:
            raise errors.NotFound(f"Archive policy rule {name} does not exist")
        s.delete(r)


def policy_for(metric_name: str | None) -> str:
    """The archive policy of the rule whose pattern matches the name most specifically
    (the longest pattern); 400 when none does."""
    with db.session() as s:
        rules = list(s.scalars(sa.select(ArchivePolicyRule)))
    for r in sorted(rules, key=lambda r: (-len(r.metric_pattern), r.name)):
        if fnmatch.fnmatchcase(metric_name or "", r.metric_pattern):
            return r.archive_policy_name
    raise errors.BadRequest(f"No archive policy name specified and no archive policy rule found matching "
                            f"the metric name {metric_name}")
