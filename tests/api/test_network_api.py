"""Networking v2.0 through the real `openstack` CLI and openstacksdk: networks,
subnets, ports and IPAM, security groups, routers, floating IPs, quotas,
project isolation and policy."""

from __future__ import annotations

import uuid

import openstack
import pytest
from openstack import exceptions as sdkexc


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _conn(env: dict) -> openstack.connection.Connection:
    return openstack.connect(
        auth_url=env["OS_AUTH_URL"], username=env["OS_USERNAME"], password=env["OS_PASSWORD"],
        project_name=env["OS_PROJECT_NAME"], user_domain_name="Default", project_domain_name="Default",
        region_name="RegionOne", identity_api_version="3",
    )


@pytest.fixture(scope="module")
def admin(cloud):
    return _conn(cloud.openrc("admin"))


@pytest.fixture(scope="module")
def other(cloud):
    """A member of a fresh project: (env for the CLI, sdk connection)."""
    with cloud.new_member("net-other") as env:
        yield env, _conn(env)


def test_version_discovery_and_extensions(cloud):
    import httpx

    r = httpx.get(cloud.url + "/networking")
    assert r.status_code == 200
    v = r.json()["versions"]
    assert v[0]["id"] == "v2.0" and v[0]["status"] == "CURRENT"
    aliases = {e["Alias"] for e in cloud.os_json("extension", "list", "--network")}
    for alias in ("router", "external-net", "security-group", "subnet_allocation", "quotas", "binding",
                  "allowed-address-pairs", "port-security", "provider", "project-id", "standard-attr-tag"):
        assert alias in aliases
    assert "agent" in aliases and "availability_zone" in aliases


def test_network_subnet_port_lifecycle(cloud):
    net = cloud.os_json("network", "create", "--description", "lab", "--tag", "t1", _name("net"))
    assert net["status"] == "ACTIVE" and net["mtu"] == 1450 and net["tags"] == ["t1"]
    sub = cloud.os_json("subnet", "create", "--network", net["id"], "--subnet-range", "192.12.10.0/24",
                        "--dns-nameserver", "8.8.8.8", _name("sub"))
    assert sub["gateway_ip"] == "192.12.10.1"
    assert sub["allocation_pools"] == [{"start": "192.12.10.2", "end": "192.12.10.254"}]
    assert sub["dns_nameservers"] == ["8.8.8.8"]
    shown = cloud.os_json("network", "show", net["id"])
    assert shown["subnets"] == [sub["id"]]
    assert any(n["ID"] == net["id"] for n in cloud.os_json("network", "list"))
    port = cloud.os_json("port", "create", "--network", net["id"], _name("port"))
    assert port["mac_address"].startswith("fa:16:3e:") and port["status"] == "DOWN"
    assert port["fixed_ips"][0]["ip_address"] == "192.12.10.2"
    cloud.openstack("port", "set", "--name", "renamed", port["id"])
    assert cloud.os_json("port", "show", port["id"])["name"] == "renamed"
    cloud.openstack("network", "set", "--name", "renamed-net", net["id"])
    cloud.openstack("subnet", "set", "--no-dhcp", sub["id"])
    assert cloud.os_json("subnet", "show", sub["id"])["enable_dhcp"] is False
    # a network with a port is in use; a subnet with an allocation too
    r = cloud.openstack("network", "delete", net["id"], check=False)
    assert r.returncode != 0
    r = cloud.openstack("subnet", "delete", sub["id"], check=False)
    assert r.returncode != 0
    cloud.openstack("port", "delete", port["id"])
    cloud.openstack("subnet", "delete", sub["id"])
    cloud.openstack("network", "delete", net["id"])
    assert cloud.openstack("network", "show", net["id"], check=False).returncode != 0


def test_subnet_validation(admin):
    net = admin.network.create_network(name=_name("val"))
    try:
        with pytest.raises(sdkexc.BadRequestException):
            admin.network.create_subnet(network_id=net.id, cidr="10.9.0.0/33", ip_version=4)
        with pytest.raises(sdkexc.BadRequestException):
            admin.network.create_subnet(network_id=net.id, cidr="10.9.0.0/24", ip_version=4,
                                        allocation_pools=[{"start": "10.9.1.2", "end": "10.9.1.20"}])
        sub = admin.network.create_subnet(network_id=net.id, cidr="10.9.0.0/24", ip_version=4, gateway_ip=None)
        assert sub.gateway_ip is None
        assert sub.allocation_pools == [{"start": "10.9.0.1", "end": "10.9.0.254"}]
        with pytest.raises(sdkexc.BadRequestException):  # overlaps on the same network
            admin.network.create_subnet(network_id=net.id, cidr="10.9.0.128/25", ip_version=4)
        v6 = admin.network.create_subnet(network_id=net.id, cidr="fd00:1::/64", ip_version=6,
                                         ipv6_address_mode="slaac", ipv6_ra_mode="slaac")
        port = admin.network.create_port(network_id=net.id)
        addrs = {f["subnet_id"]: f["ip_address"] for f in port.fixed_ips}
        assert addrs[sub.id] == "10.9.0.1"
        assert addrs[v6.id].startswith("fd00:1::f816:3eff:fe")  # EUI-64 of fa:16:3e:..
        admin.network.delete_port(port)
    finally:
        admin.network.delete_network(net)


def test_ipam_rules_and_exhaustion(admin):
    net = admin.network.create_network(name=_name("ipam"))
    try:
        sub = admin.network.create_subnet(network_id=net.id, cidr="10.50.0.0/29", ip_version=4)
        # .0 network, .1 gateway, .7 broadcast: only .2-.6 can be handed out
        ports = [admin.network.create_port(network_id=net.id) for _ in range(5)]
        got = sorted(p.fixed_ips[0]["ip_address"] for p in ports)
        assert got == [f"10.50.0.{i}" for i in range(2, 7)]
        with pytest.raises(sdkexc.ConflictException) as e:
            admin.network.create_port(network_id=net.id)
        assert "IpAddressGenerationFailure" in str(e.value.response.json())
        admin.network.delete_port(ports[0])
        with pytest.raises(sdkexc.ConflictException) as e:
            admin.network.create_port(network_id=net.id,
                                      fixed_ips=[{"subnet_id": sub.id, "ip_address": "10.50.0.3"}])
        body = e.value.response.json()["NeutronError"]
        assert body["type"] == "IpAddressAlreadyAllocated"
        with pytest.raises(sdkexc.BadRequestException):  # the broadcast address
            admin.network.create_port(network_id=net.id,
                                      fixed_ips=[{"subnet_id": sub.id, "ip_address": "10.50.0.7"}])
        p = admin.network.create_port(network_id=net.id, fixed_ips=[{"ip_address": "10.50.0.2"}])
        assert p.fixed_ips[0]["ip_address"] == "10.50.0.2"
        for port in ports[1:] + [p]:
            admin.network.delete_port(port)
    finally:
        admin.network.delete_network(net)


def test_subnet_pool_allocation(admin):
    pool = admin.network.create_subnet_pool(name=_name("pool"), prefixes=["10.100.0.0/16"],
                                            default_prefixlen=24, min_prefixlen=20, max_prefixlen=28)
    net = admin.network.create_network(name=_name("poolnet"))
    try:
        a = admin.network.create_subnet(network_id=net.id, subnetpool_id=pool.id, ip_version=4)
        b = admin.network.create_subnet(network_id=net.id, subnetpool_id=pool.id, ip_version=4, prefixlen=28)
        assert a.cidr == "10.100.0.0/24" and b.cidr == "10.100.1.0/28"
        with pytest.raises(sdkexc.BadRequestException):
            admin.network.create_subnet(network_id=net.id, subnetpool_id=pool.id, ip_version=4, prefixlen=16)
    finally:
        admin.network.delete_network(net)
        admin.network.delete_subnet_pool(pool)


def test_security_groups_default_and_rules(cloud):
    # (admins see every project's groups: the demo project has its own default too)
    groups = cloud.os_json("security", "group", "list", "--project", "admin")
    default = [g for g in groups if g["Name"] == "default"]
    assert len(default) == 1
    rules = cloud.os_json("security", "group", "rule", "list", default[0]["ID"], "--long")
    assert len(rules) == 4
    sg = cloud.os_json("security", "group", "create", _name("sg"))
    rule = cloud.os_json("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22",
                         "--remote-ip", "0.0.0.0/0", sg["id"])
    assert rule["port_range_min"] == 22 and rule["port_range_max"] == 22
    dup = cloud.openstack("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22",
                          "--remote-ip", "0.0.0.0/0", sg["id"], check=False)
    assert dup.returncode != 0 and "already exists" in dup.stderr
    bad = cloud.openstack("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "30:20",
                          sg["id"], check=False)
    assert bad.returncode != 0
    icmp = cloud.os_json("security", "group", "rule", "create", "--protocol", "icmp", "--icmp-type", "8",
                         "--icmp-code", "0", sg["id"])
    assert (icmp["port_range_min"], icmp["port_range_max"]) == (8, 0)
    again = cloud.openstack("security", "group", "create", "default", check=False)
    assert again.returncode != 0
    cloud.openstack("security", "group", "rule", "delete", rule["id"])
    cloud.openstack("security", "group", "delete", sg["id"])


def test_security_group_rule_validation(admin):
    sg = admin.network.create_security_group(name=_name("sgv"))
    try:
        for kw in ({"protocol": "nope"}, {"ethertype": "IPv5"}, {"protocol": "udp", "port_range_min": 0,
                                                                   "port_range_max": 70000},
                   {"remote_ip_prefix": "10.0.0.0/99"}, {"remote_ip_prefix": "::/0", "ethertype": "IPv4"},
                   {"protocol": "icmp", "port_range_min": 300}):
            with pytest.raises(sdkexc.BadRequestException):
                admin.network.create_security_group_rule(security_group_id=sg.id, direction="ingress", **kw)
        with pytest.raises(sdkexc.NotFoundException):
            admin.network.create_security_group_rule(security_group_id=sg.id, direction="ingress",
                                                     remote_group_id=str(uuid.uuid4()))
    finally:
        admin.network.delete_security_group(sg)


def test_router_gateway_interfaces_and_floating_ip(cloud):
    net = cloud.os_json("network", "create", _name("rnet"))
    sub = cloud.os_json("subnet", "create", "--network", net["id"], "--subnet-range", "10.60.0.0/24", _name("rsub"))
    router = cloud.os_json("router", "create", _name("router"))
    cloud.openstack("router", "set", "--external-gateway", "public", router["id"])
    gw = cloud.os_json("router", "show", router["id"])["external_gateway_info"]
    assert gw["enable_snat"] is True and gw["external_fixed_ips"][0]["ip_address"].startswith("172.24.4.")
    port = cloud.os_json("port", "create", "--network", net["id"], _name("vm"))
    fip = cloud.os_json("floating", "ip", "create", "public")
    # no router interface yet: the external network is not reachable from the port's subnet
    r = cloud.openstack("floating", "ip", "set", "--port", port["id"], fip["id"], check=False)
    assert r.returncode != 0 and "404" in r.stderr
    cloud.openstack("router", "add", "subnet", router["id"], sub["id"])
    ifaces = cloud.os_json("port", "list", "--router", router["id"], "--device-owner", "network:router_interface")
    assert ifaces[0]["Fixed IP Addresses"][0]["ip_address"] == "10.60.0.1"
    again = cloud.openstack("router", "add", "subnet", router["id"], sub["id"], check=False)
    assert again.returncode != 0
    cloud.openstack("floating", "ip", "set", "--port", port["id"], fip["id"])
    shown = cloud.os_json("floating", "ip", "show", fip["id"])
    assert shown["port_id"] == port["id"] and shown["fixed_ip_address"] == port["fixed_ips"][0]["ip_address"]
    assert shown["router_id"] == router["id"]
    cloud.openstack("floating", "ip", "unset", "--port", fip["id"])
    assert cloud.os_json("floating", "ip", "show", fip["id"])["port_id"] is None
    cloud.openstack("router", "set", "--route", "destination=10.99.0.0/24,gateway=10.60.0.50", router["id"])
    busy = cloud.openstack("router", "remove", "subnet", router["id"], sub["id"], check=False)
    assert busy.returncode != 0
    cloud.openstack("router", "unset", "--route", "destination=10.99.0.0/24,gateway=10.60.0.50", router["id"])
    cloud.openstack("floating", "ip", "delete", fip["id"])
    in_use = cloud.openstack("router", "delete", router["id"], check=False)
    assert in_use.returncode != 0
    cloud.openstack("router", "remove", "subnet", router["id"], sub["id"])
    cloud.openstack("router", "unset", "--external-gateway", router["id"])
    cloud.openstack("router", "delete", router["id"])
    cloud.openstack("port", "delete", port["id"])
    cloud.openstack("network", "delete", net["id"])


def test_router_gateway_errors(admin):
    router = admin.network.create_router(name=_name("rerr"))
    net = admin.network.create_network(name=_name("notext"))
    try:
        with pytest.raises(sdkexc.NotFoundException):
            admin.network.update_router(router, external_gateway_info={"network_id": str(uuid.uuid4())})
        with pytest.raises(sdkexc.BadRequestException):
            admin.network.update_router(router, external_gateway_info={"network_id": net.id})
    finally:
        admin.network.delete_router(router)
        admin.network.delete_network(net)


def test_quotas_show_set_and_over_quota(cloud, other):
    env, conn = other
    project = env["OS_PROJECT_NAME"]
    q = cloud.os_json("quota", "show", "--network", project)
    limits = {k: v for k, v in q.items()} if isinstance(q, dict) else {r["Resource"]: r["Limit"] for r in q}
    assert limits["networks"] == 100 and limits["ports"] == 500 and limits["routers"] == 10
    cloud.openstack("quota", "set", "--networks", "1", project)
    first = conn.network.create_network(name=_name("q1"))
    with pytest.raises(sdkexc.ConflictException) as e:
        conn.network.create_network(name=_name("q2"))
    assert e.value.response.json()["NeutronError"]["type"] == "OverQuota"
    # members may not change quotas
    r = cloud.openstack("quota", "set", "--networks", "50", project, env=env, check=False)
    assert r.returncode != 0
    conn.network.delete_network(first)
    pid = conn.current_project_id
    cloud.openstack("quota", "delete", "--network", project, check=False)
    conn2 = cloud  # noqa: F841
    admin = _conn(cloud.openrc("admin"))
    admin.network.delete_quota(pid)
    assert admin.network.get_quota(pid).networks == 100


def test_isolation_and_policy(cloud, admin, other):
    env, conn = other
    mine = admin.network.create_network(name=_name("admin-only"))
    shared = admin.network.create_network(name=_name("shared"), is_shared=True)
    try:
        ids = {n.id for n in conn.network.networks()}
        assert mine.id not in ids and shared.id in ids
        assert any(n.is_router_external for n in conn.network.networks())  # public
        with pytest.raises(sdkexc.NotFoundException):
            conn.network.get_network(mine.id)
        theirs = conn.network.create_network(name=_name("theirs"))
        # overlapping CIDRs in different projects are fine
        conn.network.create_subnet(network_id=theirs.id, cidr="10.200.0.0/24", ip_version=4)
        admin_net = admin.network.create_network(name=_name("overlap"))
        admin.network.create_subnet(network_id=admin_net.id, cidr="10.200.0.0/24", ip_version=4)
        assert theirs.id in {n.id for n in admin.network.networks()}  # admin sees all
        r = cloud.openstack("network", "create", "--provider-network-type", "vlan", "--provider-segment", "42",
                            _name("prov"), env=env, check=False)
        assert r.returncode != 0 and "403" in r.stderr
        r = cloud.openstack("network", "create", "--external", _name("ext"), env=env, check=False)
        assert r.returncode != 0 and "403" in r.stderr
        shown = conn.network.get_network(theirs.id)
        assert shown.provider_network_type is None  # provider attributes are admin-only
        with pytest.raises(sdkexc.ForbiddenException):
            conn.network.update_network(shared, name="mine-now")
        conn.network.delete_network(theirs)
        admin.network.delete_network(admin_net)
    finally:
        admin.network.delete_network(mine)
        admin.network.delete_network(shared)


def test_filters_fields_sorting_pagination(admin):
    tag = uuid.uuid4().hex[:8]
    nets = [admin.network.create_network(name=f"pg-{tag}-{i}") for i in range(5)]
    try:
        for n in nets:
            admin.network.set_tags(n, [tag])
        listed = list(admin.network.networks(tags=tag, sort_key="name", sort_dir="desc", limit=2))
        assert [n.name for n in listed] == [f"pg-{tag}-{i}" for i in reversed(range(5))]
        page = admin.network.get("/networks", params={"tags": tag, "limit": 2, "sort_key": "name",
                                                      "fields": ["id", "name"]}).json()
        assert len(page["networks"]) == 2 and set(page["networks"][0]) == {"id", "name"}
        assert page["networks_links"][0]["rel"] == "next"
        one = list(admin.network.networks(name=f"pg-{tag}-3"))
        assert [n.id for n in one] == [nets[3].id]
    finally:
        for n in nets:
            admin.network.delete_network(n)
