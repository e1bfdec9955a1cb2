"""Custom constraints (``nova.flavor``, ``neutron.network``, ...) and the lookups behind them.

The template language asks ``CONSTRAINTS[name](ctx, value)`` for each property carrying a
``custom_constraint``; the answer is None (valid) or Heat's error text. The same lookups
turn a name into an id for the resource types (``find_network(ctx, "private")``), so a
template may name a thing either way, as Heat allows. Everything goes through the
services' public APIs as the stack owner.
"""

from __future__ import annotations

import functools
import re
import secrets
import threading
from collections.abc import Callable
from typing import Any

from onestack.common import errors
from onestack.orchestration.resources.base import Context, Resource

_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")

# the compute and block storage microversions the types speak (onestack's maximum)
COMPUTE_VERSION = {"OpenStack-API-Version": "compute 2.79", "X-OpenStack-Nova-API-Version": "2.79"}
VOLUME_VERSION = {"OpenStack-API-Version": "volume 3.42"}
VOLUME_SERVICE = "block-storage"


class Versioned:
    """A service client that sends a microversion header with every request."""

    def __init__(self, client: Any, headers: dict[str, str]):
        self.client, self.headers = client, headers

    def request(self, method: str, path: str, **kw) -> Any:
        kw["headers"] = {**self.headers, **(kw.get("headers") or {})}
        return self.client.request(method, path, **kw)

    def get(self, path: str, **kw) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw) -> Any:
        return self.request("POST", path, json=json, **kw)

    def put(self, path: str, json: Any = None, **kw) -> Any:
        return self.request("PUT", path, json=json, **kw)

    def delete(self, path: str, **kw) -> Any:
        return self.request("DELETE", path, **kw)


def compute(ctx: Context) -> Versioned:
    return Versioned(ctx.client("compute"), COMPUTE_VERSION)


def volume(ctx: Context) -> Versioned:
    return Versioned(ctx.client(VOLUME_SERVICE), VOLUME_VERSION)


def physical_name(res: Resource, max_len: int = 255) -> str:
    """Heat's physical resource name ``<stack>-<resource>-<random>``, kept in the
    resource's data so every step (and a restart) sees the same one."""
    if "physical_name" not in res.data:
        suffix = secrets.token_hex(6)
        base = f"{res.ctx.stack_name}-{res.name}"
        res.data["physical_name"] = f"{base[:max_len - len(suffix) - 1]}-{suffix}"
    return res.data["physical_name"]


def ignore_missing(fn: Callable[[], Any]) -> Any:
    """Call ``fn``; a 404 (already gone) is not an error."""
    try:
        return fn()
    except errors.NotFound:
        return None


class NotFound(errors.NotFound):
    """A named thing a template refers to does not exist (or is ambiguous)."""


class Lookups:
    """What one stack action found (a flavor, image or network by name or id) and what its
    own resources made, by kind: each asked of a service once per action, not once per
    resource that names it (as Heat's finder cache). Misses are not kept: a name not found
    is asked again. A context's ``lookups`` attribute; a context without one asks each time."""

    def __init__(self):
        self._found: dict[tuple[str, str], dict] = {}
        self._lock = threading.Lock()

    def get(self, kind: str, value: str) -> dict | None:
        return self._found.get((kind, value))

    def put(self, kind: str, value: str | None, obj: dict) -> None:
        with self._lock:
            if value:
                self._found[(kind, value)] = obj
            if obj.get("id"):
                self._found[(kind, str(obj["id"]))] = obj

    def forget(self, ident: str | None) -> None:
        """Drop what has the id ``ident`` (a resource of the stack deleted it)."""
        if not ident:
            return
        with self._lock:
            self._found = {k: o for k, o in self._found.items() if str(o.get("id")) != ident}


def remember(ctx: Context, kind: str, obj: dict | None) -> None:
    """A thing a resource has just made, so that its dependents find it without asking."""
    lookups = getattr(ctx, "lookups", None)
    if lookups is not None and isinstance(obj, dict):
        lookups.put(kind, None, obj)


def _cached(kind: str) -> Callable[[Callable[[Context, str], dict]], Callable[[Context, str], dict]]:
    def wrap(find: Callable[[Context, str], dict]) -> Callable[[Context, str], dict]:
        @functools.wraps(find)
        def cached(ctx: Context, value: str) -> dict:
            lookups = getattr(ctx, "lookups", None)
            if lookups is None:
                return find(ctx, value)
            obj = lookups.get(kind, str(value))
            if obj is None:
                obj = find(ctx, value)
                lookups.put(kind, str(value), obj)
            return obj

        return cached

    return wrap


# ------------------------------------------------------------------ lookups
def _by_name_or_id(client: Any, path: str, key: str, value: str, missing: str,
                   name_param: str = "name", list_path: str | None = None) -> dict:
    """The one object at ``path/value``, or else the one named ``value`` in the list."""
    value = str(value)
    if value and "/" not in value:
        try:
            return client.get(f"{path}/{value}")[key[:-1] if key.endswith("s") else key]
        except (errors.NotFound, errors.BadRequest):
            pass
    found = (client.get(list_path or path, params={name_param: value}) or {}).get(key, [])
    found = [o for o in found if o.get("name") == value]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise NotFound(f"Multiple {missing.split(' ')[0].lower()} matches found for '{value}', use an ID "
                       "to be more specific.")
    raise NotFound(missing)


@_cached("flavor")
def find_flavor(ctx: Context, value: str) -> dict:
    nova = compute(ctx)
    try:
        return nova.get(f"/flavors/{value}")["flavor"]
    except (errors.NotFound, errors.BadRequest):
        pass
    flavors = [f for f in nova.get("/flavors/detail", params={"is_public": "None"})["flavors"]
               if f["name"] == value]
    if len(flavors) == 1:
        return flavors[0]
    raise NotFound(f"The Flavor ID ({value}) could not be found.")


@_cached("keypair")
def find_keypair(ctx: Context, value: str) -> dict:
    try:
        return compute(ctx).get(f"/os-keypairs/{value}")["keypair"]
    except errors.NotFound:
        raise NotFound(f"The Key ({value}) could not be found.") from None


@_cached("image")
def find_image(ctx: Context, value: str) -> dict:
    client = ctx.client("image")
    if _UUID.match(str(value)):
        try:
            return client.get(f"/v2/images/{value}")
        except errors.NotFound:
            pass
    images = client.get("/v2/images", params={"name": value})["images"]
    if len(images) == 1:
        return images[0]
    if len(images) > 1:
        raise NotFound(f"No image unique match found for {{'name': '{value}'}}.")
    raise NotFound(f"The Image ({value}) could not be found.")


def _neutron(kind: str) -> Callable[[Context, str], dict]:
    plural = kind + "s"

    @_cached(kind)
    def find(ctx: Context, value: str) -> dict:
        return _by_name_or_id(ctx.client("network"), f"/v2.0/{plural.replace('_', '-')}", plural, value,
                              f"Unable to find {kind} with name or id '{value}'")

    return find


find_network = _neutron("network")
find_subnet = _neutron("subnet")
find_port = _neutron("port")
find_router = _neutron("router")
find_security_group = _neutron("security_group")
find_subnetpool = _neutron("subnetpool")


@_cached("volume")
def find_volume(ctx: Context, value: str) -> dict:
    try:
        return _by_name_or_id(volume(ctx), "/volumes", "volumes", value,
                              f"The Volume ({value}) could not be found.", list_path="/volumes/detail")
    except errors.NotFound:
        raise NotFound(f"The Volume ({value}) could not be found.") from None


@_cached("snapshot")
def find_snapshot(ctx: Context, value: str) -> dict:
    return _by_name_or_id(volume(ctx), "/snapshots", "snapshots", value,
                          f"The VolumeSnapshot ({value}) could not be found.", list_path="/snapshots/detail")


@_cached("volume_type")
def find_volume_type(ctx: Context, value: str) -> dict:
    client = volume(ctx)
    try:
        return client.get(f"/types/{value}")["volume_type"]
    except (errors.NotFound, errors.BadRequest):
        pass
    types = [t for t in client.get("/types")["volume_types"] if t["name"] == value]
    if len(types) == 1:
        return types[0]
    raise NotFound(f"The VolumeType ({value}) could not be found.")


def _keystone(kind: str, entity: str) -> Callable[[Context, str], dict]:
    @_cached(kind)
    def find(ctx: Context, value: str) -> dict:
        return _by_name_or_id(ctx.client("identity"), f"/v3/{kind}", kind, value,
                              f"The {entity} ({value}) could not be found.")

    return find


find_project = _keystone("projects", "KeystoneProject")
find_user = _keystone("users", "KeystoneUser")
find_group = _keystone("groups", "KeystoneGroup")
find_role = _keystone("roles", "KeystoneRole")
find_domain = _keystone("domains", "KeystoneDomain")


def resolve(find: Callable[[Context, str], dict], ctx: Context, value: str | None) -> str | None:
    """The id of the named thing (None stays None)."""
    return None if value in (None, "") else find(ctx, value)["id"]


# ------------------------------------------------------------- constraints
def _constraint(find: Callable[[Context, str], dict]) -> Callable[[Context, Any], str | None]:
    def check(ctx: Context, value: Any) -> str | None:
        try:
            find(ctx, value)
        except errors.NotFound as e:
            return f"Error validating value '{value}': {e.message}"
        return None

    return check


CONSTRAINTS: dict[str, Callable[[Context, Any], str | None]] = {
    "nova.flavor": _constraint(find_flavor),
    "nova.keypair": _constraint(find_keypair),
    "glance.image": _constraint(find_image),
    "neutron.network": _constraint(find_network),
    "neutron.subnet": _constraint(find_subnet),
    "neutron.port": _constraint(find_port),
    "neutron.router": _constraint(find_router),
    "neutron.security_group": _constraint(find_security_group),
    "neutron.subnetpool": _constraint(find_subnetpool),
    "cinder.volume": _constraint(find_volume),
    "cinder.snapshot": _constraint(find_snapshot),
    "cinder.vtype": _constraint(find_volume_type),
    "keystone.project": _constraint(find_project),
    "keystone.user": _constraint(find_user),
    "keystone.group": _constraint(find_group),
    "keystone.role": _constraint(find_role),
    "keystone.domain": _constraint(find_domain),
}
