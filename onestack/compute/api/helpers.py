"""Small pieces shared by the compute resource modules (flavors, keypairs, quotas,
hosts, server groups, usage): policy with Nova's rule names, ``limit``/``marker``
and ``offset`` parsing, ``*_links``, the 2.75 strict query check, booleans and
project-id checks against the identity service."""

from __future__ import annotations

import logging

import httpx

from onestack.common import booleans, errors, pagination
from onestack.common.http import Req
from onestack.common.microversion import Version
from onestack.compute import policies, settings
from onestack.compute.api import mv
from onestack.compute.api.views import base_url

log = logging.getLogger(__name__)

MAX_LIMIT = 1000  # Nova's [api] max_limit


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
    return booleans.parse_bool(value, name)


def limit_marker(req: Req) -> tuple[int, str | None]:
    """``limit`` (at most MAX_LIMIT, the default) and ``marker`` of a list request."""
    limit = pagination.parse_limit(req.query.get("limit"), MAX_LIMIT)
    return (MAX_LIMIT if limit is None else limit), req.query.get("marker")


def offset_limit(req: Req) -> tuple[int, int]:
    """``offset`` and ``limit`` as Nova's ``common.limited`` reads them."""
    limit = pagination.parse_limit(req.query.get("limit"), MAX_LIMIT)
    return pagination.parse_offset(req.query.get("offset")), MAX_LIMIT if limit is None else limit


def marker_not_found(marker: str) -> errors.BadRequest:
    return errors.BadRequest(f"marker [{marker}] not found")


def page_after(items: list, marker: str | None, key, limit: int) -> list:
    """The items after ``marker`` (400 if it names none), at most ``limit``."""
    return pagination.page(items, limit, marker, key, missing=marker_not_found)[0]


def next_links(req: Req, collection: str, items: list, last_id: str | None, limit: int) -> list[dict]:
    """Nova's ``<collection>_links``: a ``next`` link when a page came back full
    (``limit`` items, the limit being at most MAX_LIMIT)."""
    if not items or last_id is None or len(items) != limit:
        return []
    return [{"rel": "next", "href": pagination.next_link(f"{base_url(req)}/v2.1/{collection}", req.query,
                                                         last_id)}]


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
