"""A service's quotas, read from and written to identity's unified limits.

Keystone keeps the limits: a registered limit per resource of a service (its
default) and, per project, a limit that overrides it. Services ask for them over
the identity API with their service token (never identity's tables), keep the
answer a few seconds, and forget it when this process writes a limit. The names
of resources in Keystone are the unified-limit names (Nova's ``servers``,
``class:VCPU``, Glance's ``image_count_total``...); each service maps them to
the names of its own quota API. -1 is unlimited.

Identity that does not answer is a 503: a wrong limit is worse than no create.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from onestack.common import errors
from onestack.common.clients import RestClient, ServiceAuth

log = logging.getLogger(__name__)


class Limits:
    """The limits of one service. ``names``: quota name -> unified-limit resource name;
    ``defaults``: quota name -> the default registered when identity has none yet."""

    def __init__(self, auth: Callable[[], ServiceAuth], service_type: str, names: dict[str, str],
                 defaults: dict[str, int], ttl: float = 3.0):
        self._auth = auth
        self.service_type = service_type
        self.names = dict(names)
        self.quota_name = {v: k for k, v in names.items()}
        self.config_defaults = {k: int(defaults.get(k, -1)) for k in names}
        self.ttl = ttl
        self.held_ttl = max(ttl, 30.0)
        self._client: RestClient | None = None
        self._service_id: str | None = None
        self._cache: dict[str | None, tuple[float, dict[str, int]]] = {}  # None: the defaults
        self._lock = threading.Lock()

    # -- the identity API

    def _c(self) -> RestClient:
        if self._client is None:
            self._client = RestClient(self._auth(), "/identity/v3", timeout=30)
        return self._client

    def _get(self, path: str, params: dict) -> dict:
        """A read; any refusal is identity not serving us (503), not the caller's fault."""
        try:
            return self._c().get(path, params=params)
        except errors.ServiceUnavailable:
            raise
        except errors.ApiError as e:
            raise errors.ServiceUnavailable(f"identity did not give the {self.service_type} limits: "
                                            f"{e.message}") from None

    def service_id(self) -> str:
        if self._service_id is None:
            found = self._get("/services", {"type": self.service_type})["services"]
            if not found:
                raise errors.ServiceUnavailable(f"identity has no {self.service_type} service in its catalog")
            self._service_id = found[0]["id"]
        return self._service_id

    def _registered(self) -> dict[str, dict]:
        rows = self._get("/registered_limits", {"service_id": self.service_id()})["registered_limits"]
        return {r["resource_name"]: r for r in rows if r.get("region_id") is None}

    def _project_limits(self, project_id: str | None = None) -> list[dict]:
        params = {"service_id": self.service_id()}
        if project_id is not None:
            params["project_id"] = project_id
        return [r for r in self._get("/limits", params)["limits"]
                if r.get("project_id") and r.get("region_id") is None]

    def ensure_registered(self) -> None:
        """Register the config's default of every resource identity has none for (once
        registered, the operator changes it there: ``openstack registered limit set``)."""
        have = self._registered()
        missing = [{"service_id": self.service_id(), "resource_name": rn, "default_limit": self.config_defaults[q]}
                   for q, rn in self.names.items() if rn not in have]
        for body in missing:  # one by one: another process may register the same at once
            try:
                self._c().post("/registered_limits", json={"registered_limits": [body]})
            except errors.Conflict:
                pass
        self.forget()

    def register_in_background(self, then: Callable[[], None] | None = None,
                               attempts: int = 120) -> threading.Thread:
        """``ensure_registered`` once identity answers (at start the port is not open yet),
        then ``then`` (a service moves the limits it kept itself before into identity)."""
        def run() -> None:
            last = ""
            for _ in range(attempts):
                try:
                    self.ensure_registered()
                    if then is not None:
                        then()
                    return
                except errors.ApiError as e:
                    last = e.message
                time.sleep(1)
            log.warning("%s registered limits not made: %s", self.service_type, last)

        t = threading.Thread(target=run, name=f"{self.service_type}-registered-limits", daemon=True)
        t.start()
        return t

    # -- reading

    def _fresh(self, key: str | None, max_age: float | None) -> dict[str, int] | None:
        with self._lock:
            hit = self._cache.get(key)
        if hit and (max_age is None or time.monotonic() - hit[0] < max_age):
            return dict(hit[1])
        return None

    def _keep(self, key: str | None, values: dict[str, int]) -> dict[str, int]:
        with self._lock:
            self._cache[key] = (time.monotonic(), dict(values))
        return values

    def defaults(self) -> dict[str, int]:
        """Quota name -> the registered (default) limit; the config's while none is registered
        (registering is a write, left to start-up and to ``set``: this may run inside a
        write transaction of ours, which identity's writes would wait for)."""
        hit = self._fresh(None, self.ttl)
        if hit is not None:
            return hit
        reg = self._registered()
        out = {q: int(reg[rn]["default_limit"]) if rn in reg else self.config_defaults[q]
               for q, rn in self.names.items()}
        return self._keep(None, out)

    def limits(self, project_id: str) -> dict[str, int]:
        """Quota name -> the project's limit, else the default (asked again after ``ttl``)."""
        hit = self._fresh(project_id, self.ttl)
        if hit is not None:
            return hit
        out = self.defaults()
        for r in self._project_limits(project_id):
            if r["resource_name"] in self.quota_name:
                out[self.quota_name[r["resource_name"]]] = int(r["resource_limit"])
        return self._keep(project_id, out)

    def held(self, project_id: str) -> dict[str, int]:
        """For checks inside a write transaction: what ``limits`` answered for the project
        up to ``held_ttl`` ago, else ``limits``. Requests that create fetch them before they
        open the transaction (a transaction that waited its turn keeps using that answer),
        so identity is rarely asked while this service holds its write lock."""
        hit = self._fresh(project_id, self.held_ttl)
        return hit if hit is not None else self.limits(project_id)

    def projects(self) -> list[str]:
        """The projects with a limit of their own for this service."""
        return sorted({r["project_id"] for r in self._project_limits() if r["resource_name"] in self.quota_name})

    # -- writing

    def forget(self, project_id: str | None = None) -> None:
        with self._lock:
            if project_id is None:
                self._cache.clear()
            else:
                self._cache.pop(project_id, None)

    def set(self, project_id: str, values: dict[str, int]) -> None:
        """The project's own limits of these resources (quota names)."""
        if not values:
            return
        mine = {r["resource_name"]: r for r in self._project_limits(project_id)}
        new = []
        try:
            for q, v in values.items():
                rn = self.names[q]
                if rn in mine:
                    if int(mine[rn]["resource_limit"]) != int(v):
                        self._c().request("PATCH", f"/limits/{mine[rn]['id']}",
                                          json={"limit": {"resource_limit": int(v)}})
                else:
                    new.append({"service_id": self.service_id(), "project_id": project_id,
                                "resource_name": rn, "resource_limit": int(v)})
            if new:
                try:
                    self._c().post("/limits", json={"limits": new})
                except errors.Forbidden:  # no registered limit yet for one of them
                    self.ensure_registered()
                    self._c().post("/limits", json={"limits": new})
        finally:
            self.forget(project_id)

    def reset(self, project_id: str) -> None:
        """Back to the defaults: the project's limits of this service go."""
        try:
            for r in self._project_limits(project_id):
                if r["resource_name"] in self.quota_name:
                    self._c().delete(f"/limits/{r['id']}")
        finally:
            self.forget(project_id)

    def set_defaults(self, values: dict[str, int]) -> None:
        """The registered (default) limits of these resources (quota names)."""
        if not values:
            return
        reg = self._registered()
        if any(self.names[q] not in reg for q in values):
            self.ensure_registered()
            reg = self._registered()
        try:
            for q, v in values.items():
                r = reg[self.names[q]]
                if int(r["default_limit"]) != int(v):
                    self._c().request("PATCH", f"/registered_limits/{r['id']}",
                                      json={"registered_limit": {"default_limit": int(v)}})
        finally:
            self.forget()

    def adopt(self, projects: dict[str, dict[str, int]], defaults: dict[str, int] | None = None) -> list[str]:
        """Move limits a service kept in its own tables before into identity: the projects
        done (a project identity no longer has is done too: its limits have no owner)."""
        if defaults:
            self.set_defaults(defaults)
        done = []
        for project_id, values in projects.items():
            try:
                self.set(project_id, {k: v for k, v in values.items() if k in self.names})
            except errors.BadRequest as e:
                log.info("%s limits of project %s dropped: %s", self.service_type, project_id, e.message)
            done.append(project_id)
        return done
