"""Orchestration (Heat v1) through the real `openstack stack ...` CLI (python-heatclient)
and openstacksdk: stacks of OS::Heat types made, shown, updated and deleted by the
engine; events, resources, outputs; validation, types and template versions; hooks;
rollback of a failing resource; and two projects that cannot see each other's stacks.
"""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import threading
import uuid

import httpx
import pytest
import yaml

from tests.cloud import Cloud, wait_for

TEMPLATE = {
    "heat_template_version": "2016-04-08",
    "description": "a test stack",
    "parameters": {"test_val": {"type": "string", "default": "one"}},
    "resources": {
        "test": {"type": "OS::Heat::TestResource", "properties": {"value": {"get_param": "test_val"}}},
        "rand": {"type": "OS::Heat::RandomString", "properties": {"length": 12},
                 "depends_on": "test"},
    },
    "outputs": {
        "output_value": {"description": "the value", "value": {"get_attr": ["test", "output"]}},
        "rand_len": {"value": {"str_split": [",", {"get_attr": ["rand", "value"]}]}},
    },
}


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def write(tmp_path, doc, fname: str = "t.yaml") -> str:
    path = tmp_path / fname
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def stack_status(cloud: Cloud, ref: str, **kw) -> str:
    return cloud.os_json("stack", "show", ref, **kw)["stack_status"]


def wait_stack(cloud: Cloud, ref: str, want: str, timeout: float = 60, **kw) -> dict:
    seen: dict = {}

    def check():
        seen.update(cloud.os_json("stack", "show", ref, **kw))
        return not seen["stack_status"].endswith("IN_PROGRESS")

    wait_for(check, timeout, what=f"stack {ref} to leave IN_PROGRESS")
    assert seen["stack_status"] == want, (seen["stack_status"], seen.get("stack_status_reason"))
    return seen


def waited_json(cloud: Cloud, *args: str, **kw) -> dict:
    """`openstack stack create|update --wait ... -f json`: the events it prints, then the JSON."""
    out = cloud.openstack(*args, "-f", "json", **kw).stdout
    return json.loads(out[out.index("{"):] if out.startswith("{") else out[out.index("\n{") + 1:])


def token(cloud: Cloud, user: str = "admin", env=None) -> str:
    return cloud.openstack("token", "issue", "-f", "value", "-c", "id", user=user, env=env).stdout.strip()


def test_stack_lifecycle(cloud, tmp_path):
    """create --wait, list, show, resources, events, outputs, update, PATCH update, delete."""
    sname = name("life")
    path = write(tmp_path, TEMPLATE)
    made = waited_json(cloud, "stack", "create", "--wait", "-t", path, "--parameter", "test_val=first", sname)
    assert made["stack_status"] == "CREATE_COMPLETE", made
    try:
        listed = {s["Stack Name"]: s for s in cloud.os_json("stack", "list")}
        assert listed[sname]["Stack Status"] == "CREATE_COMPLETE"
        shown = cloud.os_json("stack", "show", sname)
        assert shown["id"] == made["id"] and shown["parameters"]["test_val"] == "first"
        assert shown["description"] == "a test stack"
        outputs = {o["output_key"]: o["output_value"] for o in shown["outputs"]}
        assert outputs["output_value"] == "first"
        assert len(outputs["rand_len"][0]) == 12

        resources = {r["resource_name"]: r for r in cloud.os_json("stack", "resource", "list", sname)}
        assert set(resources) == {"test", "rand"}
        assert resources["test"]["resource_status"] == "CREATE_COMPLETE"
        assert resources["test"]["resource_type"] == "OS::Heat::TestResource"
        res = cloud.os_json("stack", "resource", "show", sname, "test")
        assert res["attributes"]["output"] == "first"
        assert res["physical_resource_id"].startswith(f"{sname}-test-")
        assert "rand" in res["required_by"]

        evs = cloud.os_json("stack", "event", "list", sname)
        seen = [(e["resource_name"], e["resource_status"]) for e in evs]
        for want in [(sname, "CREATE_IN_PROGRESS"), ("test", "CREATE_IN_PROGRESS"), ("test", "CREATE_COMPLETE"),
                     ("rand", "CREATE_COMPLETE"), (sname, "CREATE_COMPLETE")]:
            assert want in seen, seen
        # test before rand: rand depends on it
        assert seen.index(("test", "CREATE_COMPLETE")) < seen.index(("rand", "CREATE_IN_PROGRESS"))
        res_events = cloud.os_json("stack", "event", "list", sname, "--resource", "test")
        assert {e["resource_name"] for e in res_events} == {"test"}
        one = cloud.os_json("stack", "event", "show", sname, "test", res_events[0]["id"])
        assert one["resource_type"] == "OS::Heat::TestResource"

        keys = {o["output_key"] for o in cloud.os_json("stack", "output", "list", sname)}
        assert keys == {"output_value", "rand_len"}
        assert cloud.os_json("stack", "output", "show", sname, "output_value")["output_value"] == "first"

        before = res["physical_resource_id"]
        upd = waited_json(cloud, "stack", "update", "--wait", "-t", path, "--parameter", "test_val=second", sname)
        assert upd["stack_status"] == "UPDATE_COMPLETE", upd
        res = cloud.os_json("stack", "resource", "show", sname, "test")
        assert res["physical_resource_id"] == before  # value is update_allowed: changed in place
        assert res["attributes"]["output"] == "second"
        assert cloud.os_json("stack", "output", "show", sname, "output_value")["output_value"] == "second"

        cloud.openstack("stack", "update", "--wait", "--existing", "--parameter", "test_val=third", sname)
        assert cloud.os_json("stack", "output", "show", sname, "output_value")["output_value"] == "third"
        tmpl = yaml.safe_load(cloud.openstack("stack", "template", "show", sname, "-f", "yaml").stdout)
        assert tmpl["resources"]["test"]["type"] == "OS::Heat::TestResource"
    finally:
        cloud.openstack("stack", "delete", "--yes", "--wait", sname)
    r = cloud.openstack("stack", "show", sname, check=False)
    assert r.returncode != 0 and f"Stack not found: {sname}" in r.stderr
    # by id, a deleted stack is still shown (as Heat does)
    assert stack_status(cloud, made["id"]) == "DELETE_COMPLETE"


def test_tags_and_filters(cloud, tmp_path):
    """Tags are set at create, replaced by an update and cleared by one without them;
    list filters by tags and resource list by name (required_by shown)."""
    sname = name("tags")
    path = write(tmp_path, TEMPLATE)
    cloud.openstack("stack", "create", "--wait", "-t", path, "--tags", "foo,bar", sname)
    try:
        assert cloud.os_json("stack", "show", sname)["tags"] == ["foo", "bar"]
        assert [s["Stack Name"] for s in cloud.os_json("stack", "list", "--tags", "foo")] == [sname]
        assert sname not in [s["Stack Name"] for s in cloud.os_json("stack", "list", "--tags", "nope")]
        [test] = cloud.os_json("stack", "resource", "list", "--filter", "name=test", sname)
        assert test["resource_status"] == "CREATE_COMPLETE"
        cloud.openstack("stack", "update", "--wait", "-t", path, "--tags", "tag1,tag2", sname)
        assert cloud.os_json("stack", "show", sname)["tags"] == ["tag1", "tag2"]
        cloud.openstack("stack", "update", "--wait", "-t", path, sname)
        assert not cloud.os_json("stack", "show", sname)["tags"]
    finally:
        cloud.openstack("stack", "delete", "--yes", "--wait", sname)


def test_update_replace_and_remove(cloud, tmp_path):
    """update_replace: a new physical resource; a resource gone from the template is deleted."""
    sname = name("repl")
    doc = json.loads(json.dumps(TEMPLATE))
    cloud.openstack("stack", "create", "--wait", "-t", write(tmp_path, doc), sname)
    try:
        before = cloud.os_json("stack", "resource", "show", sname, "test")["physical_resource_id"]
        doc["resources"]["test"]["properties"]["update_replace"] = True
        doc["parameters"]["test_val"]["default"] = "changed"
        del doc["resources"]["rand"]
        del doc["outputs"]["rand_len"]
        cloud.openstack("stack", "update", "--wait", "-t", write(tmp_path, doc, "u.yaml"), sname)
        assert stack_status(cloud, sname) == "UPDATE_COMPLETE"
        resources = {r["resource_name"]: r for r in cloud.os_json("stack", "resource", "list", sname)}
        assert set(resources) == {"test"}
        assert resources["test"]["physical_resource_id"] != before
        evs = [(e["resource_name"], e["resource_status"]) for e in cloud.os_json("stack", "event", "list", sname)]
        assert ("rand", "DELETE_COMPLETE") in evs and ("test", "DELETE_COMPLETE") in evs
    finally:
        cloud.openstack("stack", "delete", "--yes", "--wait", sname)


def test_failing_resource_rolls_back(cloud, tmp_path):
    """TestResource fail: true -> CREATE_FAILED naming the resource; with rollback the
    resources made are deleted (ROLLBACK_COMPLETE); without, they stay."""
    doc = {"heat_template_version": "2016-04-08", "resources": {
        "good": {"type": "OS::Heat::TestResource"},
        "bad": {"type": "OS::Heat::TestResource", "properties": {"fail": True}, "depends_on": "good"}}}
    path = write(tmp_path, doc)
    kept = name("fail")
    cloud.openstack("stack", "create", "-t", path, kept)
    try:
        shown = wait_stack(cloud, kept, "CREATE_FAILED")
        assert "Resource CREATE failed: ValueError: resources.bad: Test Resource failed bad" in \
            shown["stack_status_reason"]
        status = {r["resource_name"]: r["resource_status"] for r in cloud.os_json("stack", "resource", "list", kept)}
        assert status == {"good": "CREATE_COMPLETE", "bad": "CREATE_FAILED"}
    finally:
        cloud.openstack("stack", "delete", "--yes", "--wait", kept)
    rolled = name("rollback")
    cloud.openstack("stack", "create", "--enable-rollback", "-t", path, rolled)
    try:
        wait_stack(cloud, rolled, "ROLLBACK_COMPLETE")
        assert cloud.os_json("stack", "resource", "list", rolled) == []
        evs = [(e["resource_name"], e["resource_status"]) for e in cloud.os_json("stack", "event", "list", rolled)]
        assert ("good", "DELETE_COMPLETE") in evs and (rolled, "ROLLBACK_COMPLETE") in evs
    finally:
        cloud.openstack("stack", "delete", "--yes", "--wait", rolled)


def test_validation_errors(cloud, tmp_path):
    """Bad templates are refused before anything is stored, with Heat's messages."""
    bad_type = {"heat_template_version": "2016-04-08", "resources": {"x": {"type": "OS::No::Such"}}}
    r = cloud.openstack("stack", "create", "-t", write(tmp_path, bad_type), name("bad"), check=False)
    assert r.returncode != 0 and "OS::No::Such" in r.stderr
    bad_prop = {"heat_template_version": "2016-04-08",
                "resources": {"x": {"type": "OS::Heat::RandomString", "properties": {"length": "abc"}}}}
    r = cloud.openstack("orchestration", "template", "validate", "-t", write(tmp_path, bad_prop, "p.yaml"),
                        check=False)
    assert r.returncode != 0 and "length" in r.stderr
    unknown = {"heat_template_version": "2016-04-08",
               "resources": {"x": {"type": "OS::Heat::RandomString", "properties": {"nope": 1}}}}
    r = cloud.openstack("stack", "create", "-t", write(tmp_path, unknown, "u.yaml"), name("bad"), check=False)
    assert r.returncode != 0 and "Unknown Property nope" in r.stderr
    missing = {"heat_template_version": "2016-04-08", "parameters": {"p": {"type": "string"}},
               "resources": {}}
    r = cloud.openstack("stack", "create", "-t", write(tmp_path, missing, "m.yaml"), name("bad"), check=False)
    assert r.returncode != 0 and "The Parameter (p) was not provided" in r.stderr
    flavored = {"heat_template_version": "2016-04-08",
                "parameters": {"f": {"type": "string", "constraints": [{"custom_constraint": "nova.flavor"}]}},
                "resources": {}}
    fpath = write(tmp_path, flavored, "f.yaml")
    r = cloud.openstack("stack", "create", "-t", fpath, "--parameter", "f=no-such-flavor", name("bad"),
                        check=False)
    assert r.returncode != 0 and "no-such-flavor" in r.stderr  # asked of the compute API
    cloud.openstack("orchestration", "template", "validate", "-t", fpath, "--parameter", "f=m1.nano")
    assert not [s for s in cloud.os_json("stack", "list") if s["Stack Name"].startswith("bad-")]


def test_validate_types_versions(cloud, tmp_path):
    out = cloud.os_json("orchestration", "template", "validate", "-t", write(tmp_path, TEMPLATE))
    assert out["Parameters"]["test_val"]["Default"] == "one"
    assert out["Description"] == "a test stack"
    types = cloud.os_json("orchestration", "resource", "type", "list")
    assert {"OS::Heat::TestResource", "OS::Heat::RandomString", "OS::Heat::None"} <= \
        {t["Resource Type"] for t in types}
    shown = yaml.safe_load(cloud.openstack("orchestration", "resource", "type", "show",
                                           "OS::Heat::TestResource", "-f", "yaml").stdout)
    assert shown["properties"]["wait_secs"]["default"] == 0
    assert shown["support_status"]["status"] == "SUPPORTED"
    hot = yaml.safe_load(cloud.openstack("orchestration", "resource", "type", "show", "--template-type", "hot",
                                         "OS::Heat::TestResource", "-f", "yaml").stdout)
    assert hot["resources"]["TestResource"]["type"] == "OS::Heat::TestResource"
    versions = {v["Version"]: v["Type"] for v in cloud.os_json("orchestration", "template", "version", "list")}
    assert versions["heat_template_version.2016-04-08"] == "hot"
    funcs = {f["Functions"]: f["Description"] for f in
             cloud.os_json("orchestration", "template", "function", "list", "heat_template_version.2016-04-08")}
    assert funcs["get_file"] == "A function for including a file inline."


def test_projects_are_isolated(cloud, tmp_path):
    """Another project's stack is absent (404), from the CLI and the SDK; admin's
    global_tenant listing sees every project's."""
    sname = name("mine")
    with cloud.new_member("heat") as env:
        cloud.openstack("stack", "create", "--wait", "-t", write(tmp_path, TEMPLATE), sname, env=env)
        try:
            sid = cloud.os_json("stack", "show", sname, env=env)["id"]
            assert [s["Stack Name"] for s in cloud.os_json("stack", "list", env=env)] == [sname]
            assert sname not in [s["Stack Name"] for s in cloud.os_json("stack", "list")]
            r = cloud.openstack("stack", "show", sname, check=False)
            assert r.returncode != 0 and "Stack not found" in r.stderr
            with cloud.new_member("other") as other:
                r = cloud.openstack("stack", "show", sid, env=other, check=False)
                assert r.returncode != 0 and "Stack not found" in r.stderr
                r = cloud.openstack("stack", "delete", "--yes", sid, env=other, check=False)
                assert r.returncode != 0
            every = cloud.os_json("stack", "list", "--all-projects")
            assert sname in [s["Stack Name"] for s in every]
        finally:
            cloud.openstack("stack", "delete", "--yes", "--wait", sname, env=env)


def test_hook_pre_create(cloud, tmp_path):
    """A pre-create hook pauses the resource (INIT_COMPLETE, an event saying so) until
    `openstack stack hook clear` signals {"unset_hook": "pre-create"}."""
    doc = {"heat_template_version": "2014-10-16", "resources": {
        "step1": {"type": "OS::Heat::RandomString"},
        "step2": {"type": "OS::Heat::RandomString", "depends_on": "step1"}}}
    env = {"resource_registry": {"resources": {"step2": {"hooks": "pre-create"}}}}
    sname = name("hook")
    cloud.openstack("stack", "create", "-t", write(tmp_path, doc), "-e", write(tmp_path, env, "e.yaml"), sname)
    try:
        def paused():
            evs = cloud.os_json("stack", "event", "list", sname, "--resource", "step2")
            return [e for e in evs if e["resource_status_reason"] == "CREATE paused until Hook pre-create is cleared"]

        ev = wait_for(paused, 30, what="the hook event")
        assert ev[0]["resource_status"] == "INIT_COMPLETE"
        assert stack_status(cloud, sname) == "CREATE_IN_PROGRESS"
        cloud.openstack("stack", "hook", "clear", "--pre-create", sname, "step2")
        wait_stack(cloud, sname, "CREATE_COMPLETE")
        reasons = [e["resource_status_reason"] for e in cloud.os_json("stack", "event", "list", sname)]
        assert "Hook pre-create is cleared" in reasons
    finally:
        cloud.openstack("stack", "delete", "--yes", "--wait", sname)


def test_wire_contract(cloud, tmp_path):
    """What only raw HTTP shows: 302 from a stack's name, Heat's error body, signal refusals,
    mark unhealthy (heat-tempest-plugin's gabbi tests)."""
    tok = token(cloud)
    project = cloud.os_json("token", "issue")["project_id"]
    base = f"{cloud.url}/orchestration/v1/{project}"
    h = {"X-Auth-Token": tok}
    sname = name("wire")
    r = httpx.post(f"{base}/stacks", headers=h, timeout=30, json={
        "stack_name": sname, "disable_rollback": True, "parameters": {}, "files": {},
        "template": {"heat_template_version": "2016-04-08",
                     "resources": {"test": {"type": "OS::Heat::TestResource"}}}})
    assert r.status_code == 201, r.text
    assert f"/stacks/{sname}/" in r.headers["location"]
    sid = r.json()["stack"]["id"]
    try:
        wait_stack(cloud, sid, "CREATE_COMPLETE")
        r = httpx.get(f"{base}/stacks/{sname}", headers=h, timeout=30)
        assert r.status_code == 302 and r.headers["location"].endswith(f"/stacks/{sname}/{sid}")
        r = httpx.get(f"{base}/stacks/{sname}/resources", headers=h, timeout=30)
        assert r.status_code == 302 and r.headers["location"].endswith(f"/stacks/{sname}/{sid}/resources")
        url = f"{base}/stacks/{sname}/{sid}"
        r = httpx.get(f"{url}/resources", params={"type": "OS::Nova::Server"}, headers=h, timeout=30)
        assert r.json() == {"resources": []}
        r = httpx.post(f"{url}/resources/test/signal", headers=h, timeout=30)
        assert r.status_code == 400
        r = httpx.patch(f"{url}/resources/test", headers=h, timeout=30,
                        json={"mark_unhealthy": True, "resource_status_reason": "resource deleted"})
        assert r.status_code == 200, r.text
        res = httpx.get(f"{url}/resources/test", headers=h, timeout=30).json()["resource"]
        assert (res["resource_status"], res["resource_status_reason"]) == ("CHECK_FAILED", "resource deleted")
        r = httpx.get(f"{base}/stacks/nosuch-{sname}", headers=h, timeout=30)
        assert r.status_code == 404
        err = r.json()
        assert err["code"] == 404 and err["error"]["type"] == "StackNotFound"
        assert err["error"]["message"] == f"The Stack (nosuch-{sname}) could not be found."
        r = httpx.post(f"{base}/stacks", headers={**h, "Content-Type": "application/json"}, content=b"{bad",
                       timeout=30)
        assert r.status_code == 400 and r.json()["error"]["type"] == "HTTPBadRequest"
        r = httpx.post(f"{base}/stacks", headers=h, timeout=30, json={
            "stack_name": sname, "template": {"heat_template_version": "2016-04-08"}})
        assert r.status_code == 409 and r.json()["error"]["type"] == "StackExists"
    finally:
        r = httpx.delete(f"{base}/stacks/{sname}", headers=h, timeout=30)
        assert r.status_code == 302
        assert httpx.delete(r.headers["location"], headers=h, timeout=30).status_code == 204
        wait_stack(cloud, sid, "DELETE_COMPLETE")


def test_software_config_api(cloud):
    """software_configs and software_deployments (the gabbi softwareconfig tests), via the SDK."""
    conn = cloud.sdk()
    try:
        cfg = conn.orchestration.post("/software_configs", json={
            "name": name("cfg"), "group": "script", "config": "#!/bin/sh -x\necho hello"}).json()
        cid = cfg["software_config"]["id"]
        assert conn.orchestration.get(f"/software_configs/{cid}").json()["software_config"]["group"] == "script"
        dep = conn.orchestration.post("/software_deployments", json={
            "action": "ACTION0", "config_id": cid, "server_id": "dummy_server"}).json()["software_deployment"]
        md = conn.orchestration.get("/software_deployments/metadata/dummy_server").json()["metadata"]
        assert md[0]["group"] == "script"
        upd = conn.orchestration.put(f"/software_deployments/{dep['id']}", json={
            "action": "ACTION1", "status": "COMPLETE", "status_reason": "completed"}).json()
        assert upd["software_deployment"]["action"] == "ACTION1"
        assert conn.orchestration.delete(f"/software_deployments/{dep['id']}").status_code == 204
        assert conn.orchestration.delete(f"/software_configs/{cid}").status_code == 204
    finally:
        conn.close()


def test_sdk_stack(cloud):
    """openstacksdk: create_stack, find, stacks(), resources, delete."""
    conn = cloud.sdk()
    sname = name("sdk")
    try:
        st = conn.orchestration.create_stack(name=sname, template=TEMPLATE, parameters={"test_val": "sdk"})
        st = conn.orchestration.wait_for_status(st, "CREATE_COMPLETE", failures=["CREATE_FAILED"], wait=60)
        assert sname in [s.name for s in conn.orchestration.stacks()]
        found = conn.orchestration.find_stack(sname)
        assert found.id == st.id
        assert {r.name for r in conn.orchestration.resources(found)} == {"test", "rand"}
        conn.orchestration.delete_stack(found)
        wait_for(lambda: conn.orchestration.find_stack(sname) is None, 60, what="stack gone")
    finally:
        if conn.orchestration.find_stack(sname) is not None:
            conn.orchestration.delete_stack(sname)
        conn.close()


PREVIEW = """
heat_template_version: 2015-04-30
parameters:
  incomming:
    type: string
resources:
  one:
    type: OS::Heat::TestResource
    properties:
      value: fred
  two:
    type: nested.yaml
    properties:
      value: {get_param: incomming}
    depends_on: one
"""
PREVIEW_NESTED = """
heat_template_version: 2015-04-30
parameters:
  value: {type: string}
resources:
  nested:
    type: OS::Heat::TestResource
    properties:
      value: {get_param: value}
"""


def test_preview(cloud):
    """Preview (POST /stacks/preview, heatclient's stacks.preview as heat-tempest-plugin
    calls it): resources with resolved properties, a nested stack's as a list; nothing stored."""
    from heatclient import client as heat_client
    from heatclient import exc

    conn = cloud.sdk()
    try:
        heat = heat_client.Client("1", session=conn.session, endpoint_override=conn.orchestration.get_endpoint())
        sname = name("prev")
        out = heat.stacks.preview(template=PREVIEW, stack_name=sname, disable_rollback=True,
                                  environment={"parameters": {"incomming": "abc"}},
                                  files={"nested.yaml": PREVIEW_NESTED}).to_dict()
        assert (out["id"], out["template_description"]) == ("None", "No description")
        assert out["parameters"]["OS::stack_id"] == "None" and out["parameters"]["incomming"] == "abc"
        one, nested = out["resources"]
        assert one["properties"]["value"] == "fred" and one["required_by"] == ["two"]
        assert "output" in one["attributes"] and one["resource_identity"]["stack_id"] == "None"
        inner = nested[0]
        assert inner["stack_name"] == f"{sname}-two" and inner["parent_resource"] == "two"
        assert inner["properties"]["value"] == "abc"
        with pytest.raises(exc.HTTPBadRequest) as err:
            heat.stacks.preview(template=PREVIEW.replace("get_param: incomming", "get_param: missing"),
                                stack_name=sname, disable_rollback=True,
                                environment={"parameters": {"incomming": "abc"}},
                                files={"nested.yaml": PREVIEW_NESTED})
        assert "Property error: : resources.two.properties.value: : The Parameter (missing) was not provided." \
            in str(err.value)
        assert sname not in [s["Stack Name"] for s in cloud.os_json("stack", "list")]
    finally:
        conn.close()


NESTED = {
    "heat_template_version": "2016-04-08",
    "parameters": {"count": {"type": "number", "default": 3}},
    "resources": {
        "group": {"type": "OS::Heat::ResourceGroup", "properties": {
            "count": {"get_param": "count"},
            "resource_def": {"type": "OS::Heat::TestResource", "properties": {"value": "v-%index%"}}}},
        "thing": {"type": "My::Thing", "properties": {"val": {"get_attr": ["group", "resource.0.output"]}}},
    },
    "outputs": {
        "values": {"value": {"get_attr": ["group", "output"]}},
        "echo": {"value": {"get_attr": ["thing", "echo"]}},
    },
}
THING = {"heat_template_version": "2016-04-08", "parameters": {"val": {"type": "string"}},
         "resources": {"r": {"type": "OS::Heat::Value", "properties": {"value": {"get_param": "val"}}}},
         "outputs": {"echo": {"value": {"get_attr": ["r", "value"]}}}}


def test_nested_stacks(cloud, tmp_path):
    """ResourceGroup and a template resource (a type mapped to a template file by the
    environment) are child stacks: made, listed with --nested-depth, resized, deleted."""
    write(tmp_path, THING, "thing.yaml")
    env = write(tmp_path, {"resource_registry": {"My::Thing": "thing.yaml"}}, "env.yaml")
    sname = name("nest")
    cloud.openstack("stack", "create", "--wait", "-t", write(tmp_path, NESTED), "-e", env, sname)
    try:
        outputs = {o["output_key"]: o["output_value"] for o in cloud.os_json("stack", "show", sname)["outputs"]}
        assert outputs == {"values": ["v-0", "v-1", "v-2"], "echo": "v-0"}
        top = {r["resource_name"]: r for r in cloud.os_json("stack", "resource", "list", sname)}
        assert top["thing"]["resource_type"] == "My::Thing"
        deep = cloud.os_json("stack", "resource", "list", "--nested-depth", "2", sname)
        assert {r["resource_name"] for r in deep} == {"group", "thing", "0", "1", "2", "r"}
        assert sname in [s["Stack Name"] for s in cloud.os_json("stack", "list")]
        nested = [s for s in cloud.os_json("stack", "list", "--nested") if s["Stack Name"].startswith(sname + "-")]
        assert len(nested) == 2
        cloud.openstack("stack", "update", "--wait", "--existing", "--parameter", "count=1", sname)
        outputs = {o["output_key"]: o["output_value"] for o in cloud.os_json("stack", "show", sname)["outputs"]}
        assert outputs["values"] == ["v-0"]
    finally:
        cloud.openstack("stack", "delete", "--yes", "--wait", sname)
    left = [s for s in cloud.os_json("stack", "list", "--nested") if s["Stack Name"].startswith(sname)]
    assert left == []


@pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox is not installed")
def test_wait_condition_signalled_by_wget(cloud, tmp_path):
    """A guest's `busybox wget --post-data` to the handle's endpoint (no token) completes
    the WaitCondition; a bad signature is refused."""
    doc = {"heat_template_version": "2016-04-08", "resources": {
        "handle": {"type": "OS::Heat::WaitConditionHandle"},
        "wait": {"type": "OS::Heat::WaitCondition",
                 "properties": {"handle": {"get_resource": "handle"}, "timeout": 120}}},
        "outputs": {"url": {"value": {"get_attr": ["handle", "endpoint"]}},
                    "data": {"value": {"get_attr": ["wait", "data"]}}}}
    sname = name("wait")
    cloud.openstack("stack", "create", "-t", write(tmp_path, doc), sname)
    try:
        url = wait_for(lambda: cloud.os_json("stack", "output", "show", sname, "url")["output_value"], 30,
                       what="the handle's endpoint")
        bad = subprocess.run(["busybox", "wget", "-q", "-O-", "--post-data", "{}", url[:-4] + "0000"],
                             capture_output=True, text=True, timeout=30)
        assert bad.returncode != 0 and "403" in bad.stderr
        assert stack_status(cloud, sname) == "CREATE_IN_PROGRESS"
        ok = subprocess.run(["busybox", "wget", "-q", "-O-", "--post-data",
                             '{"status": "SUCCESS", "data": "ready", "id": "1"}', url],
                            capture_output=True, text=True, timeout=30)
        assert ok.returncode == 0, ok.stderr
        wait_stack(cloud, sname, "CREATE_COMPLETE")
        assert json.loads(cloud.os_json("stack", "output", "show", sname, "data")["output_value"]) == {"1": "ready"}
    finally:
        cloud.openstack("stack", "delete", "--yes", "--wait", sname)


def test_engine_restart_fails_stacks_in_progress(tmp_path):
    """A stack IN_PROGRESS when the engine went down is FAILED saying so at the next start,
    and can then be deleted."""
    c = Cloud("heat-restart").start()
    try:
        doc = {"heat_template_version": "2016-04-08",
               "resources": {"slow": {"type": "OS::Heat::TestResource", "properties": {"action_wait_secs": {"create": 600, "delete": 0}}}}}
        sname = name("slow")
        c.openstack("stack", "create", "-t", write(tmp_path, doc), sname)
        wait_for(lambda: [r for r in c.os_json("stack", "resource", "list", sname)
                          if r["resource_status"] == "CREATE_IN_PROGRESS"], 30, what="the resource in progress")
        c.onestack("down")
        c.start()
        shown = c.os_json("stack", "show", sname)
        assert shown["stack_status"] == "CREATE_FAILED"
        assert shown["stack_status_reason"] == "Engine went down during stack CREATE"
        c.openstack("stack", "delete", "--yes", "--wait", sname)
    finally:
        c.stop()


RANDOM = """
heat_template_version: 2014-10-16
description: the stack description
parameters:
  aparam:
    type: number
    default: 10
    description: the param description
resources:
  myres:
    type: OS::Heat::RandomString
    properties:
      length: {get_param: aparam}
"""
PARENT = """
heat_template_version: 2014-10-16
description: the parent template
resources:
  nres:
    type: mynested.yaml
"""


def test_validate_views(cloud):
    """POST /validate as heat-tempest-plugin checks it: parameters, the environment
    (registry overrides, template types), show_nested."""
    from heatclient import client as heat_client
    from heatclient import exc

    conn = cloud.sdk()
    try:
        heat = heat_client.Client("1", session=conn.session, endpoint_override=conn.orchestration.get_endpoint())
        aparam = {"Default": 10, "Description": "the param description", "Label": "aparam", "NoEcho": "false",
                  "Type": "Number"}
        empty_env = {"event_sinks": [], "parameter_defaults": {}, "parameters": {},
                     "resource_registry": {"resources": {}}}
        assert heat.stacks.validate(template=RANDOM) == {
            "Description": "the stack description", "Parameters": {"aparam": aparam}, "Environment": empty_env}
        ret = heat.stacks.validate(template=RANDOM, environment={"parameters": {"aparam": 5}})
        assert ret["Parameters"]["aparam"]["Value"] == 5
        ret = heat.stacks.validate(template=RANDOM, environment={
            "resource_registry": {"OS::Heat::RandomString": "OS::Heat::None"}})
        assert ret["Environment"]["resource_registry"] == {"OS::Heat::RandomString": "OS::Heat::None",
                                                           "resources": {}}
        ret = heat.stacks.validate(template=RANDOM.replace("default: 10", ""))
        assert "Default" not in ret["Parameters"]["aparam"]
        with pytest.raises(exc.HTTPBadRequest, match="The template version is invalid"):
            heat.stacks.validate(template=RANDOM.replace("2014-10-16", "invalid"))
        ret = heat.stacks.validate(template=PARENT, files={"mynested.yaml": RANDOM}, show_nested=True)
        assert ret["NestedParameters"] == {"nres": {"Description": "the stack description",
                                                    "Parameters": {"aparam": aparam}, "Type": "mynested.yaml"}}
        # two levels; the value the parent passes is each nested parameter's Value
        ret = heat.stacks.validate(template=PARENT_PROP, show_nested=True, files={
            "mynested.yaml": RANDOM.replace("OS::Heat::RandomString", "mynested2.yaml"),
            "mynested2.yaml": RANDOM})
        nres = ret["NestedParameters"]["nres"]
        assert nres["Parameters"] == {"aparam": {**aparam, "Value": 5}}
        assert nres["NestedParameters"] == {"myres": {"Description": "the stack description",
                                                      "Parameters": {"aparam": aparam}, "Type": "mynested2.yaml"}}
    finally:
        conn.close()


PARENT_PROP = """
heat_template_version: 2014-10-16
description: the parent template
parameters:
  pparam: {type: number, default: 5}
resources:
  nres:
    type: mynested.yaml
    properties:
      aparam: {get_param: pparam}
"""
RG_PREVIEW = """
heat_template_version: 2015-04-30
resources:
  fixed_network:
    type: OS::Neutron::Net
  rg:
    type: OS::Heat::ResourceGroup
    properties:
      count: 1
      resource_def:
        type: nested.yaml
        properties:
          fixed_network_id: {get_resource: fixed_network}
"""
RG_PREVIEW_NESTED = """
heat_template_version: 2015-04-30
parameters:
  fixed_network_id: {type: string}
resources:
  port:
    type: OS::Neutron::Port
    properties:
      network_id: {get_param: fixed_network_id}
"""


def test_preview_group_of_template_referring_to_a_resource(cloud):
    """Preview of a ResourceGroup whose resource_def refers to a resource not made yet
    (only that value is unknown): the group's members are previewed, not a 500."""
    from heatclient import client as heat_client

    conn = cloud.sdk()
    try:
        heat = heat_client.Client("1", session=conn.session, endpoint_override=conn.orchestration.get_endpoint())
        out = heat.stacks.preview(template=RG_PREVIEW, stack_name=name("rgprev"), disable_rollback=True,
                                  files={"nested.yaml": RG_PREVIEW_NESTED}).to_dict()
        found = []

        def walk(items):
            for item in items:
                if isinstance(item, dict):
                    found.append((item["resource_name"], item["resource_type"]))
                else:
                    walk(item)

        walk(out["resources"])
        assert sorted(found) == [("fixed_network", "OS::Neutron::Net"), ("port", "OS::Neutron::Port")]
    finally:
        conn.close()


def test_hook_on_a_resource_of_a_nested_stack(cloud, tmp_path):
    """A pre-create hook on a nested stack's resource (environment path nested/foo_step2):
    the parent's resource links its child stack by the child's own name and id; the hook
    pauses the child's resource and is cleared by a signal to the child stack."""
    inner = {"heat_template_version": "2014-10-16", "resources": {
        "foo_step1": {"type": "OS::Heat::RandomString"},
        "foo_step2": {"type": "OS::Heat::RandomString", "depends_on": "foo_step1"}}}
    write(tmp_path, inner, "nested.yaml")
    doc = {"heat_template_version": "2014-10-16", "resources": {"nested": {"type": "nested.yaml"}}}
    env = {"resource_registry": {"resources": {"nested": {"foo_step2": {"hooks": "pre-create"}}}}}
    sname = name("nhook")
    cloud.openstack("stack", "create", "-t", write(tmp_path, doc), "-e", write(tmp_path, env, "e.yaml"), sname)
    try:
        def nested_link():
            res = cloud.os_json("stack", "resource", "show", sname, "nested")
            return [link["href"] for link in res["links"] if link["rel"] == "nested"]

        href = wait_for(nested_link, 30, what="the nested link")[0]
        child_name, child_id = href.split("/")[-2:]
        child = cloud.os_json("stack", "show", child_id)
        assert (child["stack_name"], child["id"]) == (child_name, child_id)
        ref = f"{child_name}/{child_id}"

        def paused():
            evs = cloud.os_json("stack", "event", "list", ref, "--resource", "foo_step2")
            return [e for e in evs if e["resource_status_reason"] == "CREATE paused until Hook pre-create is cleared"]

        assert wait_for(paused, 30, what="the hook event")[0]["resource_status"] == "INIT_COMPLETE"
        cloud.openstack("stack", "resource", "signal", "--data", '{"unset_hook": "pre-create"}', ref, "foo_step2")
        wait_stack(cloud, sname, "CREATE_COMPLETE")
        assert cloud.os_json("stack", "resource", "show", ref, "foo_step2")["resource_status"] == "CREATE_COMPLETE"
    finally:
        cloud.openstack("stack", "delete", "--yes", "--wait", sname)
    # deleted while its child waits at the hook: the child's cancelled create is not a failed delete
    cloud.openstack("stack", "create", "-t", write(tmp_path, doc), "-e", write(tmp_path, env, "e.yaml"), sname)
    wait_for(lambda: [e for e in cloud.os_json("stack", "event", "list", "--nested-depth", "2", sname)
                      if e["resource_status_reason"] == "CREATE paused until Hook pre-create is cleared"],
             30, what="the hook event")
    cloud.openstack("stack", "delete", "--yes", "--wait", sname)
    assert [s for s in cloud.os_json("stack", "list", "--nested") if s["Stack Name"].startswith(sname)] == []


def test_hook_pre_update_nochange(cloud, tmp_path):
    """A pre-update hook pauses even an unchanged resource (its status stays
    CREATE_COMPLETE) until cleared; the resource is kept."""
    doc = {"heat_template_version": "2014-10-16", "resources": {
        "step1": {"type": "OS::Heat::RandomString"},
        "step2": {"type": "OS::Heat::RandomString", "depends_on": "step1"}}}
    env = write(tmp_path, {"resource_registry": {"resources": {"step2": {"hooks": "pre-update"}}}}, "e.yaml")
    path = write(tmp_path, doc)
    sname = name("hookup")
    cloud.openstack("stack", "create", "--wait", "-t", path, "-e", env, sname)
    try:
        before = cloud.os_json("stack", "resource", "show", sname, "step2")["physical_resource_id"]
        cloud.openstack("stack", "update", "-t", path, "-e", env, sname)

        def paused():
            evs = cloud.os_json("stack", "event", "list", sname, "--resource", "step2")
            return [e for e in evs if e["resource_status_reason"] == "UPDATE paused until Hook pre-update is cleared"]

        ev = wait_for(paused, 30, what="the hook event")
        assert ev[0]["resource_status"] == "CREATE_COMPLETE"
        cloud.openstack("stack", "hook", "clear", "--pre-update", sname, "step2")
        wait_stack(cloud, sname, "UPDATE_COMPLETE")
        assert cloud.os_json("stack", "resource", "show", sname, "step2")["physical_resource_id"] == before
    finally:
        cloud.openstack("stack", "delete", "--yes", "--wait", sname)


def test_actions_and_cancel(cloud, tmp_path):
    """suspend, resume and check; cancel of an update rolls back to the previous parameters."""
    sname = name("act")
    doc = {"heat_template_version": "2016-04-08", "parameters": {"v": {"type": "string", "default": "a"}},
           "resources": {"t": {"type": "OS::Heat::TestResource", "properties": {
               "value": {"get_param": "v"}, "action_wait_secs": {"update": 600}}}}}
    path = write(tmp_path, doc)
    cloud.openstack("stack", "create", "--wait", "-t", path, sname)
    try:
        for action, status in (("suspend", "SUSPEND_COMPLETE"), ("resume", "RESUME_COMPLETE"),
                               ("check", "CHECK_COMPLETE")):
            cloud.openstack("stack", action, "--wait", sname)
            assert stack_status(cloud, sname) == status
        cloud.openstack("stack", "update", "-t", path, "--parameter", "v=b", sname)
        wait_for(lambda: [r for r in cloud.os_json("stack", "resource", "list", sname)
                          if r["resource_status"] == "UPDATE_IN_PROGRESS"], 30, what="the update in progress")
        cloud.openstack("stack", "cancel", sname)
        shown = wait_stack(cloud, sname, "ROLLBACK_COMPLETE")
        assert shown["parameters"]["v"] == "a"
        r = cloud.openstack("stack", "cancel", sname, check=False)
        assert r.returncode != 0 and "not in cancelable state" in r.stderr
    finally:
        cloud.openstack("stack", "delete", "--yes", "--wait", sname)


STACK_CHILD = {"heat_template_version": "2016-04-08", "parameters": {"v": {"type": "string", "default": "d"}},
               "resources": {"r": {"type": "OS::Heat::Value", "properties": {"value": {"get_param": "v"}}}},
               "outputs": {"echo": {"value": {"get_attr": ["r", "value"]}}}}


class _Serve(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def test_stack_resources(cloud, tmp_path):
    """OS::Heat::Stack (template from get_file, parameters, timeout; outputs and
    stack_name attributes, updated in place) and AWS::CloudFormation::Stack (TemplateURL
    served on loopback; Outputs.<key>); another region is refused."""
    _Serve.body = yaml.safe_dump(STACK_CHILD).encode()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Serve)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    write(tmp_path, STACK_CHILD, "child.yaml")
    doc = {"heat_template_version": "2016-04-08", "parameters": {"v": {"type": "string", "default": "hello"}},
           "resources": {
               "s": {"type": "OS::Heat::Stack", "properties": {
                   "template": {"get_file": "child.yaml"}, "parameters": {"v": {"get_param": "v"}}, "timeout": 7}},
               "c": {"type": "AWS::CloudFormation::Stack", "properties": {
                   "TemplateURL": f"http://127.0.0.1:{server.server_port}/child.yaml", "Parameters": {"v": "cfn"}}}},
           "outputs": {"outs": {"value": {"get_attr": ["s", "outputs"]}},
                       "name": {"value": {"get_attr": ["s", "stack_name"]}},
                       "cfn": {"value": {"get_attr": ["c", "Outputs.echo"]}},
                       "ref": {"value": {"get_resource": "c"}}}}
    sname = name("stk")
    path = write(tmp_path, doc)
    try:
        cloud.openstack("stack", "create", "--wait", "-t", path, sname)
        outs = {o["output_key"]: o["output_value"] for o in cloud.os_json("stack", "show", sname)["outputs"]}
        assert outs["outs"] == {"echo": "hello"} and outs["cfn"] == "cfn"
        child = cloud.os_json("stack", "show", outs["name"])
        assert child["timeout_mins"] == 7 and child["parent"] == cloud.os_json("stack", "show", sname)["id"]
        cfn_child = cloud.os_json("stack", "resource", "show", sname, "c")["physical_resource_id"]
        assert outs["ref"].startswith("arn:openstack:heat::") and outs["ref"].endswith(f"/{cfn_child}")
        s_id = cloud.os_json("stack", "resource", "show", sname, "s")["physical_resource_id"]
        cloud.openstack("stack", "update", "--wait", "--existing", "--parameter", "v=again", sname)
        outs = {o["output_key"]: o["output_value"] for o in cloud.os_json("stack", "show", sname)["outputs"]}
        assert outs["outs"] == {"echo": "again"}
        assert cloud.os_json("stack", "resource", "show", sname, "s")["physical_resource_id"] == s_id
        other = {**doc, "resources": {"s": {"type": "OS::Heat::Stack", "properties": {
            "template": {"get_file": "child.yaml"}, "context": {"region_name": "Elsewhere"}}}}, "outputs": {}}
        bad = cloud.openstack("stack", "create", "-t", write(tmp_path, other, "o.yaml"), name("stk"), check=False)
        assert bad.returncode != 0 and 'region "Elsewhere"' in bad.stderr
    finally:
        cloud.openstack("stack", "delete", "--yes", "--wait", sname)
        server.shutdown()


def test_hidden_stack_tag(cloud, tmp_path):
    """A stack tagged with a hidden tag (default `hidden`) is left out of `stack list`
    unless `--hidden`; it is still shown by name."""
    sname = name("hid")
    cloud.openstack("stack", "create", "--wait", "--tags", "foo,hidden", "-t", write(tmp_path, TEMPLATE), sname)
    try:
        assert sname not in [s["Stack Name"] for s in cloud.os_json("stack", "list")]
        assert sname in [s["Stack Name"] for s in cloud.os_json("stack", "list", "--hidden")]
        assert cloud.os_json("stack", "show", sname)["tags"] == ["foo", "hidden"]
    finally:
        cloud.openstack("stack", "delete", "--yes", "--wait", sname)
