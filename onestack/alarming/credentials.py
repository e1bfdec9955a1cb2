"""The ``aodh`` service user: its token (the evaluator's metric queries) and the trusts of
``trust+http(s)://`` actions (the owner delegates to ``aodh``, which later acts with a
trust-scoped token, as Aodh's trust notifier does)."""

from __future__ import annotations

import logging
import threading

from onestack.common.clients import ServiceAuth

log = logging.getLogger(__name__)

SERVICE_USER = "aodh"

_conf = None
_auth: ServiceAuth | None = None
_lock = threading.Lock()


def configure(conf) -> None:
    global _conf, _auth
    _conf, _auth = conf, None


def service_auth() -> ServiceAuth:
    global _auth
    with _lock:
        if _auth is None:
            _auth = ServiceAuth.for_service(_conf, SERVICE_USER)
        return _auth


def service_user_id() -> str:
    auth = service_auth()
    auth.token()
    return auth.user_id


def service_project_id() -> str | None:
    auth = service_auth()
    auth.token()
    return auth.project_id


def create_trust(ctx) -> str:
    """A trust from the caller to ``aodh`` on the caller's project, with the caller's roles."""
    return service_auth().create_trust(ctx, "the alarming service for a trust+ action")


def delete_trust(trust_id: str, token: str) -> None:
    """Best effort, with the caller's token (the trustor's, or an admin's), as Aodh does."""
    service_auth().delete_trust(trust_id, token)


def trust_token(trust_id: str) -> str:
    return service_auth().trust_token(trust_id)
