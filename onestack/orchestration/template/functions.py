"""Evaluating template snippets: intrinsic functions, conditions and dependencies.

A snippet is plain template data; a one-key map whose key is a function of the
template's version (``{"get_param": "x"}``) is a call. :func:`resolve` computes a
snippet's value, asking a :class:`Resolver` (the engine) for what lies outside the
template: parameter values, resources' references and attributes, files, the parent
of a nested stack and the values of conditions. :class:`BaseResolver` answers the
parameters, files and conditions itself; the engine subclasses it for resources.

Errors carry the path of the failing function (``StackValidationFailed``:
``"<path>: <message>"``, ``.error_message`` the bare text Heat shows as an output's
``output_error``); errors the resolver raises (``errors.ApiError``) pass through.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from onestack.common import errors as api_errors
from onestack.orchestration.template import checks, intrinsics, references
from onestack.orchestration.template.errors import (
    InvalidTemplateReference,
    StackValidationFailed,
    UserParameterMissing,
)
from onestack.orchestration.template.intrinsics import OMIT
from onestack.orchestration.template.model import ResourceDefinition, Template
from onestack.orchestration.template.parameters import Parameters
from onestack.orchestration.template.versions import REMOVED, TemplateVersion, call_of

# what resource_facade / Fn::ResourceFacade ask the resolver for (HOT names)
_FACADE = {"Metadata": "metadata", "DeletionPolicy": "deletion_policy",
           "UpdatePolicy": "update_policy"}


class Resolver(Protocol):
    """What :func:`resolve` asks the engine. Raise ``KeyError`` for a name that does
    not exist (an unknown or disabled resource, an unknown parameter); the evaluator
    turns it into Heat's error. Other ``ApiError``s pass through unchanged."""

    def param(self, name: str) -> Any:
        """A parameter's value in its type, pseudo parameters included."""

    def resource_ref(self, name: str) -> Any:
        """``get_resource``/``Ref``: the resource's reference id (None before create)."""

    def resource_attr(self, name: str, attr: str, *path: Any) -> Any:
        """``get_attr``: the attribute with ``path`` applied (:func:`select_path` does it
        Heat's way); None when not available yet. Raise
        ``errors.InvalidTemplateAttribute`` for an attribute the type lacks."""

    def resource_attrs(self, name: str) -> dict[str, Any] | None:
        """``get_attr: [name]`` (2015-10-15+): every attribute of the resource."""

    def get_file(self, key: str) -> str | None:
        """``get_file``: the stack's ``files`` entry, None when absent."""

    def resource_facade(self, kind: str) -> Any:
        """``resource_facade``: the parent resource's ``metadata``, ``deletion_policy``
        or ``update_policy`` (a nested stack's template uses it)."""

    def condition(self, name: str) -> bool:
        """The value of a named condition (raise ValueError('Invalid condition "x"'))."""

    def availability_zones(self) -> list[str]:
        """``Fn::GetAZs``."""


class BaseResolver:
    """Answers parameters, files and conditions from the template, the stack's
    :class:`Parameters` (or a plain mapping of values) and ``files``. Resources answer
    as they would before anything exists (references and attributes None), which is
    what validation wants; the engine overrides ``resource_ref``, ``resource_attr``,
    ``resource_attrs``, ``resource_facade`` and ``availability_zones``."""

    def __init__(self, template: Template, parameters: Parameters | Mapping[str, Any] | None
                 = None, files: Mapping[str, str] | None = None):
        self.template = template
        self.parameters = parameters if parameters is not None else {}
        self.files = files or {}
        self._conditions: dict[str, Any] = {}

    # parameters and files
    def param(self, name: str) -> Any:
        if hasattr(self.parameters, "value"):
            if name not in self.parameters:
                raise KeyError(name)
            return self.parameters.value(name)
        return self.parameters[name]

    def get_file(self, key: str) -> str | None:
        return self.files.get(key)

    # resources: what they give before they exist
    def resource_ref(self, name: str) -> Any:
        self._enabled_or_key_error(name)
        return None

    def resource_attr(self, name: str, attr: str, *path: Any) -> Any:
        self._enabled_or_key_error(name)
        return None

    def resource_attrs(self, name: str) -> dict[str, Any] | None:
        self._enabled_or_key_error(name)
        return None

    def resource_facade(self, kind: str) -> Any:
        return None

    def availability_zones(self) -> list[str]:
        return ["nova"]  # Heat's answer outside a stack

    def _enabled_or_key_error(self, name: str) -> None:
        if name not in self.template.resources or not self.resource_enabled(name):
            raise KeyError(name)

    # conditions
    def condition(self, name: str) -> bool:
        if not isinstance(name, str) or name not in self.template.conditions:
            raise ValueError(f'Invalid condition "{name}"')
        if name in self._conditions:
            value = self._conditions[name]
            if value is _IN_PROGRESS:
                raise StackValidationFailed(f'Circular definition for condition "{name}"',
                                            error="Condition validation error")
            return value
        self._conditions[name] = _IN_PROGRESS
        try:
            definition = self.template.conditions[name]
            value = _Evaluator(self.template, self, condition=True).value(
                definition, [self.template.version.section("conditions"), name])
            if not isinstance(value, bool):
                raise StackValidationFailed(
                    f'The definition of condition "{name}" is invalid: {definition}',
                    error="Condition validation error")
        except BaseException:
            del self._conditions[name]
            raise
        self._conditions[name] = value
        return value

    def resource_enabled(self, name: str) -> bool:
        defn = self.template.resources[name]
        return resource_enabled(defn, self.template, self)

    def enabled_resources(self) -> list[str]:
        return [n for n in self.template.resources if self.resource_enabled(n)]


ConditionResolver = BaseResolver  # the first name the package docstring gave it

_IN_PROGRESS = object()


# ---------------------------------------------------------------- helpers
def is_function(snippet: Any, version: TemplateVersion) -> bool:
    return call_of(snippet, version.functions) is not None


def select_path(value: Any, path: Sequence[Any]) -> Any:
    """Follow ``path`` into an attribute value, Heat's way: None when it leads nowhere."""
    for key in path:
        if not isinstance(value, (Mapping, Sequence)) or isinstance(key, bool) \
                or not isinstance(key, (str, int)):
            return None
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _fmt(path: list) -> str:
    """The dotted path (``resources.x.properties.y[0]``) of a list of keys/indexes."""
    out = ""
    for item in path:
        if isinstance(item, int):
            out += f"[{item}]"
        else:
            out = f"{out}.{item}" if out else str(item)
    return out


# ---------------------------------------------------------------- evaluation
class _Evaluator:
    def __init__(self, template: Template, resolver: Resolver, condition: bool = False):
        self.template = template
        self.version = template.version
        self.resolver = resolver
        self.condition = condition
        self.table = self.version.table(condition)

    def value(self, snippet: Any, path: list) -> Any:
        """The snippet's value; OMIT for a 2-argument ``if`` that is false."""
        call = call_of(snippet, self.table)
        if call is not None:
            name, kind, args = call
            where = [*path, name]
            try:
                return self.call(name, kind, args, where)
            except api_errors.ApiError:
                raise
            except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
                raise StackValidationFailed(str(exc), [_fmt(where)]) from None
        if isinstance(snippet, Mapping):
            out = {}
            for key, item in snippet.items():
                resolved = self.value(item, [*path, key])
                if resolved is not OMIT:
                    out[key] = resolved
            return out
        if isinstance(snippet, list | tuple):
            items = (self.value(item, [*path, i]) for i, item in enumerate(snippet))
            return [item for item in items if item is not OMIT]
        return snippet

    def args(self, args: Any, path: list) -> Any:
        """Arguments resolved as Heat resolves them (an omitted top value is None)."""
        value = self.value(args, path)
        return None if value is OMIT else value

    def condition_of(self, snippet: Any, path: list) -> bool:
        """A condition argument: a bool, a condition name, or an inline condition."""
        value = _Evaluator(self.template, self.resolver, condition=True).args(snippet, path)
        if value is None:  # Heat: no condition is a true one
            return True
        if isinstance(value, bool):
            return value
        return self.resolver.condition(value)

    def call(self, fn: str, kind: str, raw: Any, path: list) -> Any:
        checks.check_call(kind, fn, raw, self.version, self.condition)
        if kind == REMOVED:
            return {fn: raw}
        if kind in ("if", "if_nullable"):
            condition, *branches = raw
            chosen = branches[0] if self.condition_of(condition, path) else \
                (branches[1] if len(branches) > 1 else OMIT)
            return chosen if chosen is OMIT else self.value(chosen, path)
        if kind in ("not", "and", "or"):
            return self._boolean(fn, kind, raw, path)
        args = self.args(raw, path)
        handler = _LOOKUPS.get(kind)
        if handler is not None:
            return handler(self, fn, args)
        return _PURE[kind](fn, args)

    def _boolean(self, fn: str, kind: str, raw: Any, path: list) -> bool:
        items = [raw] if kind == "not" and self.version.is_hot else raw
        args = self.args(items, path)

        def truth(value):
            if value is None:  # as Heat's is_enabled(None)
                return True
            return value if isinstance(value, bool) else self.resolver.condition(value)

        if kind == "not":
            return not truth(args[0])
        if kind == "and":
            return all(truth(a) for a in args)
        return any(truth(a) for a in args)

    # lookups in the resolver
    def get_param(self, fn: str, args: Any) -> Any:
        if not args:
            raise ValueError(f'Function "{fn}" must have arguments')
        if isinstance(args, str):
            name, path = args, []
        elif isinstance(args, Sequence):
            name, path = args[0], list(args[1:])
        else:
            raise TypeError(f'Argument to "{fn}" must be string or list')
        if not isinstance(name, str):
            raise TypeError(f'Parameter name in "{fn}" must be string')
        try:
            value = self.resolver.param(name)
        except KeyError:
            raise UserParameterMissing(name) from None
        for key in path:  # a path that leads nowhere gives ''
            if not isinstance(value, (Mapping, Sequence)):
                raise TypeError(f'"{fn}" can\'t traverse path')
            if not isinstance(key, (str, int)):
                raise TypeError(f'Path components in "{fn}" must be strings')
            if isinstance(value, Sequence) and isinstance(key, str):
                try:
                    key = int(key)
                except ValueError:
                    raise TypeError(f"Path components in '{fn}' must be a string that can "
                                    "be parsed into an integer.") from None
            try:
                value = value[key]
            except (KeyError, IndexError, TypeError):
                return ""
        return value

    def get_resource(self, fn: str, name: Any) -> Any:
        try:
            return self.resolver.resource_ref(name)
        except KeyError:
            raise InvalidTemplateReference(str(name), "unknown") from None

    def ref(self, fn: str, name: Any) -> Any:
        if isinstance(name, str) and name in self.template.resources:
            return self.get_resource(fn, name)
        return self.param_ref(fn, name)

    def param_ref(self, fn: str, name: Any) -> Any:
        try:
            return self.resolver.param(name)
        except KeyError:
            raise InvalidTemplateReference(str(name), "unknown") from None

    def get_attr(self, fn: str, args: Any) -> Any:
        name = args[0]
        try:
            if len(args) == 1:
                return self.resolver.resource_attrs(name)
            return self.resolver.resource_attr(name, args[1], *args[2:])
        except KeyError:
            raise InvalidTemplateReference(str(name), "unknown") from None

    def get_file(self, fn: str, key: Any) -> str:
        if not isinstance(key, str):
            raise TypeError(f'Argument to "{fn}" must be a string')
        content = self.resolver.get_file(key)
        if content is None:
            raise ValueError(f'No content found in the "files" section for {fn} path: {key}')
        return content

    def resource_facade(self, fn: str, kind: Any) -> Any:
        return self.resolver.resource_facade(_FACADE.get(kind, kind))

    def find_in_map(self, fn: str, args: Any) -> Any:
        mapping, key, value = args
        return self.template.mappings[mapping][key][value]

    def get_azs(self, fn: str, args: Any) -> list[str]:
        return self.resolver.availability_zones()

    def yaql(self, fn: str, args: Any) -> Any:
        return intrinsics.yaql_evaluate(fn, args["expression"], args.get("data", {}))


def _repeat_kind(kind: str):
    def run(ev: _Evaluator, fn: str, args: Any) -> list:
        if not isinstance(args, Mapping):
            raise TypeError(f'Arguments to "{fn}" must be a map')
        return intrinsics.repeat(fn, args["for_each"], args["template"], kind,
                                 args.get("permutations", True))
    return run


def _replace(json_values=False, strict=False, allow_empty=True):
    def run(fn: str, args: Any) -> str:
        if isinstance(args, Mapping):
            template, mapping = args.get("template"), args.get("params")
        else:  # Fn::Replace: [mapping, template]
            mapping, template = args
        return intrinsics.replace(fn, template, mapping, json_values=json_values,
                                  strict=strict, allow_empty=allow_empty)
    return run


_LOOKUPS: dict[str, Callable[[_Evaluator, str, Any], Any]] = {
    "get_param": _Evaluator.get_param,
    "ParamRef": _Evaluator.param_ref,
    "get_resource": _Evaluator.get_resource,
    "Ref": _Evaluator.ref,
    "get_attr_then_select": _Evaluator.get_attr,
    "get_attr": _Evaluator.get_attr,
    "get_attr_all": _Evaluator.get_attr,
    "Fn::GetAtt": _Evaluator.get_attr,
    "get_file": _Evaluator.get_file,
    "resource_facade": _Evaluator.resource_facade,
    "Fn::ResourceFacade": _Evaluator.resource_facade,
    "Fn::FindInMap": _Evaluator.find_in_map,
    "Fn::GetAZs": _Evaluator.get_azs,
    "repeat": _repeat_kind("repeat"),
    "repeat_with_map": _repeat_kind("repeat_with_map"),
    "repeat_nested": _repeat_kind("repeat_nested"),
    "yaql": _Evaluator.yaql,
}

_PURE: dict[str, Callable[[str, Any], Any]] = {
    "list_join": intrinsics.join,
    "Fn::Join": intrinsics.join,
    "list_join_multiple": intrinsics.join_multiple,
    "str_replace": _replace(),
    "Fn::Replace": _replace(),
    "str_replace_json": _replace(json_values=True),
    "str_replace_strict": _replace(json_values=True, strict=True),
    "str_replace_vstrict": _replace(json_values=True, strict=True, allow_empty=False),
    "str_split": intrinsics.str_split,
    "digest": intrinsics.digest,
    "map_merge": intrinsics.map_merge,
    "map_replace": intrinsics.map_replace,
    "list_concat": intrinsics.list_concat,
    "list_concat_unique": lambda fn, args: intrinsics.list_concat(fn, args, unique=True),
    "filter": intrinsics.filter_list,
    "contains": intrinsics.contains,
    "make_url": intrinsics.make_url,
    "equals": lambda fn, args: args[0] == args[1],
    "Fn::Select": intrinsics.select,
    "Fn::Split": intrinsics.split,
    "Fn::Base64": intrinsics.base64,
    "Fn::MemberListToMap": intrinsics.member_list_to_map,
}


# ---------------------------------------------------------------- public API
def resolve(snippet: Any, template: Template, resolver: Resolver, path: Sequence = ()) -> Any:
    """The value of ``snippet`` (a resource's properties, an output's value, ...).
    ``path`` names where it sits (``["resources", "server", "properties"]``) for the
    error texts. Items a false 2-argument ``if`` leaves out are dropped from their map
    or list; a snippet that is such an ``if`` itself resolves to None."""
    return _Evaluator(template, resolver).args(snippet, list(path))


def evaluate_condition(snippet: Any, template: Template, resolver: Resolver,
                       path: Sequence = ()) -> bool:
    """A condition: True/False, a condition's name, or an inline condition."""
    if snippet is None:
        return True
    try:
        return _Evaluator(template, resolver).condition_of(snippet, list(path))
    except ValueError as exc:
        raise StackValidationFailed(str(exc), [_fmt(list(path))]) from None


def evaluate_conditions(template: Template, resolver: Resolver) -> dict[str, bool]:
    """Every named condition of the template."""
    return {name: resolver.condition(name) for name in template.conditions}


def resource_enabled(defn: ResourceDefinition, template: Template, resolver: Resolver) -> bool:
    """Whether a resource exists given its ``condition`` (errors name the field)."""
    where = [template.version.section("resources"), defn.name, template.version.key_of(
        "condition")]
    return evaluate_condition(defn.condition, template, resolver, where)


def output_enabled(name: str, template: Template, resolver: Resolver) -> bool:
    output = template.outputs[name]
    where = [template.version.section("outputs"), name, template.version.key_of("condition")]
    return evaluate_condition(output.condition, template, resolver, where)


def deletion_policy(defn: ResourceDefinition, template: Template, resolver: Resolver) -> str:
    """A resource's deletion policy (``Delete``, ``Retain`` or ``Snapshot``), resolving
    it when the template computes it (``deletion_policy: {get_param: p}``)."""
    policy = defn.deletion_policy
    if not isinstance(policy, str):
        where = [template.version.section("resources"), defn.name,
                 template.version.key_of("deletion_policy")]
        policy = resolve(policy, template, resolver, where)
    if policy not in template.version.deletion_policies:
        raise StackValidationFailed(f'Invalid deletion policy "{policy}"')
    return policy.capitalize()


def dependencies(snippet: Any, template: Template | None = None,
                 resolver: Resolver | None = None) -> set[str]:
    """Resource names the snippet refers to (get_resource, get_attr, Ref, Fn::GetAtt):
    the edges of the dependency graph. With a template, CFN ``Ref``s of parameters are
    left out; with a resolver, ``if`` follows its condition (else both branches)."""
    if template is None:
        return {name for name, _ in references.references(
            snippet, references.ANY_VERSION_TABLE)}
    choose = None
    if resolver is not None:
        def choose(condition):
            return evaluate_condition(condition, template, resolver)
    return {name for name, _ in references.references(
        snippet, template.version.functions, template.resources, choose)}


def validate_functions(template: Template, *, resolver: Resolver | None = None,
                       has_attribute: Callable[[str, str], bool | None] | None = None
                       ) -> None:
    """Check every function's arguments and the resources they name, raising Heat's
    errors with their paths (``resources.server.properties.image.get_attr: ...``).
    With a ``resolver`` (parameter values known, e.g. a :class:`BaseResolver`),
    conditions are evaluated and what they disable is not checked;
    ``has_attribute(resource_name, attr) -> False`` refuses unknown attributes."""
    evaluate = None
    if resolver is not None:
        def evaluate(condition):
            if isinstance(condition, bool):
                return condition
            return _Evaluator(template, resolver).condition_of(condition, [])
    checks.validate_template_functions(template, evaluate=evaluate,
                                       has_attribute=has_attribute)


def error_text(exc: BaseException) -> str:
    """The bare message of an error from :func:`resolve` (what Heat shows as an
    output's ``output_error`` or after ``Property error: <path>:``)."""
    if isinstance(exc, StackValidationFailed):
        return exc.error_message
    if isinstance(exc, api_errors.ApiError):
        return exc.message
    return str(exc)
