"""Aodh's complex query (``POST /v2/query/alarms`` and ``.../history``): a JSON filter of
``=``, ``!=``, ``<``, ``>``, ``<=``, ``>=``, ``=~`` (regex), ``in``, ``and``, ``or`` and
``not``; an orderby list of ``{field: asc|desc}``; a limit. Checked as Aodh's JSON schema
does, then evaluated on the visible rows (a project's alarms are few)."""

from __future__ import annotations

import json
import operator
import re
from datetime import datetime
from typing import Any

from onestack.common import errors

SIMPLE = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt, "<=": operator.le,
          "=<": operator.le, ">=": operator.ge, "=>": operator.ge}
NAME_MAPPING = {"user": "user_id", "project": "project_id"}
TIMESTAMP_FIELDS = ("timestamp", "state_timestamp")

Filter = Any  # a parsed, checked expression


class Invalid(ValueError):
    pass


def _one(node: Any, what: str) -> tuple[str, Any]:
    if not isinstance(node, dict) or len(node) != 1:
        raise Invalid(f"{json.dumps(node)} is not valid under any of the given schemas ({what} must be an object "
                      "of exactly one key)")
    return next(iter(node.items()))


def _check(node: Any, fields: set[str]) -> Any:
    op, value = _one(node, "each expression")
    low = op.lower()
    if low in ("and", "or"):
        if not isinstance(value, list) or len(value) < 2:
            raise Invalid(f"{json.dumps(value)} is too short: '{op}' needs a list of at least 2 expressions")
        return {low: [_check(v, fields) for v in value]}
    if low == "not":
        return {"not": _check(value, fields)}
    if low not in SIMPLE and low not in ("=~", "in"):
        raise Invalid(f"{json.dumps(node)} is not valid under any of the given schemas (unknown operator {op!r})")
    field, operand = _one(value, f"the operand of {op!r}")
    field = NAME_MAPPING.get(field, field)
    if field not in fields:
        raise Invalid(f"{json.dumps(value)} is not valid under any of the given schemas (unknown field "
                      f"{field!r})")
    if low == "in":
        if not isinstance(operand, list) or not operand or \
                not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in operand):
            raise Invalid(f"{json.dumps(operand)} is not valid: 'in' needs a non-empty list of strings or numbers")
    elif not isinstance(operand, str | int | float | bool):
        raise Invalid(f"{json.dumps(operand)} is not valid under any of the given schemas (a string, number or "
                      "boolean is expected)")
    if field in TIMESTAMP_FIELDS and low != "in":
        try:
            operand = datetime.fromisoformat(str(operand).replace("Z", "+00:00")).replace(tzinfo=None)
        except ValueError:
            raise errors.BadRequest(f"Failed to parse the timestamp value {operand}") from None
    return {low: (field, operand)}


def parse(filter_text: str | None, orderby_text: str | None, limit: Any, fields: set[str]):
    """(filter, orderby [(field, desc?)], limit) of a ComplexQuery body; BadRequest when invalid."""
    expr = None
    if filter_text is not None:
        try:
            if not isinstance(filter_text, str):
                raise Invalid("the filter must be a JSON text")
            expr = _check(json.loads(filter_text), fields)
        except (ValueError, Invalid) as e:
            raise errors.BadRequest(f"Filter expression not valid: {e}") from None
    orderby: list[tuple[str, bool]] = []
    if orderby_text is not None:
        try:
            if not isinstance(orderby_text, str):
                raise Invalid("the orderby must be a JSON text")
            items = json.loads(orderby_text)
            if not isinstance(items, list):
                raise Invalid(f"{json.dumps(items)} is not of type 'array'")
            for item in items:
                field, direction = _one(item, "each orderby item")
                field = NAME_MAPPING.get(field, field)
                if field not in fields or not isinstance(direction, str) or \
                        direction.lower() not in ("asc", "desc"):
                    raise Invalid(f"{json.dumps(item)} is not valid: a known field and asc or desc are expected")
                orderby.append((field, direction.lower() == "desc"))
        except (ValueError, Invalid) as e:
            raise errors.BadRequest(f"Order-by expression not valid: {e}") from None
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise errors.BadRequest(f"Invalid input for field/attribute limit. Value: '{limit}'. "
                                    "Wrong type. Expected 'int'")
        if limit <= 0:
            raise errors.BadRequest("Limit should be positive")
    return expr, orderby, limit


def restrict(expr, field: str, project_id: str):
    """A non-admin's query: only its project's rows, and naming another project is refused."""

    def walk(node):
        (op, value), = node.items()
        if op in ("and", "or"):
            for v in value:
                walk(v)
        elif op == "not":
            walk(value)
        elif value[0] == field:
            named = value[1] if op != "in" else None
            if op == "in" or str(named) != project_id:
                raise errors.Unauthorized(f"Not Authorized to access project {value[1]}")

    if expr is not None:
        walk(expr)
    own = {"=": (field, project_id)}
    return own if expr is None else {"and": [own, expr]}


def _compare(op: str, have: Any, want: Any) -> bool:
    if have is None:
        return False
    if isinstance(have, bool) and not isinstance(want, bool):
        want = str(want).lower() in ("true", "1")
    elif isinstance(have, int | float) and isinstance(want, str):
        try:
            want = float(want)
        except ValueError:
            return False
    elif isinstance(have, str) and not isinstance(want, str):
        want = str(want)
    elif isinstance(have, list | dict):
        have = json.dumps(have)
        want = str(want)
    try:
        return SIMPLE[op](have, want)
    except TypeError:
        return False


def matches(expr, row: dict) -> bool:
    if expr is None:
        return True
    (op, value), = expr.items()
    if op == "and":
        return all(matches(v, row) for v in value)
    if op == "or":
        return any(matches(v, row) for v in value)
    if op == "not":
        return not matches(value, row)
    field, operand = value
    have = row.get(field)
    if op == "in":
        return any(_compare("=", have, v) for v in operand)
    if op == "=~":
        try:
            return have is not None and re.search(str(operand), str(have)) is not None
        except re.error:
            raise errors.BadRequest(f"Filter expression not valid: {operand!r} is not a regular expression") \
                from None
    return _compare(op, have, operand)


def sort_rows(rows: list[dict], orderby: list[tuple[str, bool]]) -> list[dict]:
    for field, desc in reversed(orderby):
        present = [r for r in rows if r.get(field) is not None]
        missing = [r for r in rows if r.get(field) is None]
        rows = sorted(present, key=lambda r: _key(r[field]), reverse=desc) + missing
    return rows


def _key(value: Any):
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True)
    return value
