"""A server's interfaces (``os-interface``, list and show) through openstacksdk, on a
simulated compute host: the ports the network service holds for the server."""

from __future__ import annotations

import subprocess
import time
import uuid

import openstack
import pytest


@pytest.fixture(scope="module")
def server(cloud, tmp_path_factory):
    """A demo server on a network of its own, with a tagged NIC (2.52)."""
    path = tmp_path_factory.mktemp("img") / "if.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "16M"], check=True)
    name = f"if-{uuid.uuid4().hex[:6]}"
    demo = {"user": "demo"}
    image = cloud.os_json("image", "create", "--disk-format", "qcow2", "--file", str(path), name, **demo)
    net = cloud.os_json("network", "create", name, **demo)
    cloud.openstack("subnet", "create", "--network", name, "--subnet-range", "192.168.78.0/24", name,
                    **demo)
    srv = cloud.os_json("server", "create", "--flavor", "m1.nano", "--image", image["id"], "--nic",
                        f"net-id={net['id']},tag=eth-tag", "--os-compute-api-version", "2.52", "--wait",
                        name, **demo)
    try:
        yield srv, net
    finally:
        cloud.openstack("server", "delete", "--wait", srv["id"], check=False, **demo)
        for _ in range(20):  # the server's port goes with it
            if cloud.openstack("network", "delete", net["id"], check=False, **demo).returncode == 0:
                break
            time.sleep(0.5)
        cloud.openstack("image", "delete", image["id"], check=False, **demo)


def test_list_and_show_interfaces(cloud, server):
    srv, net = server
    conn = cloud.sdk("demo")
    port = cloud.os_json("port", "list", "--server", srv["id"], user="demo")[0]
    listed = list(conn.compute.server_interfaces(srv["id"]))
    assert [(i.port_id, i.net_id) for i in listed] == [(port["ID"], net["id"])]
    (one,) = listed
    assert one.mac_addr == port["MAC Address"]
    assert one.fixed_ips[0]["ip_address"].startswith("192.168.78.")
    assert one.port_state in ("ACTIVE", "DOWN")
    shown = conn.compute.get_server_interface(port["ID"], server=srv["id"])
    assert (shown.port_id, shown.mac_addr, shown.fixed_ips) == (port["ID"], one.mac_addr, one.fixed_ips)
    # the boot-time tag from 2.70 on
    r = conn.compute.get(f"/servers/{srv['id']}/os-interface", microversion="2.70")
    assert r.json()["interfaceAttachments"][0]["tag"] == "eth-tag"
    r = conn.compute.get(f"/servers/{srv['id']}/os-interface", microversion="2.69")
    assert "tag" not in r.json()["interfaceAttachments"][0]


def test_refusals(cloud, server):
    srv, net = server
    conn = cloud.sdk("demo")
    with pytest.raises(openstack.exceptions.NotFoundException, match="could not be found"):
        conn.compute.get_server_interface(str(uuid.uuid4()), server=srv["id"])
    loose = cloud.os_json("port", "create", "--network", net["id"], f"loose-{srv['id'][:6]}", user="demo")
    try:  # a port of the same network, not the server's
        with pytest.raises(openstack.exceptions.NotFoundException, match="does not have a port"):
            conn.compute.get_server_interface(loose["id"], server=srv["id"])
    finally:
        cloud.openstack("port", "delete", loose["id"], user="demo")
    with pytest.raises(openstack.exceptions.NotFoundException):
        list(conn.compute.server_interfaces(str(uuid.uuid4())))
    with cloud.new_member("ifx") as env:  # another project's server is not found
        other = cloud.sdk(env=env)
        with pytest.raises(openstack.exceptions.NotFoundException):
            list(other.compute.server_interfaces(srv["id"]))
