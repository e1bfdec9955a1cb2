"""Environments: parameters, parameter_defaults, the resource registry, event sinks.

The resource registry maps types to other types or to templates
(``OS::Nova::Server: my_server.yaml``, globs ``OS::Networking::*: OS::Neutron::*``),
and under ``resources`` per resource name (globs allowed, ``*_server``) it holds
type mappings, breakpoint ``hooks`` and ``restricted_actions``. A nested stack sees
its parent's environment narrowed to the entries of the resource it belongs to
(:meth:`Environment.child`), as Heat does.
"""

from __future__ import annotations

import copy
import fnmatch
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from onestack.orchestration.template.errors import InvalidEnvironment, TemplateError
from onestack.orchestration.template.parameters import JSON, LIST, NUMBER, STRING
from onestack.orchestration.template.parse import _Loader

SECTIONS = ("parameters", "resource_registry", "parameter_defaults",
            "encrypted_param_names", "event_sinks", "parameter_merge_strategies")
HOOK_TYPES = ("pre-create", "pre-update", "pre-delete", "post-create", "post-update",
              "post-delete")
RESTRICTED_ACTIONS = ("update", "replace")
MERGE_STRATEGIES = ("overwrite", "merge", "deep_merge")
_TEMPLATE_SUFFIXES = (".yaml", ".template")


def is_template_type(name: str) -> bool:
    return isinstance(name, str) and name.endswith(_TEMPLATE_SUFFIXES)


def load_environment(env: str | bytes | Mapping | None,
                     prefix: str = "Environment not in valid format: ") -> dict[str, Any]:
    """Text or a dict -> the environment dict, its sections checked (Heat's
    environment_format); errors are InvalidEnvironment, ``prefix`` + Heat's text."""
    try:
        if env is None:
            return {}
        if isinstance(env, bytes):
            env = env.decode("utf-8", errors="replace")
        if isinstance(env, str):
            try:
                data = yaml.load(env, Loader=_Loader)  # noqa: S506 - a safe loader
            except yaml.YAMLError as exc:
                raise ValueError(str(exc)) from None
            data = {} if data is None else data
        else:
            data = env
        if not isinstance(data, dict):
            raise ValueError("The environment is not a valid YAML mapping data type.")
        for section in data:
            if section not in SECTIONS:
                raise ValueError(f'environment has wrong section "{section}"')
            if data[section] is None:
                raise ValueError(f'environment has empty section "{section}"')
        return dict(data)
    except ValueError as exc:
        raise InvalidEnvironment(f"{prefix}{exc}") from None


def _check_hooks(key: str, value: Any) -> bool:
    """Whether (key, value) is a hooks/restricted_actions entry; bad values refused."""
    if key == "hooks":
        allowed = HOOK_TYPES
        message = (f'Invalid hook type "{value}" for resource breakpoint, acceptable hook '
                   f"types are: {HOOK_TYPES}")
    elif key == "restricted_actions":
        allowed = RESTRICTED_ACTIONS
        message = (f'Invalid restricted_action type "{value}" for resource, acceptable '
                   f"restricted_action types are: {RESTRICTED_ACTIONS}")
    else:
        return False
    if isinstance(value, str):
        ok = value in allowed
    elif isinstance(value, Sequence):
        ok = all(v in allowed for v in value)
    else:
        ok = False
    if not ok:
        raise InvalidEnvironment(message)
    return True


class Environment:
    """One stack's environment. Build it with :func:`parse_environment` (or
    ``Environment(dict)``); ``load(dict)`` applies another on top, as Heat does."""

    def __init__(self, env: Mapping[str, Any] | None = None):
        env = dict(env or {})
        self.parameter_defaults: dict[str, Any] = dict(env.get("parameter_defaults", {}))
        self.registry: dict[str, Any] = {"resources": {}}
        self._load_registry([], env.get("resource_registry", {}))
        self.encrypted_param_names: list[str] = list(env.get("encrypted_param_names", []))
        if "parameters" in env:
            self.parameters: dict[str, Any] = dict(env["parameters"])
        else:  # the old flat form: every other key is a parameter
            self.parameters = {k: v for k, v in env.items() if k not in SECTIONS}
        self.event_sinks: list[dict] = list(env.get("event_sinks", []))

    # ------------------------------------------------------------ loading
    def load(self, env: Mapping[str, Any]) -> None:
        """Apply another environment on top of this one (registry entries merge by
        path, a null value removes one; parameters and defaults are updated)."""
        self._load_registry([], env.get("resource_registry", {}))
        self.parameters.update(env.get("parameters", {}))
        self.parameter_defaults.update(env.get("parameter_defaults", {}))
        self.event_sinks.extend(env.get("event_sinks", []))

    def _load_registry(self, path: list[str], registry: Any) -> None:
        if not isinstance(registry, Mapping):
            raise InvalidEnvironment("The resource_registry must be a map, found a "
                                     f"{type(registry).__name__} at "
                                     f"{'/'.join(path) or 'resource_registry'}")
        for key, value in registry.items():
            if value is None:
                self._remove([*path, key])
            elif _check_hooks(key, value):
                self._place([*path, key], value)
            elif isinstance(value, Mapping):
                self._load_registry([*path, key], value)
            else:
                # a template named as the type maps to itself
                self._place([*path, key], key if is_template_type(key) else value)

    def _node(self, path: list[str]) -> dict[str, Any]:
        node = self.registry
        for key in path:
            node = node.setdefault(key, {})
        return node

    def _place(self, path: list[str], value: Any) -> None:
        self._node(path[:-1])[path[-1]] = value

    def _remove(self, path: list[str]) -> None:
        node, name = self._node(path[:-1]), path[-1]
        if name.endswith("*"):
            for key in [k for k, v in node.items() if not isinstance(v, dict)
                        and k.startswith(name[:-1])]:
                del node[key]
        else:
            node.pop(name, None)

    # ------------------------------------------------------------ types
    def effective_type(self, resource_name: str | None, resource_type: str,
                       path: Iterable[str] = ()) -> str:
        """The type a resource really gets after the registry's mappings: another
        type, or a template file name (a nested stack). ``path``: the names of the
        parent resources from the top stack down, for a resource of a nested stack.
        A type naming a template is recorded in the registry, as Heat records it
        (it then shows in the stack's environment)."""
        env = self
        for parent in path:
            env = env.child(parent)
        return env._resolve(resource_name, resource_type)[-1][1]

    def template_entry(self, resource_name: str | None, resource_type: str
                       ) -> list[str] | None:
        """The registry path of the entry that maps this resource to a template (what a
        child environment drops), or None when the type is not a template."""
        chain = self._resolve(resource_name, resource_type)
        path, final = chain[-1]
        return path if path is not None and is_template_type(final) else None

    def _resolve(self, resource_name, resource_type) -> list[tuple[list[str] | None, str]]:
        """Follow mappings: [(entry path, type it gives), ...]; the last one is final."""
        if not isinstance(resource_type, str) or not resource_type:
            raise TemplateError(f'Resource "{resource_name}" has no type')
        chain: list[tuple[list[str] | None, str]] = [(None, resource_type)]
        seen = {resource_type}
        current = resource_type
        while True:
            found = self._match(resource_name, current)
            if found is None:
                return chain
            path, target = found
            chain.append((path, target))
            if is_template_type(target):
                return chain  # a template is final
            if target in seen:
                loop = " -> ".join([t for _, t in chain])
                raise InvalidEnvironment(f"Resource type mapping loop: {loop}")
            seen.add(target)
            current = target

    def _match(self, resource_name, resource_type) -> tuple[list[str], str] | None:
        """The best registry entry for a type: a resource's own mapping, then the type's
        mapping, then globs (longer paths first, as Heat sorts them)."""
        if is_template_type(resource_type):
            self.registry.setdefault(resource_type, resource_type)
        candidates: list[tuple[list[str], str]] = []
        own = self.registry["resources"].get(resource_name) if resource_name else None
        if isinstance(own, dict) and isinstance(own.get(resource_type), str):
            candidates.append((["resources", resource_name, resource_type],
                               own[resource_type]))
        direct = self.registry.get(resource_type)
        if isinstance(direct, str):
            candidates.append(([resource_type], direct))
        for key, value in self.registry.items():
            if key.endswith("*") and isinstance(value, str) and resource_type != value \
                    and resource_type.startswith(key[:-1]):
                target = value[:-1] + resource_type[len(key) - 1:] if value.endswith("*") \
                    else value
                candidates.append(([key], target))
        if not candidates:
            return None
        candidates.sort(key=lambda c: (-len(c[0]), c[0]))
        path, target = candidates[0]
        if target == resource_type and not is_template_type(target):
            return None  # "X: X" maps a type onto itself: nothing to follow
        return path, target

    # ------------------------------------------------------------ hooks
    def _resources_at(self, path: Iterable[str]) -> dict[str, Any]:
        resources = self.registry["resources"]
        for parent in path:
            resources = _narrow(resources, parent)
        return resources

    def hooks_for(self, resource_name: str, path: Iterable[str] = ()) -> set[str]:
        """The breakpoint hooks set on a resource (names matched as shell globs)."""
        return self._entries(resource_name, path, "hooks")

    def has_hook(self, resource_name: str, hook: str, path: Iterable[str] = ()) -> bool:
        return hook in self.hooks_for(resource_name, path)

    def restricted_actions(self, resource_name: str, path: Iterable[str] = ()) -> set[str]:
        return self._entries(resource_name, path, "restricted_actions")

    def _entries(self, resource_name: str, path: Iterable[str], key: str) -> set[str]:
        found: set[str] = set()
        for pattern, entry in self._resources_at(path).items():
            if isinstance(entry, dict) and key in entry \
                    and fnmatch.fnmatchcase(resource_name, pattern):
                value = entry[key]
                found.update([value] if isinstance(value, str) else value)
        return found

    # ------------------------------------------------------------ nesting
    def child(self, resource_name: str | None = None, parameters: Mapping | None = None,
              resource_type: str | None = None) -> Environment:
        """The environment of the nested stack of resource ``resource_name``: the
        registry without the entry that made the resource a template (so the
        template's own resources of that type are the real ones), ``resources``
        narrowed to the entries for ``resource_name``, and ``parameters`` (a flat map of
        values, or a whole environment) instead of the parent's parameters."""
        drop = self.template_entry(resource_name, resource_type) if resource_type else None
        env = copy.deepcopy(self.to_dict())
        flat = parameters is not None and not any(s in parameters for s in SECTIONS)
        env["parameters"] = dict(parameters) if flat else {}
        new = Environment()
        new.load(env)
        if parameters is not None and not flat:
            new.load(parameters)
        if drop:
            node = new.registry
            for key in drop[:-1]:
                node = node.get(key, {})
            node.pop(drop[-1], None)
        if resource_name:
            new.registry["resources"] = _narrow(new.registry["resources"], resource_name)
        return new

    # ------------------------------------------------------------ views
    def to_dict(self) -> dict[str, Any]:
        """The user environment as Heat shows it (``GET .../environment``, validate)."""
        return {"resource_registry": copy.deepcopy(self.registry),
                "parameters": dict(self.parameters),
                "parameter_defaults": dict(self.parameter_defaults),
                "event_sinks": list(self.event_sinks)}

    def to_stored_dict(self) -> dict[str, Any]:
        """What a stack keeps (adds encrypted_param_names, never shown)."""
        return {**self.to_dict(), "encrypted_param_names": list(self.encrypted_param_names)}


def _narrow(resources: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Heat's remove_resources_except: the entries of every pattern matching ``name``,
    then those of ``name`` itself."""
    out: dict[str, Any] = {}
    for pattern, entry in resources.items():
        if isinstance(entry, dict) and fnmatch.fnmatchcase(name, pattern):
            out.update(entry)
    if isinstance(resources.get(name), dict):
        out.update(resources[name])
    return out


def parse_environment(env: str | bytes | Mapping | None,
                      prefix: str = "Environment not in valid format: ") -> Environment:
    """Text or dict -> Environment (sections and registry checked)."""
    return Environment(load_environment(env, prefix))


# ---------------------------------------------------------------- environment_files
def merge_environments(environment_files: Sequence[str] | None, files: Mapping[str, str],
                       env: dict[str, Any], param_schemata: Mapping[str, Any]
                       ) -> dict[str, Any]:
    """Apply ``environment_files`` (names in ``files``) in order onto ``env`` (a dict
    with every section, e.g. the request's environment) as Heat's engine does:
    parameters and parameter_defaults by each parameter's merge strategy
    (``parameter_merge_strategies``: overwrite, merge, deep_merge), the other sections
    key by key. Returns the merged dict (``env`` is not changed)."""
    result = copy.deepcopy(env)
    for section in SECTIONS[:5]:
        result.setdefault(section, [] if section in ("encrypted_param_names",
                                                     "event_sinks") else {})
    chosen: dict[str, str] = {}
    for name in environment_files or []:
        if name not in files:
            raise InvalidEnvironment(f"The environment file {name} is not in files.")
        parsed = load_environment(files[name], prefix="")
        strategies = parsed.pop("parameter_merge_strategies", {}) or {}
        for section, value in parsed.items():
            if not value:
                continue
            if section in ("parameters", "parameter_defaults"):
                result[section] = _merge_parameters(result[section], value, param_schemata,
                                                    strategies, chosen, name)
            elif isinstance(value, list):
                result[section] = list(result.get(section) or []) + list(value)
            else:
                result[section] = _merge_map(result.get(section), value)
    return result


def _strategy(strategies: Mapping, key: str, chosen: Mapping) -> str:
    default = strategies.get("default", "overwrite")
    strategy = strategies.get(key, chosen.get(key, default))
    return strategy if strategy in MERGE_STRATEGIES else default


def _merge_list(old: Any, new: Any) -> Any:
    if not old:
        return new
    if isinstance(new, list):
        return list(old) + new
    return ",".join([old, new])


def _merge_map(old: Any, new: Mapping, deep: bool = False) -> Any:
    if not old:
        return copy.deepcopy(dict(new))
    old = dict(old)
    for key, value in new.items():
        if value is None:
            continue
        if not deep:
            old[key] = value
        elif isinstance(value, Mapping):
            old[key] = _merge_map(old.get(key), value, deep) if old.get(key) else value
        elif isinstance(value, Sequence) and not isinstance(value, str):
            old[key] = _merge_list(old.get(key), value) if old.get(key) else value
        elif isinstance(value, str):
            old[key] = (old.get(key) or "") + value
        else:
            old[key] = value
    return old


def _merge_parameters(old: dict, new: Mapping, schemata: Mapping[str, Any],
                      strategies: Mapping, chosen: dict[str, str], env_file: str) -> dict:
    for key, value in new.items():
        if key in schemata and value is not None:
            strategy = _strategy(strategies, key, chosen)
            if key not in chosen:
                chosen[key] = strategy
            elif strategy != chosen[key]:
                raise TemplateError(f"Conflicting merge strategy '{strategy}' for parameter "
                                    f"'{key}' in file '{env_file}'.")
    if not old:
        return dict(new)
    old = dict(old)
    for key, value in new.items():
        if key not in schemata or value is None:
            continue
        strategy = chosen[key]
        if strategy == "overwrite":
            old[key] = value
            continue
        kind = schemata[key].type
        try:
            if kind == JSON:
                parsed = json.loads(value if isinstance(value, str) else json.dumps(value))
            elif not isinstance(value, Sequence) and kind != NUMBER:
                raise ValueError()
            else:
                parsed = value
        except (ValueError, TypeError) as exc:
            raise TemplateError(f"Invalid parameter in environment {exc}.") from None
        if kind == JSON:
            old[key] = _merge_map(old.get(key, {}), parsed, strategy == "deep_merge")
        elif kind == LIST:
            old[key] = _merge_list(old.get(key), parsed)
        elif kind == STRING:
            old[key] = (old.get(key) or "") + parsed
        elif kind == NUMBER:
            old[key] = old.get(key, 0) + parsed
        else:
            raise TemplateError(f"Invalid merge strategy 'merge' for parameter '{key}'.")
    return old


def load_environment_files(names: Sequence[str] | None, files: Mapping[str, str],
                           base: Mapping[str, Any] | None = None,
                           param_schemata: Mapping[str, Any] | None = None) -> Environment:
    """:func:`merge_environments` onto ``base`` (a dict), then the Environment."""
    merged = merge_environments(names, files, dict(base or {}), param_schemata or {})
    return Environment(merged)


def mask_hidden(env: Mapping[str, Any], param_schemata: Mapping[str, Any]) -> dict[str, Any]:
    """A stored environment as ``GET /stacks/{..}/environment`` shows it: the values of
    hidden parameters (in ``parameters`` and ``parameter_defaults``) as ``******``."""
    shown = copy.deepcopy(dict(env))
    for section in ("parameters", "parameter_defaults"):
        values = shown.get(section) or {}
        for name in values:
            schema = param_schemata.get(name)
            if schema is not None and schema.hidden:
                values[name] = "******"
    return shown
