"""The backend-for-frontend: every call the pages make, to the services' public APIs with
the logged-in user's token (as Horizon does). Nothing here reads another service's tables.

A refused call raises ``Failure`` with the API's own status and message, which the page
shows in the form that caused it.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import httpx

from onestack.common.timeutils import parse_iso
from onestack.dashboard.sessions import Login

COMPUTE = "/compute/v2.1"
NETWORK = "/networking/v2.0"
IMAGE = "/image/v2"
IDENTITY = "/identity/v3"
NOVA_VERSION = {"OpenStack-API-Version": "compute 2.79", "X-OpenStack-Nova-API-Version": "2.79"}

# the first segment of the paths the pages ask (an API's place under a base URL)
PREFIXES = ("compute", "networking", "image", "identity", "volume", "object-store", "orchestration")

_base = ""
_region = ""
_http: httpx.AsyncClient | None = None


class Failure(Exception):
    """A service refused (or did not answer): its status and its message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def configure(conf) -> None:
    global _base, _region
    _base, _region = conf.public_url, conf.identity.region


def _client() -> httpx.AsyncClient:
    global _http
    if _http is None:  # (made in the serving event loop, on first use)
        _http = httpx.AsyncClient(timeout=60)
    return _http


def _message(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text.strip()[:300] or r.reason_phrase
    if isinstance(body, dict):
        # {"itemNotFound": {"message": ...}}, {"NeutronError": {...}}, Heat's {"explanation": (generic),
        # "error": {"message": ...}}: a nested message first, else a top-level text
        for v in body.values():
            if isinstance(v, dict) and "message" in v:
                return str(v["message"])
        for v in body.values():
            if isinstance(v, str) and v:
                return v
    return r.text[:300]


def _url(path: str, bases: dict | None) -> str:
    """``path`` at its API's base URL in the session's region (this cloud's own when the
    region's catalog has none)."""
    return (bases or {}).get("/" + path.split("/")[1], _base) + path


async def call(token: str | None, method: str, path: str, *, json: Any = None, params: dict | None = None,
               headers: dict | None = None, content: Any = None, bases: dict | None = None) -> httpx.Response:
    """One request; ``content``: a raw body (bytes, or an async iterator of them: streamed);
    ``bases``: the region's base URL of each API (by path prefix)."""
    h = {"X-Auth-Token": token} if token else {}
    try:
        r = await _client().request(method, _url(path, bases), json=json, params=params,
                                    headers={**h, **(headers or {})}, content=content)
    except httpx.HTTPError as e:
        raise Failure(503, f"The service at {path.split('/')[1]} did not answer: {e}") from None
    if r.status_code >= 400:
        raise Failure(r.status_code, _message(r))
    return r


class Api:
    """The calls of one logged-in user."""

    def __init__(self, login: Login):
        self.login = login
        self.bases = login.endpoints.get(login.region) or {}

    async def get(self, path: str, **kw) -> Any:
        return (await call(self.login.token, "GET", path, bases=self.bases, **kw)).json()

    async def post(self, path: str, json: Any = None, **kw) -> Any:
        r = await call(self.login.token, "POST", path, json=json, bases=self.bases, **kw)
        return r.json() if r.content else None

    async def put(self, path: str, json: Any = None, **kw) -> Any:
        r = await call(self.login.token, "PUT", path, json=json, bases=self.bases, **kw)
        return r.json() if r.content else None

    async def delete(self, path: str, **kw) -> None:
        await call(self.login.token, "DELETE", path, bases=self.bases, **kw)

    async def request(self, method: str, path: str, **kw) -> httpx.Response:
        return await call(self.login.token, method, path, bases=self.bases, **kw)

    async def stream(self, path: str) -> httpx.Response:
        """A streamed GET (an object's data): the caller reads and closes it."""
        req = _client().build_request("GET", _url(path, self.bases), headers={"X-Auth-Token": self.login.token})
        try:
            r = await _client().send(req, stream=True)
        except httpx.HTTPError as e:
            raise Failure(503, f"The service at {path.split('/')[1]} did not answer: {e}") from None
        if r.status_code >= 400:
            await r.aread()
            await r.aclose()
            raise Failure(r.status_code, _message(r))
        return r

    async def gather(self, **calls) -> dict[str, Any]:
        """Several GETs at once (``name=path``); a refused one is None (a panel without it)."""
        async def one(path):
            try:
                return await self.get(path, headers=NOVA_VERSION if path.startswith(COMPUTE) else None)
            except Failure:
                return None
        values = await asyncio.gather(*(one(p) for p in calls.values()))
        return dict(zip(calls, values, strict=True))

    @property
    def volume(self) -> str:
        return f"/volume/v3/{self.login.project_id}"

    @property
    def account(self) -> str:
        return f"/object-store/v1/AUTH_{self.login.project_id}"


def _scope(project: dict | None) -> dict:
    return {"project": project} if project else {}


async def authenticate(domain: str, user: str, password: str, project: dict | None = None) -> Login:
    """A token for user@domain (scoped to ``project``, else to the user's default or first
    project): the session's first Login. Failure 401 when identity refuses."""
    ident = {"methods": ["password"], "password": {"user": {"name": user, "domain": {"name": domain},
                                                           "password": password}}}
    r = await call(None, "POST", IDENTITY + "/auth/tokens?nocatalog",
                   json={"auth": {"identity": ident, **({"scope": _scope(project)} if project else {})}})
    login = _login(r, domain)
    if login.project_id:
        return await _with_endpoints(login)
    # unscoped: rescope to the first project the user may work in
    projects = (await call(login.token, "GET", IDENTITY + "/auth/projects")).json().get("projects", [])
    if not projects:
        raise Failure(401, "This user has no role on any project.")
    return await rescope(login, projects[0]["id"])


async def rescope(login: Login, project_id: str) -> Login:
    """A token of the same user for another project (from the current one), in the same
    region when that project's catalog has it."""
    body = {"auth": {"identity": {"methods": ["token"], "token": {"id": login.token}},
                     "scope": {"project": {"id": project_id}}}}
    r = await call(None, "POST", IDENTITY + "/auth/tokens?nocatalog", json=body)
    return await _with_endpoints(_login(r, login.domain), login.region)


async def _with_endpoints(login: Login, region: str = "") -> Login:
    """``login`` with the catalog's public endpoints by region, and its region: ``region``
    if the catalog has it, else this cloud's own, else the first."""
    try:
        catalog = (await call(login.token, "GET", IDENTITY + "/auth/catalog")).json().get("catalog", [])
    except Failure:
        catalog = []
    login.endpoints = endpoints(catalog)
    if _region in login.endpoints:  # (this cloud's own region: its APIs are here, as the login's were)
        login.endpoints[_region] = {}
    regions = sorted(login.endpoints)
    login.region = next((x for x in (region, _region) if x in login.endpoints), regions[0] if regions else "")
    return login


def endpoints(catalog: list[dict]) -> dict[str, dict[str, str]]:
    """{region: {"/compute": "http://host:port", ...}}: the base URL under which each API's
    path prefix is served, from the public endpoints' URLs."""
    out: dict[str, dict[str, str]] = {}
    for svc in catalog:
        for ep in svc.get("endpoints", []):
            if ep.get("interface") != "public":
                continue
            u = urlsplit(ep.get("url", ""))
            segments = u.path.split("/")
            at = next((i for i, seg in enumerate(segments) if seg in PREFIXES), None)
            if at is not None and u.scheme in ("http", "https"):
                region = ep.get("region_id") or ep.get("region") or ""
                base = f"{u.scheme}://{u.netloc}" + "/".join(segments[:at])
                out.setdefault(region, {}).setdefault("/" + segments[at], base)
    return out


def _login(r: httpx.Response, domain: str) -> Login:
    t = r.json()["token"]
    project = t.get("project") or {}
    return Login(token=r.headers["X-Subject-Token"], token_expires=parse_iso(t["expires_at"]), domain=domain,
                 user_id=t["user"]["id"], user_name=t["user"]["name"], project_id=project.get("id", ""),
                 project_name=project.get("name", ""), roles=[x["name"] for x in t.get("roles", [])])


async def revoke(login: Login) -> None:
    try:
        await call(login.token, "DELETE", IDENTITY + "/auth/tokens", headers={"X-Subject-Token": login.token})
    except Failure:
        pass  # (already expired or revoked: the session goes anyway)
