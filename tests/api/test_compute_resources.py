"""Compute resources other than servers, through the real `openstack` CLI,
openstacksdk and raw HTTP: flavors (access, extra specs), keypairs, quotas and
limits, services, hypervisors, availability zones, server groups and usage,
with their microversion variants and Nova's error bodies.

The cloud of this module runs the fake virt driver with two extra simulated
hosts, so there are three nova-compute services and hypervisors.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import time
import uuid

import httpx
import openstack
import pytest
from openstack import exceptions as sdkexc

from tests.cloud import Cloud


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _conn(env: dict) -> openstack.connection.Connection:
    return openstack.connect(
        auth_url=env["OS_AUTH_URL"], username=env["OS_USERNAME"], password=env["OS_PASSWORD"],
        project_name=env["OS_PROJECT_NAME"], user_domain_name="Default", project_domain_name="Default",
        region_name="RegionOne", identity_api_version="3",
    )


class Nova:
    """Raw HTTP to the compute API with one user's token."""

    def __init__(self, cloud: Cloud, conn):
        self.base = f"{cloud.url}/compute/v2.1"
        self.conn = conn

    def __call__(self, method: str, path: str, version: str | None = None, **kw) -> httpx.Response:
        headers = {"X-Auth-Token": self.conn.auth_token, **kw.pop("headers", {})}
        if version:
            headers["OpenStack-API-Version"] = f"compute {version}"
        return httpx.request(method, self.base + path, headers=headers, timeout=60, **kw)


@pytest.fixture(scope="module")
def cc():
    """A cloud of three fake compute hosts (this machine's name, fake-1, fake-2)."""
    c = Cloud("compute-res", extra_env={"ONESTACK_COMPUTE_DRIVER": "fake",
                                        "ONESTACK_COMPUTE_FAKE_HOSTS": "2"}).start()
    c.openrc = functools.lru_cache(maxsize=None)(c.openrc)  # one `onestack openrc` per user, not per command
    yield c
    c.stop()


@pytest.fixture(scope="module")
def admin(cc):
    c = _conn(cc.openrc("admin"))
    yield c
    c.close()


@pytest.fixture(scope="module")
def nova(cc, admin):
    return Nova(cc, admin)


@pytest.fixture(scope="module")
def member(cc):
    """A member of a fresh project: (env for the CLI, sdk connection, raw HTTP)."""
    with cc.new_member("cr-member") as env:
        c = _conn(env)
        yield env, c, Nova(cc, c)
        c.close()


@pytest.fixture(scope="module")
def computes(nova):
    """The nova-compute services, once all three hosts have registered."""
    deadline = time.monotonic() + 60
    while True:
        svcs = [s for s in nova("GET", "/os-services?binary=nova-compute", "2.53").json()["services"]]
        if len(svcs) >= 3 and all(s["state"] == "up" for s in svcs):
            return svcs
        if time.monotonic() > deadline:
            raise AssertionError(f"compute services did not come up: {svcs}")
        time.sleep(0.5)


def _fault(r: httpx.Response, status: int, name: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert list(body) == [name], body
    assert body[name]["code"] == status
    return body[name]["message"]


# ---------------------------------------------------------------- flavors


def test_flavor_cli_lifecycle(cc, member):
    env, _, mhttp = member
    name = _name("flv")
    f = cc.os_json("flavor", "create", "--ram", "256", "--disk", "2", "--vcpus", "2", "--ephemeral", "1",
                   "--swap", "64", "--private", "--description", "lab flavor", "--property",
                   "hw:cpu_policy=shared", name)
    assert f["ram"] == 256 and f["vcpus"] == 2 and f["disk"] == 2
    assert f["OS-FLV-EXT-DATA:ephemeral"] == 1 and f["swap"] == 64
    assert f["os-flavor-access:is_public"] is False and f["description"] == "lab flavor"
    assert f["properties"] == {"hw:cpu_policy": "shared"}
    uuid.UUID(f["id"])  # "auto" ids are uuids
    # private and no access yet: the member neither lists nor sees it
    assert name not in [x["Name"] for x in cc.os_json("flavor", "list", env=env)]
    assert cc.openstack("flavor", "show", f["id"], env=env, check=False).returncode != 0
    assert _fault(mhttp("GET", f"/flavors/{f['id']}"), 404, "itemNotFound") == \
        f"Flavor {f['id']} could not be found."
    # admins list it with --all (is_public=None) and see it with --private
    assert name in [x["Name"] for x in cc.os_json("flavor", "list", "--all")]
    assert name in [x["Name"] for x in cc.os_json("flavor", "list", "--private")]
    assert name not in [x["Name"] for x in cc.os_json("flavor", "list")]
    # access for the member's project, properties set/unset
    cc.openstack("flavor", "set", "--project", env["OS_PROJECT_NAME"], "--property", "a=b", name)
    shown = cc.os_json("flavor", "show", name)
    assert shown["properties"] == {"hw:cpu_policy": "shared", "a": "b"}
    assert len(shown["access_project_ids"]) == 1
    assert name in [x["Name"] for x in cc.os_json("flavor", "list", env=env)]
    assert cc.os_json("flavor", "show", name, env=env)["id"] == f["id"]
    cc.openstack("flavor", "unset", "--property", "a", "--project", env["OS_PROJECT_NAME"], name)
    shown = cc.os_json("flavor", "show", name)
    assert shown["properties"] == {"hw:cpu_policy": "shared"} and shown["access_project_ids"] == []
    cc.openstack("flavor", "set", "--description", "changed", name)
    assert cc.os_json("flavor", "show", name)["description"] == "changed"
    # members may not manage flavors
    r = cc.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1", _name("x"), env=env,
                     check=False)
    assert r.returncode != 0 and "403" in r.stderr
    # duplicate name or id: 409
    r = cc.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1", name, check=False)
    assert r.returncode != 0 and "409" in r.stderr
    r = cc.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1", "--id", f["id"],
                     _name("y"), check=False)
    assert r.returncode != 0 and "409" in r.stderr and "already exists" in r.stderr
    cc.openstack("flavor", "delete", name)
    assert cc.openstack("flavor", "show", name, check=False).returncode != 0


def test_flavor_sdk(admin):
    names = {f.name for f in admin.compute.flavors()}
    assert {"m1.tiny", "m1.nano", "cirros256", "ds512M"} <= names
    f = admin.compute.create_flavor(name=_name("sdk"), ram=128, vcpus=1, disk=1, id="sdk-" + uuid.uuid4().hex[:6],
                                    rxtx_factor=2.0)
    try:
        got = admin.compute.get_flavor(f.id)
        assert got.ram == 128 and got.rxtx_factor == 2.0 and got.is_public is True
        admin.compute.create_flavor_extra_specs(f, {"k1": "v1", "k2": "v2"})
        assert admin.compute.fetch_flavor_extra_specs(f).extra_specs == {"k1": "v1", "k2": "v2"}
        assert admin.compute.get_flavor_extra_specs_property(f, "k1") == "v1"
        admin.compute.update_flavor_extra_specs_property(f, "k1", "v9")
        admin.compute.delete_flavor_extra_specs_property(f, "k2")
        assert admin.compute.fetch_flavor_extra_specs(f).extra_specs == {"k1": "v9"}
        # the smallest flavors by RAM, through minRam
        assert all(x.ram >= 4096 for x in admin.compute.flavors(min_ram=4096))
    finally:
        admin.compute.delete_flavor(f)
    with pytest.raises(sdkexc.NotFoundException):
        admin.compute.get_flavor(f.id)


def test_flavor_microversions_and_listing(nova):
    old = nova("GET", "/flavors/1").json()["flavor"]
    assert old["swap"] == "" and "description" not in old and "extra_specs" not in old
    assert old["links"][0]["rel"] == "self" and old["links"][0]["href"].endswith("/compute/v2.1/flavors/1")
    assert old["links"][1]["href"].endswith("/compute/flavors/1")
    assert set(old) == {"id", "name", "links", "ram", "disk", "vcpus", "swap", "OS-FLV-EXT-DATA:ephemeral",
                        "OS-FLV-DISABLED:disabled", "os-flavor-access:is_public", "rxtx_factor"}
    v55 = nova("GET", "/flavors/1", "2.55").json()["flavor"]
    assert "description" in v55 and "extra_specs" not in v55
    v61 = nova("GET", "/flavors/1", "2.61").json()["flavor"]
    assert v61["extra_specs"] == {} and v61["swap"] == ""
    assert nova("GET", "/flavors/1", "2.75").json()["flavor"]["swap"] == 0
    brief = nova("GET", "/flavors", "2.55").json()["flavors"][0]
    assert set(brief) == {"id", "name", "links", "description"}
    # microversion headers on answers, errors too
    r = nova("GET", "/flavors/1", "2.61")
    assert r.headers["OpenStack-API-Version"] == "compute 2.61"
    assert r.headers["X-OpenStack-Nova-API-Version"] == "2.61"
    r = nova("GET", "/flavors/1", headers={"X-OpenStack-Nova-API-Version": "2.75"})
    assert r.headers["X-OpenStack-Nova-API-Version"] == "2.75" and r.json()["flavor"]["swap"] == 0
    assert nova("GET", "/flavors/1", "2.80").status_code == 406
    # paging: limit + marker, a next link when the page is full
    r = nova("GET", "/flavors?limit=2").json()
    assert len(r["flavors"]) == 2 and r["flavors_links"][0]["rel"] == "next"
    assert f"marker={r['flavors'][-1]['id']}" in r["flavors_links"][0]["href"]
    every = [f["id"] for f in nova("GET", "/flavors").json()["flavors"]]
    seen, marker = [], None
    while True:
        page = nova("GET", "/flavors/detail", params={"limit": 5, **({"marker": marker} if marker else {})}).json()
        seen += [f["id"] for f in page["flavors"]]
        if "flavors_links" not in page:
            break
        marker = page["flavors"][-1]["id"]
    assert seen == every
    _fault(nova("GET", "/flavors?marker=nope"), 400, "badRequest")
    # filters and sorting
    big = nova("GET", "/flavors/detail?minRam=8192&minDisk=100").json()["flavors"]
    assert big and all(f["ram"] >= 8192 and f["disk"] >= 100 for f in big)
    _fault(nova("GET", "/flavors?minRam=lots"), 400, "badRequest")
    rams = [f["ram"] for f in nova("GET", "/flavors/detail?sort_key=memory_mb&sort_dir=desc").json()["flavors"]]
    assert rams == sorted(rams, reverse=True)
    assert _fault(nova("GET", "/flavors?sort_key=bogus"), 400, "badRequest") == "Sort key supplied was not valid."
    _fault(nova("GET", "/flavors?sort_dir=up"), 400, "badRequest")
    _fault(nova("GET", "/flavors?is_public=maybe"), 400, "badRequest")
    # 2.75 refuses unknown query parameters; before, they are ignored
    assert nova("GET", "/flavors?foo=1", "2.74").status_code == 200
    _fault(nova("GET", "/flavors?foo=1", "2.75"), 400, "badRequest")


def test_flavor_create_update_validation(nova, member):
    _, _, mhttp = member
    body = {"flavor": {"name": _name("v"), "ram": 64, "vcpus": 1, "disk": 0}}
    _fault(nova("POST", "/flavors", json={"flavor": {**body["flavor"], "ram": 0}}), 400, "badRequest")
    _fault(nova("POST", "/flavors", json={"flavor": {**body["flavor"], "name": " lead"}}), 400, "badRequest")
    _fault(nova("POST", "/flavors", json={"flavor": {**body["flavor"], "id": "a/b"}}), 400, "badRequest")
    _fault(nova("POST", "/flavors", json={"flavor": {**body["flavor"], "rxtx_factor": 0}}), 400, "badRequest")
    _fault(nova("POST", "/flavors", json={"flavor": {"name": "x"}}), 400, "badRequest")
    # description is a 2.55 attribute
    _fault(nova("POST", "/flavors", json={"flavor": {**body["flavor"], "description": "d"}}), 400, "badRequest")
    msg = _fault(mhttp("POST", "/flavors", json=body), 403, "forbidden")
    assert "os-flavor-manage:create" in msg
    # strings of digits are accepted, as in Nova
    r = nova("POST", "/flavors", "2.55", json={"flavor": {**body["flavor"], "ram": "96", "id": 4242,
                                                          "description": "first",
                                                          "os-flavor-access:is_public": "false"}})
    assert r.status_code == 200, r.text
    f = r.json()["flavor"]
    assert f["id"] == "4242" and f["ram"] == 96 and f["description"] == "first"
    assert f["os-flavor-access:is_public"] is False
    try:
        assert nova("PUT", "/flavors/4242", "2.54", json={"flavor": {"description": "x"}}).status_code == 404
        r = nova("PUT", "/flavors/4242", "2.61", json={"flavor": {"description": "second"}})
        assert r.status_code == 200 and r.json()["flavor"]["description"] == "second"
        assert r.json()["flavor"]["extra_specs"] == {}
        _fault(nova("PUT", "/flavors/4242", "2.55", json={"flavor": {"name": "x"}}), 400, "badRequest")
        _fault(mhttp("PUT", "/flavors/4242", "2.55", json={"flavor": {"description": "x"}}), 403, "forbidden")
    finally:
        assert nova("DELETE", "/flavors/4242").status_code == 202
    _fault(nova("DELETE", "/flavors/4242"), 404, "itemNotFound")


def test_flavor_access_and_extra_specs_http(nova, member, admin):
    env, mconn, mhttp = member
    project = mconn.current_project_id
    assert _fault(nova("POST", "/flavors/1/action", "2.7", json={"addTenantAccess": {"tenant": project}}),
                  409, "conflictingRequest") == "Can not add access to a public flavor."
    # before 2.7 a public flavor takes access rows silently
    r = nova("POST", "/flavors/1/action", json={"addTenantAccess": {"tenant": project}})
    assert r.json() == {"flavor_access": [{"flavor_id": "1", "tenant_id": project}]}
    assert nova("POST", "/flavors/1/action", json={"removeTenantAccess": {"tenant": project}}).json() == \
        {"flavor_access": []}
    assert _fault(nova("GET", "/flavors/1/os-flavor-access"), 404, "itemNotFound") == \
        "Access list not available for public flavors."
    r = nova("POST", "/flavors", json={"flavor": {"name": _name("acc"), "ram": 64, "vcpus": 1, "disk": 0,
                                                  "os-flavor-access:is_public": False}})
    fid = r.json()["flavor"]["id"]
    try:
        assert nova("GET", f"/flavors/{fid}/os-flavor-access").json() == {"flavor_access": []}
        r = nova("POST", f"/flavors/{fid}/action", json={"addTenantAccess": {"tenant": project}})
        assert r.json() == {"flavor_access": [{"flavor_id": fid, "tenant_id": project}]}
        _fault(nova("POST", f"/flavors/{fid}/action", json={"addTenantAccess": {"tenant": project}}),
               409, "conflictingRequest")
        assert _fault(nova("POST", f"/flavors/{fid}/action",
                           json={"addTenantAccess": {"tenant": uuid.uuid4().hex}}), 400, "badRequest") \
            .endswith("is not a valid project.")
        _fault(nova("POST", f"/flavors/{fid}/action", json={"frobnicate": {}}), 400, "badRequest")
        _fault(mhttp("POST", f"/flavors/{fid}/action", json={"removeTenantAccess": {"tenant": project}}),
               403, "forbidden")
        # the member now sees the flavor, and its extra specs, but may not change them
        assert mhttp("GET", f"/flavors/{fid}").status_code == 200
        assert nova("POST", f"/flavors/{fid}/os-extra_specs",
                    json={"extra_specs": {"hw:numa_nodes": 1, "trait:X": "required"}}).json() == \
            {"extra_specs": {"hw:numa_nodes": "1", "trait:X": "required"}}
        assert mhttp("GET", f"/flavors/{fid}/os-extra_specs").json()["extra_specs"]["hw:numa_nodes"] == "1"
        assert mhttp("GET", f"/flavors/{fid}", "2.61").json()["flavor"]["extra_specs"] == \
            {"hw:numa_nodes": "1", "trait:X": "required"}
        _fault(mhttp("PUT", f"/flavors/{fid}/os-extra_specs/hw:numa_nodes", json={"hw:numa_nodes": "2"}),
               403, "forbidden")
        assert nova("GET", f"/flavors/{fid}/os-extra_specs/hw:numa_nodes").json() == {"hw:numa_nodes": "1"}
        assert nova("PUT", f"/flavors/{fid}/os-extra_specs/hw:numa_nodes",
                    json={"hw:numa_nodes": "2"}).json() == {"hw:numa_nodes": "2"}
        assert _fault(nova("PUT", f"/flavors/{fid}/os-extra_specs/hw:numa_nodes", json={"other": "2"}),
                      400, "badRequest") == "Request body and URI mismatch"
        _fault(nova("PUT", f"/flavors/{fid}/os-extra_specs/a", json={"a": "1", "b": "2"}), 400, "badRequest")
        _fault(nova("POST", f"/flavors/{fid}/os-extra_specs", json={"extra_specs": {"bad/key": "1"}}),
               400, "badRequest")
        assert nova("DELETE", f"/flavors/{fid}/os-extra_specs/hw:numa_nodes").status_code == 200
        assert _fault(nova("GET", f"/flavors/{fid}/os-extra_specs/hw:numa_nodes"), 404, "itemNotFound") == \
            f"Flavor {fid} has no extra specs with key hw:numa_nodes."
        r = nova("POST", f"/flavors/{fid}/action", json={"removeTenantAccess": {"tenant": project}})
        assert r.json() == {"flavor_access": []}
        _fault(nova("POST", f"/flavors/{fid}/action", json={"removeTenantAccess": {"tenant": project}}),
               404, "itemNotFound")
        _fault(mhttp("GET", f"/flavors/{fid}"), 404, "itemNotFound")
    finally:
        nova("DELETE", f"/flavors/{fid}")


# ---------------------------------------------------------------- keypairs


def _md5_fingerprint(public_key: str) -> str:
    digest = hashlib.md5(base64.b64decode(public_key.split()[1])).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, 32, 2))


def test_keypair_cli(cc, tmp_path, member):
    env, _, _ = member
    name = _name("kp")
    out = cc.openstack("keypair", "create", name).stdout
    assert "PRIVATE KEY-----" in out
    shown = cc.os_json("keypair", "show", name)
    assert shown["name"] == name and shown["type"] == "ssh"
    pub = cc.openstack("keypair", "show", "--public-key", name).stdout.strip()
    assert shown["fingerprint"] == _md5_fingerprint(pub)
    # import a key made here
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode() + " me@lab"
    path = tmp_path / "id.pub"
    path.write_text(key + "\n")
    imported = cc.os_json("keypair", "create", "--public-key", str(path), name + "-imp")
    assert imported["fingerprint"] == _md5_fingerprint(key)
    listed = {k["Name"]: k for k in cc.os_json("keypair", "list")}
    assert {name, name + "-imp"} <= set(listed)
    assert listed[name + "-imp"]["Fingerprint"] == imported["fingerprint"]
    # keypairs are per user: the member sees none of them
    assert name not in [k["Name"] for k in cc.os_json("keypair", "list", env=env)]
    assert cc.openstack("keypair", "show", name, env=env, check=False).returncode != 0
    # duplicates, bad names and bad keys
    r = cc.openstack("keypair", "create", "--public-key", str(path), name, check=False)
    assert r.returncode != 0 and "409" in r.stderr
    r = cc.openstack("keypair", "create", "--public-key", str(path), "bad/name", check=False)
    assert r.returncode != 0 and "400" in r.stderr
    path.write_text("ssh-rsa not-base64-at-all\n")
    r = cc.openstack("keypair", "create", "--public-key", str(path), name + "-bad", check=False)
    assert r.returncode != 0 and "400" in r.stderr
    cc.openstack("keypair", "delete", name, name + "-imp")
    assert not {name, name + "-imp"} & {k["Name"] for k in cc.os_json("keypair", "list")}


def test_keypair_http_versions(nova, admin):
    name = _name("gen")
    # server-side generation: the private key is returned once
    r = nova("POST", "/os-keypairs", json={"keypair": {"name": name}})
    assert r.status_code == 200
    kp = r.json()["keypair"]
    assert set(kp) == {"name", "public_key", "private_key", "fingerprint", "user_id"}
    assert "PRIVATE KEY" in kp["private_key"] and kp["public_key"].startswith("ssh-rsa ")
    assert kp["fingerprint"] == _md5_fingerprint(kp["public_key"]) and kp["user_id"] == admin.current_user_id
    listed = nova("GET", "/os-keypairs").json()["keypairs"]
    item = next(k["keypair"] for k in listed if k["keypair"]["name"] == name)
    assert set(item) == {"name", "public_key", "fingerprint"}
    shown = nova("GET", f"/os-keypairs/{name}", "2.2").json()["keypair"]
    assert shown["type"] == "ssh" and shown["deleted"] is False and shown["user_id"] == admin.current_user_id
    assert isinstance(shown["id"], int) and "T" in shown["created_at"] and shown["deleted_at"] is None
    assert "private_key" not in shown
    assert nova("DELETE", f"/os-keypairs/{name}").status_code == 202
    assert _fault(nova("GET", f"/os-keypairs/{name}"), 404, "itemNotFound") == \
        f"Keypair {name} not found for user {admin.current_user_id}"
    # 2.2: x509 certificates, 201 and 204
    r = nova("POST", "/os-keypairs", "2.2", json={"keypair": {"name": name, "type": "x509"}})
    assert r.status_code == 201
    cert = r.json()["keypair"]
    assert cert["type"] == "x509" and cert["public_key"].startswith("-----BEGIN CERTIFICATE-----")
    assert len(cert["fingerprint"].split(":")) == 20  # SHA-1
    r = nova("POST", "/os-keypairs", "2.2", json={"keypair": {"name": name + "-i", "type": "x509",
                                                              "public_key": cert["public_key"]}})
    assert r.status_code == 201 and r.json()["keypair"]["fingerprint"] == cert["fingerprint"]
    _fault(nova("POST", "/os-keypairs", "2.2", json={"keypair": {"name": "x", "type": "x509",
                                                                 "public_key": "junk"}}), 400, "badRequest")
    _fault(nova("POST", "/os-keypairs", "2.2", json={"keypair": {"name": "x", "type": "pgp"}}), 400, "badRequest")
    _fault(nova("POST", "/os-keypairs", json={"keypair": {"name": "x", "type": "ssh"}}), 400, "badRequest")
    assert nova("DELETE", f"/os-keypairs/{name}", "2.2").status_code == 204
    assert nova("DELETE", f"/os-keypairs/{name}-i", "2.2").status_code == 204
    _fault(nova("POST", "/os-keypairs", json={"keypair": {"name": "a*b"}}), 400, "badRequest")
    _fault(nova("POST", "/os-keypairs", json={"keypair": {"name": " lead"}}), 400, "badRequest")
    _fault(nova("POST", "/os-keypairs", json={"kp": {}}), 400, "badRequest")


def test_keypair_sdk_paging_and_other_users(nova, admin, member):
    _, mconn, mhttp = member
    names = sorted(_name(f"pg{i}") for i in range(3))
    for n in names:
        admin.compute.create_keypair(name=n)
    try:
        assert set(names) <= {k.name for k in admin.compute.keypairs()}
        page = nova("GET", "/os-keypairs?limit=2", "2.35").json()
        assert len(page["keypairs"]) == 2 and "marker=" in page["keypairs_links"][0]["href"]
        everyone = [k["keypair"]["name"] for k in nova("GET", "/os-keypairs", "2.35").json()["keypairs"]]
        assert everyone == sorted(everyone)
        after = nova("GET", f"/os-keypairs?marker={names[0]}", "2.35").json()["keypairs"]
        assert [k["keypair"]["name"] for k in after] == everyone[everyone.index(names[0]) + 1:]
        _fault(nova("GET", "/os-keypairs?marker=missing", "2.35"), 400, "badRequest")
        # 2.10: admins act for another user; members may not
        other = mconn.current_user_id
        r = nova("POST", "/os-keypairs", "2.10", json={"keypair": {"name": "for-member", "user_id": other}})
        assert r.status_code == 201 and r.json()["keypair"]["user_id"] == other
        assert [k.name for k in mconn.compute.keypairs()] == ["for-member"]
        assert [k["keypair"]["name"] for k in
                nova("GET", f"/os-keypairs?user_id={other}", "2.10").json()["keypairs"]] == ["for-member"]
        assert nova("GET", f"/os-keypairs/for-member?user_id={other}", "2.10").json()["keypair"]["user_id"] == other
        _fault(mhttp("GET", f"/os-keypairs?user_id={admin.current_user_id}", "2.10"), 403, "forbidden")
        _fault(mhttp("POST", "/os-keypairs", "2.10",
                     json={"keypair": {"name": "x", "user_id": admin.current_user_id}}), 403, "forbidden")
        assert nova("DELETE", f"/os-keypairs/for-member?user_id={other}", "2.10").status_code == 204
    finally:
        for n in names:
            admin.compute.delete_keypair(n, ignore_missing=True)


def test_keypair_quota(cc, nova, member):
    env, mconn, mhttp = member
    project = mconn.current_project_id
    cc.openstack("quota", "set", "--key-pairs", "1", project)
    try:
        assert mhttp("POST", "/os-keypairs", json={"keypair": {"name": "one"}}).status_code == 200
        assert _fault(mhttp("POST", "/os-keypairs", json={"keypair": {"name": "two"}}), 403, "forbidden") == \
            "Quota exceeded, too many key pairs."
    finally:
        mhttp("DELETE", "/os-keypairs/one")
        nova("DELETE", f"/os-quota-sets/{project}")


# ---------------------------------------------------------------- quotas and limits


def test_quota_cli_and_limits(cc, admin, member):
    env, mconn, _ = member
    project = mconn.current_project_id
    rows = {r["Resource"]: r["Limit"] for r in cc.os_json("quota", "show", "--compute", project)}
    assert rows["instances"] == 10 and rows["cores"] == 20 and rows["ram"] == 51200
    cc.openstack("quota", "set", "--instances", "7", "--cores", "9", "--ram", "4096", project)
    try:
        rows = {r["Resource"]: r["Limit"] for r in cc.os_json("quota", "show", "--compute", project)}
        assert rows["instances"] == 7 and rows["cores"] == 9 and rows["ram"] == 4096
        # the member reads its own quota and limits, but may not change them
        rows = {r["Resource"]: r["Limit"] for r in cc.os_json("quota", "show", "--compute", env=env)}
        assert rows["instances"] == 7
        r = cc.openstack("quota", "set", "--instances", "50", project, env=env, check=False)
        assert r.returncode != 0 and "403" in r.stderr
        limits = {r["Name"]: r["Value"] for r in cc.os_json("limits", "show", "--absolute", env=env)}
        assert limits["max_total_instances"] == 7 and limits["max_total_cores"] == 9
        assert limits["total_instances_used"] == 0
        lim = mconn.compute.get_limits().absolute
        assert lim.instances == 7 and lim.total_ram == 4096 and lim.server_groups == 10
        qs = admin.compute.get_quota_set(project)
        assert qs.instances == 7 and qs.cores == 9
        # another project's limits: admins only
        r = cc.openstack("limits", "show", "--absolute", "--project", "admin", env=env, check=False)
        assert r.returncode != 0
        admin_limits = {r["Name"]: r["Value"] for r in
                        cc.os_json("limits", "show", "--absolute", "--project", env["OS_PROJECT_NAME"])}
        assert admin_limits["max_total_instances"] == 7
    finally:
        admin.compute.revert_quota_set(project)
    rows = {r["Resource"]: r["Limit"] for r in cc.os_json("quota", "show", "--compute", project)}
    assert rows["instances"] == 10


def test_quota_http_versions(nova, member):
    _, mconn, mhttp = member
    project = mconn.current_project_id
    old = nova("GET", f"/os-quota-sets/{project}").json()["quota_set"]
    assert old["id"] == project and old["floating_ips"] == -1 and old["injected_files"] == 5
    v36 = nova("GET", f"/os-quota-sets/{project}", "2.36").json()["quota_set"]
    assert "floating_ips" not in v36 and "security_groups" not in v36 and v36["injected_files"] == 5
    v57 = nova("GET", f"/os-quota-sets/{project}", "2.57").json()["quota_set"]
    assert set(v57) == {"id", "instances", "cores", "ram", "metadata_items", "key_pairs", "server_groups",
                        "server_group_members"}
    detail = nova("GET", f"/os-quota-sets/{project}/detail", "2.57").json()["quota_set"]
    assert detail["instances"] == {"in_use": 0, "limit": 10, "reserved": 0}
    defaults = nova("GET", f"/os-quota-sets/{project}/defaults").json()["quota_set"]
    assert defaults["id"] == project and defaults["cores"] == 20
    # updates: the answer has no id; removed resources are refused by newer versions
    r = nova("PUT", f"/os-quota-sets/{project}", "2.57", json={"quota_set": {"instances": "-1", "cores": 5}})
    assert r.status_code == 200
    assert r.json()["quota_set"]["instances"] == -1 and "id" not in r.json()["quota_set"]
    _fault(nova("PUT", f"/os-quota-sets/{project}", "2.57", json={"quota_set": {"injected_files": 1}}),
           400, "badRequest")
    _fault(nova("PUT", f"/os-quota-sets/{project}", "2.36", json={"quota_set": {"floating_ips": 1}}),
           400, "badRequest")
    _fault(nova("PUT", f"/os-quota-sets/{project}", json={"quota_set": {"cores": -2}}), 400, "badRequest")
    _fault(nova("PUT", f"/os-quota-sets/{project}", json={"quota_set": {"cores": "many"}}), 400, "badRequest")
    assert _fault(nova("PUT", f"/os-quota-sets/{uuid.uuid4().hex}", json={"quota_set": {"cores": 1}}),
                  400, "badRequest").endswith("is not a valid project.")
    _fault(mhttp("PUT", f"/os-quota-sets/{project}", json={"quota_set": {"cores": 100}}), 403, "forbidden")
    # members read their own project's quota only
    assert mhttp("GET", f"/os-quota-sets/{project}").json()["quota_set"]["cores"] == 5
    _fault(mhttp("GET", f"/os-quota-sets/{nova.conn.current_project_id}"), 403, "forbidden")
    _fault(mhttp("GET", f"/limits?tenant_id={nova.conn.current_project_id}"), 403, "forbidden")
    # per-user quotas within the project
    user = mconn.current_user_id
    r = nova("PUT", f"/os-quota-sets/{project}?user_id={user}", json={"quota_set": {"key_pairs": 3}})
    assert r.status_code == 200 and r.json()["quota_set"]["key_pairs"] == 3
    shown = nova("GET", f"/os-quota-sets/{project}?user_id={user}").json()["quota_set"]
    assert shown["id"] == project and shown["key_pairs"] == 3 and shown["cores"] == 5
    _fault(nova("PUT", f"/os-quota-sets/{project}?user_id={user}", json={"quota_set": {"cores": 6}}),
           400, "badRequest")
    assert nova("DELETE", f"/os-quota-sets/{project}").status_code == 202
    assert nova("GET", f"/os-quota-sets/{project}").json()["quota_set"]["instances"] == 10
    assert nova("GET", f"/os-quota-sets/{project}?user_id={user}").json()["quota_set"]["key_pairs"] == 100
    # limits per microversion
    old = nova("GET", "/limits").json()["limits"]
    assert old["rate"] == [] and old["absolute"]["maxPersonality"] == 5
    assert old["absolute"]["maxTotalFloatingIps"] == -1 and old["absolute"]["maxImageMeta"] == 128
    v39 = nova("GET", "/limits", "2.39").json()["limits"]["absolute"]
    assert "maxTotalFloatingIps" not in v39 and "maxImageMeta" not in v39 and "maxPersonality" in v39
    v57 = nova("GET", "/limits", "2.57").json()["limits"]["absolute"]
    assert set(v57) == {"maxServerMeta", "maxTotalCores", "maxTotalInstances", "maxTotalKeypairs",
                        "maxTotalRAMSize", "maxServerGroups", "maxServerGroupMembers", "totalCoresUsed",
                        "totalInstancesUsed", "totalRAMUsed", "totalServerGroupsUsed"}


def test_quota_class_default(nova, member):
    _, mconn, mhttp = member
    old = nova("GET", "/os-quota-class-sets/default").json()["quota_class_set"]
    assert old["id"] == "default" and "server_groups" not in old and old["floating_ips"] == -1
    v50 = nova("GET", "/os-quota-class-sets/default", "2.50").json()["quota_class_set"]
    assert v50["server_groups"] == 10 and "floating_ips" not in v50 and "injected_files" in v50
    _fault(mhttp("GET", "/os-quota-class-sets/default"), 403, "forbidden")
    r = nova("PUT", "/os-quota-class-sets/default", "2.57", json={"quota_class_set": {"metadata_items": 64}})
    try:
        assert r.status_code == 200 and r.json()["quota_class_set"]["metadata_items"] == 64
        assert "id" not in r.json()["quota_class_set"]
        # the default class is every project's default
        project = mconn.current_project_id
        assert nova("GET", f"/os-quota-sets/{project}/defaults").json()["quota_set"]["metadata_items"] == 64
        assert mhttp("GET", "/limits").json()["limits"]["absolute"]["maxServerMeta"] == 64
    finally:
        nova("PUT", "/os-quota-class-sets/default", json={"quota_class_set": {"metadata_items": 128}})


# ---------------------------------------------------------------- services, hypervisors, zones


def test_compute_services(cc, nova, computes, member):
    env, _, mhttp = member
    rows = cc.os_json("compute", "service", "list")
    binaries = {(r["Binary"], r["Host"]) for r in rows}
    assert {b for b, _ in binaries} >= {"nova-compute", "nova-scheduler", "nova-conductor"}
    assert ("nova-compute", "fake-1") in binaries and ("nova-compute", "fake-2") in binaries
    assert all(r["State"] == "up" for r in rows)
    assert {r["Zone"] for r in rows if r["Binary"] == "nova-scheduler"} == {"internal"}
    assert [r["Host"] for r in cc.os_json("compute", "service", "list", "--host", "fake-2")] == ["fake-2"]
    cc.openstack("compute", "service", "set", "--disable", "--disable-reason", "maintenance", "fake-2",
                 "nova-compute")
    try:
        row = next(r for r in cc.os_json("compute", "service", "list", "--long") if r["Host"] == "fake-2")
        assert row["Status"] == "disabled" and row["Disabled Reason"] == "maintenance"
    finally:
        cc.openstack("compute", "service", "set", "--enable", "fake-2", "nova-compute")
    row = next(r for r in cc.os_json("compute", "service", "list", "--long") if r["Host"] == "fake-2")
    assert row["Status"] == "enabled" and row["Disabled Reason"] is None
    assert cc.openstack("compute", "service", "list", env=env, check=False).returncode != 0
    _fault(mhttp("GET", "/os-services"), 403, "forbidden")


def test_services_http_versions(nova, computes):
    old = nova("GET", "/os-services?host=fake-1&binary=nova-compute").json()["services"]
    assert len(old) == 1 and isinstance(old[0]["id"], int) and "forced_down" not in old[0]
    assert set(old[0]) == {"id", "binary", "host", "zone", "status", "state", "updated_at", "disabled_reason"}
    r = nova("PUT", "/os-services/disable-log-reason",
             json={"host": "fake-1", "binary": "nova-compute", "disabled_reason": "why"})
    assert r.json() == {"service": {"host": "fake-1", "binary": "nova-compute", "status": "disabled",
                                    "disabled_reason": "why"}}
    r = nova("PUT", "/os-services/enable", json={"host": "fake-1", "binary": "nova-compute"})
    assert r.json() == {"service": {"host": "fake-1", "binary": "nova-compute", "status": "enabled"}}
    _fault(nova("PUT", "/os-services/enable", json={"host": "nohost", "binary": "nova-compute"}),
           404, "itemNotFound")
    assert nova("PUT", "/os-services/force-down", "2.10",
                json={"host": "fake-1", "binary": "nova-compute", "forced_down": True}).status_code == 404
    r = nova("PUT", "/os-services/force-down", "2.11",
             json={"host": "fake-1", "binary": "nova-compute", "forced_down": True})
    assert r.json() == {"service": {"host": "fake-1", "binary": "nova-compute", "forced_down": True}}
    svc = nova("GET", "/os-services?host=fake-1", "2.53").json()["services"][0]
    uuid.UUID(svc["id"])
    assert svc["state"] == "down" and svc["forced_down"] is True
    r = nova("PUT", f"/os-services/{svc['id']}", "2.53", json={"forced_down": False, "status": "disabled",
                                                               "disabled_reason": "maint"})
    got = r.json()["service"]
    assert got["state"] == "up" and got["status"] == "disabled" and got["disabled_reason"] == "maint"
    _fault(nova("PUT", f"/os-services/{svc['id']}", "2.53", json={"status": "enabled", "disabled_reason": "x"}),
           400, "badRequest")
    _fault(nova("PUT", f"/os-services/{svc['id']}", "2.53", json={}), 400, "badRequest")
    r = nova("PUT", f"/os-services/{svc['id']}", "2.53", json={"status": "enabled"})
    assert r.json()["service"]["status"] == "enabled" and r.json()["service"]["disabled_reason"] is None
    _fault(nova("PUT", "/os-services/disable", "2.53", json={"host": "fake-1", "binary": "nova-compute"}),
           400, "badRequest")
    sched = nova("GET", "/os-services?binary=nova-scheduler", "2.53").json()["services"][0]
    _fault(nova("PUT", f"/os-services/{sched['id']}", "2.53", json={"status": "disabled"}), 400, "badRequest")
    _fault(nova("DELETE", f"/os-services/{uuid.uuid4()}", "2.53"), 404, "itemNotFound")
    _fault(nova("DELETE", "/os-services/not-a-uuid", "2.53"), 400, "badRequest")


def test_hypervisors(cc, nova, computes, member):
    env, _, mhttp = member
    rows = cc.os_json("hypervisor", "list")
    assert {"fake-1", "fake-2"} <= {r["Hypervisor Hostname"] for r in rows}
    assert all(r["State"] == "up" for r in rows)
    shown = cc.os_json("hypervisor", "show", "fake-1")
    assert shown["hypervisor_type"] == "fake" and shown["vcpus"] == 8 and shown["memory_mb"] == 16384
    assert shown["running_vms"] == 0 and shown["service_host"] == "fake-1"
    stats = cc.os_json("hypervisor", "stats", "show")
    assert int(stats["count"]) == len(rows)
    assert cc.openstack("hypervisor", "list", env=env, check=False).returncode != 0
    _fault(mhttp("GET", "/os-hypervisors"), 403, "forbidden")
    # versions: integer ids and cpu_info as a string before 2.28/2.53
    old = nova("GET", "/os-hypervisors/detail").json()["hypervisors"]
    assert isinstance(old[0]["id"], int) and isinstance(old[0]["cpu_info"], str)
    assert isinstance(old[0]["service"]["id"], int)
    one = nova("GET", f"/os-hypervisors/{old[0]['id']}", "2.28").json()["hypervisor"]
    assert isinstance(one["cpu_info"], dict) and one["free_ram_mb"] == one["memory_mb"] - one["memory_mb_used"]
    new = nova("GET", "/os-hypervisors/detail", "2.53").json()["hypervisors"]
    uuid.UUID(new[0]["id"])
    uuid.UUID(new[0]["service"]["id"])
    assert nova("GET", f"/os-hypervisors/{new[0]['id']}", "2.53").json()["hypervisor"]["id"] == new[0]["id"]
    _fault(nova("GET", "/os-hypervisors/12345", "2.52"), 404, "itemNotFound")
    _fault(nova("GET", "/os-hypervisors/12345", "2.53"), 400, "badRequest")
    # paging from 2.33
    page = nova("GET", "/os-hypervisors?limit=1", "2.33").json()
    assert len(page["hypervisors"]) == 1 and "hypervisors_links" in page
    nxt = nova("GET", f"/os-hypervisors?limit=1&marker={page['hypervisors'][0]['id']}", "2.33").json()
    assert nxt["hypervisors"][0]["id"] != page["hypervisors"][0]["id"]
    # searching: /search before 2.53, hypervisor_hostname_pattern after
    found = nova("GET", "/os-hypervisors/fake/search").json()["hypervisors"]
    assert {h["hypervisor_hostname"] for h in found} == {"fake-1", "fake-2"}
    _fault(nova("GET", "/os-hypervisors/nomatch/search"), 404, "itemNotFound")
    assert nova("GET", "/os-hypervisors/fake/search", "2.53").status_code == 404
    found = nova("GET", "/os-hypervisors?hypervisor_hostname_pattern=fake-2&with_servers=true", "2.75").json()
    assert [h["hypervisor_hostname"] for h in found["hypervisors"]] == ["fake-2"]
    assert found["hypervisors"][0]["servers"] == []  # 2.75 always shows servers when asked
    found = nova("GET", "/os-hypervisors?hypervisor_hostname_pattern=fake-2&with_servers=true", "2.53").json()
    assert "servers" not in found["hypervisors"][0]
    _fault(nova("GET", "/os-hypervisors?hypervisor_hostname_pattern=fake&limit=1", "2.53"), 400, "badRequest")
    assert nova("GET", "/os-hypervisors/fake/servers").json()["hypervisors"][0]["hypervisor_hostname"] \
        .startswith("fake")
    up = nova("GET", f"/os-hypervisors/{old[0]['id']}/uptime").json()["hypervisor"]
    assert "load average" in up["uptime"] and up["id"] == old[0]["id"]
    st = nova("GET", "/os-hypervisors/statistics").json()["hypervisor_statistics"]
    assert st["count"] >= 3 and st["vcpus"] >= 24 and st["running_vms"] == 0


def test_availability_zones_and_hosts(cc, nova, computes, member):
    env, mconn, mhttp = member
    zones = cc.os_json("availability", "zone", "list", "--compute", env=env)
    assert [(z["Zone Name"], z["Zone Status"]) for z in zones] == [("nova", "available")]
    assert [z.name for z in mconn.compute.availability_zones()] == ["nova"]
    detail = nova("GET", "/os-availability-zone/detail").json()["availabilityZoneInfo"]
    by_name = {z["zoneName"]: z for z in detail}
    assert set(by_name) == {"internal", "nova"}
    assert "nova-scheduler" in next(iter(by_name["internal"]["hosts"].values()))
    assert by_name["nova"]["hosts"]["fake-1"]["nova-compute"]["available"] is True
    assert by_name["nova"]["hosts"]["fake-1"]["nova-compute"]["active"] is True
    _fault(mhttp("GET", "/os-availability-zone/detail"), 403, "forbidden")
    long = cc.os_json("availability", "zone", "list", "--compute", "--long")
    assert {"fake-1", "fake-2"} <= {z["Host Name"] for z in long}
    # os-hosts until 2.43
    hosts = nova("GET", "/os-hosts").json()["hosts"]
    assert {"host_name": "fake-1", "service": "compute", "zone": "nova"} in hosts
    res = nova("GET", "/os-hosts/fake-1").json()["host"]
    assert [r["resource"]["project"] for r in res[:3]] == ["(total)", "(used_now)", "(used_max)"]
    assert nova("GET", "/os-hosts", "2.43").status_code == 404
    r = nova("PUT", "/os-hosts/fake-2", json={"status": "disable"})
    assert r.json() == {"host": "fake-2", "status": "disabled"}
    assert nova("GET", "/os-services?host=fake-2").json()["services"][0]["status"] == "disabled"
    assert nova("PUT", "/os-hosts/fake-2", json={"status": "enable"}).json()["status"] == "enabled"
    _fault(nova("PUT", "/os-hosts/fake-2", json={}), 400, "badRequest")
    _fault(nova("PUT", "/os-hosts/fake-2", json={"status": "sideways"}), 400, "badRequest")
    _fault(nova("PUT", "/os-hosts/nohost", json={"status": "enable"}), 404, "itemNotFound")
    _fault(nova("GET", "/os-hosts/fake-2/reboot"), 501, "notImplemented")
    _fault(mhttp("GET", "/os-hosts/fake-2/reboot"), 403, "forbidden")


# ---------------------------------------------------------------- server groups


def test_server_group_cli(cc, member):
    env, _, _ = member
    name = _name("sg")
    g = cc.os_json("server", "group", "create", "--policy", "anti-affinity", name)
    assert g["name"] == name and g["members"] == [] and g["policy"] == "anti-affinity"
    assert name in [x["Name"] for x in cc.os_json("server", "group", "list")]
    shown = cc.os_json("server", "group", "show", g["id"])
    assert shown["id"] == g["id"] and shown["project_id"]
    # another project neither lists nor shows it; admins list it with --all-projects
    assert name not in [x["Name"] for x in cc.os_json("server", "group", "list", env=env)]
    assert cc.openstack("server", "group", "show", g["id"], env=env, check=False).returncode != 0
    mine = _name("msg")
    cc.openstack("server", "group", "create", "--policy", "soft-affinity", mine, env=env)
    assert mine not in [x["Name"] for x in cc.os_json("server", "group", "list")]
    assert mine in [x["Name"] for x in cc.os_json("server", "group", "list", "--all-projects")]
    cc.openstack("server", "group", "delete", mine, env=env)
    cc.openstack("server", "group", "delete", g["id"])
    assert cc.openstack("server", "group", "show", g["id"], check=False).returncode != 0


def test_server_group_http_versions(nova, admin, member):
    _, mconn, mhttp = member
    r = nova("POST", "/os-server-groups", json={"server_group": {"name": "old", "policies": ["affinity"]}})
    old = r.json()["server_group"]
    assert r.status_code == 200
    assert set(old) == {"id", "name", "policies", "members", "metadata"} and old["policies"] == ["affinity"]
    v13 = nova("GET", f"/os-server-groups/{old['id']}", "2.13").json()["server_group"]
    assert v13["project_id"] == admin.current_project_id and v13["user_id"] == admin.current_user_id
    v64 = nova("GET", f"/os-server-groups/{old['id']}", "2.64").json()["server_group"]
    assert v64["policy"] == "affinity" and v64["rules"] == {} and "policies" not in v64 and "metadata" not in v64
    # soft policies from 2.15
    _fault(nova("POST", "/os-server-groups", "2.14",
                json={"server_group": {"name": "s", "policies": ["soft-affinity"]}}), 400, "badRequest")
    _fault(nova("POST", "/os-server-groups",
                json={"server_group": {"name": "s", "policies": ["affinity", "anti-affinity"]}}), 400, "badRequest")
    _fault(nova("POST", "/os-server-groups", "2.64",
                json={"server_group": {"name": "s", "policies": ["affinity"]}}), 400, "badRequest")
    r = nova("POST", "/os-server-groups", "2.64", json={"server_group": {
        "name": "new", "policy": "anti-affinity", "rules": {"max_server_per_host": 2}}})
    new = r.json()["server_group"]
    assert new["policy"] == "anti-affinity" and new["rules"] == {"max_server_per_host": 2}
    assert _fault(nova("POST", "/os-server-groups", "2.64", json={"server_group": {
        "name": "bad", "policy": "affinity", "rules": {"max_server_per_host": 2}}}), 400, "badRequest") == \
        "Only anti-affinity policy supports 'max_server_per_host' rule."
    _fault(nova("POST", "/os-server-groups", "2.64", json={"server_group": {
        "name": "bad", "policy": "anti-affinity", "rules": {"max_server_per_host": 0}}}), 400, "badRequest")
    _fault(nova("POST", "/os-server-groups", json={"server_group": {"name": " x", "policies": ["affinity"]}}),
           400, "badRequest")
    # offset / limit
    assert len(nova("GET", "/os-server-groups?limit=1").json()["server_groups"]) == 1
    ids = [g["id"] for g in nova("GET", "/os-server-groups").json()["server_groups"]]
    assert [g["id"] for g in nova("GET", "/os-server-groups?offset=1").json()["server_groups"]] == ids[1:]
    # another project: 403 on show and delete, absent from its list
    _fault(mhttp("GET", f"/os-server-groups/{new['id']}"), 403, "forbidden")
    _fault(mhttp("DELETE", f"/os-server-groups/{new['id']}"), 403, "forbidden")
    assert mhttp("GET", "/os-server-groups?all_projects=True").json()["server_groups"] == []
    for g in (old, new):
        assert nova("DELETE", f"/os-server-groups/{g['id']}").status_code == 204
    _fault(nova("GET", f"/os-server-groups/{old['id']}"), 404, "itemNotFound")


def test_server_group_quota(nova, member):
    _, mconn, mhttp = member
    project = mconn.current_project_id
    nova("PUT", f"/os-quota-sets/{project}", json={"quota_set": {"server_groups": 1}})
    made = []
    try:
        r = mhttp("POST", "/os-server-groups", json={"server_group": {"name": "a", "policies": ["affinity"]}})
        made.append(r.json()["server_group"]["id"])
        assert mhttp("GET", "/limits").json()["limits"]["absolute"]["totalServerGroupsUsed"] == 1
        assert _fault(mhttp("POST", "/os-server-groups",
                            json={"server_group": {"name": "b", "policies": ["affinity"]}}), 403, "forbidden") \
            == "Quota exceeded, too many server groups."
    finally:
        for gid in made:
            mhttp("DELETE", f"/os-server-groups/{gid}")
        nova("DELETE", f"/os-quota-sets/{project}")


# ---------------------------------------------------------------- with a server: usage and quota checks


@pytest.fixture(scope="module")
def server(cc, admin, member):
    """One ACTIVE server of the member on a fake host (image uploaded here, no network)."""
    env, mconn, _ = member
    image = admin.image.create_image(name=_name("img"), data=b"\0" * 1024 * 1024, disk_format="raw",
                                     container_format="bare", visibility="public")
    s = cc.os_json("server", "create", "--flavor", "m1.nano", "--image", image.id, "--nic", "none", "--wait",
                   _name("usage-vm"), env=env)
    assert s["status"] == "ACTIVE"
    s["image_id"] = image.id
    yield s
    cc.openstack("server", "delete", "--wait", s["id"], env=env, check=False)
    admin.image.delete_image(image, ignore_missing=True)


def test_usage_and_hypervisor_servers(cc, nova, member, server):
    env, mconn, mhttp = member
    project = mconn.current_project_id
    rows = cc.os_json("usage", "list")
    assert env["OS_PROJECT_NAME"] in [r["Project"] for r in rows] or project in [r["Project"] for r in rows]
    mine = cc.os_json("usage", "show", env=env)
    assert len(mine["Servers"]) == 1  # the CLI's count column, as a list in JSON
    one = nova("GET", f"/os-simple-tenant-usage/{project}?start=2000-01-01T00:00:00").json()["tenant_usage"]
    assert one["tenant_id"] == project and len(one["server_usages"]) == 1
    su = one["server_usages"][0]
    assert su["instance_id"] == server["id"] and su["flavor"] == "m1.nano" and su["memory_mb"] == 128
    assert su["vcpus"] == 1 and su["local_gb"] == 1 and su["state"] == "active" and su["ended_at"] is None
    assert one["total_memory_mb_usage"] == pytest.approx(128 * su["hours"])
    brief = nova("GET", "/os-simple-tenant-usage?start=2000-01-01T00:00:00").json()["tenant_usages"]
    assert project in [u["tenant_id"] for u in brief] and "server_usages" not in brief[0]
    detailed = nova("GET", "/os-simple-tenant-usage?start=2000-01-01T00:00:00&detailed=1").json()
    assert any(u.get("server_usages") for u in detailed["tenant_usages"])
    paged = nova("GET", "/os-simple-tenant-usage?start=2000-01-01T00:00:00&limit=1", "2.40").json()
    assert "tenant_usages_links" in paged
    _fault(nova("GET", "/os-simple-tenant-usage?start=yesterday"), 400, "badRequest")
    _fault(nova("GET", "/os-simple-tenant-usage?start=2030-01-01T00:00:00&end=2020-01-01T00:00:00"),
           400, "badRequest")
    _fault(mhttp("GET", "/os-simple-tenant-usage"), 403, "forbidden")
    _fault(mhttp("GET", f"/os-simple-tenant-usage/{nova.conn.current_project_id}"), 403, "forbidden")
    # the server counts in the project's usage, limits and its hypervisor
    limits = mhttp("GET", "/limits").json()["limits"]["absolute"]
    assert limits["totalInstancesUsed"] == 1 and limits["totalCoresUsed"] == 1 and limits["totalRAMUsed"] == 128
    detail = nova("GET", f"/os-quota-sets/{project}/detail").json()["quota_set"]
    assert detail["instances"]["in_use"] == 1 and detail["ram"]["in_use"] == 128
    host = nova("GET", f"/servers/{server['id']}").json()["server"]["OS-EXT-SRV-ATTR:hypervisor_hostname"]
    hyps = nova("GET", "/os-hypervisors?with_servers=true", "2.53").json()["hypervisors"]
    on = next(h for h in hyps if h["hypervisor_hostname"] == host)
    assert on["servers"] == [{"uuid": server["id"], "name": server["name"]}]
    full = nova("GET", f"/os-hypervisors/{on['id']}", "2.53").json()["hypervisor"]
    assert full["running_vms"] == 1 and full["vcpus_used"] == 1 and full["local_gb_used"] == 1
    # a compute service hosting a server cannot be deleted
    svc = full["service"]["id"]
    assert _fault(nova("DELETE", f"/os-services/{svc}", "2.53"), 409, "conflictingRequest").startswith(
        "Unable to delete compute service that is hosting instances.")


def test_server_quota_wording(cc, nova, member, server):
    env, mconn, _ = member
    project = mconn.current_project_id
    nova("PUT", f"/os-quota-sets/{project}", json={"quota_set": {"cores": 2, "instances": 5}})
    try:
        r = cc.openstack("server", "create", "--flavor", "m1.medium", "--image", server["image_id"],
                         "--nic", "none", _name("over"), env=env, check=False)
        assert r.returncode != 0
        assert "Quota exceeded for cores: Requested 2, but already used 1 of 2 cores" in r.stderr
    finally:
        nova("DELETE", f"/os-quota-sets/{project}")


def test_server_group_members(cc, member, server):
    env, _, mhttp = member
    g = cc.os_json("server", "group", "create", "--policy", "anti-affinity", _name("mg"), env=env)
    s = cc.os_json("server", "create", "--flavor", "m1.nano", "--image", server["image_id"], "--nic", "none",
                   "--hint", f"group={g['id']}", "--wait", _name("member-vm"), env=env)
    try:
        assert cc.os_json("server", "group", "show", g["id"], env=env)["members"] == [s["id"]]
        v64 = mhttp("GET", f"/os-server-groups/{g['id']}", "2.64").json()["server_group"]
        assert v64["members"] == [s["id"]]
        assert mhttp("GET", "/limits").json()["limits"]["absolute"]["totalServerGroupsUsed"] == 1
    finally:
        cc.openstack("server", "delete", "--wait", s["id"], env=env)
    assert mhttp("GET", f"/os-server-groups/{g['id']}").json()["server_group"]["members"] == []
    cc.openstack("server", "group", "delete", g["id"], env=env)
