"""Template versions: the listings of ``GET /template_versions`` and
``GET /template_versions/{v}/functions`` as Heat gives them (its api-ref samples and
heat-tempest-plugin's gabbi tests are the reference)."""

from __future__ import annotations

import pytest

from onestack.orchestration import template as T

HOT_DATES = ["2013-05-23", "2014-10-16", "2015-04-30", "2015-10-15", "2016-04-08",
             "2016-10-14", "2017-02-24", "2017-09-01", "2018-03-02", "2018-08-31",
             "2021-04-16"]
ALIASES = {"2016-10-14": "newton", "2017-02-24": "ocata", "2017-09-01": "pike",
           "2018-03-02": "queens", "2018-08-31": "rocky", "2021-04-16": "wallaby"}


def _names(version, with_conditions=False):
    return [f["functions"] for f in T.list_functions(version, with_conditions)]


def test_versions_listing_matches_heat():
    listing = T.list_versions()
    # CFN first (Heat sorts the names: upper case before lower case), then by date
    assert [v["version"] for v in listing] == [
        "AWSTemplateFormatVersion.2010-09-09", "HeatTemplateFormatVersion.2012-12-12",
        *(f"heat_template_version.{d}" for d in HOT_DATES)]
    by_name = {v["version"]: v for v in listing}
    assert by_name["AWSTemplateFormatVersion.2010-09-09"] == {
        "version": "AWSTemplateFormatVersion.2010-09-09", "type": "cfn", "aliases": []}
    for date in HOT_DATES:
        entry = by_name[f"heat_template_version.{date}"]
        assert entry["type"] == "hot"
        alias = ALIASES.get(date)
        assert entry["aliases"] == ([f"heat_template_version.{alias}"] if alias else [])


def test_functions_of_2015_04_30_are_the_api_ref_sample():
    # api-ref samples/template-functions-list-response.json (order aside)
    sample = {
        "Fn::Select": "A function for selecting an item from a list or map.",
        "repeat": "A function for iterating over a list of items.",
        "resource_facade": "A function for retrieving data in a parent provider template.",
        "list_join": "A function for joining strings.",
        "str_replace": "A function for performing string substitutions.",
        "get_attr": "A function for resolving resource attributes.",
        "get_param": "A function for resolving parameter references.",
        "get_file": "A function for including a file inline.",
        "digest": "A function for performing digest operations.",
        "get_resource": "A function for resolving resource references.",
    }
    listing = T.list_functions("heat_template_version.2015-04-30")
    assert {f["functions"]: f["description"] for f in listing} == sample


def test_gabbi_get_file_description():
    listing = T.list_functions("heat_template_version.2016-04-08")
    get_file = [f for f in listing if f["functions"] == "get_file"]
    assert get_file == [{"functions": "get_file",
                         "description": "A function for including a file inline."}]


@pytest.mark.parametrize(("version", "expected"), [
    ("heat_template_version.2013-05-23",
     {"Fn::GetAZs", "get_param", "get_resource", "Ref", "get_attr", "Fn::Select",
      "Fn::Join", "list_join", "Fn::Split", "str_replace", "Fn::Replace", "Fn::Base64",
      "Fn::MemberListToMap", "resource_facade", "Fn::ResourceFacade", "get_file"}),
    ("heat_template_version.2014-10-16",
     {"get_attr", "get_file", "get_param", "get_resource", "list_join", "resource_facade",
      "str_replace", "Fn::Select"}),
    ("heat_template_version.2015-10-15",
     {"get_attr", "get_file", "get_param", "get_resource", "list_join", "repeat",
      "resource_facade", "str_replace", "digest", "str_split"}),
    ("heat_template_version.2016-04-08",
     {"get_attr", "get_file", "get_param", "get_resource", "list_join", "repeat",
      "resource_facade", "str_replace", "digest", "str_split", "map_merge"}),
    ("heat_template_version.newton",
     {"get_attr", "get_file", "get_param", "get_resource", "list_join", "repeat",
      "resource_facade", "str_replace", "digest", "str_split", "map_merge", "yaql",
      "map_replace", "if"}),
    ("heat_template_version.2017-02-24",
     {"get_attr", "get_file", "get_param", "get_resource", "list_join", "repeat",
      "resource_facade", "str_replace", "digest", "str_split", "map_merge", "yaql",
      "map_replace", "if", "filter", "str_replace_strict"}),
    ("heat_template_version.2021-04-16",
     {"get_attr", "get_file", "get_param", "get_resource", "list_join", "repeat",
      "resource_facade", "str_replace", "digest", "str_split", "map_merge", "yaql",
      "map_replace", "if", "filter", "str_replace_strict", "make_url", "list_concat",
      "str_replace_vstrict", "list_concat_unique", "contains"}),
    ("AWSTemplateFormatVersion.2010-09-09",
     {"Fn::FindInMap", "Fn::GetAZs", "Ref", "Fn::GetAtt", "Fn::Select", "Fn::Join",
      "Fn::Split", "Fn::Replace", "Fn::Base64", "Fn::MemberListToMap",
      "Fn::ResourceFacade", "Fn::If"}),
    ("HeatTemplateFormatVersion.2012-12-12",
     {"Fn::FindInMap", "Fn::GetAZs", "Ref", "Fn::GetAtt", "Fn::Select", "Fn::Join",
      "Fn::Split", "Fn::Replace", "Fn::Base64", "Fn::MemberListToMap",
      "Fn::ResourceFacade"}),
])
def test_function_sets(version, expected):
    names = _names(version)
    assert set(names) == expected
    assert len(names) == len(expected)


def test_condition_functions_are_listed_on_request():
    assert "equals" not in _names("heat_template_version.2016-10-14")
    assert set(_names("heat_template_version.2016-10-14", True)) - set(
        _names("heat_template_version.2016-10-14")) == {"equals", "not", "and", "or"}
    assert {"equals", "not", "and", "or", "yaql", "contains", "get_param"} <= set(
        _names("heat_template_version.pike", True))
    cfn = {f["functions"]: f["description"]
           for f in T.list_functions("AWSTemplateFormatVersion.2010-09-09", True)}
    assert {"Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or"} <= set(cfn)
    # Ref in a condition is the parameter-only Ref
    assert cfn["Ref"] == "A function for resolving parameter references."
    # asking for conditions does not change the plain listing afterwards (Heat's did)
    assert "equals" not in _names("heat_template_version.2016-10-14")


def test_unknown_version_is_404():
    with pytest.raises(T.NotFound) as exc:
        T.list_functions("heat_template_version.2099-01-01")
    assert exc.value.status == 404
    assert exc.value.message == "Template with version heat_template_version.2099-01-01 not found"


def test_sections_by_version():
    v = T.get_version("heat_template_version.2016-04-08")
    assert "conditions" not in v.sections and "condition" not in v.resource_keys
    v = T.get_version("heat_template_version.rocky")
    assert v.date == "2018-08-31"
    assert {"conditions", "parameter_groups"} <= set(v.sections)
    assert {"external_id", "condition"} <= set(v.resource_keys)
    assert "Conditions" in T.get_version("AWSTemplateFormatVersion.2010-09-09").sections
    assert "Conditions" not in T.get_version("HeatTemplateFormatVersion.2012-12-12").sections
