"""Object storage middleware features: large objects (SLO, DLO), temporary URLs,
bulk delete and archive extraction, FormPost, CORS.

Driven with python-swiftclient (its library and the `swift` CLI) as users do;
plain HTTP (httpx) only for what no client can express (tar upload, an HTML
form post, CORS preflights, multi-range reads).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from swiftclient import client as swift
from swiftclient.exceptions import ClientException
from swiftclient.utils import generate_temp_url

from tests.cloud import wait_for

SWIFT = str(Path(sys.executable).parent / "swift")
MiB = 1024 * 1024


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _md5(data: bytes | str) -> str:
    return hashlib.md5(data.encode() if isinstance(data, str) else data).hexdigest()


@pytest.fixture(scope="module")
def sw(cloud):
    env = cloud.openrc("demo")
    c = swift.Connection(
        authurl=cloud.url + "/identity/v3",
        user=env["OS_USERNAME"],
        key=env["OS_PASSWORD"],
        auth_version="3",
        os_options={
            "project_name": env["OS_PROJECT_NAME"],
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        },
    )
    c.get_auth()  # sets .url (the storage URL) and .token
    yield c
    c.close()


@pytest.fixture(scope="module")
def http(sw):
    """Plain HTTP at the storage URL, with the demo user's token."""
    client = httpx.Client(base_url=sw.url, headers={"X-Auth-Token": sw.token}, timeout=120)
    yield client
    client.close()


@pytest.fixture(scope="module")
def anon():
    client = httpx.Client(timeout=120)
    yield client
    client.close()


@pytest.fixture
def container(sw):
    """A fresh container, emptied and removed afterwards (segments containers too)."""
    made = []

    def make(prefix: str = "mw") -> str:
        name = _name(prefix)
        sw.put_container(name)
        made.append(name)
        return name

    yield make
    for name in made + [m + "_segments" for m in made]:
        try:
            for obj in sw.get_container(name, full_listing=True)[1]:
                sw.delete_object(name, obj["name"])
            sw.delete_container(name)
        except ClientException:
            pass


def swift_cli(cloud, *args, cwd=None):
    env = {**cloud.env, **cloud.openrc("demo")}
    r = subprocess.run(
        [SWIFT, *args], env=env, capture_output=True, text=True, timeout=300, cwd=cwd
    )
    assert r.returncode == 0, (
        f"swift {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    )
    return r


def _path(sw) -> str:
    """``/v1/AUTH_<project>`` as a client signs it (the storage URL path minus our prefix)."""
    return "/v1/" + urlparse(sw.url).path.split("/v1/", 1)[1]


# --------------------------------------------------------------------------- SLO


def test_slo_upload_download_range_copy_delete_with_swift_cli(cloud, sw, http, container, tmp_path):
    c = container("slo")
    data = os.urandom(3 * MiB + 12345)
    (tmp_path / "big.bin").write_bytes(data)
    swift_cli(cloud, "upload", "--use-slo", "--segment-size", "1M", c, "big.bin", cwd=tmp_path)

    headers = sw.head_object(c, "big.bin")
    assert headers["x-static-large-object"] == "True"
    assert int(headers["content-length"]) == len(data)
    segments = json.loads(sw.get_object(c, "big.bin", query_string="multipart-manifest=get")[1])
    assert len(segments) == 4 and all(s["name"].startswith(f"/{c}_segments/") for s in segments)
    assert headers["etag"] == f'"{_md5("".join(s["hash"] for s in segments))}"'

    _, body = sw.get_object(c, "big.bin")
    assert body == data
    swift_cli(cloud, "download", c, "big.bin", "-o", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == data

    # a range across the first segment boundary, then several ranges at once
    h, part = sw.get_object(c, "big.bin", headers={"Range": f"bytes={MiB - 5}-{MiB + 4}"})
    assert (
        part == data[MiB - 5 : MiB + 5]
        and h["content-range"] == f"bytes {MiB - 5}-{MiB + 4}/{len(data)}"
    )
    r = http.get(f"/{c}/big.bin", headers={"Range": "bytes=0-2,-3"})
    assert r.status_code == 206 and r.headers["content-type"].startswith("multipart/byteranges")
    assert data[:3] in r.content and data[-3:] in r.content

    # conditions apply to the assembled object's etag
    assert http.get(f"/{c}/big.bin", headers={"If-None-Match": headers["etag"]}).status_code == 304
    assert http.get(f"/{c}/big.bin", headers={"If-Match": '"nope"'}).status_code == 412

    # the listing shows the assembled size
    listed = {o["name"]: o for o in sw.get_container(c)[1]}
    assert listed["big.bin"]["bytes"] == len(data)

    # COPY makes an ordinary object of the assembled data
    sw.copy_object(c, "big.bin", f"/{c}/copy.bin")
    h, body = sw.get_object(c, "copy.bin")
    assert body == data and "x-static-large-object" not in h and h["etag"] == _md5(data)

    # `swift delete` of an SLO removes its segments too
    swift_cli(cloud, "delete", c, "big.bin")
    assert sw.get_container(c + "_segments")[1] == []


def _segments(sw, c: str, *datas: bytes) -> list[dict]:
    out = []
    for i, d in enumerate(datas):
        sw.put_object(c, f"seg/{i:02d}", d)
        out.append({"path": f"/{c}/seg/{i:02d}", "etag": _md5(d), "size_bytes": len(d)})
    return out


def test_slo_manifest_validation_errors(sw, http, container):
    c = container("slov")
    segs = _segments(sw, c, b"a" * 100, b"b" * 50, b"")
    bad = [
        {**segs[0], "etag": _md5(b"other")},  # Etag Mismatch
        {**segs[1], "size_bytes": 49},  # Size Mismatch
        {"path": f"/{c}/missing", "etag": None, "size_bytes": None},  # 404
        {"path": segs[2]["path"]},  # empty, and not the last segment
        {"path": segs[0]["path"], "range": "500-"},  # Unsatisfiable Range
        segs[0],
    ]
    r = http.put(
        f"/{c}/m?multipart-manifest=put",
        content=json.dumps(bad),
        headers={"Accept": "application/json"},
    )
    assert r.status_code == 400
    problems = {status for _, status in r.json()["Errors"]}
    assert problems == {
        "Etag Mismatch",
        "Size Mismatch",
        "404 Not Found",
        "Unsatisfiable Range",
        "Too small; each segment must be at least 1 byte.",
    }

    # syntax errors are listed per index, in Swift's words
    syntax = [
        {"path": "no-container"},
        7,
        {"path": f"/{c}/m"},
        {"path": segs[0]["path"], "range": "5-1"},
        {"path": segs[0]["path"], "bogus": 1},
    ]
    with pytest.raises(ClientException) as e:
        sw.put_object(c, "m", json.dumps(syntax), query_string="multipart-manifest=put")
    assert e.value.http_status == 400
    text = e.value.http_response_content.decode()
    for expected in (
        "Index 0: path does not refer to an object",
        "Index 1: not a JSON object",
        "Index 2: manifest must not include itself as a segment",
        "Index 3: invalid range",
        'Index 4: extraneous keys "bogus"',
    ):
        assert expected in text
    for body in (b"not json", b'{"path": "x"}'):
        assert http.put(f"/{c}/m?multipart-manifest=put", content=body).status_code == 400

    # an ETag sent with the manifest must be that of the segments
    with pytest.raises(ClientException) as e:
        sw.put_object(
            c, "m", json.dumps(segs[:2]), query_string="multipart-manifest=put", etag="0" * 32
        )
    assert e.value.http_status == 422
    assert (
        http.put(f"/{c}/m?multipart-manifest=put", content=json.dumps([segs[0]] * 1001)).status_code
        == 413
    )
    with pytest.raises(ClientException):
        sw.head_object(c, "m")  # nothing was stored


def test_slo_ranges_inline_data_nesting_and_raw_manifest(sw, http, container):
    c = container("slor")
    a, b = os.urandom(1000), os.urandom(500)
    segs = _segments(sw, c, a, b)
    manifest = [
        {**segs[0], "range": "10-19"},
        {"data": base64.b64encode(b"XYZ").decode()},
        {"path": segs[1]["path"], "range": "-5"},
    ]
    headers = {}
    sw.put_object(
        c,
        "ranged",
        json.dumps(manifest),
        query_string="multipart-manifest=put",
        headers={"Content-Type": "text/x-mine", "X-Object-Meta-Color": "blue"},
        response_dict=headers,
    )
    expected = a[10:20] + b"XYZ" + b[-5:]
    etag = _md5(f"{_md5(a)}:10-19;" + _md5(b"XYZ") + f"{_md5(b)}:495-499;")
    assert headers["headers"]["etag"] == f'"{etag}"'
    h, body = sw.get_object(c, "ranged")
    assert body == expected and h["etag"] == f'"{etag}"'
    assert h["content-type"] == "text/x-mine" and h["x-object-meta-color"] == "blue"
    _, part = sw.get_object(c, "ranged", headers={"Range": "bytes=8-13"})
    assert part == expected[8:14]

    # an SLO may be a segment of another
    sw.put_object(
        c,
        "nested",
        json.dumps([{"path": f"/{c}/ranged"}, {"path": segs[1]["path"], "range": "0-1"}]),
        query_string="multipart-manifest=put",
    )
    assert sw.get_object(c, "nested")[1] == expected + b[:2]

    # format=raw gives back what can be PUT again, to the same etag
    raw = sw.get_object(c, "ranged", query_string="multipart-manifest=get&format=raw")[1]
    assert json.loads(raw)[0] == {
        "path": segs[0]["path"],
        "etag": _md5(a),
        "size_bytes": 1000,
        "range": "10-19",
    }
    sw.put_object(c, "again", raw, query_string="multipart-manifest=put")
    assert sw.head_object(c, "again")["etag"] == f'"{etag}"'


def test_slo_delete_with_segments(sw, http, container):
    c = container("slod")
    segs = _segments(sw, c, b"1" * 10, b"2" * 10)
    sw.put_object(c, "m", json.dumps(segs), query_string="multipart-manifest=put")
    r = http.delete(f"/{c}/m?multipart-manifest=delete", headers={"Accept": "application/json"})
    assert r.status_code == 200
    assert r.json() == {
        "Number Deleted": 3,
        "Number Not Found": 0,
        "Response Status": "200 OK",
        "Response Body": "",
        "Errors": [],
    }
    assert sw.get_container(c)[1] == []
    # of something that is not an SLO: the bulk body says so
    sw.put_object(c, "plain", b"x")
    r = http.delete(f"/{c}/plain?multipart-manifest=delete")
    assert "Response Status: 400 Bad Request" in r.text and "Not an SLO manifest" in r.text
    assert sw.head_object(c, "plain")


# --------------------------------------------------------------------------- DLO


def test_dlo_upload_download_and_range(cloud, sw, http, container, tmp_path):
    c = container("dlo")
    data = os.urandom(2 * MiB + 777)
    (tmp_path / "dyn.bin").write_bytes(data)
    swift_cli(cloud, "upload", "--use-dlo", "--segment-size", "1M", c, "dyn.bin", cwd=tmp_path)

    h = sw.head_object(c, "dyn.bin")
    assert h["x-object-manifest"].startswith(f"{c}_segments/dyn.bin/")
    assert int(h["content-length"]) == len(data)
    seg_container, prefix = h["x-object-manifest"].split("/", 1)
    rows = sw.get_container(seg_container, prefix=prefix)[1]
    assert h["etag"] == f'"{_md5("".join(r["hash"] for r in rows))}"'
    assert sw.get_object(c, "dyn.bin")[1] == data
    _, part = sw.get_object(c, "dyn.bin", headers={"Range": f"bytes={MiB - 3}-{MiB + 2}"})
    assert part == data[MiB - 3 : MiB + 3]
    # the manifest itself, unassembled
    assert http.get(f"/{c}/dyn.bin?multipart-manifest=get").content == b""

    # a hand-made DLO follows what is under its prefix
    sw.put_object(c, "parts/1", b"one")
    sw.put_object(c, "parts/2", b"two")
    sw.put_object(c, "manual", b"", headers={"X-Object-Manifest": f"{c}/parts/"})
    assert sw.get_object(c, "manual")[1] == b"onetwo"
    sw.put_object(c, "parts/3", b"three")
    assert sw.get_object(c, "manual")[1] == b"onetwothree"
    with pytest.raises(ClientException) as e:
        sw.put_object(c, "bad", b"", headers={"X-Object-Manifest": "no-prefix"})
    assert e.value.http_status == 400

    swift_cli(cloud, "delete", c, "dyn.bin")  # removes the segments too
    assert sw.get_container(seg_container, prefix=prefix)[1] == []


# --------------------------------------------------------------------------- TempURL


@pytest.fixture
def tempurl_key(sw):
    key = "key-" + uuid.uuid4().hex
    sw.post_account({"X-Account-Meta-Temp-URL-Key": key})
    yield key
    sw.post_account({"X-Remove-Account-Meta-Temp-URL-Key": "x"})


def test_tempurl_get_put_head(cloud, sw, anon, container, tempurl_key):
    c = container("tu")
    sw.put_object(
        c,
        "doc.txt",
        b"secret bytes",
        headers={"X-Object-Meta-Private": "p", "X-Object-Meta-Public-Ok": "o"},
    )
    base = urlparse(sw.url)
    origin = f"{base.scheme}://{base.netloc}/object-store"
    path = f"{_path(sw)}/{c}/doc.txt"

    # `swift tempurl` signs the /v1/... path it is given
    url = swift_cli(cloud, "tempurl", "GET", "60", path, tempurl_key).stdout.strip()
    r = anon.get(origin + url)
    assert r.status_code == 200 and r.content == b"secret bytes"
    assert (
        r.headers["content-disposition"]
        == "attachment; filename=\"doc.txt\"; filename*=UTF-8''doc.txt"
    )
    assert "x-object-meta-private" not in r.headers and r.headers["x-object-meta-public-ok"] == "o"
    r = anon.get(origin + url + "&inline")
    assert r.headers["content-disposition"] == "inline"
    r = anon.get(origin + url + "&filename=report.pdf")
    assert r.headers["content-disposition"].startswith('attachment; filename="report.pdf"')
    assert anon.head(origin + url).status_code == 200  # HEAD may use a GET signature
    assert anon.delete(origin + url).status_code == 401  # other methods may not
    assert anon.put(origin + url, content=b"x").status_code == 401

    # Tempest signs the full path of its storage URL; sha1 hex and sha512 base64 digests
    full = f"{base.path}/{c}/doc.txt"
    url = generate_temp_url(full, 60, tempurl_key, "GET", digest="sha1")
    assert anon.get(f"{base.scheme}://{base.netloc}{url}").content == b"secret bytes"
    url = generate_temp_url(path, 60, tempurl_key, "GET", digest="sha512", iso8601=True)
    assert "sha512:" in url and "Z" in url.split("temp_url_expires=")[1]
    assert anon.get(origin + url).status_code == 200

    # PUT through a temp URL, then a HEAD with the PUT signature
    url = generate_temp_url(f"{_path(sw)}/{c}/upload.bin", 60, tempurl_key, "PUT")
    assert anon.put(origin + url, content=b"uploaded").status_code == 201
    assert anon.head(origin + url).status_code == 200
    assert sw.get_object(c, "upload.bin")[1] == b"uploaded"

    # a wrong signature, or a key of another container
    good = generate_temp_url(path, 60, tempurl_key, "GET")
    assert anon.get(origin + good.replace("temp_url_sig=", "temp_url_sig=0")).status_code == 401
    assert anon.get(origin + generate_temp_url(path, 60, "not-the-key", "GET")).status_code == 401


def test_tempurl_expiry_prefix_and_container_key(sw, anon, container, tempurl_key):
    c = container("tu2")
    sw.put_object(c, "pre/a", b"A")
    sw.put_object(c, "other", b"O")
    base = urlparse(sw.url)
    origin = f"{base.scheme}://{base.netloc}/object-store"

    # valid until it expires
    url = generate_temp_url(
        f"{_path(sw)}/{c}/pre/a", int(time.time()) + 2, tempurl_key, "GET", absolute=True
    )
    assert anon.get(origin + url).status_code == 200
    r = wait_for(lambda: (r := anon.get(origin + url)).status_code == 401 and r, 10,
                 "the temp URL to expire")
    assert "expired" in r.text.lower()

    # one signature for every object under a prefix
    url = generate_temp_url(f"{_path(sw)}/{c}/pre/", 60, tempurl_key, "GET", prefix=True)
    query = url.split("?", 1)[1]
    assert anon.get(f"{origin}{_path(sw)}/{c}/pre/a?{query}").content == b"A"
    assert anon.get(f"{origin}{_path(sw)}/{c}/other?{query}").status_code == 401

    # a container's own key signs only its objects
    sw.post_container(c, {"X-Container-Meta-Temp-URL-Key-2": "ckey"})
    url = generate_temp_url(f"{_path(sw)}/{c}/other", 60, "ckey", "GET")
    assert anon.get(origin + url).content == b"O"


# --------------------------------------------------------------------------- bulk


def test_bulk_delete(cloud, sw, http, container):
    c, d = container("bulk"), container("bulk")
    for i in range(3):
        sw.put_object(c, f"o {i}", b"x")
    sw.put_object(d, "keep", b"x")
    names = [f"/{c}/o%200", f"/{c}/o%201", f"/{c}/o%202", f"/{c}", f"/{c}/missing", f"/{d}"]
    headers, body = sw.post_account(
        headers={"Content-Type": "text/plain", "Accept": "application/json"},
        query_string="bulk-delete",
        data="\n".join(names).encode(),
    )
    result = json.loads(body)
    assert result["Number Deleted"] == 4 and result["Number Not Found"] == 1
    assert result["Response Status"] == "400 Bad Request"  # d is not empty
    assert result["Errors"] == [[f"/{d}", "409 Conflict"]]
    containers = [x["name"] for x in sw.get_account()[1]]
    assert c not in containers and d in containers

    # DELETE ?bulk-delete, plain-text answer, sent chunked as Swift does
    r = http.request("DELETE", "?bulk-delete", content=f"/{d}/keep\n/{d}\n")
    assert r.status_code == 200 and r.headers.get("transfer-encoding") == "chunked"
    assert "Number Deleted: 2\n" in r.text and "Response Status: 200 OK\n" in r.text

    # `swift delete` of a container with many objects uses bulk delete
    e = container("bulk")
    for i in range(25):
        sw.put_object(e, f"many/{i}", b"x")
    swift_cli(cloud, "delete", e)
    assert e not in [x["name"] for x in sw.get_account()[1]]


def _tar(files: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            if name.endswith(".txt"):
                info.pax_headers = {"SCHILY.xattr.user.meta.origin": "tarball"}
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_extract_archive(sw, http, container):
    c = container("tar")
    archive = _tar({"docs/a.txt": b"alpha", "docs/b.json": b"{}", "big.bin": os.urandom(2 * MiB)})
    r = http.put(
        f"/{c}/up/?extract-archive=tar.gz", content=archive, headers={"Accept": "application/json"}
    )
    assert r.status_code == 200
    assert r.json() == {
        "Response Status": "201 Created",
        "Response Body": "",
        "Number Files Created": 3,
        "Errors": [],
    }
    h, body = sw.get_object(c, "up/docs/a.txt")
    assert (
        body == b"alpha"
        and h["content-type"].startswith("text/plain")
        and h["x-object-meta-origin"] == "tarball"
    )
    assert sw.head_object(c, "up/docs/b.json")["content-type"] == "application/json"
    assert int(sw.head_object(c, "up/big.bin")["content-length"]) == 2 * MiB

    # at the account level the first directory names the container (created on demand)
    new = _name("tarc")
    r = http.put(
        "?extract-archive=tar", content=_tar({f"{new}/x": b"x", f"{c}/y": b"y", "top": b"t"}, "w")
    )
    assert "Number Files Created: 2" in r.text and "201 Created" in r.text
    assert sw.get_object(new, "x")[1] == b"x" and sw.get_object(c, "y")[1] == b"y"
    sw.delete_object(new, "x")
    sw.delete_container(new)

    r = http.put(f"/{c}?extract-archive=tar.gz", content=b"not a tar file" * 100)
    assert r.status_code == 200 and "400 Bad Request" in r.text and "Invalid Tar File" in r.text
    assert http.put(f"/{c}?extract-archive=zip", content=b"x").status_code == 400


# --------------------------------------------------------------------------- FormPost


def _form(path: str, key: str, files, redirect="", max_size=1024, max_count=10, expires=None):
    expires = expires or int(time.time()) + 600
    signature = hmac.new(
        key.encode(),
        f"{path}\n{redirect}\n{max_size}\n{max_count}\n{expires}".encode(),
        hashlib.sha256,
    ).hexdigest()
    fields = {
        "redirect": redirect,
        "max_file_size": str(max_size),
        "max_file_count": str(max_count),
        "expires": str(expires),
        "signature": signature,
    }
    boundary = "----onestack" + uuid.uuid4().hex
    out = b""
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    for field, filename, data in files:
        out += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
                f"Content-Type: text/plain\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    out += f"--{boundary}--\r\n".encode()
    return out, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def test_formpost(sw, anon, container, tempurl_key):
    c = container("form")
    url = f"{sw.url}/{c}/uploads/"
    path = urlparse(url).path

    body, headers = _form(
        path,
        tempurl_key,
        [("f1", "one.txt", b"first"), ("f2", "two.txt", b"second")],
        redirect="https://app.example/done",
    )
    r = anon.post(url, content=body, headers=headers)
    assert (
        r.status_code == 303
        and r.headers["location"] == "https://app.example/done?status=201&message="
    )
    assert sw.get_object(c, "uploads/one.txt")[1] == b"first"
    h, data = sw.get_object(c, "uploads/two.txt")
    assert data == b"second" and h["content-type"] == "text/plain"

    # no redirect: the status as text; the path signed as /v1/... works too
    body, headers = _form(
        "/v1/" + path.split("/v1/", 1)[1], tempurl_key, [("f", "three.txt", b"3")]
    )
    r = anon.post(url, content=body, headers=headers)
    assert r.status_code == 201 and r.text == "201 Created"

    body, headers = _form(path, tempurl_key, [("f", "huge.txt", b"x" * 2000)])
    r = anon.post(url, content=body, headers=headers)
    assert r.status_code == 400 and r.text == "FormPost: max_file_size exceeded"
    body, headers = _form(path, "wrong-key", [("f", "no.txt", b"x")])
    r = anon.post(url, content=body, headers=headers)
    assert r.status_code == 401 and r.text == "FormPost: Invalid Signature"
    body, headers = _form(
        path, tempurl_key, [("f", "late.txt", b"x")], expires=int(time.time()) - 1
    )
    assert anon.post(url, content=body, headers=headers).status_code == 401
    body, headers = _form(
        path, tempurl_key, [("a", "1.txt", b"1"), ("b", "2.txt", b"2")], max_count=1
    )
    r = anon.post(url, content=body, headers=headers)
    assert r.status_code == 400 and "Max File Count Exceeded" in r.text
    names = {o["name"] for o in sw.get_container(c)[1]}
    assert names == {"uploads/one.txt", "uploads/two.txt", "uploads/three.txt", "uploads/1.txt"}


# --------------------------------------------------------------------------- CORS


def test_cors_preflight_and_response_headers(sw, anon, http, container):
    c = container("cors")
    sw.put_object(c, "o", b"x", headers={"X-Object-Meta-Shape": "round"})
    sw.post_container(
        c,
        {
            "X-Container-Meta-Access-Control-Allow-Origin": "https://app.example https://b.example",
            "X-Container-Meta-Access-Control-Max-Age": "600",
            "X-Container-Meta-Access-Control-Expose-Headers": "X-Custom-One",
        },
    )
    url = f"{sw.url}/{c}/o"

    r = anon.options(
        url,
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "x-auth-token, content-type",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    assert r.headers["access-control-max-age"] == "600"
    assert "PUT" in r.headers["access-control-allow-methods"]
    assert r.headers["access-control-allow-headers"] == "x-auth-token, content-type"
    assert (
        anon.options(
            url, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
        ).status_code
        == 401
    )
    assert (
        anon.options(
            url, headers={"Origin": "https://app.example", "Access-Control-Request-Method": "TRACE"}
        ).status_code
        == 401
    )
    assert "GET" in anon.options(url).headers["allow"]  # not a preflight

    r = http.get(f"/{c}/o", headers={"Origin": "https://b.example"})
    assert r.headers["access-control-allow-origin"] == "https://b.example"
    exposed = r.headers["access-control-expose-headers"].split(", ")
    assert {"etag", "x-object-meta-shape", "x-custom-one"} <= set(exposed)
    assert (
        http.get(f"/{c}/missing", headers={"Origin": "https://b.example"}).headers[
            "access-control-allow-origin"
        ]
        == "https://b.example"
    )  # errors too
    assert (
        "access-control-allow-origin"
        not in http.get(f"/{c}/o", headers={"Origin": "https://evil.example"}).headers
    )

    sw.post_container(c, {"X-Container-Meta-Access-Control-Allow-Origin": "*"})
    r = http.head(f"/{c}", headers={"Origin": "https://anyone.example"})
    assert r.headers["access-control-allow-origin"] == "*"
