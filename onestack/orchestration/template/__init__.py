"""The Heat template language: pure data and functions, no I/O, no database, no HTTP.

Public API (stable names; import them from this package). Every error is an
``onestack.common.errors.ApiError`` (400 unless said) with ``heat_type``, the
``error.type`` of Heat's fault body.

Versions (``versions``)
    ``list_versions() -> list[dict]``  items of ``GET /template_versions``:
        ``{"version": "heat_template_version.2018-08-31", "type": "hot", "aliases":
        ["heat_template_version.rocky"]}``.
    ``list_functions(name, with_condition_func=False) -> list[dict]``  items of
        ``GET /template_versions/{name}/functions``: ``{"functions", "description"}``;
        ``NotFound`` (404) "Template with version X not found".
    ``get_version(name) -> TemplateVersion``  by ``key.date`` or ``key.alias``.

Parsing (``parse``)
    ``parse(template, max_size=MAX_TEMPLATE_SIZE, max_resources=MAX_RESOURCES,
        check_functions=True) -> Template``  YAML/JSON text or a dict; every structural
        check, then (``check_functions``) ``validate_functions`` without parameter values.
    ``load(text, kind="Template") -> dict``  text only ("Template not in valid format: ...").
    ``all_param_schemata(template, files) -> {name: ParameterSchema}``  with nested ones.
    ``Template``: ``version`` (TemplateVersion), ``description`` ("No description" if
        none), ``parameter_groups``, ``parameters`` {name: ParameterSchema},
        ``resources`` {name: ResourceDefinition}, ``outputs`` {name: OutputDefinition},
        ``conditions`` {name: snippet}, ``mappings`` (CFN), ``raw`` (the dict given).
    ``ResourceDefinition``: name, type, properties, metadata, depends_on, deletion_policy
        ("Delete"|"Retain"|"Snapshot" or a snippet), update_policy, description,
        condition, external_id. ``OutputDefinition``: name, value, description, condition.

Functions (``functions``)
    ``Resolver`` (protocol), ``BaseResolver(template, parameters, files)`` to subclass:
        answers param/get_file/condition; override resource_ref, resource_attr(name,
        attr, *path), resource_attrs, resource_facade, availability_zones.
        Also ``.resource_enabled(name)``, ``.enabled_resources()``.
    ``resolve(snippet, template, resolver, path=()) -> value``
    ``evaluate_condition(snippet, template, resolver, path=()) -> bool``
    ``evaluate_conditions(template, resolver) -> {name: bool}``
    ``resource_enabled(defn, template, resolver)``, ``output_enabled(name, template,
        resolver)``, ``deletion_policy(defn, template, resolver)``
    ``dependencies(snippet, template=None, resolver=None) -> set[str]``
    ``validate_functions(template, resolver=None, has_attribute=None)``
    ``select_path(value, path)``  Heat's attribute path selection (None if absent).
    ``error_text(exc) -> str``  the bare message (an output's ``output_error``).

Parameters (``parameters``)
    ``Parameters(template, values, param_defaults, *, stack_name, stack_id, project_id,
        custom=None, validate=True)``: ``.value(name)`` (typed; pseudo parameters
        OS::stack_id/OS::stack_name/OS::project_id, AWS::StackId/StackName/Region too),
        ``.values``, ``.show()`` (stack show map, hidden as ``HIDDEN_VALUE``),
        ``.validate(validate_values=True)``, ``.immutable_changes(new)``,
        ``.check_immutable(new)``.
    ``custom(constraint_name, value) -> str | None``: the error text of a custom
        constraint (None: valid); without it custom constraints are not checked.
    ``ParameterSchema``, ``Constraint``, ``validate_parameter_groups(template)``,
    ``describe_parameters(template, param_defaults, values)`` (``POST /validate`` view).

Environment (``environment``)
    ``parse_environment(text_or_dict, prefix=...) -> Environment``;
    ``load_environment(text_or_dict, prefix=...) -> dict`` (sections checked, as stored);
    ``Environment``: parameters, parameter_defaults, registry, event_sinks,
        encrypted_param_names; ``load(dict)``, ``effective_type(name, type, path=())``,
        ``hooks_for(name, path=())``, ``has_hook``, ``restricted_actions``,
        ``child(resource_name, parameters, resource_type)``, ``to_dict()`` (user view),
        ``to_stored_dict()``.
    ``merge_environments(environment_files, files, env_dict, param_schemata) -> dict``;
    ``load_environment_files(names, files, base=None, param_schemata=None)``;
    ``mask_hidden(env_dict, param_schemata) -> dict``  (``GET .../environment``).

Graph (``graph``)
    ``Graph.from_template(template, enabled=None, resolver=None)``, ``Graph(edges)``;
    ``create_order()``, ``delete_order()``, ``ready(done, started=())``,
    ``ready_to_delete(done, started=())``, ``requires(n)``, ``required_by(n)``,
    ``check()`` (``CircularDependency``: "Circular Dependency Found: {...}").
"""

from onestack.orchestration.template.environment import (
    Environment,
    load_environment,
    load_environment_files,
    mask_hidden,
    merge_environments,
    parse_environment,
)
from onestack.orchestration.template.errors import (
    CircularDependency,
    ImmutableParameterModified,
    InvalidEnvironment,
    InvalidSchemaError,
    InvalidTemplateAttribute,
    InvalidTemplateReference,
    InvalidTemplateSection,
    InvalidTemplateVersion,
    NotFound,
    StackValidationFailed,
    TemplateError,
    TemplateTooLarge,
    UnknownUserParameter,
    UserParameterMissing,
)
from onestack.orchestration.template.functions import (
    BaseResolver,
    ConditionResolver,
    Resolver,
    deletion_policy,
    dependencies,
    error_text,
    evaluate_condition,
    evaluate_conditions,
    output_enabled,
    resolve,
    resource_enabled,
    select_path,
    validate_functions,
)
from onestack.orchestration.template.graph import Graph
from onestack.orchestration.template.parameters import (
    HIDDEN_VALUE,
    Constraint,
    Parameters,
    ParameterSchema,
    describe_parameters,
    validate_parameter_groups,
)
from onestack.orchestration.template.parse import (
    MAX_RESOURCES,
    MAX_TEMPLATE_SIZE,
    OutputDefinition,
    ResourceDefinition,
    Template,
    all_param_schemata,
    load,
    parse,
)
from onestack.orchestration.template.versions import (
    TemplateVersion,
    get_version,
    list_functions,
    list_versions,
)

__all__ = [
    "BaseResolver", "CircularDependency", "ConditionResolver", "Constraint", "Environment", "Graph",
    "HIDDEN_VALUE", "ImmutableParameterModified", "InvalidEnvironment", "InvalidSchemaError",
    "InvalidTemplateAttribute", "InvalidTemplateReference", "InvalidTemplateSection",
    "InvalidTemplateVersion", "MAX_RESOURCES", "MAX_TEMPLATE_SIZE", "NotFound",
    "OutputDefinition", "ParameterSchema", "Parameters", "Resolver", "ResourceDefinition",
    "StackValidationFailed", "Template", "TemplateError", "TemplateTooLarge", "TemplateVersion",
    "UnknownUserParameter", "UserParameterMissing", "all_param_schemata", "deletion_policy",
    "dependencies", "describe_parameters", "error_text", "evaluate_condition",
    "evaluate_conditions", "get_version", "list_functions", "list_versions", "load",
    "load_environment", "load_environment_files", "mask_hidden", "merge_environments",
    "output_enabled", "parse", "parse_environment", "resolve", "resource_enabled",
    "select_path", "validate_functions", "validate_parameter_groups",
]
