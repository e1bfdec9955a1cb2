"""Parse a template (YAML or JSON text, or a dict) into a :class:`Template`.

The checks and their wording follow Heat: the version, the top-level sections, each
resource's keys and field types, the outputs, the parameter schemas, the conditions
section, and (unless ``check_functions=False``) the arguments of every intrinsic
function and the resources they name (:func:`functions.validate_functions`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

from onestack.orchestration.template import functions, versions
from onestack.orchestration.template.errors import (
    InvalidTemplateSection,
    InvalidTemplateVersion,
    StackValidationFailed,
    TemplateError,
    TemplateTooLarge,
)
from onestack.orchestration.template.model import OutputDefinition, ResourceDefinition, Template
from onestack.orchestration.template.parameters import ParameterSchema
from onestack.orchestration.template.versions import TemplateVersion

__all__ = ["MAX_RESOURCES", "MAX_TEMPLATE_SIZE", "OutputDefinition", "ResourceDefinition",
           "Template", "all_param_schemata", "find_version", "load", "parse"]

MAX_TEMPLATE_SIZE = 524288  # Heat's max_template_size default (bytes)
MAX_RESOURCES = 1000  # Heat's max_resources_per_stack default

_YAML_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_YAML_BASE):  # type: ignore[misc,valid-type]
    """Safe YAML that keeps dates as text, so ``heat_template_version: 2018-08-31``
    unquoted is the string Heat sees."""


def _as_text(loader, node):
    return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _as_text)
_Loader.add_constructor("tag:yaml.org,2002:str", _as_text)


def load(text: str | bytes, kind: str = "Template", max_size: int = MAX_TEMPLATE_SIZE,
         require_version: bool | None = None) -> dict[str, Any]:
    """YAML or JSON text -> dict, as Heat's template_format.parse: errors read
    ``"<kind> not in valid format: ..."``; over ``max_size`` bytes: TemplateTooLarge.
    A template must name its version (``require_version`` defaults to kind ==
    "Template"); for an environment prefer ``environment.load_environment``."""
    if require_version is None:
        require_version = kind == "Template"
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if len(text) > max_size:
        raise TemplateTooLarge(len(text), max_size)
    try:
        data = json.loads(text)
    except ValueError:
        try:
            data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
        except yaml.YAMLError:
            try:  # the pure-Python loader says where the error is
                data = yaml.load(text, Loader=yaml.SafeLoader)  # noqa: S506
            except yaml.YAMLError as exc:
                raise TemplateError(f"{kind} not in valid format: Error parsing template "
                                    f"[root stack] {exc}") from None
        if data is None:
            data = {}
    if not isinstance(data, dict):
        raise TemplateError(f"{kind} not in valid format: The template is not a JSON object "
                            "or YAML mapping.")
    if require_version and not any(k in data for k in versions.VERSION_KEYS):
        raise TemplateError(f"{kind} not in valid format: Template format version not found.")
    return data


def find_version(data: dict[str, Any]) -> TemplateVersion:
    """The version a template declares, with Heat's InvalidTemplateVersion texts."""
    present = [k for k in versions.VERSION_KEYS if isinstance(data.get(k), str)]
    if len(present) > 1:
        raise InvalidTemplateVersion(f"Ambiguous versions ({', '.join(present)})")
    if not present:
        raise InvalidTemplateVersion("Template version was not provided")
    key = present[0]
    try:
        return versions.VERSIONS[f"{key}.{data[key]}"]
    except KeyError:
        available = sorted(name.split(".", 1)[1] for name in versions.VERSIONS
                           if name.split(".", 1)[0] == key)
        which = "should be one of" if len(available) > 1 else "should be"
        raise InvalidTemplateVersion(f'"{key}: {data[key]}". "{key}" {which}: '
                                     f"{', '.join(available)}") from None


def parse(template: str | bytes | dict, max_size: int = MAX_TEMPLATE_SIZE,
          max_resources: int = MAX_RESOURCES, check_functions: bool = True) -> Template:
    """Parse and check a template; raises the errors of ``errors`` (all 4xx)."""
    if isinstance(template, dict):
        if len(str(template)) > max_size:  # Heat measures a dict body by its str()
            raise TemplateTooLarge(len(str(template)), max_size)
        data = template
    else:
        data = load(template, max_size=max_size)
    version = find_version(data)
    for key in data:
        if key not in version.sections:
            raise InvalidTemplateSection(key)

    def section(hot_name: str, default: Any = None) -> Any:
        value = data.get(version.section(hot_name))
        return default if value is None else value

    resources_raw = section("resources", {})
    _check_resources(version, resources_raw)
    if len(resources_raw) > max_resources:
        raise TemplateError("Request limit exceeded: Maximum resources per stack exceeded.")
    outputs_raw = section("outputs", {})
    conditions = section("conditions", {}) if version.has_conditions else {}
    if not isinstance(conditions, dict):
        raise StackValidationFailed("Condition definitions must be a map. Found a "
                                    f"{type(conditions).__name__} instead",
                                    error="Conditions validation error")
    params_raw = section("parameters", {})
    if not isinstance(params_raw, dict):
        raise StackValidationFailed(f"The {version.section('parameters')} section must be a "
                                    f"map. Found a [{type(params_raw)}] instead")
    tmpl = Template(
        version=version,
        description=section("description") or "No description",
        parameter_groups=section("parameter_groups", []) if version.is_hot else [],
        parameters={name: ParameterSchema.from_dict(name, schema, version)
                    for name, schema in params_raw.items()},
        resources={name: _resource(version, name, body)
                   for name, body in resources_raw.items()},
        outputs=_outputs(version, outputs_raw),
        conditions=conditions,
        mappings=section("mappings", {}) if not version.is_hot else {},
        raw=data,
    )
    duplicates = set(tmpl.parameters) & set(tmpl.resources)
    if duplicates:
        raise StackValidationFailed(f"Duplicate names {duplicates}")
    if check_functions:
        functions.validate_functions(tmpl)
    return tmpl


def _check_resources(version: TemplateVersion, resources: Any) -> None:
    """The structure of the resources section, with HOT's and CFN's own texts."""
    if not isinstance(resources, dict):
        # what Heat's code trips over (it reads .items() of whatever is there)
        raise StackValidationFailed(
            f"'{type(resources).__name__}' object has no attribute "
            f"'{'items' if version.is_hot else 'values'}'")
    type_key = version.key_of("type")
    for _name, body in sorted(resources.items(), key=lambda item: str(item[0])):
        if version.is_hot:
            message = "Each resource must contain a type key."
            if not body:
                raise StackValidationFailed(message)
            if not isinstance(body, dict):
                raise StackValidationFailed('"resources" must contain a map of resource '
                                            f"maps. Found a [{type(body)}] instead")
            for key in body:
                if key not in version.resource_keys:
                    raise StackValidationFailed(f'"{key}" is not a valid keyword inside a '
                                                "resource definition")
            if type_key not in body:
                raise StackValidationFailed(message)
        elif not isinstance(body, dict):
            raise StackValidationFailed(f"Resources must contain Resource. Found a "
                                        f"[{type(body)}] instead")
    for body in resources.values():
        if not body or not body.get(type_key):
            raise StackValidationFailed("Each Resource must contain a Type key.")


def _field(version, name, body, hot_key, types, typename):
    key = version.key_of(hot_key)
    if key not in body:
        return None
    value = body[key]
    table = version.table(condition=hot_key == "condition")
    if not isinstance(value, types) and versions.call_of(value, table) is None:
        raise StackValidationFailed(f"Resource {name} {key} type must be {typename}")
    return value


def _resource(version: TemplateVersion, name: str, body: dict) -> ResourceDefinition:
    rtype = body[version.key_of("type")]
    if not isinstance(rtype, str) or functions.is_function(rtype, version):
        raise StackValidationFailed(f"Resource {name} {version.key_of('type')} type must be "
                                    "string")
    properties = _field(version, name, body, "properties", dict, "object")
    metadata = _field(version, name, body, "metadata", dict, "object")
    update_policy = _field(version, name, body, "update_policy", dict, "object")
    depends_key = version.key_of("depends_on")
    depends = body.get(depends_key)
    if depends is not None and not isinstance(depends, (str, list)):
        raise StackValidationFailed(f"Resource {name} {depends_key} type must be list or "
                                    "string")
    if isinstance(depends, str):
        depends = [depends]
    for dep in depends or []:
        if not isinstance(dep, str):
            raise StackValidationFailed(f"Resource {name} {depends_key} must be a list of "
                                        "strings")
    policy = _field(version, name, body, "deletion_policy", str, "string")
    if isinstance(policy, str):
        if policy not in version.deletion_policies:
            raise StackValidationFailed(f'Invalid deletion policy "{policy}"')
        policy = policy.capitalize()
    description = body.get(version.key_of("description"))
    if description is not None and not isinstance(description, str):
        raise StackValidationFailed(f"Resource {name} {version.key_of('description')} type "
                                    "must be string")
    external_id = condition = None
    if "external_id" in version.resource_keys:
        external_id = _field(version, name, body, "external_id", str, "string")
    if version.has_conditions:
        condition = _field(version, name, body, "condition", (str, bool),
                           "string_or_boolean" if version.is_hot else "string or boolean")
    return ResourceDefinition(
        name=name, type=rtype, properties={} if properties is None else properties,
        metadata={} if metadata is None else metadata, depends_on=list(depends or []),
        deletion_policy=policy or "Delete",
        update_policy={} if update_policy is None else update_policy,
        description=description or "", condition=condition, external_id=external_id)


def _outputs(version: TemplateVersion, outputs: Any) -> dict[str, OutputDefinition]:
    if not isinstance(outputs, dict):
        raise StackValidationFailed(f'"{version.section("outputs")}" must contain a map of '
                                    f"output maps. Found a [{type(outputs)}] instead")
    value_key = version.key_of("value")
    result = {}
    for name, body in outputs.items():
        where = [version.section("outputs"), name]
        if not isinstance(body, dict):
            raise StackValidationFailed("Output definitions must be a map. Found a "
                                        f"{type(body).__name__} instead", where,
                                        "Output validation error")
        if value_key not in body:
            raise StackValidationFailed(f"Each output definition must contain a {value_key} "
                                        "key.", where, "Output validation error")
        condition = body.get(version.key_of("condition")) if version.has_conditions else None
        result[name] = OutputDefinition(name, body[value_key],
                                        body.get(version.key_of("description")), condition)
    return result


def all_param_schemata(template: Template, files: Mapping[str, Any] | None = None
                       ) -> dict[str, ParameterSchema]:
    """The parameter schemas of the template and of every template in ``files`` (the
    nested ones), the template's own winning: what Heat merges environment files and
    masks hidden values by. Files that are not templates are skipped."""
    schemata: dict[str, ParameterSchema] = {}
    for content in (files or {}).values():
        try:
            nested = parse(content, check_functions=False)
        except TemplateError:
            continue
        schemata.update(nested.parameters)
    schemata.update(template.parameters)
    return schemata
