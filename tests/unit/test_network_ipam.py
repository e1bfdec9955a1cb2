"""IPAM rules of the network service (pure functions)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onestack.common import errors
from onestack.network import ipam


def test_default_pools_skip_network_broadcast_and_gateway():
    net = ipaddress.ip_network("10.0.0.0/24")
    assert ipam.default_pools(net, "10.0.0.1") == [{"start": "10.0.0.2", "end": "10.0.0.254"}]
    assert ipam.default_pools(net, "10.0.0.100") == [{"start": "10.0.0.1", "end": "10.0.0.99"},
                                                     {"start": "10.0.0.101", "end": "10.0.0.254"}]
    assert ipam.default_pools(net, None) == [{"start": "10.0.0.1", "end": "10.0.0.254"}]


def test_validate_pools():
    net = ipaddress.ip_network("10.0.0.0/24")
    with pytest.raises(errors.BadRequest):
        ipam.validate_pools(net, [{"start": "10.0.1.1", "end": "10.0.1.5"}], None)
    with pytest.raises(errors.BadRequest):
        ipam.validate_pools(net, [{"start": "10.0.0.0", "end": "10.0.0.5"}], None)
    with pytest.raises(errors.BadRequest):
        ipam.validate_pools(net, [{"start": "10.0.0.2", "end": "10.0.0.9"}, {"start": "10.0.0.5", "end": "10.0.0.20"}],
                            None)
    with pytest.raises(errors.Conflict):
        ipam.validate_pools(net, [{"start": "10.0.0.1", "end": "10.0.0.9"}], "10.0.0.1")


def test_parse_cidr():
    assert str(ipam.parse_cidr("10.0.0.0/24", 4)) == "10.0.0.0/24"
    for bad in ("10.0.0.1/24", "10.0.0.0", "nonsense", "10.0.0.0/33"):
        with pytest.raises(errors.BadRequest):
            ipam.parse_cidr(bad)
    with pytest.raises(errors.BadRequest):
        ipam.parse_cidr("fd00::/64", 4)


def test_eui64():
    net = ipaddress.ip_network("2001:db8::/64")
    assert ipam.eui64(net, "fa:16:3e:00:00:01") == "2001:db8::f816:3eff:fe00:1"


def test_allocate_prefix():
    assert ipam.allocate_prefix(["10.0.0.0/16"], 24, ["10.0.0.0/24"]) == "10.0.1.0/24"
    assert ipam.allocate_prefix(["10.0.0.0/24"], 24, ["10.0.0.0/25"]) is None


@given(st.integers(min_value=8, max_value=30), st.sets(st.integers(min_value=0, max_value=300)))
def test_first_free_never_hands_out_reserved_or_used(prefixlen, used_offsets):
    net = ipaddress.ip_network(f"10.0.0.0/{prefixlen}")
    gw = ipam.default_gateway(net)
    pools = ipam.default_pools(net, gw)
    used = {str(net.network_address + o) for o in used_offsets if o < net.num_addresses}
    ip = ipam.first_free(pools, used, [gw])
    if ip is None:
        return
    addr = ipaddress.ip_address(ip)
    assert addr in net and addr not in (net.network_address, net.broadcast_address)
    assert ip != gw and ip not in used
