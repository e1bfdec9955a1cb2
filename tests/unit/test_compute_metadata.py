"""The compute metadata API, as the network's metadata proxy calls it: signed requests
through starlette's TestClient against the compute tables on SQLite."""

from __future__ import annotations

import base64
import json
import warnings
from datetime import datetime

import pytest

from onestack.common import db
from onestack.compute import metadata
from onestack.compute import models as m
from onestack.compute.virt import configdrive
from onestack.network.linux.metadata import sign as proxy_sign

with warnings.catch_warnings():  # starlette's notice about its httpx-based client
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

SECRET = "metadata-test-secret"
UUID = "0b3c1c55-8c3a-4a8e-9a39-2f2d6a1c0f11"
OTHER = "5d7e0a8b-1111-4c2d-8e9f-0a1b2c3d4e5f"
PROJECT = "p-123"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMetadataTestKey0000000000000000000000 md@test"
VIFS = [
    {
        "port_id": "a1b2c3d4-0000-4000-8000-000000000001",
        "network_id": "n1",
        "network_name": "private",
        "mac": "fa:16:3e:00:00:01",
        "mtu": 1450,
        "tap": "tapa1b2c3d4-00",
        "vif_type": "bridge",
        "fixed_ips": [
            {
                "ip_address": "10.0.0.5",
                "subnet_id": "s1",
                "version": 4,
                "cidr": "10.0.0.0/24",
                "gateway": "10.0.0.1",
                "dns": ["10.0.0.2"],
                "enable_dhcp": False,
                "floating_ips": ["172.24.4.10"],
            }
        ],
    }
]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    db.configure(f"sqlite:///{tmp_path_factory.mktemp('md') / 'compute.db'}")
    db.upgrade("compute")
    now = datetime(2024, 1, 2, 3, 4, 5)

    def instance(uuid, name, **kw):
        args = dict(
            uuid=uuid,
            project_id=PROJECT,
            user_id="u-1",
            name=name,
            hostname=name.lower(),
            flavor={"name": "m1.nano", "memory_mb": 128, "vcpus": 1, "root_gb": 1},
            vm_state="active",
            reservation_id="r-0abc1234",
            created_at=now,
            updated_at=now,
            image_ref="6f1ab1b4-5b1c-4b5e-9d56-0d4a1f1b1c01",
            availability_zone="nova",
        )
        args.update(kw)
        return m.Instance(**args)

    with db.transaction() as s:
        s.add(
            m.KeyPair(
                user_id="u-1",
                name="mykey",
                type="ssh",
                fingerprint="aa:bb",
                public_key=KEY,
                created_at=now,
            )
        )
        s.add(
            instance(
                UUID,
                "VM-1",
                key_name="mykey",
                key_data=KEY,
                user_data=base64.b64encode(b"#!/bin/sh\necho hi\n").decode(),
                metadata_={"role": "web"},
                network_info=VIFS,
                launch_index=2,
                security_groups=["default"],
            )
        )
        s.add(instance(OTHER, "vm-2"))  # no key, no user_data, no network
    with TestClient(metadata.metadata_app(secret=SECRET)) as c:
        yield c
    db.engine().dispose()


def get(client, path, uuid=UUID, secret=SECRET, **headers):
    h = {
        "X-Instance-ID": uuid,
        "X-Instance-ID-Signature": proxy_sign(uuid, secret),
        "X-Forwarded-For": "10.0.0.5",
        "X-Tenant-ID": PROJECT,
    }
    h.update(headers)
    return client.get(path, headers={k: v for k, v in h.items() if v is not None})


def test_signature_matches_the_proxy():
    assert metadata.sign(UUID, SECRET) == proxy_sign(UUID, SECRET)


def test_requests_must_be_signed(client):
    assert get(client, "/openstack", secret="wrong").status_code == 403
    r = client.get("/openstack/latest/meta_data.json")
    assert r.status_code == 400 and "X-Instance-ID" in r.text
    r = get(client, "/openstack", **{"X-Instance-ID-Signature": None})
    assert r.status_code == 400
    # a signature for one instance does not open another's metadata
    r = get(
        client, "/openstack", uuid=OTHER, **{"X-Instance-ID-Signature": proxy_sign(UUID, SECRET)}
    )
    assert r.status_code == 403


def test_unknown_instance_and_wrong_tenant(client):
    missing = "9f9f9f9f-0000-4000-8000-000000000000"
    assert get(client, "/openstack", uuid=missing).status_code == 404
    assert get(client, "/openstack", **{"X-Tenant-ID": "someone-else"}).status_code == 404


def test_no_secret_configured():
    with TestClient(metadata.metadata_app()) as c:
        metadata.configure(secret=None)
        r = get(c, "/openstack")
        assert r.status_code == 503
        metadata.configure(secret=SECRET)
        assert get(c, "/openstack").status_code == 200
        metadata.configure(secret=None)


def test_openstack_listings(client):
    r = get(client, "/openstack")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert r.text.splitlines() == [*configdrive.OPENSTACK_VERSIONS, "latest"]
    assert get(client, "/openstack/").text == r.text
    latest = get(client, "/openstack/latest").text.splitlines()
    assert latest == [
        "meta_data.json",
        "user_data",
        "vendor_data.json",
        "network_data.json",
        "vendor_data2.json",
    ]
    assert get(client, "/openstack/2012-08-10/").text.splitlines() == [
        "meta_data.json",
        "user_data",
    ]
    assert "user_data" not in get(client, "/openstack/latest", uuid=OTHER).text
    assert get(client, "/openstack/1999-01-01/meta_data.json").status_code == 404
    assert get(client, "/openstack/latest/nothing.json").status_code == 404
    assert get(client, "/openstack/2012-08-10/network_data.json").status_code == 404


def test_openstack_meta_data(client):
    r = get(client, "/openstack/latest/meta_data.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    md = r.json()
    assert md["uuid"] == UUID and md["name"] == "VM-1" and md["hostname"] == "vm-1"
    assert md["project_id"] == PROJECT and md["availability_zone"] == "nova"
    assert md["launch_index"] == 2
    assert md["meta"] == {"role": "web"}
    assert md["public_keys"] == {"mykey": KEY}
    assert md["keys"] == [{"name": "mykey", "type": "ssh", "data": KEY}]
    assert md["devices"] == []
    assert len(base64.b64decode(md["random_seed"])) == 512
    old = get(client, "/openstack/2012-08-10/meta_data.json").json()
    assert "random_seed" not in old and "project_id" not in old and "devices" not in old
    assert old["uuid"] == UUID
    other = get(client, "/openstack/latest/meta_data.json", uuid=OTHER).json()
    assert other["public_keys"] == {} and other["keys"] == [] and other["uuid"] == OTHER


def test_openstack_user_data_and_vendor_data(client):
    r = get(client, "/openstack/latest/user_data")
    assert r.status_code == 200 and r.content == b"#!/bin/sh\necho hi\n"
    assert get(client, "/openstack/latest/user_data", uuid=OTHER).status_code == 404
    assert get(client, "/openstack/latest/vendor_data.json").json() == {}
    assert get(client, "/openstack/latest/vendor_data2.json").json() == {}


def test_network_data(client):
    nd = get(client, "/openstack/latest/network_data.json").json()
    assert nd["links"] == [
        {
            "id": "tapa1b2c3d4-00",
            "vif_id": VIFS[0]["port_id"],
            "type": "bridge",
            "mtu": 1450,
            "ethernet_mac_address": "fa:16:3e:00:00:01",
        }
    ]
    (net,) = nd["networks"]
    assert net["type"] == "ipv4" and net["link"] == "tapa1b2c3d4-00"
    assert (net["ip_address"], net["netmask"]) == ("10.0.0.5", "255.255.255.0")
    assert net["routes"] == [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.0.1"}]
    assert nd["services"] == [{"type": "dns", "address": "10.0.0.2"}]
    # a DHCP subnet: the guest asks DHCP, as Nova writes it
    dhcp = configdrive.network_data([{**VIFS[0], "fixed_ips": [
        {**VIFS[0]["fixed_ips"][0], "enable_dhcp": True}]}])  # fmt: skip
    assert dhcp["networks"][0]["type"] == "ipv4_dhcp" and "ip_address" not in dhcp["networks"][0]
    empty = get(client, "/openstack/latest/network_data.json", uuid=OTHER).json()
    assert empty == {"links": [], "networks": [], "services": []}


def test_ec2_tree(client):
    root = get(client, "/").text.splitlines()
    assert root[0] == "1.0" and root[-1] == "latest" and "2009-04-04" in root
    assert get(client, "/latest").text.splitlines() == ["meta-data/", "user-data"]
    listing = get(client, "/latest/meta-data/").text.splitlines()
    for key in ("ami-id", "hostname", "instance-id", "instance-type", "local-ipv4",
                "public-ipv4", "placement/", "public-keys/", "reservation-id"):  # fmt: skip
        assert key in listing, listing
    assert get(client, "/latest/meta-data/instance-id").text == "i-0b3c1c55"
    assert get(client, "/latest/meta-data/ami-id").text == "ami-6f1ab1b4"
    assert get(client, "/latest/meta-data/hostname").text == "vm-1"
    assert get(client, "/latest/meta-data/local-ipv4").text == "10.0.0.5"
    assert get(client, "/latest/meta-data/public-ipv4").text == "172.24.4.10"
    assert get(client, "/latest/meta-data/instance-type").text == "m1.nano"
    assert get(client, "/latest/meta-data/placement/").text == "availability-zone"
    assert get(client, "/latest/meta-data/placement/availability-zone").text == "nova"
    assert get(client, "/latest/meta-data/public-keys/").text == "0=mykey"
    assert get(client, "/latest/meta-data/public-keys/0/").text == "openssh-key"
    assert get(client, "/latest/meta-data/public-keys/0/openssh-key").text == KEY
    assert get(client, "/latest/meta-data/block-device-mapping/root").text == "/dev/vda"
    assert get(client, "/2009-04-04/meta-data/instance-id").text == "i-0b3c1c55"
    assert get(client, "/latest/user-data").content == b"#!/bin/sh\necho hi\n"
    assert get(client, "/latest/user-data", uuid=OTHER).status_code == 404
    assert get(client, "/latest/meta-data/public-keys/", uuid=OTHER).status_code == 404
    assert get(client, "/latest/meta-data/public-ipv4", uuid=OTHER).text == ""
    assert get(client, "/latest/meta-data/nothing").status_code == 404
    assert get(client, "/latest/meta-data/public-keys/0/_name").status_code == 404
    assert get(client, "/2020-01-01/meta-data/").status_code == 404
    # the path cannot climb out of the tree
    assert get(client, "/latest/meta-data/../../openstack").text.startswith("2012-08-10")


def test_config_drive_says_the_same(client):
    """The config drive's documents come from the same builders as the service's."""
    inst, keypairs = metadata.instance_record(UUID)
    content = configdrive.instance_content(inst, keypairs)
    served = get(client, "/openstack/latest/meta_data.json").json()
    drive = dict(content["meta_data"])
    for md in (served, drive):
        md.pop("random_seed")
    assert drive == served
    assert content["network_data"] == get(client, "/openstack/latest/network_data.json").json()
    assert content["user_data"] == b"#!/bin/sh\necho hi\n"
    assert content["ec2_meta_data"]["instance-id"] == "i-0b3c1c55"
    files = configdrive.files(**content)
    assert json.loads(files["openstack/latest/vendor_data2.json"]) == {}
    assert json.loads(files["ec2/latest/meta-data.json"])["local-ipv4"] == "10.0.0.5"
