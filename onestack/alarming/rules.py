"""What an alarm may say: Aodh's validation of alarm bodies, rules and actions.

Each check returns the normalized value (numbers from the CLI's strings, defaults
filled) or raises BadRequest with Aodh's wording (its WSME "Invalid input for
field/attribute ..." messages), so the API layer stores exactly what it checked.
"""

from __future__ import annotations

import ast
import json
import re
import zoneinfo
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from croniter import croniter

from onestack.common import errors

STATES = ("ok", "alarm", "insufficient data")
SEVERITIES = ("low", "moderate", "critical")
OPERATORS = ("lt", "le", "eq", "ne", "ge", "gt")
THRESHOLD_TYPES = ("gnocchi_resources_threshold", "gnocchi_aggregation_by_metrics_threshold",
                   "gnocchi_aggregation_by_resources_threshold")
# loadbalancer_member_health alarms are kept but not evaluated (there is no load balancer service)
TYPES = (*THRESHOLD_TYPES, "event", "composite", "loadbalancer_member_health")
# the types aodhclient knows; a rule of one of these is an attribute of the body, even when
# this cloud does not evaluate that type
CLIENT_TYPES = (*TYPES, "threshold", "prometheus")
# Gnocchi's aggregation methods (its capabilities), each also as rate:<method>
BASIC_METHODS = ("mean", "sum", "last", "max", "min", "std", "median", "first", "count")
ACTION_SCHEMES = ("http", "https", "trust+http", "trust+https", "log", "test")
QUERY_TYPES = ("", "string", "integer", "float", "boolean", "datetime")
REASON_DEFAULT = "Not evaluated yet"
REASON_MANUAL = "Manually set via API"

_PCT = re.compile(r"^([1-9][0-9]?)pct$")
_TRAIT_FIELD = re.compile(r"^[a-zA-Z.',0-9_-]*$")


def invalid(field: str, value: Any, reason: str) -> errors.BadRequest:
    return errors.BadRequest(f"Invalid input for field/attribute {field}. Value: '{value}'. {reason}")


def aggregation_methods() -> list[str]:
    basic = [*BASIC_METHODS, *(f"{n}pct" for n in range(1, 100))]
    return [*basic, *(f"rate:{m}" for m in basic)]


def is_aggregation_method(name: str) -> bool:
    base = name.removeprefix("rate:")
    return base in BASIC_METHODS or bool(_PCT.match(base))


def text(field: str, value: Any, mandatory: bool = False, default: str | None = None) -> str | None:
    if value is None:
        if mandatory:
            raise invalid(field, value, "Mandatory field missing.")
        return default
    if not isinstance(value, str):
        raise invalid(field, value, "Wrong type. Expected 'str', got " f"'{type(value).__name__}'")
    return value


def boolean(field: str, value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        return value.lower() in ("true", "1", "yes", "on")
    raise invalid(field, value, "Wrong type. Expected 'bool'")


def integer(field: str, value: Any, default: int | None, minimum: int | None = None,
            maximum: int | None = None) -> int | None:
    if value is None:
        return default
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        number = int(value)
    except (TypeError, ValueError):
        raise invalid(field, value, "Wrong type. Expected 'int'") from None
    if minimum is not None and number < minimum:
        raise invalid(field, value, f"Value should be greater or equal to {minimum}")
    if maximum is not None and number > maximum:
        raise invalid(field, value, f"Value should be lower or equal to {maximum}")
    return number


def number(field: str, value: Any, mandatory: bool = False) -> float | None:
    if value is None:
        if mandatory:
            raise invalid(field, value, "Mandatory field missing.")
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        result = float(value)
    except (TypeError, ValueError):
        raise invalid(field, value, "Wrong type. Expected 'float'") from None
    if result != result or result in (float("inf"), float("-inf")):
        raise invalid(field, value, "Value should be a finite number")
    return result


def enum(field: str, value: Any, choices: tuple[str, ...], default: str | None) -> str | None:
    if value is None:
        return default
    if value not in choices:
        raise invalid(field, value, f"Value should be one of: {', '.join(choices)}")
    return value


def _known(where: str, data: dict, allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise errors.BadRequest(f"Unknown attribute for argument {where}: {', '.join(unknown)}")


# ------------------------------------------------------------------ rules
_COMMON = {"comparison_operator", "threshold", "aggregation_method", "evaluation_periods", "granularity"}
_RULE_KEYS = {
    "gnocchi_resources_threshold": _COMMON | {"metric", "resource_id", "resource_type"},
    "gnocchi_aggregation_by_metrics_threshold": _COMMON | {"metrics"},
    "gnocchi_aggregation_by_resources_threshold": _COMMON | {"metric", "query", "resource_type"},
    "event": {"event_type", "query"},
    "loadbalancer_member_health": {"pool_id", "stack_id", "autoscaling_group_id"},
}


def _threshold_common(rule: dict) -> dict:
    method = text("aggregation_method", rule.get("aggregation_method"), mandatory=True)
    if not is_aggregation_method(method):
        raise errors.BadRequest(f"aggregation_method should be in {aggregation_methods()} not {method}")
    return {
        "comparison_operator": enum("comparison_operator", rule.get("comparison_operator"), OPERATORS, "eq"),
        "threshold": number("threshold", rule.get("threshold"), mandatory=True),
        "aggregation_method": method,
        "evaluation_periods": integer("evaluation_periods", rule.get("evaluation_periods"), 1, 1, 100),
        "granularity": integer("granularity", rule.get("granularity"), 60, 1, 3600 * 24 * 365),
    }


def check_rule(kind: str, rule: Any) -> dict:
    """The normalized rule of an alarm of type ``kind`` (not composite)."""
    where = f"{kind}_rule"
    if not isinstance(rule, dict):
        raise invalid(where, rule, "Wrong type. Expected a JSON object")
    _known(where, rule, _RULE_KEYS[kind])
    if kind == "event":
        return {"event_type": text("event_type", rule.get("event_type")) or "*",
                "query": check_event_query(rule.get("query"))}
    if kind == "loadbalancer_member_health":
        return {k: text(k, rule.get(k), mandatory=True) for k in ("pool_id", "stack_id", "autoscaling_group_id")}
    out = _threshold_common(rule)
    if kind == "gnocchi_resources_threshold":
        for key in ("metric", "resource_id", "resource_type"):
            out[key] = text(key, rule.get(key), mandatory=True)
    elif kind == "gnocchi_aggregation_by_metrics_threshold":
        metrics = rule.get("metrics")
        if metrics is None:
            raise invalid("metrics", metrics, "Mandatory field missing.")
        if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
            raise invalid("metrics", metrics, "Value should be a non-empty list of metric ids")
        out["metrics"] = metrics
    else:
        out["metric"] = text("metric", rule.get("metric"), mandatory=True)
        out["resource_type"] = text("resource_type", rule.get("resource_type"), mandatory=True)
        query = text("query", rule.get("query"), mandatory=True)
        try:
            parsed = json.loads(query)
        except ValueError:
            raise invalid("rule/query", query, "Value should be a JSON resource search") from None
        if not isinstance(parsed, dict):
            raise invalid("rule/query", query, "Value should be a JSON resource search")
        out["query"] = query
    return out


def check_event_query(query: Any) -> list[dict]:
    if query is None:
        return []
    if not isinstance(query, list):
        raise invalid("query", query, "Wrong type. Expected a list of {field, op, value, type}")
    out = []
    for q in query:
        if not isinstance(q, dict):
            raise invalid("query", q, "Wrong type. Expected {field, op, value, type}")
        _known("query", q, {"field", "op", "value", "type"})
        field = text("field", q.get("field"), mandatory=True)
        op = enum("op", q.get("op"), OPERATORS, "eq")
        value = q.get("value")
        if value is None:
            raise invalid("value", value, "Mandatory field missing.")
        if not isinstance(value, str | int | float):
            raise invalid("value", value, "Wrong type. Expected 'str'")
        value = str(value).lower() if isinstance(value, bool) else str(value)
        kind = q.get("type") or ""
        if not _TRAIT_FIELD.match(field) or kind not in QUERY_TYPES:
            raise errors.BadRequest(f"Query value or traits invalid: field {field!r}, type {kind!r}")
        convert_value(value, kind)
        out.append({"field": field, "op": op, "value": value, "type": kind})
    return out


def convert_value(value: str, kind: str | None) -> Any:
    """A query value as its type says (Aodh's Query.get_value); untyped: a Python literal or text."""
    try:
        if not kind:
            try:
                return ast.literal_eval(value)
            except (ValueError, SyntaxError):
                return value
        if kind == "integer":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "boolean":
            if value.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise ValueError
            return value.lower() in ("true", "1", "yes", "on")
        if kind == "datetime":
            return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)
        if kind == "string":
            return value
    except (ValueError, TypeError):
        raise errors.BadRequest(f"Unable to convert the value {value} to the expected data type {kind}.") \
            from None
    raise errors.BadRequest(f"The data type {kind} is not supported. The supported data type list is: "
                            f"{['integer', 'float', 'string', 'boolean', 'datetime']}")


def check_composite(rule: Any) -> dict:
    """A composite rule: {"and"|"or": [sub-rule, ...]}, each leaf a threshold rule with its type."""
    if isinstance(rule, dict) and len(rule) == 1 and next(iter(rule)) in ("and", "or"):
        key = next(iter(rule))
        if not isinstance(rule[key], list) or not rule[key]:
            raise _bad_composite(rule)
        return {key: [check_composite(sub) for sub in rule[key]]}
    if isinstance(rule, dict) and len(rule) == 1 and next(iter(rule)) not in _RULE_KEYS["gnocchi_resources_threshold"] \
            | {"type", "metrics", "query"}:
        raise errors.BadRequest('Threshold rules should be combined with "and" or "or"')
    if isinstance(rule, dict):
        kind = rule.get("type")
        if not kind:
            raise errors.BadRequest("type must be set in every rule")
        if kind not in THRESHOLD_TYPES:
            raise errors.BadRequest(f"Unsupported sub-rule type :{kind} in composite rule, should be one of: "
                                    f"{sorted(THRESHOLD_TYPES)}")
        body = {k: v for k, v in rule.items() if k != "type"}
        return {**check_rule(kind, body), "type": kind}
    raise _bad_composite(rule)


def _bad_composite(rule: Any) -> errors.BadRequest:
    return errors.BadRequest(f'Invalid input composite rule: {rule}, it should be a dict with an "and" or "or" '
                             'as key, and the value of dict should be a list of basic threshold rules or sub '
                             'composite rules, can be nested.')


def composite_leaves(rule: dict) -> list[dict]:
    if "and" in rule or "or" in rule:
        return [leaf for sub in (rule.get("and") or rule.get("or")) for leaf in composite_leaves(sub)]
    return [rule]


def default_description(kind: str, rule: dict) -> str:
    if kind == "event":
        return f"Alarm when {rule.get('event_type', '*')} event occurred."
    return f"{kind} alarm rule"


# ------------------------------------------------------------------ time constraints
def check_time_constraints(value: Any) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid("time_constraints", value, "Wrong type. Expected a list")
    out = []
    for tc in value:
        if not isinstance(tc, dict):
            raise invalid("time_constraints", tc, "Wrong type. Expected {name, start, duration}")
        _known("time_constraints", tc, {"name", "description", "start", "duration", "timezone"})
        name = text("name", tc.get("name"), mandatory=True)
        start = text("start", tc.get("start"), mandatory=True)
        if not croniter.is_valid(start):
            raise invalid("start", start, "Value should be a cron expression (minute hour day month weekday)")
        duration = integer("duration", tc.get("duration"), None, 0)
        if duration is None:
            raise invalid("duration", None, "Mandatory field missing.")
        timezone = text("timezone", tc.get("timezone")) or ""
        if timezone:
            try:
                zoneinfo.ZoneInfo(timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise errors.BadRequest(f"Timezone {timezone} is not valid") from None
        description = text("description", tc.get("description")) or \
            f"Time constraint at {start} lasting for {duration} seconds"
        out.append({"name": name, "description": description, "start": start, "duration": duration,
                    "timezone": timezone})
    names = [tc["name"] for tc in out]
    if len(names) != len(set(names)):
        raise errors.BadRequest("Time constraint names must be unique for a given alarm.")
    return out


# ------------------------------------------------------------------ actions
def check_actions(field: str, value: Any, may_log: bool, max_actions: int) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise invalid(field, value, "Wrong type. Expected a list of URLs")
    actions = list(dict.fromkeys(value))  # duplicates dropped, as Aodh does
    if 0 < max_actions < len(actions):
        raise errors.BadRequest(f"{field} count exceeds maximum value {max_actions}")
    for action in actions:
        try:
            url = urlsplit(action)
        except ValueError:
            raise errors.BadRequest(f"Unable to parse action {action}") from None
        if url.scheme not in ACTION_SCHEMES:
            raise errors.BadRequest(f"Unsupported action {action}")
        if url.scheme in ("log", "test") and not may_log:
            raise errors.Unauthorized(f"You are not authorized to create action: {action}")
        if url.scheme not in ("log", "test") and not url.hostname:
            raise errors.BadRequest(f"Unable to parse action {action}")
    return actions
