"""Token validation for every service's API (the keystonemiddleware role).

A request's ``X-Auth-Token`` is validated by the identity service's own code
path: in-process in all-in-one mode, over HTTP otherwise (both are a
``Validator``). Results are cached for ``auth.token_cache_seconds``. Where the
process can read identity's database (all-in-one, API workers) identity also gives
its ``revision`` reader: a cached result is used only while identity's revision is
unchanged, so a token revoked through any process stops working at once in all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from onestack.common import errors

Validator = Callable[[str], dict]  # token id -> Keystone token body ({"token": {...}})

_validator: Validator | None = None
_revision: Callable[[], int] | None = None
_cache: dict[str, tuple[float, int | None, RequestContext]] = {}
_cache_lock = threading.Lock()
_cache_seconds = 5.0
_CACHE_MAX = 10000


def set_validator(validator: Validator, cache_seconds: float = 5.0,
                  revision: Callable[[], int] | None = None) -> None:
    """``revision``: a cheap read of identity's revision (bumped by every identity change,
    in any process); cached validations are kept only while it stays the same."""
    global _validator, _cache_seconds, _revision
    _validator = validator
    _cache_seconds = cache_seconds
    _revision = revision
    clear_cache()


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


@dataclass
class RequestContext:
    """Who is calling, as proven by a validated token."""

    auth_token: str = ""
    user_id: str | None = None
    user_name: str | None = None
    user_domain_id: str | None = None
    user_domain_name: str | None = None
    project_id: str | None = None
    project_name: str | None = None
    project_domain_id: str | None = None
    project_domain_name: str | None = None
    domain_id: str | None = None
    domain_name: str | None = None
    system_scope: str | None = None
    roles: list[str] = field(default_factory=list)
    role_ids: list[str] = field(default_factory=list)
    expires_at: str | None = None
    audit_ids: list[str] = field(default_factory=list)
    app_cred_id: str | None = None
    # a trust-scoped token: its trust, and who delegated to whom (user_id is the trustor
    # when the trust impersonates, the trustee otherwise)
    trust_id: str | None = None
    trustor_id: str | None = None
    trustee_id: str | None = None
    token: dict = field(default_factory=dict)  # the whole validated token body
    _creds: dict | None = field(default=None, repr=False)

    @classmethod
    def from_token(cls, token_id: str, body: dict) -> RequestContext:
        t = body["token"]
        user = t.get("user") or {}
        project = t.get("project") or {}
        domain = t.get("domain") or {}
        roles = t.get("roles") or []
        trust = t.get("OS-TRUST:trust") or {}
        return cls(
            auth_token=token_id,
            user_id=user.get("id"),
            user_name=user.get("name"),
            user_domain_id=(user.get("domain") or {}).get("id"),
            user_domain_name=(user.get("domain") or {}).get("name"),
            project_id=project.get("id"),
            project_name=project.get("name"),
            project_domain_id=(project.get("domain") or {}).get("id"),
            project_domain_name=(project.get("domain") or {}).get("name"),
            domain_id=domain.get("id"),
            domain_name=domain.get("name"),
            system_scope="all" if (t.get("system") or {}).get("all") else None,
            roles=[r["name"] for r in roles],
            role_ids=[r["id"] for r in roles],
            expires_at=t.get("expires_at"),
            audit_ids=list(t.get("audit_ids") or []),
            app_cred_id=(t.get("application_credential") or {}).get("id"),
            trust_id=trust.get("id"),
            trustor_id=(trust.get("trustor_user") or {}).get("id"),
            trustee_id=(trust.get("trustee_user") or {}).get("id"),
            token=t,
        )

    @property
    def is_admin(self) -> bool:
        """Holds the admin role (in any scope): a cloud administrator."""
        return "admin" in (r.lower() for r in self.roles)

    def policy_creds(self) -> dict[str, Any]:
        if self._creds is None:
            self._creds = {
                "user_id": self.user_id,
                "user_domain_id": self.user_domain_id,
                "project_id": self.project_id,
                "project_domain_id": self.project_domain_id,
                "domain_id": self.domain_id,
                "system_scope": self.system_scope,
                "roles": self.roles,
                "roles_lower": {r.lower() for r in self.roles},
                "is_admin": self.is_admin,
                "app_cred_id": self.app_cred_id,
                "trust_id": self.trust_id,
                "token": self.token,
            }
        return self._creds


def validate(token_id: str) -> RequestContext:
    """Validate a token (cached); raise Unauthorized if it is not valid now."""
    now = time.monotonic()
    revision = _revision() if _revision is not None else None
    with _cache_lock:
        hit = _cache.get(token_id)
    if hit and hit[0] > now and hit[1] == revision:
        return hit[2]
    if _validator is None:
        raise errors.ServiceUnavailable("The identity service is not available to validate tokens.")
    body = _validator(token_id)
    ctx = RequestContext.from_token(token_id, body)
    with _cache_lock:
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[token_id] = (now + _cache_seconds, revision, ctx)
    return ctx


def authenticate(request) -> RequestContext:
    """The ``authenticate`` hook of ``common.http.Api``: X-Auth-Token -> context."""
    token_id = request.headers.get("x-auth-token")
    if not token_id:
        raise errors.Unauthorized("The request you have made requires authentication.")
    return validate(token_id.strip())


class HttpValidator:
    """Validates tokens through the identity API, for API processes that do not
    run the identity service (scale-out). It holds a service token of its own,
    and renews it shortly before it expires or when identity refuses it."""

    def __init__(self, auth_url: str, username: str, password: str, project: str,
                 domain: str = "Default", timeout: float = 10.0):
        self.auth_url = auth_url.rstrip("/")
        self._auth = {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": username, "domain": {"name": domain}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"name": domain}}},
        }}
        self._client = httpx.Client(timeout=timeout)
        self._token: str | None = None
        self._lock = threading.Lock()

    def _service_token(self, renew: bool = False) -> str:
        with self._lock:
            if self._token is None or renew:
                r = self._client.post(f"{self.auth_url}/auth/tokens?nocatalog", json=self._auth)
                if r.status_code != 201:
                    raise errors.ServiceUnavailable(
                        f"The identity service refused this service's credentials ({r.status_code}).")
                self._token = r.headers["X-Subject-Token"]
            return self._token

    def __call__(self, token_id: str) -> dict:
        for renew in (False, True):
            r = self._client.get(f"{self.auth_url}/auth/tokens?nocatalog", headers={
                "X-Auth-Token": self._service_token(renew), "X-Subject-Token": token_id})
            if r.status_code == 200:
                return r.json()
            if r.status_code != 401:  # 401: our own token expired or was revoked; renew once
                break
        if r.status_code == 404:
            raise errors.Unauthorized("The request you have made requires authentication.")
        raise errors.ServiceUnavailable(f"Token validation failed at the identity service ({r.status_code}).")
