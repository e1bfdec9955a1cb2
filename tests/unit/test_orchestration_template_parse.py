"""Parsing templates: HOT and CFN, YAML and JSON, and Heat's errors for bad ones."""

from __future__ import annotations

import json

import pytest

from onestack.orchestration import template as T

# heat-tempest-plugin: tests/scenario/templates/test_server_signal.yaml
SERVER_SIGNAL = """
heat_template_version: 2013-05-23
description: |
  Template which uses a wait condition to confirm that a minimal
  signalling works in a created network
parameters:
  key_name:
    type: string
  flavor:
    type: string
  image:
    type: string
  subnet_cidr:
    type: string
    default: 10.100.0.0/16
  timeout:
    type: number
  public_net:
    type: string
    default: public
  dns_servers:
    type: comma_delimited_list
    default: ["8.8.8.8", "8.8.4.4"]
  wc_extra_args:
    type: string
    default: ""
resources:
  sg:
    type: OS::Neutron::SecurityGroup
    properties:
      description: Ping and SSH
      rules:
      - protocol: icmp
      - protocol: tcp
        port_range_min: 22
        port_range_max: 22
  floating_ip:
    type: OS::Neutron::FloatingIP
    properties:
      floating_network: {get_param: public_net}
  network:
    type: OS::Neutron::Net
  subnet:
    type: OS::Neutron::Subnet
    properties:
      network: {get_resource: network}
      ip_version: 4
      cidr: {get_param: subnet_cidr}
      dns_nameservers: {get_param: dns_servers}
  router:
    type: OS::Neutron::Router
    properties:
      external_gateway_info:
        network: {get_param: public_net}
  router_interface:
    type: OS::Neutron::RouterInterface
    properties:
      router: {get_resource: router}
      subnet: {get_resource: subnet}
  wait_handle:
    type: OS::Heat::WaitConditionHandle
  server:
    type: OS::Nova::Server
    properties:
      image: {get_param: image}
      flavor: {get_param: flavor}
      key_name: {get_param: key_name}
      networks:
      - subnet: {get_resource: subnet}
      security_groups:
      - {get_resource: sg}
      user_data:
        str_replace:
          template: |
            #!/bin/sh
            wc_notify --data-binary '{"status": "SUCCESS"}'
          params:
            wc_notify:
              list_join:
                - " "
                - [ get_attr: ['wait_handle', 'curl_cli'], get_param: wc_extra_args ]
  server_floating_ip_assoc:
    type: OS::Neutron::FloatingIPAssociation
    properties:
      floatingip_id: {get_resource: floating_ip}
      port_id: {get_attr: [server, addresses, {get_resource: network}, 0, port]}
  wait_condition:
    type: OS::Heat::WaitCondition
    depends_on: server
    properties:
      handle: {get_resource: wait_handle}
      timeout: {get_param: timeout}
outputs:
  server_ip:
    value: {get_attr: [floating_ip, floating_ip_address]}
  wc_data:
    value: {get_attr: [wait_condition, data]}
"""

# the api-ref's stack-create-request.json template (a JSON body)
API_REF_CREATE = {
    "heat_template_version": "2013-05-23",
    "description": "Simple template to test heat commands",
    "parameters": {"flavor": {"default": "m1.tiny", "type": "string"}},
    "resources": {"hello_world": {"type": "OS::Nova::Server", "properties": {
        "key_name": "heat_key", "flavor": {"get_param": "flavor"},
        "image": "40be8d1a-3eb9-40de-8abd-43237517384f",
        "user_data": "#!/bin/bash -xv\necho \"hello world\" &gt; /root/hello-world.txt\n"}}},
}

CFN = """{
  "AWSTemplateFormatVersion": "2010-09-09",
  "Description": "cfn",
  "Parameters": {"KeyName": {"Type": "String", "NoEcho": "true", "Default": "k"},
                 "Size": {"Type": "Number", "MinValue": 1, "MaxValue": 10, "Default": 2}},
  "Mappings": {"Arch": {"m1.small": {"Arch": "64"}}},
  "Conditions": {"Big": {"Fn::Equals": [{"Ref": "Size"}, 10]}},
  "Resources": {
    "Vol": {"Type": "AWS::EC2::Volume", "Condition": "Big",
            "DeletionPolicy": "Snapshot",
            "Properties": {"Size": {"Ref": "Size"}}},
    "Inst": {"Type": "AWS::EC2::Instance", "DependsOn": "Vol",
             "Properties": {"KeyName": {"Ref": "KeyName"},
                            "UserData": {"Fn::Base64": {"Fn::Join": ["", ["a", "b"]]}}}}
  },
  "Outputs": {"Id": {"Value": {"Fn::GetAtt": ["Inst", "PublicIp"]}, "Description": "ip"}}
}"""


def test_hot_yaml_with_everything():
    t = T.parse(SERVER_SIGNAL)
    assert t.version.name == "heat_template_version.2013-05-23"  # an unquoted date
    assert t.description.startswith("Template which uses a wait condition")
    assert list(t.resources)[:3] == ["sg", "floating_ip", "network"]
    server = t.resources["server"]
    assert server.type == "OS::Nova::Server"
    assert server.properties["image"] == {"get_param": "image"}
    assert t.resources["wait_condition"].depends_on == ["server"]
    assert t.resources["wait_condition"].deletion_policy == "Delete"
    assert t.parameters["dns_servers"].type == "comma_delimited_list"
    assert t.parameters["timeout"].default is None
    assert t.outputs["wc_data"].value == {"get_attr": ["wait_condition", "data"]}
    assert t.raw["resources"]["server"]["type"] == "OS::Nova::Server"


def test_api_ref_json_body_and_json_text():
    t = T.parse(API_REF_CREATE)
    assert t.resources["hello_world"].properties["flavor"] == {"get_param": "flavor"}
    assert t.raw is API_REF_CREATE
    assert T.parse(json.dumps(API_REF_CREATE)).description == \
        "Simple template to test heat commands"


def test_cfn_template():
    t = T.parse(CFN)
    assert t.version.type == "cfn"
    assert t.resources["Vol"].condition == "Big"
    assert t.resources["Vol"].deletion_policy == "Snapshot"
    assert t.resources["Inst"].depends_on == ["Vol"]
    assert t.mappings == {"Arch": {"m1.small": {"Arch": "64"}}}
    assert t.parameters["KeyName"].hidden is True
    assert t.outputs["Id"].description == "ip"


def test_no_description_and_empty_sections():
    t = T.parse("heat_template_version: 2015-04-30\nresources:\nparameters:\noutputs:\n")
    assert t.description == "No description"
    assert t.resources == {} and t.parameters == {} and t.outputs == {}


def test_lower_case_deletion_policy_from_newton():
    body = {"heat_template_version": "2016-10-14",
            "resources": {"r": {"type": "OS::Heat::None", "deletion_policy": "retain"}}}
    assert T.parse(body).resources["r"].deletion_policy == "Retain"
    body["heat_template_version"] = "2016-04-08"
    with pytest.raises(T.StackValidationFailed, match='Invalid deletion policy "retain"'):
        T.parse(body)


@pytest.mark.parametrize(("text", "message"), [
    ("- a\n- b\n", "Template not in valid format: The template is not a JSON object or "
                   "YAML mapping."),
    ("description: x\n", "Template not in valid format: Template format version not found."),
    ("heat_template_version: 2013-05-23\nresources: {a: [\n",
     "Template not in valid format: Error parsing template [root stack] "),
])
def test_text_errors(text, message):
    with pytest.raises(T.TemplateError) as exc:
        T.parse(text)
    assert exc.value.status == 400
    assert exc.value.message.startswith(message)


@pytest.mark.parametrize(("body", "message"), [
    ({"heat_template_version": "2099-01-01"},
     'The template version is invalid: "heat_template_version: 2099-01-01". '
     '"heat_template_version" should be one of: 2013-05-23, 2014-10-16, 2015-04-30, '
     "2015-10-15, 2016-04-08, 2016-10-14, 2017-02-24, 2017-09-01, 2018-03-02, 2018-08-31, "
     "2021-04-16, newton, ocata, pike, queens, rocky, wallaby"),
    ({"AWSTemplateFormatVersion": "2011-01-01"},
     'The template version is invalid: "AWSTemplateFormatVersion: 2011-01-01". '
     '"AWSTemplateFormatVersion" should be: 2010-09-09'),
    ({"description": "x"}, "The template version is invalid: Template version was not provided"),
    ({"heat_template_version": "2013-05-23", "AWSTemplateFormatVersion": "2010-09-09"},
     "The template version is invalid: Ambiguous versions (heat_template_version, "
     "AWSTemplateFormatVersion)"),
])
def test_version_errors(body, message):
    with pytest.raises(T.InvalidTemplateVersion) as exc:
        T.parse(body)
    assert exc.value.message == message
    assert exc.value.heat_type == "InvalidTemplateVersion"


def test_tempest_invalid_version_text():
    # heat-tempest-plugin test_template_validate_fail_version
    with pytest.raises(T.InvalidTemplateVersion, match="The template version is invalid"):
        T.parse(SERVER_SIGNAL.replace("2013-05-23", "invalid"))


def _hot(**sections):
    return {"heat_template_version": "2016-10-14", **sections}


@pytest.mark.parametrize(("body", "error", "message"), [
    (_hot(foo={}), T.InvalidTemplateSection, "The template section is invalid: foo"),
    (_hot(conditions={}, heat_template_version="2016-04-08"), T.InvalidTemplateSection,
     "The template section is invalid: conditions"),
    (_hot(resources=["a"]), T.StackValidationFailed, "'list' object has no attribute 'items'"),
    (_hot(resources={"r": None}), T.StackValidationFailed,
     "Each resource must contain a type key."),
    (_hot(resources={"r": {"properties": {}}}), T.StackValidationFailed,
     "Each resource must contain a type key."),
    (_hot(resources={"r": "OS::Nova::Server"}), T.StackValidationFailed,
     "\"resources\" must contain a map of resource maps. Found a [<class 'str'>] instead"),
    (_hot(resources={"r": {"Type": "OS::Heat::None"}}), T.StackValidationFailed,
     '"Type" is not a valid keyword inside a resource definition'),
    (_hot(resources={"r": {"type": ""}}), T.StackValidationFailed,
     "Each Resource must contain a Type key."),
    (_hot(resources={"r": {"type": "X", "properties": ["a"]}}), T.StackValidationFailed,
     "Resource r properties type must be object"),
    (_hot(resources={"r": {"type": "X", "metadata": "m"}}), T.StackValidationFailed,
     "Resource r metadata type must be object"),
    (_hot(resources={"r": {"type": "X", "depends_on": {"a": 1}}}), T.StackValidationFailed,
     "Resource r depends_on type must be list or string"),
    (_hot(resources={"r": {"type": "X", "depends_on": [1]}}), T.StackValidationFailed,
     "Resource r depends_on must be a list of strings"),
    (_hot(resources={"r": {"type": "X", "depends_on": "nope"}}), T.InvalidTemplateReference,
     'The specified reference "nope" (in r) is incorrect.'),
    (_hot(resources={"r": {"type": "X", "deletion_policy": "Keep"}}),
     T.StackValidationFailed, 'Invalid deletion policy "Keep"'),
    (_hot(resources={"r": {"type": "X", "condition": ["c"]}}), T.StackValidationFailed,
     "Resource r condition type must be string_or_boolean"),
    (_hot(resources={"r": {"type": "X", "condition": "nope"}}), T.StackValidationFailed,
     'resources.r.condition: Invalid condition "nope"'),
    (_hot(outputs={"o": "x"}), T.StackValidationFailed,
     "Output validation error: outputs.o: Output definitions must be a map. Found a str "
     "instead"),
    (_hot(outputs={"o": {"description": "d"}}), T.StackValidationFailed,
     "Output validation error: outputs.o: Each output definition must contain a value key."),
    (_hot(conditions=["c"]), T.StackValidationFailed,
     "Conditions validation error: Condition definitions must be a map. Found a list instead"),
    (_hot(conditions={"c": "other"}), T.StackValidationFailed,
     'Condition validation error: The definition of condition "c" is invalid: other'),
    (_hot(parameters={"r": {"type": "string"}}, resources={"r": {"type": "X"}}),
     T.StackValidationFailed, "Duplicate names {'r'}"),
    ({"HeatTemplateFormatVersion": "2012-12-12", "Resources": {"r": "x"}},
     T.StackValidationFailed,
     "Resources must contain Resource. Found a [<class 'str'>] instead"),
    ({"HeatTemplateFormatVersion": "2012-12-12", "Resources": {"r": {"Properties": {}}}},
     T.StackValidationFailed, "Each Resource must contain a Type key."),
    ({"AWSTemplateFormatVersion": "2010-09-09",
      "Outputs": {"o": {"Description": "d"}}}, T.StackValidationFailed,
     "Output validation error: Outputs.o: Each output definition must contain a Value key."),
])
def test_structure_errors(body, error, message):
    with pytest.raises(error) as exc:
        T.parse(body)
    assert exc.value.message == message
    assert exc.value.status == 400


def test_size_limit():
    text = "heat_template_version: 2013-05-23\ndescription: " + "x" * 600
    with pytest.raises(T.TemplateTooLarge) as exc:
        T.parse(text, max_size=500)
    assert exc.value.message == (
        f"Request limit exceeded: Template size ({len(text)} bytes) exceeds maximum allowed "
        "size (500 bytes).")
    assert exc.value.heat_type == "RequestLimitExceeded"
    with pytest.raises(T.TemplateTooLarge):
        T.parse({"heat_template_version": "2013-05-23", "description": "x" * 600},
                max_size=500)


def test_resource_limit():
    body = _hot(resources={f"r{i}": {"type": "OS::Heat::None"} for i in range(3)})
    with pytest.raises(T.TemplateError, match="Maximum resources per stack exceeded."):
        T.parse(body, max_resources=2)


def test_parameter_schema_errors():
    with pytest.raises(T.InvalidSchemaError, match=r"Invalid key 'typo' for parameter \(p\)"):
        T.parse(_hot(parameters={"p": {"type": "string", "typo": 1}}))
    with pytest.raises(T.InvalidSchemaError, match="Missing parameter type for parameter: p"):
        T.parse(_hot(parameters={"p": {"default": 1}}))
    with pytest.raises(T.InvalidSchemaError, match=r"Invalid type \(integer\)"):
        T.parse(_hot(parameters={"p": {"type": "integer"}}))
    # tags from 2018-03-02, modulo from 2017-02-24
    with pytest.raises(T.InvalidSchemaError, match="Invalid key 'tags'"):
        T.parse(_hot(parameters={"p": {"type": "string", "tags": ["a"]}}))
    body = _hot(parameters={"p": {"type": "number", "constraints": [
        {"modulo": {"step": 2, "offset": 1}}]}})
    with pytest.raises(T.InvalidSchemaError, match="No constraint expressed"):
        T.parse(body)
    body["heat_template_version"] = "2017-02-24"
    assert T.parse(body).parameters["p"].constraints[0].kind == "modulo"


def test_load_text_of_other_documents():
    # an environment has no template version to find
    assert T.load("parameters: {a: 1}", "Environment") == {"parameters": {"a": 1}}
    with pytest.raises(T.TemplateError, match="Environment not in valid format: The template "
                                              "is not a JSON object or YAML mapping."):
        T.load("[1]", "Environment")
