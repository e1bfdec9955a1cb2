"""The ``aodh`` service user: its token (the evaluator's metric queries) and the trusts of
``trust+http(s)://`` actions (the owner delegates to ``aodh``, which later acts with a
trust-scoped token, as Aodh's trust notifier does)."""

from __future__ import annotations

import logging
import threading

import httpx

from onestack.alarming import settings
from onestack.common import errors
from onestack.common.clients import ServiceAuth

log = logging.getLogger(__name__)

SERVICE_USER = "aodh"

_conf = None
_auth: ServiceAuth | None = None
_user_id: str | None = None
_lock = threading.Lock()


def configure(conf) -> None:
    global _conf, _auth, _user_id
    _conf, _auth, _user_id = conf, None, None


def _identity() -> str:
    return settings.current.public_url + "/identity/v3"


def service_auth() -> ServiceAuth:
    global _auth
    with _lock:
        if _auth is None:
            _auth = ServiceAuth.for_service(_conf, SERVICE_USER)
        return _auth


def service_user_id() -> str:
    global _user_id
    if _user_id is None:
        token = service_auth().token()
        try:
            r = httpx.get(_identity() + "/auth/tokens?nocatalog", timeout=30,
                          headers={"X-Auth-Token": token, "X-Subject-Token": token})
        except httpx.HTTPError as e:
            raise errors.ServiceUnavailable(f"identity did not answer: {e}") from None
        if r.status_code != 200:
            raise errors.ServiceUnavailable(f"identity refused the {SERVICE_USER} token ({r.status_code})")
        _user_id = r.json()["token"]["user"]["id"]
    return _user_id


def service_project_id() -> str | None:
    auth = service_auth()
    auth.token()
    return auth.project_id


def create_trust(ctx) -> str:
    """A trust from the caller to ``aodh`` on the caller's project, with the caller's roles."""
    body = {"trust": {"trustor_user_id": ctx.user_id, "trustee_user_id": service_user_id(),
                      "project_id": ctx.project_id, "impersonation": True,
                      "roles": [{"name": r} for r in ctx.roles]}}
    try:
        r = httpx.post(_identity() + "/OS-TRUST/trusts", json=body, timeout=30,
                       headers={"X-Auth-Token": ctx.auth_token})
    except httpx.HTTPError as e:
        raise errors.ServiceUnavailable(f"identity did not answer: {e}") from None
    if r.status_code != 201:
        raise errors.BadRequest(f"Cannot delegate to the alarming service for a trust+ action: identity "
                                f"answered {r.status_code} to the trust request.")
    return r.json()["trust"]["id"]


def delete_trust(trust_id: str, token: str) -> None:
    """Best effort, with the caller's token (the trustor's, or an admin's), as Aodh does."""
    try:
        r = httpx.delete(f"{_identity()}/OS-TRUST/trusts/{trust_id}", timeout=30, headers={"X-Auth-Token": token})
        if r.status_code not in (204, 404):
            log.info("alarming: trust %s not deleted: identity answered %s", trust_id, r.status_code)
    except httpx.HTTPError as e:
        log.info("alarming: trust %s not deleted: %s", trust_id, e)


def trust_token(trust_id: str) -> str:
    return service_auth().trust_token(trust_id)
