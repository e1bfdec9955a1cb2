"""The network agent's plan: a host's desired state (the conductor's dicts) turned into
the data plane library's specs. Pure: no kernel, no bus."""

from __future__ import annotations

from onestack.network.agent import plan

NET, EXT = "11111111-2222-3333-4444-555555555555", "99999999-8888-7777-6666-555555555555"
SUB = {"id": "sub1", "cidr": "10.0.0.0/26", "ip_version": 4, "gateway_ip": "10.0.0.1", "enable_dhcp": True,
       "dns_nameservers": ["10.0.0.53"], "host_routes": []}
EXT_SUB = {"id": "ext1", "cidr": "172.24.4.0/24", "ip_version": 4, "gateway_ip": "172.24.4.1",
           "enable_dhcp": False, "dns_nameservers": [], "host_routes": []}


def _port(pid, net, ip, subnet="sub1", owner="compute:nova", **kw):
    return {"id": pid, "network_id": net, "mac_address": f"fa:16:3e:00:00:{pid[-2:]}",
            "fixed_ips": [{"subnet_id": subnet, "ip_address": ip}], "device_owner": owner,
            "device_id": kw.pop("device_id", "inst-" + pid), "project_id": "p1", "dns_name": "",
            "security_groups": kw.pop("security_groups", ["sg1"]), "allowed_address_pairs": [],
            "port_security_enabled": True, "status": "DOWN", **kw}


def _state(with_router=True):
    vm = _port("port-vm01", NET, "10.0.0.5")
    dhcp_port = _port("port-dh02", NET, "10.0.0.2", owner="network:dhcp", security_groups=[])
    qr = _port("port-qr03", NET, "10.0.0.1", owner="network:router_interface", device_id="r1")
    qg = _port("port-qg04", EXT, "172.24.4.2", subnet="ext1", owner="network:router_gateway", device_id="r1")
    nets = [
        {"id": NET, "mtu": 1450, "router:external": False, "provider:network_type": "vxlan",
         "provider:segmentation_id": 7, "provider:physical_network": None, "subnets": [SUB],
         "ports": [vm, dhcp_port] + ([qr] if with_router else []), "dhcp_port": dhcp_port,
         "routers": ["r1"] if with_router else [], "peers": ["192.0.2.2"]},
    ]
    routers = []
    if with_router:
        nets.append({"id": EXT, "mtu": 1500, "router:external": True, "provider:network_type": "flat",
                     "provider:segmentation_id": None, "provider:physical_network": "public",
                     "subnets": [EXT_SUB], "ports": [qg], "dhcp_port": None, "routers": ["r1"], "peers": []})
        routers.append({"id": "r1", "interfaces": [qr], "gateway": qg, "enable_snat": True,
                        "routes": [{"destination": "10.9.0.0/24", "nexthop": "10.0.0.9"}],
                        "floating_ips": [{"floating_ip_address": "172.24.4.9", "fixed_ip_address": "10.0.0.5"}]})
    rules = {"sg1": [{"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp", "port_range_min": None,
                      "port_range_max": None, "remote_ip_prefix": None, "remote_group_id": "sg1"}]}
    return {"networks": nets, "ports": [vm], "routers": routers, "security_group_rules": rules,
            "remote_groups": {"sg1": ["10.0.0.5"]}}


def test_bridges_vxlan_and_the_external_namespace():
    p = plan.build(_state(), local_ip="192.0.2.1")
    tenant, ext = p.bridges
    assert tenant.name == "brq" + NET.replace("-", "")[:12] and tenant.netns is None and tenant.mtu == 1450
    assert tenant.vxlan == (7, "192.0.2.1", ["192.0.2.2"]) and tenant.vxlan_device == "vxlan-7"
    # the external network's bridge lives in onestack-public, which takes the gateway address
    assert ext.netns == "onestack-public" and ext.vxlan is None and ext.addresses == ["172.24.4.1/24"]
    assert p.external_namespaces == ["onestack-public"]


def test_guest_port_tap_and_security_groups():
    p = plan.build(_state(), local_ip="127.0.0.1")
    assert [(t.port_id, t.device, t.mtu) for t in p.taps] == [("port-vm01", "tapportvm01", 1450)]
    (sgp,) = p.sg_ports
    assert sgp.device == "tapportvm01" and sgp.fixed_ips == ["10.0.0.5"] and sgp.bridge == p.bridges[0].name
    assert [(r.direction, r.protocol, r.remote_group_id) for r in sgp.rules] == [("ingress", "icmp", "sg1")]
    assert p.remote_groups == {"sg1": ["10.0.0.5"]}


def test_dhcp_hosts_and_isolated_metadata():
    p = plan.build(_state(), local_ip="127.0.0.1")
    (net,) = p.dhcp
    assert net.port_id == "port-dh02" and net.port_ips == ["10.0.0.2"] and net.mtu == 1450
    assert {(h.mac, h.ip) for h in net.hosts} == {("fa:16:3e:00:00:01", "10.0.0.5"),
                                                  ("fa:16:3e:00:00:03", "10.0.0.1")}
    assert net.isolated_metadata is False  # a router serves metadata
    isolated = plan.build(_state(with_router=False), local_ip="127.0.0.1")
    assert isolated.dhcp[0].isolated_metadata is True
    (proxy,) = isolated.proxies
    assert proxy.netns == f"qdhcp-{NET}" and proxy.labels == {"X-Neutron-Network-ID": NET}
    assert proxy.identities["10.0.0.5"].instance_id == "inst-port-vm01"


def test_router_spec_with_gateway_floating_ip_and_metadata():
    p = plan.build(_state(), local_ip="127.0.0.1")
    (r,) = p.routers
    assert [(i.id, i.cidrs, i.bridge_netns) for i in r.interfaces] == [("port-qr03", ["10.0.0.1/26"], None)]
    assert r.gateway.cidrs == ["172.24.4.2/24"] and r.gateway.gateway_ip == "172.24.4.1"
    assert r.gateway.bridge_netns == "onestack-public"
    assert [(f.floating_ip, f.fixed_ip) for f in r.floating_ips] == [("172.24.4.9", "10.0.0.5")]
    assert r.routes == [("10.9.0.0/24", "10.0.0.9")]
    assert p.router_ports == {"r1": ["port-qr03", "port-qg04"]}
    (proxy,) = p.proxies
    assert proxy.netns == "qrouter-r1" and proxy.identities["10.0.0.5"].project_id == "p1"
    # only guests' addresses resolve: the router's own does not
    assert "10.0.0.1" not in proxy.identities


def test_a_guest_on_an_external_network_cannot_be_plugged():
    state = _state()
    state["ports"].append(_port("port-ex05", EXT, "172.24.4.7", subnet="ext1"))
    p = plan.build(state, local_ip="127.0.0.1")
    assert p.unpluggable == ["port-ex05"]
    assert "port-ex05" not in {t.port_id for t in p.taps}
