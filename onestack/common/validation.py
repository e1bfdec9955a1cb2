"""Request validation, written once: JSON Schema for bodies, with errors that name the field
in the service's own words (booleans: onestack.common.booleans)."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import unicodedata
import uuid
from typing import Any

import jsonschema
from jsonschema import validators as _validators_mod

from onestack.common import errors

# ---------------------------------------------------------------------------- formats

class FormatReason(Exception):
    """A format check's own explanation (Nova's InvalidName reason), used as the message."""


_FORMATS = jsonschema.FormatChecker([])


@_FORMATS.checks("uuid")
def _uuid(value) -> bool:
    if not isinstance(value, str):
        return True
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _ip_of_version(version: int):
    def check(value) -> bool:
        try:
            return not isinstance(value, str) or ipaddress.ip_address(value).version == version
        except ValueError:
            return False
    return check


_FORMATS.checks("ipv4")(_ip_of_version(4))
_FORMATS.checks("ipv6")(_ip_of_version(6))


@_FORMATS.checks("cidr")
def _cidr(value) -> bool:
    if not isinstance(value, str):
        return True
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return "/" in value and not re.search(r"\s", value)


@_FORMATS.checks("base64")
def _base64(value) -> bool:
    if not isinstance(value, str):
        return True
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


@_FORMATS.checks("mac")
def _mac(value) -> bool:
    return not isinstance(value, str) or bool(re.fullmatch(r"([0-9a-fA-F]{2})(:[0-9a-fA-F]{2}){5}", value))


def _printable(c: str) -> bool:
    """Nova's printable: no control or format characters, no separators but spaces."""
    category = unicodedata.category(c)
    return not category.startswith("C") and (not category.startswith("Z") or category == "Zs")


@_FORMATS.checks("name", raises=FormatReason)
def _name(value) -> bool:
    """Nova's ``name``: printable characters, not starting or ending with whitespace."""
    if not isinstance(value, str):
        return True
    if value and all(_printable(c) for c in value) and value == value.strip():
        return True
    raise FormatReason("An invalid 'name' value was provided. The name must be: printable characters. "
                       "Can not start or end with whitespace.")


@_FORMATS.checks("printable")
def _printable_text(value) -> bool:
    return not isinstance(value, str) or all(_printable(c) for c in value)


# ---------------------------------------------------------------------------- validating

def _as_number(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return float(value)
        except (TypeError, ValueError):
            return None


def _numeric_string_bound(name: str):
    """``minimum``/``maximum`` on numbers written as strings too ("10"), as Nova's and Cinder's
    validators check them: their schemas accept integers as ``["integer", "string"]``."""
    base = jsonschema.Draft4Validator.VALIDATORS[name]

    def check(validator, bound, instance, schema):
        number = _as_number(instance)
        if number is not None:
            yield from base(validator, bound, number, schema)
    return check


_Validator = _validators_mod.extend(jsonschema.Draft4Validator, {
    "minimum": _numeric_string_bound("minimum"), "maximum": _numeric_string_bound("maximum")})
_validators: dict[int, Any] = {}

KEYSTONE = "keystone"  # Invalid input for field 'a.b': <why>
NOVA = "nova"  # Invalid input for field/attribute b. Value: <v>. <why>  (Nova and Cinder)
NEUTRON = "neutron"  # Invalid input for b. Reason: <why>.


def _field(err: jsonschema.ValidationError) -> str:
    path = [str(p) for p in err.absolute_path]
    if err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else ""
        path.append(missing)
    elif err.validator == "additionalProperties" and "'" in err.message:
        path.append(err.message.split("'")[1])
    return ".".join(p for p in path if p) or "body"


def _short(value: Any, most: int = 255) -> str:
    text = str(value)
    return text if len(text) <= most else text[:most] + "..."


def _nova_field(path: list) -> str:
    """Nova names the last element of the path; an item of a list is named with its list's
    name ("tags[1]", not "1")."""
    i = len(path) - 1
    while i >= 0 and isinstance(path[i], int):
        i -= 1
    return (str(path[i]) if i >= 0 else "body") + "".join(f"[{p}]" for p in path[i + 1:])


def _message(err: jsonschema.ValidationError, style: str) -> str:
    why = err.message if len(err.message) <= 300 else err.message[:300] + "..."
    if isinstance(err.cause, FormatReason):
        return str(err.cause)
    if style == NOVA:
        if not err.path:
            return why
        field = _nova_field(list(err.path))
        if isinstance(err.instance, dict | list):  # (an object's whole body is not echoed)
            return f"Invalid input for field/attribute {field}. {why}"
        return f"Invalid input for field/attribute {field}. Value: {_short(err.instance)}. {why}"
    if style == NEUTRON:  # the attribute named is the top-level one, as Neutron's are
        if err.validator == "required" and not err.path:
            missing = err.message.split("'")[1] if "'" in err.message else err.message
            return f"Failed to parse request. Required attribute '{missing}' not specified"
        if err.validator == "additionalProperties" and not err.path:
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            return f"Unrecognized attribute(s) '{', '.join(extra)}'"
        return f"Invalid input for {err.path[0] if err.path else 'body'}. Reason: {why}."
    field = _field(err)
    if err.validator == "required":
        return f"Invalid input for field '{field}': '{field}' is a required property"
    if err.validator == "additionalProperties":
        return f"Invalid input for field '{field}': Additional property '{field}' is not allowed"
    return f"Invalid input for field '{field}': {why}"


def validate(schema: dict, body: Any, *, style: str = KEYSTONE, **extra) -> Any:
    """Return ``body`` if it matches ``schema``, else raise a 400 naming the field, worded as
    the service (``style``) words it; ``extra`` goes into the error (e.g. a Neutron ``type``)."""
    v = _validators.get(id(schema))
    if v is None:
        v = _validators[id(schema)] = _Validator(schema, format_checker=_FORMATS)
    if style == KEYSTONE:
        err = jsonschema.exceptions.best_match(v.iter_errors(body))
    else:  # the first error, as Nova's and Cinder's validators (and so their messages) have it
        err = next(iter(v.iter_errors(body)), None)
    if err is None:
        return body
    raise errors.BadRequest(_message(err, style), **extra)


def variant(variants: list[tuple[Any, dict]], version: Any) -> dict:
    """Of ``[(since, schema), ...]`` (oldest first), the schema a request of ``version`` reads."""
    return [schema for since, schema in variants if since <= version][-1]


def extend(schema: dict, path: tuple[str, ...] = (), *, add: dict | None = None,
           drop: tuple[str, ...] = (), required: tuple[str, ...] = ()) -> dict:
    """A copy of ``schema`` whose object at ``path`` (property names from the top) gains the
    properties ``add``, loses ``drop`` and requires ``required`` too: one microversion's
    schema written as the change from the one before, as Nova's schema modules are."""
    out = _copy(schema)
    node = out
    for key in path:
        node = node["properties"][key]
    node["properties"].update(_copy(add or {}))
    for key in drop:
        node["properties"].pop(key, None)
    if required:
        node["required"] = [*node.get("required", []), *required]
    return out


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


# ---------------------------------------------------------------------------- building blocks

def string(max_length: int = 255, min_length: int = 0, nullable: bool = False) -> dict:
    s: dict = {"type": ["string", "null"] if nullable else "string", "maxLength": max_length}
    if min_length:
        s["minLength"] = min_length
    return s


BOOLEAN = {"type": "boolean"}
# a boolean or a string that says one: Nova's and Cinder's parameter_types.boolean (read then
# with to_bool)
BOOLEAN_LIKE = {"type": ["boolean", "string"],
                "enum": [True, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes",
                         False, "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no"]}
ID = {"type": "string", "minLength": 1, "maxLength": 64}
ID_OR_NULL = {"type": ["string", "null"], "minLength": 1, "maxLength": 64}
UUID = {"type": "string", "format": "uuid"}
