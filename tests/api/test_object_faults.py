"""Fault tolerance of the object store on its three all-in-one devices: a lost
device, a corrupted copy, and two devices gone. Its own cloud, since these
tests break devices on purpose (agents off: passes are run with the CLI)."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
from swiftclient import client as swift
from swiftclient.exceptions import ClientException

from tests.cloud import Cloud


@pytest.fixture(scope="module")
def fcloud():
    c = Cloud("object-faults", extra_env={
        "ONESTACK_OBJECT_STORE_REPLICATOR_INTERVAL": "0",
        "ONESTACK_OBJECT_STORE_AUDITOR_INTERVAL": "0",
        "ONESTACK_OBJECT_STORE_EXPIRER_INTERVAL": "0",
    }).start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def sw(fcloud):
    env = fcloud.openrc("demo")
    # retries=0: a 503 is what the test wants to see, not swiftclient's retries
    c = swift.Connection(authurl=env["OS_AUTH_URL"], user="demo", key=env["OS_PASSWORD"], auth_version="3", retries=0,
                         os_options={"project_name": "demo", "user_domain_name": "Default",
                                     "project_domain_name": "Default"})
    yield c
    c.close()


def devices(cloud) -> list[Path]:
    return sorted((cloud.state / "object" / "devices").iterdir())


def data_files(dev: Path) -> list[Path]:
    return sorted((dev / "objects").rglob("*.data")) if (dev / "objects").exists() else []


def replicas_of(cloud, data: bytes) -> list[Path]:
    """The .data files (on any device) holding exactly these bytes."""
    return [f for d in devices(cloud) for f in data_files(d) if f.read_bytes() == data]


def test_three_replicas_on_three_devices(fcloud, sw):
    c = f"three-{uuid.uuid4().hex[:6]}"
    sw.put_container(c)
    data = os.urandom(50_000)
    sw.put_object(c, "obj", data)
    copies = replicas_of(fcloud, data)
    assert len(copies) == 3
    root = fcloud.state / "object" / "devices"
    assert len({p.relative_to(root).parts[0] for p in copies}) == 3  # one per device


def test_lost_device_reads_then_replicator_restores(fcloud, sw):
    c = f"lost-{uuid.uuid4().hex[:6]}"
    sw.put_container(c)
    blobs = {f"o{i}": os.urandom(20_000 + i) for i in range(8)}
    for name, data in blobs.items():
        sw.put_object(c, name, data)
    victim = devices(fcloud)[0]
    shutil.rmtree(victim)
    for name, data in blobs.items():  # every read still answers, from the other replicas
        assert sw.get_object(c, name)[1] == data
    assert [i["name"] for i in sw.get_container(c)[1]] == sorted(blobs)
    victim.mkdir()  # the replaced, empty disk
    r = fcloud.onestack("object", "replicate")
    assert r.returncode == 0, r.stderr
    for data in blobs.values():
        assert len(replicas_of(fcloud, data)) == 3
    assert data_files(victim)


def test_auditor_quarantines_a_corrupted_copy(fcloud, sw):
    c = f"rot-{uuid.uuid4().hex[:6]}"
    sw.put_container(c)
    data = os.urandom(40_000)
    sw.put_object(c, "obj", data)
    bad = replicas_of(fcloud, data)[0]
    corrupted = bytearray(data)
    corrupted[100] ^= 0xFF
    bad.write_bytes(bytes(corrupted))
    r = fcloud.onestack("object", "audit")
    assert r.returncode == 0, r.stderr
    root = fcloud.state / "object" / "devices"
    device = root / bad.relative_to(root).parts[0]
    assert list((device / "quarantined").rglob("*.data"))
    assert sw.get_object(c, "obj")[1] == data  # served from a good copy
    fcloud.onestack("object", "replicate")
    assert len(replicas_of(fcloud, data)) == 3


def test_two_devices_gone_writes_fail_cleanly(fcloud, sw):
    c = f"down-{uuid.uuid4().hex[:6]}"
    sw.put_container(c)
    gone = devices(fcloud)[:2]
    saved = [d.with_name(d.name + ".away") for d in gone]
    for d, s in zip(gone, saved, strict=True):
        d.rename(s)
    try:
        data = os.urandom(10_000)
        with pytest.raises(ClientException) as e:
            sw.put_object(c, "never", data)
        assert e.value.http_status == 503
        assert not replicas_of(fcloud, data)  # nothing half-written on the surviving device
    finally:
        for d, s in zip(gone, saved, strict=True):
            s.rename(d)
    with pytest.raises(ClientException) as e:
        sw.head_object(c, "never")
    assert e.value.http_status == 404
    assert [i["name"] for i in sw.get_container(c)[1]] == []


def test_reads_of_large_objects_after_rot_and_several_ranges(fcloud, sw):
    c = f"big-{uuid.uuid4().hex[:6]}"
    sw.put_container(c)
    data = os.urandom(3 * 1024 * 1024 + 5)  # larger than the check-at-open size
    sw.put_object(c, "big", data)
    for i, copy in enumerate(replicas_of(fcloud, data)[:2]):  # two of three copies rot, differently
        rotten = bytearray(copy.read_bytes())
        rotten[-3 - i] ^= 0xFF  # in the last piece, which a read holds back until the md5 is checked
        copy.write_bytes(bytes(rotten))
    # whichever copy is read first, what reaches the client is right: a copy that
    # fails its md5 is quarantined and the read resumes on another replica
    assert sw.get_object(c, "big")[1] == data
    assert sw.get_object(c, "big")[1] == data
    headers, body = sw.get_object(c, "big", headers={"Range": "bytes=0-9,2097152-2097161"})
    assert data[:10] in body and data[2097152:2097162] in body
    fcloud.onestack("object", "replicate")
    assert len(replicas_of(fcloud, data)) == 3
