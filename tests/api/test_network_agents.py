"""Network agents through the real `openstack` CLI: the agent list (DHCP, L3, Linux
bridge and metadata agents, alive by heartbeat), show/set/delete, availability zones,
who hosts a network's DHCP and a router, port bindings, and the demo topology.

The agent needs root and the data plane tools, and only one runs per host, so this
module starts its own cloud with the agent on (the shared API cloud has it off).
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.cloud import Cloud
from tests.requirements import missing

# the network agent needs root and the data plane tools
pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(180)]

TYPES = {"Linux bridge agent": "neutron-linuxbridge-agent", "DHCP agent": "neutron-dhcp-agent",
         "L3 agent": "neutron-l3-agent", "Metadata agent": "neutron-metadata-agent"}


def wait_for(fn, timeout: float = 15.0, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(step)


@pytest.fixture(scope="module")
def agent_cloud():
    c = Cloud("netagents", extra_env={"ONESTACK_NETWORK_AGENT": "true",
                                      "ONESTACK_NETWORK_AGENT_REPORT_INTERVAL": "1"})
    try:
        c.start()
        agents = wait_for(lambda: c.os_json("network", "agent", "list"), 10)
        if not agents:
            log = (c.state / "onestack.log").read_text()
            if "another onestack network agent runs on this host" in log:
                missing("another onestack's network agent runs on this host")
            raise AssertionError(f"no network agent reported:\n{log[-3000:]}")
        yield c
    finally:
        c.stop()


def test_agent_list_shows_the_four_agents_alive(agent_cloud):
    agents = agent_cloud.os_json("network", "agent", "list")
    assert {a["Agent Type"]: a["Binary"] for a in agents} == TYPES
    assert all(a["Alive"] is True and a["State"] is True for a in agents), agents
    hosts = {a["Host"] for a in agents}
    assert len(hosts) == 1
    zones = {a["Agent Type"]: a["Availability Zone"] for a in agents}
    assert zones["DHCP agent"] == zones["L3 agent"] == "nova"
    assert zones["Linux bridge agent"] is None
    # filters, as the CLI sends them
    dhcp = agent_cloud.os_json("network", "agent", "list", "--agent-type", "dhcp")
    assert [a["Agent Type"] for a in dhcp] == ["DHCP agent"]
    assert len(agent_cloud.os_json("network", "agent", "list", "--host", hosts.pop())) == 4
    # `onestack status` lists them too
    out = agent_cloud.onestack("status").stdout
    assert "network agents" in out and "L3 agent" in out


def test_agent_show_set_and_delete(agent_cloud):
    agents = {a["Agent Type"]: a for a in agent_cloud.os_json("network", "agent", "list")}
    meta = agents["Metadata agent"]
    shown = agent_cloud.os_json("network", "agent", "show", meta["ID"])
    assert shown["agent_type"] == "Metadata agent" and shown["alive"] is True
    assert shown["configuration"]["metadata_proxy"].endswith("/metadata")
    assert shown["last_heartbeat_at"] and shown["started_at"]
    agent_cloud.openstack("network", "agent", "set", "--disable", "--description", "resting", meta["ID"])
    shown = agent_cloud.os_json("network", "agent", "show", meta["ID"])
    assert shown["admin_state_up"] is False and shown["description"] == "resting"
    agent_cloud.openstack("network", "agent", "set", "--enable", meta["ID"])
    assert agent_cloud.os_json("network", "agent", "show", meta["ID"])["admin_state_up"] is True
    # deleted, the record comes back with the next heartbeat (a new id), as in Neutron
    agent_cloud.openstack("network", "agent", "delete", meta["ID"])
    r = agent_cloud.openstack("network", "agent", "show", meta["ID"], check=False)
    assert r.returncode != 0 and ("could not be found" in r.stderr or "404" in r.stderr), r.stderr
    back = wait_for(lambda: [a for a in agent_cloud.os_json("network", "agent", "list")
                             if a["Agent Type"] == "Metadata agent"], 10)
    assert back and back[0]["ID"] != meta["ID"] and back[0]["Alive"] is True


def test_members_see_no_agents(agent_cloud):
    with agent_cloud.new_member("agents") as env:
        assert agent_cloud.os_json("network", "agent", "list", env=env) == []
        # availability zones are for everyone
        zones = agent_cloud.os_json("availability", "zone", "list", "--network", "--long", env=env)
        assert zones


def test_availability_zones(agent_cloud):
    zones = agent_cloud.os_json("availability", "zone", "list", "--network", "--long")
    got = {(z["Zone Name"], z["Zone Resource"], z["Zone Status"]) for z in zones}
    assert got == {("nova", "network", "available"), ("nova", "router", "available")}
    aliases = {e["Alias"] for e in agent_cloud.os_json("extension", "list", "--network")}
    assert {"agent", "availability_zone"} <= aliases


def test_demo_topology_is_made_and_plumbed(agent_cloud):
    demo = agent_cloud.openrc("demo")
    nets = {n["Name"]: n for n in agent_cloud.os_json("network", "list", env=demo)}
    assert {"private", "public"} <= set(nets)
    sub = agent_cloud.os_json("subnet", "show", "private-subnet", env=demo)
    assert sub["cidr"] == "10.0.0.0/26" and sub["gateway_ip"] == "10.0.0.1"
    router = agent_cloud.os_json("router", "show", "router1", env=demo)
    assert router["external_gateway_info"]["network_id"] == nets["public"]["ID"]

    def statuses():
        ports = agent_cloud.os_json("port", "list", "--network", "private", "--long")
        return {p["Device Owner"]: p["Status"] for p in ports}

    want = {"network:dhcp": "ACTIVE", "network:router_interface": "ACTIVE"}
    assert wait_for(lambda: statuses() == want, 15), statuses()
    # who hosts them
    dhcp = agent_cloud.os_json("network", "agent", "list", "--network", nets["private"]["ID"])
    assert [a["Agent Type"] for a in dhcp] == ["DHCP agent"]
    l3 = agent_cloud.os_json("network", "agent", "list", "--router", router["id"])
    assert [a["Agent Type"] for a in l3] == ["L3 agent"]
    # the namespaces are there, and `onestack netns list` names them
    out = agent_cloud.onestack("netns", "list").stdout
    assert "onestack-public" in out and "qrouter-" in out and "qdhcp-" in out


def test_port_binding_is_the_linux_bridge(agent_cloud):
    host = agent_cloud.os_json("network", "agent", "list")[0]["Host"]
    net = agent_cloud.os_json("network", "create", f"bind-{uuid.uuid4().hex[:6]}")
    try:
        port = agent_cloud.os_json("port", "create", "--network", net["id"], "--host", host, "bound")
        assert port["binding_vif_type"] == "bridge"
        details = port["binding_vif_details"]
        assert details["bridge_name"] == ("brq" + net["id"].replace("-", ""))[:15]
        assert details["port_filter"] is True
        # no tap exists: the port stays DOWN
        assert port["status"] == "DOWN"
        agent_cloud.openstack("port", "delete", port["id"])
    finally:
        agent_cloud.openstack("network", "delete", net["id"])


def test_a_disabled_l3_agent_stops_serving_routers(agent_cloud):
    from onestack.network.linux import ip as iplib

    router = agent_cloud.os_json("router", "show", "router1")
    ns = f"qrouter-{router['id']}"
    assert wait_for(lambda: iplib.netns_exists(ns), 10)
    l3 = agent_cloud.os_json("network", "agent", "list", "--agent-type", "l3")[0]
    agent_cloud.openstack("network", "agent", "set", "--disable", l3["ID"])
    try:
        assert wait_for(lambda: not iplib.netns_exists(ns), 10)
        assert agent_cloud.os_json("network", "agent", "list", "--router", router["id"]) == []
    finally:
        agent_cloud.openstack("network", "agent", "set", "--enable", l3["ID"])
    assert wait_for(lambda: iplib.netns_exists(ns), 10)
