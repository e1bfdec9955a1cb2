"""Whose token the engine acts with: the one place that decides.

At stack create the domain asks :func:`create_trust`: the owner delegates the roles of
their token on the project to the ``heat`` service user (impersonation), and only the
trust id is stored. The engine then gets a trust-scoped token (``heat``'s password +
the trust id) whenever it acts for the stack, however long after the request.

A stack without a trust (made before trusts existed) falls back to the token of the
request that started the action, passed along with it over the bus: :func:`owner_token`
is the only function that chooses.
"""

from __future__ import annotations

import logging
import threading
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx

from onestack.common import errors
from onestack.common.clients import ServiceAuth

log = logging.getLogger(__name__)

_conf = None
_heat: ServiceAuth | None = None
_http: httpx.Client | None = None
_lock = threading.Lock()
_http_lock = threading.Lock()


def configure(conf) -> None:
    global _conf, _heat
    _conf, _heat = conf, None


def http() -> httpx.Client:
    """The one HTTP client (connection pool) the engine and the domain reach the services
    with: a new httpx.Client costs ~0.1 s (its TLS context), a stack action makes dozens
    of requests. It keeps no cookies (it acts for many users)."""
    global _http
    with _http_lock:
        if _http is None:
            _http = httpx.Client(timeout=60, cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])))
        return _http


def heat_auth() -> ServiceAuth:
    global _heat
    with _lock:
        if _heat is None:
            _heat = ServiceAuth.for_service(_conf, "heat")
            _heat.http = http()
        return _heat


def create_trust(ctx) -> str | None:
    """A trust from the caller to ``heat`` on the caller's project."""
    return heat_auth().create_trust(ctx, "the orchestration service")


def delete_trust(trust_id: str | None) -> None:
    if not trust_id:
        return
    try:
        token = owner_token(trust_id, None)
    except errors.ApiError as e:
        log.info("orchestration: trust %s not deleted: %s", trust_id, e)
        return
    heat_auth().delete_trust(trust_id, token)


def _trust_token(trust_id: str) -> str:
    try:
        return heat_auth().trust_token(trust_id)
    except (errors.Unauthorized, errors.Forbidden, errors.NotFound) as e:
        raise errors.Unauthorized(f"The stack's trust gives no token ({e.message}): was the owner or "
                                  "their role removed?") from None


def owner_token(trust_id: str | None, request_token: str | None) -> str:
    """The token to act for a stack's owner with: trust-scoped when the stack has a
    trust, else the token of the request that started the action."""
    if trust_id:
        return _trust_token(trust_id)
    if not request_token:
        raise errors.Unauthorized("The stack has no trust and the request no token to act with.")
    return request_token
