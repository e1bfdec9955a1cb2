"""A small synchronous client of the Placement API, for the services that use it
(the compute agent reporting its host, the scheduler asking and claiming).

It speaks only REST with a token: give it the placement endpoint
(``http://host:8800/placement``) and a callable returning a valid token, e.g.
``ServiceAuth(...).token``, so it does not care how tokens are obtained. A 401
is retried once with a fresh token; writes that lose a generation race are
re-read and retried. Errors are ``onestack.common.errors`` with Placement's
error ``code`` in ``extra["code"]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx

from onestack.common import errors

VERSION = "1.39"
CONCURRENT_UPDATE = "placement.concurrent_update"
_STATUS = {400: errors.BadRequest, 401: errors.Unauthorized, 403: errors.Forbidden, 404: errors.NotFound,
           405: errors.MethodNotAllowed, 406: errors.NotAcceptable, 409: errors.Conflict,
           415: errors.UnsupportedMediaType}
READ = object()  # "read it from Placement first" (the default of a generation argument)
_INVENTORY_DEFAULTS = {"reserved": 0, "min_unit": 1, "max_unit": 2147483647, "step_size": 1,
                       "allocation_ratio": 1.0}


@dataclass
class Candidate:
    """One allocation request: the tree's root provider (the compute node), what
    to claim where, and the summaries (capacity/used per class) of its providers."""

    provider_uuid: str
    allocations: dict[str, dict[str, int]]  # provider uuid -> resource class -> amount
    summaries: dict[str, dict]
    mappings: dict[str, list[str]]


class PlacementClient:
    def __init__(self, base_url: str, token: Callable[[], str], *, timeout: float = 30.0,
                 retries: int = 5, client: httpx.Client | None = None):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.retries = retries
        self._http = client or httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._http.close()

    # -- plumbing

    def request(self, method: str, path: str, *, json=None, params=None, ok: Iterable[int] = (200, 201, 204)
                ) -> httpx.Response:
        for attempt in (0, 1):
            headers = {"X-Auth-Token": self.token(), "OpenStack-API-Version": f"placement {VERSION}",
                       "Accept": "application/json"}
            try:
                r = self._http.request(method, self.base_url + path, json=json, params=params, headers=headers)
            except httpx.HTTPError as e:
                raise errors.ServiceUnavailable(f"placement did not answer {method} {path}: {e}") from None
            if r.status_code != 401 or attempt:
                break
        if r.status_code in ok:
            return r
        detail, code = r.text[:300], "placement.undefined_code"
        try:
            err = r.json()["errors"][0]
            detail, code = err.get("detail", detail), err.get("code", code)
        except (ValueError, KeyError, IndexError, TypeError):
            pass
        cls = _STATUS.get(r.status_code, errors.ApiError)
        raise cls(f"placement {method} {path}: {r.status_code} {detail}", code=code, status=r.status_code)

    def _get(self, path: str, **params) -> dict:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None}).json()

    @staticmethod
    def _raced(e: errors.ApiError) -> bool:
        return isinstance(e, errors.Conflict) and e.extra.get("code") == CONCURRENT_UPDATE

    # -- providers

    def provider(self, uuid: str) -> dict | None:
        try:
            return self._get(f"/resource_providers/{uuid}")
        except errors.NotFound:
            return None

    def create_provider(self, uuid: str, name: str, parent: str | None = None) -> dict:
        """``POST /resource_providers``: the new provider (generation 0); 409 if the uuid or name is taken."""
        body = {"uuid": uuid, "name": name}
        if parent:
            body["parent_provider_uuid"] = parent
        return self.request("POST", "/resource_providers", json=body).json()

    def ensure_provider(self, uuid: str, name: str, parent: str | None = None) -> dict:
        """The provider ``uuid``, created (or renamed) to be called ``name``."""
        p = self.provider(uuid)
        if p is None:
            try:
                return self.create_provider(uuid, name, parent)
            except errors.Conflict:  # made meanwhile by someone else, or the name is taken
                p = self.provider(uuid)
                if p is None:
                    raise
        if p["name"] != name:
            body = {"name": name}
            if parent is not None:
                body["parent_provider_uuid"] = parent
            p = self.request("PUT", f"/resource_providers/{uuid}", json=body).json()
        return p

    def delete_provider(self, uuid: str) -> bool:
        try:
            self.request("DELETE", f"/resource_providers/{uuid}")
            return True
        except errors.NotFound:
            return False

    def _generation_loop(self, read: Callable[[], tuple[int, object]], write, known=None):
        """``write(generation, current)``; when another writer moved the provider's generation
        meanwhile (409 concurrent_update), re-read and write again, at most ``retries`` times, as
        Nova's report client does. Any other 409 (inventory in use, ...) is the answer. ``known``:
        a (generation, current) the caller already holds, used for the first try instead of a read."""
        for attempt in range(self.retries):
            generation, current = known if attempt == 0 and known is not None else read()
            try:
                return write(generation, current)
            except errors.Conflict as e:
                if not self._raced(e) or attempt == self.retries - 1:
                    raise
        raise AssertionError("unreachable")

    def set_inventory(self, uuid: str, inventories: dict[str, dict], *,
                      generation: int | None = None) -> dict[str, dict]:
        """Make the provider's inventory exactly ``{rc: {total, reserved, ...}}``
        (missing fields take Placement's defaults); no write when it already is.
        ``generation``: of a provider just created (so with no inventory): no read first."""
        want = {rc: {**_INVENTORY_DEFAULTS, **fields} for rc, fields in inventories.items()}
        path = f"/resource_providers/{uuid}/inventories"

        def read():
            got = self._get(path)
            return got["resource_provider_generation"], got["inventories"]

        def write(generation, current):
            if current == want:
                return current
            body = {"resource_provider_generation": generation, "inventories": want}
            return self.request("PUT", path, json=body).json()["inventories"]

        return self._generation_loop(read, write, None if generation is None else (generation, {}))

    def report_provider(self, uuid: str, name: str, inventories: dict[str, dict], *,
                        new: bool = False) -> dict[str, dict]:
        """A compute node's provider, called ``name``, with exactly this inventory. ``new``: the
        caller has just made ``uuid``, so no provider can have it yet: one POST and one PUT (the
        fewest Placement allows, it has no bulk inventory API); otherwise read, then write what
        differs."""
        if new:
            try:
                created = self.create_provider(uuid, name)
            except errors.Conflict:  # the name is an old provider's: left to ensure_provider to say
                pass
            else:
                return self.set_inventory(uuid, inventories, generation=created["generation"])
        self.ensure_provider(uuid, name)
        return self.set_inventory(uuid, inventories)

    def set_traits(self, uuid: str, traits: Iterable[str]) -> list[str]:
        want = sorted(set(traits))
        path = f"/resource_providers/{uuid}/traits"

        def read():
            got = self._get(path)
            return got["resource_provider_generation"], sorted(got["traits"])

        def write(generation, current):
            if current == want:
                return current
            for t in want:
                if t.startswith("CUSTOM_"):
                    self.request("PUT", f"/traits/{t}")
            return self.request("PUT", path, json={"resource_provider_generation": generation,
                                                   "traits": want}).json()["traits"]

        return self._generation_loop(read, write)

    def set_aggregates(self, uuid: str, aggregates: Iterable[str]) -> list[str]:
        want = sorted(set(aggregates))
        path = f"/resource_providers/{uuid}/aggregates"

        def read():
            got = self._get(path)
            return got["resource_provider_generation"], sorted(got["aggregates"])

        def write(generation, current):
            if current == want:
                return current
            return self.request("PUT", path, json={"resource_provider_generation": generation,
                                                   "aggregates": want}).json()["aggregates"]

        return self._generation_loop(read, write)

    def usages(self, uuid: str) -> dict[str, int]:
        return self._get(f"/resource_providers/{uuid}/usages")["usages"]

    # -- scheduling

    def candidates(self, resources: dict[str, int], limit: int | None = None,
                   required: Iterable[str] | None = None, forbidden: Iterable[str] | None = None,
                   member_of: Iterable[str] | None = None, in_tree: str | None = None) -> list[Candidate]:
        """Allocation candidates for ``{rc: amount}`` (one unsuffixed group)."""
        traits = [*(required or ()), *(f"!{t}" for t in forbidden or ())]
        aggs = list(member_of or ())
        got = self._get("/allocation_candidates",
                        resources=",".join(f"{rc}:{n}" for rc, n in resources.items()),
                        limit=limit, required=",".join(traits) or None,
                        member_of=f"in:{','.join(aggs)}" if aggs else None, in_tree=in_tree)
        summaries = got["provider_summaries"]
        trees: dict[str, dict] = {}  # root -> the summaries of its tree (grouped once: 1,000s of hosts)
        for rp, summary in summaries.items():
            trees.setdefault(summary.get("root_provider_uuid") or rp, {})[rp] = summary
        out = []
        for req in got["allocation_requests"]:
            allocs = {rp: a["resources"] for rp, a in req["allocations"].items()}
            first = next(iter(allocs))
            root = summaries.get(first, {}).get("root_provider_uuid") or first
            tree = {**trees.get(root, {}), **{rp: summaries[rp] for rp in allocs if rp in summaries}}
            out.append(Candidate(root, allocs, tree, req.get("mappings", {})))
        return out

    def allocations(self, consumer: str) -> dict:
        """``GET /allocations/{consumer}``: {"allocations": {...}, "consumer_generation", ...}."""
        return self._get(f"/allocations/{consumer}")

    def claim(self, consumer: str, allocations: dict[str, dict[str, int]], project_id: str, user_id: str,
              consumer_type: str = "INSTANCE", consumer_generation: int | None | object = READ) -> bool:
        """Make ``allocations`` the consumer's (replacing any it has). False when a
        provider has no room for them (not retried); a race on the consumer or a provider
        (409 concurrent_update) is re-read and retried. ``consumer_generation``: the one the
        caller holds (None: a consumer new to Placement), used for the first try instead of a read."""
        body = {"allocations": {rp: {"resources": res} for rp, res in allocations.items()},
                "project_id": project_id, "user_id": user_id, "consumer_type": consumer_type}
        for attempt in range(self.retries):
            if attempt or consumer_generation is READ:
                body["consumer_generation"] = self.allocations(consumer).get("consumer_generation")
            else:
                body["consumer_generation"] = consumer_generation
            try:
                self.request("PUT", f"/allocations/{consumer}", json=body)
                return True
            except errors.Conflict as e:
                if not self._raced(e):
                    return False  # no room (capacity, max_unit, no such inventory)
                if attempt == self.retries - 1:
                    raise
        return False

    def claim_many(self, claims: dict[str, dict[str, dict[str, int]]], project_id: str, user_id: str,
                   consumer_type: str = "INSTANCE") -> bool:
        """``POST /allocations``: the allocations of many consumers new to Placement
        (``{consumer: {provider: {class: amount}}}``) in one request, all or none. False when
        Placement refuses them (no room left somewhere, or one of them is not new after all):
        the caller then claims one by one."""
        body = {consumer: {"allocations": {rp: {"resources": res} for rp, res in allocations.items()},
                           "project_id": project_id, "user_id": user_id, "consumer_generation": None,
                           "consumer_type": consumer_type}
                for consumer, allocations in claims.items()}
        try:
            self.request("POST", "/allocations", json=body)
            return True
        except errors.Conflict:
            return False

    # -- moves (Nova's since Queens: a migration is a consumer of its own)

    def _write_consumers(self, build: Callable[[], dict | None]) -> bool:
        """``POST /allocations`` of the body ``build()`` makes from what it reads now (None:
        nothing to write). False when a provider has no room (not retried); a consumer or
        provider generation race is re-read and retried."""
        for attempt in range(self.retries):
            body = build()
            if body is None:
                return False
            try:
                self.request("POST", "/allocations", json=body)
                return True
            except errors.Conflict as e:
                if not self._raced(e):
                    return False
                if attempt == self.retries - 1:
                    raise
        return False

    def move(self, instance: str, dest: dict[str, dict[str, int]], migration: str | None,
             project_id: str, user_id: str) -> bool:
        """A move's claim in one request: the instance's allocations become ``dest``, and
        what it held until now goes to the ``migration`` consumer (the source's room, kept
        until the move is confirmed or reverted); with no migration (an evacuation) what it
        held stays the instance's, beside ``dest``. False when ``dest`` has no room."""
        who = {"project_id": project_id, "user_id": user_id}

        def build():
            held = self.allocations(instance)
            source = {rp: dict(a["resources"]) for rp, a in (held.get("allocations") or {}).items()}
            mine = dict(dest) if migration else {**source, **dest}
            body = {instance: {"allocations": {rp: {"resources": r} for rp, r in mine.items()}, **who,
                               "consumer_generation": held.get("consumer_generation"),
                               "consumer_type": "INSTANCE"}}
            if migration and source:
                body[migration] = {"allocations": {rp: {"resources": r} for rp, r in source.items()}, **who,
                                   "consumer_generation": None, "consumer_type": "MIGRATION"}
            return body

        return self._write_consumers(build)

    def revert_move(self, instance: str, migration: str) -> bool:
        """Undo a move's claim: the instance holds again what the migration holds (the
        source's room) and the migration nothing. False when the migration holds nothing."""

        def build():
            held = self.allocations(migration)
            back = held.get("allocations") or {}
            if not back:
                return None
            now = self.allocations(instance)
            who = {"project_id": held.get("project_id"), "user_id": held.get("user_id")}
            return {instance: {"allocations": {rp: {"resources": a["resources"]} for rp, a in back.items()},
                               **who, "consumer_generation": now.get("consumer_generation"),
                               "consumer_type": "INSTANCE"},
                    migration: {"allocations": {}, **who, "consumer_generation": held.get("consumer_generation"),
                                "consumer_type": "MIGRATION"}}

        return self._write_consumers(build)

    def drop_provider(self, consumer: str, provider: str) -> bool:
        """Remove what ``consumer`` holds on ``provider``, keeping the rest (the room an
        evacuated server held on the host it left); False if it held nothing there."""

        def build():
            held = self.allocations(consumer)
            allocs = held.get("allocations") or {}
            if provider not in allocs:
                return None
            rest = {rp: {"resources": a["resources"]} for rp, a in allocs.items() if rp != provider}
            return {consumer: {"allocations": rest, "project_id": held.get("project_id"),
                               "user_id": held.get("user_id"),
                               "consumer_generation": held.get("consumer_generation"),
                               "consumer_type": held.get("consumer_type") or "INSTANCE"}}

        return self._write_consumers(build)

    def release(self, consumer: str) -> bool:
        """Drop every allocation of the consumer; False if it had none."""
        try:
            self.request("DELETE", f"/allocations/{consumer}")
            return True
        except errors.NotFound:
            return False
