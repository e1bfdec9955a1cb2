"""Resource properties against their schema (``resources.base.Property``): defaults,
coercion to the declared type, constraints, and the diff an update is decided by.

A value that depends on a resource not made yet (validation, preview) is ``UNKNOWN``:
it passes every check, as Heat skips what it cannot know before create.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from onestack.orchestration.resources import base
from onestack.orchestration.template import StackValidationFailed


class _Unknown:
    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = _Unknown()

# a custom constraint's check: (constraint name, value) -> the error text, or None
Custom = Callable[[str, Any], "str | None"] | None


def contains_unknown(value: Any) -> bool:
    if value is UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(contains_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_unknown(v) for v in value)
    return False


def _coerce(prop: base.Property, value: Any, path: list, custom: Custom = None) -> Any:
    kind = prop.type
    if kind == base.STRING:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        if isinstance(value, dict | list):
            return json.dumps(value)
        if not isinstance(value, str):
            raise StackValidationFailed(f"Value must be a string; got {value!r}", path)
        return value
    if kind == base.INTEGER:
        if isinstance(value, bool):
            raise StackValidationFailed(f"Value '{value}' is not an integer", path)
        try:
            f = float(value)
            if f != int(f):
                raise ValueError
            return int(f)
        except (TypeError, ValueError):
            raise StackValidationFailed(f"Value '{value}' is not an integer", path) from None
    if kind == base.NUMBER:
        if isinstance(value, bool):
            raise StackValidationFailed(f"Value '{value}' is not a number", path)
        if isinstance(value, int | float):
            return value
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise StackValidationFailed(f"Value '{value}' is not a number", path) from None
        return int(f) if f == int(f) and "." not in str(value) else f
    if kind == base.BOOLEAN:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0",
                                                        "t", "f", "y", "n"):
            return value.lower() in ("true", "yes", "on", "1", "t", "y")
        if isinstance(value, int):
            return bool(value)
        raise StackValidationFailed(f'Unrecognized value "{value}", acceptable values are: true, false',
                                    path)
    if kind == base.MAP:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        if not isinstance(value, dict):
            raise StackValidationFailed(f'Value must be a map; got {value!r}', path)
        if isinstance(prop.schema, dict):
            return validate(prop.schema, value, path, custom)
        return value
    if kind == base.LIST:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",")] if value else []
        if not isinstance(value, list):
            raise StackValidationFailed(f'Value must be a list; got {value!r}', path)
        if isinstance(prop.schema, base.Property):
            return [check(prop.schema, v, [*path, i], custom) for i, v in enumerate(value)]
        if isinstance(prop.schema, dict):
            return [validate(prop.schema, v if isinstance(v, dict) else {}, [*path, i], custom)
                    for i, v in enumerate(value)]
        return value
    return value


def _constraints(prop: base.Property, value: Any, path: list, custom: Custom = None) -> None:
    for c in prop.constraints:
        if c.kind == "length":
            n = len(value) if isinstance(value, str | list | dict) else None
            if n is None:
                continue
            lo, hi = c.value.get("min"), c.value.get("max")
            if (lo is not None and n < lo) or (hi is not None and n > hi):
                raise StackValidationFailed(c.description or _range_text("length", lo, hi), path)
        elif c.kind == "range":
            lo, hi = c.value.get("min"), c.value.get("max")
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise StackValidationFailed(c.description or _range_text("range", lo, hi, value), path)
        elif c.kind == "allowed_values":
            if value not in c.value:
                raise StackValidationFailed(
                    c.description or f'"{value}" is not an allowed value '
                                     f'[{", ".join(str(v) for v in c.value)}]', path)
        elif c.kind == "allowed_pattern":
            if isinstance(value, str) and not re.fullmatch(c.value, value):
                raise StackValidationFailed(c.description or f'"{value}" does not match pattern "{c.value}"',
                                            path)
        elif c.kind == "custom_constraint" and custom is not None:
            error = custom(c.value, value)  # nova.flavor, neutron.network, ...: asked of the services
            if error:
                raise StackValidationFailed(f"Error validating value '{value}': {error}", path)


def _range_text(kind: str, lo, hi, value=None) -> str:
    what = "length" if kind == "length" else "value"
    if lo is not None and hi is not None:
        return f"{what} must be in the range {lo} to {hi}." if kind == "length" else \
            f"{value} is out of range (min: {lo}, max: {hi})"
    if lo is not None:
        return f"{what} must be at least {lo}."
    return f"{what} must be no greater than {hi}."


def check(prop: base.Property, value: Any, path: list, custom: Custom = None) -> Any:
    if contains_unknown(value):
        return value
    value = _coerce(prop, value, path, custom)
    _constraints(prop, value, path, custom)
    return value


def validate(schema: dict[str, base.Property], given: Any, path: list, custom: Custom = None) -> dict[str, Any]:
    """The properties as the type will see them: defaults filled in, values coerced.
    Raise StackValidationFailed naming the path of the first problem."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise StackValidationFailed("Properties must be a map", path)
    out: dict[str, Any] = {}
    for key in given:
        if key not in schema:
            raise StackValidationFailed(f'Unknown Property {key}', path)
    for key, prop in schema.items():
        value = given.get(key)
        if value is None:
            if prop.required:
                raise StackValidationFailed(f"Property {key} not assigned", path)
            out[key] = prop.default
            continue
        out[key] = check(prop, value, [*path, key], custom)
    return out


def changed(schema: dict[str, base.Property], old: dict[str, Any], new: dict[str, Any]) -> set[str]:
    return {k for k in schema if old.get(k) != new.get(k)}


def schema_view(prop: base.Property) -> dict[str, Any]:
    """One property as ``GET /resource_types/{type}`` shows it."""
    out: dict[str, Any] = {"type": prop.type, "description": prop.description, "required": prop.required,
                           "update_allowed": prop.update_allowed, "immutable": prop.immutable}
    if prop.default is not None:
        out["default"] = prop.default
    if prop.constraints:
        out["constraints"] = [_constraint_view(c) for c in prop.constraints]
    if isinstance(prop.schema, dict):
        out["schema"] = {k: schema_view(v) for k, v in prop.schema.items()}
    elif isinstance(prop.schema, base.Property):
        out["schema"] = {"*": schema_view(prop.schema)}
    return out


def _constraint_view(c: base.Constraint) -> dict[str, Any]:
    out: dict[str, Any] = {c.kind: c.value}
    if c.description:
        out["description"] = c.description
    return out
