"""A whole stack of the other services' resources through `openstack stack create`:
network, subnet, router and its interface, security group, key pair, port, server (on a
fake host), volume and its attachment, floating IP; outputs read; deleted with nothing
left behind in any service."""

from __future__ import annotations

import subprocess
import uuid

import pytest
import yaml

from tests.cloud import wait_for

TEMPLATE = {
    "heat_template_version": "2018-08-31",
    "parameters": {"image": {"type": "string"}, "flavor": {"type": "string", "default": "m1.tiny"}},
    "resources": {
        "net": {"type": "OS::Neutron::Net"},
        "subnet": {"type": "OS::Neutron::Subnet",
                   # network_id and subnet_id: the older names, still in templates people use
                   "properties": {"network_id": {"get_resource": "net"}, "cidr": "10.78.0.0/24"}},
        "router": {"type": "OS::Neutron::Router",
                   "properties": {"external_gateway_info": {"network": "public"}}},
        "iface": {"type": "OS::Neutron::RouterInterface",
                  "properties": {"router": {"get_resource": "router"}, "subnet": {"get_resource": "subnet"}}},
        "sg": {"type": "OS::Neutron::SecurityGroup",
               "properties": {"rules": [{"protocol": "tcp", "port_range_min": 22, "port_range_max": 22}]}},
        "key": {"type": "OS::Nova::KeyPair",
                "properties": {"name": {"list_join": ["-", [{"get_param": "OS::stack_name"}, "key"]]}}},
        "port": {"type": "OS::Neutron::Port",
                 "properties": {"network": {"get_resource": "net"},
                                "fixed_ips": [{"subnet_id": {"get_resource": "subnet"}}],
                                "security_groups": [{"get_resource": "sg"}]}},
        "server": {"type": "OS::Nova::Server",
                   "properties": {"image": {"get_param": "image"}, "flavor": {"get_param": "flavor"},
                                  "key_name": {"get_resource": "key"},
                                  "networks": [{"port": {"get_resource": "port"}}]}},
        "vol": {"type": "OS::Cinder::Volume", "properties": {"size": 1}},
        "attach": {"type": "OS::Cinder::VolumeAttachment",
                   "properties": {"instance_uuid": {"get_resource": "server"},
                                  "volume_id": {"get_resource": "vol"}}},
        "fip": {"type": "OS::Neutron::FloatingIP",
                "depends_on": ["iface"],
                "properties": {"floating_network": "public", "port_id": {"get_resource": "port"}}},
    },
    "outputs": {
        "server_ip": {"value": {"get_attr": ["server", "first_address"]}},
        "port_ip": {"value": {"get_attr": ["port", "fixed_ips", 0, "ip_address"]}},
        "floating_ip": {"value": {"get_attr": ["fip", "floating_ip_address"]}},
        "volume_status": {"value": {"get_attr": ["vol", "status"]}},
    },
}


@pytest.fixture(scope="module")
def image(cloud, tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "small.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    name = f"heat-img-{uuid.uuid4().hex[:6]}"
    img = cloud.os_json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                        "--public", "--file", str(path), name)
    yield img
    cloud.openstack("image", "delete", img["id"], check=False)


def test_stack_of_every_service(cloud, image, tmp_path):
    name = f"full-{uuid.uuid4().hex[:6]}"
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(TEMPLATE))
    cloud.os_json("stack", "create", "-t", str(tmp_path / "t.yaml"), "--parameter", f"image={image['id']}",
                  name, user="demo")
    try:
        stack = wait_for(lambda: (s := cloud.os_json("stack", "show", name, user="demo"))["stack_status"]
                         != "CREATE_IN_PROGRESS" and s, 180, what="the stack to be created")
        assert stack["stack_status"] == "CREATE_COMPLETE", stack.get("stack_status_reason")
        res = {r["resource_name"]: r for r in cloud.os_json("stack", "resource", "list", stack["id"],
                                                             user="demo")}
        assert all(r["resource_status"] == "CREATE_COMPLETE" for r in res.values())
        outputs = {o["output_key"]: o["output_value"] for o in
                   cloud.os_json("stack", "show", name, user="demo")["outputs"]}
        assert outputs["server_ip"] == outputs["port_ip"] and outputs["server_ip"].startswith("10.78.0.")
        assert outputs["volume_status"] == "in-use"
        fip = cloud.os_json("floating", "ip", "show", res["fip"]["physical_resource_id"], user="demo")
        assert fip["floating_ip_address"] == outputs["floating_ip"] and fip["port_id"] == res["port"][
            "physical_resource_id"]
        server = cloud.os_json("server", "show", res["server"]["physical_resource_id"], user="demo")
        assert server["status"] == "ACTIVE" and server["key_name"] == f"{name}-key"
        volume = cloud.os_json("volume", "show", res["vol"]["physical_resource_id"], user="demo")
        assert volume["attachments"][0]["server_id"] == server["id"]
    finally:
        cloud.openstack("stack", "delete", "--yes", name, user="demo", check=False)
    wait_for(lambda: cloud.openstack("stack", "show", name, user="demo", check=False).returncode != 0, 120,
             what="the stack to be gone")
    phys = {k: v["physical_resource_id"] for k, v in res.items()}
    for args in (("server", "show", phys["server"]), ("volume", "show", phys["vol"]),
                 ("keypair", "show", f"{name}-key"), ("port", "show", phys["port"]),
                 ("floating", "ip", "show", phys["fip"]), ("security", "group", "show", phys["sg"]),
                 ("router", "show", phys["router"]), ("subnet", "show", phys["subnet"]),
                 ("network", "show", phys["net"])):
        assert cloud.openstack(*args, user="demo", check=False).returncode != 0, f"{args} still exists"


def test_subnet_without_network_is_refused(cloud, tmp_path):
    template = {"heat_template_version": "2018-08-31",
                "resources": {"subnet": {"type": "OS::Neutron::Subnet", "properties": {"cidr": "10.79.0.0/24"}}}}
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(template))
    r = cloud.openstack("stack", "create", "-t", str(tmp_path / "t.yaml"), f"nonet-{uuid.uuid4().hex[:6]}",
                        user="demo", check=False)
    assert r.returncode != 0 and "Property network not assigned" in r.stderr, r.stderr
