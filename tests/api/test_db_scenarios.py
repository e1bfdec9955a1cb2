"""Every service's key scenario on both databases: SQLite (the all-in-one default) and
PostgreSQL (scale-out). Driven by openstacksdk, a real client, in-process (cheap), on
simulated compute hosts. Deeper tests of each service live in their own modules; this
one proves that the same code holds its promises on both backends."""

from __future__ import annotations

import uuid

import pytest

from tests.cloud import Cloud, wait_for


def _name(prefix: str) -> str:
    return f"db-{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def conn(any_cloud: Cloud):
    c = any_cloud.sdk("admin")
    yield c
    c.close()


def _status(get, wanted: str, timeout: float = 60):
    def check():
        obj = get()
        assert not (obj.status.lower().startswith("error") and not wanted.startswith("error")), obj
        return obj if obj.status.lower() == wanted.lower() else None
    return wait_for(check, timeout, f"status {wanted}")


def test_network_scenario(conn):
    """network, subnet, router with gateway and interface, port, floating IP, security group rule."""
    net = conn.network.create_network(name=_name("net"))
    try:
        sub = conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.77.0.0/24",
                                         name=_name("sub"))
        ext = conn.network.find_network("public")
        router = conn.network.create_router(name=_name("r"), external_gateway_info={"network_id": ext.id})
        conn.network.add_interface_to_router(router, subnet=sub.id)
        port = conn.network.create_port(network_id=net.id, fixed_ips=[{"subnet_id": sub.id,
                                                                          "ip_address": "10.77.0.50"}])
        assert port.fixed_ips[0]["ip_address"] == "10.77.0.50"
        fip = conn.network.create_ip(floating_network_id=ext.id, port_id=port.id)
        assert fip.fixed_ip_address == "10.77.0.50" and fip.floating_ip_address
        sg = conn.network.create_security_group(name=_name("sg"))
        rule = conn.network.create_security_group_rule(security_group_id=sg.id, direction="ingress",
                                                       protocol="tcp", port_range_min=22, port_range_max=22)
        assert rule.port_range_min == 22
        # the same fixed IP twice is refused, and changes nothing
        with pytest.raises(Exception, match="(?i)in use|already"):
            conn.network.create_port(network_id=net.id, fixed_ips=[{"subnet_id": sub.id,
                                                                      "ip_address": "10.77.0.50"}])
        assert len(list(conn.network.ports(network_id=net.id, device_owner=""))) == 1
        conn.network.delete_ip(fip)
        conn.network.delete_port(port)
        conn.network.delete_security_group(sg)
        conn.network.remove_interface_from_router(router, subnet=sub.id)
        conn.network.delete_router(router)
    finally:
        conn.network.delete_network(net, ignore_missing=True)


def test_compute_and_volume_scenario(conn):
    """A server on a network, stopped and started, a volume attached and detached, a
    snapshot and a volume from it, then everything deleted."""
    net = conn.network.create_network(name=_name("net"))
    conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.78.0.0/24")
    image = conn.image.create_image(name=_name("img"), disk_format="raw", container_format="bare",
                                    data=b"\0" * 1024)
    flavor = conn.compute.find_flavor("m1.nano")
    server = conn.compute.create_server(name=_name("vm"), image_id=image.id, flavor_id=flavor.id,
                                        networks=[{"uuid": net.id}])
    try:
        server = _status(lambda: conn.compute.get_server(server.id), "ACTIVE")
        assert any(a["addr"].startswith("10.78.0.") for a in server.addresses[net.name])
        conn.compute.stop_server(server)
        _status(lambda: conn.compute.get_server(server.id), "SHUTOFF")
        conn.compute.start_server(server)
        _status(lambda: conn.compute.get_server(server.id), "ACTIVE")

        vol = conn.block_storage.create_volume(size=1, name=_name("vol"))
        _status(lambda: conn.block_storage.get_volume(vol.id), "available")
        conn.compute.create_volume_attachment(server, volume_id=vol.id)
        _status(lambda: conn.block_storage.get_volume(vol.id), "in-use")
        conn.compute.delete_volume_attachment(server, vol.id)
        _status(lambda: conn.block_storage.get_volume(vol.id), "available")
        snap = conn.block_storage.create_snapshot(volume_id=vol.id, name=_name("snap"))
        _status(lambda: conn.block_storage.get_snapshot(snap.id), "available")
        clone = conn.block_storage.create_volume(size=1, snapshot_id=snap.id, name=_name("clone"))
        _status(lambda: conn.block_storage.get_volume(clone.id), "available")
        for v in (clone,):
            conn.block_storage.delete_volume(v)
        conn.block_storage.delete_snapshot(snap)
        wait_for(lambda: conn.block_storage.find_snapshot(snap.id) is None, 30, "snapshot deleted")
        conn.block_storage.delete_volume(vol)
    finally:
        conn.compute.delete_server(server, ignore_missing=True)
        wait_for(lambda: conn.compute.find_server(server.id) is None, 60, "server deleted")
        conn.image.delete_image(image, ignore_missing=True)
        conn.network.delete_network(net, ignore_missing=True)
    # Placement holds no allocation for the deleted server
    assert not conn.placement.get(f"/allocations/{server.id}").json()["allocations"]


def test_object_scenario(conn):
    """A container, objects with metadata, a prefix listing, a copy, deletion."""
    c = _name("cont")
    conn.object_store.create_container(c)
    conn.object_store.upload_object(c, "a/one", data=b"one", metadata={"color": "red"})
    conn.object_store.upload_object(c, "a/two", data=b"two")
    conn.object_store.upload_object(c, "b", data=b"bee")
    assert [o.name for o in conn.object_store.objects(c, prefix="a/")] == ["a/one", "a/two"]
    assert conn.object_store.download_object("a/one", container=c) == b"one"
    assert conn.object_store.get_object_metadata("a/one", container=c).metadata["color"] == "red"
    info = conn.object_store.get_container_metadata(c)
    assert info.object_count == 3 and info.bytes_used == 9
    for o in list(conn.object_store.objects(c)):
        conn.object_store.delete_object(o, container=c)
    conn.object_store.delete_container(c)
    assert c not in [x.name for x in conn.object_store.containers()]
