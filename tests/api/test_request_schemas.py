"""Request bodies checked by schemas kept as data (one per microversion where the body
changes), the one boolean parser and the one pagination helper, through every service that
uses them: a refusal is the service's 400 naming the field, and nothing is made. Real
clients where they can send the input; httpx for bodies no client sends."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.cloud import wait_for


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def conn(cloud):
    c = cloud.sdk("admin")
    yield c
    c.close()


@pytest.fixture(scope="module")
def token(conn) -> str:
    return conn.session.get_token()


def _call(cloud, token: str, method: str, path: str, body=None, version: str | None = None, **kw):
    headers = {"X-Auth-Token": token}
    if version:
        service = {"compute": "compute", "volume": "volume"}[path.split("/")[1]]
        headers["OpenStack-API-Version"] = f"{service} {version}"
    return httpx.request(method, f"{cloud.url}{path}", json=body, headers=headers, timeout=30, **kw)


@pytest.fixture(scope="module")
def image(cloud, tmp_path_factory):
    path = tmp_path_factory.mktemp("schemas") / "i.raw"
    path.write_bytes(b"\0" * 4096)
    img = cloud.os_json("image", "create", "--disk-format", "raw", "--container-format", "bare", "--public",
                        "--file", str(path), _name("schema-img"))
    yield img["id"]
    cloud.openstack("image", "delete", img["id"], check=False)


@pytest.fixture(scope="module")
def server(cloud, image):
    name = _name("schema-vm")
    s = cloud.os_json("server", "create", "--flavor", "m1.nano", "--image", image, "--nic", "none",
                      "--os-compute-api-version", "2.37", "--wait", name)
    yield s
    cloud.openstack("server", "delete", "--wait", s["id"], check=False)


# ---------------------------------------------------------------- server create (Nova)


def test_server_create_body_follows_its_microversion(cloud, token, image):
    def create(server: dict, version: str, **top):
        return _call(cloud, token, "POST", "/compute/v2.1/servers",
                     {"server": {"name": name, "flavorRef": "no-such-flavor", "imageRef": image, **server},
                      **top}, version)

    def refused(r, *words) -> str:
        assert r.status_code == 400, r.text
        msg = r.json()["badRequest"]["message"]
        assert all(w in msg for w in words), msg
        return msg

    def passed_schema(r) -> None:  # refused later, for the flavor: the body itself was right
        assert r.status_code == 400 and "Flavor no-such-flavor could not be found" in r.text, r.text

    name = _name("schema")
    # a field of a later microversion is an additional property before it
    refused(create({"description": "d"}, "2.18"), "description", "Additional properties")
    passed_schema(create({"description": "d"}, "2.19"))
    refused(create({"tags": ["a"], "networks": "none"}, "2.51"), "tags")
    passed_schema(create({"tags": ["a"], "networks": "none"}, "2.52"))
    refused(create({"tags": ["a,b"], "networks": "none"}, "2.52"), "tags[0]", "a,b")
    refused(create({"host": "h", "networks": "none"}, "2.73"), "host")
    # 2.37: networks required, "auto"/"none" or a list; before, a list only
    refused(create({}, "2.37"), "'networks' is a required property")
    passed_schema(create({}, "2.36"))
    refused(create({"networks": "none"}, "2.36"), "networks")
    refused(create({"networks": "bogus"}, "2.37"), "field/attribute networks", "bogus")
    # device tags: 2.32, then from 2.42 (2.33 to 2.41 have none on mappings)
    bdm = [{"boot_index": 0, "source_type": "image", "destination_type": "local", "uuid": image, "tag": "t"}]
    passed_schema(create({"block_device_mapping_v2": bdm}, "2.32"))
    refused(create({"block_device_mapping_v2": bdm, "networks": "none"}, "2.41"), "tag")
    passed_schema(create({"block_device_mapping_v2": bdm, "networks": "none"}, "2.42"))
    # personality goes in 2.57
    passed_schema(create({"personality": [], "networks": "none"}, "2.56"))
    refused(create({"personality": [], "networks": "none"}, "2.57"), "personality")
    # types, formats and ranges, each naming its field
    for bad, words in (({"min_count": "0"}, ("min_count", "minimum")),
                       ({"max_count": "x"}, ("max_count",)),
                       ({"user_data": "not base64!"}, ("user_data", "base64")),
                       ({"config_drive": "maybe"}, ("config_drive", "maybe")),
                       ({"accessIPv4": "1.2.3"}, ("accessIPv4", "ipv4")),
                       ({"metadata": {"k": 1}}, ("k",)),
                       ({"imageRef": "not-a-uuid"}, ("imageRef",)),
                       ({"security_groups": [{"name": 5}]}, ("name",)),
                       ({"block_device_mapping_v2": [{"boot_index": "first"}]}, ("boot_index",)),
                       ({"name": " lead"}, ("name",))):
        refused(create(bad, "2.1"), *words)
    refused(create({}, "2.1", extra=1), "'extra' was unexpected")
    refused(create({}, "2.1", **{"os:scheduler_hints": {"group": "not-a-uuid"}}), "group")
    # booleans as Nova's schema spells them
    passed_schema(create({"config_drive": "Yes", "return_reservation_id": "0"}, "2.1"))
    r = _call(cloud, token, "GET", f"/compute/v2.1/servers?name={name}")
    assert r.json()["servers"] == []


def test_server_create_refusals_through_the_client(cloud, image):
    name = _name("schema")
    r = cloud.openstack("server", "create", "--flavor", "m1.nano", "--image", image, "--nic", "none",
                        "--os-compute-api-version", "2.52", "--tag", "a,b", name, check=False)
    assert r.returncode != 0 and "Invalid input for field/attribute tags[0]" in r.stderr, r.stderr
    r = cloud.openstack("server", "create", "--flavor", "m1.nano", "--image", image, "--nic", "none",
                        "--os-compute-api-version", "2.37", "--property", "bad/key=v", name, check=False)
    assert r.returncode != 0 and "metadata" in r.stderr and "bad/key" in r.stderr, r.stderr
    assert cloud.openstack("server", "show", name, check=False).returncode != 0


def test_server_update_and_lists(cloud, token, server):
    sid = server["id"]
    path = f"/compute/v2.1/servers/{sid}"
    r = _call(cloud, token, "PUT", path, {"server": {"description": "d"}}, "2.18")
    assert r.status_code == 400 and "description" in r.json()["badRequest"]["message"]
    r = _call(cloud, token, "PUT", path, {"server": {"accessIPv4": "300.1.1.1"}})
    assert r.status_code == 400 and "accessIPv4" in r.json()["badRequest"]["message"]
    r = _call(cloud, token, "PUT", path, {"server": {"description": "now", "accessIPv6": "0:0::1"}}, "2.19")
    assert r.status_code == 200 and r.json()["server"]["description"] == "now"
    assert r.json()["server"]["accessIPv6"] == "::1"
    # a page of volume attachments: offset and limit checked (a bad one was a 500)
    for q in ("limit=abc", "offset=-1"):
        r = _call(cloud, token, "GET", f"{path}/os-volume_attachments?{q}")
        assert r.status_code == 400 and "param must be" in r.json()["badRequest"]["message"], r.text
    assert _call(cloud, token, "GET", f"{path}/os-volume_attachments?limit=1&offset=0").status_code == 200
    # a boolean filter: oslo's spellings, else a 400 naming it
    r = _call(cloud, token, "GET", "/compute/v2.1/servers?locked=maybe", version="2.73")
    assert r.status_code == 400 and "locked" in r.json()["badRequest"]["message"]
    r = _call(cloud, token, "GET", f"/compute/v2.1/servers?locked=OFF&name={server['name']}", version="2.73")
    assert [s["id"] for s in r.json()["servers"]] == [sid]
    r = _call(cloud, token, "GET", "/compute/v2.1/servers?limit=-1")
    assert r.status_code == 400 and "limit param must be positive" in r.json()["badRequest"]["message"]


# ---------------------------------------------------------------- volume create (Cinder)


def test_volume_create_and_update_bodies(cloud, token):
    name = _name("schema-vol")

    def refused(r, *words) -> None:
        assert r.status_code == 400, r.text
        msg = r.json()["badRequest"]["message"]
        assert all(w in msg for w in words), msg

    for bad, words in (({"size": 0}, ("size", "minimum")), ({"size": "big"}, ("size",)),
                       ({"size": 1, "snapshot_id": "nope"}, ("snapshot_id",)),
                       ({"size": 1, "metadata": {"a@b": "c"}}, ("metadata", "a@b")),
                       ({"size": 1, "multiattach": "maybe"}, ("multiattach",)),
                       ({"size": 1, "name": 5}, ("name",)),
                       ({}, ("size", "required"))):
        refused(_call(cloud, token, "POST", "/volume/v3/volumes", {"volume": {"name": name, **bad}}), *words)
    # from 3.53 an attribute Cinder does not know is refused; before, it is ignored
    refused(_call(cloud, token, "POST", "/volume/v3/volumes", {"volume": {"name": name, "size": 1, "x": 1}},
                  "3.53"), "'x' was unexpected")
    assert not [v for v in cloud.os_json("volume", "list") if v["Name"] == name]
    r = cloud.openstack("volume", "create", "--size", "1", "--property", "a@b=c", name, check=False)
    assert r.returncode != 0 and "a@b" in r.stderr, r.stderr
    r = cloud.openstack("volume", "create", "--size", "0", name, check=False)
    assert r.returncode != 0 and "size" in r.stderr, r.stderr
    assert not [v for v in cloud.os_json("volume", "list") if v["Name"] == name]

    r = _call(cloud, token, "POST", "/volume/v3/volumes", {"volume": {"name": name, "size": "1", "x": 1,
                                                                       "multiattach": "n"}}, "3.52")
    assert r.status_code == 202, r.text
    vid = r.json()["volume"]["id"]
    try:
        wait_for(lambda: cloud.os_json("volume", "show", vid)["status"] == "available", 60, "volume")
        path = f"/volume/v3/volumes/{vid}"
        refused(_call(cloud, token, "PUT", path, {"volume": {}}, "3.53"), "volume")
        assert _call(cloud, token, "PUT", path, {"volume": {}}, "3.52").status_code == 200
        refused(_call(cloud, token, "PUT", path, {"volume": {"size": 2}}), "'size' was unexpected")
        r = _call(cloud, token, "PUT", path, {"volume": {"description": "d", "metadata": {"k": "v"}}}, "3.53")
        assert r.status_code == 200 and r.json()["volume"]["description"] == "d"
        # the lists' limit, offset and marker: one helper, Cinder's words
        r = _call(cloud, token, "GET", "/volume/v3/volumes?limit=x")
        refused(r, "limit param must be an integer")
        r = _call(cloud, token, "GET", f"/volume/v3/volumes?marker={uuid.uuid4()}")
        assert r.status_code == 404 and "Marker" in r.text
        r = _call(cloud, token, "GET", "/volume/v3/volumes?bootable=perhaps")
        refused(r, "bootable")
    finally:
        cloud.openstack("volume", "delete", vid)


# ---------------------------------------------------------------- networks, subnets, ports (Neutron)


def test_network_bodies_and_booleans(cloud, token, conn):
    def post(path: str, body: dict):
        return _call(cloud, token, "POST", f"/networking/v2.0/{path}", body)

    def refused(r, *words, kind: str = "HTTPBadRequest") -> None:
        assert r.status_code == 400, r.text
        err = r.json()["NeutronError"]
        assert err["type"] == kind and all(w in err["message"] for w in words), err

    name = _name("schema-net")
    # Neutron's convert_to_boolean: true/false/1/0 in any case; "yes" is not one
    refused(post("networks", {"network": {"name": name, "admin_state_up": "yes"}}), "admin_state_up",
            kind="InvalidInput")
    refused(post("networks", {"network": {"name": 5}}), "Invalid input for name")
    net = post("networks", {"network": {"name": name, "admin_state_up": "0", "shared": "FALSE"}}).json()["network"]
    try:
        assert net["admin_state_up"] is False and net["shared"] is False
        refused(post("subnets", {"subnet": {"cidr": "10.94.0.0/24", "ip_version": 4}}),
                "Required attribute 'network_id' not specified")
        base = {"network_id": net["id"], "ip_version": 4, "cidr": "10.94.0.0/24"}
        for bad, word in (({"ip_version": 5}, "ip_version"), ({"cidr": "10.94.0.0/33"}, "cidr"),
                          ({"dns_nameservers": "8.8.8.8"}, "dns_nameservers"),
                          ({"host_routes": [{"destination": "10.1.0.0/16"}]}, "host_routes"),
                          ({"gateway_ip": "x"}, "gateway_ip"), ({"enable_dhcp": "sometimes"}, "enable_dhcp")):
            r = post("subnets", {"subnet": {**base, **bad}})
            assert r.status_code == 400 and word in r.json()["NeutronError"]["message"], (bad, r.text)
        r = cloud.openstack("subnet", "create", "--network", net["id"], "--subnet-range", "10.94.0.0/24",
                            "--dns-nameserver", "not-an-ip", name, check=False)
        assert r.returncode != 0 and "dns_nameservers" in r.stderr, r.stderr
        sub = post("subnets", {"subnet": {**base, "ip_version": "4", "enable_dhcp": "false"}}).json()["subnet"]
        assert sub["ip_version"] == 4 and sub["enable_dhcp"] is False
        for bad, word in (({"fixed_ips": {"subnet_id": sub["id"]}}, "fixed_ips"),
                          ({"mac_address": "zz:zz"}, "mac_address"),
                          ({"allowed_address_pairs": [{"mac_address": "fa:16:3e:00:00:01"}]},
                           "allowed_address_pairs"),
                          ({"security_groups": "default"}, "security_groups")):
            r = post("ports", {"port": {"network_id": net["id"], **bad}})
            assert r.status_code == 400 and word in r.json()["NeutronError"]["message"], (bad, r.text)
        assert list(conn.network.ports(network_id=net["id"])) == []  # none of those was made
        port = post("ports", {"port": {"network_id": net["id"], "port_security_enabled": "1",
                                       "fixed_ips": [{"ip_address": "10.94.0.9"}]}}).json()["port"]
        r = _call(cloud, token, "PUT", f"/networking/v2.0/ports/{port['id']}", {"port": {"admin_state_up": 2}})
        refused(r, "admin_state_up", kind="InvalidInput")
        cloud.openstack("port", "delete", port["id"])
        # a list's limit: the one helper's words; a marker that names nothing: Neutron's 404
        refused(_call(cloud, token, "GET", "/networking/v2.0/networks?limit=x"), "limit param must be an integer")
        r = _call(cloud, token, "GET", f"/networking/v2.0/networks?marker={uuid.uuid4()}")
        assert r.status_code == 404
    finally:
        cloud.openstack("network", "delete", net["id"])


def test_router_and_pool_flags_given_as_strings_are_read_as_booleans(cloud, token):
    """"false" was taken for true (bool() of a non-empty string)."""
    r = _call(cloud, token, "POST", "/networking/v2.0/routers",
              {"router": {"name": _name("schema-r"), "ha": "false", "distributed": "False"}})
    assert r.status_code == 201, r.text
    router = r.json()["router"]
    try:
        assert router["ha"] is False and router["distributed"] is False
    finally:
        cloud.openstack("router", "delete", router["id"])
    r = _call(cloud, token, "POST", "/networking/v2.0/subnetpools",
              {"subnetpool": {"name": _name("schema-p"), "prefixes": ["10.95.0.0/16"], "shared": "false",
                              "default_prefixlen": 24}})
    assert r.status_code == 201, r.text
    pool = r.json()["subnetpool"]
    try:
        assert pool["shared"] is False
    finally:
        cloud.openstack("subnet", "pool", "delete", pool["id"])


# ---------------------------------------------------------------- one pagination helper, one boolean parser


def test_image_list_limit_and_boolean_filters(cloud, token):
    r = httpx.get(f"{cloud.url}/image/v2/images?limit=abc",
                  headers={"X-Auth-Token": token, "Accept": "application/json"})
    assert r.status_code == 400 and "limit param must be an integer" in r.text
    r = httpx.get(f"{cloud.url}/image/v2/images?os_hidden=maybe", headers={"X-Auth-Token": token,
                                                                         "Accept": "application/json"})
    assert r.status_code == 400 and "Invalid value 'maybe' for 'os_hidden' filter" in r.text
    r = httpx.get(f"{cloud.url}/image/v2/images?os_hidden=off", headers={"X-Auth-Token": token})
    assert r.status_code == 200
