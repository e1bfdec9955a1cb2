"""Small pieces shared by the compute resource modules (flavors, keypairs, quotas,
hosts, server groups, usage): policy with Nova's rule names, ``limit``/``marker``
and ``offset`` parsing, ``*_links``, the 2.75 strict query check, booleans and
project-id checks against the identity service."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import httpx

from onestack.common import errors
from onestack.common.http import Req
from onestack.common.microversion import Version
from onestack.compute import policies, settings
from onestack.compute.api import mv
from onestack.compute.api.views import base_url

log = logging.getLogger(__name__)

MAX_LIMIT = 1000  # Nova's [api] max_limit

_TRUE = {"1", "t", "true", "on", "y", "yes"}
_FALSE = {"0", "f", "false", "off", "n", "no"}


def authorize(rule: str, ctx, target: dict | None = None, fallback: str | None = None) -> None:
    """Nova's rule ``rule`` (``os_compute_api:`` implied). Rules the default policy
    does not name yet are checked with ``fallback``, an equivalent default rule; the
    refusal still names ``rule``, as Nova's message does."""
    name = rule if rule.startswith("os_compute_api:") or rule == "admin_api" else "os_compute_api:" + rule
    enforcer = policies.State.enforcer
    check = name if (fallback is None or name in enforcer.rules) else fallback
    if not policies.allowed(check, ctx, target):
        raise errors.Forbidden(f"Policy doesn't allow {name} to be performed.")


def allowed(rule: str, ctx, target: dict | None = None, fallback: str | None = None) -> bool:
    try:
        authorize(rule, ctx, target, fallback)
    except errors.Forbidden:
        return False
    return True


def check_name(value: str, field: str = "name") -> str:
    """Nova's ``name`` format: printable, not starting or ending with whitespace."""
    if value != value.strip():
        raise errors.BadRequest(f"Invalid input for field/attribute {field}: it can not start or end with "
                                f"whitespace.")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise errors.BadRequest(f"Invalid input for field/attribute {field}: it must contain printable "
                                f"characters only.")
    return value


def parse_bool(value: str, name: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise errors.BadRequest(f"Invalid {name} value {value!r}: expected a boolean.")


def limit_marker(req: Req) -> tuple[int, str | None]:
    """``limit`` (at most MAX_LIMIT, the default) and ``marker`` of a list request."""
    raw = req.query.get("limit")
    limit = MAX_LIMIT
    if raw is not None:
        try:
            limit = int(raw)
        except ValueError:
            raise errors.BadRequest("limit param must be an integer") from None
        if limit < 0:
            raise errors.BadRequest("limit param must be positive")
        limit = min(limit, MAX_LIMIT)
    return limit, req.query.get("marker")


def offset_limit(req: Req) -> tuple[int, int]:
    """``offset`` and ``limit`` as Nova's ``common.limited`` reads them."""
    out = []
    for key, default in (("offset", 0), ("limit", MAX_LIMIT)):
        raw = req.query.get(key)
        if raw is None:
            out.append(default)
            continue
        try:
            n = int(raw)
        except ValueError:
            raise errors.BadRequest(f"{key} param must be an integer") from None
        if n < 0:
            raise errors.BadRequest(f"{key} param must be positive")
        out.append(n)
    return out[0], min(out[1], MAX_LIMIT)


def page_after(items: list, marker: str | None, key, limit: int) -> list:
    """The items after ``marker`` (400 if it names none), at most ``limit``."""
    if marker is not None:
        for i, item in enumerate(items):
            if key(item) == marker:
                items = items[i + 1:]
                break
        else:
            raise errors.BadRequest(f"marker [{marker}] not found")
    return items[:limit]


def next_links(req: Req, collection: str, items: list, last_id: str | None, limit: int) -> list[dict]:
    """Nova's ``<collection>_links``: a ``next`` link when a page came back full
    (``limit`` items, the limit being at most MAX_LIMIT)."""
    if not items or last_id is None or len(items) != limit:
        return []
    params = {k: v for k, v in sorted(req.query.multi_items()) if k != "marker"}
    params["marker"] = last_id
    href = f"{base_url(req)}/v2.1/{collection}?{urlencode(params)}"
    return [{"rel": "next", "href": href}]


def strict_query(req: Req, allowed_keys: set[str], since: Version = Version(2, 75)) -> None:
    """From 2.75 an unknown query parameter is a 400, as Nova's query schemas say."""
    if mv(req) < since:
        return
    extra = sorted(set(req.query.keys()) - allowed_keys)
    if extra:
        raise errors.BadRequest(f"Invalid input for query parameters {extra[0]}. Value: "
                                f"{req.query.get(extra[0])}. Additional properties are not allowed "
                                f"('{extra[0]}' was unexpected)")


def verify_project(ctx, project_id: str) -> None:
    """400 when the identity service says ``project_id`` names no project (Nova's
    check against typos). When identity cannot tell (policy, outage), it passes."""
    url = f"{settings.current.public_url.rstrip('/')}/identity/v3/projects/{project_id}"
    try:
        r = httpx.get(url, headers={"X-Auth-Token": ctx.auth_token}, timeout=10)
    except httpx.HTTPError as e:
        log.warning("cannot verify project %s: %s", project_id, e)
        return
    if r.status_code == 404:
        raise errors.BadRequest(f"Project ID {project_id} is not a valid project.")
