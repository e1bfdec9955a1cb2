"""Checking function arguments without resolving them, as Heat validates a template.

Heat checks in two passes and words each its own way; both are kept:

* when it reads a template it builds every function, whose constructor checks the
  shape of its arguments (:func:`check_call`); the error's path is where the function
  stands (``resources.server.properties.image.get_param: ...``);
* when it validates the stack it checks references and deeper rules (removed
  functions, ``get_attr`` of a missing resource, yaql syntax, make_url keys); an
  error inside a function's arguments is reported by the outermost function with the
  inner one's relative path in the message (``...list_join: [1][0].Ref: ...``).

Between the two, references from resources (``get_resource``/``get_attr``/``Ref``
and ``depends_on``) to resources that do not exist are InvalidTemplateReference with
Heat's path (``server.Properties.image``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from onestack.common import errors as api_errors
from onestack.orchestration.template import intrinsics, references
from onestack.orchestration.template.errors import (
    InvalidTemplateAttribute,
    InvalidTemplateReference,
    InvalidTemplateVersion,
    StackValidationFailed,
)
from onestack.orchestration.template.model import Template
from onestack.orchestration.template.versions import (
    INVALID,
    REMOVED,
    TemplateVersion,
    call_of,
)

# evaluate(condition) -> bool: a condition's value (a bool, a name or an inline one)
Evaluate = Callable[[Any], bool]

_IFS = ("if", "if_nullable")
_GET_ATTRS = ("get_attr_then_select", "get_attr", "get_attr_all", "Fn::GetAtt")
_FACADE_KINDS = {"resource_facade": ("metadata", "deletion_policy", "update_policy"),
                 "Fn::ResourceFacade": ("Metadata", "DeletionPolicy", "UpdatePolicy")}

_REPLACE_EXAMPLE = """{fn}:
              template: This is var1 template var2
              params:
                var1: a
                var2: string"""
_REPEAT_EXAMPLE = """repeat:
              template: This is %var%
              for_each:
                %var%: ['a', 'b', 'c']"""
_YAQL_EXAMPLE = """{fn}:
              expression: $.data.var1.sum()
              data:
                var1: [3, 2, 1]"""
_MEMBER_LIST_EXAMPLE = """
            {'Fn::MemberListToMap': ['Name', 'Value',
                                     ['.member.0.Name=key',
                                      '.member.0.Value=door']]}
            """


class _KeyText(KeyError):
    """A KeyError whose text Heat shows quoted (str() of a KeyError is its repr)."""


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)


def _unpacks(args: Any, count: int, is_fn: Callable[[Any], bool]) -> bool:
    """Whether ``a, b, ... = args`` would work on the parsed arguments."""
    if is_fn(args) or not isinstance(args, (list, tuple, str, Mapping)):
        return False
    return len(args) == count


def check_call(kind: str, fn: str, args: Any, version: TemplateVersion,
               condition: bool = False) -> None:
    """The argument checks Heat makes when it builds function ``fn`` (of ``kind``)
    from its unresolved arguments. Raises ValueError/TypeError/KeyError."""
    table = version.table(condition)

    def is_fn(value: Any) -> bool:
        return call_of(value, table) is not None

    def is_map(value: Any) -> bool:
        return isinstance(value, Mapping) and not is_fn(value)

    if kind == INVALID:
        raise ValueError(f'The function "{fn}" is invalid in this context')
    if kind in ("get_attr_then_select", "get_attr") or (kind == "get_attr_all"
                                                        and args and len(args) > 1):
        if not _is_list(args) or is_fn(args):
            raise TypeError(f'Argument to "{fn}" must be a list')
        if len(args) < 2:
            raise ValueError(f'Arguments to "{fn}" must be of the form '
                             "[resource_name, attribute, (path), ...]")
    elif kind == "get_attr_all":
        if not args:
            raise ValueError(f'Arguments to "{fn}" can be of the next forms: [resource_name] '
                             "or [resource_name, attribute, (path), ...]")
        if not isinstance(args, Sequence) or is_fn(args):
            raise TypeError(f'Argument to "{fn}" must be a list')
    elif kind == "Fn::GetAtt":
        if not _unpacks(args, 2, is_fn):
            raise ValueError(f'Arguments to "{fn}" must be of the form '
                             "[resource_name, attribute]")
    elif kind in ("str_replace", "str_replace_json", "str_replace_strict",
                  "str_replace_vstrict"):
        if not is_map(args):
            raise TypeError(f'Arguments to "{fn}" must be a map')
        if "params" not in args or "template" not in args:
            raise _KeyText(f'"{fn}" syntax should be {_REPLACE_EXAMPLE.format(fn=fn)}')
        if not isinstance(args["params"], Mapping):
            raise TypeError(f'"{fn}" parameters must be a mapping')
    elif kind == "Fn::Replace":
        example = (f'{{"{fn}": [ {{"$var1": "foo", "%var2%": "bar"}}, '
                   '"$var1 is %var2%"]}')
        if isinstance(args, str) or is_map(args):
            raise TypeError(f'Incorrect arguments to "{fn}" should be: {example}')
        if not _unpacks(args, 2, is_fn):
            raise ValueError(f'Incorrect arguments to "{fn}" should be: {example}')
        if not isinstance(args[0], Mapping):
            raise TypeError(f'"{fn}" parameters must be a mapping')
    elif kind in ("list_join", "Fn::Join"):
        message = f'Incorrect arguments to "{fn}" should be: "{fn}" : [ " ", [ "str1", "str2"]]'
        if not isinstance(args, list):
            raise TypeError(message)
        if len(args) != 2:
            raise ValueError(message)
    elif kind == "list_join_multiple":
        message = (f'Incorrect arguments to "{fn}" should be: "{fn}" : '
                   '[ " ", [ "str1", "str2"] ...]')
        if not isinstance(args, list):
            raise TypeError(message)
        if len(args) < 2:
            raise ValueError(message)
    elif kind in _FACADE_KINDS:
        allowed = _FACADE_KINDS[kind]
        if not isinstance(args, str) or args not in allowed:
            raise ValueError(f'Incorrect arguments to "{fn}" should be one of: '
                             f"{', '.join(allowed)}")
    elif kind in ("repeat", "repeat_with_map", "repeat_nested"):
        if not is_map(args):
            raise TypeError(f'Arguments to "{fn}" must be a map')
        if "for_each" not in args or "template" not in args:
            raise _KeyText(f'"repeat" syntax should be {_REPEAT_EXAMPLE}')
        if kind == "repeat_nested" and not isinstance(args.get("permutations", True), bool):
            raise TypeError(f'"permutations" should be boolean type for {fn} function.')
    elif kind == "str_split":
        if isinstance(args, str) or is_map(args):
            raise TypeError(f'Incorrect arguments to "{fn}" should be: "{fn}" : '
                            '[ ",", "apples,pears", <index>]')
    elif kind == "yaql":
        if not is_map(args):
            raise TypeError(f'Arguments to "{fn}" must be a map.')
        if "expression" not in args or set(args) - {"expression", "data"}:
            raise _KeyText(f'"{fn}" syntax should be {_YAQL_EXAMPLE.format(fn=fn)}')
    elif kind == "equals":
        if not args or not isinstance(args, list) or len(args) != 2:
            raise ValueError(f'Arguments to "{fn}" must be of the form: [value_1, value_2]')
    elif kind in _IFS:
        counts = (3,) if kind == "if" else (2, 3)
        if not args or not _is_list(args) or len(args) not in counts:
            raise ValueError(f'Arguments to "{fn}" must be of the form: '
                             "[condition_name, value_if_true, value_if_false]")
    elif kind == "not":
        if version.is_hot:
            if args is None:
                raise ValueError(f'Argument to "{fn}" must be a condition')
        elif not args or not _is_list(args) or len(args) != 1:
            raise ValueError(f'Arguments to "{fn}" must be of the form: [condition]')
    elif kind in ("and", "or"):
        if not _is_list(args):
            raise ValueError(f'Arguments to "{fn}" must be a list of conditions')
        if len(args) < 2:
            raise ValueError(f'The minimum number of condition arguments to "{fn}" is 2.')
    elif kind == "filter":
        if not _is_list(args):
            raise TypeError(f'Argument to "{fn}" must be a list')
        if len(args) != 2:
            raise ValueError(f'"{fn}" expected 2 arguments of the form [values, sequence] '
                             f"but got {len(args)} arguments instead")
    elif kind == "contains":
        if not args or not isinstance(args, list):
            raise TypeError(f'Incorrect arguments to "{fn}" should be: "{fn}" : '
                            '[ "value1", [ "value1", "value2"]]')
        if len(args) != 2:
            raise ValueError(f'Arguments to "{fn}" must be of the form: '
                             "[value1, [value1, value2]]")
    elif kind == "Fn::Select":
        if not _unpacks(args, 2, is_fn):
            raise ValueError(f'Arguments to "{fn}" must be of the form [index, collection]')
    elif kind == "Fn::Split":
        message = f'Incorrect arguments to "{fn}" should be: "{fn}" : [ ",", "str1,str2"]]'
        if isinstance(args, str) or is_map(args):
            raise TypeError(message)
        if not _unpacks(args, 2, is_fn):
            raise ValueError(message)
    elif kind == "Fn::FindInMap":
        if not _unpacks(args, 3, is_fn):
            count = len(args) if isinstance(args, (list, tuple)) else 0
            raise _KeyText(f"not enough values to unpack (expected 3, got {count})"
                           if count < 3 else "too many values to unpack (expected 3)")
    elif kind == "Fn::MemberListToMap":
        if not _unpacks(args, 3, is_fn):
            raise TypeError(f'Wrong Arguments try: "{_MEMBER_LIST_EXAMPLE}"')
        if not isinstance(args[0], str):
            raise TypeError(f"{fn} Key Name must be a string")
        if not isinstance(args[1], str):
            raise TypeError(f"{fn} Value Name must be a string")


class _Validator:
    """Both passes over one template (see the module docstring)."""

    def __init__(self, template: Template, evaluate: Evaluate | None,
                 has_attribute: Callable[[str, str], bool | None] | None):
        self.template = template
        self.version = template.version
        self.evaluate = evaluate
        self.has_attribute = has_attribute
        self.resources = set(template.resources)
        key = self.version.key_of("condition")
        sections = self.version.section("resources"), self.version.section("outputs")
        if evaluate is None:
            self.enabled, self.outputs = self.resources, set(template.outputs)
        else:  # conditions known: what they leave out is not checked (Heat skips it)
            self.enabled = {n for n, d in template.resources.items()
                            if self._on(d.condition, [sections[0], n, key])}
            self.outputs = {n for n, o in template.outputs.items()
                            if self._on(o.condition, [sections[1], n, key])}

    def _on(self, condition: Any, where: list) -> bool:
        if condition is None:
            return True
        try:
            return self.evaluate(condition)
        except ValueError as exc:
            raise StackValidationFailed(str(exc), where) from None

    # ------------------------------------------------------------ pass 1: shapes
    def parse(self, snippet: Any, path: str, condition: bool = False) -> None:
        table = self.version.table(condition)
        call = call_of(snippet, table)
        if call is not None:
            fn, kind, args = call
            here = f"{path}.{fn}"
            if kind in _IFS:
                self._parse_if(fn, kind, args, here)
                return
            self.parse(args, here, condition)
            try:
                check_call(kind, fn, args, self.version, condition)
            except (ValueError, TypeError, KeyError) as exc:
                raise StackValidationFailed(str(exc), here) from None
        elif isinstance(snippet, Mapping):
            for key, item in snippet.items():
                self.parse(item, f"{path}.{key}", condition)
        elif isinstance(snippet, list | tuple):
            for i, item in enumerate(snippet):
                self.parse(item, f"{path}[{i}]", condition)

    def _parse_if(self, fn: str, kind: str, args: Any, here: str) -> None:
        try:
            check_call(kind, fn, args, self.version)
            self.parse(args[0], fn, condition=True)  # Heat's path here is the bare name
            branches = self._branches(args)
        except (ValueError, TypeError, KeyError) as exc:
            raise StackValidationFailed(str(exc), here) from None
        for branch in branches:
            self.parse(branch, here)

    def _branches(self, args: list) -> list:
        """The branches of an ``if`` that count: the chosen one when the condition can
        be evaluated, else both. A condition name must exist."""
        condition = args[0]
        if condition is not None and (isinstance(condition, str)
                                      or not isinstance(condition, (bool, Mapping))):
            if not (isinstance(condition, str) and condition in self.template.conditions):
                raise ValueError(f'Invalid condition "{condition}"')
        branches = list(args[1:])
        if self.evaluate is None:
            return branches
        return branches[:1] if self.evaluate(condition) else branches[1:]

    # ------------------------------------------------------------ pass 2: meaning
    def validate(self, snippet: Any, path: list, condition: bool = False) -> None:
        call = call_of(snippet, self.version.table(condition))
        if call is not None:
            fn, kind, args = call
            try:
                self._validate_call(fn, kind, args, condition)
            except (api_errors.ApiError, ValueError, TypeError, KeyError) as exc:
                raise StackValidationFailed(str(exc), [*path, fn]) from None
        elif isinstance(snippet, Mapping):
            for key, item in snippet.items():
                self.validate(item, [*path, key], condition)
        elif isinstance(snippet, list | tuple):
            base, parent = path[:-1], (str(path[-1]) if path else "")
            for i, item in enumerate(snippet):
                self.validate(item, [*base, f"{parent}[{i}]"], condition)

    def _validate_call(self, fn: str, kind: str, args: Any, condition: bool = False) -> None:
        if kind in _IFS:
            for branch in self._branches(args):
                self.validate(branch, [])
            return
        self.validate(args, [], condition)
        if kind == REMOVED:
            raise InvalidTemplateVersion(
                f"The function {fn} is not supported in this version of HOT.")
        if kind in _GET_ATTRS:
            self._check_get_attr(args)
        elif kind in ("repeat", "repeat_with_map", "repeat_nested"):
            for_each = args["for_each"]
            if not self._is_fn(for_each) and not isinstance(for_each, Mapping):
                raise TypeError(f'The "for_each" argument to "{fn}" must contain a map')
        elif kind == "yaql":
            if not self._is_fn(args["expression"]):
                intrinsics.yaql_parse(fn, args["expression"])
        elif kind == "make_url":
            if not isinstance(args, Mapping) or self._is_fn(args):
                raise TypeError(f'The arguments to "{fn}" must be a map')
            invalid = [k for k in args if k not in intrinsics.URL_KEYS]
            if invalid:
                raise ValueError(f'Invalid arguments to "{fn}": {", ".join(invalid)}')
            intrinsics.check_url_args(fn, args, self._is_fn)

    def _is_fn(self, value: Any) -> bool:
        return call_of(value, self.version.functions) is not None

    def _check_get_attr(self, args: Any) -> None:
        name = args[0] if isinstance(args, (list, tuple)) else args
        if not isinstance(name, str):
            return  # a computed name: known only when resolved
        if name not in self.enabled:
            raise InvalidTemplateReference(name, "unknown")
        attr = args[1] if isinstance(args, (list, tuple)) and len(args) > 1 else None
        if isinstance(attr, str) and self.has_attribute is not None \
                and self.has_attribute(name, attr) is False:
            raise InvalidTemplateAttribute(name, attr)

    # ------------------------------------------------------------ references
    def references(self, name: str) -> None:
        defn = self.template.resources[name]
        for section, snippet in (("Properties", defn.properties),
                                 ("Metadata", defn.metadata)):
            for target, where in references.references(
                    snippet, self.version.functions, self.resources, self.evaluate,
                    f"{name}.{section}"):
                if target not in self.resources:
                    raise InvalidTemplateReference(target, where)
        for target in defn.depends_on:
            if target not in self.resources:
                raise InvalidTemplateReference(target, name)
        if defn.external_id is not None and defn.depends_on:
            raise StackValidationFailed(
                f"Invalid dependency with external {defn.type} resource: {defn.external_id}")

    # ------------------------------------------------------------ the template
    def run(self) -> None:
        t, v = self.template, self.version
        res_section, out_section = v.section("resources"), v.section("outputs")
        cond_section = v.section("conditions")
        for name, definition in t.conditions.items():
            self.parse(definition, f"{cond_section}.{name}", condition=True)
            if not isinstance(definition, bool) and \
                    call_of(definition, v.table(True)) is None:
                raise StackValidationFailed(
                    f'The definition of condition "{name}" is invalid: {definition}',
                    error="Condition validation error")
            self.validate(definition, [], condition=True)  # Heat gives no path here
        fields = ("properties", "metadata", "deletion_policy", "update_policy", "external_id")
        for name, defn in t.resources.items():
            for field in fields:
                self.parse(getattr(defn, field), f"{res_section}.{name}.{v.key_of(field)}")
            self._check_condition_field(defn.condition, [res_section, name])
        for name, output in t.outputs.items():
            self._check_condition_field(output.condition, [out_section, name])
            self.parse(output.value, f"{out_section}.{name}.{v.key_of('value')}")
        enabled = self.enabled
        for name in t.resources:
            if name in enabled:
                self.references(name)
        for name, defn in t.resources.items():
            if name not in enabled:
                continue
            for field in fields:
                self.validate(getattr(defn, field), [res_section, name, v.key_of(field)])
        for name, output in t.outputs.items():
            if name not in self.outputs:
                continue
            self.validate(output.value, [out_section, name, v.key_of("value")])

    def _check_condition_field(self, condition: Any, where: list) -> None:
        if condition is None:
            return
        key = self.version.key_of("condition")
        self.parse(condition, ".".join([*where, key]), condition=True)
        if isinstance(condition, str) and condition not in self.template.conditions:
            raise StackValidationFailed(f'Invalid condition "{condition}"', [*where, key])


def validate_template_functions(template: Template, *, evaluate: Evaluate | None = None,
                                has_attribute: Callable[[str, str], bool | None] | None = None
                                ) -> None:
    """Both passes over a parsed template. With ``evaluate`` (parameter values known)
    conditions count: ``if`` checks only its chosen branch and disabled resources and
    outputs are skipped. ``has_attribute(resource, attr)`` (False: the type has no
    such attribute) adds Heat's attribute check."""
    _Validator(template, evaluate, has_attribute).run()
