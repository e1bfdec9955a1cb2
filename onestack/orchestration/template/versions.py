"""Template versions: the sections, keys and function sets of each, as Heat has them.

A function set maps a function name to its *kind*, the name of one implementation in
``functions.py`` (several names share a kind, and one name changes kind between
versions: ``get_attr`` gains whole-resource and list paths, ``repeat`` gains maps and
nested loops, ``if`` gains null dropping). ``REMOVED`` marks a name a version refuses
with an error naming it. Order is Heat's, so the function listing reads the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from onestack.orchestration.template.errors import NotFound

REMOVED = "removed"
INVALID = "invalid"  # a function name not allowed where it stands

# what `GET /template_versions/{v}/functions` says about each kind (Heat's docstrings)
DESCRIPTIONS = {
    "get_param": "A function for resolving parameter references.",
    "get_resource": "A function for resolving resource references.",
    "get_attr_then_select": "A function for resolving resource attributes.",
    "get_attr": "A function for resolving resource attributes.",
    "get_attr_all": "A function for resolving resource attributes.",
    "str_replace": "A function for performing string substitutions.",
    "str_replace_json": "A function for performing string substitutions.",
    "str_replace_strict": "A function for performing string substitutions.",
    "str_replace_vstrict": "A function for performing string substitutions.",
    "get_file": "A function for including a file inline.",
    "list_join": "A function for joining strings.",
    "list_join_multiple": "A function for joining one or more lists of strings.",
    "map_merge": "A function for merging maps.",
    "map_replace": "A function for performing substitutions on maps.",
    "resource_facade": "A function for retrieving data in a parent provider template.",
    "repeat": "A function for iterating over a list of items.",
    "repeat_with_map": "A function for iterating over a list of items or a dict of keys.",
    "repeat_nested": "A function for iterating over a list of items or a dict of keys.",
    "digest": "A function for performing digest operations.",
    "str_split": "A function for splitting delimited strings into a list.",
    "yaql": "A function for executing a yaql expression.",
    "equals": "A function for comparing whether two values are equal.",
    "if": "A function to return corresponding value based on condition evaluation.",
    "if_nullable": "A function to return corresponding value based on condition evaluation.",
    "not": "A function that acts as a NOT operator on a condition.",
    "and": "A function that acts as an AND operator on conditions.",
    "or": "A function that acts as an OR operator on conditions.",
    "filter": "A function for filtering out values from lists.",
    # sic: Heat's MakeURL docstring
    "make_url": "A function for performing substitutions on maps.",
    "list_concat": "A function for extending lists.",
    "list_concat_unique": "A function for extending lists with unique items.",
    "contains": "A function for checking whether specific value is in sequence.",
    "Fn::FindInMap": "A function for resolving keys in the template mappings.",
    "Fn::GetAZs": "A function for retrieving the availability zones.",
    "ParamRef": "A function for resolving parameter references.",
    "Ref": "A function for resolving parameters or resource references.",
    "Fn::GetAtt": "A function for resolving resource attributes.",
    "Fn::Select": "A function for selecting an item from a list or map.",
    "Fn::Join": "A function for joining strings.",
    "Fn::Split": "A function for splitting strings.",
    "Fn::Replace": "A function for performing string substitutions.",
    "Fn::Base64": "A placeholder function for converting to base64.",
    "Fn::MemberListToMap": "A function to convert lists with enumerated keys and values "
                           "to mapping.",
    "Fn::ResourceFacade": "A function for retrieving data in a parent provider template.",
}


@dataclass(frozen=True)
class TemplateVersion:
    key: str  # the top-level key naming the version: heat_template_version, ...
    date: str  # 2018-08-31
    type: str  # "hot" | "cfn"
    sections: tuple[str, ...]  # allowed top-level keys (the version key among them)
    resource_keys: tuple[str, ...]  # allowed keys of a resource definition
    output_keys: tuple[str, ...]
    functions: dict[str, str]  # name -> kind (REMOVED: refused)
    condition_functions: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()  # "rocky", ...
    deletion_policies: tuple[str, ...] = ("Delete", "Retain", "Snapshot")
    param_schema: str = "hot"  # hot | hot20170224 (tags) | hot20180302 (+ immutable...)

    @property
    def name(self) -> str:
        return f"{self.key}.{self.date}"

    @property
    def is_hot(self) -> bool:
        return self.type == "hot"

    @property
    def has_conditions(self) -> bool:
        return bool(self.condition_functions)

    def table(self, condition: bool = False) -> dict[str, str]:
        """The function names a snippet may use, name -> kind. In a condition
        (``conditions``, a resource's ``condition``, the first argument of ``if``) only
        the condition functions work; the others are refused (kind ``INVALID``)."""
        if not condition:
            return self.functions
        table = {n: (k if k == REMOVED else INVALID) for n, k in self.functions.items()}
        table.update(self.condition_functions)
        return table

    # section and key names differ in case between HOT and CFN
    def section(self, hot_name: str) -> str:
        """The name of a top-level section in this format (``resources`` -> ``Resources``)."""
        return hot_name if self.is_hot else _CFN_SECTIONS[hot_name]

    def key_of(self, hot_name: str) -> str:
        """The name of a resource/output key in this format (``depends_on`` -> ``DependsOn``)."""
        return hot_name if self.is_hot else _CFN_KEYS[hot_name]


_CFN_SECTIONS = {"description": "Description", "parameters": "Parameters",
                 "resources": "Resources", "outputs": "Outputs", "mappings": "Mappings",
                 "conditions": "Conditions", "parameter_groups": "ParameterGroups"}
_CFN_KEYS = {"type": "Type", "properties": "Properties", "metadata": "Metadata",
             "depends_on": "DependsOn", "deletion_policy": "DeletionPolicy",
             "update_policy": "UpdatePolicy", "description": "Description",
             "condition": "Condition", "value": "Value", "external_id": "ExternalId"}

# ---------------------------------------------------------------- HOT function sets
_HOT_REMOVED_2014 = {n: REMOVED for n in (
    "Fn::GetAZs", "Fn::Join", "Fn::Split", "Fn::Replace", "Fn::Base64",
    "Fn::MemberListToMap", "Fn::ResourceFacade", "Ref")}

_F20130523 = {
    "Fn::GetAZs": "Fn::GetAZs", "get_param": "get_param", "get_resource": "get_resource",
    "Ref": "Ref", "get_attr": "get_attr_then_select", "Fn::Select": "Fn::Select",
    "Fn::Join": "Fn::Join", "list_join": "list_join", "Fn::Split": "Fn::Split",
    "str_replace": "str_replace", "Fn::Replace": "Fn::Replace",
    "Fn::Base64": "Fn::Base64", "Fn::MemberListToMap": "Fn::MemberListToMap",
    "resource_facade": "resource_facade", "Fn::ResourceFacade": "Fn::ResourceFacade",
    "get_file": "get_file",
}
_F20141016 = {
    "get_attr": "get_attr", "get_file": "get_file", "get_param": "get_param",
    "get_resource": "get_resource", "list_join": "list_join",
    "resource_facade": "resource_facade", "str_replace": "str_replace",
    "Fn::Select": "Fn::Select", **_HOT_REMOVED_2014,
}
_F20150430 = {
    "get_attr": "get_attr", "get_file": "get_file", "get_param": "get_param",
    "get_resource": "get_resource", "list_join": "list_join", "repeat": "repeat",
    "resource_facade": "resource_facade", "str_replace": "str_replace",
    "Fn::Select": "Fn::Select", "digest": "digest", **_HOT_REMOVED_2014,
}


def _hot_functions(get_attr: str, repeat: str, added: dict[str, str],
                   if_kind: str | None = None) -> dict[str, str]:
    """The 2015-10-15+ set: Fn::Select gone, the rest grows by version."""
    funcs = {
        "get_attr": get_attr, "get_file": "get_file", "get_param": "get_param",
        "get_resource": "get_resource", "list_join": "list_join_multiple",
        "repeat": repeat, "resource_facade": "resource_facade",
        "str_replace": "str_replace_json", "digest": "digest", "str_split": "str_split",
    }
    funcs.update(added)
    if if_kind:
        funcs["if"] = if_kind
    funcs["Fn::Select"] = REMOVED
    funcs.update(_HOT_REMOVED_2014)
    return funcs


_ADD_20160408 = {"map_merge": "map_merge"}
_ADD_20161014 = {**_ADD_20160408, "yaql": "yaql", "map_replace": "map_replace", "if": "if"}
_ADD_20170224 = {**_ADD_20161014, "filter": "filter",
                 "str_replace_strict": "str_replace_strict"}
_ADD_20170901 = {**_ADD_20170224, "make_url": "make_url", "list_concat": "list_concat",
                 "str_replace_vstrict": "str_replace_vstrict",
                 "list_concat_unique": "list_concat_unique", "contains": "contains"}

_F20151015 = _hot_functions("get_attr_all", "repeat", {})
_F20160408 = _hot_functions("get_attr_all", "repeat", _ADD_20160408)
_F20161014 = _hot_functions("get_attr_all", "repeat_with_map", _ADD_20161014)
_F20170224 = _hot_functions("get_attr_all", "repeat_with_map", _ADD_20170224)
_F20170901 = _hot_functions("get_attr_all", "repeat_nested", _ADD_20170901)
_F20210416 = _hot_functions("get_attr_all", "repeat_nested", _ADD_20170901, "if_nullable")

_C20161014 = {"get_param": "get_param", "equals": "equals", "not": "not", "and": "and",
              "or": "or"}
_C20170901 = {**_C20161014, "yaql": "yaql", "contains": "contains"}

_HOT_SECTIONS = ("heat_template_version", "description", "parameter_groups",
                 "parameters", "resources", "outputs")
_HOT_RES_KEYS = ("type", "properties", "metadata", "depends_on", "deletion_policy",
                 "update_policy", "description")
_HOT_OUT_KEYS = ("description", "value")
_POLICIES_2016 = ("Delete", "Retain", "Snapshot", "delete", "retain", "snapshot")


def _hot(date: str, functions: dict[str, str], conditions: dict[str, str] | None = None,
         aliases: tuple[str, ...] = (), param_schema: str = "hot") -> TemplateVersion:
    if conditions:  # 2016-10-14 added conditions, external_id and lower-case policies
        return TemplateVersion(
            "heat_template_version", date, "hot", _HOT_SECTIONS + ("conditions",),
            _HOT_RES_KEYS + ("external_id", "condition"), _HOT_OUT_KEYS + ("condition",),
            functions, conditions, aliases, _POLICIES_2016, param_schema)
    return TemplateVersion("heat_template_version", date, "hot", _HOT_SECTIONS,
                           _HOT_RES_KEYS, _HOT_OUT_KEYS, functions, {}, aliases)


# ---------------------------------------------------------------- CFN
_CFN_SECTIONS_BASE = ("AWSTemplateFormatVersion", "HeatTemplateFormatVersion",
                      "Description", "Mappings", "Parameters", "Resources", "Outputs")
_CFN_RES_KEYS = ("Type", "Properties", "Metadata", "DependsOn", "DeletionPolicy",
                 "UpdatePolicy", "Description")
_CFN_FULL = {
    "Fn::FindInMap": "Fn::FindInMap", "Fn::GetAZs": "Fn::GetAZs", "Ref": "Ref",
    "Fn::GetAtt": "Fn::GetAtt", "Fn::Select": "Fn::Select", "Fn::Join": "Fn::Join",
    "Fn::Split": "Fn::Split", "Fn::Replace": "Fn::Replace", "Fn::Base64": "Fn::Base64",
    "Fn::MemberListToMap": "Fn::MemberListToMap",
    "Fn::ResourceFacade": "Fn::ResourceFacade",
}

_ALL = [
    TemplateVersion(
        "AWSTemplateFormatVersion", "2010-09-09", "cfn",
        _CFN_SECTIONS_BASE + ("Conditions",), _CFN_RES_KEYS + ("Condition",),
        ("Description", "Value", "Condition"), {**_CFN_FULL, "Fn::If": "if"},
        {"Fn::Equals": "equals", "Ref": "ParamRef", "Fn::FindInMap": "Fn::FindInMap",
         "Fn::Not": "not", "Fn::And": "and", "Fn::Or": "or"}),
    TemplateVersion(
        "HeatTemplateFormatVersion", "2012-12-12", "cfn", _CFN_SECTIONS_BASE,
        _CFN_RES_KEYS, ("Description", "Value"), dict(_CFN_FULL)),
    _hot("2013-05-23", _F20130523),
    _hot("2014-10-16", _F20141016),
    _hot("2015-04-30", _F20150430),
    _hot("2015-10-15", _F20151015),
    _hot("2016-04-08", _F20160408),
    _hot("2016-10-14", _F20161014, _C20161014, ("newton",)),
    _hot("2017-02-24", _F20170224, _C20161014, ("ocata",), "hot20170224"),
    _hot("2017-09-01", _F20170901, _C20170901, ("pike",), "hot20170224"),
    _hot("2018-03-02", _F20170901, _C20170901, ("queens",), "hot20180302"),
    _hot("2018-08-31", _F20170901, _C20170901, ("rocky",), "hot20180302"),
    _hot("2021-04-16", _F20210416, _C20170901, ("wallaby",), "hot20180302"),
]

VERSIONS: dict[str, TemplateVersion] = {}
for _v in _ALL:
    VERSIONS[_v.name] = _v
    for _alias in _v.aliases:
        VERSIONS[f"{_v.key}.{_alias}"] = _v

def call_of(snippet: Any, table: Mapping[str, str]) -> tuple[str, str, Any] | None:
    """``(name, kind, args)`` when ``snippet`` is a call of a function in ``table``:
    a map of exactly one key that names a function."""
    if isinstance(snippet, Mapping) and len(snippet) == 1:
        name, args = next(iter(snippet.items()))
        kind = table.get(name) if isinstance(name, str) else None
        if kind is not None:
            return name, kind, args
    return None


VERSION_KEYS = ("heat_template_version", "AWSTemplateFormatVersion",
                "HeatTemplateFormatVersion")


def get_version(name: str) -> TemplateVersion:
    """The version named ``key.date`` or ``key.alias``; NotFound as Heat words it."""
    try:
        return VERSIONS[name]
    except KeyError:
        raise NotFound(f"Template with version {name} not found") from None


def list_versions() -> list[dict]:
    """Every version, sorted by name as Heat sorts them (the CFN ones first)."""
    return [{"version": v.name, "type": v.type, "aliases": [f"{v.key}.{a}" for a in v.aliases]}
            for v in sorted(_ALL, key=lambda v: v.name)]


def list_functions(name: str, with_condition_func: bool = False) -> list[dict]:
    """The functions of a version (removed ones left out), and with
    ``with_condition_func`` those usable in ``conditions`` too."""
    version = get_version(name)
    funcs = dict(version.functions)
    if with_condition_func:
        funcs.update(version.condition_functions)
    return [{"functions": fn, "description": DESCRIPTIONS[kind]}
            for fn, kind in funcs.items() if kind != REMOVED]
