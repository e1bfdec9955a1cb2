"""Compute names a server's bridge and tap itself (as Nova does) rather than import the
network agent's data plane: the names must be the ones the network side makes."""

from __future__ import annotations

import uuid

from onestack.compute import network as vif
from onestack.network import core
from onestack.network.linux import ip


def test_compute_names_the_devices_the_network_side_makes():
    for _ in range(20):
        network_id, port_id = str(uuid.uuid4()), str(uuid.uuid4())
        assert vif.bridge_name(network_id) == ip.device_name("brq", network_id) == core.bridge_name(network_id)
        assert vif.tap_name(port_id) == ip.device_name("tap", port_id)
