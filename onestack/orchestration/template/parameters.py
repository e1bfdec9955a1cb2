"""Parameter schemas, constraints and values, as Heat checks and shows them.

A schema is read from the template (``ParameterSchema.from_dict``), with the keys its
version allows. :class:`Parameters` holds a stack's values: it coerces them to the
schema's type (numbers from strings, lists from comma-separated strings, JSON from
text), validates them against the constraints, answers the pseudo parameters
(``OS::stack_id`` ...) and shows them with hidden ones masked.
"""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from onestack.orchestration.template.errors import (
    ImmutableParameterModified,
    InvalidSchemaError,
    StackValidationFailed,
    UnknownUserParameter,
    UserParameterMissing,
)
from onestack.orchestration.template.versions import TemplateVersion


class TemplateLike(Protocol):
    """What parameters need of a parsed template: model.Template (which imports this
    module, so it is named here by its shape)."""

    version: TemplateVersion
    description: str
    parameters: Mapping[str, ParameterSchema]
    parameter_groups: Any

HIDDEN_VALUE = "******"

# custom(constraint_name, value) -> error text, or None when the value is fine
CustomCheck = Callable[[str, Any], "str | None"]

STRING, NUMBER, LIST, JSON, BOOLEAN = (
    "string", "number", "comma_delimited_list", "json", "boolean")
_CFN_TYPES = {"String": STRING, "Number": NUMBER, "CommaDelimitedList": LIST,
              "Json": JSON, "Boolean": BOOLEAN}
# the type names of the validate view (Heat's rpc api names)
VIEW_TYPES = {STRING: "String", NUMBER: "Number", LIST: "CommaDelimitedList",
              JSON: "Json", BOOLEAN: "Boolean"}

_HOT_KEYS = ("type", "description", "default", "schema", "constraints", "hidden", "label",
             "immutable")
_HOT_KEYS_TAGS = _HOT_KEYS + ("tags",)
_CFN_KEYS = ("Type", "Default", "NoEcho", "AllowedValues", "AllowedPattern", "MaxLength",
             "MinLength", "MaxValue", "MinValue", "Description", "ConstraintDescription",
             "Label")
_CONSTRAINT_KEYS = ("description", "length", "range", "modulo", "allowed_values",
                    "allowed_pattern", "custom_constraint")

# which parameter types each constraint applies to
_VALID_TYPES = {
    "range": (NUMBER,), "modulo": (NUMBER,), "length": (STRING, LIST, JSON),
    "allowed_values": (STRING, NUMBER, BOOLEAN, LIST), "allowed_pattern": (STRING,),
    "custom_constraint": (STRING, NUMBER, BOOLEAN, LIST),
}
_CLASS_NAMES = {"range": "Range", "modulo": "Modulo", "length": "Length",
                "allowed_values": "AllowedValues", "allowed_pattern": "AllowedPattern",
                "custom_constraint": "CustomConstraint"}

_TRUE = ("1", "t", "true", "on", "y", "yes")
_FALSE = ("0", "f", "false", "off", "n", "no")


def to_bool(value: Any) -> bool:
    """oslo's strict bool_from_string, with its error text."""
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    acceptable = ", ".join(f"'{s}'" for s in sorted(_TRUE + _FALSE))
    raise ValueError(f"Unrecognized value '{value}', acceptable values are: {acceptable}")


def str_to_num(value: Any) -> int | float:
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        return value  # type: ignore[return-value]
    try:
        return int(value)
    except ValueError:
        return float(value)


def _get_num(key: str, data: Mapping) -> Any:
    value = data.get(key)
    return None if value is None else str_to_num(value)


def _check_dict(data: Any, allowed: Iterable[str], entity: str) -> None:
    if not isinstance(data, dict):
        raise InvalidSchemaError(f"Invalid {entity}, expected a mapping")
    for key in data:
        if key not in allowed:
            raise InvalidSchemaError(f"Invalid key '{key}' for {entity}")


@dataclass
class Constraint:
    """One constraint: ``kind`` is range | length | modulo | allowed_values |
    allowed_pattern | custom_constraint; ``value`` is {"min","max"} | {"step","offset"}
    | [values] | pattern | constraint name."""

    kind: str
    value: Any
    description: str | None = None

    @classmethod
    def make(cls, kind: str, value: Any, description: str | None = None) -> Constraint:
        """Build and check a constraint's own definition (Heat's schema errors)."""
        if kind in ("range", "length"):
            low, high = value.get("min"), value.get("max")
            if low is None and high is None:
                name = "range" if kind == "range" else "length"
                raise InvalidSchemaError(f"A {name} constraint must have a min value and/or "
                                         "a max value specified.")
            for bound in (low, high):
                if not isinstance(bound, (int, float, type(None))) or isinstance(bound, bool):
                    raise InvalidSchemaError("min/max must be numeric")
                if kind == "length" and not isinstance(bound, (int, type(None))):
                    raise InvalidSchemaError("min/max length must be integral")
            value = {k: v for k, v in (("min", low), ("max", high)) if v is not None}
        elif kind == "modulo":
            step, offset = value.get("step"), value.get("offset")
            if step is None or offset is None:
                raise InvalidSchemaError("A modulo constraint must have a step value and an "
                                         "offset value specified.")
            for number in (step, offset):
                if not isinstance(number, (int, float)):
                    raise InvalidSchemaError("step/offset must be numeric")
                if int(number) != number:
                    raise InvalidSchemaError("step/offset must be integer")
            step, offset = int(step), int(offset)
            if step == 0:
                raise InvalidSchemaError("step cannot be 0.")
            if abs(offset) >= abs(step):
                raise InvalidSchemaError("offset must be smaller (by absolute value) than "
                                         "step.")
            if step * offset < 0:
                raise InvalidSchemaError("step and offset must be both positive or both "
                                         "negative.")
            value = {"step": value.get("step"), "offset": value.get("offset")}
        elif kind == "allowed_values":
            if not isinstance(value, (list, tuple)):
                raise InvalidSchemaError("AllowedValues must be a list")
            value = list(value)
        elif kind == "allowed_pattern":
            if not isinstance(value, str):
                raise InvalidSchemaError("AllowedPattern must be a string")
            try:
                re.compile(value)
            except re.error as exc:
                raise InvalidSchemaError(f"Invalid allowed_pattern {value}: {exc}") from None
        return cls(kind, value, description)

    def to_dict(self) -> dict[str, Any]:
        """The HOT form (``{"range": {"min": 1}, "description": ...}``)."""
        out: dict[str, Any] = {self.kind: self.value}
        if self.description is not None:
            out["description"] = self.description
        return out

    def check(self, value: Any, schema: ParameterSchema,
              custom: CustomCheck | None = None) -> None:
        """Raise ValueError with Heat's text when ``value`` breaks the constraint."""
        if self._valid(value, schema, custom):
            return
        raise ValueError(self.description or self._error(value, custom))

    def _valid(self, value, schema, custom) -> bool:
        if self.kind in ("range", "length"):
            number = len(value) if self.kind == "length" else str_to_num(value)
            low, high = self.value.get("min"), self.value.get("max")
            return not ((low is not None and number < low) or
                        (high is not None and number > high))
        if self.kind == "modulo":
            return str_to_num(value) % self.value["step"] == self.value["offset"]
        if self.kind == "allowed_values":
            if isinstance(value, list):
                return all(v in self.value for v in value)
            allowed = [schema.to_type(v) for v in self.value]
            return schema.to_type(value) in allowed
        if self.kind == "allowed_pattern":
            match = re.match(self.value, value)
            return match is not None and match.end() == len(value)
        if self.kind == "custom_constraint":
            self._custom_error = custom(self.value, value) if custom else None
            return self._custom_error is None
        return True

    def _error(self, value, custom) -> str:
        if self.kind == "range":
            return (f"{value} is out of range (min: {self.value.get('min')}, "
                    f"max: {self.value.get('max')})")
        if self.kind == "length":
            return (f"length ({len(value)}) is out of range (min: {self.value.get('min')}, "
                    f"max: {self.value.get('max')})")
        if self.kind == "modulo":
            return (f"{value} is not a multiple of {self.value['step']} with an offset of "
                    f"{self.value['offset']}")
        if self.kind == "allowed_values":
            allowed = ", ".join(json.dumps(a) for a in self.value)
            return f"{json.dumps(value)} is not an allowed value [{allowed}]"
        if self.kind == "allowed_pattern":
            return f'"{value}" does not match pattern "{self.value}"'
        return self._custom_error or f'"{value}" does not validate {self.value}'


def _hot_constraint(data: Any, version: TemplateVersion | None) -> Constraint:
    _check_dict(data, _CONSTRAINT_KEYS, "parameter constraints")
    desc = data.get("description")
    modulo_ok = version is not None and version.param_schema != "hot"
    for kind in ("range", "length"):
        if kind in data:
            _check_dict(data[kind], ("min", "max"), f"{kind} constraint")
            return Constraint.make(kind, {"min": _get_num("min", data[kind]),
                                          "max": _get_num("max", data[kind])}, desc)
    if "modulo" in data and modulo_ok:
        _check_dict(data["modulo"], ("step", "offset"), "modulo constraint")
        return Constraint.make("modulo", {"step": _get_num("step", data["modulo"]),
                                          "offset": _get_num("offset", data["modulo"])}, desc)
    for kind in ("allowed_values", "allowed_pattern", "custom_constraint"):
        if kind in data:
            return Constraint.make(kind, data[kind], desc)
    raise InvalidSchemaError("No constraint expressed")


@dataclass
class ParameterSchema:
    name: str
    type: str  # string | number | comma_delimited_list | json | boolean
    default: Any = None  # None: no default (required)
    hidden: bool = False
    label: str | None = None
    description: str | None = None
    immutable: bool = False
    tags: list[str] | None = None
    constraints: list[Constraint] = field(default_factory=list)
    type_name: str | None = None  # the type as written (CFN's "Json"), for messages

    @property
    def has_default(self) -> bool:
        return self.default is not None

    @classmethod
    def from_dict(cls, name: str, data: Any, version: TemplateVersion | None = None
                  ) -> ParameterSchema:
        """Read one parameter of a template (HOT or CFN keys by ``version``)."""
        if version is not None and not version.is_hot:
            return cls._from_cfn(name, data)
        keys = _HOT_KEYS_TAGS if version is None or version.param_schema == "hot20180302" \
            else _HOT_KEYS
        entity = f"parameter ({name})"
        _check_dict(data, keys, entity)
        if "type" not in data:
            raise InvalidSchemaError(f"Missing parameter type for parameter: {name}")
        if not isinstance(data.get("tags", []), list):
            raise InvalidSchemaError(f"Tags property should be a list for parameter: {name}")
        if data["type"] not in VIEW_TYPES:
            raise InvalidSchemaError(f"Invalid type ({data['type']})")
        raw = data.get("constraints")
        if raw is not None and not isinstance(raw, list):
            raise InvalidSchemaError(f"Invalid parameter constraints for parameter {name}, "
                                     "expected a list")
        return cls(name, data["type"], default=data.get("default"),
                   hidden=data.get("hidden", False), label=data.get("label"),
                   description=data.get("description"),
                   immutable=data.get("immutable", False), tags=data.get("tags"),
                   constraints=[_hot_constraint(c, version) for c in raw or []])

    @classmethod
    def _from_cfn(cls, name: str, data: Any) -> ParameterSchema:
        _check_dict(data, _CFN_KEYS, f"parameter ({name})")
        if "Type" not in data:
            raise InvalidSchemaError(f"Missing parameter type for parameter: {name}")
        if data["Type"] not in _CFN_TYPES:
            raise InvalidSchemaError(f"Invalid type ({data['Type']})")
        desc = data.get("ConstraintDescription")
        constraints = []
        if "MinValue" in data or "MaxValue" in data:
            constraints.append(Constraint.make("range", {"min": _get_num("MinValue", data),
                                                         "max": _get_num("MaxValue", data)},
                                               desc))
        if "MinLength" in data or "MaxLength" in data:
            constraints.append(Constraint.make("length", {"min": _get_num("MinLength", data),
                                                          "max": _get_num("MaxLength", data)},
                                               desc))
        if "AllowedValues" in data:
            constraints.append(Constraint.make("allowed_values", data["AllowedValues"], desc))
        if "AllowedPattern" in data:
            constraints.append(Constraint.make("allowed_pattern", data["AllowedPattern"], desc))
        return cls(name, _CFN_TYPES[data["Type"]], default=data.get("Default"),
                   hidden=str(data.get("NoEcho", "false")).lower() == "true",
                   label=data.get("Label"), description=data.get("Description"),
                   constraints=constraints, type_name=data["Type"])

    # ------------------------------------------------------------- values
    def to_type(self, value: Any) -> Any:
        """A value in this schema's type, for comparisons (Heat's to_schema_type)."""
        try:
            if self.type == NUMBER:
                return str_to_num(value)
            if self.type == STRING:
                return str(value)
            if self.type == BOOLEAN:
                return to_bool(value)
        except ValueError:
            raise ValueError(f'Value "{value}" is invalid for data type '
                             f'"{self.type_name or self.type}".') from None
        return value

    def parse(self, value: Any) -> Any:
        """A given (or default) value as the functions see it; ValueError/TypeError
        with Heat's text when it is not of the type."""
        if self.type == STRING:
            return str(value)
        if self.type == NUMBER:
            return str_to_num(value)
        if self.type == BOOLEAN:
            return to_bool(value)
        if self.type == LIST:
            if isinstance(value, list):
                return [str(x) for x in value]
            if not isinstance(value, str):
                raise ValueError("Value must be a comma-delimited list string: "
                                 f"'{type(value).__name__}' object has no attribute 'split'")
            return [] if value == "" else value.split(",")
        # json
        try:
            text = value if isinstance(value, str) else json.dumps(value)
            return json.loads(text) if text else value
        except (ValueError, TypeError) as err:
            raise ValueError(f"Value must be valid JSON: {err}") from None

    def check_value(self, value: Any, custom: CustomCheck | None = None) -> None:
        """Validate a value (raises StackValidationFailed with the bare reason)."""
        try:
            if self.type == NUMBER:
                str_to_num(value)
                checked = value
            elif self.type == BOOLEAN:
                to_bool(value)
                checked = value
            elif self.type in (LIST, JSON):
                checked = self.parse(value)
            else:
                checked = value
            for constraint in self.constraints:
                constraint.check(checked, self, custom)
        except (ValueError, TypeError) as exc:
            raise StackValidationFailed(str(exc)) from None

    def check_schema(self) -> None:
        """The constraints fit the type and the default meets them (custom ones aside)."""
        for constraint in self.constraints:
            if self.type not in _VALID_TYPES[constraint.kind]:
                raise InvalidSchemaError(f"{_CLASS_NAMES[constraint.kind]} constraint "
                                         f"invalid for {self.type_name or self.type}")
        if self.default is None:
            return
        default = self.default
        if self.type == LIST:
            if isinstance(default, list):
                default = [str(x) for x in default]
            elif isinstance(default, str):
                default = default.split(",")
            else:
                raise InvalidSchemaError("Default must be a comma-delimited list string: "
                                         f"'{type(default).__name__}' object has no "
                                         "attribute 'split'")
        try:
            for constraint in self.constraints:
                if constraint.kind != "custom_constraint":
                    constraint.check(default, self)
        except (ValueError, TypeError) as exc:
            raise InvalidSchemaError(f"Invalid default {self.default} ({exc})") from None

    def as_text(self, value: Any) -> str:
        """How stack show prints a (parsed) value."""
        if self.hidden:
            return HIDDEN_VALUE
        if self.type == LIST:
            return ",".join(value)
        if self.type == JSON:
            return json.dumps(value)
        return str(value)


class Parameters:
    """The parameter values of one stack: the template's schemas, the values given
    (the environment's ``parameters``) and ``parameter_defaults``, plus the pseudo
    parameters. ``validate=True`` checks them at once (``validate()`` later is the
    same); ``custom`` answers custom_constraint checks (skipped without it)."""

    def __init__(self, template: TemplateLike, values: Mapping[str, Any] | None = None,
                 param_defaults: Mapping[str, Any] | None = None, *, stack_name: str = "",
                 stack_id: str | None = None, project_id: str | None = None,
                 region: str | None = None, custom: CustomCheck | None = None,
                 validate: bool = True):
        self.template = template
        self.schemas: dict[str, ParameterSchema] = dict(template.parameters)
        self.given: dict[str, Any] = dict(values or {})
        self.defaults = {k: v for k, v in (param_defaults or {}).items()
                         if k in self.schemas}
        self.custom = custom
        self.pseudo = self._pseudo(template, stack_name, stack_id or "", project_id or "",
                                   region)
        if validate:
            self.validate()

    @staticmethod
    def _pseudo(template, name, stack_id, project_id, region) -> dict[str, str]:
        if template.version.is_hot:
            out = {"OS::stack_id": stack_id, "OS::project_id": project_id}
            if name:
                out["OS::stack_name"] = name
            return out
        arn = (f"arn:openstack:heat::{quote(project_id, '')}:stacks/{quote(name, '')}/"
               f"{quote(stack_id, '')}") if stack_id else "None"
        out = {"AWS::StackId": arn}
        if name:
            # Heat answers this fixed AWS region whatever the cloud's region
            out.update({"AWS::StackName": name, "AWS::Region": region or "ap-southeast-1"})
        return out

    # ------------------------------------------------------------- checks
    def validate(self, validate_values: bool = True) -> None:
        """Heat's order: unknown given names, then each parameter's schema and value."""
        for name in self.given:
            if name not in self.schemas:
                raise UnknownUserParameter(name)
        for name, schema in self.schemas.items():
            try:
                schema.check_schema()
                if not validate_values:
                    continue
                raw = self.raw_value(name)
                schema.check_value(raw, self.custom)
            except StackValidationFailed as exc:
                raise StackValidationFailed(f"Parameter '{name}' is invalid: {exc}") from None
            except InvalidSchemaError as exc:
                raise InvalidSchemaError(f"Parameter '{name}' is invalid: {exc}") from None

    def immutable_changes(self, new: Parameters) -> list[str]:
        """Names of immutable parameters (in the new template) whose value changes."""
        changed = []
        for name in sorted(set(self.schemas) & set(new.schemas)):
            if new.schemas[name].immutable and self.value(name) != new.value(name):
                changed.append(name)
        return changed

    def check_immutable(self, new: Parameters) -> None:
        changed = self.immutable_changes(new)
        if changed:
            raise ImmutableParameterModified(changed)

    # ------------------------------------------------------------- values
    def __contains__(self, name: str) -> bool:
        return name in self.schemas or name in self.pseudo

    def names(self) -> list[str]:
        return [*self.pseudo, *self.schemas]

    def has_value(self, name: str) -> bool:
        return (self.given.get(name) is not None or self.defaults.get(name) is not None
                or self.schemas[name].default is not None)

    def default(self, name: str) -> Any:
        if self.defaults.get(name) is not None:
            return self.defaults[name]
        return self.schemas[name].default

    def raw_value(self, name: str) -> Any:
        """The value as given (or the default); UserParameterMissing without one."""
        if self.given.get(name) is not None:
            return self.given[name]
        default = self.default(name)
        if default is None:
            raise UserParameterMissing(name)
        return default

    def value(self, name: str) -> Any:
        """What ``get_param`` gives: the value in its type (list, dict, number, bool)."""
        if name in self.pseudo:
            return self.pseudo[name]
        if name not in self.schemas:
            raise UserParameterMissing(name)
        schema = self.schemas[name]
        if schema.type in (LIST, JSON) and not self.has_value(name):
            raise UserParameterMissing(name)
        try:
            return schema.parse(self.raw_value(name))
        except (ValueError, TypeError) as exc:
            raise StackValidationFailed(f"Parameter '{name}' is invalid: {exc}") from None

    @property
    def values(self) -> dict[str, Any]:
        """Every template parameter that has a value, in its type."""
        return {n: self.value(n) for n in self.schemas if self.has_value(n)}

    def show(self) -> dict[str, str]:
        """The ``parameters`` map of stack show: pseudo ones first, every value as text,
        hidden ones as ``******``."""
        out = dict(self.pseudo)
        for name, schema in self.schemas.items():
            if self.has_value(name):
                out[name] = schema.as_text(self.value(name))
        return out


def validate_parameter_groups(template: TemplateLike) -> None:
    """Each grouped parameter exists and sits in one group only (Heat's wording)."""
    groups = template.parameter_groups
    if not groups:
        return
    error = "Parameter Groups error"
    if not isinstance(groups, list):
        raise StackValidationFailed("The parameter_groups should be a list.",
                                    ["parameter_groups"], error)
    seen: list[str] = []
    for group in groups:
        label = group.get("label", "") if isinstance(group, dict) else ""
        where = ["parameter_groups", label]
        params = group.get("parameters") if isinstance(group, dict) else None
        if params is None:
            raise StackValidationFailed("The parameters must be provided for each "
                                        "parameter group.", where, error)
        if not isinstance(params, list):
            raise StackValidationFailed("The parameters of parameter group should be a "
                                        "list.", where, error)
        for name in params:
            if name in seen:
                raise StackValidationFailed(f"The {name} parameter must be assigned to one "
                                            "parameter group only.", where, error)
            seen.append(name)
            if name not in template.parameters:
                raise StackValidationFailed(f"The grouped parameter {name} does not "
                                            "reference a valid parameter.", where, error)


def describe_parameter(schema: ParameterSchema, default: Any = None,
                       value: Any = None) -> dict[str, Any]:
    """One parameter as ``POST /validate`` shows it (``Type``, ``Default``, ...)."""
    out: dict[str, Any] = {
        "Type": VIEW_TYPES[schema.type],
        "Description": schema.description or "",
        "NoEcho": "true" if schema.hidden else "false",
        "Label": schema.label or schema.name,
    }
    if default is None:
        default = schema.default
    if default is not None:
        out["Default"] = default
    if value:
        out["Value"] = value
    if schema.tags:
        out["Tags"] = schema.tags
    descriptions = []
    for c in schema.constraints:
        if c.kind in ("length", "range", "modulo"):
            keys = {"length": ("MinLength", "MaxLength"), "range": ("MinValue", "MaxValue"),
                    "modulo": ("Step", "Offset")}[c.kind]
            first, second = ("step", "offset") if c.kind == "modulo" else ("min", "max")
            if c.value.get(first) is not None:
                out[keys[0]] = c.value[first]
            if c.value.get(second) is not None:
                out[keys[1]] = c.value[second]
        else:
            key = {"allowed_values": "AllowedValues", "allowed_pattern": "AllowedPattern",
                   "custom_constraint": "CustomConstraint"}[c.kind]
            out[key] = list(c.value) if c.kind == "allowed_values" else c.value
        if c.description:
            descriptions.append(c.description)
    if descriptions:
        out["ConstraintDescription"] = " ".join(descriptions)
    return out


def describe_parameters(template: TemplateLike, param_defaults: Mapping[str, Any] | None = None,
                        values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``POST /validate`` view of a template's parameters: ``{"Description",
    "Parameters", ["ParameterGroups"]}`` (the caller adds ``Environment``)."""
    param_defaults, values = param_defaults or {}, values or {}
    result: dict[str, Any] = {
        "Description": template.description,
        "Parameters": {name: describe_parameter(schema, param_defaults.get(name),
                                                values.get(name))
                       for name, schema in template.parameters.items()},
    }
    if template.parameter_groups:
        result["ParameterGroups"] = template.parameter_groups
    return result
