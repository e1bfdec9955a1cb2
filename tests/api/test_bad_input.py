"""Bad input is refused the way each OpenStack service refuses it, in its own
error shape, and changes nothing: Glance errors in the format the client
accepts, server metadata over the project's ``metadata_items`` quota, a
network's ``mtu``, object-store names that are not UTF-8, and request bodies
sent as something other than JSON. Real clients where one can send the input,
httpx where none can."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from openstack import exceptions as sdkexc
from swiftclient import client as swift

from tests.cloud import wait_for


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def admin(cloud):
    conn = cloud.sdk("admin")
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def headers(admin) -> dict:
    return {"X-Auth-Token": admin.session.get_token()}


# ------------------------------------------------------------------ Glance's error format


def test_image_errors_come_in_the_format_the_client_accepts(cloud, admin, headers):
    missing = str(uuid.uuid4())
    url = f"{cloud.url}/image/v2/images/{missing}"
    r = httpx.get(url, headers={**headers, "Accept": "application/json"})
    assert r.status_code == 404 and r.headers["content-type"] == "application/json"
    # webob's JSON error: the explanation (with its <br /><br /> tail), the status line, the title
    assert r.json() == {"message": f"No image found with ID {missing}<br /><br />\n\n\n",
                        "code": "404 Not Found", "title": "Not Found"}

    r = httpx.get(url, headers={**headers, "Accept": "*/*"})  # what requests (and so the SDK) send
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "<h1>404 Not Found</h1>" in r.text and f"No image found with ID {missing}" in r.text

    r = httpx.get(url, headers={**headers, "Accept": "text/plain"})  # neither HTML nor JSON: plain text
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/plain")
    assert r.text.startswith("404 Not Found\n\n") and f"No image found with ID {missing}" in r.text

    # the SDK lists with Accept: application/json and reads the message out of the JSON body
    with pytest.raises(sdkexc.BadRequestException) as err:
        list(admin.image.images(marker=missing))
    assert f"marker '{missing}' not found" in err.value.details


def test_cli_shows_the_reason_a_protected_image_stays(cloud, tmp_path):
    path = tmp_path / "p.raw"
    path.write_bytes(b"\0" * 4096)
    name = _name("protected")
    img = cloud.os_json("image", "create", "--disk-format", "raw", "--container-format", "bare",
                        "--protected", "--file", str(path), name)
    try:
        r = cloud.openstack("image", "delete", name, check=False)
        assert r.returncode != 0
        assert f"Image {img['id']} is protected and cannot be deleted" in r.stderr
        r = cloud.openstack("image", "show", str(uuid.uuid4()), check=False)
        assert r.returncode != 0 and "No Image found" in r.stderr
        assert cloud.os_json("image", "show", name)["protected"] is True
    finally:
        cloud.openstack("image", "set", "--unprotected", name, check=False)
        cloud.openstack("image", "delete", name, check=False)


# ------------------------------------------------------------ metadata_items (maxServerMeta)


@pytest.fixture(scope="module")
def meta_project(cloud, tmp_path_factory):
    """A member's project whose metadata_items quota is 2, with an image and a network to boot from."""
    with cloud.new_member("meta") as env:
        cloud.openstack("quota", "set", "--properties", "2", env["OS_PROJECT_NAME"])
        path = tmp_path_factory.mktemp("meta") / "m.raw"
        path.write_bytes(b"\0" * 4096)
        img = cloud.os_json("image", "create", "--disk-format", "raw", "--container-format", "bare",
                            "--file", str(path), _name("meta-img"), env=env)
        net = _name("meta-net")
        cloud.openstack("network", "create", net, env=env)
        cloud.openstack("subnet", "create", "--network", net, "--subnet-range", "192.168.91.0/24", net,
                        env=env)
        try:
            yield env, img["id"], net
        finally:
            for s in cloud.os_json("server", "list", env=env):
                cloud.openstack("server", "delete", s["ID"], env=env, check=False)
            wait_for(lambda: not cloud.os_json("server", "list", env=env), 60, "servers deleted")
            cloud.openstack("network", "delete", net, env=env, check=False)
            cloud.openstack("image", "delete", img["id"], env=env, check=False)


def _props(n: int) -> list[str]:
    return [a for i in range(n) for a in ("--property", f"k{i}=v{i}")]


def test_server_metadata_over_the_quota_is_refused(cloud, meta_project):
    env, image, net = meta_project
    limits = cloud.os_json("limits", "show", "--absolute", env=env)
    assert {x["Name"]: x["Value"] for x in limits}["max_server_meta"] == 2

    # at create: 403, and no server is made
    name = _name("meta")
    r = cloud.openstack("server", "create", "--image", image, "--flavor", "m1.nano", "--network", net,
                        *_props(3), name, env=env, check=False)
    assert r.returncode != 0 and "Maximum number of metadata items exceeds 2" in r.stderr
    assert not [s for s in cloud.os_json("server", "list", env=env) if s["Name"] == name]

    cloud.openstack("server", "create", "--image", image, "--flavor", "m1.nano", "--network", net,
                    *_props(2), "--wait", name, env=env)
    # set: POST /metadata merges, and two plus one is over
    r = cloud.openstack("server", "set", "--property", "extra=x", name, env=env, check=False)
    assert r.returncode != 0 and "Maximum number of metadata items exceeds 2" in r.stderr
    # rebuild with metadata: the same rule
    r = cloud.openstack("server", "rebuild", "--image", image, *_props(3), name, env=env, check=False)
    assert r.returncode != 0 and "Maximum number of metadata items exceeds 2" in r.stderr
    # a snapshot's properties: Nova's image metadata limit
    r = cloud.openstack("server", "image", "create", "--name", _name("snap"), *_props(3), name, env=env,
                        check=False)
    assert r.returncode != 0 and "Image metadata limit exceeded" in r.stderr
    shown = cloud.os_json("server", "show", name, env=env)
    assert shown["properties"] == {"k0": "v0", "k1": "v1"}

    # the metadata routes: PUT (replace) and PUT of one item, through raw HTTP
    conn = cloud.sdk(env=env)
    try:
        sid, base = shown["id"], conn.compute.get_endpoint()
        h = {"X-Auth-Token": conn.session.get_token()}
        r = httpx.put(f"{base}/servers/{sid}/metadata", headers=h,
                      json={"metadata": {f"m{i}": "v" for i in range(3)}})
        assert r.status_code == 403
        assert r.json() == {"forbidden": {"code": 403, "message": "Maximum number of metadata items exceeds 2"}}
        r = httpx.put(f"{base}/servers/{sid}/metadata/third", headers=h, json={"meta": {"third": "v"}})
        assert r.status_code == 403
        assert conn.compute.get_server_metadata(sid).metadata == {"k0": "v0", "k1": "v1"}
    finally:
        conn.close()


# ------------------------------------------------------------------------- network mtu


def test_network_mtu_is_checked(cloud, headers):
    for mtu, why in (("-5", "'-5' should be non-negative"), ("9000", "Requested MTU is too big, maximum is 1450")):
        name = _name("mtu")
        r = cloud.openstack("network", "create", "--mtu", mtu, name, check=False)
        assert r.returncode != 0 and why in r.stderr
        assert cloud.openstack("network", "show", name, check=False).returncode != 0

    base = f"{cloud.url}/networking/v2.0/networks"
    for bad in ("abc", None, [], ""):
        name = _name("mtu")
        r = httpx.post(base, headers=headers, json={"network": {"name": name, "mtu": bad}})
        assert r.status_code == 400, (bad, r.text)
        err = r.json()["NeutronError"]
        assert err["type"] == "InvalidInput" and "is not an integer" in err["message"]
        assert cloud.openstack("network", "show", name, check=False).returncode != 0

    name = _name("mtu")
    net = cloud.os_json("network", "create", "--mtu", "1400", name)
    try:
        assert net["mtu"] == 1400
        r = cloud.openstack("network", "set", "--mtu", "-5", name, check=False)
        assert r.returncode != 0 and "should be non-negative" in r.stderr
        r = httpx.put(f"{base}/{net['id']}", headers=headers, json={"network": {"mtu": "abc"}})
        assert r.status_code == 400 and "'abc' is not an integer" in r.json()["NeutronError"]["message"]
        # below IPv4's minimum is allowed only while no IPv4 subnet needs more
        cloud.openstack("network", "set", "--mtu", "60", name)
        r = cloud.openstack("subnet", "create", "--network", name, "--subnet-range", "10.93.0.0/24", name,
                            check=False)
        assert r.returncode != 0 and "subnet requires a minimum of 68" in r.stderr
        cloud.openstack("network", "set", "--mtu", "1300", name)
        cloud.openstack("subnet", "create", "--network", name, "--subnet-range", "10.93.0.0/24", name)
        r = cloud.openstack("network", "set", "--mtu", "60", name, check=False)
        assert r.returncode != 0 and "subnet requires a minimum of 68" in r.stderr
        assert cloud.os_json("network", "show", name)["mtu"] == 1300
    finally:
        cloud.openstack("network", "delete", name, check=False)


# ------------------------------------------------------------- object names: UTF-8 only


def test_object_store_names_must_be_utf8(cloud, admin, headers):
    env = cloud.openrc("admin")
    sw = swift.Connection(authurl=env["OS_AUTH_URL"], user="admin", key=env["OS_PASSWORD"], auth_version="3",
                          retries=0, os_options={"project_name": "admin", "user_domain_name": "Default",
                                                 "project_domain_name": "Default"})
    account = sw.get_auth()[0]
    good = _name("utf8")
    sw.put_container(good)
    try:
        for path in (f"/bad-{good}%FF", f"/bad-{good}%C3%28", f"/{good}/obj%FF", f"/{good}/a%00b"):
            r = httpx.put(account + path, headers=headers, content=b"data")
            assert r.status_code == 412, (path, r.status_code, r.text)
            assert "Invalid UTF8 or contains NULL" in r.text
        assert not [c for c in sw.get_account()[1] if c["name"].startswith(f"bad-{good}")]
        assert sw.get_container(good)[1] == []
        # well-formed UTF-8 is a name like any other
        r = httpx.put(f"{account}/{good}/caf%C3%A9", headers=headers, content=b"data")
        assert r.status_code == 201
        assert [o["name"] for o in sw.get_container(good)[1]] == ["café"]
        # copies name their source and destination percent-encoded, as swiftclient sends them
        sw.copy_object(good, "café", destination=f"/{good}/thé")
        sw.put_object(good, "crème", contents=b"", headers={"X-Copy-From": f"/{good}/caf%C3%A9"})
        assert sw.get_object(good, "thé")[1] == sw.get_object(good, "crème")[1] == b"data"
        r = httpx.put(f"{account}/{good}/x", headers={**headers, "X-Copy-From": f"/{good}/caf%FF"})
        assert r.status_code == 412 and "Invalid UTF8" in r.text
        r = httpx.request("COPY", f"{account}/{good}/thé", headers={**headers, "Destination": good})
        assert r.status_code == 412 and "Destination header must be of the form" in r.text
    finally:
        for o in sw.get_container(good)[1]:
            sw.delete_object(good, o["name"])
        sw.delete_container(good)
        sw.close()


# ----------------------------------------------------------------- bodies that are not JSON


def test_identity_reads_only_json_bodies(cloud):
    env = cloud.openrc("admin")
    body = json.dumps({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"name": "Default"}, "password": env["OS_PASSWORD"]}}}}})
    url = cloud.url + "/identity/v3/auth/tokens"
    for kind in ("application/xml", "text/plain"):
        r = httpx.post(url, content=body, headers={"Content-Type": kind})
        assert r.status_code == 400, kind
        err = r.json()["error"]
        assert err["code"] == 400 and err["title"] == "Bad Request"
        assert err["message"].startswith("Expecting to find application/json in Content-Type header.")
    # JSON, a JSON type with parameters or no Content-Type at all are read
    for h in ({"Content-Type": "application/json; charset=UTF-8"}, {}):
        assert httpx.post(url, content=body, headers=h).status_code == 201


def test_compute_refuses_unsupported_content_types(cloud, admin, headers):
    base = admin.compute.get_endpoint()
    name = _name("kp")
    body = json.dumps({"keypair": {"name": name}})
    r = httpx.post(f"{base}/os-keypairs", content=body, headers={**headers, "Content-Type": "application/xml"})
    assert r.status_code == 415
    assert r.json() == {"badMediaType": {"code": 415, "message": "Unsupported Content-Type"}}
    assert cloud.openstack("keypair", "show", name, check=False).returncode != 0
    # Nova's own JSON type is read (text/plain too: Nova takes it for a server's default)
    r = httpx.post(f"{base}/os-keypairs", content=body,
                   headers={**headers, "Content-Type": "application/vnd.openstack.compute+json"})
    assert r.status_code == 200
    cloud.openstack("keypair", "delete", name)


def test_block_storage_refuses_unsupported_content_types(cloud, admin, headers):
    base = admin.block_storage.get_endpoint()
    name = _name("vol")
    body = json.dumps({"volume": {"size": 1, "name": name}})
    for kind in ("application/xml", "text/plain"):
        r = httpx.post(f"{base}/volumes", content=body, headers={**headers, "Content-Type": kind})
        assert r.status_code == 415, kind
        assert r.json() == {"badMediaType": {"code": 415, "message": "Unsupported Content-Type"}}
    assert not [v for v in cloud.os_json("volume", "list") if v["Name"] == name]


def test_block_storage_metadata_must_be_an_object(cloud, admin, headers):
    """`"metadata": []` is refused (Cinder's schema), not taken for no metadata; null is none."""
    base = admin.block_storage.get_endpoint()
    name = _name("vol")
    for path, body in (("/volumes", {"volume": {"size": 1, "name": name, "metadata": []}}),
                       ("/volumes", {"volume": {"size": 1, "name": name, "metadata": "a=b"}})):
        r = httpx.post(base + path, json=body, headers=headers)
        assert r.status_code == 400 and "metadata" in r.json()["badRequest"]["message"], r.text
    assert not [v for v in cloud.os_json("volume", "list") if v["Name"] == name]
    r = httpx.post(base + "/volumes", json={"volume": {"size": 1, "name": name, "metadata": None}},
                   headers=headers)
    assert r.status_code == 202, r.text
    vid = r.json()["volume"]["id"]
    wait_for(lambda: cloud.os_json("volume", "show", vid)["status"] == "available", 60, "volume")
    cloud.openstack("volume", "delete", vid)


def test_malformed_bodies_are_400s_not_500s(cloud, headers):
    """Wrong JSON types and empty bodies on the routes above: each service's 400."""
    bodies = [b"", b"[]", b'"x"', b"null", b"{", b"\xff\xfe", b'{"network": []}', b'{"server": 5}']
    for path in ("/networking/v2.0/networks", "/compute/v2.1/servers", "/volume/v3/volumes",
                 "/identity/v3/projects", "/image/v2/images"):
        for b in bodies:
            r = httpx.post(cloud.url + path, content=b, headers={**headers, "Content-Type": "application/json"})
            assert r.status_code == 400, (path, b, r.status_code, r.text)


# ------------------------------------------- names, big bodies and list parameters, everywhere

# (create path, list key, body with the name NAME in it, the service's error shape)
NAME = "NAME-PLACEHOLDER"
CREATES = [
    ("/identity/v3/projects", "projects", {"project": {"name": NAME, "domain_id": "default"}}, "keystone"),
    ("/identity/v3/users", "users", {"user": {"name": NAME, "domain_id": "default"}}, "keystone"),
    ("/compute/v2.1/os-keypairs", "keypairs", {"keypair": {"name": NAME}}, "nova"),
    ("/compute/v2.1/flavors", "flavors", {"flavor": {"name": NAME, "ram": 64, "vcpus": 1, "disk": 1}}, "nova"),
    ("/networking/v2.0/networks", "networks", {"network": {"name": NAME}}, "neutron"),
    ("/networking/v2.0/security-groups", "security_groups", {"security_group": {"name": NAME}}, "neutron"),
    ("/volume/v3/volumes", "volumes", {"volume": {"size": 1, "name": NAME}}, "nova"),
    ("/image/v2/images", "images", {"name": NAME, "disk_format": "raw", "container_format": "bare"}, "glance"),
    ("/orchestration/v1/{project}/stacks", "stacks",
     {"stack_name": NAME, "template": {"heat_template_version": "2018-08-31"}}, "heat"),
    ("/orchestration/v1/{project}/software_configs", "software_configs", {"name": NAME, "config": "x"}, "heat"),
]


@pytest.fixture(scope="module")
def api(cloud, admin, headers):
    with httpx.Client(base_url=cloud.url, headers=headers, timeout=60) as c:
        c.project = admin.current_project_id
        yield c


def _error(shape: str, r: httpx.Response) -> str:
    """The message of the error ``r``, after checking it is in the service's own shape."""
    if shape == "glance":  # webob's page, as Glance's
        assert r.headers["content-type"].startswith("text/html") and f"<h1>{r.status_code} " in r.text, r.text
        return r.text
    body = r.json()
    if shape == "keystone":
        assert body["error"]["code"] == r.status_code and body["error"]["title"], body
        return body["error"]["message"]
    if shape == "neutron":
        assert {"type", "message", "detail"} <= set(body["NeutronError"]), body
        return body["NeutronError"]["message"]
    if shape == "heat":
        assert body["code"] == r.status_code and body["title"] and body["error"]["type"], body
        return body["error"]["message"]
    (fault,) = body.values()  # Nova's and Cinder's {"badRequest": {"code": 400, "message": ...}}
    assert fault["code"] == r.status_code, body
    return fault["message"]


def _count(api, path: str, key: str) -> int:
    r = api.get(path.format(project=api.project))
    assert r.status_code == 200, r.text
    return len(r.json()[key])


def _post_named(api, path: str, body: dict, name_json: bytes) -> httpx.Response:
    """POST ``body`` with ``name_json`` (raw JSON text, quotes included) as its name."""
    raw = json.dumps(body).encode().replace(json.dumps(NAME).encode(), name_json)
    return api.post(path.format(project=api.project), content=raw, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("path,key,body,shape", CREATES, ids=[c[0].rsplit("/", 1)[1] for c in CREATES])
def test_names_that_are_not_text_or_too_long_are_refused(api, path, key, body, shape):
    """A NUL, half a surrogate pair, bytes that are not UTF-8 or 300 characters: each
    service's 400 (the length's naming the field), and nothing is made."""
    before = _count(api, path, key)
    for what, name_json in (("NUL", b'"a\\u0000b"'), ("surrogate", b'"a\\ud800b"'),
                            ("not UTF-8", b'"a\xff\xfeb"'), ("long", b'"' + b"n" * 300 + b'"')):
        r = _post_named(api, path, body, name_json)
        assert r.status_code == 400, (what, r.status_code, r.text)
        message = _error(shape, r)
        if what == "long":
            assert "name" in message, message
    assert _count(api, path, key) == before


def test_a_surrogate_pair_is_text(api):
    """An escaped surrogate pair is one character (here an emoji), and is taken."""
    r = _post_named(api, "/networking/v2.0/networks", {"network": {"name": NAME}}, b'"net-\\ud83d\\ude00"')
    assert r.status_code == 201, r.text
    assert r.json()["network"]["name"] == "net-\U0001F600"
    api.delete(f"/networking/v2.0/networks/{r.json()['network']['id']}")


@pytest.mark.parametrize("path,key,body,shape", CREATES, ids=[c[0].rsplit("/", 1)[1] for c in CREATES])
def test_a_5_mb_body_is_413(api, path, key, body, shape):
    big = json.dumps({**body, "padding": "x" * (5 * 1024 * 1024)})
    r = api.post(path.format(project=api.project), content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text[:300]
    assert "larger than" in _error(shape, r)


# (list path, the service's shape, its answer to a marker naming nothing: Nova and Glance 400,
# Neutron and Cinder 404 as theirs do)
LISTS = [
    ("/compute/v2.1/servers", "nova", 400),
    ("/compute/v2.1/flavors", "nova", 400),
    ("/networking/v2.0/networks", "neutron", 404),
    ("/networking/v2.0/ports", "neutron", 404),
    ("/volume/v3/volumes", "nova", 404),
    ("/volume/v3/snapshots", "nova", 404),
    ("/image/v2/images", "glance", 400),
    ("/orchestration/v1/{project}/stacks", "heat", 404),
]


@pytest.mark.parametrize("path,shape,no_marker", LISTS, ids=[p[0].split("/", 2)[1] + p[0].rsplit("/", 1)[1]
                                                           for p in LISTS])
def test_list_limits_and_markers(api, path, shape, no_marker):
    """A negative or non-numeric ``limit`` is a 400; a huge one is no limit at all; a
    ``marker`` naming nothing (a UUID, garbage, 300 characters) is the service's 400 or 404."""
    url = path.format(project=api.project)
    for limit in ("-1", "abc", "-99999999999999999999999"):
        r = api.get(url, params={"limit": limit})
        assert r.status_code == 400, (limit, r.status_code, r.text)
        assert "limit" in _error(shape, r).lower()
    assert api.get(url, params={"limit": "99999999999999999999999"}).status_code == 200
    for marker in (str(uuid.uuid4()), "garbage", "x" * 300):
        r = api.get(url, params={"marker": marker, "limit": "2"})
        assert r.status_code == no_marker, (marker, r.status_code, r.text)
        assert "marker" in _error(shape, r).lower() or marker in _error(shape, r)
