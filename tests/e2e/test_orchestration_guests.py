"""Orchestration with a real guest: one HOT template makes a network, subnet, router (gateway
on `public`) and its interface, a security group opening SSH and ICMP, a key pair of a key
the test generates, a tiny guest on a port of that network, a volume attached to it and a
floating IP. `openstack stack create --wait`, then the external namespace SSHes into the
guest at the stack's floating IP output and sees the volume (vdb); `stack delete --wait`
leaves nothing in any service, no libvirt domain, tap, bridge or namespace. A second stack
whose third resource fails, with rollback, ends ROLLBACK_COMPLETE with nothing left.
One cloud for the module, one guest boot; every wait is bounded.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from onestack.compute.network import tap_name
from onestack.network.core import bridge_name
from tests.cloud import BIN, Cloud
from tests.e2e.guests import IMAGE, SSH, networked_cloud, require_guests, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600), pytest.mark.root, pytest.mark.libvirt, pytest.mark.netns]

require_guests()

DEMO = {"user": "demo"}

GUEST_STACK = {
    "heat_template_version": "2018-08-31",
    "parameters": {"public_key": {"type": "string"}, "image": {"type": "string", "default": IMAGE},
                   "flavor": {"type": "string", "default": "m1.nano"}},
    "resources": {
        "net": {"type": "OS::Neutron::Net"},
        "subnet": {"type": "OS::Neutron::Subnet",
                   "properties": {"network": {"get_resource": "net"}, "cidr": "10.93.0.0/24"}},
        "router": {"type": "OS::Neutron::Router", "properties": {"external_gateway_info": {"network": "public"}}},
        "iface": {"type": "OS::Neutron::RouterInterface",
                  "properties": {"router": {"get_resource": "router"}, "subnet": {"get_resource": "subnet"}}},
        "sg": {"type": "OS::Neutron::SecurityGroup",
               "properties": {"rules": [{"protocol": "tcp", "port_range_min": 22, "port_range_max": 22},
                                        {"protocol": "icmp"}]}},
        "key": {"type": "OS::Nova::KeyPair",
                "properties": {"name": {"list_join": ["-", [{"get_param": "OS::stack_name"}, "key"]]},
                               "public_key": {"get_param": "public_key"}}},
        "port": {"type": "OS::Neutron::Port",
                 "properties": {"network": {"get_resource": "net"}, "fixed_ips": [{"subnet": {"get_resource": "subnet"}}],
                                "security_groups": [{"get_resource": "sg"}]}},
        "server": {"type": "OS::Nova::Server",
                   "properties": {"image": {"get_param": "image"}, "flavor": {"get_param": "flavor"},
                                  "key_name": {"get_resource": "key"}, "config_drive": True,
                                  "networks": [{"port": {"get_resource": "port"}}]}},
        "vol": {"type": "OS::Cinder::Volume", "properties": {"size": 1}},
        "attach": {"type": "OS::Cinder::VolumeAttachment",
                   "properties": {"instance_uuid": {"get_resource": "server"}, "volume_id": {"get_resource": "vol"}}},
        "fip": {"type": "OS::Neutron::FloatingIP", "depends_on": ["iface"],
                "properties": {"floating_network": "public", "port_id": {"get_resource": "port"}}},
    },
    "outputs": {"floating_ip": {"value": {"get_attr": ["fip", "floating_ip_address"]}},
                "server": {"value": {"get_resource": "server"}}},
}

# the third resource fails once the two real ones it depends on are made
FAILING_STACK = {
    "heat_template_version": "2018-08-31",
    "resources": {
        "net": {"type": "OS::Neutron::Net"},
        "vol": {"type": "OS::Cinder::Volume", "properties": {"size": 1}},
        "boom": {"type": "OS::Heat::TestResource", "depends_on": ["net", "vol"],
                 "properties": {"fail": True}},
    },
}

# what a stack may leave behind, by the openstacksdk listing that shows it (as demo)
LISTS = {"server": lambda c: c.compute.servers(), "port": lambda c: c.network.ports(),
         "floating ip": lambda c: c.network.ips(), "volume": lambda c: c.block_storage.volumes(),
         "network": lambda c: c.network.networks(), "subnet": lambda c: c.network.subnets(),
         "router": lambda c: c.network.routers(), "security group": lambda c: c.network.security_groups(),
         "key pair": lambda c: c.compute.keypairs()}


@pytest.fixture(scope="module")
def cloud():
    yield from networked_cloud("orch-guests")


@pytest.fixture(scope="module")
def sdk(cloud):
    conn = cloud.sdk("demo")
    yield conn
    conn.close()


def in_public(cloud: Cloud, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run argv in the external network's namespace, as an admin would."""
    return subprocess.run([str(BIN / "onestack"), "netns", "exec", "public", "--", *argv], env=cloud.env,
                          capture_output=True, text=True, timeout=timeout)


def everything(sdk) -> dict[str, set[str]]:
    """The ids (names for key pairs) of everything demo can list, by kind."""
    return {kind: {x.id for x in listing(sdk)} for kind, listing in LISTS.items()}


def assert_nothing_new(sdk, before: dict[str, set[str]]) -> None:
    after = everything(sdk)
    left = {kind: after[kind] - before[kind] for kind in after if after[kind] - before[kind]}
    assert not left, f"left behind: {left}"


def create_stack(cloud: Cloud, tmp_path, name: str, doc: dict, *args: str) -> subprocess.CompletedProcess:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    # heatclient polls the events every --poll seconds (5 by default)
    return cloud.openstack("stack", "create", "--wait", "--poll", "1", "-t", str(path), *args, name, **DEMO,
                           check=False)


def keypair(tmp_path) -> tuple[str, str]:
    """(private key file, OpenSSH public key) of a new RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "id_rsa"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return str(path), public.decode()


def test_stack_with_a_guest_reached_over_its_floating_ip(cloud, sdk, tmp_path):
    before = everything(sdk)
    key, public = keypair(tmp_path)
    r = create_stack(cloud, tmp_path, "guest", GUEST_STACK, "--parameter", f"public_key={public}")
    shown = cloud.os_json("stack", "show", "guest", **DEMO)
    assert r.returncode == 0 and shown["stack_status"] == "CREATE_COMPLETE", (r.stderr,
                                                                             shown["stack_status_reason"])
    outputs = {o["output_key"]: o["output_value"] for o in shown["outputs"]}
    fip, server = outputs["floating_ip"], outputs["server"]
    res = {x["resource_name"]: x["physical_resource_id"] for x in cloud.os_json("stack", "resource", "list",
                                                                               "guest", **DEMO)}
    assert [p.id for p in sdk.network.ports(device_id=server)] == [res["port"]]

    def ssh() -> str:
        return in_public(cloud, sys.executable, "-c", SSH, fip, key, "hostname; cat /proc/partitions",
                         timeout=40).stdout
    out = wait_for(ssh, 180, f"SSH to the stack's guest at {fip}", step=1)
    assert " vdb" in out, out  # the stack's volume, attached
    assert [a["server_id"] for a in sdk.block_storage.get_volume(res["vol"]).attachments] == [server]

    cloud.openstack("stack", "delete", "--yes", "--wait", "guest", **DEMO)
    assert cloud.openstack("stack", "show", "guest", **DEMO, check=False).returncode != 0
    assert_nothing_new(sdk, before)
    assert subprocess.run(["virsh", "-c", "qemu:///system", "dominfo", f"onestack-{server}"],
                          capture_output=True).returncode != 0, "the guest's libvirt domain is left"

    def kernel_gone() -> bool:
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        spaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        return (tap_name(res["port"]) not in links and bridge_name(res["net"]) not in links
                and f"qrouter-{res['router']}" not in spaces and f"qdhcp-{res['net']}" not in spaces)
    wait_for(kernel_gone, 30, "the stack's tap, bridge and namespaces to go")


def test_failed_create_rolls_back(cloud, sdk, tmp_path):
    before = everything(sdk)
    r = create_stack(cloud, tmp_path, "failing", FAILING_STACK, "--enable-rollback")
    assert r.returncode != 0  # heatclient: the wait ended in something other than CREATE_COMPLETE
    shown = wait_for(lambda: (s := cloud.os_json("stack", "show", "failing", **DEMO))["stack_status"]
                     not in ("CREATE_IN_PROGRESS", "ROLLBACK_IN_PROGRESS") and s, 60, "the rollback")
    assert shown["stack_status"] == "ROLLBACK_COMPLETE", (shown["stack_status"], shown["stack_status_reason"])
    events = cloud.os_json("stack", "event", "list", "failing", **DEMO)
    failed = {e["resource_name"] for e in events if e["resource_status"] == "CREATE_FAILED"}
    made = {e["resource_name"] for e in events if e["resource_status"] == "CREATE_COMPLETE"}
    deleted = {e["resource_name"] for e in events if e["resource_status"] == "DELETE_COMPLETE"}
    assert "boom" in failed and {"net", "vol"} <= made and {"net", "vol"} <= deleted, events
    assert_nothing_new(sdk, before)
    cloud.openstack("stack", "delete", "--yes", "--wait", "failing", **DEMO)
