"""Object storage through python-swiftclient (the `swift` CLI and its library)
and openstacksdk: containers, objects, listings, metadata, ACLs, quotas,
versioning, copy, conditions, ranges, and the errors Swift gives."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlparse

import httpx
import openstack
import pytest
from swiftclient import client as swift
from swiftclient.exceptions import ClientException

from tests.cloud import wait_for

SWIFT = str(Path(sys.executable).parent / "swift")


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _conn(cloud, user="demo", project=None, password=None) -> swift.Connection:
    env = cloud.openrc(user) if password is None else cloud.openrc("demo")
    return swift.Connection(
        authurl=env["OS_AUTH_URL"], user=user if password else env["OS_USERNAME"],
        key=password or env["OS_PASSWORD"], auth_version="3",
        os_options={"project_name": project or env["OS_PROJECT_NAME"], "user_domain_name": "Default",
                    "project_domain_name": "Default"},
    )


@pytest.fixture(scope="module")
def sw(cloud):
    c = _conn(cloud)
    c.get_auth()  # sets .url and .token
    yield c
    c.close()


def swift_cli(cloud, *args, user="demo", env=None, check=True, cwd=None):
    run_env = {**cloud.env, **(env or cloud.openrc(user))}
    r = subprocess.run([SWIFT, *args], env=run_env, capture_output=True, text=True, timeout=180, cwd=cwd)
    if check and r.returncode != 0:
        raise AssertionError(f"swift {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


@pytest.fixture(scope="module")
def other(cloud):
    """A user of a third project, for ACLs and isolation."""
    with cloud.new_member("obj-other") as env:
        name = env["OS_USERNAME"]
        project_id = cloud.os_json("project", "show", name)["id"]
        user_id = cloud.os_json("user", "show", name)["id"]
        c = _conn(cloud, user=name, project=name, password=env["OS_PASSWORD"])
        yield {"env": env, "conn": c, "project_id": project_id, "user_id": user_id}
        c.close()


def test_info_and_catalog(cloud, sw):
    info = sw.get_capabilities()  # /info beside the storage URL, where `swift capabilities` looks
    assert info["swift"]["max_file_size"] > 0 and "slo" in info and "tempurl" in info
    url, _ = sw.get_auth()
    project_id = cloud.os_json("project", "show", "demo")["id"]
    assert url == f"{cloud.url}/object-store/v1/AUTH_{project_id}"


def test_swift_cli_post_upload_list_stat_download_delete(cloud, tmp_path):
    c = _name("cli")
    swift_cli(cloud, "post", c, "-m", "color:blue")
    (tmp_path / "dir").mkdir()
    data = os.urandom(300_000)
    (tmp_path / "dir" / "a.bin").write_bytes(data)
    (tmp_path / "dir" / "b.txt").write_text("hello swift\n")
    swift_cli(cloud, "upload", c, "dir", cwd=tmp_path)
    listed = swift_cli(cloud, "list", c).stdout.split()
    assert listed == ["dir/a.bin", "dir/b.txt"]
    stat = swift_cli(cloud, "stat", c).stdout
    assert "Objects: 2" in stat and "Meta Color: blue" in stat
    assert f"Bytes: {len(data) + 12}" in stat
    account = swift_cli(cloud, "stat").stdout
    assert "Containers:" in account
    out = tmp_path / "out"
    swift_cli(cloud, "download", c, "dir/a.bin", "-o", str(out))
    assert out.read_bytes() == data
    assert swift_cli(cloud, "list", c, "--prefix", "dir/b").stdout.split() == ["dir/b.txt"]
    swift_cli(cloud, "delete", c)
    assert c not in swift_cli(cloud, "list").stdout.split()


def test_listing_prefix_delimiter_formats_and_paging(sw):
    c = _name("list")
    sw.put_container(c)
    names = ["a/1", "a/2", "a/b/3", "b", "c/ü-utf8"]
    for n in names:
        sw.put_object(c, n, b"x" * len(n), content_type="text/plain")
    _, items = sw.get_container(c)
    assert [i["name"] for i in items] == sorted(names, key=lambda s: s.encode())
    assert items[0]["bytes"] == 3 and items[0]["hash"] == hashlib.md5(b"xxx").hexdigest()
    _, items = sw.get_container(c, delimiter="/")
    assert [i.get("name") or i.get("subdir") for i in items] == ["a/", "b", "c/"]
    _, items = sw.get_container(c, prefix="a/", delimiter="/")
    assert [i.get("name") or i.get("subdir") for i in items] == ["a/1", "a/2", "a/b/"]
    _, items = sw.get_container(c, limit=2, marker="a/1")
    assert [i["name"] for i in items] == ["a/2", "a/b/3"]
    _, items = sw.get_container(c, end_marker="a/b/3")
    assert [i["name"] for i in items] == ["a/1", "a/2"]
    _, items = sw.get_container(c, query_string="reverse=on")
    assert [i["name"] for i in items][0] == "c/ü-utf8"
    _, items = sw.get_container(c, path="a")
    assert [i["name"] for i in items] == ["a/1", "a/2"]
    # the sdk pages through listings too
    conn = openstack.connect(**_sdk_args(sw))
    assert sorted(o.name for o in conn.object_store.objects(c)) == sorted(names)
    token, url = sw.token, sw.url
    r = httpx.get(f"{url}/{c}", params={"format": "xml"}, headers={"X-Auth-Token": token})
    assert r.status_code == 200 and "<name>a/1</name>" in r.text and r.text.startswith("<?xml")
    r = httpx.get(f"{url}/{c}", params={"limit": 100000}, headers={"X-Auth-Token": token})
    assert r.status_code == 412
    for n in names:
        sw.delete_object(c, n)
    r = httpx.get(f"{url}/{c}", headers={"X-Auth-Token": token})
    assert r.status_code == 204 and r.text == ""
    sw.delete_container(c)


def _sdk_args(sw) -> dict:
    opts = sw.os_options
    return {"auth_url": sw.authurl, "username": sw.user, "password": sw.key,
            "project_name": opts["project_name"], "user_domain_name": "Default",
            "project_domain_name": "Default"}


def test_sdk_upload_download_metadata_round_trip(sw):
    conn = openstack.connect(**_sdk_args(sw))
    c = _name("sdk")
    conn.object_store.create_container(name=c)
    data = os.urandom(2 * 1024 * 1024 + 17)
    conn.object_store.upload_object(container=c, name="blob", data=data)
    assert conn.object_store.download_object("blob", container=c) == data
    conn.object_store.set_object_metadata("blob", container=c, owner="team-a")
    assert conn.object_store.get_object_metadata("blob", container=c).metadata["owner"] == "team-a"
    conn.object_store.set_container_metadata(c, purpose="tests")
    assert conn.object_store.get_container_metadata(c).metadata["purpose"] == "tests"
    conn.object_store.delete_object("blob", container=c)
    conn.object_store.delete_container(c)
    conn.close()


def test_object_errors_and_conditions(sw):
    c = _name("err")
    sw.put_container(c)
    token, url = sw.token, sw.url
    h = {"X-Auth-Token": token}
    etag = sw.put_object(c, "o", b"0123456789", content_type="text/plain")
    assert etag == hashlib.md5(b"0123456789").hexdigest()
    # a wrong ETag: 422 and nothing stored
    with pytest.raises(ClientException) as e:
        sw.put_object(c, "bad", b"data", etag="0" * 32)
    assert e.value.http_status == 422
    with pytest.raises(ClientException) as e:
        sw.head_object(c, "bad")
    assert e.value.http_status == 404
    # no length at all: 411
    raw = httpx.Request("PUT", f"{url}/{c}/nolen", headers=h)
    raw.headers.pop("content-length", None)
    r = httpx.Client().send(raw)
    assert r.status_code == 411
    # If-None-Match: * on an existing object: 412
    r = httpx.put(f"{url}/{c}/o", content=b"x", headers={**h, "If-None-Match": "*"})
    assert r.status_code == 412
    # ranges and conditions
    r = httpx.get(f"{url}/{c}/o", headers={**h, "Range": "bytes=2-4"})
    assert r.status_code == 206 and r.content == b"234" and r.headers["content-range"] == "bytes 2-4/10"
    r = httpx.get(f"{url}/{c}/o", headers={**h, "Range": "bytes=0-1,-2"})
    assert r.status_code == 206 and "multipart/byteranges" in r.headers["content-type"]
    assert b"01" in r.content and b"89" in r.content
    r = httpx.get(f"{url}/{c}/o", headers={**h, "Range": "bytes=20-"})
    assert r.status_code == 416
    assert httpx.get(f"{url}/{c}/o", headers={**h, "If-None-Match": etag}).status_code == 304
    assert httpx.get(f"{url}/{c}/o", headers={**h, "If-Match": "nope"}).status_code == 412
    r = httpx.head(f"{url}/{c}/o", headers=h)
    assert r.status_code == 200 and r.headers["content-length"] == "10" and r.headers["etag"] == etag
    # container not empty: 409; missing things: 404
    with pytest.raises(ClientException) as e:
        sw.delete_container(c)
    assert e.value.http_status == 409
    with pytest.raises(ClientException) as e:
        sw.get_object(c, "missing")
    assert e.value.http_status == 404
    with pytest.raises(ClientException) as e:
        sw.put_object(_name("nocontainer"), "o", b"x")
    assert e.value.http_status == 404
    with pytest.raises(ClientException) as e:
        sw.post_object(c, "o", {"X-Object-Meta-" + "k" * 200: "v"})
    assert e.value.http_status == 400
    assert httpx.delete(f"{url}/{c}/missing", headers=h).status_code == 404
    # content type detection, POST metadata, expiry
    sw.put_object(c, "page.html", b"<p>hi</p>", headers={"X-Detect-Content-Type": "true"})
    assert sw.head_object(c, "page.html")["content-type"].startswith("text/html")
    sw.post_object(c, "o", {"X-Object-Meta-Color": "red", "X-Delete-After": "3600"})
    head = sw.head_object(c, "o")
    assert head["x-object-meta-color"] == "red" and int(head["x-delete-at"]) > 0
    r = httpx.put(f"{url}/{c}/gone", content=b"x", headers={**h, "X-Delete-At": "1000"})
    assert r.status_code == 400
    for o in ("o", "page.html"):
        sw.delete_object(c, o)
    sw.delete_container(c)


def test_copy_and_versioning(sw):
    c, archive = _name("ver"), _name("archive")
    sw.put_container(archive)
    sw.put_container(c, headers={"X-Versions-Location": archive})
    sw.put_object(c, "doc", b"v1", headers={"X-Object-Meta-Rev": "1"})
    sw.put_object(c, "doc", b"v2")
    sw.put_object(c, "doc", b"v3")
    _, archived = sw.get_container(archive)
    assert len(archived) == 2 and archived[0]["name"].startswith("003doc/")
    sw.delete_object(c, "doc")  # the newest archived version comes back
    assert sw.get_object(c, "doc")[1] == b"v2"
    sw.delete_object(c, "doc")
    assert sw.get_object(c, "doc")[1] == b"v1"
    # server-side copies: COPY and X-Copy-From, metadata kept
    sw.copy_object(c, "doc", destination=f"/{c}/copy1")
    assert sw.get_object(c, "copy1")[1] == b"v1"
    assert sw.head_object(c, "copy1")["x-object-meta-rev"] == "1"
    sw.put_object(c, "copy2", b"", headers={"X-Copy-From": f"/{c}/doc"})
    assert sw.get_object(c, "copy2")[1] == b"v1"
    for o in ("doc", "copy1", "copy2"):
        sw.delete_object(c, o)
    sw.put_container(c, headers={"X-Remove-Versions-Location": "x"})
    for item in sw.get_container(archive)[1]:
        sw.delete_object(archive, item["name"])
    sw.delete_container(c)
    sw.delete_container(archive)


def test_quotas(cloud, sw):
    c = _name("quota")
    sw.put_container(c, headers={"X-Container-Meta-Quota-Bytes": "10", "X-Container-Meta-Quota-Count": "2"})
    sw.put_object(c, "a", b"12345")
    with pytest.raises(ClientException) as e:
        sw.put_object(c, "b", b"123456")
    assert e.value.http_status == 413
    sw.put_object(c, "b", b"1")
    with pytest.raises(ClientException) as e:
        sw.put_object(c, "c", b"1")
    assert e.value.http_status == 413
    assert [i["name"] for i in sw.get_container(c)[1]] == ["a", "b"]
    # account quota: only a reseller admin may set it
    with pytest.raises(ClientException) as e:
        sw.post_account({"X-Account-Meta-Quota-Bytes": "1"})
    assert e.value.http_status == 403
    for o in ("a", "b"):
        sw.delete_object(c, o)
    sw.delete_container(c)


def test_acl_lets_another_project_read_one_container_only(cloud, sw, other):
    shared, private = _name("shared"), _name("private")
    sw.put_container(shared, headers={"X-Container-Read": f"{other['project_id']}:{other['user_id']}"})
    sw.put_container(private)
    sw.put_object(shared, "note", b"for you")
    sw.put_object(private, "secret", b"not for you")
    oc = other["conn"]
    demo_account = sw.url
    body = swift.get_object(demo_account, oc.get_auth()[1], shared, "note")[1]
    assert body == b"for you"
    # a project:user read ACL lets it list the container too
    assert [i["name"] for i in swift.get_container(demo_account, oc.get_auth()[1], shared)[1]] == ["note"]
    for fn in (lambda t: swift.get_object(demo_account, t, private, "secret"),
               lambda t: swift.get_container(demo_account, t, private),
               lambda t: swift.get_account(demo_account, t),
               lambda t: swift.put_object(demo_account, t, shared, "x", b"no")):
        with pytest.raises(ClientException) as e:
            fn(oc.get_auth()[1])
        assert e.value.http_status == 403
    # a write ACL then lets it write into that container
    sw.post_container(shared, {"X-Container-Write": f"{other['project_id']}:*"})
    swift.put_object(demo_account, oc.get_auth()[1], shared, "reply", b"thanks")
    assert sw.get_object(shared, "reply")[1] == b"thanks"
    # public read: anonymous GET works, anonymous listing only with .rlistings
    sw.post_container(shared, {"X-Container-Read": ".r:*"})
    assert httpx.get(f"{demo_account}/{shared}/note").content == b"for you"
    assert httpx.get(f"{demo_account}/{shared}").status_code == 401
    sw.post_container(shared, {"X-Container-Read": ".r:*,.rlistings"})
    assert httpx.get(f"{demo_account}/{shared}").text.split() == ["note", "reply"]
    assert httpx.get(f"{demo_account}/{private}/secret").status_code == 401
    for c, o in ((shared, "note"), (shared, "reply"), (private, "secret")):
        sw.delete_object(c, o)
    sw.delete_container(shared)
    sw.delete_container(private)


def test_isolation_between_projects(cloud, sw, other):
    oc = other["conn"]
    token = oc.get_auth()[1]
    r = httpx.get(sw.url, headers={"X-Auth-Token": token})
    assert r.status_code == 403
    assert httpx.get(sw.url).status_code == 401
    assert httpx.get(sw.url, headers={"X-Auth-Token": "bogus"}).status_code == 401
    r = httpx.put(f"{sw.url}/{_name('intrude')}", headers={"X-Auth-Token": token})
    assert r.status_code == 403
    # its own account works
    oc.put_container("mine")
    assert [c["name"] for c in oc.get_account()[1]] == ["mine"]
    oc.delete_container("mine")


def test_account_listing_and_metadata(sw):
    c = _name("acct")
    sw.put_container(c)
    sw.put_object(c, "x", b"12345")
    sw.post_account({"X-Account-Meta-Owner": "demo-team"})
    head, containers = sw.get_account()
    assert head["x-account-meta-owner"] == "demo-team"
    assert int(head["x-account-object-count"]) >= 1 and int(head["x-account-bytes-used"]) >= 5
    row = next(i for i in containers if i["name"] == c)
    assert row["count"] == 1 and row["bytes"] == 5
    r = httpx.get(sw.url, params={"format": "json", "prefix": c}, headers={"X-Auth-Token": sw.token})
    assert json.loads(r.text)[0]["name"] == c
    sw.delete_object(c, "x")
    sw.delete_container(c)


@pytest.mark.parametrize("mode", ["--use-slo", "--use-dlo"])
def test_segmented_upload_of_50_mib(cloud, tmp_path, mode):
    c = _name("seg")
    data = os.urandom(50 * 1024 * 1024)
    (tmp_path / "big.bin").write_bytes(data)
    swift_cli(cloud, "upload", mode, "--segment-size", "10M", c, "big.bin", cwd=tmp_path)
    segments = swift_cli(cloud, "list", f"{c}_segments").stdout.split()
    assert len(segments) == 5
    stat = swift_cli(cloud, "stat", c, "big.bin").stdout
    assert f"Content Length: {len(data)}" in stat
    assert ("Manifest:" in stat) == (mode == "--use-dlo")
    out = tmp_path / "back.bin"
    # `swift download` checks the (manifest) ETag against the md5 of what arrives
    swift_cli(cloud, "download", c, "big.bin", "-o", str(out))
    assert hashlib.md5(out.read_bytes()).digest() == hashlib.md5(data).digest()
    swift_cli(cloud, "delete", c, "big.bin")  # deletes the segments too
    assert swift_cli(cloud, "list", f"{c}_segments").stdout.split() == []
    swift_cli(cloud, "delete", c)
    swift_cli(cloud, "delete", f"{c}_segments")


def test_sdk_prefix_acl_and_tempurl_until_expiry(sw, other):

    conn = openstack.connect(**_sdk_args(sw))
    c = _name("sdk2")
    conn.object_store.create_container(name=c)
    for n in ("logs/a", "logs/b", "logs/old/c", "readme"):
        conn.object_store.upload_object(container=c, name=n, data=n.encode())
    # (the sdk passes prefix but not delimiter; swiftclient's delimiter listing is tested above)
    listed = [o.name for o in conn.object_store.objects(c, prefix="logs/")]
    assert listed == ["logs/a", "logs/b", "logs/old/c"]
    # an ACL through the sdk lets the other project's user read this container only
    conn.object_store.set_container_metadata(c, read_ACL=f"{other['project_id']}:{other['user_id']}")
    token = other["conn"].get_auth()[1]
    assert swift.get_object(sw.url, token, c, "readme")[1] == b"readme"
    with pytest.raises(ClientException) as e:
        swift.get_account(sw.url, token)
    assert e.value.http_status == 403
    # a temp URL works until it expires
    key = uuid.uuid4().hex
    conn.object_store.set_account_temp_url_key(key)
    path = urlparse(sw.url).path + f"/{c}/readme"
    url = conn.object_store.generate_temp_url(path, 2, "GET", temp_url_key=key)
    base = sw.url[: sw.url.index(urlparse(sw.url).path)]
    assert httpx.get(base + url).content == b"readme"
    wait_for(lambda: httpx.get(base + url).status_code == 401, 10, "the temp URL to expire")
    for o in conn.object_store.objects(c):
        conn.object_store.delete_object(o, container=c)
    conn.object_store.delete_container(c)
    conn.close()
