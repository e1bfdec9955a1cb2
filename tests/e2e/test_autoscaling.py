"""Autoscaling on real guests, the book's chapter-3 demonstration end to end: a stack holds a
group of one tiny TCG guest, with scale-up and scale-down policies wired to Aodh alarms on the
group's CPU (Gnocchi's `rate:mean` of `cpu`, the members found by `metering.server_group`, as
Heat's own autoscaling template does). The guest's user_data burns CPU while its server has the
property `busy` (it reads its metadata from the metadata service), so the test turns the load
on and off with `openstack server set/unset --property`: the group grows to two, then shrinks
back to one, and each transition shows in `openstack alarm-history show` and the stack's
events. On the way it checks what the collector reads of a real guest: CPU time rising while
busy, `cpu_util`, memory, the root disk's and the interface's counters. One cloud, every wait bounded; the collector polls every 5 s and the evaluator runs
every second (configuration, not sleeps).
"""

from __future__ import annotations

import json

import pytest
import yaml

from onestack.compute.network import tap_name
from tests.cloud import Cloud
from tests.e2e.guests import IMAGE, READY, console, networked_cloud, require_guests, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900), pytest.mark.root, pytest.mark.libvirt, pytest.mark.netns]

require_guests()

DEMO = {"user": "demo"}

# Burns CPU in 5-second slices while the server's metadata has "busy"; idles otherwise.
BURN = """#!/bin/sh
(
while :; do
  if wget -q -O - http://169.254.169.254/openstack/latest/meta_data.json 2>/dev/null | grep -q '"busy"'; then
    end=$(( $(date +%s) + 5 ))
    while [ "$(date +%s)" -lt "$end" ]; do :; done
  else
    sleep 2
  fi
done
) </dev/null >/dev/null 2>&1 &
"""

GRANULARITY = 5
# cpu is cumulative nanoseconds: its rate over one 5 s point is at most 5e9 for one vCPU
HIGH = 0.35 * GRANULARITY * 1e9
LOW = 0.15 * GRANULARITY * 1e9


def alarm(threshold: float, operator: str, policy: str) -> dict:
    return {"type": "OS::Aodh::GnocchiAggregationByResourcesAlarm",
            "properties": {
                "metric": "cpu", "aggregation_method": "rate:mean", "granularity": GRANULARITY,
                "evaluation_periods": 2, "threshold": threshold, "comparison_operator": operator,
                "resource_type": "instance",
                "alarm_actions": [{"get_attr": [policy, "alarm_url"]}], "repeat_actions": True,
                "query": {"str_replace": {"template": '{"=": {"server_group": "STACK"}}',
                                          "params": {"STACK": {"get_param": "OS::stack_id"}}}}}}


STACK = {
    "heat_template_version": "2018-08-31",
    "resources": {
        "group": {"type": "OS::Heat::AutoScalingGroup",
                  "properties": {"min_size": 1, "max_size": 2, "resource": {
                      "type": "OS::Nova::Server",
                      "properties": {"image": IMAGE, "flavor": "m1.nano", "networks": [{"network": "private"}],
                                     "user_data_format": "RAW", "user_data": BURN,
                                     "metadata": {"metering.server_group": {"get_param": "OS::stack_id"}}}}}},
        "scale_up": {"type": "OS::Heat::ScalingPolicy",
                     "properties": {"auto_scaling_group_id": {"get_resource": "group"},
                                    "adjustment_type": "change_in_capacity", "scaling_adjustment": 1,
                                    "cooldown": 10}},
        "scale_down": {"type": "OS::Heat::ScalingPolicy",
                       "properties": {"auto_scaling_group_id": {"get_resource": "group"},
                                      "adjustment_type": "change_in_capacity", "scaling_adjustment": -1,
                                      "cooldown": 10}},
        "cpu_high": alarm(HIGH, "gt", "scale_up"),
        "cpu_low": alarm(LOW, "lt", "scale_down"),
    },
    "outputs": {"size": {"value": {"get_attr": ["group", "current_size"]}},
                "members": {"value": {"get_attr": ["group", "refs"]}}},
}


@pytest.fixture(scope="module")
def cloud():
    yield from networked_cloud("autoscaling", ONESTACK_TELEMETRY_INTERVAL="5", ONESTACK_ALARMING_EVALUATION_INTERVAL="1")


def measures(cloud: Cloud, resource: str, metric: str) -> list[dict]:
    """The means of a metric of a resource (a server's id, or `<server>-vda` for its disk)."""
    return cloud.os_json("metric", "measures", "show", "--resource-id", resource, metric, "--aggregation", "mean")


def servers(cloud: Cloud) -> list[dict]:
    return [s for s in cloud.os_json("server", "list", "--long", **DEMO) if s["Status"] != "DELETED"]


def active_members(cloud: Cloud) -> list[str]:
    return sorted(s["ID"] for s in servers(cloud) if s["Status"] == "ACTIVE")


def test_a_group_grows_under_load_and_shrinks_when_idle(cloud, tmp_path):
    # The operator keeps the CPU series at the collector's 5 s (Gnocchi's defaults are coarser).
    cloud.openstack("metric", "archive-policy", "create", "fast", "-d", f"granularity:{GRANULARITY}s,points:720",
                    "-m", "mean", "-m", "rate:mean")
    cloud.openstack("metric", "archive-policy-rule", "create", "cpu-fast", "-a", "fast", "-m", "cpu")

    path = tmp_path / "asg.yaml"
    path.write_text(yaml.safe_dump(STACK))
    r = cloud.openstack("stack", "create", "--wait", "--poll", "1", "-t", str(path), "asg", **DEMO, check=False)
    shown = cloud.os_json("stack", "show", "asg", **DEMO)
    assert r.returncode == 0 and shown["stack_status"] == "CREATE_COMPLETE", (r.stderr, shown["stack_status_reason"])
    res = {x["resource_name"]: x["physical_resource_id"]
           for x in cloud.os_json("stack", "resource", "list", "asg", **DEMO)}

    # Settle: the boot's own CPU burst may scale up once; the guest booted and idle, the group
    # is back to one and the high alarm has seen it idle (ok) before the load starts.
    def settled() -> str | None:
        members = active_members(cloud)
        if len(members) == 1 and len(servers(cloud)) == 1 and READY.search(console(cloud, members[0])) and \
                cloud.os_json("alarm", "state", "get", res["cpu_high"])["state"] == "ok":
            return members[0]
        return None
    first = wait_for(settled, 420, "an idle group of one booted guest, its high-CPU alarm ok", step=2)
    cloud.openstack("server", "set", "--property", "busy=1", first, **DEMO)
    wait_for(lambda: len(active_members(cloud)) == 2, 300, "the group to grow to two under load", step=2)
    # it grew because this guest was busy: its CPU rate crossed the threshold
    rates = cloud.os_json("metric", "measures", "show", "--resource-id", first, "cpu", "--aggregation", "rate:mean",
                          "--granularity", str(GRANULARITY))
    assert max(m["value"] for m in rates) > HIGH, rates
    # what else the collector reads from libvirt for a real guest: its share of the vcpu, its
    # memory, its root disk (vda) and its interface (the port's tap), each on its own resource
    assert max(m["value"] for m in measures(cloud, first, "cpu_util")) > 10
    assert measures(cloud, first, "memory.usage")[-1]["value"] > 0
    assert measures(cloud, f"{first}-vda", "disk.device.read.bytes")[-1]["value"] > 0
    port = cloud.os_json("port", "list", "--server", first, **DEMO)[0]["ID"]
    nic = f"{first}-{tap_name(port)}"
    assert measures(cloud, nic, "network.incoming.packets")[-1]["value"] > 0
    assert measures(cloud, nic, "network.outgoing.bytes")[-1]["value"] > 0
    high = cloud.os_json("alarm-history", "show", res["cpu_high"])
    assert any(json.loads(h["detail"]).get("state") == "alarm" for h in high if h["type"] == "state transition"), high

    cloud.openstack("server", "unset", "--property", "busy", first, **DEMO)
    wait_for(lambda: len(servers(cloud)) == 1, 300, "the group to shrink back to one when idle", step=2)
    low = cloud.os_json("alarm-history", "show", res["cpu_low"])
    assert any(json.loads(h["detail"]).get("state") == "alarm" for h in low if h["type"] == "state transition"), low

    events = cloud.os_json("stack", "event", "list", "asg", **DEMO)
    signalled = {e["resource_name"] for e in events if "signal" in (e.get("resource_status_reason") or "").lower()}
    assert {"scale_up", "scale_down"} <= signalled, events

    cloud.openstack("stack", "delete", "--yes", "--wait", "asg", **DEMO)
    assert servers(cloud) == []
    assert cloud.os_json("alarm", "list", **DEMO) == []
