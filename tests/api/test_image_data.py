"""Image data: streaming, hashes, Range, format safety, interrupted uploads, quotas.

Uploads go through openstacksdk (what `openstack image create --file` uses);
what no client can express (a cut connection, a Range header, a malformed
patch) goes over plain HTTP with a token the sdk obtained.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import openstack
import pytest

from tests.cloud import Cloud

MiB = 1024 * 1024


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _connect(cloud: Cloud, user: str = "admin"):
    env = cloud.openrc(user)
    return openstack.connect(
        auth_url=env["OS_AUTH_URL"], username=env["OS_USERNAME"], password=env["OS_PASSWORD"],
        project_name=env["OS_PROJECT_NAME"], user_domain_name="Default", project_domain_name="Default",
    )


@pytest.fixture(scope="module")
def conn(cloud):
    c = _connect(cloud)
    yield c
    c.close()


@pytest.fixture(scope="module")
def http(cloud, conn):
    client = httpx.Client(base_url=f"{cloud.url}/image/v2", headers={"X-Auth-Token": conn.auth_token},
                          timeout=120)
    yield client
    client.close()


def _store_files(cloud: Cloud) -> set[str]:
    return {p.name for p in (cloud.state / "images").iterdir()}


def _queued(conn, disk_format="raw", **kw):
    return conn.image.create_image(name=_name("data"), disk_format=disk_format, container_format="bare",
                                   allow_duplicates=True, **kw)


def test_upload_download_hashes_and_range(conn, http):
    data = os.urandom(3 * MiB + 123)
    image = _queued(conn)
    assert image.status == "queued" and image.size is None
    r = http.put(f"/images/{image.id}/file", content=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204
    image = conn.image.get_image(image.id)
    assert image.status == "active" and image.size == len(data) == image.virtual_size
    assert image.checksum == hashlib.md5(data).hexdigest()
    assert image.hash_algo == "sha512" and image.hash_value == hashlib.sha512(data).hexdigest()
    # sdk download verifies the hashes itself
    assert conn.image.download_image(image).content == data
    r = http.get(f"/images/{image.id}/file")
    assert r.headers["Content-MD5"] == image.checksum and r.content == data
    r = http.get(f"/images/{image.id}/file", headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == data[100:200]
    assert r.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    r = http.get(f"/images/{image.id}/file", headers={"Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == data[-10:]
    r = http.get(f"/images/{image.id}/file", headers={"Range": f"bytes={len(data)}-"})
    assert r.status_code == 416
    # a second upload to an active image is refused
    r = http.put(f"/images/{image.id}/file", content=b"x", headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 409
    conn.image.delete_image(image)


def test_create_through_sdk_and_openstack_cli(cloud, conn, tmp_path):
    path = tmp_path / "disk.raw"
    path.write_bytes(os.urandom(MiB))
    image = conn.image.create_image(name=_name("sdk"), filename=str(path), disk_format="raw",
                                    container_format="bare", wait=True, visibility="private")
    assert conn.image.get_image(image.id).status == "active"
    names = [i.name for i in conn.image.images(visibility="private")]
    assert image.name in names
    conn.image.delete_image(image)


def test_chunked_upload(conn, http):
    image = _queued(conn)
    pieces = [os.urandom(100_000) for _ in range(30)]
    r = http.put(f"/images/{image.id}/file", content=iter(pieces),
                 headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204
    got = conn.image.get_image(image.id)
    assert got.size == 3_000_000 and got.checksum == hashlib.md5(b"".join(pieces)).hexdigest()
    conn.image.delete_image(image)


@pytest.fixture(scope="module")
def disks(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("disks")
    out = {}
    for name, args in {
        "qcow2": ["-f", "qcow2"],
        "vmdk": ["-f", "vmdk"],
        "vhd": ["-f", "vpc"],
        "vdi": ["-f", "vdi"],
        "vhdx": ["-f", "vhdx"],
    }.items():
        out[name] = d / f"disk.{name}"
        subprocess.run(["qemu-img", "create", "-q", *args, str(out[name]), "32M"], check=True)
    out["backed"] = d / "backed.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", "/etc/hostname",
                    str(out["backed"]), "32M"], check=True)
    out["datafile"] = d / "datafile.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", f"data_file={d / 'external.raw'}",
                    str(out["datafile"]), "32M"], check=True)
    out["descriptor"] = d / "flat.vmdk"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat",
                    str(out["descriptor"]), "1M"], check=True)
    return out


@pytest.mark.parametrize("fmt", ["qcow2", "vmdk", "vhd", "vdi", "vhdx"])
def test_real_disk_formats_are_accepted_with_virtual_size(conn, http, disks, fmt):
    image = _queued(conn, disk_format=fmt)
    r = http.put(f"/images/{image.id}/file", content=disks[fmt].read_bytes(),
                 headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    got = conn.image.get_image(image.id)
    assert got.status == "active"
    assert abs(got.virtual_size - 32 * MiB) < MiB  # vhd rounds to its CHS geometry
    conn.image.delete_image(image)


@pytest.mark.parametrize("case,declared,reason", [
    ("backed", "qcow2", "backing file"),
    ("datafile", "qcow2", "data file"),
    ("qcow2", "raw", "is in qcow2 format"),  # the classic attack: qcow2 data declared raw
    ("vmdk", "qcow2", "is in vmdk format"),
    ("descriptor", "vmdk", "descriptor"),
    ("random", "qcow2", "no recognisable header"),
])
def test_unsafe_or_mismatched_data_is_refused(cloud, conn, http, disks, case, declared, reason):
    data = os.urandom(70_000) if case == "random" else disks[case].read_bytes()
    before = _store_files(cloud)
    image = _queued(conn, disk_format=declared)
    r = http.put(f"/images/{image.id}/file", content=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 400 and reason in r.text, r.text
    got = conn.image.get_image(image.id)
    assert got.status == "killed" and got.size is None and got.checksum is None
    assert _store_files(cloud) == before  # no data left behind
    conn.image.delete_image(image)


def test_interrupted_upload_leaves_queued_and_no_data(cloud, conn):
    image = _queued(conn)
    before = _store_files(cloud)
    with socket.create_connection(("127.0.0.1", cloud.port)) as sock:
        sock.sendall((f"PUT /image/v2/images/{image.id}/file HTTP/1.1\r\nHost: x\r\n"
                      f"X-Auth-Token: {conn.auth_token}\r\nContent-Type: application/octet-stream\r\n"
                      f"Content-Length: {10 * MiB}\r\n\r\n").encode())
        sock.sendall(os.urandom(3 * MiB))
        deadline = time.monotonic() + 10
        while conn.image.get_image(image.id).status != "saving" and time.monotonic() < deadline:
            time.sleep(0.05)
    deadline = time.monotonic() + 20
    while conn.image.get_image(image.id).status == "saving" and time.monotonic() < deadline:
        time.sleep(0.1)
    got = conn.image.get_image(image.id)
    assert got.status == "queued" and got.size is None
    assert _store_files(cloud) == before
    conn.image.delete_image(image)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_one_gib_upload_streams_with_flat_memory(cloud, conn, http, tmp_path):
    pid = int((cloud.state / "onestack.pid").read_text())
    sparse = tmp_path / "sparse-1g.raw"
    with open(sparse, "wb") as f:
        f.truncate(1024 * MiB)
    image = _queued(conn)
    idle = _rss_kib(pid)
    peak, done = [idle], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_kib(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with open(sparse, "rb") as f:
            r = http.put(f"/images/{image.id}/file", content=f, timeout=300,
                         headers={"Content-Type": "application/octet-stream"})
    finally:
        done.set()
        sampler.join()
    assert r.status_code == 204
    got = conn.image.get_image(image.id)
    assert got.size == 1024 * MiB and got.status == "active"
    grew_mib = (peak[0] - idle) / 1024
    print(f"server RSS idle {idle / 1024:.0f} MiB, peak during 1 GiB upload +{grew_mib:.1f} MiB")
    assert grew_mib < 64, f"RSS grew {grew_mib:.0f} MiB during the upload: it is not streaming"
    conn.image.delete_image(image)
    assert image.id not in _store_files(cloud)


@pytest.fixture(scope="module")
def small_quota_cloud():
    c = Cloud("image-quota", extra_env={"ONESTACK_IMAGE_QUOTA_IMAGES": "2",
                                        "ONESTACK_IMAGE_QUOTA_BYTES": str(2 * MiB),
                                        "ONESTACK_IMAGE_HASH_ALGORITHM": "sha256"}).start()
    yield c
    c.stop()


def test_quotas_on_count_and_bytes(small_quota_cloud):
    cloud = small_quota_cloud
    conn = _connect(cloud, "demo")
    http = httpx.Client(base_url=f"{cloud.url}/image/v2", headers={"X-Auth-Token": conn.auth_token})
    a = _queued(conn)
    r = http.put(f"/images/{a.id}/file", content=os.urandom(MiB + MiB // 2))
    assert r.status_code == 204
    b = _queued(conn)
    # the second upload would pass 2 MiB in all: cut off, image back to queued, no data kept
    r = http.put(f"/images/{b.id}/file", content=os.urandom(MiB))
    assert r.status_code == 413 and "quota_bytes" in r.text
    assert conn.image.get_image(b.id).status == "queued"
    assert {p.name for p in (cloud.state / "images").iterdir()} == {a.id}
    # a third image is over the count quota: 413 naming the limit, nothing created
    r = cloud.openstack("image", "create", "--private", _name("third"), user="demo", check=False)
    assert r.returncode != 0 and "413" in r.stderr and "quota" in r.stderr.lower()
    assert len(list(conn.image.images(owner=conn.current_project_id))) == 2
    conn.image.delete_image(b)
    conn.image.delete_image(a)
    http.close()
    conn.close()


def test_configured_hash_algorithm(small_quota_cloud):
    conn = _connect(small_quota_cloud, "admin")
    data = os.urandom(100_000)
    image = conn.image.create_image(name=_name("sha256"), data=data, disk_format="raw", container_format="bare",
                                    allow_duplicates=True)
    got = conn.image.get_image(image.id)
    assert got.hash_algo == "sha256" and got.hash_value == hashlib.sha256(data).hexdigest()
    assert conn.image.download_image(got).content == data  # the sdk checks the sha256 itself
    conn.image.delete_image(image)
    conn.close()
