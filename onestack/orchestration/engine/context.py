"""The engine's :class:`resources.base.Context`: who acts, for which stack, and how.

``EngineContext.client(service_type)`` returns a ``common.clients.RestClient`` bound to
that service's public endpoint in the owner's catalog (``GET /identity/v3/auth/catalog``
with the owner's token), authenticated as the stack owner: a trust-scoped token, or the
request's token until identity has trusts (``engine.credentials.owner_token`` decides).
H3's types (nova, neutron, ...) use it as ``self.client("network").get("/v2.0/networks")``.

``lookups`` keeps what the action found by name or id (``resources.constraints``), so a
flavor or network that fifty resources name is asked for once.

``signal_url(resource)`` is a URL a guest can POST to without a token (busybox
``wget --post-data='{"status": "SUCCESS"}' URL``): ``{public}/orchestration/v1/signal/
{stack_id}/{resource}?sig=<hmac>``, the HMAC of the stack and resource names under the
stack's own secret (see ``stacks.verify_signal``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from typing import Any
from urllib.parse import quote

import httpx

from onestack.common import errors
from onestack.common.clients import RestClient
from onestack.orchestration import events, settings
from onestack.orchestration import template as tpl
from onestack.orchestration.engine import credentials, store
from onestack.orchestration.engine.stack import type_class
from onestack.orchestration.resources import constraints


def signature(secret: str, stack_id: str, resource_name: str) -> str:
    return hmac.new(secret.encode(), f"{stack_id}/{resource_name}".encode(), hashlib.sha256).hexdigest()


# the public endpoints of a project's catalog, as last read (an action, or a validation,
# reads it once, not every stack action of the project)
CATALOG_TTL = 60.0
_catalogs: dict[str, tuple[float, dict[str, str]]] = {}


class _OwnerAuth:
    """The ServiceAuth interface RestClient uses (base_url, token()), as the stack owner."""

    def __init__(self, base_url: str, token_fn):
        self.base_url = base_url
        self._token_fn = token_fn

    def token(self) -> str:
        return self._token_fn()


class EngineContext:
    def __init__(self, *, stack_id: str, stack_name: str, project_id: str, user_id: str,
                 trust_id: str | None, request_token: str | None, secret: str, engine=None):
        self.stack_id, self.stack_name = stack_id, stack_name
        self.project_id, self.user_id = project_id, user_id
        self.region = settings.current.region
        self.trust_id, self.request_token = trust_id, request_token
        self.secret = secret
        self.engine = engine  # nested stacks: the engine acting on a child of this stack
        self.files: dict[str, str] = {}  # the stack's files (a nested stack gets them too)
        self.peers: dict = {}  # name -> live resource, kept by the operation
        self._catalog: dict[str, str] | None = None
        self._clients: dict[str, RestClient] = {}
        self.lookups = constraints.Lookups()  # names and ids found during this action
        self._lock = threading.Lock()

    def token(self) -> str:
        return credentials.owner_token(self.trust_id, self.request_token)

    def _endpoints(self) -> dict[str, str]:
        if self._catalog is None:
            kept = _catalogs.get(self.project_id)
            if kept is not None and time.monotonic() - kept[0] < CATALOG_TTL:
                self._catalog = kept[1]
                return self._catalog
            base = settings.current.public_url
            try:
                r = credentials.http().get(base + "/identity/v3/auth/catalog",
                                           headers={"X-Auth-Token": self.token()}, timeout=30)
            except httpx.HTTPError as e:
                raise errors.ServiceUnavailable(f"identity did not answer: {e}") from None
            if r.status_code != 200:
                raise errors.Unauthorized(f"The stack owner's catalog cannot be read ({r.status_code}).")
            found = {}
            for svc in r.json().get("catalog", []):
                for ep in svc.get("endpoints", []):
                    if ep.get("interface") == "public":
                        found.setdefault(svc["type"], ep["url"])
            self._catalog = found
            _catalogs[self.project_id] = (time.monotonic(), found)
        return self._catalog

    def client(self, service_type: str) -> Any:
        with self._lock:
            if service_type not in self._clients:
                url = self._endpoints().get(service_type)
                if url is None:
                    raise errors.BadRequest(f"The service {service_type} is not in the catalog.")
                base = settings.current.public_url
                auth, prefix = (_OwnerAuth(base, self.token), url[len(base):]) if url.startswith(base) \
                    else (_OwnerAuth(url, self.token), "")
                self._clients[service_type] = RestClient(auth, prefix, http=credentials.http())
            return self._clients[service_type]

    def peer(self, ref: str):
        """The live resource of this stack named ``ref`` or whose reference is ``ref``
        (a WaitCondition finds its handle so)."""
        for inst in list(self.peers.values()):
            if inst.name == ref or inst.reference_id() == ref:
                return inst
        return None

    # ------------------------------------------------------ nested stacks
    # (template resources and ResourceGroup make a child stack through these; the child
    # runs in the engine as any stack, owned by the same user, hidden from stack list)
    def create_nested(self, resource_name: str, template: dict, parameters: dict, files: dict,
                      environment: dict | None = None, timeout_mins: int | None = None) -> str:
        parent = store.load_stack(self.stack_id) or {}
        depth = (parent.get("nested_depth") or 0) + 1
        if environment is None:  # the parent's, narrowed to this resource (its hooks, ...)
            row = next((r for r in store.resources(self.stack_id) if r["name"] == resource_name), None)
            env = tpl.parse_environment(parent.get("environment") or {})
            environment = env.child(resource_name, None, row["type"] if row else None).to_stored_dict()
        if depth > settings.current.max_nested_stack_depth:
            raise errors.BadRequest(f"Recursion depth exceeds {settings.current.max_nested_stack_depth}.")
        child = store.add_stack(
            name=f"{self.stack_name}-{resource_name}-{secrets.token_hex(6)}"[:255], project_id=self.project_id,
            user_id=self.user_id, username=parent.get("username"), template=template,
            environment=environment or {}, files=files or {}, parameters=parameters or {},
            parent_id=self.stack_id, parent_resource=resource_name, nested_depth=depth,
            trust_id=self.trust_id, timeout_mins=timeout_mins or parent.get("timeout_mins"))
        self.engine.spawn(child, "CREATE", self.request_token)
        return child

    def update_nested(self, child_id: str, template: dict, parameters: dict, files: dict,
                      environment: dict | None = None, timeout_mins: int | None = None) -> None:
        st = store.load_stack(child_id)
        environment = st["environment"] if environment is None else environment
        if timeout_mins:
            store.update_stack(child_id, timeout_mins=timeout_mins)
        store.update_stack(child_id, previous={k: st[k] for k in ("template", "environment", "parameters",
                                                                   "files")},
                           template=template, parameters=parameters or {}, files=files or {},
                           environment=environment or {}, action="UPDATE", status="IN_PROGRESS",
                           status_reason="Stack UPDATE started")
        self.engine.spawn(child_id, "UPDATE", self.request_token)

    def delete_nested(self, child_id: str) -> None:
        st = store.load_stack(child_id)
        if st is None or st["deleted_at"] is not None:
            return
        store.update_stack(child_id, action="DELETE", status="IN_PROGRESS", status_reason="Stack DELETE started")
        self.engine.spawn(child_id, "DELETE", self.request_token)

    def cancel_nested(self, child_id: str) -> None:
        """Stop a child stack's action in progress (its parent's stopped), without rollback."""
        st = store.load_stack(child_id)
        if st is not None and st["deleted_at"] is None and st["status"] == "IN_PROGRESS":
            store.update_stack(child_id, cancel_requested="no_rollback")

    def nested_state(self, child_id: str) -> tuple[str, str, str]:
        """(action, status, reason) of a child stack; a deleted one is DELETE COMPLETE."""
        st = store.load_stack(child_id)
        if st is None or st["deleted_at"] is not None:
            return "DELETE", "COMPLETE", ""
        return st["action"], st["status"], st["status_reason"]

    def nested_name(self, child_id: str) -> str | None:
        return (store.load_stack(child_id) or {}).get("name")

    def nested_outputs(self, child_id: str) -> dict[str, Any]:
        st = store.load_stack(child_id) or {}
        return {o["output_key"]: o for o in (st.get("outputs") or {}).get("items", [])}

    def nested_resources(self, child_id: str) -> list[dict]:
        return store.resources(child_id)

    def nested_member(self, child_id: str, member: str, attr: str | None = None, *path: Any) -> Any:
        """A child stack's resource: its reference (``attr`` None) or an attribute."""
        row = next((r for r in store.resources(child_id) if r["name"] == member), None)
        if row is None or (row["physical_id"] is None and row["action"] == "INIT"):
            return None
        child = store.load_stack(child_id)
        try:  # a registered type, or a template (a group of template resources)
            env = tpl.parse_environment(child.get("environment") or {})
            cls = type_class(env.effective_type(member, row["type"]), [], child.get("files"))
        except errors.ApiError:
            return None
        ctx = EngineContext(stack_id=child_id, stack_name=child["name"], project_id=self.project_id,
                            user_id=self.user_id, trust_id=self.trust_id, request_token=self.request_token,
                            secret=child["secret"] or "", engine=self.engine)
        inst = cls(member, dict(row["properties"] or {}), ctx, resource_id=row["physical_id"], data=row["data"],
                   metadata=row["metadata_"])
        if attr is None:
            ref = inst.reference_id()
            return member if ref is None else ref
        value = inst.attribute(attr)
        for step in path:
            value = value.get(step) if isinstance(value, dict) else (
                value[int(step)] if isinstance(value, list) and str(step).isdigit() and int(step) < len(value)
                else None)
        return value

    def event(self, resource_name: str, reason: str) -> None:
        """A SIGNAL event on a resource of this stack, in its current status (a scaling
        group that its policy's signal resized)."""
        row = next((r for r in store.resources(self.stack_id) if r["name"] == resource_name), None)
        if row is not None:
            events.record(self.stack_id, resource_name, row["type"], row["physical_id"], "SIGNAL", row["status"],
                          reason)

    def has_service(self, service_type: str) -> bool:
        return service_type in self._endpoints()

    def signal_url(self, resource_name: str) -> str:
        sig = signature(self.secret, self.stack_id, resource_name)
        return (f"{settings.current.public_url}/orchestration/v1/signal/{self.stack_id}/"
                f"{quote(resource_name, safe='')}?sig={sig}")
