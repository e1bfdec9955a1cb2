"""Stack snapshots (create, list, show, delete, restore), abandon and adopt, and
pre-delete hooks, through the real `openstack stack ...` CLI."""

from __future__ import annotations

import json
import uuid

import yaml

from tests.cloud import Cloud, wait_for

TEMPLATE = {"heat_template_version": "2016-04-08",
            "parameters": {"v": {"type": "string", "default": "one"}},
            "resources": {"a": {"type": "OS::Heat::TestResource", "properties": {"value": {"get_param": "v"}}},
                          "r": {"type": "OS::Heat::RandomString"}},
            "outputs": {"out": {"value": {"get_attr": ["a", "output"]}}}}


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def write(tmp_path, doc, fname: str) -> str:
    path = tmp_path / fname
    path.write_text(yaml.safe_dump(doc) if not isinstance(doc, str) else doc)
    return str(path)


def wait_stack(cloud: Cloud, ref: str, want: str, timeout: float = 60) -> dict:
    seen: dict = {}

    def check():
        seen.update(cloud.os_json("stack", "show", ref))
        return not seen["stack_status"].endswith("IN_PROGRESS")

    wait_for(check, timeout, what=f"stack {ref} to leave IN_PROGRESS")
    assert seen["stack_status"] == want, (seen["stack_status"], seen.get("stack_status_reason"))
    return seen


def output(cloud: Cloud, stack: str, key: str):
    return cloud.os_json("stack", "output", "show", stack, key)["output_value"]


def resources(cloud: Cloud, stack: str) -> dict[str, dict]:
    return {r["resource_name"]: r for r in cloud.os_json("stack", "resource", "list", stack)}


def test_snapshot_and_restore(cloud, tmp_path):
    """A snapshot records the stack; restore brings back its template and parameters
    (a resource added since goes, one removed is made again); snapshots are listed,
    shown and deleted."""
    sname = name("snap")
    cloud.openstack("stack", "create", "--wait", "-t", write(tmp_path, TEMPLATE, "t.yaml"), sname)
    try:
        snap = cloud.os_json("stack", "snapshot", "create", "--name", "first", sname)
        assert (snap["name"], snap["status"]) == ("first", "COMPLETE")
        assert cloud.os_json("stack", "show", sname)["stack_status"] == "SNAPSHOT_COMPLETE"
        listed = cloud.os_json("stack", "snapshot", "list", sname)
        assert [s["id"] for s in listed] == [snap["ID"]]
        data = cloud.os_json("stack", "snapshot", "show", sname, snap["ID"])["snapshot"]["data"]
        assert data["template"]["resources"]["a"]["type"] == "OS::Heat::TestResource"
        assert data["resources"]["a"]["resource_id"] == resources(cloud, sname)["a"]["physical_resource_id"]

        changed = {**TEMPLATE, "resources": {"a": TEMPLATE["resources"]["a"],
                                             "b": {"type": "OS::Heat::TestResource"}}}
        cloud.openstack("stack", "update", "--wait", "-t", write(tmp_path, changed, "u.yaml"),
                        "--parameter", "v=two", sname)
        assert set(resources(cloud, sname)) == {"a", "b"} and output(cloud, sname, "out") == "two"

        cloud.openstack("stack", "snapshot", "restore", sname, snap["ID"])
        wait_stack(cloud, sname, "RESTORE_COMPLETE")
        assert set(resources(cloud, sname)) == {"a", "r"} and output(cloud, sname, "out") == "one"

        missing = cloud.openstack("stack", "snapshot", "show", sname, str(uuid.uuid4()), check=False)
        assert missing.returncode != 0 and "not found" in missing.stderr
        cloud.openstack("stack", "snapshot", "delete", "--yes", sname, snap["ID"])
        assert cloud.os_json("stack", "snapshot", "list", sname) == []
    finally:
        cloud.openstack("stack", "delete", "--yes", "--wait", sname)


def test_abandon_and_adopt(cloud, tmp_path):
    """Abandon returns the stack's description and removes only the stack; adopt makes a
    stack of the same resources (their physical ids), making nothing."""
    sname, adopted = name("aban"), name("adopt")
    cloud.openstack("stack", "create", "--wait", "-t", write(tmp_path, TEMPLATE, "t.yaml"),
                    "--parameter", "v=kept", sname)
    before = resources(cloud, sname)
    out = tmp_path / "abandon.json"
    cloud.openstack("stack", "abandon", "--output-file", str(out), sname)
    data = json.loads(out.read_text())
    assert set(data["resources"]) == {"a", "r"} and data["environment"]["parameters"] == {"v": "kept"}
    assert sname not in [s["Stack Name"] for s in cloud.os_json("stack", "list")]
    try:
        cloud.openstack("stack", "adopt", "--wait", "--adopt-file", str(out), adopted)
        assert cloud.os_json("stack", "show", adopted)["stack_status"] == "ADOPT_COMPLETE"
        after = resources(cloud, adopted)
        assert {n: r["physical_resource_id"] for n, r in after.items()} == \
            {n: r["physical_resource_id"] for n, r in before.items()}
        assert {r["resource_status"] for r in after.values()} == {"ADOPT_COMPLETE"}
        assert output(cloud, adopted, "out") == "kept"
        # a resource the data does not describe cannot be adopted
        partial = {**data, "resources": {"a": data["resources"]["a"]}}
        bad = name("adopt")
        cloud.openstack("stack", "adopt", "--adopt-file", write(tmp_path, json.dumps(partial), "p.json"), bad)
        st = wait_stack(cloud, bad, "ADOPT_FAILED")
        assert "Resource ID was not provided." in st["stack_status_reason"]
        cloud.openstack("stack", "delete", "--yes", "--wait", bad)
    finally:
        cloud.openstack("stack", "delete", "--yes", "--wait", adopted)


def test_pre_delete_hook(cloud, tmp_path):
    """A pre-delete hook holds the resource's delete (the rest goes) until cleared."""
    env = {"resource_registry": {"resources": {"r": {"hooks": "pre-delete"}}}}
    sname = name("pdel")
    cloud.openstack("stack", "create", "--wait", "-t", write(tmp_path, TEMPLATE, "t.yaml"),
                    "-e", write(tmp_path, env, "e.yaml"), sname)
    cloud.openstack("stack", "delete", "--yes", sname)

    def paused():
        evs = cloud.os_json("stack", "event", "list", sname, "--resource", "r")
        return [e for e in evs if e["resource_status_reason"] == "DELETE paused until Hook pre-delete is cleared"]

    assert wait_for(paused, 30, what="the pre-delete hook")[0]["resource_status"] == "CREATE_COMPLETE"
    wait_for(lambda: set(resources(cloud, sname)) == {"r"}, 30, what="the others deleted")
    assert cloud.os_json("stack", "show", sname)["stack_status"] == "DELETE_IN_PROGRESS"
    cloud.openstack("stack", "hook", "clear", "--pre-delete", sname, "r")
    wait_for(lambda: sname not in [s["Stack Name"] for s in cloud.os_json("stack", "list")], 30,
             what="the stack deleted")
