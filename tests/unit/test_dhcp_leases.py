"""Which dnsmasq leases DHCP sync releases (issue 17: a reused fixed IP got no lease)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from onestack.network.linux import dhcp

A, B, C = "fa:16:3e:00:00:0a", "fa:16:3e:00:00:0b", "fa:16:3e:00:00:0c"
LEASES = (
    f"1796708483 {A} 10.0.0.11 vm1 01:{A}\n"  # deleted port: its IP now has MAC B
    f"1796708483 {C} 10.0.0.12 * *\n"  # wanted
    f"1796708483 {C} 10.0.0.13 host-10-0-0-13 *\n"  # the port's IP changed (same MAC)
    "duid 00:01:00:01:2c:5f:1a:2b:fa:16:3e:00:00:02\n"
    "1796708483 1234 2001:db8::11 * 00:01:00:01:aa\n"  # served
    "1796708483 5678 2001:db8::99 * 00:01:00:01:bb\n"  # no longer served
    "garbage\n"
)


def _net(hosts, *, enable_dhcp=True) -> dhcp.DhcpNetwork:
    return dhcp.DhcpNetwork(
        id="net1", port_id="d0d0d0d0-1111", port_mac="fa:16:3e:00:00:02",
        port_ips=["10.0.0.2", "2001:db8::2"], bridge="brqnet1",
        subnets=[dhcp.DhcpSubnet(id="s1", cidr="10.0.0.0/24", enable_dhcp=enable_dhcp),
                 dhcp.DhcpSubnet(id="s2", cidr="2001:db8::/64")],
        hosts=[dhcp.DhcpHost(h[0], h[1]) for h in hosts])


NET = _net([(B.upper(), "10.0.0.11"), (C, "10.0.0.12"), (C, "10.0.0.14"), (A, "2001:db8::11")])


def test_lease_file_lines():
    leases = dhcp.parse_leases(LEASES)
    assert [(x.mac, x.ip, x.client_id) for x in leases] == [
        (A, "10.0.0.11", f"01:{A}"), (C, "10.0.0.12", None), (C, "10.0.0.13", None),
        ("1234", "2001:db8::11", "00:01:00:01:aa"), ("5678", "2001:db8::99", "00:01:00:01:bb")]
    assert dhcp.parse_leases(f"1 {A.upper()} 10.0.0.11 * *")[0].mac == A


def test_leases_of_a_reused_ip_or_a_changed_ip_are_stale():
    stale = dhcp.stale_leases(NET, dhcp.parse_leases(LEASES))
    # the old MAC of a reused IP, and an IP its port no longer has; IPv6 leases name no MAC
    assert [(x.mac, x.ip) for x in stale] == [(A, "10.0.0.11"), (C, "10.0.0.13")]
    assert dhcp.stale_leases(NET, []) == []


def test_every_lease_of_a_subnet_without_dhcp_is_stale():
    net = _net([(C, "10.0.0.12")], enable_dhcp=False)
    stale = dhcp.stale_leases(net, dhcp.parse_leases(LEASES))
    assert {x.ip for x in stale} == {"10.0.0.11", "10.0.0.12", "10.0.0.13"}


def test_the_lease_file_dnsmasq_starts_with_has_only_wanted_leases():
    assert dhcp.clean_leases(NET, LEASES) == (
        f"1796708483 {C} 10.0.0.12 * *\n"
        "duid 00:01:00:01:2c:5f:1a:2b:fa:16:3e:00:00:02\n"
        "1796708483 1234 2001:db8::11 * 00:01:00:01:aa\n")
    assert dhcp.clean_leases(NET, "") == ""
    cleaned = dhcp.clean_leases(NET, LEASES)
    assert dhcp.clean_leases(NET, cleaned) == cleaned


_macs = st.sampled_from([A, B, C])
_ips = st.sampled_from(["10.0.0.11", "10.0.0.12", "10.0.0.13"])


@given(hosts=st.lists(st.tuples(_macs, _ips), max_size=4), leases=st.lists(st.tuples(_macs, _ips), max_size=6))
def test_a_lease_is_stale_exactly_when_no_host_entry_has_its_mac_and_ip(hosts, leases):
    net = _net(hosts)
    parsed = dhcp.parse_leases("".join(f"1 {m} {ip} * *\n" for m, ip in leases))
    stale = dhcp.stale_leases(net, parsed)
    assert [(x.mac, x.ip) for x in stale] == [x for x in leases if x not in set(hosts)]
    # after a clean start only wanted leases are left, and none of them is stale
    assert dhcp.stale_leases(net, dhcp.parse_leases(dhcp.clean_leases(net, "".join(
        x.line + "\n" for x in parsed)))) == []
