"""What the Linux data plane generates: dnsmasq files, nftables rulesets, names."""

from __future__ import annotations

import ipaddress

import pytest

from onestack.network.linux import dhcp, nft
from onestack.network.linux import ip as iplib
from onestack.network.linux import router as rt
from onestack.network.linux import secgroups as sg

# ------------------------------------------------------------------ names


def test_device_names_fit_the_kernel_limit():
    pid = "3f1c9a62-7d4e-4b8a-9c1e-0123456789ab"
    assert iplib.device_name("tap", pid) == "tap3f1c9a627d4e"
    assert rt.internal_device(pid) == "qr-3f1c9a627d4e"
    assert rt.gateway_device(pid) == "qg-3f1c9a627d4e"
    for name in (iplib.device_name("tap", pid), rt.internal_device(pid)):
        assert len(name) <= 15
    with pytest.raises(ValueError, match="invalid device name"):
        iplib.check_name("x" * 16)
    with pytest.raises(ValueError):
        iplib.check_name("a b")
    assert rt.namespace("r1") == "qrouter-r1"


def test_route_keys_normalise_default_and_prefixes():
    assert iplib.Route("0.0.0.0/0", "10.0.0.1").key() == ("default", "10.0.0.1")
    assert iplib.Route("10.1.2.3/24", "10.0.0.1").key() == ("10.1.2.0/24", "10.0.0.1")
    assert iplib.Route("2001:db8::/64", "fe80::1").version == 6


def test_link_local_from_mac():
    assert str(sg.link_local("fa:16:3e:00:00:01")) == "fe80::f816:3eff:fe00:1"


# ------------------------------------------------------------------ dnsmasq


def _net(**kw) -> dhcp.DhcpNetwork:
    args = dict(
        id="net1", port_id="d0d0d0d0-1111", port_mac="fa:16:3e:00:00:02",
        port_ips=["10.0.0.2"], bridge="brqnet1",
        subnets=[dhcp.DhcpSubnet(id="s1", cidr="10.0.0.0/24", gateway_ip="10.0.0.1",
                                 dns_nameservers=["8.8.8.8", "1.1.1.1"])],
        hosts=[dhcp.DhcpHost("FA:16:3E:00:00:0B", "10.0.0.11", "vm1"),
               dhcp.DhcpHost("fa:16:3e:00:00:0c", "10.0.0.12"),
               dhcp.DhcpHost("fa:16:3e:00:00:0d", "192.168.9.9")],  # not in a DHCP subnet
        mtu=1450,
    )
    args.update(kw)
    return dhcp.DhcpNetwork(**args)


def test_hosts_file_lines_are_mac_hostname_ip():
    assert dhcp.hosts_file(_net()) == (
        "fa:16:3e:00:00:0b,vm1,10.0.0.11\n"
        "fa:16:3e:00:00:0c,host-10-0-0-12,10.0.0.12\n"
    )
    with pytest.raises(ValueError, match="hostname"):
        dhcp.hosts_file(_net(hosts=[dhcp.DhcpHost("fa:16:3e:00:00:0b", "10.0.0.11", "a b")]))


def test_options_router_dns_mtu():
    assert dhcp.opts_file(_net()) == (
        "option:mtu,1450\n"
        "tag:subnet0,option:router,10.0.0.1\n"
        "tag:subnet0,option:dns-server,8.8.8.8,1.1.1.1\n"
    )


def test_options_without_gateway_offer_no_router():
    net = _net(subnets=[dhcp.DhcpSubnet(id="s1", cidr="10.0.0.0/24")], mtu=None)
    assert dhcp.opts_file(net) == "tag:subnet0,option:router\n"


def test_isolated_network_gets_the_metadata_route_via_the_dhcp_port():
    net = _net(isolated_metadata=True,
               subnets=[dhcp.DhcpSubnet(id="s1", cidr="10.0.0.0/24", gateway_ip="10.0.0.1",
                                        host_routes=[("10.9.0.0/16", "10.0.0.254")])])
    routes = "10.9.0.0/16,10.0.0.254,169.254.169.254/32,10.0.0.2,0.0.0.0/0,10.0.0.1"
    opts = dhcp.opts_file(net).splitlines()
    assert f"tag:subnet0,option:classless-static-route,{routes}" in opts
    assert f"tag:subnet0,249,{routes}" in opts


def test_dnsmasq_command_line(tmp_path):
    net = _net()
    files = dhcp.files_for(tmp_path, net.id)
    cmd = dhcp.command(net, files)
    assert cmd[0] == "dnsmasq"
    for arg in ("--no-resolv", "--no-hosts", "--bind-interfaces", "--interface=ns-d0d0d0d01111",
                f"--dhcp-hostsfile={files.hosts}", f"--dhcp-optsfile={files.opts}",
                f"--pid-file={files.pid}", f"--dhcp-leasefile={files.leases}",
                "--dhcp-range=set:subnet0,10.0.0.0,static,255.255.255.0,86400s"):
        assert arg in cmd
    assert net.namespace == "qdhcp-net1"
    with pytest.raises(ValueError):
        dhcp.files_for(tmp_path, "../etc")


def test_disabled_subnets_are_not_served():
    net = _net(subnets=[dhcp.DhcpSubnet(id="s1", cidr="10.0.0.0/24", enable_dhcp=False)])
    assert dhcp.hosts_file(net) == ""
    assert not any(a.startswith("--dhcp-range") for a in dhcp.command(net, dhcp.files_for(
        "/x", "n")))


# ------------------------------------------------------------------ router NAT


def _router(**kw) -> rt.RouterSpec:
    args = dict(
        id="r1",
        interfaces=[rt.RouterPort(id="p1", mac="fa:16:3e:00:00:01", cidrs=["10.0.0.1/24"],
                                  bridge="brq1")],
        gateway=rt.RouterGateway(id="gw", mac="fa:16:3e:00:00:aa", cidrs=["172.24.4.10/24"],
                                 bridge="brqext", gateway_ip="172.24.4.1"),
        floating_ips=[rt.FloatingIp("172.24.4.20", "10.0.0.5")],
    )
    args.update(kw)
    return rt.RouterSpec(**args)


def test_nat_floating_ip_and_snat():
    text = rt.nat_ruleset(_router())
    assert "ip daddr 172.24.4.20 dnat to 10.0.0.5" in text
    assert "ip saddr 10.0.0.5 snat to 172.24.4.20" in text
    assert 'oifname "qg-gw" snat to 172.24.4.10' in text
    # the 1:1 rule comes before the router-wide SNAT
    assert text.index("snat to 172.24.4.20") < text.index("snat to 172.24.4.10")


def test_nat_without_snat_or_gateway():
    assert "snat to 172.24.4.10" not in rt.nat_ruleset(_router(enable_snat=False))
    assert rt.nat_ruleset(_router(gateway=None)) is None


# ------------------------------------------------------------------ security groups


@pytest.mark.parametrize("rule, expr", [
    (sg.SgRule("ingress"), "ether type ip"),
    (sg.SgRule("egress", "IPv6"), "ether type ip6"),
    (sg.SgRule("ingress", protocol="tcp", port_range_min=22, port_range_max=22),
     "ether type ip meta l4proto 6 th dport 22"),
    (sg.SgRule("ingress", protocol="udp", port_range_min=1000, port_range_max=2000,
               remote_ip_prefix="192.0.2.0/24"),
     "ether type ip ip saddr 192.0.2.0/24 meta l4proto 17 th dport 1000-2000"),
    (sg.SgRule("egress", protocol="tcp", remote_ip_prefix="198.51.100.7/32"),
     "ether type ip ip daddr 198.51.100.7/32 meta l4proto 6"),
    (sg.SgRule("ingress", protocol="icmp", port_range_min=8, port_range_max=0),
     "ether type ip meta l4proto 1 icmp type 8 icmp code 0"),
    (sg.SgRule("ingress", "IPv6", protocol="icmp", port_range_min=128),
     "ether type ip6 meta l4proto 58 icmpv6 type 128"),
    (sg.SgRule("ingress", protocol="47"), "ether type ip meta l4proto 47"),
    (sg.SgRule("ingress", protocol="any", remote_ip_prefix="0.0.0.0/0"), "ether type ip"),
    (sg.SgRule("ingress", remote_group_id="g1"), "ether type ip ip saddr @rg-g1-v4"),
    (sg.SgRule("egress", "IPv6", remote_group_id="g1"), "ether type ip6 ip6 daddr @rg-g1-v6"),
    # rules that can never match a packet of their ethertype
    (sg.SgRule("ingress", remote_ip_prefix="2001:db8::/64"), None),
    (sg.SgRule("ingress", protocol="icmpv6"), None),
])
def test_rule_expressions(rule, expr):
    assert sg.rule_expr(rule) == expr


@pytest.mark.parametrize("rule", [
    sg.SgRule("sideways"),
    sg.SgRule("ingress", "IPv5"),
    sg.SgRule("ingress", protocol="nonsense"),
    sg.SgRule("ingress", protocol="300"),
    sg.SgRule("ingress", protocol="tcp", port_range_min=20, port_range_max=10),
    sg.SgRule("ingress", protocol="icmp", port_range_min=300),
])
def test_invalid_rules_are_refused(rule):
    with pytest.raises(sg.RuleError):
        sg.rule_expr(rule)


def _port(**kw) -> sg.SgPort:
    args = dict(id="p1", device="tapp1", mac="FA:16:3E:00:00:01", fixed_ips=["10.0.0.5"],
                bridge="brq1",
                rules=[sg.SgRule("egress"), sg.SgRule("ingress", protocol="tcp",
                                                      port_range_min=22, port_range_max=22)])
    args.update(kw)
    return sg.SgPort(**args)


def _chain(text: str, name: str) -> list[str]:
    start = text.index(f"chain {name} {{")
    body = text[start:text.index("\t}", start)]
    return [line.strip() for line in body.splitlines()[1:]]


def test_port_chains_anti_spoofing_and_rules():
    port = _port(allowed_address_pairs=[("10.0.9.0/24", None), ("10.0.8.8", "fa:16:3e:00:00:99")])
    text = sg.bridge_table([port], {})
    egress = _chain(text, "egress-p1")
    spoof = next(r for r in egress if 'comment "spoofed ipv4"' in r)
    assert ("{ fa:16:3e:00:00:01 . 10.0.0.5, fa:16:3e:00:00:01 . 10.0.9.0/24, "
            "fa:16:3e:00:00:99 . 10.0.8.8 }") in spoof
    arp = next(r for r in egress if "arp saddr ip" in r)
    assert "fa:16:3e:00:00:01 . fa:16:3e:00:00:01 . 10.0.0.5" in arp
    assert egress[-2] == "ether type ip return" and egress[-1].endswith("drop comment \"egress\"")
    # DHCP client allowed before anti-spoofing, no DHCP server after it
    assert "udp sport 68 udp dport 67 return" in egress[0]
    assert egress.index("udp sport 67 udp dport 68 drop") > egress.index(spoof)
    ingress = _chain(text, "ingress-p1")
    assert "ether type ip meta l4proto 6 th dport 22 accept" in ingress
    assert ingress[-1].endswith('drop comment "ingress"')
    assert f"meta mark & {sg.MARK_ESTABLISHED:#x} == {sg.MARK_ESTABLISHED:#x} accept" in ingress
    assert 'iifname vmap { "tapp1" : jump egress-p1 }' in text


def test_port_without_ipv4_sends_no_ipv4_and_unsecured_ports_are_skipped():
    text = sg.bridge_table([_port(fixed_ips=[]), _port(id="p2", device="tapp2",
                                                        port_security_enabled=False)], {})
    assert 'ether type ip counter drop comment "no ipv4 address"' in _chain(text, "egress-p1")
    assert "p2" not in text
    assert "vmap" not in sg.bridge_table([], {})


def test_remote_group_sets_hold_member_addresses():
    port = _port(rules=[sg.SgRule("ingress", remote_group_id="g1"),
                        sg.SgRule("ingress", "IPv6", remote_group_id="g2")])
    text = sg.bridge_table([port], {"g1": ["10.0.0.6", "10.0.0.5/32", "2001:db8::1"]})
    assert "set rg-g1-v4 {" in text and "elements = { 10.0.0.5, 10.0.0.6 }" in text
    assert "elements = { 2001:db8::1 }" in text
    assert "set rg-g2-v4 {" in text  # empty sets exist, so the rules load
    with pytest.raises(sg.RuleError, match="two ports"):
        sg.bridge_table([_port(), _port(id="p3")], {})


def test_whole_ruleset_replaces_both_tables_atomically():
    text = sg.ruleset([_port()], {})
    assert text.startswith("table inet onestack-sgct {}\ndelete table inet onestack-sgct\n")
    assert "table bridge onestack-sg {}\ndelete table bridge onestack-sg\n" in text
    ct = sg.ct_table([_port()])
    assert f'iifname "brq1" ct zone set {sg.zone_for("brq1")}' in ct
    assert 1 <= sg.zone_for("brq1") <= 65535 and sg.zone_for("brq1") == sg.zone_for("brq1")


def test_nft_helpers_refuse_bad_names():
    with pytest.raises(ValueError):
        nft.replace_table("ip", "bad name", "")
    with pytest.raises(ValueError):
        nft.replace_table("ipx", "t", "")
    with pytest.raises(ValueError):
        nft.quote('a"b')
    assert ipaddress.ip_address("169.254.169.254") == ipaddress.ip_address(dhcp.METADATA_IP)
