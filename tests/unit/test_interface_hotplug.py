"""The compute agent's side of interface hot-plug (attach_interface, detach_interface) on
the fake driver, with a fake conductor and a fake network API: the port bound to the host
and the NIC plugged and recorded; a failed plug lets the port go; a guest that keeps the
NIC keeps its port; a user's port is unbound and kept, one made for the server deleted."""

from __future__ import annotations

import copy

import pytest

from onestack.common import errors
from onestack.compute import agent as agent_mod
from onestack.compute import clients
from onestack.compute.virt import DeviceDetachFailed, FakeDriver, ImageRef, InstanceSpec

UUID = "6f1ab1b4-5b1c-4b5e-9d56-0d4a1f1b1c03"
NET = "0d7a9c4e-2f4b-4f43-9c1e-5a6b7c8d9e01"
PORT = "a1b2c3d4-0000-4000-8000-000000000001"
MAC = "fa:16:3e:00:00:01"


class FakeNetworkAPI:
    def __init__(self):
        self.ports = {PORT: {"id": PORT, "network_id": NET, "mac_address": MAC, "device_id": "",
                             "device_owner": "", "binding:host_id": "", "fixed_ips": []}}

    def get(self, path, params=None, **kw):
        if path.startswith("/v2.0/networks/"):
            return {"network": {"id": NET, "name": "n", "mtu": 1450}}
        if path == "/v2.0/floatingips":
            return {"floatingips": []}
        raise AssertionError(path)

    def put(self, path, json=None, **kw):
        port = self.ports[path.rsplit("/", 1)[-1]]
        port.update(json["port"])
        return {"port": dict(port)}

    def delete(self, path, **kw):
        self.ports.pop(path.rsplit("/", 1)[-1], None)


class FakeConductor:
    def __init__(self, inst: dict):
        self.inst, self.events = inst, []

    def instance_get(self, instance_uuid):
        return copy.deepcopy(self.inst)

    def instance_update(self, instance_uuid, **changes):
        self.inst.update(copy.deepcopy(changes))
        return copy.deepcopy(self.inst)

    def action_event(self, **kw):
        self.events.append(kw)


class FakeClients:
    def __init__(self):
        self.network = FakeNetworkAPI()


@pytest.fixture
def agent(monkeypatch):
    fake = FakeClients()
    monkeypatch.setattr(clients, "current", fake)
    driver = FakeDriver(host="h1")
    driver.spawn(InstanceSpec(uuid=UUID, memory_mib=64, vcpus=1, image=ImageRef("img", lambda p: None)))
    a = agent_mod.ComputeAgent("h1", driver, plug=False)
    a.conductor = FakeConductor({"uuid": UUID, "deleted": False, "availability_zone": "nova", "network_info": []})
    return a, fake.network


def test_attach_binds_plugs_and_records(agent):
    a, net = agent
    vif = a.attach_interface(UUID, PORT, preserve=True, tag="t1", request_id="req-1")
    port = net.ports[PORT]
    assert (port["device_id"], port["device_owner"], port["binding:host_id"]) == (UUID, "compute:nova", "h1")
    assert [n.mac for n in a.driver.interfaces(UUID)] == [MAC]  # the fake guest has the NIC
    assert [(v["port_id"], v["preserve"], v["tag"]) for v in a.conductor.inst["network_info"]] == [(PORT, True, "t1")]
    assert (vif["port_id"], vif["mac"], vif["mtu"]) == (PORT, MAC, 1450)
    assert [(e["event"], e.get("result")) for e in a.conductor.events] == [
        ("compute_attach_interface", None), ("compute_attach_interface", "Success")]

    a.detach_interface(UUID, PORT, request_id="req-2")
    assert a.driver.interfaces(UUID) == [] and a.conductor.inst["network_info"] == []
    port = net.ports[PORT]  # the user's port: kept, unbound
    assert (port["device_id"], port["device_owner"], port["binding:host_id"]) == ("", "", "")
    assert a.conductor.events[-1]["result"] == "Success"


def test_failed_plug_lets_the_port_go(agent):
    a, net = agent
    a.attach_interface(UUID, PORT, preserve=False, request_id="req-1")
    a.conductor.inst["network_info"] = []  # (as if the record were lost: the guest has the MAC already)
    with pytest.raises(errors.ApiError, match="Failed to attach network adapter device") as e:
        a.attach_interface(UUID, PORT, preserve=False, request_id="req-2")
    assert e.value.status == 500
    assert PORT not in net.ports  # made for the server: deleted
    assert a.conductor.inst["network_info"] == []
    assert a.conductor.events[-1]["result"] == "Error" and "already has an interface" in a.conductor.events[-1]["details"]


def test_a_guest_that_keeps_the_nic_keeps_the_port(agent, monkeypatch):
    a, net = agent
    a.attach_interface(UUID, PORT, preserve=False, request_id="req-1")

    def refuse(uuid, mac):
        raise DeviceDetachFailed("the guest did not release it")
    monkeypatch.setattr(a.driver, "detach_interface", refuse)
    a.detach_interface(UUID, PORT, request_id="req-2")
    assert net.ports[PORT]["device_id"] == UUID
    assert [v["port_id"] for v in a.conductor.inst["network_info"]] == [PORT]
    assert "did not release" in a.conductor.inst["fault"]["message"]
    assert a.conductor.events[-1]["result"] == "Error"
