"""The orchestration resource types (onestack/orchestration/resources/*) driven directly
against a running onestack: each type's handle_*/check_* steps act through the public
APIs as the demo user (or admin), and the `openstack` CLI checks what really exists."""

from __future__ import annotations

import http.server
import subprocess
import threading
import uuid

import httpx
import pytest

from onestack.common import errors
from onestack.common.clients import RestClient, ServiceAuth
from onestack.orchestration.resources import cinder, glance, keystone, neutron, nova, swift
from onestack.orchestration.resources.constraints import CONSTRAINTS
from tests.cloud import Cloud, wait_for


class Ctx:
    """A resources.base.Context acting as one user of the test cloud."""

    def __init__(self, cloud: Cloud, user: str = "demo"):
        rc = cloud.openrc(user)
        self.base = cloud.url
        self.auth = ServiceAuth(cloud.url, rc["OS_USERNAME"], rc["OS_PASSWORD"], rc["OS_PROJECT_NAME"])
        token = self.auth.token()
        catalog = httpx.get(cloud.url + "/identity/v3/auth/catalog", headers={"X-Auth-Token": token}).json()
        self.endpoints = {s["type"]: e["url"] for s in catalog["catalog"] for e in s["endpoints"]
                          if e["interface"] == "public"}
        self.stack_id, self.stack_name = str(uuid.uuid4()), f"st-{uuid.uuid4().hex[:6]}"
        self.project_id, self.user_id, self.region = self.auth.project_id, user, "RegionOne"

    def client(self, service_type: str) -> RestClient:
        return RestClient(self.auth, self.endpoints[service_type][len(self.base):])

    def signal_url(self, resource_name: str) -> str:
        return f"{self.base}/signal/{resource_name}"


def make(cls, ctx, props: dict, name: str = "res"):
    """A resource with its properties' defaults filled in, as the engine would."""
    full = {k: props.get(k, p.default) for k, p in cls.PROPERTIES.items()}
    res = cls(name, full, ctx)
    res.validate()
    return res


def create(res, timeout: float = 60):
    res.handle_create()
    wait_for(res.check_create_complete, timeout, what=f"{res.TYPE} {res.name} to be created")
    return res


def update(res, new: dict, timeout: float = 60):
    full = {k: new.get(k, p.default) for k, p in res.PROPERTIES.items()}
    changed = {k for k in full if full[k] != res.properties.get(k) and k in res.PROPERTIES}
    assert all(res.PROPERTIES[k].update_allowed for k in changed), changed
    res.handle_update(full, changed)
    wait_for(res.check_update_complete, timeout, what=f"{res.TYPE} {res.name} to be updated")
    res.properties = full


def delete(res, timeout: float = 60):
    try:
        res.handle_delete()
    except errors.NotFound:
        return
    wait_for(res.check_delete_complete, timeout, what=f"{res.TYPE} {res.name} to be deleted")


def gone(cloud: Cloud, *args: str, user: str = "demo") -> bool:
    r = cloud.openstack(*args, user=user, check=False)
    return r.returncode != 0 and ("No " in r.stderr or "not found" in r.stderr.lower()
                                  or "could not be found" in r.stderr.lower() or "404" in r.stderr)


@pytest.fixture(scope="module")
def demo(cloud):
    return Ctx(cloud, "demo")


@pytest.fixture(scope="module")
def admin(cloud):
    return Ctx(cloud, "admin")


@pytest.fixture(scope="module")
def image(cloud, tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "small.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    name = f"heat-img-{uuid.uuid4().hex[:6]}"
    img = cloud.os_json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                        "--public", "--file", str(path), name)
    yield img
    cloud.openstack("image", "delete", img["id"], check=False)


def test_constraints_answer_like_heat(demo, image):
    assert CONSTRAINTS["nova.flavor"](demo, "m1.tiny") is None
    assert CONSTRAINTS["nova.flavor"](demo, "no-such-flavor") == (
        "Error validating value 'no-such-flavor': The Flavor ID (no-such-flavor) could not be found.")
    assert CONSTRAINTS["glance.image"](demo, image["name"]) is None
    assert CONSTRAINTS["glance.image"](demo, image["id"]) is None
    assert "The Image (nope) could not be found." in CONSTRAINTS["glance.image"](demo, "nope")
    assert CONSTRAINTS["neutron.network"](demo, "public") is None
    assert CONSTRAINTS["neutron.network"](demo, "nonet") == (
        "Error validating value 'nonet': Unable to find network with name or id 'nonet'")
    assert "The Key (nokey) could not be found." in CONSTRAINTS["nova.keypair"](demo, "nokey")
    assert "could not be found" in CONSTRAINTS["cinder.volume"](demo, str(uuid.uuid4()))
    assert "could not be found" in CONSTRAINTS["cinder.vtype"](demo, "no-type")


def test_network_resources(cloud, demo):
    net = create(make(neutron.Net, demo, {"name": f"hnet-{uuid.uuid4().hex[:6]}"}, "net"))
    subnet = create(make(neutron.Subnet, demo, {"network": net.properties["name"], "cidr": "10.77.1.0/24"},
                         "subnet"))
    router = create(make(neutron.Router, demo, {"external_gateway_info": {"network": "public"}}, "router"))
    iface = create(make(neutron.RouterInterface, demo, {"router": router.resource_id,
                                                        "subnet": subnet.resource_id}, "iface"))
    sg = create(make(neutron.SecurityGroup, demo, {"rules": [
        {"protocol": "tcp", "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"},
        {"protocol": "icmp"}]}, "sg"))
    port = create(make(neutron.Port, demo, {"network": net.resource_id, "security_groups": [sg.resource_id],
                                            "fixed_ips": [{"subnet": subnet.resource_id, "ip_address": "10.77.1.50"}]},
                       "port"))
    fip = create(make(neutron.FloatingIP, demo, {"floating_network": "public", "port_id": port.resource_id},
                      "fip"))
    try:
        # what the services have, through the CLI
        shown = cloud.os_json("network", "show", net.resource_id, user="demo")
        assert shown["name"] == net.properties["name"] and subnet.resource_id in shown["subnets"]
        assert cloud.os_json("router", "show", router.resource_id, user="demo")["external_gateway_info"]
        ports = cloud.os_json("port", "list", "--router", router.resource_id, user="demo")
        assert any("10.77.1.1" in str(p["Fixed IP Addresses"]) for p in ports)
        rules = cloud.os_json("security", "group", "rule", "list", sg.resource_id, "--long", user="demo")
        assert {(r["IP Protocol"], r["Direction"]) for r in rules} >= {("tcp", "ingress"), ("icmp", "ingress"),
                                                                        (None, "egress")}
        shown_fip = cloud.os_json("floating", "ip", "show", fip.resource_id, user="demo")
        assert shown_fip["port_id"] == port.resource_id and shown_fip["fixed_ip_address"] == "10.77.1.50"
        # attributes
        assert port.attribute("fixed_ips")[0]["ip_address"] == "10.77.1.50"
        assert port.attribute("mac_address") and port.attribute("subnets")[0]["cidr"] == "10.77.1.0/24"
        assert fip.attribute("floating_ip_address") == shown_fip["floating_ip_address"]
        assert net.attribute("subnets") == [subnet.resource_id]
        assert router.attribute("external_gateway_info")["network_id"]
        assert subnet.attribute("gateway_ip") == "10.77.1.1"
        # in-place updates
        update(net, {**net.properties, "name": net.properties["name"] + "-2"})
        assert cloud.os_json("network", "show", net.resource_id, user="demo")["name"].endswith("-2")
        update(sg, {**sg.properties, "rules": [{"protocol": "udp", "port_range_min": 53, "port_range_max": 53}]})
        rules = cloud.os_json("security", "group", "rule", "list", sg.resource_id, "--long", user="demo")
        assert sorted(str(r["IP Protocol"]) for r in rules) == ["None", "None", "udp"]
        update(port, {**port.properties, "name": "renamed"})
        assert cloud.os_json("port", "show", port.resource_id, user="demo")["name"] == "renamed"
        update(fip, {**fip.properties, "port_id": None})
        assert cloud.os_json("floating", "ip", "show", fip.resource_id, user="demo")["port_id"] is None
    finally:
        for res in (fip, port, sg, iface, router, subnet, net):
            delete(res)
    assert gone(cloud, "floating", "ip", "show", fip.resource_id)
    assert gone(cloud, "port", "show", port.resource_id)
    assert gone(cloud, "security", "group", "show", sg.resource_id)
    assert gone(cloud, "router", "show", router.resource_id)
    assert gone(cloud, "network", "show", net.resource_id)
    delete(net)  # deleting again: already gone is success


def test_server_keypair_volume_attachment(cloud, demo, image):
    net = create(make(neutron.Net, demo, {}, "snet"))
    subnet = create(make(neutron.Subnet, demo, {"network": net.resource_id, "cidr": "10.77.2.0/24"}, "ssub"))
    key = create(make(nova.KeyPair, demo, {"name": f"hkey-{uuid.uuid4().hex[:6]}", "save_private_key": True}))
    server = make(nova.Server, demo, {"image": image["name"], "flavor": "m1.tiny", "key_name": key.resource_id,
                                      "networks": [{"network": net.resource_id}], "metadata": {"a": "1"},
                                      "user_data": "#!/bin/sh\necho hi\n"}, "server")
    vol = make(cinder.Volume, demo, {"size": 1, "metadata": {"k": "v"}}, "vol")
    attach = None
    try:
        assert "PRIVATE KEY" in key.attribute("private_key") and key.attribute("public_key").startswith("ssh-")
        assert cloud.os_json("keypair", "show", key.resource_id, user="demo")["name"] == key.resource_id
        create(server)
        create(vol)
        shown = cloud.os_json("server", "show", server.resource_id, user="demo")
        assert shown["status"] == "ACTIVE" and shown["key_name"] == key.resource_id
        assert shown["name"].startswith(f"{demo.stack_name}-server-")
        ip = server.attribute("first_address")
        assert ip.startswith("10.77.2.")
        assert server.attribute("networks")[net.resource_id] == [ip]
        assert server.attribute("addresses")[net.data["physical_name"]][0]["port"]
        attach = create(make(cinder.VolumeAttachment, demo, {"instance_uuid": server.resource_id,
                                                             "volume_id": vol.resource_id}, "attach"))
        shown = cloud.os_json("volume", "show", vol.resource_id, user="demo")
        assert shown["status"] == "in-use" and shown["attachments"][0]["server_id"] == server.resource_id
        assert vol.attribute("attachments_list")[0]["server_id"] == server.resource_id
        assert vol.attribute("metadata_values")["k"] == "v"
        # updates in place: server name and metadata, volume size (extended while in-use)
        update(server, {**server.properties, "name": "renamed-server", "metadata": {"b": "2"}})
        shown = cloud.os_json("server", "show", server.resource_id, user="demo")
        assert shown["name"] == "renamed-server" and shown["properties"] == {"b": "2"}
        update(vol, {**vol.properties, "size": 2})
        assert cloud.os_json("volume", "show", vol.resource_id, user="demo")["size"] == 2
        with pytest.raises(errors.BadRequest, match="Shrinking"):
            vol.handle_update({**vol.properties, "size": 1}, {"size"})
        delete(attach)
        assert cloud.os_json("volume", "show", vol.resource_id, user="demo")["status"] == "available"
    finally:
        for res in (attach, server, vol, key, subnet, net):
            if res is not None:
                delete(res)
    assert gone(cloud, "server", "show", server.resource_id)
    assert gone(cloud, "volume", "show", vol.resource_id)
    assert gone(cloud, "keypair", "show", key.resource_id)
    assert gone(cloud, "network", "show", net.resource_id)


def test_server_failure_names_the_fault(demo, admin, image):
    # more disk than any fake host has: the scheduler finds no host
    flavor = create(make(nova.Flavor, admin, {"ram": 64, "vcpus": 1, "disk": 100000}, "bigflavor"))
    server = make(nova.Server, demo, {"image": image["id"], "flavor": flavor.resource_id,
                                      "networks": [{"allocate_network": "none"}]}, "big")
    try:
        server.handle_create()
        assert server.resource_id  # known before it failed: the engine can delete it
        with pytest.raises(errors.Conflict, match="Went to status ERROR due to"):
            wait_for(server.check_create_complete, 60, what="the server to fail")
    finally:
        delete(server)
        delete(flavor)


def test_keystone_resources(cloud, admin):
    project = create(make(keystone.Project, admin, {"description": "made by heat"}, "proj"))
    group = create(make(keystone.Group, admin, {"roles": [{"role": "member", "project": project.resource_id}]},
                        "grp"))
    user = create(make(keystone.User, admin, {"password": "pw-1234", "groups": [group.resource_id],
                                              "default_project": project.resource_id,
                                              "roles": [{"role": "reader", "project": project.resource_id}]},
                       "usr"))
    role = create(make(keystone.Role, admin, {}, "role"))
    try:
        assert cloud.os_json("project", "show", project.resource_id)["description"] == "made by heat"
        assert project.attribute("domain_id") == "default"
        roles = cloud.os_json("role", "assignment", "list", "--user", user.resource_id, "--names")
        assert [r["Role"] for r in roles] == ["reader"]
        roles = cloud.os_json("role", "assignment", "list", "--group", group.resource_id, "--names")
        assert [r["Role"] for r in roles] == ["member"]
        members = cloud.os_json("user", "list", "--group", group.resource_id)
        assert [m["ID"] for m in members] == [user.resource_id]
        update(user, {**user.properties, "roles": [{"role": role.resource_id, "project": project.resource_id}],
                      "email": "u@example.org"})
        roles = cloud.os_json("role", "assignment", "list", "--user", user.resource_id)
        assert [r["Role"] for r in roles] == [role.resource_id]
        assert cloud.os_json("user", "show", user.resource_id)["email"] == "u@example.org"
    finally:
        for res in (user, role, group, project):
            delete(res)
    assert gone(cloud, "project", "show", project.resource_id, user="admin")
    assert gone(cloud, "user", "show", user.resource_id, user="admin")


def test_admin_types_flavor_volume_type_server_group(cloud, admin):
    flavor = create(make(nova.Flavor, admin, {"ram": 64, "vcpus": 1, "extra_specs": {"hw:cpu_policy": "shared"}},
                         "flv"))
    vtype = create(make(cinder.VolumeType, admin, {"name": f"vt-{uuid.uuid4().hex[:6]}",
                                                   "metadata": {"k": "v"}}, "vt"))
    group = create(make(nova.ServerGroup, admin, {"policies": ["affinity"]}, "sg"))
    try:
        shown = cloud.os_json("flavor", "show", flavor.resource_id)
        assert shown["ram"] == 64 and flavor.attribute("extra_specs") == {"hw:cpu_policy": "shared"}
        update(flavor, {**flavor.properties, "extra_specs": {"x": "y"}})
        assert flavor.attribute("extra_specs") == {"x": "y"}
        assert cloud.os_json("volume", "type", "show", vtype.resource_id)["properties"] == {"k": "v"}
        assert CONSTRAINTS["cinder.vtype"](admin, vtype.properties["name"]) is None
        assert cloud.os_json("server", "group", "show", group.resource_id)["policy"] == "affinity"
    finally:
        for res in (group, vtype, flavor):
            delete(res)
    assert gone(cloud, "flavor", "show", flavor.resource_id, user="admin")
    assert gone(cloud, "volume", "type", "show", vtype.resource_id, user="admin")


def test_swift_container(cloud, demo, tmp_path):
    box = create(make(swift.Container, demo, {"X-Container-Read": ".r:*", "X-Container-Meta": {"Color": "blue"}},
                      "box"))
    try:
        shown = cloud.os_json("container", "show", box.resource_id, user="demo")
        assert shown["read_acl"] == ".r:*"
        assert {k.lower(): v for k, v in shown["properties"].items()} == {"color": "blue"}
        (tmp_path / "obj").write_bytes(b"12345")
        cloud.openstack("object", "create", box.resource_id, str(tmp_path / "obj"), user="demo")
        assert box.attribute("ObjectCount") == 1 and box.attribute("BytesUsed") == 5
        assert box.attribute("WebsiteURL").endswith("/" + box.resource_id)
        assert box.attribute("DomainName") == "127.0.0.1"
        assert "X-Container-Read".lower() in {k.lower() for k in box.attribute("HeadContainer")}
        with pytest.raises(errors.Conflict, match="not empty"):
            box.handle_delete()
        box.properties["PurgeOnDelete"] = True
        delete(box)
    finally:
        box.properties["PurgeOnDelete"] = True
        delete(box)
    assert gone(cloud, "container", "show", box.resource_id)


class _Bytes(http.server.BaseHTTPRequestHandler):
    data = b"\0" * 4096

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.data)))
        self.end_headers()
        self.wfile.write(self.data)

    def log_message(self, *args):
        pass


def test_glance_web_image(cloud, demo):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Bytes)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/disk.raw"
    img = make(glance.WebImage, demo, {"location": url, "disk_format": "raw", "container_format": "bare",
                                       "tags": ["t1"]}, "img")
    try:
        create(img)
        shown = cloud.os_json("image", "show", img.resource_id, user="demo")
        assert shown["status"] == "active" and shown["size"] == 4096 and shown["tags"] == ["t1"]
        update(img, {**img.properties, "tags": ["t2"], "os_distro": "busybox"})
        shown = cloud.os_json("image", "show", img.resource_id, user="demo")
        assert shown["tags"] == ["t2"] and shown["properties"]["os_distro"] == "busybox"
        with pytest.raises(errors.BadRequest, match="http or https"):
            make(glance.WebImage, demo, {"location": "file:///etc/passwd", "disk_format": "raw",
                                         "container_format": "bare"})
    finally:
        delete(img)
        server.shutdown()
    assert gone(cloud, "image", "show", img.resource_id)
