"""Software deployments through `openstack stack ...` and `openstack software deployment
...`: OS::Heat::SoftwareDeployment(s)/StructuredDeployment put derived configs in the
server resource's `deployments` metadata, wait for the guest's POST to deploy_signal_id
(no token), fail on a non-zero status code, and go FAILED when the stack times out.

The "server" here is an OS::Heat::TestResource: deployments find the stack resource
whose physical id is the server id, whatever its type (as Heat does), so no guest is
booted; the guest's side is its agent's plain HTTP POST.
"""

from __future__ import annotations

import uuid

import httpx
import yaml

from tests.cloud import Cloud, wait_for

SERVER = {"heat_template_version": "2013-05-23",
          "resources": {"server": {"type": "OS::Heat::TestResource"}},
          "outputs": {"server": {"value": {"get_resource": "server"}}}}


def deployments(count: int, kind: str = "OS::Heat::SoftwareDeployments", **extra) -> dict:
    doc = {"heat_template_version": "2013-05-23", "parameters": {"server": {"type": "string"}},
           "resources": {"config": {"type": "OS::Heat::SoftwareConfig", "properties": {
               "config": "#!/bin/sh\necho hi", "outputs": [{"name": "result"}]}}}}
    for i in range(count):
        props = {"config": {"get_resource": "config"}, **extra}
        if kind.endswith("s"):
            props["servers"] = {"0": {"get_param": "server"}}
        else:
            props["server"] = {"get_param": "server"}
        doc["resources"][f"dep_{i}"] = {"type": kind, "properties": props}
    return doc


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def write(tmp_path, doc, fname: str) -> str:
    path = tmp_path / fname
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def wait_stack(cloud: Cloud, ref: str, want: str, timeout: float = 60) -> dict:
    seen: dict = {}

    def check():
        seen.update(cloud.os_json("stack", "show", ref))
        return not seen["stack_status"].endswith("IN_PROGRESS")

    wait_for(check, timeout, what=f"stack {ref} to leave IN_PROGRESS")
    assert seen["stack_status"] == want, (seen["stack_status"], seen.get("stack_status_reason"))
    return seen


def server_metadata(cloud: Cloud, stack: str) -> dict:
    return cloud.os_json("stack", "resource", "metadata", stack, "server")


def inputs(deployment: dict) -> dict:
    return {i["name"]: i["value"] for i in deployment["inputs"]}


def make_server(cloud: Cloud, tmp_path) -> tuple[str, str]:
    sname = name("srv")
    cloud.openstack("stack", "create", "--wait", "-t", write(tmp_path, SERVER, "server.yaml"), sname)
    server = cloud.os_json("stack", "output", "show", sname, "server")["output_value"]
    return sname, server


def test_deployments_signalled_through_their_urls(cloud, tmp_path):
    """Each deployment's derived config is in the server's metadata; POSTing the outputs
    to its deploy_signal_id (no token) completes it, a non-zero status code fails it."""
    srv, server = make_server(cloud, tmp_path)
    good, bad = name("deps"), name("depfail")
    try:
        cloud.openstack("stack", "create", "-t", write(tmp_path, deployments(3), "d.yaml"),
                        "--parameter", f"server={server}", good)
        md = wait_for(lambda: len(server_metadata(cloud, srv).get("deployments", [])) == 3 and
                      server_metadata(cloud, srv), 60, what="3 deployments in the server's metadata")
        listed = cloud.os_json("software", "deployment", "list", "--server", server)
        assert [d["status"] for d in listed] == ["IN_PROGRESS"] * 3
        assert cloud.os_json("stack", "show", good)["stack_status"] == "CREATE_IN_PROGRESS"
        for dep in md["deployments"]:
            iv = inputs(dep)
            assert (iv["deploy_server_id"], iv["deploy_action"], iv["deploy_signal_verb"]) == (server, "CREATE",
                                                                                             "POST")
            assert dep["config"] == "#!/bin/sh\necho hi"
            # the guest's agent: a plain POST of its outputs, no token
            r = httpx.post(iv["deploy_signal_id"], json={"deploy_stdout": "done", "deploy_status_code": 0,
                                                         "result": "42"}, timeout=30)
            assert r.status_code == 200, r.text
        wait_stack(cloud, good, "CREATE_COMPLETE")
        listed = cloud.os_json("software", "deployment", "list", "--server", server)
        assert [d["status"] for d in listed] == ["COMPLETE"] * 3
        shown = cloud.os_json("software", "deployment", "show", "--long", listed[0]["id"])
        assert shown["output_values"]["deploy_stdout"] == "done" and shown["output_values"]["result"] == "42"
        # a refused signature changes nothing
        url = inputs(md["deployments"][0])["deploy_signal_id"]
        assert httpx.post(url[:-4] + "0000", json={}, timeout=30).status_code == 403

        cloud.openstack("stack", "create", "-t", write(tmp_path, deployments(1, "OS::Heat::SoftwareDeployment"),
                                                       "f.yaml"), "--parameter", f"server={server}", bad)
        md = wait_for(lambda: len(server_metadata(cloud, srv).get("deployments", [])) == 4 and
                      server_metadata(cloud, srv), 60, what="the 4th deployment")
        url = next(inputs(d)["deploy_signal_id"] for d in md["deployments"]
                   if inputs(d)["deploy_stack_id"].startswith(bad + "/"))
        assert httpx.post(url, json={"deploy_status_code": 3}, timeout=30).status_code == 200
        st = wait_stack(cloud, bad, "CREATE_FAILED")
        assert "Deployment exited with non-zero status code: 3" in st["stack_status_reason"]
    finally:
        cloud.openstack("stack", "delete", "--yes", "--wait", good, bad)
    # the deployments went with their stacks, and out of the server's metadata
    assert cloud.os_json("software", "deployment", "list", "--server", server) == []
    assert server_metadata(cloud, srv)["deployments"] == []
    cloud.openstack("stack", "delete", "--yes", "--wait", srv)


def test_structured_no_signal_and_timeout(cloud, tmp_path):
    """StructuredDeployment fills get_input in; NO_SIGNAL completes at once; a stack that
    times out leaves its waiting deployments FAILED."""
    srv, server = make_server(cloud, tmp_path)
    structured = {"heat_template_version": "2013-05-23", "parameters": {"server": {"type": "string"}},
                  "resources": {
                      "config": {"type": "OS::Heat::StructuredConfig", "properties": {
                          "group": "apply-config", "config": {"greeting": {"get_input": "who"}}}},
                      "dep": {"type": "OS::Heat::StructuredDeployment", "properties": {
                          "config": {"get_resource": "config"}, "server": {"get_param": "server"},
                          "input_values": {"who": "world"}, "signal_transport": "NO_SIGNAL"}}}}
    s1, s2 = name("struct"), name("late")
    try:
        cloud.openstack("stack", "create", "--wait", "-t", write(tmp_path, structured, "s.yaml"),
                        "--parameter", f"server={server}", s1)
        [dep] = server_metadata(cloud, srv)["deployments"]
        assert dep["config"] == {"greeting": "world"} and dep["group"] == "apply-config"
        assert "deploy_signal_id" not in inputs(dep)
        cloud.openstack("stack", "create", "--timeout", "1", "-t", write(tmp_path, deployments(2), "t.yaml"),
                        "--parameter", f"server={server}", s2)
        st = wait_stack(cloud, s2, "CREATE_FAILED", timeout=150)
        assert "Timed out" in st["stack_status_reason"]

        def all_failed():
            listed = cloud.os_json("software", "deployment", "list", "--server", server)
            waiting = [d for d in listed if d["action"] == "CREATE" and d["status"] != "COMPLETE"]
            return len(waiting) == 2 and all(d["status"] == "FAILED" for d in waiting)

        wait_for(all_failed, 30, what="the timed-out deployments to be FAILED")
    finally:
        cloud.openstack("stack", "delete", "--yes", "--wait", s1, s2, srv)
