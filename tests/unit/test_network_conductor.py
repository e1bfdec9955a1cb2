"""The network conductor and the change notifications, on a throw-away SQLite database:
no kernel, no HTTP. (The agent's real use of them is in tests/e2e/test_network_agent.py.)"""

from __future__ import annotations

import pytest

from onestack.common import bus, db
from onestack.network import agent_records, conductor, core

HOST = "node-1"


class Admin:
    is_admin = True
    project_id = "p1"
    roles = ["admin"]

    def policy_creds(self):
        return {"roles": ["admin"], "roles_lower": ["admin"], "project_id": "p1", "is_admin": True}


@pytest.fixture()
def cond(tmp_path):
    db._engine = None  # a database of this test's own
    db.configure(f"sqlite:///{tmp_path / 'net.db'}")
    db.upgrade("network")
    core.configure(core.Settings(), None)
    bus.configure("inprocess")
    with db.transaction() as s:
        core.make_public_network(s)
    yield conductor.serve(75)
    db._engine = None


def _events():
    got = []
    bus.get().subscribe("network.*", lambda t, p: got.append((t, p)))
    return got


def test_notifications_follow_commits_only(cond):
    got = _events()
    with db.transaction() as s:
        net = core.create_network(s, Admin(), {"name": "n1"})
        assert got == []  # nothing before the commit
    assert [t for t, p in got if p["id"] == net["id"]] == ["network.network.create"]
    got.clear()
    with pytest.raises(RuntimeError), db.transaction() as s:
        core.save(s, core.find(s, "network", net["id"]), {"name": "renamed"})
        raise RuntimeError("rolled back")
    assert got == []


def test_report_host_state_dhcp_port_and_status(cond):
    cond.report(HOST, [{"agent_type": t, "availability_zone": "nova"} for t in conductor.AGENT_TYPES],
                start_flag=True)
    with db.session() as s:
        agents = conductor.agents(s)
        assert {a["agent_type"] for a in agents} == set(conductor.AGENT_TYPES)
        assert all(agent_records.agent_view(a)["alive"] for a in agents)
        assert conductor.hosting(s, "DHCP agent") == HOST
    with db.transaction() as s:
        net = core.create_network(s, Admin(), {"name": "n1"})
        sub = core.create_subnet(s, Admin(), {"network_id": net["id"], "cidr": "10.1.0.0/24"})
        vm = core.create_port(s, Admin(), {"network_id": net["id"], "binding:host_id": HOST,
                                           "device_owner": "compute:nova", "device_id": "i1"})
    assert vm["binding:vif_type"] == "bridge"
    assert vm["binding:vif_details"]["bridge_name"] == core.bridge_name(net["id"])

    state = cond.host_state(HOST)
    (n,) = [x for x in state["networks"] if x["id"] == net["id"]]
    dport = n["dhcp_port"]
    assert dport["device_owner"] == "network:dhcp" and dport["binding:host_id"] == HOST
    assert dport["device_id"] == conductor.dhcp_device_id(HOST, net["id"])
    assert [f["subnet_id"] for f in dport["fixed_ips"]] == [sub["id"]]
    assert [p["id"] for p in state["ports"]] == [vm["id"]]
    assert state["remote_groups"]  # the default group's rules name itself
    # a second call makes no second DHCP port
    again = cond.host_state(HOST)
    assert [x for x in again["networks"] if x["id"] == net["id"]][0]["dhcp_port"]["id"] == dport["id"]
    # another host sees nothing of it
    assert cond.host_state("node-2")["networks"] == []

    got = _events()
    assert cond.port_status(HOST, {vm["id"]: "ACTIVE", dport["id"]: "ACTIVE"}) == 2
    assert cond.port_status("node-2", {vm["id"]: "DOWN"}) == 0  # not its port
    assert {p["id"] for t, p in got if t == "network.port.status"} == {vm["id"], dport["id"]}

    # the subnet loses DHCP: the port goes
    with db.transaction() as s:
        core.update_subnet(s, Admin(), core.find(s, "subnet", sub["id"]), {"enable_dhcp": False})
    state = cond.host_state(HOST)
    assert [x for x in state["networks"] if x["id"] == net["id"]][0]["dhcp_port"] is None
    with db.session() as s:
        assert core.find(s, "port", dport["id"]) is None
