"""The `[orchestration]` config section takes effect: a cloud started with small limits
(ONESTACK_ORCHESTRATION_*) refuses, through `openstack stack create`, templates over the
size or resource count, stacks past the per-project count, nesting past the depth, and
OS::Glance::WebImage locations on hosts it does not allow or that it may not read; it
hides stacks of the hidden tags from `stack list`."""

from __future__ import annotations

import uuid

import pytest
import yaml

from tests.cloud import Cloud, wait_for


@pytest.fixture(scope="module")
def cloud():
    c = Cloud("orch-config", extra_env={
        "ONESTACK_ORCHESTRATION_MAX_RESOURCES_PER_STACK": "3",
        "ONESTACK_ORCHESTRATION_MAX_STACKS_PER_TENANT": "2",
        "ONESTACK_ORCHESTRATION_MAX_TEMPLATE_SIZE": "3000",
        "ONESTACK_ORCHESTRATION_MAX_NESTED_STACK_DEPTH": "1",
        "ONESTACK_ORCHESTRATION_HIDDEN_STACK_TAGS": "secret, also-secret",
        "ONESTACK_ORCHESTRATION_WEB_IMAGE_HOSTS": "127.0.0.1",
        "ONESTACK_ORCHESTRATION_WEB_IMAGE_FETCH": "false",
    })
    try:
        yield c.start()
    finally:
        c.stop()


def hot(resources: dict, **extra) -> dict:
    return {"heat_template_version": "2018-08-31", **extra, "resources": resources}


def create(cloud: Cloud, tmp_path, doc: dict, *args: str, check: bool = False, files: dict | None = None):
    for fname, content in (files or {}).items():
        (tmp_path / fname).write_text(yaml.safe_dump(content))
    path = tmp_path / f"t-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return cloud.openstack("stack", "create", "-t", str(path), *args, user="demo", check=check)


def nones(n: int) -> dict:
    return {f"r{i}": {"type": "OS::Heat::None"} for i in range(n)}


def test_limits(cloud, tmp_path):
    r = create(cloud, tmp_path, hot(nones(4)), "too-many")
    assert r.returncode != 0 and "Maximum resources per stack exceeded" in r.stderr, r.stderr
    r = create(cloud, tmp_path, hot(nones(1), description="x" * 4000), "too-big")
    assert r.returncode != 0 and "exceeds maximum allowed size (3000 bytes)" in r.stderr, r.stderr
    # a template resource in a template resource: depth 2, over the limit of 1
    inner, outer = hot(nones(1)), hot({"in": {"type": "inner.yaml"}})
    r = create(cloud, tmp_path, hot({"out": {"type": "outer.yaml"}}), "--wait", "deep",
               files={"inner.yaml": inner, "outer.yaml": outer})
    assert r.returncode != 0
    shown = cloud.os_json("stack", "show", "deep", user="demo")
    assert shown["stack_status"] == "CREATE_FAILED" and "Recursion depth exceeds 1" in shown[
        "stack_status_reason"], shown["stack_status_reason"]
    create(cloud, tmp_path, hot(nones(3)), "--wait", "second", check=True)  # 3 resources: allowed
    r = create(cloud, tmp_path, hot(nones(1)), "third")
    assert r.returncode != 0 and "maximum stacks per tenant, 2" in r.stderr, r.stderr
    for sname in ("deep", "second"):
        cloud.openstack("stack", "delete", "--yes", "--wait", sname, user="demo")


def test_web_image(cloud, tmp_path):
    image = {"type": "OS::Glance::WebImage",
             "properties": {"disk_format": "raw", "container_format": "bare",
                            "location": "http://images.example/disk.raw"}}
    r = create(cloud, tmp_path, hot({"img": image}), "elsewhere")
    assert r.returncode != 0 and "images.example is not among the hosts" in r.stderr, r.stderr
    image["properties"]["location"] = "http://127.0.0.1:9/disk.raw"  # allowed, but not read by the engine
    create(cloud, tmp_path, hot({"img": image}), "local", check=True)
    shown = wait_for(lambda: (s := cloud.os_json("stack", "show", "local", user="demo"))["stack_status"]
                     != "CREATE_IN_PROGRESS" and s, 60, "the stack to fail")
    assert shown["stack_status"] == "CREATE_FAILED", shown
    assert "orchestration.web_image_fetch is false" in shown["stack_status_reason"], shown["stack_status_reason"]
    assert cloud.os_json("image", "list", "--private", user="demo") == []  # no image was made
    cloud.openstack("stack", "delete", "--yes", "--wait", "local", user="demo")


def test_hidden_stack_tags(cloud, tmp_path):
    create(cloud, tmp_path, hot({}), "--tags", "foo,also-secret", "--wait", "hid", check=True)
    try:
        assert "hid" not in [s["Stack Name"] for s in cloud.os_json("stack", "list", user="demo")]
        assert "hid" in [s["Stack Name"] for s in cloud.os_json("stack", "list", "--hidden", user="demo")]
    finally:
        cloud.openstack("stack", "delete", "--yes", "--wait", "hid", user="demo")


def test_a_raised_template_size_limit_holds_everywhere(tmp_path):
    """Above Heat's 512 KiB default: create, show (parameters, outputs) and preview all
    read the template under the configured limit."""
    c = Cloud("orch-bigtpl", extra_env={"ONESTACK_ORCHESTRATION_MAX_TEMPLATE_SIZE": "800000"})
    try:
        c.start()
        doc = hot(nones(1), description="x" * 600_000, parameters={"p": {"type": "string", "default": "v"}},
                  outputs={"o": {"value": {"get_param": "p"}}})
        path = tmp_path / "big.yaml"
        path.write_text(yaml.safe_dump(doc))
        c.openstack("stack", "create", "-t", str(path), "--dry-run", "big", user="demo")
        c.openstack("stack", "create", "-t", str(path), "--wait", "big", user="demo")
        shown = c.os_json("stack", "show", "big", user="demo")
        assert shown["stack_status"] == "CREATE_COMPLETE"
        assert shown["parameters"]["p"] == "v"
        assert [o["output_value"] for o in shown["outputs"]] == ["v"]
    finally:
        c.stop()
