"""The contract between the engine and a resource type.

A resource type is a subclass of :class:`Resource` registered under its template name
(``@register("OS::Neutron::Net")``). It declares its properties and attributes as data
(what ``GET /resource_types/{type}`` shows and what the engine validates and diffs), and
acts on the other services only through their public APIs, with the stack owner's
credentials (``self.client("network")``).

The engine drives it in steps, never blocking a thread on a slow service:
``handle_create()`` starts the work and returns; ``check_create_complete()`` is then
polled until it returns True (or raises: the resource FAILED with that reason). The same
for update, delete, suspend, resume and check. ``resource_id`` (the physical id) must be
set by ``handle_create`` as soon as the service has answered, so a failed or interrupted
create can still be deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from onestack.common import errors

# property types, as the Heat property schema names them
STRING, NUMBER, INTEGER, BOOLEAN, MAP, LIST = "string", "number", "integer", "boolean", "map", "list"
ANY = "any"  # any value, unchecked (OS::Heat::Value's value)


@dataclass
class Constraint:
    """One constraint of a property: ``kind`` is length, range, allowed_values,
    allowed_pattern or custom_constraint (e.g. ``nova.flavor``), as in HOT."""

    kind: str
    value: Any  # {"min":.., "max":..} | [values] | "pattern" | "nova.flavor"
    description: str | None = None


@dataclass
class Property:
    type: str = STRING
    description: str = ""
    required: bool = False
    default: Any = None
    update_allowed: bool = False  # changed in place on update; otherwise a change replaces
    immutable: bool = False  # a change is refused (the update fails)
    constraints: list[Constraint] = field(default_factory=list)
    schema: dict[str, Property] | Property | None = None  # map: its keys; list: its items


@dataclass
class Attribute:
    description: str = ""
    type: str | None = None


class Context(Protocol):
    """What the engine gives a resource: who acts, for which stack, and how to reach
    the services. ``client(service_type)`` returns a JSON REST client (common.clients
    RestClient interface: get/post/put/delete/request, raising common.errors on 4xx)
    bound to the catalog endpoint of that type, authenticated as the stack owner (a
    trust-scoped token for deferred work)."""

    stack_id: str
    stack_name: str
    project_id: str
    user_id: str
    region: str

    def client(self, service_type: str) -> Any: ...

    def signal_url(self, resource_name: str) -> str: ...  # a URL a guest can POST to


class Resource:
    """A resource of a stack; subclass it per type."""

    TYPE: ClassVar[str] = ""
    PROPERTIES: ClassVar[dict[str, Property]] = {}
    ATTRIBUTES: ClassVar[dict[str, Attribute]] = {}
    SUPPORT_STATUS: ClassVar[str] = "SUPPORTED"
    # the service type whose presence in the catalog this type needs ("compute", ...)
    REQUIRES_SERVICE: ClassVar[str | None] = None
    # types that take any property / answer any attribute (OS::Heat::None, ResourceGroup)
    ANY_PROPERTIES: ClassVar[bool] = False
    ANY_ATTRIBUTE: ClassVar[bool] = False

    def __init__(self, name: str, properties: dict[str, Any], ctx: Context,
                 resource_id: str | None = None, data: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None):
        self.name = name
        self.properties = properties  # resolved, validated, defaults filled in
        self.ctx = ctx
        self.resource_id = resource_id
        # what the type keeps between steps and across restarts (Heat's resource data)
        self.data: dict[str, Any] = dict(data or {})
        self.metadata: dict[str, Any] = dict(metadata or {})

    def client(self, service_type: str):
        return self.ctx.client(service_type)

    # ----------------------------------------------------------------- create
    def handle_create(self) -> None:
        """Start creating; set ``self.resource_id`` as soon as it is known."""

    def check_create_complete(self) -> bool:
        return True

    # ----------------------------------------------------------------- update
    def handle_update(self, new_properties: dict[str, Any], changed: set[str]) -> None:
        """Change in place: called only when every changed property is update_allowed.
        ``self.properties`` still holds the old values; the engine replaces them after."""

    def check_update_complete(self) -> bool:
        return True

    def needs_replace(self, new_properties: dict[str, Any], changed: set[str]) -> bool:
        """Whether this change must replace the resource even though every changed
        property is update_allowed (e.g. TestResource's update_replace)."""
        return False

    # ----------------------------------------------------------------- delete
    def handle_delete(self) -> None:
        """Start deleting (resource_id may be None: nothing was made). A 404 means
        already gone: the engine treats errors.NotFound here as success."""

    def check_delete_complete(self) -> bool:
        return True

    def handle_cancel(self) -> None:
        """The action in progress was stopped (the stack timed out or was cancelled):
        tell what waits on it (e.g. a software deployment becomes FAILED)."""

    # --------------------------------------------------- suspend, resume, check
    def handle_suspend(self) -> None: ...

    def check_suspend_complete(self) -> bool:
        return True

    def handle_resume(self) -> None: ...

    def check_resume_complete(self) -> bool:
        return True

    def handle_check(self) -> None:
        """Raise if the physical resource is missing or broken (stack check)."""

    # ------------------------------------------------------- references, signals
    def reference_id(self) -> str | None:
        """What ``get_resource`` gives (Ref in CFN): the physical id unless the type says."""
        return self.resource_id

    def attribute(self, name: str) -> Any:
        """``get_attr`` of one attribute (the engine follows any further path). ``show``
        is every attribute as the service shows the resource. Raise KeyError for an
        unknown name."""
        raise KeyError(name)

    def handle_signal(self, details: dict[str, Any] | None) -> None:
        """A signal (``POST .../resources/{name}/signal``); types that take none refuse
        it with errors.BadRequest."""
        raise errors.BadRequest(f"Resource {self.name} ({self.TYPE}) does not accept signals")

    def validate(self) -> None:
        """Cross-property checks beyond the schema; raise errors.BadRequest."""

    def live_state(self) -> dict[str, Any] | None:
        """The properties as the service has them now (for stack check); None: unknown."""
        return None


class NoActionRequired(Exception):  # noqa: N818 (Heat's name)
    """Raised by ``handle_signal`` for a signal that changed nothing and needs no event
    (Heat's: a scaling policy signalled again while its group cannot move)."""


REGISTRY: dict[str, type[Resource]] = {}


def register(type_name: str):
    def add(cls: type[Resource]) -> type[Resource]:
        cls.TYPE = type_name
        REGISTRY[type_name] = cls
        return cls

    return add
