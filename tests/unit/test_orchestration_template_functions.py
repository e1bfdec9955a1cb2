"""Intrinsic functions: values per template version, conditions, dependencies and the
validation of arguments with Heat's messages and paths. Expected values follow Heat's
own behaviour (heat/tests/test_hot.py states most of them)."""

from __future__ import annotations

import hashlib

import pytest

from onestack.orchestration import template as T

KILO, LIBERTY, MITAKA, NEWTON, OCATA, PIKE, WALLABY = (
    "2015-04-30", "2015-10-15", "2016-04-08", "2016-10-14", "2017-02-24", "2017-09-01",
    "2021-04-16")


class Stack(T.BaseResolver):
    """A resolver with resources that exist: ids and attributes from dicts."""

    def __init__(self, template, params=None, files=None, refs=None, attrs=None,
                 facade=None):
        super().__init__(template, T.Parameters(template, params or {}, stack_name="st",
                                                stack_id="sid", project_id="pid"), files)
        self.refs, self.attrs, self.facade = refs or {}, attrs or {}, facade or {}

    def resource_ref(self, name):
        super().resource_ref(name)  # KeyError for unknown/disabled
        return self.refs.get(name)

    def resource_attr(self, name, attr, *path):
        super().resource_attr(name, attr)
        return T.select_path(self.attrs.get(name, {}).get(attr), path)

    def resource_attrs(self, name):
        super().resource_attrs(name)
        return self.attrs.get(name, {})

    def resource_facade(self, kind):
        return self.facade.get(kind)

    def availability_zones(self):
        return ["az1", "az2"]


def tmpl(version=PIKE, **sections):
    key = "heat_template_version"
    return T.parse({key: version, **sections}, check_functions=False)


def run(snippet, version=PIKE, **kwargs):
    t = tmpl(version, **kwargs.pop("sections", {}))
    return T.resolve(snippet, t, Stack(t, **kwargs))


def fails(snippet, version=PIKE, **kwargs):
    with pytest.raises(T.TemplateError) as exc:
        run(snippet, version, **kwargs)
    return exc.value.message


# ---------------------------------------------------------------- strings
@pytest.mark.parametrize(("snippet", "expected"), [
    ({"str_replace": {"template": "Template var1 string var2",
                      "params": {"var1": "foo", "var2": "bar"}}}, "Template foo string bar"),
    ({"str_replace": {"template": "1234567890", "params": {
        "1": "a", "12": "b", "123": "c", "1234": "d", "12345": "e", "123456": "f",
        "1234567": "g"}}}, "g890"),
    ({"str_replace": {"template": "1234567890", "params": {
        "1": "a", "4": "d", "8": "h", "9": "i", "123": "1", "456": "4", "890": "8",
        "90": "9"}}}, "1478"),
    ({"str_replace": {"template": "9876543210", "params": {
        "987654": "a", "876543": "b", "765432": "c", "654321": "d", "543210": "e"}}},
     "9876e"),
    ({"str_replace": {"template": "n=number", "params": {"number": 1}}}, "n=1"),
    ({"str_replace": {"template": "Template var1 string var2",
                      "params": {"var1": "foo", "var2": "bar", "var3": "zed"}}},
     "Template foo string bar"),
])
def test_str_replace(snippet, expected):
    assert run(snippet, KILO) == expected
    assert run(snippet, PIKE) == expected


def test_str_replace_json_values_from_liberty():
    snippet = {"str_replace": {"template": "jsonvar1", "params": {"jsonvar1": {"foo": 123}}}}
    assert run(snippet, LIBERTY) == '{"foo": 123}'
    assert fails(snippet, KILO) == ('str_replace: "str_replace" params must be strings or '
                                    "numbers, param jsonvar1 is not valid")
    snippet = {"str_replace": {"template": "l", "params": {"l": ["foo", 123]}}}
    assert run(snippet, LIBERTY) == '["foo", 123]'


def test_str_replace_strict_and_vstrict():
    ok = {"str_replace_strict": {"template": "Template var1 var1 s var2 t varvarvar3",
                                 "params": {"var1": "foo", "var2": "bar", "var3": "zed",
                                            "var": "tricky "}}}
    assert run(ok, OCATA) == "Template foo foo s bar t tricky tricky zed"
    missing = {"str_replace_vstrict": {"template": "Template var1 string var2", "params": {
        "var1": "foo", "var2": "bar", "var0": "zed", "var": "z", "longvarname": "q"}}}
    assert fails(missing) == ("str_replace_vstrict: The following params were not found in "
                              "the template: longvarname,var0,var")
    assert run({"str_replace_strict": {"template": "a var2", "params": {"var2": ""}}},
               OCATA) == "a "
    for empty in (None, "", {}, []):
        message = fails({"str_replace_vstrict": {"template": "a var2",
                                                 "params": {"var2": empty}}})
        assert "str_replace_vstrict has an undefined or empty value for param var2" in message


def test_str_replace_argument_errors():
    message = fails({"str_replace": {"tmpl": "x", "parms": {}}}, KILO)
    assert message.startswith("str_replace: '\"str_replace\" syntax should be str_replace:\\n")
    assert fails({"str_replace": {"template": "x", "params": ["a"]}}) == \
        'str_replace: "str_replace" parameters must be a mapping'
    assert fails({"str_replace": {"template": 12345, "params": {}}}) == \
        'str_replace: "str_replace" template must be a string'
    assert fails({"str_replace": ["x"]}) == 'str_replace: Arguments to "str_replace" must be a map'


def test_list_join_per_version():
    assert run({"list_join": [",", ["bar", "baz"], ["bar2", "baz2"]]}, LIBERTY) == \
        "bar,baz,bar2,baz2"
    assert run({"list_join": [",", []]}, KILO) == ""
    assert run({"list_join": [",", [{"foo": "json"}, {"foo2": "json2"}]]}, LIBERTY) == \
        '{"foo": "json"},{"foo2": "json2"}'
    assert fails({"list_join": [",", [{"foo": "json"}]]}, KILO) == \
        "list_join: Items to join must be strings not {'foo': 'json'}"
    assert fails({"list_join": "bad"}, LIBERTY).startswith(
        'list_join: Incorrect arguments to "list_join" should be: ')
    assert fails({"list_join": [","]}, KILO) == (
        'list_join: Incorrect arguments to "list_join" should be: "list_join" : '
        '[ " ", [ "str1", "str2"]]')
    assert "must operate on a list" in fails({"list_join": [",", "bad", ["foo"]]}, LIBERTY)


def test_str_split_digest_map_functions():
    assert run({"str_split": [",", "bar,baz"]}, LIBERTY) == ["bar", "baz"]
    assert run({"str_split": [",", "bar,baz", "1"]}, LIBERTY) == "baz"
    assert fails({"str_split": [",", "bar,baz", "2"]}, LIBERTY) == \
        'str_split: Incorrect index to "str_split" should be between 0 and 1'
    assert run({"digest": ["md5", "foobar"]}, KILO) == "3858f62230ac3c915f300c664312c63f"
    for algo in ("sha1", "sha224", "sha256", "sha384", "sha512"):
        assert run({"digest": [algo, "x"]}) == hashlib.new(algo, b"x").hexdigest()
    assert 'usage: ["<algorithm>", "<value>"]' in fails({"digest": ["md5"]})
    assert "must be a list of strings" in fails({"digest": "invalid"})
    assert "Algorithm must be one of" in fails({"digest": ["nope", "x"]})
    assert run({"map_merge": [{"f1": "b1", "f2": "b2"}, {"f1": "b2"}]}, MITAKA) == \
        {"f1": "b2", "f2": "b2"}
    assert run({"map_replace": [{"f1": "b1", "f2": "b2"},
                                {"keys": {"f1": "F1"}, "values": {"b2": "B2"}}]}, NEWTON) \
        == {"F1": "b1", "f2": "B2"}
    assert "collides with a key in the input map" in fails(
        {"map_replace": [{"f1": "b1", "f2": "b2"}, {"keys": {"f2": "f1"}}]})
    assert "collides with a key in the output map" in fails(
        {"map_replace": [{"f1": "b1", "f2": "b2"}, {"keys": {"f1": "f3", "f2": "f3"}}]})
    assert 'Incorrect arguments to "map_replace" should be:' in fails({"map_replace": "ab"})


def test_lists_and_urls():
    assert run({"list_concat": [["v1", "v2"], ["v3"], None]}) == ["v1", "v2", "v3"]
    assert run({"list_concat_unique": [["v1", "v2"], ["v2", "v3"]]}) == ["v1", "v2", "v3"]
    assert "Items to concat must be lists" in fails({"list_concat": [["a"], "b"]})
    assert run({"contains": ["v1", ["v1", "v2"]]}) is True
    assert run({"contains": ["v3", ["v1", "v2"]]}) is False
    assert fails({"contains": ["v1", 1]}) == \
        'contains: Second argument to "contains" should be a sequence.'
    assert run({"filter": [[3], [1, 3, 2, 3]]}, OCATA) == [1, 2]
    assert run({"make_url": {"scheme": "https", "host": "example.com", "port": 8080,
                             "path": "/foo/bar", "query": {"a": "x y"},
                             "fragment": "frag", "username": "u", "password": "p:w"}}) == \
        "https://u:p%3Aw@example.com:8080/foo/bar?a=x+y#frag"
    assert run({"make_url": {"scheme": "http", "host": "::1", "path": "/"}}) == "http://[::1]/"
    assert fails({"make_url": {"scheme": "http", "host": "h", "port": 0}}) == \
        "make_url: Invalid URL port 0, must be in range 1-65535"


def test_repeat_forms():
    snippet = {"repeat": {"template": "this is %var%", "for_each": {"%var%": ["a", "b"]}}}
    assert run(snippet, KILO) == ["this is a", "this is b"]
    assert run({"repeat": {"template": {"key-%v%": "is %v%"}, "for_each": {"%v%": ["a"]}}}) \
        == [{"key-a": "is a"}]
    both = run({"repeat": {"template": "%a%-%b%", "for_each": {"%a%": ["a", "b"],
                                                               "%b%": {"x": 1, "y": 2}}}},
               NEWTON)
    assert sorted(both) == ["a-x", "a-y", "b-x", "b-y"]
    zipped = {"repeat": {"template": {"n": "%n%", "p": "%p%"},
                         "for_each": {"%n%": ["n1", "n2"], "%p%": ["p1", "p2"]},
                         "permutations": False}}
    assert run(zipped) == [{"n": "n1", "p": "p1"}, {"n": "n2", "p": "p2"}]
    zipped["repeat"]["for_each"]["%p%"] = ["p1"]
    assert "should be equal if no nested loop" in fails(zipped)
    zipped["repeat"]["permutations"] = "no"
    assert '"permutations" should be boolean type for repeat function' in fails(zipped)
    assert "must be lists or maps" in fails(
        {"repeat": {"template": "%v%", "for_each": {"%v%": "abc"}}})
    assert fails({"repeat": {"template": "%v%", "for_each": {"%v%": {"a": 1}}}}, KILO) == \
        'repeat: The values of the "for_each" argument to "repeat" must be lists'
    # the list comes from a parameter
    got = run({"repeat": {"template": "this is var%", "for_each": {"var%": {"get_param": "p"}}}},
              KILO, sections={"parameters": {"p": {"type": "comma_delimited_list",
                                                   "default": "a,b,c"}}})
    assert got == ["this is a", "this is b", "this is c"]


def test_yaql():
    assert run({"yaql": {"expression": "$.data.var1.sum()", "data": {"var1": [1, 2, 3, 4]}}},
               NEWTON) == 10
    assert run({"yaql": {"expression": "$.data.d.reduce($1.mergeWith($2))",
                         "data": {"d": [{"a": [1]}, {"a": [2]}, {"a": [3]}]}}}) == \
        {"a": [1, 2, 3]}
    assert run({"yaql": {"expression": "$.data.var1.len()",
                         "data": {"var1": {"list_join": ["", ["1", "2"]]}}}}) == 2
    assert fails({"yaql": "invalid"}) == 'yaql: Arguments to "yaql" must be a map.'
    assert "syntax should be" in fails({"yaql": {"expression": "1", "bogus": ""}})
    assert fails({"yaql": {"expression": "invalid("}}).startswith(
        "yaql: Bad expression Parse error: unexpected end of statement.")


# ---------------------------------------------------------------- lookups
SECTIONS = {
    "parameters": {
        "flavor": {"type": "string", "default": "m1.small"},
        "nets": {"type": "json", "default": {"a": [{"id": "n1"}, {"id": "n2"}]}},
        "names": {"type": "comma_delimited_list", "default": "x,y"},
        "count": {"type": "number", "default": "3"},
        "on": {"type": "boolean", "default": "yes"},
    },
    "resources": {"net": {"type": "OS::Neutron::Net"},
                  "server": {"type": "OS::Nova::Server"}},
}


def test_get_param_with_path_and_pseudo_parameters():
    def go(snippet):
        return run(snippet, sections=SECTIONS)
    assert go({"get_param": "flavor"}) == "m1.small"
    assert go({"get_param": ["nets", "a", 1, "id"]}) == "n2"
    assert go({"get_param": ["nets", "a", "0", "id"]}) == "n1"
    assert go({"get_param": ["nets", "missing"]}) == ""
    assert go({"get_param": ["names", 1]}) == "y"
    assert go({"get_param": "count"}) == 3
    assert go({"get_param": "on"}) is True
    assert go({"get_param": "OS::stack_name"}) == "st"
    assert go({"get_param": "OS::stack_id"}) == "sid"
    assert go({"get_param": "OS::project_id"}) == "pid"
    with pytest.raises(T.UserParameterMissing) as exc:
        go({"get_param": "nope"})
    assert exc.value.message == "The Parameter (nope) was not provided."
    with pytest.raises(T.StackValidationFailed, match='Function "get_param" must have'):
        go({"get_param": []})


def test_resources_files_facade_and_azs():
    kwargs = {"sections": SECTIONS, "refs": {"net": "net-id"},
              "attrs": {"server": {"addresses": {"private": [{"addr": "10.0.0.5"}]},
                                   "name": "vm"}},
              "files": {"f.sh": "#!/bin/sh"}, "facade": {"metadata": {"m": 1}}}
    assert run({"get_resource": "net"}, **kwargs) == "net-id"
    assert run({"get_attr": ["server", "addresses", "private", 0, "addr"]}, **kwargs) == \
        "10.0.0.5"
    assert run({"get_attr": ["server", "addresses", "public", 0]}, **kwargs) is None
    assert run({"get_attr": ["server"]}, **kwargs) == kwargs["attrs"]["server"]
    assert run({"get_file": "f.sh"}, **kwargs) == "#!/bin/sh"
    assert run({"resource_facade": "metadata"}, **kwargs) == {"m": 1}
    assert fails({"get_file": "g"}, **kwargs) == \
        'get_file: No content found in the "files" section for get_file path: g'
    with pytest.raises(T.InvalidTemplateReference) as exc:
        run({"get_resource": "nope"}, **kwargs)
    assert exc.value.message == 'The specified reference "nope" (in unknown) is incorrect.'
    assert fails({"resource_facade": "wrong"}, **kwargs) == (
        'resource_facade: Incorrect arguments to "resource_facade" should be one of: '
        "metadata, deletion_policy, update_policy")


def test_cfn_functions():
    t = T.parse({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": {"Env": {"Type": "String", "Default": "prod"},
                       "Zones": {"Type": "CommaDelimitedList", "Default": "a,b"}},
        "Mappings": {"M": {"prod": {"size": "big"}}},
        "Resources": {"R": {"Type": "AWS::EC2::Instance"}}})
    s = Stack(t, refs={"R": "rid"}, attrs={"R": {"PublicIp": "1.2.3.4"}})

    def go(snippet):
        return T.resolve(snippet, t, s)
    assert go({"Ref": "R"}) == "rid"
    assert go({"Ref": "Env"}) == "prod"
    assert go({"Ref": "AWS::StackName"}) == "st"
    assert go({"Ref": "AWS::StackId"}) == "arn:openstack:heat::pid:stacks/st/sid"
    assert go({"Ref": "AWS::Region"}) == "ap-southeast-1"
    assert go({"Fn::GetAtt": ["R", "PublicIp"]}) == "1.2.3.4"
    assert go({"Fn::Join": ["-", ["a", {"Ref": "Env"}]]}) == "a-prod"
    assert go({"Fn::Select": ["1", ["x", "y"]]}) == "y"
    assert go({"Fn::Select": ["5", ["x", "y"]]}) == ""
    assert go({"Fn::Select": ["k", {"k": "v"}]}) == "v"
    assert go({"Fn::Select": [0, '["j1", "j2"]']}) == "j1"
    assert go({"Fn::Split": [",", "a,b"]}) == ["a", "b"]
    assert go({"Fn::Replace": [{"$v": "x"}, "is $v"]}) == "is x"
    assert go({"Fn::Base64": "data"}) == "data"
    assert go({"Fn::FindInMap": ["M", {"Ref": "Env"}, "size"]}) == "big"
    assert go({"Fn::GetAZs": ""}) == ["az1", "az2"]
    assert go({"Fn::MemberListToMap": ["Name", "Value", [
        ".member.0.Name=key", ".member.0.Value=door", ".member.1.Name=k2",
        ".member.1.Value=v2"]]}) == {"key": "door", "k2": "v2"}
    assert go({"Fn::If": [False, "a", "b"]}) == "b"
    with pytest.raises(T.InvalidTemplateReference, match='"Nope" .in unknown.'):
        go({"Ref": "Nope"})


def test_hot_2013_has_cfn_functions_later_versions_do_not():
    assert run({"Fn::Join": ["-", ["a", "b"]]}, "2013-05-23") == "a-b"
    assert run({"Fn::Select": [1, ["a", "b"]]}, "2014-10-16") == "b"
    # removed functions are not evaluated (validation refuses them)
    assert run({"Fn::Join": ["-", ["a", "b"]]}, KILO) == {"Fn::Join": ["-", ["a", "b"]]}
    # the 2013 get_attr selects a path from the attribute too
    t = tmpl("2013-05-23", resources={"s": {"type": "X"}})
    assert T.resolve({"get_attr": ["s", "a", "k"]}, t,
                     Stack(t, attrs={"s": {"a": {"k": "v"}}})) == "v"


# ---------------------------------------------------------------- conditions
COND_TEMPLATE = {
    "parameters": {"env": {"type": "string", "default": "test"},
                   "zone": {"type": "string", "default": "z1"},
                   "services": {"type": "comma_delimited_list", "default": "neutron,heat"}},
    "conditions": {
        "prod": {"equals": [{"get_param": "env"}, "prod"]},
        "not_prod": {"not": "prod"},
        "prod_z1": {"and": ["prod", {"equals": [{"get_param": "zone"}, "z1"]}]},
        "any": {"or": ["prod", "not_prod"]},
        "has_neutron": {"yaql": {"expression": '$.data.s.contains("neutron")',
                                 "data": {"s": {"get_param": "services"}}}},
        "has_heat": {"contains": ["heat", {"get_param": "services"}]},
        "always": True,
    },
    "resources": {"a": {"type": "X", "condition": "prod"},
                  "b": {"type": "X", "condition": "not_prod"},
                  "c": {"type": "X", "condition": {"equals": [{"get_param": "zone"}, "z1"]}},
                  "d": {"type": "X", "properties": {
                      "p": {"if": ["prod", {"get_resource": "a"}, {"get_resource": "b"}]}}}},
    "outputs": {"o": {"value": {"get_resource": "a"}, "condition": "prod"}},
}


def test_conditions_evaluate():
    t = tmpl(**COND_TEMPLATE)
    s = Stack(t)
    assert T.evaluate_conditions(t, s) == {
        "prod": False, "not_prod": True, "prod_z1": False, "any": True,
        "has_neutron": True, "has_heat": True, "always": True}
    assert s.enabled_resources() == ["b", "c", "d"]
    assert T.output_enabled("o", t, s) is False
    s = Stack(t, params={"env": "prod"})
    assert s.enabled_resources() == ["a", "c", "d"]
    assert T.resolve({"if": ["prod", 1, 2]}, t, s) == 1
    assert T.resolve({"if": [{"not": "prod"}, 1, 2]}, t, s) == 2


def test_condition_errors():
    t = tmpl(conditions={"a": {"not": "b"}, "b": {"not": "a"}})
    with pytest.raises(T.StackValidationFailed) as exc:
        Stack(t).condition("a")
    assert exc.value.message == ('Condition validation error: Circular definition for '
                                 'condition "a"')
    t = tmpl(conditions={"c": {"equals": [{"get_resource": "x"}, "y"]}})
    with pytest.raises(T.StackValidationFailed) as exc:
        T.parse(t.raw)
    assert exc.value.message == ('conditions.c.equals[0].get_resource: The function '
                                 '"get_resource" is invalid in this context')
    message = fails({"if": ["cd_not_existing", "t", "f"]}, NEWTON)
    assert 'Invalid condition "cd_not_existing"' in message and "if:" in message
    assert 'Arguments to "if" must be of the form' in fails({"if": ["c", "one"]}, NEWTON)


def test_if_nullable_from_wallaby():
    snippet = {"single": {"if": [False, "value_if_true"]},
               "nested_true": {"if": [True, {"if": [False, "foo"]}, "bar"]},
               "nested_false": {"if": [False, "baz", {"if": [False, "quux"]}]},
               "control": {"if": [False, True, None]},
               "list": ["a", {"if": [False, "b"]}, "c"]}
    assert run(snippet, WALLABY) == {"control": None, "list": ["a", "c"]}
    assert 'Arguments to "if" must be of the form' in fails({"if": [False, "x"]}, PIKE)


# ---------------------------------------------------------------- dependencies
def test_dependencies():
    snippet = {"a": {"get_resource": "net"},
               "b": [{"get_attr": ["server", "addresses", {"get_resource": "port"}, 0]}],
               "c": {"list_join": [",", [{"get_attr": ["lb"]}]]},
               "d": {"get_param": "x"}, "e": {"Ref": "legacy"},
               "f": {"Fn::GetAtt": ["cfn", "Attr"]}}
    assert T.dependencies(snippet) == {"net", "server", "port", "lb", "legacy", "cfn"}
    t = T.parse({"AWSTemplateFormatVersion": "2010-09-09",
                 "Parameters": {"P": {"Type": "String"}},
                 "Resources": {"R": {"Type": "X"}}})
    assert T.dependencies({"x": [{"Ref": "R"}, {"Ref": "P"}]}, t) == {"R"}
    t = tmpl(**COND_TEMPLATE)
    snippet = t.resources["d"].properties
    assert T.dependencies(snippet, t) == {"a", "b"}
    assert T.dependencies(snippet, t, Stack(t)) == {"b"}


# ---------------------------------------------------------------- validation
def _resources(version=PIKE, **resources):
    return {"heat_template_version": version, "resources": resources}


@pytest.mark.parametrize(("body", "error", "message"), [
    (_resources(server={"type": "X", "properties": {"image": {"get_attr": "xyz"}}}),
     T.StackValidationFailed,
     'resources.server.properties.image.get_attr: Argument to "get_attr" must be a list'),
    (_resources(KILO, server={"type": "X", "properties": {"image": {"get_attr": ["x"]}}}),
     T.StackValidationFailed,
     "resources.server.properties.image.get_attr: Arguments to \"get_attr\" must be of the "
     "form [resource_name, attribute, (path), ...]"),
    (_resources(server={"type": "X", "properties": {"image": {"get_attr": []}}}),
     T.StackValidationFailed,
     "resources.server.properties.image.get_attr: Arguments to \"get_attr\" can be of the "
     "next forms: [resource_name] or [resource_name, attribute, (path), ...]"),
    (_resources(server={"type": "X", "properties": {"nets": [
        {"port": {"list_join": [","]}}]}}), T.StackValidationFailed,
     'resources.server.properties.nets[0].port.list_join: Incorrect arguments to '
     '"list_join" should be: "list_join" : [ " ", [ "str1", "str2"] ...]'),
    (_resources(server={"type": "X", "properties": {"image": {"get_resource": "nope"}}}),
     T.InvalidTemplateReference,
     'The specified reference "nope" (in server.Properties.image) is incorrect.'),
    (_resources(server={"type": "X", "metadata": {"m": [{"get_attr": ["nope", "a"]}]}}),
     T.InvalidTemplateReference,
     'The specified reference "nope" (in server.Metadata.m[0]) is incorrect.'),
    (_resources(KILO, server={"type": "X", "properties": {"image": {"Ref": "x"}}}),
     T.StackValidationFailed,
     "resources.server.properties.image.Ref: The template version is invalid: The function "
     "Ref is not supported in this version of HOT."),
    (_resources(KILO, server={"type": "X", "properties": {"p": {"list_join": [
        ",", [{"Fn::Base64": "x"}]]}}}), T.StackValidationFailed,
     "resources.server.properties.p.list_join: [1][0].Fn::Base64: The template version is "
     "invalid: The function Fn::Base64 is not supported in this version of HOT."),
    (_resources(server={"type": "X", "properties": {"p": {"repeat": {
        "template": "x", "for_each": "%v%"}}}}), T.StackValidationFailed,
     'resources.server.properties.p.repeat: The "for_each" argument to "repeat" must '
     "contain a map"),
    (_resources(server={"type": "X", "properties": {"p": {"yaql": {
        "expression": "invalid("}}}}), T.StackValidationFailed,
     "resources.server.properties.p.yaql: Bad expression Parse error: unexpected end of "
     "statement."),
    (_resources(server={"type": "X", "properties": {"p": {"make_url": {
        "host": "h", "bad": 1}}}}), T.StackValidationFailed,
     'resources.server.properties.p.make_url: Invalid arguments to "make_url": bad'),
    (_resources(server={"type": "X", "properties": {"p": {"if": ["c", 1, 2]}}}),
     T.StackValidationFailed, 'resources.server.properties.p.if: Invalid condition "c"'),
    ({"heat_template_version": PIKE, "outputs": {"o": {"value": {"get_attr": ["r", "a"]}}}},
     T.StackValidationFailed,
     'outputs.o.value.get_attr: The specified reference "r" (in unknown) is incorrect.'),
    ({"HeatTemplateFormatVersion": "2012-12-12", "Resources": {"R": {
        "Type": "X", "Properties": {"P": {"Fn::Select": ["a"]}}}}},
     T.StackValidationFailed,
     'Resources.R.Properties.P.Fn::Select: Arguments to "Fn::Select" must be of the form '
     "[index, collection]"),
    ({"HeatTemplateFormatVersion": "2012-12-12", "Outputs": {"O": {
        "Value": {"Fn::GetAtt": ["Resource", "Foo"]}}}}, T.StackValidationFailed,
     'Outputs.O.Value.Fn::GetAtt: The specified reference "Resource" (in unknown) is '
     "incorrect."),
])
def test_validation_messages(body, error, message):
    with pytest.raises(error) as exc:
        T.parse(body)
    assert exc.value.message == message
    assert exc.value.status == 400


def test_validation_follows_conditions_when_values_are_known():
    body = {"heat_template_version": PIKE, "conditions": {"no": False},
            "resources": {"off": {"type": "X", "condition": "no"},
                          "on": {"type": "X", "properties": {
                              "p": {"if": ["no", {"get_attr": ["off", "a"]}, "x"]}}}}}
    t = T.parse(body, check_functions=False)
    T.validate_functions(t, resolver=Stack(t))  # the false branch is not checked
    body["resources"]["on"]["properties"]["p"]["if"][0] = True
    t = T.parse(body, check_functions=False)
    with pytest.raises(T.StackValidationFailed, match=r'"off" \(in unknown\)'):
        T.validate_functions(t, resolver=Stack(t))
    body["resources"]["on"]["properties"]["p"]["if"][0] = False
    t = T.parse(body)  # without values: both branches checked against every resource
    T.validate_functions(t, resolver=Stack(t))


def test_attribute_check_through_callback():
    body = _resources(a={"type": "X"}, b={"type": "X", "properties": {
        "p": {"get_attr": ["a", "foo"]}}})
    t = T.parse(body)
    with pytest.raises(T.StackValidationFailed) as exc:
        T.validate_functions(t, has_attribute=lambda name, attr: attr != "foo")
    assert exc.value.message == ("resources.b.properties.p.get_attr: The Referenced "
                                 "Attribute (a foo) is incorrect.")


def test_error_text_for_outputs():
    t = tmpl(outputs={"o": {"value": {"str_split": [",", 5]}}})
    with pytest.raises(T.TemplateError) as exc:
        T.resolve(t.outputs["o"].value, t, Stack(t), ["outputs", "o", "value"])
    assert T.error_text(exc.value) == "'int' object has no attribute 'split'"


def test_deletion_policy_from_a_parameter():
    t = T.parse({"heat_template_version": NEWTON,
                 "parameters": {"p": {"type": "string", "default": "retain"}},
                 "resources": {"r": {"type": "X", "deletion_policy": {"get_param": "p"}},
                               "s": {"type": "X"}}})
    assert T.deletion_policy(t.resources["r"], t, Stack(t)) == "Retain"
    assert T.deletion_policy(t.resources["s"], t, Stack(t)) == "Delete"
    with pytest.raises(T.StackValidationFailed, match='Invalid deletion policy "keep"'):
        T.deletion_policy(t.resources["r"], t, Stack(t, params={"p": "keep"}))


def test_conditions_are_validated_too():
    body = {"heat_template_version": PIKE, "conditions": {
        "c": {"yaql": {"expression": "invalid("}}}}
    with pytest.raises(T.StackValidationFailed) as exc:
        T.parse(body)
    assert exc.value.message.startswith("yaql: Bad expression Parse error")
    body["conditions"]["c"] = {"equals": [{"Ref": "x"}, 1]}
    with pytest.raises(T.StackValidationFailed) as exc:
        T.parse(body)
    assert exc.value.message == ("equals: [0].Ref: The template version is invalid: The "
                                 "function Ref is not supported in this version of HOT.")
