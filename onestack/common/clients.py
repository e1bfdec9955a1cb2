"""How one service calls another: over its REST API, with a service token.

As in OpenStack, compute reaches image, network and placement through their
public APIs, never their tables. ``ServiceAuth`` holds a token of the
service's own user (made at bootstrap, password in the state dir) and renews
it before it expires; ``RestClient`` is a thin JSON client whose 4xx answers
become our own errors (so a 404 from the image service is a 404 here too).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Any

import httpx

from onestack.common import errors
from onestack.common.credentials import load_credentials

log = logging.getLogger(__name__)

_STATUS = {400: errors.BadRequest, 401: errors.Unauthorized, 403: errors.Forbidden, 404: errors.NotFound,
           409: errors.Conflict, 413: errors.PayloadTooLarge}


class ServiceAuth:
    """A project-scoped token of a service user, renewed a minute before expiry."""

    def __init__(self, base_url: str, user: str, password: str, project: str = "service"):
        self.base_url = base_url.rstrip("/")
        self.user, self.password, self.project = user, password, project
        self._token: str | None = None
        self.project_id: str | None = None  # known once a token has been issued
        self.user_id: str | None = None  # (likewise)
        self._expires = 0.0
        self._trust_tokens: dict[str, tuple[str, float]] = {}  # trust id -> (token, expiry)
        self._lock = threading.Lock()
        self.http: httpx.Client | None = None  # a kept client for the token requests (else one each)

    @classmethod
    def for_service(cls, conf, user: str) -> ServiceAuth:
        creds = load_credentials(conf).get(user)
        if not creds:
            raise RuntimeError(f"no credentials for service user {user!r}: has bootstrap run?")
        # (a node of a multi-node cloud acts for every service as its own node user)
        return cls(conf.public_url, creds.get("user", user), creds["password"], creds.get("project", "service"))

    def token(self) -> str:
        with self._lock:
            if self._token and time.time() < self._expires - 60:
                return self._token
            body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": self.user, "domain": {"id": "default"}, "password": self.password}}},
                "scope": {"project": {"name": self.project, "domain": {"id": "default"}}}}}
            try:
                r = httpx.post(f"{self.base_url}/identity/v3/auth/tokens", json=body, timeout=30)
            except httpx.HTTPError as e:
                raise errors.ServiceUnavailable(f"identity did not answer: {e}") from None
            if r.status_code != 201:
                raise errors.ServiceUnavailable(f"service user {self.user} cannot authenticate: {r.status_code}")
            self._token = r.headers["X-Subject-Token"]
            self.project_id = r.json()["token"]["project"]["id"]
            self.user_id = r.json()["token"]["user"]["id"]
            expires = r.json()["token"]["expires_at"].replace("Z", "+00:00")
            self._expires = datetime.fromisoformat(expires).timestamp()
            return self._token

    def create_trust(self, ctx, to_what: str) -> str:
        """A trust from the caller (``ctx``: its user, project, roles and token) to this service
        user on the caller's project, with the caller's roles and impersonating, as Heat and
        Aodh make theirs; its id. BadRequest names ``to_what`` the caller could not delegate to."""
        self.token()  # (the trustee's user id comes with it)
        body = {"trust": {"trustor_user_id": ctx.user_id, "trustee_user_id": self.user_id,
                          "project_id": ctx.project_id, "impersonation": True,
                          "roles": [{"name": r} for r in ctx.roles]}}
        try:
            r = (self.http or httpx).post(f"{self.base_url}/identity/v3/OS-TRUST/trusts", json=body, timeout=30,
                                          headers={"X-Auth-Token": ctx.auth_token})
        except httpx.HTTPError as e:
            raise errors.ServiceUnavailable(f"identity did not answer: {e}") from None
        if r.status_code != 201:
            raise errors.BadRequest(f"Cannot delegate to {to_what}: identity answered {r.status_code} to the "
                                    "trust request.")
        return r.json()["trust"]["id"]

    def delete_trust(self, trust_id: str, token: str) -> None:
        """Best effort, with ``token`` (the trustor's, or an admin's): a trust that cannot be
        deleted is logged, never an error of the caller's request."""
        try:
            r = (self.http or httpx).delete(f"{self.base_url}/identity/v3/OS-TRUST/trusts/{trust_id}",
                                            timeout=30, headers={"X-Auth-Token": token})
            if r.status_code not in (204, 404):
                log.info("trust %s not deleted: identity answered %s", trust_id, r.status_code)
        except httpx.HTTPError as e:
            log.info("trust %s not deleted: %s", trust_id, e)

    def trust_token(self, trust_id: str, renew: bool = False) -> str:
        """A token of this service user as the trustee of ``trust_id`` (Keystone trusts, as
        Heat uses them): it carries the trust's roles on the trust's project, and shows
        the trustor as the user when the trust impersonates. Kept until a minute before
        it expires (``renew`` gets a new one). A trust that is gone, expired or no longer
        valid is Unauthorized/Forbidden, an answer the caller can act on."""
        with self._lock:
            cached = self._trust_tokens.get(trust_id)
            if cached and not renew and time.time() < cached[1] - 60:
                return cached[0]
            body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": self.user, "domain": {"id": "default"}, "password": self.password}}},
                "scope": {"OS-TRUST:trust": {"id": trust_id}}}}
            try:
                r = (self.http or httpx).post(f"{self.base_url}/identity/v3/auth/tokens?nocatalog", json=body,
                                              timeout=30)
            except httpx.HTTPError as e:
                raise errors.ServiceUnavailable(f"identity did not answer: {e}") from None
            if r.status_code != 201:
                raise _STATUS.get(r.status_code, errors.ServiceUnavailable)(
                    f"no token for trust {trust_id}: {_message(r)}")
            expires = r.json()["token"]["expires_at"].replace("Z", "+00:00")
            now = time.time()  # (forget the tokens that have run out meanwhile)
            self._trust_tokens = {k: v for k, v in self._trust_tokens.items() if v[1] > now}
            self._trust_tokens[trust_id] = (r.headers["X-Subject-Token"],
                                            datetime.fromisoformat(expires).timestamp())
            return self._trust_tokens[trust_id][0]


def _message(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text.strip()[:300] or r.reason_phrase
    if isinstance(body, dict):
        for v in body.values():  # {"itemNotFound": {"message": ...}}, {"NeutronError": {...}}, {"error": ...}
            if isinstance(v, dict) and "message" in v:
                return str(v["message"])
        if "errors" in body and body["errors"]:
            return str(body["errors"][0].get("detail", ""))
    return r.text[:300]


class RestClient:
    """JSON over HTTP to one service (``prefix`` under the cloud's URL)."""

    def __init__(self, auth: ServiceAuth, prefix: str, headers: dict | None = None, timeout: float = 60,
                 http: httpx.Client | None = None):
        self.auth = auth
        self.url = auth.base_url + prefix
        self.headers = headers or {}
        # (a new httpx.Client costs ~0.1 s, its TLS context: callers making many pass one to share)
        self.http = http or httpx.Client(timeout=timeout)

    def response(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                 token: str | None = None, ok: tuple[int, ...] = (200, 201, 202, 204),
                 headers: dict | None = None, content: Any = None) -> httpx.Response:
        """The answer itself (its headers: Swift's metadata), once its status is ``ok``;
        ``content``: a raw body (bytes or an iterator of them) instead of ``json``."""
        h = {"X-Auth-Token": token or self.auth.token(), **self.headers, **(headers or {})}
        try:
            r = self.http.request(method, self.url + path, json=json, params=params, headers=h, content=content)
        except httpx.HTTPError as e:
            raise errors.ServiceUnavailable(f"{self.url} did not answer: {e}") from None
        if r.status_code not in ok:
            raise _STATUS.get(r.status_code, errors.ServiceUnavailable)(_message(r))
        return r

    def request(self, method: str, path: str, **kw) -> Any:
        r = self.response(method, path, **kw)
        if r.status_code == 204 or not r.content:
            return None
        return r.json()

    def get(self, path: str, **kw) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw) -> Any:
        return self.request("POST", path, json=json, **kw)

    def put(self, path: str, json: Any = None, **kw) -> Any:
        return self.request("PUT", path, json=json, **kw)

    def delete(self, path: str, **kw) -> Any:
        return self.request("DELETE", path, **kw)

    def stream(self, path: str, token: str | None = None):
        """A streamed GET (image data): use as a context manager."""
        return self.http.stream("GET", self.url + path, headers={"X-Auth-Token": token or self.auth.token()})
