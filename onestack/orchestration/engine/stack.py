"""A stack loaded for one action: its template, environment and parameters parsed (by
the template package), its resource definitions, and the resolver that gives
``get_param``, ``get_resource`` and ``get_attr`` their values from the live resources.
"""

from __future__ import annotations

from typing import Any

from onestack.common import errors
from onestack.orchestration import settings
from onestack.orchestration import template as tpl
from onestack.orchestration.engine import properties as props
from onestack.orchestration.resources import base
from onestack.orchestration.resources.constraints import CONSTRAINTS
from onestack.orchestration.resources.heat import template_resource_class
from onestack.orchestration.template.errors import InvalidTemplateAttribute, format_path
from onestack.orchestration.template.functions import select_path


def parse(template: str | dict) -> tpl.Template:
    """A template parsed under the configured limits (size, resources)."""
    return tpl.parse(template, max_size=settings.current.max_template_size,
                     max_resources=settings.current.max_resources_per_stack)


def type_class(type_name: str, path: list, files: dict | None = None) -> type[base.Resource]:
    """The class of a type: registered, or a template in ``files`` (a template resource)."""
    cls = base.REGISTRY.get(type_name)
    if cls is not None:
        return cls
    if files and type_name in files:
        try:
            nested = parse(files[type_name])
        except tpl.TemplateError as e:
            raise tpl.StackValidationFailed(f"Failed to parse the template of {type_name}: {e.message}",
                                            path) from None
        return template_resource_class(type_name, nested)
    raise tpl.StackValidationFailed(f'The Resource Type ({type_name}) could not be found.', path)


def custom_checker(ctx) -> props.Custom:
    """Custom constraints (``nova.flavor``, ...) checked through the services as ``ctx``."""

    def check(name: str, value: Any) -> str | None:
        fn = CONSTRAINTS.get(name)
        if fn is None or ctx is None:
            return None
        try:
            return fn(ctx, value)
        except errors.ApiError as e:
            return e.message

    return check


class StackRun(tpl.ConditionResolver):
    """One version of a stack (its current one, or the one an update goes to).

    ``validating``: references to resources not made resolve to ``props.UNKNOWN``
    (validate, preview), instead of the resource's name (Heat's value before create)."""

    def __init__(self, stack: dict[str, Any], template_doc: dict, environment_doc: dict,
                 params: dict, files: dict, *, validating: bool = False, region: str = "RegionOne",
                 check_params: bool = True, custom: props.Custom = None):
        self.stack = stack
        self.files = files or {}
        self.validating = validating
        self.template = parse(template_doc)
        self.env = tpl.parse_environment(environment_doc or {})
        values = {**(self.env.parameters or {}), **(params or {})}
        self.params = tpl.Parameters(
            self.template, values, self.env.parameter_defaults or {}, stack_name=stack["name"],
            stack_id=stack.get("id"), project_id=stack.get("project_id"), region=region,
            validate=check_params, custom=custom)
        self.custom = custom
        super().__init__(self.template, self.params, self.files)
        self.conditions = tpl.evaluate_conditions(self.template, self)
        self.defs = {name: d for name, d in self.template.resources.items() if self.resource_enabled(name)}
        self.graph = tpl.Graph.from_template(self.template, list(self.defs), resolver=self)
        self.instances: dict[str, base.Resource] = {}  # the live resources, by name

    # -------------------------------------------------------------- Resolver
    # (files and conditions: BaseResolver's)
    def param(self, name: str) -> Any:
        try:
            return super().param(name)
        except tpl.UserParameterMissing:
            if self.validating:  # POST /validate needs no values
                return props.UNKNOWN
            raise

    def _enabled(self, cond: Any) -> bool:
        if cond is None:
            return True
        if isinstance(cond, bool):
            return cond
        return tpl.evaluate_condition(cond, self.template, self)

    def _made(self, name: str) -> base.Resource | None:
        if name not in self.defs:
            raise KeyError(name)
        return self.instances.get(name)

    def resource_ref(self, name: str) -> Any:
        inst = self._made(name)
        if inst is None:
            return name  # Heat's reference before the resource exists
        ref = inst.reference_id()
        return name if ref is None else ref

    def resource_attr(self, name: str, attr: str, *path: Any) -> Any:
        inst = self._made(name)
        cls = self.class_of(name)
        if attr not in cls.ATTRIBUTES and attr != "show" and not getattr(cls, "ANY_ATTRIBUTE", False):
            raise InvalidTemplateAttribute(name, attr)
        if inst is None:
            return None
        try:
            if path and hasattr(inst, "path_attribute"):  # the type follows the path (a group's outputs)
                return inst.path_attribute(attr, list(path))
            value = inst.attribute(attr)
        except KeyError:
            raise InvalidTemplateAttribute(name, attr) from None
        except errors.NotFound:
            return None
        return select_path(value, path)

    def resource_attrs(self, name: str) -> dict[str, Any]:
        cls = self.class_of(name)
        return {a: self.resource_attr(name, a) for a in cls.ATTRIBUTES}

    def resource_facade(self, kind: str) -> Any:
        facade = self.stack.get("facade") or {}
        return facade.get(kind, {} if kind != "deletion_policy" else "Delete")

    # ----------------------------------------------------------- definitions
    def effective_type(self, name: str) -> str:
        d = self.defs[name]
        return self.env.effective_type(name, d.type)

    def class_of(self, name: str) -> type[base.Resource]:
        return type_class(self.effective_type(name), ["resources", name], self.files)

    def hooks(self, name: str) -> list[str]:
        return list(self.env.hooks_for(name) or [])

    def resolve(self, snippet: Any, path: tuple = ()) -> Any:
        return tpl.resolve(snippet, self.template, self, path)

    def given_properties(self, name: str) -> Any:
        """The properties of resource ``name`` as the template gives them, resolved (a map,
        unless the template's value is not one)."""
        path = ["resources", name, "properties"]
        raw = self.defs[name].properties or {}
        if isinstance(raw, dict):
            # (validating: what refers to resources not made yet is unknown, not checked)
            given = {k: self._given(v, [*path, k]) for k, v in raw.items()}
        else:
            given = self._resolve_property(raw, path)
        if isinstance(given, dict):
            given = {k: v for k, v in given.items() if v is not None}
        return given

    def properties_of(self, name: str) -> dict[str, Any]:
        """The resolved, validated properties of resource ``name`` as it is defined here."""
        path = ["resources", name, "properties"]
        cls = self.class_of(name)
        given = self.given_properties(name)
        if getattr(cls, "ANY_PROPERTIES", False):  # OS::Heat::None takes anything
            return given if isinstance(given, dict) else {}
        try:
            return props.validate(cls.PROPERTIES, given, path, self.custom)
        except tpl.StackValidationFailed as e:
            raise tpl.StackValidationFailed(f"Property error: {e.message}") from None

    def _given(self, snippet: Any, path: list) -> Any:
        """A property's value; validating, what refers to resources not made yet is
        unknown (as deep in plain maps and lists as it is, so the rest stays known)."""
        if not self.validating or not tpl.dependencies(snippet, self.template):
            return self._resolve_property(snippet, path)
        if isinstance(snippet, dict) and not (len(snippet) == 1
                                              and next(iter(snippet)) in self.template.version.functions):
            return {k: self._given(v, [*path, k]) for k, v in snippet.items()}
        if isinstance(snippet, list):
            return [self._given(v, [*path, i]) for i, v in enumerate(snippet)]
        return props.UNKNOWN

    def _resolve_property(self, snippet: Any, path: list) -> Any:
        try:
            return self.resolve(snippet, tuple(path))
        except tpl.UserParameterMissing as e:  # worded as Heat words it
            raise tpl.StackValidationFailed(f": {format_path(path)}: : {e.message}",
                                            error="Property error") from None

    def metadata_of(self, name: str) -> dict[str, Any]:
        md = self.resolve(self.defs[name].metadata or {}, ("resources", name, "metadata"))
        return md if isinstance(md, dict) else {}

    def outputs(self) -> list[dict[str, Any]]:
        """Each output as stack show lists it (an error in one is that output's error)."""
        out = []
        for name, o in self.template.outputs.items():
            if not self._enabled(o.condition):
                continue
            item: dict[str, Any] = {"output_key": name, "description": o.description or "No description given"}
            try:
                value = self.resolve(o.value, ("outputs", name, "value"))
                item["output_value"] = None if value is props.UNKNOWN else value
            except errors.ApiError as e:
                item["output_value"] = None
                item["output_error"] = getattr(e, "error_message", None) or e.message
            out.append(item)
        return out
