"""Telemetry collection: the guests' counters on compute hosts, the lifecycle notifications
of compute and volume, and what they become in the metric service.

The first tests run the collector and the notifying code in this process, on the
in-process bus with a test endpoint serving ``metric.ingest`` (the contract between the
collector and the metric service); the last ones boot servers on simulated hosts of a
real cloud and read the measures back with `openstack metric ...`.
"""

from __future__ import annotations

import json
import subprocess
import threading
import uuid as uuidlib

import pytest

from onestack.common import bus, db
from onestack.common.auth import RequestContext
from onestack.common.timeutils import utcnow
from onestack.compute import actions, collector, instances, policies, states
from onestack.compute import models as cm
from onestack.compute.agent import ComputeAgent
from onestack.compute.conductor import Conductor
from onestack.compute.virt.domain import Interface
from onestack.compute.virt.driver import FakeDriver, GuestStats, ImageRef, InstanceSpec, stats_of
from onestack.volume import conductor as vconductor
from onestack.volume import core as vcore
from onestack.volume import models as vm
from tests.cloud import Cloud, wait_for


class Sink:
    """A test endpoint on ``metric.ingest``: what the metric service would be given."""

    def __init__(self):
        self.batches: list[list[dict]] = []
        self.lock = threading.Lock()

    def add_measures(self, batch: list[dict]) -> None:
        with self.lock:
            self.batches.append(batch)


class HostConductor:
    """The conductor's one read the collector makes (the servers of the node's hosts)."""

    def __init__(self, rows: dict[str, list[dict]]):
        self.rows = rows
        self.asked: list[list[str]] = []

    def metering_instances(self, hosts: list[str]) -> list[dict]:
        self.asked.append(hosts)
        return [r for h in hosts for r in self.rows.get(h, [])]


@pytest.fixture
def inproc_bus(monkeypatch):
    b = bus.InProcessBus()
    monkeypatch.setattr(bus, "_bus", b)
    yield b
    b.close()


def _server(host: str, **over) -> dict:
    return {"uuid": str(uuidlib.uuid4()), "project_id": "p1", "user_id": "u1", "name": "web-1", "host": host,
            "image_ref": "img-1", "flavor": {"id": "42", "name": "m1.nano", "vcpus": 2, "memory_mb": 128},
            "metadata": {"metering.server_group": "stack-1"}, **over}


def test_guest_collector_sends_ceilometer_meters(inproc_bus):
    sink = Sink()
    inproc_bus.serve("metric.ingest", sink)
    driver = FakeDriver(host="fake-1")
    server = _server("fake-1")
    driver.spawn(InstanceSpec(uuid=server["uuid"], memory_mib=128, vcpus=2, image=ImageRef("img-1", lambda p: None),
                              interfaces=[Interface(bridge="brq1", mac="fa:16:3e:00:00:01", target="tap0001")]))
    stopped = _server("fake-1")
    driver.spawn(InstanceSpec(uuid=stopped["uuid"], memory_mib=64, vcpus=1, image=ImageRef("img-1", lambda p: None)))
    driver.power_off(stopped["uuid"])
    stranger = str(uuidlib.uuid4())  # a guest no server of the cloud owns: not measured
    driver.spawn(InstanceSpec(uuid=stranger, memory_mib=64, vcpus=1, image=ImageRef("img-1", lambda p: None)))
    conductor = HostConductor({"fake-1": [server, stopped]})
    inproc_bus.serve("compute.conductor", conductor)
    c = collector.GuestCollector([ComputeAgent("fake-1", driver, plug=False),
                                  ComputeAgent("fake-2", FakeDriver(host="fake-2"), plug=False)], 5, threading.Event())

    first = c.poll_once()
    assert conductor.asked == [["fake-1"]]  # one read per poll, for the hosts with guests
    wait_for(lambda: len(sink.batches) == 1, 10, "the first batch on metric.ingest")
    assert sink.batches[0] == first  # as sent, through the bus's JSON codec
    by_type = {}
    for item in first:
        by_type.setdefault(item["resource_type"], []).append(item)
    assert sorted(by_type) == ["instance", "instance_disk", "instance_network_interface"]
    (inst,) = by_type["instance"]
    assert inst["resource_id"] == server["uuid"] and inst["project_id"] == "p1" and inst["user_id"] == "u1"
    assert inst["attributes"] == {"display_name": "web-1", "flavor_id": "42", "flavor_name": "m1.nano",
                                  "image_ref": "img-1", "host": "fake-1", "server_group": "stack-1"}
    assert set(inst["metrics"]) == {"cpu", "vcpus", "memory", "memory.usage"}  # cpu_util needs two polls
    assert inst["metrics"]["cpu"]["unit"] == "ns"
    assert inst["metrics"]["vcpus"]["measures"][0][1] == 2.0
    assert inst["metrics"]["memory"] == {"unit": "MB", "measures": [[inst["metrics"]["memory"]["measures"][0][0],
                                                                      128.0]]}
    (disk,) = by_type["instance_disk"]
    assert disk["resource_id"] == f"{server['uuid']}-vda"
    assert disk["attributes"] == {"name": "vda", "instance_id": server["uuid"]}
    assert set(disk["metrics"]) == set(collector.DISK_METERS)
    (nic,) = by_type["instance_network_interface"]
    assert nic["resource_id"] == f"{server['uuid']}-tap0001"
    assert set(nic["metrics"]) == set(collector.NIC_METERS)
    assert nic["metrics"]["network.incoming.bytes"]["unit"] == "B"

    driver.set_load(server["uuid"], 0.5)
    wait_for(lambda: driver.guest_stats()[server["uuid"]].cpu_time_ns
             > first[0]["metrics"]["cpu"]["measures"][0][1], 10, "the fake guest's cpu time to grow")
    second = c.poll_once()
    inst2 = next(i for i in second if i["resource_type"] == "instance")
    assert inst2["metrics"]["cpu"]["measures"][0][1] > inst["metrics"]["cpu"]["measures"][0][1]
    util = inst2["metrics"]["cpu_util"]
    assert util["unit"] == "%" and 0 < util["measures"][0][1] <= 100


def test_cpu_util_is_the_share_of_the_vcpus_used():
    c = collector.GuestCollector([], 5, threading.Event(), sink=lambda items: True)

    def st(cpu_ns, vcpus=2):
        return GuestStats(cpu_time_ns=cpu_ns, vcpus=vcpus, memory_mb=128, memory_used_mb=None)

    assert c.cpu_util("a", 100.0, st(0)) is None  # first poll
    assert c.cpu_util("a", 110.0, st(5 * 10**9)) == pytest.approx(25.0)  # 5 s of 20 vcpu-seconds
    assert c.cpu_util("a", 120.0, st(25 * 10**9)) == pytest.approx(100.0)
    assert c.cpu_util("a", 130.0, st(10**9)) is None  # the counter went back: QEMU restarted
    assert c.cpu_util("a", 140.0, st(2 * 10**9, vcpus=1)) == pytest.approx(10.0)


def test_libvirt_bulk_stats_become_guest_stats():
    """A record of virConnectGetAllDomainStats (as a TCG guest of this machine gave it)."""
    st = {"state.state": 1, "cpu.time": 12902794000, "balloon.current": 131072, "balloon.maximum": 131072,
          "balloon.unused": 58196, "balloon.available": 94780, "balloon.rss": 247616, "vcpu.current": 1,
          "vcpu.maximum": 1, "net.count": 1, "net.0.name": "tap26a5e82f4ad0", "net.0.rx.bytes": 3697,
          "net.0.rx.pkts": 23, "net.0.tx.bytes": 2379, "net.0.tx.pkts": 23, "block.count": 2,
          "block.0.name": "vda", "block.0.rd.reqs": 625, "block.0.rd.bytes": 18749952, "block.0.wr.reqs": 0,
          "block.0.wr.bytes": 0, "block.1.name": "hda", "block.1.rd.reqs": 3, "block.1.rd.bytes": 1024}
    got = stats_of(st)
    assert got == GuestStats(
        cpu_time_ns=12902794000, vcpus=1, memory_mb=128, memory_used_mb=(94780 - 58196) / 1024,
        disks={"vda": {"read_bytes": 18749952, "write_bytes": 0, "read_requests": 625, "write_requests": 0},
               "hda": {"read_bytes": 1024, "write_bytes": 0, "read_requests": 3, "write_requests": 0}},
        interfaces={"tap26a5e82f4ad0": {"rx_bytes": 3697, "tx_bytes": 2379, "rx_packets": 23, "tx_packets": 23}})
    # no balloon driver in the guest: QEMU's resident memory, at most what the guest has
    del st["balloon.unused"], st["balloon.available"]
    assert stats_of(st).memory_used_mb == 128


def test_collector_survives_a_failing_host_and_a_missing_metric_service(inproc_bus):
    class Broken(FakeDriver):
        def guest_stats(self):
            raise RuntimeError("libvirt went away")

    good = FakeDriver(host="ok")
    server = _server("ok")
    good.spawn(InstanceSpec(uuid=server["uuid"], memory_mib=128, vcpus=2, image=ImageRef("i", lambda p: None)))
    inproc_bus.serve("compute.conductor", HostConductor({"ok": [server]}))
    c = collector.GuestCollector([ComputeAgent("bad", Broken(host="bad"), plug=False),
                                  ComputeAgent("ok", good, plug=False)], 5, threading.Event())
    items = c.poll_once()  # nothing serves metric.ingest: dropped, no error
    assert [i["resource_id"] for i in items if i["resource_type"] == "instance"] == [server["uuid"]]


def test_collector_thread_stops_with_its_event(inproc_bus):
    stopping = threading.Event()
    c = collector.GuestCollector([], 5, stopping)
    c.start()
    stopping.set()
    c.thread.join(10)
    assert not c.thread.is_alive()


@pytest.fixture
def events(tmp_path, inproc_bus):
    db.configure(f"sqlite:///{tmp_path / 'telemetry.db'}")
    db.upgrade("compute")
    db.upgrade("volume")
    seen: list[tuple[str, dict]] = []
    inproc_bus.subscribe("compute.instance.*", lambda e, p: seen.append((e, p)))
    inproc_bus.subscribe("volume.*", lambda e, p: seen.append((e, p)))
    return seen


def test_compute_notifies_create_update_and_delete(events, tmp_path):
    policies.configure(tmp_path / "policy")  # (no overrides: the default rules)
    uuid = str(uuidlib.uuid4())
    now = utcnow()
    with db.transaction() as s:
        s.add(cm.Instance(uuid=uuid, project_id="p1", user_id="u1", name="web-1", image_ref="img-1",
                          flavor={"id": "42", "name": "m1.nano", "vcpus": 1, "memory_mb": 128},
                          vm_state=states.BUILDING, host="fake-1", reservation_id="r-1", created_at=now,
                          updated_at=now, metadata_={"metering.server_group": "stack-1"}))
    cond = Conductor(scheduler=None)
    cond.instance_update(instance_uuid=uuid, task_state=None)  # no state change: nothing
    assert events == []
    cond.instance_update(instance_uuid=uuid, vm_state=states.ACTIVE, power_state=1)
    assert [e for e, _ in events] == ["compute.instance.create.end"]
    payload = events[0][1]
    assert payload == {"instance_id": uuid, "project_id": "p1", "user_id": "u1", "display_name": "web-1",
                       "flavor_id": "42", "flavor_name": "m1.nano", "vcpus": 1, "memory_mb": 128,
                       "image_ref": "img-1", "host": "fake-1", "state": "active",
                       "created_at": payload["created_at"], "deleted_at": None, "server_group": "stack-1"}
    cond.instance_update(instance_uuid=uuid, flavor={"id": "84", "name": "m1.micro", "vcpus": 2,
                                                      "memory_mb": 192})
    cond.instance_update(instance_uuid=uuid, vm_state=states.STOPPED)
    assert [(e, p["flavor_name"], p["state"]) for e, p in events[1:]] == [
        ("compute.instance.update", "m1.micro", "active"), ("compute.instance.update", "m1.micro", "stopped")]
    actions.reset_state(RequestContext(project_id="p1", user_id="admin", roles=["admin"]), uuid, "req-1", "error")
    assert (events[-1][0], events[-1][1]["state"]) == ("compute.instance.update", "error")
    try:  # a rolled-back change notifies nothing
        with db.transaction() as s:
            instances.mark_deleted(s, s.get(cm.Instance, uuid))
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    assert len(events) == 4
    with db.transaction() as s:
        instances.mark_deleted(s, s.get(cm.Instance, uuid))
    assert events[-1][0] == "compute.instance.delete.end"
    assert events[-1][1]["deleted_at"] and events[-1][1]["state"] == "deleted"


def test_volume_notifies_create_resize_and_delete(events):
    vid = str(uuidlib.uuid4())
    with db.transaction() as s:
        s.add(vm.VolumeType(id="t1", name="lvmdriver-1", is_public=True, extra_specs={}, created_at=utcnow()))
        s.add(vm.Volume(id=vid, project_id="p1", user_id="u1", name="data", size=1, status=vcore.CREATING,
                        availability_zone="nova", volume_type_id="t1", created_at=utcnow(), deleted=False))
    cond = vconductor.Conductor()
    cond.volume_update(volume_id=vid, expected_status="creating", status="available")
    cond.volume_update(volume_id=vid, status="extending")  # a status alone: nothing
    cond.volume_update(volume_id=vid, status="available", size=3)
    vcore.destroy_volume(vid)
    assert [(e, p["size"], p["volume_type"]) for e, p in events] == [
        ("volume.create.end", 1, "lvmdriver-1"), ("volume.resize.end", 3, "lvmdriver-1"),
        ("volume.delete.end", 3, "lvmdriver-1")]
    assert {k: events[0][1][k] for k in ("volume_id", "project_id", "user_id", "display_name")} == {
        "volume_id": vid, "project_id": "p1", "user_id": "u1", "display_name": "data"}


# --- through the metric service, on a cloud of simulated hosts -----------------------


@pytest.fixture(scope="module")
def tcloud():
    """A cloud polling every 5 s (the shortest interval), so measures come within seconds."""
    c = Cloud("telemetry", extra_env={"ONESTACK_TELEMETRY_INTERVAL": "5"}).start()
    try:
        if not any(e["Type"] == "metric" for e in c.os_json("catalog", "list")):
            pytest.skip("no metric service in this build")
        yield c
    finally:
        c.stop()


def _resource(cloud: Cloud, rtype: str, rid: str, user: str = "admin") -> dict | None:
    r = cloud.openstack("metric", "resource", "show", "--type", rtype, rid, "-f", "json", user=user, check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def _measures(cloud: Cloud, metric: str, rid: str, *extra: str, user: str = "admin", aggregation: str = "mean"
              ) -> list[dict]:
    r = cloud.openstack("metric", "measures", "show", metric, "--resource-id", rid, "--aggregation", aggregation,
                        "--granularity", "60", *extra, "-f", "json", user=user, check=False)
    return json.loads(r.stdout) if r.returncode == 0 else []


def test_a_server_on_a_fake_host_gets_instance_measures(tcloud, tmp_path):
    path = tmp_path / "tiny.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "16M"], check=True)
    demo = {"user": "demo"}
    image = tcloud.os_json("image", "create", "--disk-format", "qcow2", "--file", str(path), "tm-img", **demo)
    net = tcloud.os_json("network", "create", "tm-net", **demo)
    tcloud.openstack("subnet", "create", "--network", net["id"], "--subnet-range", "192.168.91.0/24", "tm-sn",
                     **demo)
    server = tcloud.os_json("server", "create", "--flavor", "m1.nano", "--image", image["id"], "--network",
                            net["id"], "--property", "metering.server_group=grp-1", "tm-1", **demo)
    wait_for(lambda: tcloud.os_json("server", "show", server["id"], **demo)["status"] == "ACTIVE", 60,
             "the server to be ACTIVE")

    meters = {"cpu", "cpu_util", "vcpus", "memory", "memory.usage"}
    res = wait_for(lambda: (lambda r: r if r and meters <= set(_metric_names(r)) else None)(
        _resource(tcloud, "instance", server["id"], user="demo")), 60, "the server's instance meters")
    assert res["display_name"] == "tm-1" and res["flavor_name"] == "m1.nano"
    assert res["server_group"] == "grp-1"  # (Heat's metering.server_group metadata)
    cpu = wait_for(lambda: _measures(tcloud, "cpu", server["id"], user="demo"), 60, "measures of cpu")
    assert cpu[-1]["value"] > 0
    wait_for(lambda: _measures(tcloud, "cpu_util", server["id"], user="demo"), 60, "measures of cpu_util")
    disk = wait_for(lambda: _resource(tcloud, "instance_disk", f"{server['id']}-vda", user="demo"), 30,
                    "the server's disk resource")
    assert disk["instance_id"] == server["id"] and disk["name"] == "vda"

    tcloud.openstack("server", "set", "--name", "tm-renamed", server["id"], **demo)
    wait_for(lambda: _resource(tcloud, "instance", server["id"])["display_name"] == "tm-renamed", 30,
             "the rename to reach the instance resource")
    tcloud.openstack("server", "delete", "--wait", server["id"], **demo)
    wait_for(lambda: _resource(tcloud, "instance", server["id"])["ended_at"], 30, "the resource to end")


def _metric_names(res: dict) -> list[str]:
    metrics = res.get("metrics") or {}
    if isinstance(metrics, str):  # the CLI's table text: "name: id" lines
        return [line.split(":")[0].strip() for line in metrics.splitlines()]
    return list(metrics)


def test_object_storage_bytes_per_account(tcloud, tmp_path):
    demo = {"user": "demo"}
    project = tcloud.openrc("demo")["OS_PROJECT_NAME"]
    pid = tcloud.os_json("project", "show", project)["id"]
    data = tmp_path / "obj"
    data.write_bytes(b"x" * 1000)
    tcloud.openstack("container", "create", "tm-c", **demo)
    tcloud.openstack("object", "create", "tm-c", str(data), "--name", "o1", **demo)
    wait_for(lambda: _resource(tcloud, "swift_account", pid, user="demo"), 60, "the account's resource")
    # (the max of the minute: a poll of that minute may have come before the upload)
    size = wait_for(lambda: [m for m in _measures(tcloud, "storage.objects.size", pid, user="demo", aggregation="max")
                             if m["value"] >= 1000], 60, "storage.objects.size of the account")
    assert size[-1]["value"] == 1000
    objects = _measures(tcloud, "storage.objects", pid, user="demo", aggregation="max")
    assert objects[-1]["value"] == 1


def test_floating_ips_are_measured(tcloud):
    demo = {"user": "demo"}
    fip = tcloud.os_json("floating", "ip", "create", "public", **demo)
    res = wait_for(lambda: _resource(tcloud, "generic", fip["id"], user="demo"), 60, "the floating IP's resource")
    assert "ip.floating" in _metric_names(res)
    assert wait_for(lambda: _measures(tcloud, "ip.floating", fip["id"], user="demo"), 60,
                    "measures of ip.floating")[-1]["value"] == 1
    tcloud.openstack("floating", "ip", "delete", fip["id"], **demo)
