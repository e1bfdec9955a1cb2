"""Helpers the identity route modules share: body checks, links, list envelopes,
boolean query filters, and running policy."""

from __future__ import annotations

from typing import Any

from onestack.common import booleans, errors
from onestack.common.http import Req, json_response
from onestack.identity import core


def body_object(req: Req, key: str) -> dict:
    """The ``{"<key>": {...}}`` object of a request body, or a 400 naming the problem."""
    body = req.json()
    if not isinstance(body, dict) or key not in body:
        raise errors.BadRequest(f"Invalid input for field '{key}': '{key}' is a required property.")
    obj = body[key]
    if not isinstance(obj, dict):
        raise errors.BadRequest(f"Invalid input for field '{key}': must be an object.")
    return obj


def base(req: Req) -> str:
    """``http://host:port/identity/v3`` as the client reached us."""
    return str(req.request.base_url).rstrip("/") + "/v3"


def link(req: Req, path: str) -> dict:
    return {"self": f"{base(req)}/{path}"}


def collection(req: Req, key: str, items: list, truncated: bool = False) -> Any:
    body: dict = {
        key: items,
        "links": {"self": str(req.url), "previous": None, "next": None},
    }
    if truncated:
        body["truncated"] = True
    return json_response(body)


def limit_list(items: list) -> tuple[list, bool]:
    """Apply identity.list_limit (Keystone's 'truncated' lists)."""
    limit = core.settings().list_limit
    if limit and len(items) > limit:
        return items[:limit], True
    return items, False


def query_bool(req: Req, name: str) -> bool | None:
    """A boolean query filter; None when absent. As Keystone reads it: the spellings of
    false ('0', 'false', 'no', ...) are false, anything else true."""
    raw = req.query.get(name)
    if raw is None:
        return None
    return booleans.to_bool(raw, default=True)


def authorize(req: Req, rule: str, target: dict | None = None) -> None:
    core.enforcer().authorize(rule, req.ctx, target)


def allowed(req: Req, rule: str, target: dict | None = None) -> bool:
    return core.enforcer().allowed(rule, req.ctx, target)


def check_bool(obj: dict, key: str) -> None:
    if key in obj and not isinstance(obj[key], bool):
        raise errors.BadRequest(f"Invalid input for field '{key}': {obj[key]!r} is not of type 'boolean'.")


def check_str(obj: dict, key: str, nullable: bool = True, max_length: int = 65535) -> None:
    if key not in obj:
        return
    v = obj[key]
    if v is None and nullable:
        return
    if not isinstance(v, str):
        raise errors.BadRequest(f"Invalid input for field '{key}': {v!r} is not of type 'string'.")
    if len(v) > max_length:
        raise errors.BadRequest(f"Invalid input for field '{key}': longer than {max_length} characters.")
