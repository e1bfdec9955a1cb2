"""Parameters: types and coercion, constraints with Heat's wording, hidden values,
pseudo parameters, parameter groups and the ``POST /validate`` view."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onestack.orchestration import template as T

# heat-tempest-plugin functional/test_template_validate.py
RANDOM_TEMPLATE_GROUPS = """
heat_template_version: 2014-10-16
description: the stack description
parameters:
  aparam:
    type: number
    default: 10
    description: the param description
  bparam:
    type: string
    default: foo
  cparam:
    type: string
    default: secret
    hidden: true
parameter_groups:
- label: str_params
  description: The string params
  parameters:
  - bparam
  - cparam
resources:
  myres:
    type: OS::Heat::RandomString
    properties:
      length: {get_param: aparam}
"""


def params(parameters, values=None, defaults=None, version="2018-08-31", **kwargs):
    t = T.parse({"heat_template_version": version, "parameters": parameters})
    return T.Parameters(t, values or {}, defaults, stack_name="s", stack_id="i",
                        project_id="p", **kwargs)


def invalid(parameters, values=None, **kwargs):
    with pytest.raises(T.TemplateError) as exc:
        params(parameters, values, **kwargs)
    return exc.value.message


def test_validate_view_matches_tempest():
    t = T.parse(RANDOM_TEMPLATE_GROUPS)
    assert T.describe_parameters(t) == {
        "Description": "the stack description",
        "ParameterGroups": [{"description": "The string params", "label": "str_params",
                             "parameters": ["bparam", "cparam"]}],
        "Parameters": {
            "aparam": {"Default": 10, "Description": "the param description",
                       "Label": "aparam", "NoEcho": "false", "Type": "Number"},
            "bparam": {"Default": "foo", "Description": "", "Label": "bparam",
                       "NoEcho": "false", "Type": "String"},
            "cparam": {"Default": "secret", "Description": "", "Label": "cparam",
                       "NoEcho": "true", "Type": "String"}}}
    # an environment value shows as Value, parameter_defaults replace Default
    view = T.describe_parameters(t, {"bparam": "bar"}, {"aparam": 5})
    assert view["Parameters"]["aparam"]["Value"] == 5
    assert view["Parameters"]["bparam"]["Default"] == "bar"
    T.validate_parameter_groups(t)


def test_validate_view_constraints():
    t = T.parse({"heat_template_version": "2018-08-31", "parameters": {
        "p": {"type": "number", "tags": ["t1"], "constraints": [
            {"range": {"min": 1, "max": 5}, "description": "one to five"},
            {"modulo": {"step": 2, "offset": 1}},
            {"allowed_values": [1, 3, 5], "description": "odd"}]},
        "s": {"type": "string", "label": "S", "constraints": [
            {"length": {"min": 2}}, {"allowed_pattern": "[a-z]+"},
            {"custom_constraint": "nova.flavor"}]}}})
    view = T.describe_parameters(t)["Parameters"]
    assert view["p"] == {"Type": "Number", "Description": "", "NoEcho": "false",
                         "Label": "p", "Tags": ["t1"], "MinValue": 1, "MaxValue": 5,
                         "Step": 2, "Offset": 1, "AllowedValues": [1, 3, 5],
                         "ConstraintDescription": "one to five odd"}
    assert view["s"] == {"Type": "String", "Description": "", "NoEcho": "false",
                         "Label": "S", "MinLength": 2, "AllowedPattern": "[a-z]+",
                         "CustomConstraint": "nova.flavor"}


def test_values_are_coerced():
    p = params({"n": {"type": "number"}, "f": {"type": "number"},
                "l": {"type": "comma_delimited_list"}, "j": {"type": "json"},
                "b": {"type": "boolean"}, "s": {"type": "string"},
                "ll": {"type": "comma_delimited_list", "default": [1, 2]}},
               {"n": "10", "f": "1.5", "l": "a,b,c", "j": '{"k": [1]}', "b": "on", "s": 5})
    assert p.value("n") == 10 and isinstance(p.value("n"), int)
    assert p.value("f") == 1.5
    assert p.value("l") == ["a", "b", "c"]
    assert p.value("j") == {"k": [1]}
    assert p.value("b") is True
    assert p.value("s") == "5"
    assert p.value("ll") == ["1", "2"]
    assert p.show() == {"OS::stack_id": "i", "OS::project_id": "p", "OS::stack_name": "s",
                        "n": "10", "f": "1.5", "l": "a,b,c", "j": '{"k": [1]}',
                        "b": "True", "s": "5", "ll": "1,2"}


def test_hidden_values_are_masked():
    p = params({"pw": {"type": "string", "hidden": True}}, {"pw": "s3cret"})
    assert p.value("pw") == "s3cret"
    assert p.show()["pw"] == T.HIDDEN_VALUE == "******"


def test_missing_and_unknown():
    with pytest.raises(T.UserParameterMissing) as exc:
        params({"x": {"type": "string"}})
    assert exc.value.message == "The Parameter (x) was not provided."
    with pytest.raises(T.UnknownUserParameter) as exc:
        params({"x": {"type": "string", "default": "a"}}, {"y": 1})
    assert exc.value.message == "The Parameter (y) was not defined in template."
    # parameter_defaults make a parameter optional
    assert params({"x": {"type": "string"}}, defaults={"x": "d"}).value("x") == "d"
    # without value checks (template validate) a missing value is fine
    t = T.parse({"heat_template_version": "2018-08-31",
                 "parameters": {"x": {"type": "string"}}})
    T.Parameters(t, validate=False).validate(validate_values=False)


@pytest.mark.parametrize(("schema", "value", "message"), [
    ({"type": "number"}, "abc",
     "Parameter 'p' is invalid: could not convert string to float: 'abc'"),
    ({"type": "boolean"}, "maybe",
     "Parameter 'p' is invalid: Unrecognized value 'maybe', acceptable values are: '0', "
     "'1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'"),
    ({"type": "json"}, "not json",
     "Parameter 'p' is invalid: Value must be valid JSON: Expecting value: line 1 column "
     "1 (char 0)"),
    ({"type": "string", "constraints": [{"length": {"min": 4, "max": 8}}]}, "abc",
     "Parameter 'p' is invalid: length (3) is out of range (min: 4, max: 8)"),
    ({"type": "number", "constraints": [{"range": {"min": 1, "max": 8}}]}, "9",
     "Parameter 'p' is invalid: 9 is out of range (min: 1, max: 8)"),
    ({"type": "number", "constraints": [{"modulo": {"step": 2, "offset": 1}}]}, 4,
     "Parameter 'p' is invalid: 4 is not a multiple of 2 with an offset of 1"),
    ({"type": "string", "constraints": [{"allowed_values": ["m1.small", "m1.large"]}]},
     "m1.huge",
     'Parameter \'p\' is invalid: "m1.huge" is not an allowed value ["m1.small", '
     '"m1.large"]'),
    ({"type": "string", "constraints": [{"allowed_pattern": "[a-z]+"}]}, "abc1",
     'Parameter \'p\' is invalid: "abc1" does not match pattern "[a-z]+"'),
    ({"type": "string", "constraints": [{"allowed_pattern": "[a-z]+",
                                         "description": "lower case only"}]}, "A",
     "Parameter 'p' is invalid: lower case only"),
    ({"type": "comma_delimited_list", "constraints": [{"allowed_values": ["a", "b"]}]},
     "a,c", 'Parameter \'p\' is invalid: ["a", "c"] is not an allowed value ["a", "b"]'),
])
def test_value_errors(schema, value, message):
    assert invalid({"p": schema}, {"p": value}) == message


def test_allowed_values_compare_in_the_parameter_type():
    assert params({"p": {"type": "number", "constraints": [{"allowed_values": ["1", "2"]}]}},
                  {"p": 2}).value("p") == 2
    assert params({"p": {"type": "boolean", "constraints": [
        {"allowed_values": [True]}]}}, {"p": "yes"}).value("p") is True


def test_custom_constraint_callback():
    calls = []

    def custom(name, value):
        calls.append((name, value))
        return None if value == "good" else f"Error validating value '{value}'"

    schema = {"p": {"type": "string", "constraints": [{"custom_constraint": "nova.flavor"}]}}
    assert params(schema, {"p": "good"}, custom=custom).value("p") == "good"
    assert invalid(schema, {"p": "bad"}, custom=custom) == \
        "Parameter 'p' is invalid: Error validating value 'bad'"
    assert calls == [("nova.flavor", "good"), ("nova.flavor", "bad")]
    assert params(schema, {"p": "bad"}).value("p") == "bad"  # no callback: not checked


def test_schema_errors():
    assert invalid({"p": {"type": "json", "default": {}, "constraints": [
        {"allowed_values": [1]}]}}) == \
        "Parameter 'p' is invalid: AllowedValues constraint invalid for json"
    assert invalid({"p": {"type": "string", "default": "toolong", "constraints": [
        {"length": {"max": 2}, "description": "wibble"}]}}) == \
        "Parameter 'p' is invalid: Invalid default toolong (wibble)"
    with pytest.raises(T.InvalidSchemaError, match="A range constraint must have"):
        params({"p": {"type": "number", "constraints": [{"range": {}}]}})
    with pytest.raises(T.InvalidSchemaError, match="offset must be smaller"):
        params({"p": {"type": "number", "constraints": [{"modulo": {"step": 2,
                                                                    "offset": 3}}]}})


def test_cfn_parameters():
    t = T.parse({"AWSTemplateFormatVersion": "2010-09-09", "Parameters": {
        "Size": {"Type": "Number", "MinValue": 1, "MaxValue": 3, "Default": 2,
                 "ConstraintDescription": "one to three"},
        "Data": {"Type": "Json", "Default": {}, "AllowedValues": [{}]}}},
        check_functions=False)
    with pytest.raises(T.InvalidSchemaError, match="AllowedValues constraint invalid for Json"):
        T.Parameters(t, {}, stack_name="s", stack_id="i", project_id="p")
    t.parameters.pop("Data")
    p = T.Parameters(t, {"Size": "3"}, stack_name="s", stack_id="i", project_id="p")
    assert p.value("Size") == 3
    assert p.value("AWS::StackId") == "arn:openstack:heat::p:stacks/s/i"
    with pytest.raises(T.StackValidationFailed, match="one to three"):
        T.Parameters(t, {"Size": 5}, stack_name="s")


def test_immutable_parameters():
    old = params({"a": {"type": "string", "immutable": True}, "b": {"type": "string"}},
                 {"a": "1", "b": "1"})
    new = params({"a": {"type": "string", "immutable": True}, "b": {"type": "string"}},
                 {"a": "2", "b": "2"})
    assert old.immutable_changes(new) == ["a"]
    with pytest.raises(T.ImmutableParameterModified) as exc:
        old.check_immutable(new)
    assert exc.value.message == ("The following parameters are immutable and may not be "
                                 "updated: a")


@pytest.mark.parametrize(("groups", "message"), [
    ("x", "Parameter Groups error: parameter_groups: The parameter_groups should be a list."),
    ([{"label": "g"}], "Parameter Groups error: parameter_groups.g: The parameters must be "
                       "provided for each parameter group."),
    ([{"label": "g", "parameters": "a"}], "Parameter Groups error: parameter_groups.g: The "
                                          "parameters of parameter group should be a list."),
    ([{"label": "g", "parameters": ["a"]}, {"label": "h", "parameters": ["a"]}],
     "Parameter Groups error: parameter_groups.h: The a parameter must be assigned to one "
     "parameter group only."),
    ([{"label": "g", "parameters": ["zz"]}], "Parameter Groups error: parameter_groups.g: "
                                             "The grouped parameter zz does not reference a "
                                             "valid parameter."),
])
def test_parameter_groups(groups, message):
    t = T.parse({"heat_template_version": "2018-08-31", "parameter_groups": groups,
                 "parameters": {"a": {"type": "string"}}})
    with pytest.raises(T.StackValidationFailed) as exc:
        T.validate_parameter_groups(t)
    assert exc.value.message == message


@given(st.lists(st.text(alphabet="abc xyz-_", min_size=1), min_size=1, max_size=6))
def test_comma_delimited_list_round_trip(items):
    p = params({"l": {"type": "comma_delimited_list"}}, {"l": ",".join(items)})
    assert p.value("l") == items
    assert p.show()["l"] == ",".join(items)


@given(st.integers(min_value=-10**6, max_value=10**6))
def test_numbers_from_strings(n):
    p = params({"n": {"type": "number", "constraints": [{"range": {"min": 0}}]}},
               {"n": str(abs(n))})
    assert p.value("n") == abs(n)
