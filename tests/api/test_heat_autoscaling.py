"""OS::Heat::AutoScalingGroup and OS::Heat::ScalingPolicy through `openstack stack ...`:
the policy's pre-signed alarm_url takes a plain POST without a token (as an Aodh webhook
sends it), `openstack stack resource signal` goes through the API with one; the group grows
and shrinks within min/max, honours the cooldown, follows a stack update of its sizes, and
its members live in a child stack that `resource list --nested-depth 2` shows. Members are
OS::Heat::TestResource: no guest is booted.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import yaml

from onestack.orchestration.resources.autoscaling import new_capacity
from tests.cloud import Cloud, wait_for

AODH_BODY = {"alarm_name": "cpu_high", "alarm_id": str(uuid.uuid4()), "severity": "low", "previous": "ok",
             "current": "alarm", "reason": "Transition to alarm due to 2 samples outside threshold",
             "reason_data": {"type": "threshold"}}


def policy(adjustment: int, kind: str = "change_in_capacity", cooldown: int | None = 0) -> dict:
    props = {"auto_scaling_group_id": {"get_resource": "group"}, "adjustment_type": kind,
             "scaling_adjustment": adjustment}
    if cooldown is not None:
        props["cooldown"] = cooldown
    return {"type": "OS::Heat::ScalingPolicy", "properties": props}


TEMPLATE = {
    "heat_template_version": "2016-10-14",
    "parameters": {"max": {"type": "number", "default": 3}, "desired": {"type": "number", "default": 1},
                   "value": {"type": "string", "default": "member"}},
    "resources": {
        "group": {"type": "OS::Heat::AutoScalingGroup", "properties": {
            "min_size": 1, "max_size": {"get_param": "max"}, "desired_capacity": {"get_param": "desired"},
            "resource": {"type": "OS::Heat::TestResource", "properties": {"value": {"get_param": "value"}}}}},
        "up": policy(1),
        "down": policy(-1),
        "cool": policy(2, "exact_capacity", cooldown=3600),
    },
    "outputs": {
        "size": {"value": {"get_attr": ["group", "current_size"]}},
        "refs": {"value": {"get_attr": ["group", "refs"]}},
        "values": {"value": {"get_attr": ["group", "outputs_list", "output"]}},
        "by_name": {"value": {"get_attr": ["group", "outputs", "output"]}},
        "up_url": {"value": {"get_attr": ["up", "alarm_url"]}},
        "down_url": {"value": {"get_attr": ["down", "alarm_url"]}},
        "cool_url": {"value": {"get_attr": ["cool", "alarm_url"]}},
        "up_signal_url": {"value": {"get_attr": ["up", "signal_url"]}},
    },
}


def write(tmp_path, doc, fname: str = "asg.yaml") -> str:
    path = tmp_path / fname
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def output(cloud: Cloud, stack: str, key: str):
    return cloud.os_json("stack", "output", "show", stack, key)["output_value"]


def members(cloud: Cloud, stack: str) -> list[dict]:
    """The group's members: the depth-2 resources of type TestResource, COMPLETE."""
    rows = cloud.os_json("stack", "resource", "list", "--nested-depth", "2", stack)
    return [r for r in rows if r["resource_type"] == "OS::Heat::TestResource"]


def wait_size(cloud: Cloud, stack: str, size: int) -> list[dict]:
    """The group's members once its child stack has settled (not resizing any more)."""
    child = cloud.os_json("stack", "resource", "show", stack, "group")["physical_resource_id"]

    def settled():
        found = members(cloud, stack)
        return (len(found) == size and all(r["resource_status"].endswith("COMPLETE") for r in found)
                and cloud.os_json("stack", "show", child)["stack_status"].endswith("_COMPLETE")
                and output(cloud, stack, "size") == size and found)

    return wait_for(settled, 60, what=f"the group of {stack} to settle at {size} members", step=0.5)


def policy_events(cloud: Cloud, stack: str, name: str) -> list[str]:
    events = cloud.os_json("stack", "event", "list", "--resource", name, stack)
    return [e["resource_status_reason"] for e in events if e["resource_status"].startswith("SIGNAL")]


def post(url: str, body: dict | None = None) -> httpx.Response:
    """What an alarm's webhook does: a plain POST, no token."""
    return httpx.post(url, content=json.dumps(body) if body is not None else b"",
                      headers={"Content-Type": "application/json"}, timeout=60)


def test_group_scales_by_signals_within_bounds_and_cooldown(cloud, tmp_path):
    stack = f"asg-{uuid.uuid4().hex[:6]}"
    cloud.openstack("stack", "create", "--wait", "-t", write(tmp_path, TEMPLATE), stack)
    try:
        first = wait_size(cloud, stack, 1)
        assert output(cloud, stack, "values") == ["member"]
        assert output(cloud, stack, "refs") == [first[0]["physical_resource_id"]]
        up, down, cool = (output(cloud, stack, k) for k in ("up_url", "down_url", "cool_url"))
        assert "/orchestration/v1/signal/" in up and "sig=" in up
        assert output(cloud, stack, "up_signal_url").endswith("/resources/up/signal")

        # scale up by the pre-signed URL: plain POSTs, no token
        assert post(up, AODH_BODY).status_code == 200
        grown = wait_size(cloud, stack, 2)
        assert first[0]["resource_name"] in {r["resource_name"] for r in grown}
        assert post(up).status_code == 200  # no body: an alarm, as Heat takes it
        wait_size(cloud, stack, 3)
        assert post(up, AODH_BODY).status_code == 200  # max_size: nothing more
        assert len(members(cloud, stack)) == 3
        by_name = output(cloud, stack, "by_name")
        assert sorted(by_name) == sorted(r["resource_name"] for r in members(cloud, stack))
        assert set(by_name.values()) == {"member"}

        reasons = policy_events(cloud, stack, "up")
        assert any("alarm state changed from ok to alarm (Transition to alarm due to 2 samples" in r
                   and "resized from 1 to 2" in r for r in reasons), reasons
        assert any("no scaling action" in r and "stays at 3 (bounds 1..3)" in r for r in reasons), reasons
        group_events = cloud.os_json("stack", "event", "list", "--resource", "group", stack)
        assert any("resized from 2 to 3" in (e["resource_status_reason"] or "") for e in group_events)

        # an ok-state notification changes nothing; a bad signature is refused
        assert post(down, {**AODH_BODY, "previous": "alarm", "current": "ok"}).status_code == 200
        assert post(down[:-4] + "0000", AODH_BODY).status_code == 403
        assert len(members(cloud, stack)) == 3
        assert any("the alarm state is not alarm" in r for r in policy_events(cloud, stack, "down"))

        # scale down through the API (a token), the oldest goes first, down to min_size
        cloud.openstack("stack", "resource", "signal", stack, "down")
        left = wait_size(cloud, stack, 2)
        assert first[0]["resource_name"] not in {r["resource_name"] for r in left}
        cloud.openstack("stack", "resource", "signal", stack, "down", "--data", json.dumps(AODH_BODY))
        wait_size(cloud, stack, 1)
        cloud.openstack("stack", "resource", "signal", stack, "down")
        assert len(members(cloud, stack)) == 1
        assert any("stays at 1 (bounds 1..3)" in r for r in policy_events(cloud, stack, "down"))

        # a stack update of the sizes: desired_capacity wins, within the new max
        cloud.openstack("stack", "update", "--existing", "--wait", "--parameter", "max=5",
                        "--parameter", "desired=4", stack)
        wait_size(cloud, stack, 4)
        assert output(cloud, stack, "values") == ["member"] * 4

        # a new member definition rolls through the members one at a time (max_batch_size 1)
        cloud.openstack("stack", "update", "--existing", "--wait", "--parameter", "value=rolled", stack)
        assert output(cloud, stack, "values") == ["rolled"] * 4
        names = {r["resource_name"] for r in members(cloud, stack)}
        events = cloud.os_json("stack", "event", "list", "--nested-depth", "2", stack)
        updating, most, updated = set(), 0, set()
        for e in events:
            if e["resource_name"] in names and e["resource_status"] == "UPDATE_IN_PROGRESS":
                updating.add(e["resource_name"])
                most = max(most, len(updating))
            elif e["resource_name"] in names and e["resource_status"] == "UPDATE_COMPLETE":
                updating.discard(e["resource_name"])
                updated.add(e["resource_name"])
        assert updated == names and most == 1, events

        # a policy's cooldown: after its resize, other signals are ignored, with an event
        assert post(cool, AODH_BODY).status_code == 200
        wait_size(cloud, stack, 2)
        assert "cooldown_end" in cloud.os_json("stack", "resource", "metadata", stack, "group")
        assert post(up, AODH_BODY).status_code == 200
        assert len(members(cloud, stack)) == 2
        assert any("is in cooldown until" in r for r in policy_events(cloud, stack, "up")), \
            policy_events(cloud, stack, "up")
        # the same refusal again (an alarm repeating its actions) adds no event
        assert post(up, AODH_BODY).status_code == 200
        assert sum("is in cooldown until" in r for r in policy_events(cloud, stack, "up")) == 1
    finally:
        cloud.openstack("stack", "delete", "--yes", "--wait", stack)
    # nothing is left: neither the stack nor its members' child stack
    listed = cloud.os_json("stack", "list", "--nested")
    assert not [s for s in listed if s["Stack Name"].startswith(stack)], listed


ALARMS = {
    "heat_template_version": "2018-08-31",
    "parameters": {"threshold": {"type": "number", "default": 80}},
    "resources": {
        "group": {"type": "OS::Heat::AutoScalingGroup", "properties": {
            "min_size": 1, "max_size": 2, "resource": {"type": "OS::Heat::None"}}},
        "up": policy(1),
        "by_resource": {"type": "OS::Aodh::GnocchiResourcesAlarm", "properties": {
            "metric": "cpu", "resource_id": str(uuid.uuid4()), "resource_type": "instance",
            "aggregation_method": "mean", "granularity": 60, "evaluation_periods": 1,
            "threshold": {"get_param": "threshold"}, "comparison_operator": "gt",
            "alarm_actions": [{"get_attr": ["up", "alarm_url"]}], "severity": "moderate"}},
        "by_metrics": {"type": "OS::Aodh::GnocchiAggregationByMetricsAlarm", "depends_on": ["up"], "properties": {
            "metrics": [str(uuid.uuid4()), str(uuid.uuid4())], "aggregation_method": "mean",
            "granularity": 60, "threshold": 10, "comparison_operator": "lt", "alarm_actions": ["up"]}},
        "by_resources": {"type": "OS::Aodh::GnocchiAggregationByResourcesAlarm", "properties": {
            "metric": "cpu", "resource_type": "instance", "aggregation_method": "rate:mean",
            "granularity": 60, "threshold": 5, "comparison_operator": "gt",
            "query": {"str_replace": {"template": '{"=": {"server_group": "STACK"}}',
                                      "params": {"STACK": {"get_param": "OS::stack_id"}}}},
            "ok_actions": [{"get_attr": ["up", "alarm_url"]}]}},
        "events": {"type": "OS::Aodh::EventAlarm", "properties": {
            "event_type": "compute.instance.update",
            "query": [{"field": "traits.instance_id", "op": "eq", "value": "x", "type": "string"}]}},
        "composite": {"type": "OS::Aodh::CompositeAlarm", "properties": {
            "composite_rule": {"operator": "or", "rules": [
                {"type": "gnocchi_resources_threshold", "metric": "cpu", "resource_id": str(uuid.uuid4()),
                 "resource_type": "instance", "aggregation_method": "mean", "threshold": 1,
                 "comparison_operator": "gt"},
                {"type": "gnocchi_resources_threshold", "metric": "memory", "resource_id": str(uuid.uuid4()),
                 "resource_type": "instance", "aggregation_method": "mean", "threshold": 2,
                 "comparison_operator": "gt"}]}}},
    },
}


def alarming_answers(cloud: Cloud) -> bool:
    return cloud.openstack("alarm", "list", check=False).returncode == 0


def test_aodh_alarms_made_changed_suspended_deleted(cloud, tmp_path):
    """Each OS::Aodh type is an alarm of its type in `openstack alarm ...`, its actions the
    policy's alarm_url; an update changes it in place, suspend/resume disable/enable it,
    delete removes it."""
    if not alarming_answers(cloud):
        pytest.skip("the alarming service (onestack/alarming) does not answer yet")
    stack = f"alarms-{uuid.uuid4().hex[:6]}"
    cloud.openstack("stack", "create", "--wait", "-t", write(tmp_path, ALARMS, "alarms.yaml"), stack, user="demo")
    try:
        ids = {r["resource_name"]: r["physical_resource_id"]
               for r in cloud.os_json("stack", "resource", "list", stack, user="demo")}
        url = output_of(cloud, stack, "up")
        shown = {n: cloud.os_json("alarm", "show", ids[n], user="demo")
                 for n in ("by_resource", "by_metrics", "by_resources", "events", "composite")}
        assert {n: a["type"] for n, a in shown.items()} == {
            "by_resource": "gnocchi_resources_threshold", "by_metrics": "gnocchi_aggregation_by_metrics_threshold",
            "by_resources": "gnocchi_aggregation_by_resources_threshold", "events": "event",
            "composite": "composite"}
        assert shown["by_resource"]["name"].startswith(f"{stack}-by_resource-")
        assert shown["by_resource"]["severity"] == "moderate"
        assert url in str(shown["by_resource"]["alarm_actions"])
        assert url in str(shown["by_metrics"]["alarm_actions"])  # named by resource: its alarm_url
        assert url in str(shown["by_resources"]["ok_actions"])
        assert float(shown["by_resource"]["threshold"]) == 80

        cloud.openstack("stack", "update", "--existing", "--wait", "--parameter", "threshold=90", stack, user="demo")
        assert float(cloud.os_json("alarm", "show", ids["by_resource"], user="demo")["threshold"]) == 90
        assert [e for e in cloud.os_json("stack", "resource", "list", stack, user="demo")
                if e["resource_name"] == "by_resource"][0]["physical_resource_id"] == ids["by_resource"]

        cloud.openstack("stack", "suspend", "--wait", stack, user="demo")
        assert str(cloud.os_json("alarm", "show", ids["events"], user="demo")["enabled"]) == "False"
        cloud.openstack("stack", "resume", "--wait", stack, user="demo")
        assert str(cloud.os_json("alarm", "show", ids["events"], user="demo")["enabled"]) == "True"
    finally:
        cloud.openstack("stack", "delete", "--yes", "--wait", stack, user="demo")
    left = [a for a in cloud.os_json("alarm", "list", user="demo") if a["name"].startswith(stack)]
    assert left == []


def output_of(cloud: Cloud, stack: str, policy_name: str) -> str:
    """A policy's alarm_url, read through `openstack stack resource show` (its attributes)."""
    res = cloud.os_json("stack", "resource", "show", stack, policy_name, user="demo")
    return res["attributes"]["alarm_url"]


@pytest.fixture(scope="module")
def fast_cloud():
    """A cloud whose alarm evaluator runs every second (configuration, not sleeps)."""
    c = Cloud("autoscaling", extra_env={"ONESTACK_ALARMING_EVALUATION_INTERVAL": "1"})
    try:
        c.start()
        yield c
    finally:
        c.stop()


def test_alarm_on_measures_scales_the_group(fast_cloud, tmp_path):
    """The whole chain on fake hosts: measures above a threshold in metric, the Aodh alarm
    fires its webhook at the policy's alarm_url, the group grows; the transition is in the
    alarm's history and the stack's events."""
    cloud = fast_cloud
    if not alarming_answers(cloud) or cloud.openstack("metric", "status", check=False).returncode != 0:
        pytest.skip("the alarming or metric service does not answer yet")
    demo = {"user": "demo"}
    rid = str(uuid.uuid4())
    cloud.openstack("metric", "resource", "create", "--type", "generic", "-n", "load:medium", rid, **demo)
    doc = {"heat_template_version": "2018-08-31",
           "resources": {
               "group": {"type": "OS::Heat::AutoScalingGroup", "properties": {
                   "min_size": 1, "max_size": 2,
                   "resource": {"type": "OS::Heat::TestResource", "properties": {"value": "member"}}}},
               "up": policy(1, cooldown=600),
               "high": {"type": "OS::Aodh::GnocchiResourcesAlarm", "properties": {
                   "metric": "load", "resource_id": rid, "resource_type": "generic",
                   "aggregation_method": "mean", "granularity": 60, "evaluation_periods": 1,
                   "threshold": 50, "comparison_operator": "gt", "repeat_actions": False,
                   "alarm_actions": [{"get_attr": ["up", "alarm_url"]}]}}},
           "outputs": {"size": {"value": {"get_attr": ["group", "current_size"]}}}}
    stack = f"chain-{uuid.uuid4().hex[:6]}"
    cloud.openstack("stack", "create", "--wait", "-t", write(tmp_path, doc, "chain.yaml"), stack, **demo)
    try:
        alarm_id = cloud.os_json("stack", "resource", "show", stack, "high", **demo)["physical_resource_id"]
        assert cloud.os_json("stack", "output", "show", stack, "size", **demo)["output_value"] == 1
        now = datetime.now(UTC).replace(microsecond=0)
        cloud.openstack("metric", "measures", "add", "--resource-id", rid,
                        "-m", f"{(now - timedelta(seconds=60)).isoformat()}@95",
                        "-m", f"{now.isoformat()}@95", "load", **demo)
        try:
            wait_for(lambda: cloud.os_json("stack", "output", "show", stack, "size", **demo)["output_value"] == 2,
                     180, what="the alarm to fire and the group to grow to 2", step=1)
        except AssertionError as e:  # say where the chain stopped
            raise AssertionError(f"{e}: alarm {cloud.os_json('alarm', 'show', alarm_id, **demo)}, history "
                                 f"{cloud.os_json('alarm-history', 'show', alarm_id, **demo)}, events "
                                 f"{cloud.os_json('stack', 'event', 'list', stack, **demo)}") from None
        history = cloud.os_json("alarm-history", "show", alarm_id, **demo)
        assert any(json.loads(h["detail"]).get("state") == "alarm" for h in history
                   if h["type"] == "state transition"), history
        reasons = [e["resource_status_reason"] for e in
                   cloud.os_json("stack", "event", "list", "--resource", "up", stack, **demo)]
        assert any("alarm state changed from" in r and "to alarm" in r and "resized from 1 to 2" in r
                   for r in reasons), reasons
    finally:
        cloud.openstack("stack", "delete", "--yes", "--wait", stack, **demo)
    assert [a for a in cloud.os_json("alarm", "list", **demo) if a["name"].startswith(stack)] == []


def test_bad_group_and_policy_definitions_are_refused(cloud, tmp_path):
    """Sizes out of order and a min_adjustment_step without a percentage fail the create
    with Heat's messages, and nothing is made."""
    cases = [
        ({"min_size": 3, "max_size": 1}, None, "min_size can not be greater than max_size"),
        ({"min_size": 1, "max_size": 2, "desired_capacity": 5}, None,
         "desired_capacity must be between min_size and max_size"),
        ({"min_size": 1, "max_size": 2}, {"min_adjustment_step": 2, "auto_scaling_group_id": "a-group-id"},
         "min_adjustment_step property should only be specified for adjustment_type with value "
         "percent_change_in_capacity"),
    ]
    for group, extra, message in cases:
        doc = {"heat_template_version": "2016-10-14", "resources": {
            "group": {"type": "OS::Heat::AutoScalingGroup",
                      "properties": {**group, "resource": {"type": "OS::Heat::None"}}},
            "up": {"type": "OS::Heat::ScalingPolicy", "properties": {
                "auto_scaling_group_id": {"get_resource": "group"}, "adjustment_type": "change_in_capacity",
                "scaling_adjustment": 1, **(extra or {})}}}}
        stack = f"bad-{uuid.uuid4().hex[:6]}"
        r = cloud.openstack("stack", "create", "-t", write(tmp_path, doc, "bad.yaml"), stack, check=False)
        assert r.returncode != 0 and message in r.stderr, r.stderr
        assert cloud.openstack("stack", "show", stack, check=False).returncode != 0
    # a preview shows the first members as the nested stack's resources
    preview = cloud.os_json("stack", "create", "--dry-run", "-t", write(tmp_path, TEMPLATE), "preview-asg")
    nested = [r for item in preview["resources"] if isinstance(item, list) for r in item]
    assert [(r["resource_type"], r["parent_resource"]) for r in nested] == [("OS::Heat::TestResource", "group")]
    shown = cloud.os_json("orchestration", "resource", "type", "show", "OS::Heat::AutoScalingGroup")
    assert {"min_size", "max_size", "resource", "rolling_updates"} <= set(shown["properties"])
    assert {"outputs", "outputs_list", "current_size", "refs", "refs_map"} <= set(shown["attributes"])
    shown = cloud.os_json("orchestration", "resource", "type", "show", "OS::Heat::ScalingPolicy")
    assert {"alarm_url", "signal_url"} <= set(shown["attributes"])


def test_cfn_autoscaling_group_of_instances(cloud, tmp_path):
    """AWS::AutoScaling::AutoScalingGroup of AWS::EC2::Instance members (servers on fake
    hosts) defined by a LaunchConfiguration; the AWS::AutoScaling::ScalingPolicy's Ref is
    its pre-signed URL."""
    disk = tmp_path / "tiny.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    image = cloud.os_json("image", "create", "--disk-format", "qcow2", "--container-format", "bare", "--public",
                          "--file", str(disk), f"asg-img-{uuid.uuid4().hex[:6]}")
    doc = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": {
        "config": {"Type": "AWS::AutoScaling::LaunchConfiguration",
                   "Properties": {"ImageId": image["id"], "InstanceType": "m1.tiny"}},
        "group": {"Type": "AWS::AutoScaling::AutoScalingGroup", "Properties": {
            "AvailabilityZones": ["nova"], "LaunchConfigurationName": {"Ref": "config"},
            "MinSize": "1", "MaxSize": "2", "Tags": [{"Key": "role", "Value": "web"}]}},
        "up": {"Type": "AWS::AutoScaling::ScalingPolicy", "Properties": {
            "AutoScalingGroupName": {"Ref": "group"}, "AdjustmentType": "ChangeInCapacity",
            "ScalingAdjustment": "1"}}},
        "Outputs": {"url": {"Value": {"Ref": "up"}}, "alarm_url": {"Value": {"Fn::GetAtt": ["up", "AlarmUrl"]}},
                    "ips": {"Value": {"Fn::GetAtt": ["group", "InstanceList"]}}}}
    stack = f"cfnasg-{uuid.uuid4().hex[:6]}"

    def servers() -> list[dict]:
        return [s for s in cloud.os_json("server", "list", "--long", user="demo") if s["Name"].startswith(stack)]

    cloud.openstack("stack", "create", "--wait", "-t", write(tmp_path, doc, "cfn.yaml"), stack, user="demo")
    try:
        [first] = servers()
        assert first["Properties"].get("role") == "web" if isinstance(first["Properties"], dict) \
            else "role='web'" in first["Properties"]
        url = cloud.os_json("stack", "output", "show", stack, "url", user="demo")["output_value"]
        assert url == cloud.os_json("stack", "output", "show", stack, "alarm_url", user="demo")["output_value"]
        assert post(url, AODH_BODY).status_code == 200
        wait_for(lambda: len(servers()) == 2 and all(s["Status"] == "ACTIVE" for s in servers()), 60,
                 what="a second instance", step=0.5)
        wait_for(lambda: cloud.os_json("stack", "show", stack, user="demo")["stack_status"] == "CREATE_COMPLETE"
                 and len(members_of(cloud, stack, "AWS::EC2::Instance")) == 2, 60, what="the members' stack")
        ips = cloud.os_json("stack", "output", "show", stack, "ips", user="demo")["output_value"]
        assert len(ips.split(",")) == 2
    finally:
        cloud.openstack("stack", "delete", "--yes", "--wait", stack, user="demo")
        cloud.openstack("image", "delete", image["id"], check=False)
    assert servers() == []


def members_of(cloud: Cloud, stack: str, kind: str) -> list[dict]:
    rows = cloud.os_json("stack", "resource", "list", "--nested-depth", "2", stack, user="demo")
    return [r for r in rows if r["resource_type"] == kind and r["resource_status"].endswith("COMPLETE")]


def test_new_capacity_is_heats_arithmetic():
    """Heat's scalingutil: changes, exact sizes and percentages (rounded away from zero
    under one member, towards zero above; min_adjustment_step), always within bounds."""
    assert new_capacity(2, 1, "change_in_capacity", None, 1, 5) == 3
    assert new_capacity(5, 1, "ChangeInCapacity", None, 1, 5) == 5
    assert new_capacity(1, -1, "change_in_capacity", None, 1, 5) == 1
    assert new_capacity(2, 9, "exact_capacity", None, 1, 5) == 5
    assert new_capacity(4, 10, "percent_change_in_capacity", None, 0, 10) == 5  # 0.4 -> 1
    assert new_capacity(4, -10, "percent_change_in_capacity", None, 0, 10) == 3  # -0.4 -> -1
    assert new_capacity(10, 15, "percent_change_in_capacity", None, 0, 20) == 11  # 1.5 -> 1
    assert new_capacity(10, -15, "percent_change_in_capacity", None, 0, 20) == 9  # -1.5 -> -1
    assert new_capacity(10, 15, "PercentChangeInCapacity", 3, 0, 20) == 13
    assert new_capacity(10, -15, "percent_change_in_capacity", 3, 0, 20) == 7


MEMBER = {"heat_template_version": "2016-10-14",
          "parameters": {"label": {"type": "string"}},
          "resources": {"inner": {"type": "OS::Heat::TestResource", "properties": {"value": {"get_param": "label"}}}},
          "outputs": {"label": {"value": {"get_attr": ["inner", "output"]}}}}


def test_group_of_template_resources(cloud, tmp_path):
    """The common shape: each member is a template (bundled by the CLI from a file),
    its outputs reached through the group's outputs/outputs_list with a path."""
    (tmp_path / "member.yaml").write_text(yaml.safe_dump(MEMBER))
    doc = {"heat_template_version": "2016-10-14", "resources": {
        "group": {"type": "OS::Heat::AutoScalingGroup", "properties": {
            "min_size": 2, "max_size": 3, "resource": {"type": "member.yaml", "properties": {"label": "hi"}}}},
        "up": policy(1)},
        "outputs": {"labels": {"value": {"get_attr": ["group", "outputs_list", "label"]}},
                    "url": {"value": {"get_attr": ["up", "alarm_url"]}}}}
    stack = f"tmplasg-{uuid.uuid4().hex[:6]}"
    cloud.openstack("stack", "create", "--wait", "-t", write(tmp_path, doc, "group.yaml"), stack)
    try:
        assert output(cloud, stack, "labels") == ["hi", "hi"]
        assert post(output(cloud, stack, "url")).status_code == 200
        wait_for(lambda: output(cloud, stack, "labels") == ["hi"] * 3, 60, what="a third member", step=0.5)
        rows = cloud.os_json("stack", "resource", "list", "--nested-depth", "2", stack)
        assert sum(r["resource_type"].endswith("member.yaml") for r in rows) == 3, rows
    finally:
        cloud.openstack("stack", "delete", "--yes", "--wait", stack)
