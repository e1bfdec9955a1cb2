"""The compute agent's part of moves where things go wrong or come back: a destination
that fails to finish a cold migration, a live migration cancelled before it runs, and a
host that comes back after its servers were evacuated. Fake conductor, Placement and
network; the fake driver (tests/api/test_server_moves.py runs the flows in a cloud)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from onestack.compute import agent as agent_mod
from onestack.compute import clients, states
from onestack.compute.virt import FakeDriver, ImageRef, InstanceSpec, VirtError

UUID = "6f1ab1b4-5b1c-4b5e-9d56-0d4a1f1b1c0a"
MIG = "0d7a9c4e-2f4b-4f43-9c1e-5a6b7c8d9e0a"
VIF = {"port_id": "p1", "network_id": "n1", "mac": "fa:16:3e:00:00:01", "bridge": "brqn1", "tap": "tapp1"}


class FakeConductor:
    def __init__(self, inst: dict, migration: dict):
        self.inst, self.migration = inst, migration
        self.updates: list[dict] = []
        self.statuses: list[str] = []
        self.events: list[dict] = []

    def instance_get(self, instance_uuid):
        return copy.deepcopy(self.inst)

    def instance_update(self, instance_uuid, **changes):
        self.updates.append(changes)
        self.inst.update(changes)
        return copy.deepcopy(self.inst)

    def action_event(self, **kw):
        self.events.append(kw)

    def migration_get(self, migration_uuid):
        return dict(self.migration)

    def migration_update(self, migration_uuid, **changes):
        self.migration.update(changes)
        if "status" in changes:
            self.statuses.append(changes["status"])
        return dict(self.migration)

    def evacuations_from(self, host):
        return [dict(self.migration)] if self.migration["status"] == "done" else []

    def instances_on_host(self, host):
        return []


class FakePlacement:
    def __init__(self):
        self.calls: list[tuple] = []

    def revert_move(self, instance, migration):
        self.calls.append(("revert_move", instance, migration))
        return True

    def drop_provider(self, consumer, provider):
        self.calls.append(("drop_provider", consumer, provider))
        return True


class FakeClients:
    def __init__(self):
        self.placement = FakePlacement()


@pytest.fixture
def placement(monkeypatch):
    fake = FakeClients()
    monkeypatch.setattr(clients, "current", fake)
    return fake.placement


def _agent(host: str, inst: dict, migration: dict) -> agent_mod.ComputeAgent:
    a = agent_mod.ComputeAgent(host, FakeDriver(host), plug=False)
    a.conductor = FakeConductor(inst, migration)
    a.node_uuid = f"rp-{host}"
    return a


def _inst(**kw) -> dict:
    return {"uuid": UUID, "deleted": False, "vm_state": states.ACTIVE, "task_state": None, "host": "src",
            "node": "src", "name": "s", "project_id": "p", "user_id": "u", "image_ref": "img",
            "flavor": {"id": "42", "name": "m1.nano", "vcpus": 1, "memory_mb": 128, "root_gb": 1},
            "system_metadata": {"image": {"id": "img", "disk_format": "qcow2"}}, "network_info": [VIF],
            "block_device_mapping": [], "config_drive": "", **kw}


def test_a_destination_that_fails_gives_everything_back(placement, monkeypatch):
    bound, told = [], []
    monkeypatch.setattr(agent_mod.network, "rebind", lambda vifs, host: bound.append(host) or vifs)
    a = _agent("dst", _inst(task_state=states.RESIZE_MIGRATED),
               {"uuid": MIG, "source_compute": "src", "dest_compute": "dst", "status": "post-migrating"})
    monkeypatch.setattr(a, "_to_host", lambda host, method, **kw: told.append((host, method)))

    def broken(spec, disk_info, power_on=True):
        raise VirtError("the disk could not be copied from 192.0.2.1:10809: Connection refused")

    monkeypatch.setattr(a.driver, "finish_migration", broken)
    a.finish_resize(UUID, MIG, {**_inst()["flavor"], "name": "m1.micro"}, {"local": True}, request_id="req-1")
    assert bound == ["dst", "src"]  # the ports went back to the host the server is still on
    assert told == [("src", "migration_transfer_done")]  # the source stops serving the disk
    assert placement.calls == [("revert_move", UUID, MIG)]
    assert a.conductor.statuses == ["error"]
    assert a.conductor.inst["vm_state"] == states.ERROR and a.conductor.inst["host"] == "src"
    assert "Connection refused" in a.conductor.inst["fault"]["message"]
    assert a.conductor.events[-1]["result"] == "Error"


def test_a_live_migration_cancelled_before_it_runs(placement, monkeypatch):
    a = _agent("src", _inst(task_state=states.MIGRATING),
               {"uuid": MIG, "source_compute": "src", "dest_compute": "dst", "status": "accepted"})
    a.driver.spawn(InstanceSpec(UUID, 128, 1, ImageRef("img", Path("/nonexistent"))))
    told = []
    monkeypatch.setattr(a, "_to_host", lambda host, method, **kw: told.append((host, method)))

    def call_host(host, method, timeout=300, **kw):
        assert (host, method) == ("dst", "pre_live_migration")
        a.live_migration_abort(UUID, MIG)  # (the abort arrives while the destination prepares)
        return {"host": "dst"}

    monkeypatch.setattr(a, "_call_host", call_host)
    a.live_migration(UUID, MIG, request_id="req-1")
    assert a.conductor.statuses == ["preparing", "cancelled"]
    assert told == [("dst", "rollback_live_migration_at_destination")]
    assert placement.calls == [("revert_move", UUID, MIG)]
    assert a.driver.list_instances() == [UUID]  # the guest never left
    assert a.conductor.inst["task_state"] is None and a.conductor.inst["host"] == "src"


def test_a_host_back_after_an_evacuation_removes_its_stale_copies(placement):
    a = _agent("src", _inst(host="dst"), {"uuid": MIG, "instance_uuid": UUID, "source_compute": "src",
                                          "dest_compute": "dst", "status": "done"})
    a.driver.spawn(InstanceSpec(UUID, 128, 1, ImageRef("img", Path("/nonexistent"))))
    a.reconcile()
    assert a.driver.list_instances() == []
    assert placement.calls == [("drop_provider", UUID, "rp-src")]  # the room it held on this host
    assert a.conductor.statuses == ["completed"]
    a.reconcile()  # once only
    assert placement.calls == [("drop_provider", UUID, "rp-src")]
