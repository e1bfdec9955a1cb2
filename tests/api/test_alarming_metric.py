"""Alarms evaluated against the real metric service (Gnocchi v1 API of onestack/metric):
measures sent with `openstack metric measures add` fire a webhook on loopback."""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import UTC, datetime

import pytest

from tests.api.test_alarming import Recorder
from tests.cloud import Cloud, wait_for


@pytest.fixture(scope="module")
def mcloud():
    c = Cloud("alarming-metric", extra_env={"ONESTACK_ALARMING_EVALUATION_INTERVAL": "1",
                                            "ONESTACK_TELEMETRY_INTERVAL": "5"}).start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def hooks():
    r = Recorder()
    yield r
    r.shutdown()


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def test_measures_added_through_the_cli_fire_and_clear_alarms(mcloud, hooks):
    with mcloud.new_member("am") as member:
        rid = str(uuid.uuid4())
        mcloud.openstack("metric", "resource", "create", "--type", "generic", "-n", "load", rid, env=member)
        mcloud.openstack("metric", "measures", "add", "-r", rid, "-m", f"{_now()}@95", "load", env=member)
        # the member's alarm over a resource search: scoped to its project's resources
        mine = mcloud.os_json("alarm", "create", "--name", "busy", "--type",
                              "gnocchi_aggregation_by_resources_threshold", "--metric", "load",
                              "--resource-type", "generic", "--query", json.dumps({"=": {"id": rid}}),
                              "--aggregation-method", "mean", "--threshold", "50", "--comparison-operator", "gt",
                              "--alarm-action", hooks.url + "/member", "--ok-action", hooks.url + "/member-ok",
                              env=member)
        assert "created_by_project_id" in mine["query"]
        # the admin's alarm on the resource's metric
        theirs = mcloud.os_json("alarm", "create", "--name", "busy-admin", "--type", "gnocchi_resources_threshold",
                                "--metric", "load", "--resource-type", "generic", "--resource-id", rid,
                                "--aggregation-method", "max", "--threshold", "90", "--comparison-operator", "ge",
                                "--alarm-action", hooks.url + "/admin")
        for path in ("/member", "/admin"):
            body = wait_for(lambda p=path: hooks.bodies(p), 60, f"the {path} webhook")[0]
            assert body["current"] == "alarm" and body["previous"] == "insufficient data"
            assert body["reason_data"]["most_recent"] == 95.0

        # the load falls: the point of this minute (or the next) is below the threshold
        mcloud.openstack("metric", "measures", "add", "-r", rid, "-m", f"{_now()}@1", "load", env=member)
        wait_for(lambda: hooks.bodies("/member-ok"), 60, "the ok webhook")
        assert mcloud.os_json("alarm", "state", "get", mine["alarm_id"], env=member)["state"] == "ok"
        for a, env in ((mine, member), (theirs, None)):
            mcloud.openstack("alarm", "delete", a["alarm_id"], **({"env": env} if env else {}))


def test_a_group_of_servers_alarm_as_heat_makes_it(mcloud, hooks, tmp_path):
    """A member's alarm over the cpu_util of its servers of one server group (the
    autoscaling alarm): the collector's instance resources (made by no project, for the
    member's) are within the member's scoped search, and the alarm fires."""
    path = tmp_path / "tiny.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "16M"], check=True)
    demo = {"user": "demo"}
    image = mcloud.os_json("image", "create", "--disk-format", "qcow2", "--file", str(path), "am-img", **demo)
    net = mcloud.os_json("network", "create", "am-net", **demo)
    mcloud.openstack("subnet", "create", "--network", net["id"], "--subnet-range", "192.168.92.0/24", "am-sn",
                     **demo)
    group = f"grp-{uuid.uuid4().hex[:6]}"
    server = mcloud.os_json("server", "create", "--flavor", "m1.nano", "--image", image["id"], "--network",
                            net["id"], "--property", f"metering.server_group={group}", "am-1", **demo)
    a = mcloud.os_json("alarm", "create", "--name", "group-busy", "--type",
                       "gnocchi_aggregation_by_resources_threshold", "--metric", "cpu_util", "--resource-type",
                       "instance", "--query", json.dumps({"and": [{"=": {"server_group": group}},
                                                                  {"=": {"ended_at": None}}]}),
                       "--aggregation-method", "mean", "--threshold", "-1", "--comparison-operator", "gt",
                       "--alarm-action", hooks.url + "/group", **demo)
    body = wait_for(lambda: hooks.bodies("/group"), 120, "the group's alarm")[0]
    assert body["alarm_id"] == a["alarm_id"] and body["current"] == "alarm"
    assert body["reason_data"]["most_recent"] >= 0
    mcloud.openstack("alarm", "delete", a["alarm_id"], **demo)
    mcloud.openstack("server", "delete", "--wait", server["id"], **demo)
