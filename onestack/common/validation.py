"""Request body validation with JSON Schema, errors that name the field."""

from __future__ import annotations

from typing import Any

import jsonschema

from onestack.common import errors

_validators: dict[int, jsonschema.Draft4Validator] = {}


def _field(err: jsonschema.ValidationError) -> str:
    path = [str(p) for p in err.absolute_path]
    if err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else ""
        path.append(missing)
    elif err.validator == "additionalProperties" and "'" in err.message:
        path.append(err.message.split("'")[1])
    return ".".join(p for p in path if p) or "body"


def validate(schema: dict, body: Any) -> Any:
    """Return ``body`` if it matches ``schema``, else raise a 400 naming the problem."""
    v = _validators.get(id(schema))
    if v is None:
        v = _validators[id(schema)] = jsonschema.Draft4Validator(schema)
    err = jsonschema.exceptions.best_match(v.iter_errors(body))
    if err is None:
        return body
    field = _field(err)
    if err.validator == "required":
        msg = f"'{field}' is a required property"
    elif err.validator == "additionalProperties":
        msg = f"Additional property '{field}' is not allowed"
    else:
        msg = err.message
        if len(msg) > 300:
            msg = msg[:300] + "..."
    raise errors.BadRequest(f"Invalid input for field '{field}': {msg}")


# Building blocks used by several services' schemas.
def string(max_length: int = 255, min_length: int = 0, nullable: bool = False) -> dict:
    s: dict = {"type": ["string", "null"] if nullable else "string", "maxLength": max_length}
    if min_length:
        s["minLength"] = min_length
    return s


BOOLEAN = {"type": "boolean"}
ID = {"type": "string", "minLength": 1, "maxLength": 64}
ID_OR_NULL = {"type": ["string", "null"], "minLength": 1, "maxLength": 64}
