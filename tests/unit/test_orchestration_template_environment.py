"""Environments: parsing, the resource registry (type mappings, globs, per-resource
entries, hooks), nested stacks' environments and environment_files merging."""

from __future__ import annotations

import pytest

from onestack.orchestration import template as T
from onestack.orchestration.template.environment import HOOK_TYPES, Environment


def test_parse_text_and_shape():
    env = T.parse_environment("""
parameters: {flavor: m1.small}
parameter_defaults: {image: cirros}
resource_registry:
  OS::Nova::Server: my_server.yaml
  "OS::Networking::*": "OS::Neutron::*"
  resources:
    my_db: {hooks: [pre-create, pre-update]}
event_sinks:
  - {type: zaqar-queue, target: q}
""")
    assert env.parameters == {"flavor": "m1.small"}
    assert env.parameter_defaults == {"image": "cirros"}
    assert env.to_dict() == {
        "resource_registry": {"OS::Nova::Server": "my_server.yaml",
                              "OS::Networking::*": "OS::Neutron::*",
                              "resources": {"my_db": {"hooks": ["pre-create",
                                                                "pre-update"]}}},
        "parameters": {"flavor": "m1.small"}, "parameter_defaults": {"image": "cirros"},
        "event_sinks": [{"type": "zaqar-queue", "target": "q"}]}
    assert env.to_stored_dict()["encrypted_param_names"] == []


def test_empty_environment_view_matches_tempest():
    # heat-tempest-plugin test_template_validate_basic: the Environment of validate
    assert T.parse_environment(None).to_dict() == {
        "event_sinks": [], "parameter_defaults": {}, "parameters": {},
        "resource_registry": {"resources": {}}}


@pytest.mark.parametrize(("env", "message"), [
    ("- a", "Environment not in valid format: The environment is not a valid YAML mapping "
            "data type."),
    ({"paramters": {}}, 'Environment not in valid format: environment has wrong section '
                        '"paramters"'),
    ({"parameters": None}, 'Environment not in valid format: environment has empty section '
                           '"parameters"'),
    ({"resource_registry": {"resources": {"a": {"hooks": "invalid-type"}}}},
     "Invalid hook type \"invalid-type\" for resource breakpoint, acceptable hook types "
     "are: ('pre-create', 'pre-update', 'pre-delete', 'post-create', 'post-update', "
     "'post-delete')"),
])
def test_errors(env, message):
    with pytest.raises(T.InvalidEnvironment) as exc:
        T.parse_environment(env)
    assert exc.value.message == message
    assert exc.value.status == 400


def test_type_mappings():
    env = Environment({"resource_registry": {
        "OS::Networking::FloatingIP": "OS::Nova::FloatingIP",
        "OS::Loadbalancer": "lb.yaml",
        "OS::Compute::*": "OS::Heat::None",
        "OS::Old::*": "OS::New::*",
        "resources": {"my_fip": {"OS::Networking::FloatingIP": "ip.yaml"},
                      "my_db_server": {"OS::DBInstance": "db.yaml"}}}})
    assert env.effective_type("x", "OS::Networking::FloatingIP") == "OS::Nova::FloatingIP"
    assert env.effective_type("my_fip", "OS::Networking::FloatingIP") == "ip.yaml"
    assert env.effective_type("my_db_server", "OS::DBInstance") == "db.yaml"
    assert env.effective_type("other", "OS::DBInstance") == "OS::DBInstance"
    assert env.effective_type("x", "OS::Loadbalancer") == "lb.yaml"
    assert env.effective_type("x", "OS::Compute::Server") == "OS::Heat::None"
    assert env.effective_type("x", "OS::Old::Thing") == "OS::New::Thing"
    assert env.effective_type("x", "OS::Heat::RandomString") == "OS::Heat::RandomString"


def test_glob_onto_one_type_does_not_recurse():
    env = Environment({"resource_registry": {"OS::*": "OS::Heat::None"}})
    assert env.effective_type("x", "OS::Some::Name") == "OS::Heat::None"


def test_mapping_loop_is_an_error():
    env = Environment({"resource_registry": {"A::B": "C::D", "C::D": "A::B"}})
    with pytest.raises(T.InvalidEnvironment, match="A::B -> C::D -> A::B"):
        env.effective_type("x", "A::B")


def test_template_types_show_in_the_registry():
    # heat-tempest-plugin test_template_validate_nested_off: a type naming a file
    env = T.parse_environment(None)
    assert env.effective_type("nres", "mynested.yaml") == "mynested.yaml"
    assert env.to_dict()["resource_registry"] == {"mynested.yaml": "mynested.yaml",
                                                  "resources": {}}


def test_override_to_none_shows_in_registry():
    # heat-tempest-plugin test_template_validate_override_none
    env = T.parse_environment({"resource_registry": {
        "OS::Heat::RandomString": "OS::Heat::None"}})
    assert env.effective_type("myres", "OS::Heat::RandomString") == "OS::Heat::None"
    assert env.to_dict()["resource_registry"] == {
        "OS::Heat::RandomString": "OS::Heat::None", "resources": {}}


def test_hooks_plain_and_wildcards():
    env = Environment({"resource_registry": {"resources": {
        "a": {"OS::Fruit": "apples.yaml", "hooks": ["pre-create", "pre-update"]},
        "b": {"OS::Food": "fruity.yaml"},
        "nested": {"res": {"hooks": "pre-delete"}},
        "prefix_*": {"hooks": "pre-create"},
        "*_suffix": {"hooks": "pre-create"},
        "*": {"hooks": "post-create"}}}})
    assert env.hooks_for("a") == {"pre-create", "pre-update", "post-create"}
    assert env.hooks_for("b") == {"post-create"}
    assert env.has_hook("prefix_some", "pre-create")
    assert not env.has_hook("some_prefix", "pre-create")
    assert env.has_hook("some_suffix", "pre-create")
    assert not env.has_hook("_suffix_blah", "pre-create")
    assert not env.has_hook("res", "pre-delete")
    # inside the nested stack of resource "nested"
    assert env.has_hook("res", "pre-delete", path=["nested"])
    assert env.hooks_for("other", path=["nested"]) == set()


def test_hooks_tempest_form():
    # heat-tempest-plugin functional/test_hooks.py
    env = T.parse_environment({"resource_registry": {"resources": {
        "foo_step2": {"hooks": "pre-create"}}}})
    assert env.hooks_for("foo_step2") == {"pre-create"}
    assert env.hooks_for("foo_step1") == set()


def test_restricted_actions():
    env = Environment({"resource_registry": {"resources": {
        "db": {"restricted_actions": ["update", "replace"]},
        "web*": {"restricted_actions": "replace"}}}})
    assert env.restricted_actions("db") == {"update", "replace"}
    assert env.restricted_actions("web1") == {"replace"}
    with pytest.raises(T.InvalidEnvironment, match="Invalid restricted_action type"):
        Environment({"resource_registry": {"resources": {"x": {
            "restricted_actions": "delete"}}}})


def test_child_environment_drills_down():
    env = Environment({"resource_registry": {
        "OS::Food": "fruity.yaml",
        "resources": {
            "a": {"OS::Fruit": "apples.yaml", "hooks": "pre-create"},
            "nested": {"b": {"OS::Fruit": "carrots.yaml"},
                       "nested_res": {"hooks": "pre-create"}},
            "nest*": {"wild": {"hooks": "pre-update"}},
            "*_doesnt_match_nested": {"other": {"hooks": "pre-create"}}}}})
    child = env.child("nested")
    resources = child.to_dict()["resource_registry"]["resources"]
    assert set(resources) == {"b", "nested_res", "wild"}
    assert child.effective_type("abc", "OS::Food") == "fruity.yaml"
    assert child.effective_type("a", "OS::Fruit") == "OS::Fruit"
    assert child.effective_type("b", "OS::Fruit") == "carrots.yaml"
    assert child.has_hook("nested_res", "pre-create")
    assert env.effective_type("b", "OS::Fruit", path=["nested"]) == "carrots.yaml"


def test_child_environment_prefers_exact_match():
    env = Environment({"resource_registry": {"resources": {
        "*esource": {"hooks": "pre-create"}, "res*": {"hooks": "pre-create"},
        "resource": {"OS::Fruit": "carrots.yaml", "hooks": "pre-update"},
        "resource*": {"hooks": "pre-create"}, "*sour*": {"hooks": "pre-create"}}}})
    resources = env.child("resource").to_dict()["resource_registry"]["resources"]
    assert resources["OS::Fruit"] == "carrots.yaml"
    assert resources["hooks"] == "pre-update"


def test_child_drops_the_template_mapping_that_made_it():
    env = Environment({"resource_registry": {
        "OS::Food": "fruity.yaml",
        "resources": {"abc": {"OS::Food": "nutty.yaml"}}}})
    assert env.template_entry("abc", "OS::Food") == ["resources", "abc", "OS::Food"]
    child = env.child("abc", resource_type="OS::Food")
    assert child.effective_type("abc", "OS::Food") == "fruity.yaml"
    assert env.effective_type("abc", "OS::Food") == "nutty.yaml"  # parent unchanged
    env = Environment({"resource_registry": {"OS::Food": "fruity.yaml"}})
    child = env.child("x", {"p": 1}, resource_type="OS::Food")
    assert child.effective_type("x", "OS::Food") == "OS::Food"
    assert child.parameters == {"p": 1}
    assert "OS::Food" not in child.to_dict()["resource_registry"]


def test_load_applies_on_top():
    env = Environment({"parameters": {"a": 1}, "resource_registry": {"X::Y": "x.yaml",
                                                                    "Q::R": "S::T"}})
    env.load({"parameters": {"b": 2}, "resource_registry": {"X::Y": None, "Q::*": None}})
    assert env.parameters == {"a": 1, "b": 2}
    assert env.to_dict()["resource_registry"] == {"resources": {}}
    # the old flat form: parameters at the top
    assert Environment({"a": 1, "b": "x"}).parameters == {"a": 1, "b": "x"}


def test_environment_files_merge():
    t = T.parse({"heat_template_version": "2018-08-31", "parameters": {
        "s": {"type": "string", "default": ""}, "l": {"type": "comma_delimited_list",
                                                      "default": ""},
        "j": {"type": "json", "default": {}}, "n": {"type": "number", "default": 0},
        "o": {"type": "string", "default": ""}}})
    files = {
        "env1.yaml": """
parameter_merge_strategies: {s: merge, l: merge, j: deep_merge, n: merge}
parameters: {s: "ab", l: "x", j: {a: {b: 1}}, n: 1, o: first}
resource_registry: {"OS::A": a.yaml, resources: {r1: {hooks: pre-create}}}
event_sinks: [{type: zaqar-queue, target: q1}]
""",
        "env2.yaml": """
parameters: {s: "cd", l: "y", j: {a: {c: 2}}, n: 2, o: second, unknown: 1}
resource_registry: {"OS::B": b.yaml}
""",
    }
    base = {"parameters": {}, "resource_registry": {}, "parameter_defaults": {},
            "event_sinks": [], "encrypted_param_names": []}
    merged = T.merge_environments(["env1.yaml", "env2.yaml"], files, base, t.parameters)
    assert merged["parameters"] == {"s": "abcd", "l": "x,y", "j": {"a": {"b": 1, "c": 2}},
                                    "n": 3, "o": "second"}
    assert merged["resource_registry"] == {"OS::A": "a.yaml", "OS::B": "b.yaml",
                                           "resources": {"r1": {"hooks": "pre-create"}}}
    assert merged["event_sinks"] == [{"type": "zaqar-queue", "target": "q1"}]
    assert base["parameters"] == {}  # not changed
    env = T.load_environment_files(["env1.yaml"], files, base, t.parameters)
    assert env.effective_type("x", "OS::A") == "a.yaml"
    assert env.hooks_for("r1") == {"pre-create"}


def test_environment_files_conflicting_strategies():
    t = T.parse({"heat_template_version": "2018-08-31",
                 "parameters": {"s": {"type": "string", "default": ""}}})
    files = {"e1": "parameter_merge_strategies: {s: merge}\nparameters: {s: a}\n",
             "e2": "parameter_merge_strategies: {s: overwrite}\nparameters: {s: b}\n"}
    with pytest.raises(T.TemplateError) as exc:
        T.merge_environments(["e1", "e2"], files, {}, t.parameters)
    assert exc.value.message == ("Conflicting merge strategy 'overwrite' for parameter 's' "
                                 "in file 'e2'.")


@pytest.mark.parametrize("hook", HOOK_TYPES)
def test_every_hook_type_is_accepted(hook):
    env = Environment({"resource_registry": {"resources": {"r": {"hooks": hook}}}})
    assert env.hooks_for("r") == {hook}


def test_hidden_values_masked_in_the_shown_environment():
    t = T.parse({"heat_template_version": "2018-08-31", "parameters": {
        "pw": {"type": "string", "hidden": True}, "name": {"type": "string"}}})
    nested = "heat_template_version: 2018-08-31\nparameters: {key: {type: string, hidden: true}}\n"
    schemata = T.all_param_schemata(t, {"nested.yaml": nested, "script.sh": "#!/bin/sh"})
    assert set(schemata) == {"pw", "name", "key"}
    stored = {"parameters": {"pw": "s3cret", "name": "n"}, "parameter_defaults": {"key": "k"},
              "resource_registry": {"resources": {}}, "event_sinks": [],
              "encrypted_param_names": []}
    shown = T.mask_hidden(stored, schemata)
    assert shown["parameters"] == {"pw": "******", "name": "n"}
    assert shown["parameter_defaults"] == {"key": "******"}
    assert stored["parameters"]["pw"] == "s3cret"
