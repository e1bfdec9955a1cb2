"""The Placement API through the real `openstack` CLI (osc-placement), openstacksdk
and raw HTTP: providers, inventories, classes, traits, aggregates, allocations,
usages, allocation candidates, microversions, errors and policy."""

from __future__ import annotations

import json
import uuid

import httpx
import openstack
import pytest

PV = "OpenStack-API-Version"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _custom(prefix: str) -> str:
    return f"CUSTOM_{prefix}_{uuid.uuid4().hex[:8].upper()}"


@pytest.fixture(scope="module")
def env(cloud):
    return cloud.openrc("admin")


@pytest.fixture(scope="module")
def token(cloud, env):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": env["OS_PASSWORD"]}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
    r = httpx.post(cloud.url + "/identity/v3/auth/tokens", json=body)
    assert r.status_code == 201
    return r.headers["X-Subject-Token"]


@pytest.fixture(scope="module")
def api(cloud, token):
    """``api(method, path, version, json=...)`` against /placement with the admin token."""
    client = httpx.Client(base_url=cloud.url + "/placement", timeout=30)

    def call(method, path, version="1.39", **kw):
        headers = {"X-Auth-Token": token, **kw.pop("headers", {})}
        if version:
            headers[PV] = f"placement {version}"
        return client.request(method, path, headers=headers, **kw)

    yield call
    client.close()


def _os(cloud, env, *args):
    return cloud.openstack(*args, env=env)


def _os_json(cloud, env, *args):
    return json.loads(_os(cloud, env, *args, "-f", "json").stdout)


def test_version_document_negotiation_and_auth(cloud, api):
    r = httpx.get(cloud.url + "/placement")  # no token needed
    assert r.status_code == 200
    (v,) = r.json()["versions"]
    assert v["id"] == "v1.0" and v["min_version"] == "1.0" and v["status"] == "CURRENT"
    assert tuple(map(int, v["max_version"].split("."))) >= (1, 36)
    assert r.headers[PV] == "placement 1.0" and "openstack-api-version" in r.headers["vary"].lower()
    r = api("GET", "/", version="1.99")
    assert r.status_code == 406
    err = r.json()["errors"][0]
    assert err["max_version"] == v["max_version"] and err["min_version"] == "1.0"
    assert api("GET", "/resource_providers", version="latest").headers[PV] == f"placement {v['max_version']}"
    assert api("GET", "/resource_providers", version="1.14").headers[PV] == "placement 1.14"
    r = httpx.get(cloud.url + "/placement/resource_providers")
    assert r.status_code == 401 and r.json()["errors"][0]["status"] == 401
    # placement is for admins and services only
    demo = cloud.openrc("demo")
    r = httpx.post(cloud.url + "/identity/v3/auth/tokens", json={"auth": {"identity": {
        "methods": ["password"], "password": {"user": {"name": "demo", "domain": {"id": "default"},
                                                       "password": demo["OS_PASSWORD"]}}},
        "scope": {"project": {"name": "demo", "domain": {"id": "default"}}}}})
    r = httpx.get(cloud.url + "/placement/resource_providers",
                  headers={"X-Auth-Token": r.headers["X-Subject-Token"]})
    assert r.status_code == 403 and "placement:resource_providers:list" in r.json()["errors"][0]["detail"]


def test_cli_providers_inventories_classes_traits(cloud, env):
    name, rc, trait = _name("rp"), _custom("CLI"), _custom("CLI")
    rp = _os_json(cloud, env, "resource", "provider", "create", name)
    assert rp["name"] == name and rp["generation"] == 0 and rp["root_provider_uuid"] == rp["uuid"]
    child = _os_json(cloud, env, "resource", "provider", "create", "--parent-provider", rp["uuid"],
                     name + "-child")
    try:
        assert child["parent_provider_uuid"] == rp["uuid"] and child["root_provider_uuid"] == rp["uuid"]
        listed = _os_json(cloud, env, "resource", "provider", "list", "--in-tree", child["uuid"])
        assert {p["uuid"] for p in listed} == {rp["uuid"], child["uuid"]}
        _os(cloud, env, "resource", "class", "create", rc)
        _os(cloud, env, "trait", "create", trait)
        assert trait in {t["name"] for t in _os_json(cloud, env, "trait", "list", "--name",
                                                         "startswith:CUSTOM_CLI")}
        inv = _os_json(cloud, env, "resource", "provider", "inventory", "set", rp["uuid"],
                       "--resource", "VCPU=8", "--resource", "VCPU:allocation_ratio=4.0",
                       "--resource", f"{rc}=4", "--resource", f"{rc}:max_unit=2")
        by = {i["resource_class"]: i for i in inv}
        assert by["VCPU"]["allocation_ratio"] == 4.0 and by[rc]["max_unit"] == 2 and by[rc]["step_size"] == 1
        _os(cloud, env, "resource", "provider", "trait", "set", "--trait", trait, rp["uuid"])
        cands = _os_json(cloud, env, "allocation", "candidate", "list", "--resource", f"{rc}=2",
                         "--required", trait)
        assert [c["resource provider"] for c in cands] == [rp["uuid"]]
        assert _os_json(cloud, env, "allocation", "candidate", "list", "--resource", f"{rc}=3") == []
        consumer = str(uuid.uuid4())
        _os(cloud, env, "resource", "provider", "allocation", "set", consumer, "--project-id", "p1",
            "--user-id", "u1", "--allocation", f"rp={rp['uuid']},VCPU=2,{rc}=2")
        shown = _os_json(cloud, env, "resource", "provider", "allocation", "show", consumer)
        assert {r["resource_provider"]: r["resources"] for r in shown} == {rp["uuid"]: {"VCPU": 2, rc: 2}}
        usage = {u["resource_class"]: u["usage"]
                 for u in _os_json(cloud, env, "resource", "provider", "usage", "show", rp["uuid"])}
        assert usage == {"VCPU": 2, rc: 2}
        listed = _os_json(cloud, env, "resource", "provider", "inventory", "list", rp["uuid"])
        assert {i["resource_class"]: i["used"] for i in listed} == {"VCPU": 2, rc: 2}
        _os(cloud, env, "resource", "provider", "allocation", "delete", consumer)
        renamed = _os_json(cloud, env, "resource", "provider", "set", "--name", name + "-renamed", rp["uuid"])
        assert renamed["name"] == name + "-renamed"
    finally:
        cloud.openstack("resource", "provider", "delete", child["uuid"], env=env, check=False)
        cloud.openstack("resource", "provider", "delete", rp["uuid"], env=env, check=False)
    _os(cloud, env, "resource", "class", "delete", rc)
    _os(cloud, env, "trait", "delete", trait)
    r = cloud.openstack("resource", "provider", "show", rp["uuid"], env=env, check=False)
    assert r.returncode != 0 and "No resource provider" in r.stderr


def test_sdk_placement(env):
    conn = openstack.connect(
        auth_url=env["OS_AUTH_URL"], username=env["OS_USERNAME"], password=env["OS_PASSWORD"],
        project_name=env["OS_PROJECT_NAME"], user_domain_name="Default", project_domain_name="Default",
        region_name="RegionOne", identity_api_version="3")
    p = conn.placement
    name = _name("sdk")
    rp = p.create_resource_provider(name=name)
    try:
        assert p.get_resource_provider(rp.id).name == name
        assert [x.id for x in p.resource_providers(name=name)] == [rp.id]
        p.update_resource_provider(rp, name=name + "-x")
        assert p.get_resource_provider(rp.id).name == name + "-x"
        rc = _custom("SDK")
        p.create_resource_class(name=rc)
        assert p.get_resource_class(rc).name == rc
        assert "VCPU" in {c.name for c in p.resource_classes()}
        inv = p.create_resource_provider_inventory(rp, resource_class=rc, total=10)
        assert inv.total == 10
        assert {i.resource_class for i in p.resource_provider_inventories(rp)} == {rc}
        trait = _custom("SDK")
        p.create_trait(trait)
        assert trait in {t.name for t in p.traits(name="startswith:CUSTOM_SDK")}
        p.delete_resource_provider_inventory(inv, resource_provider=rp)
        p.delete_resource_class(rc)
        p.delete_trait(trait)
    finally:
        p.delete_resource_provider(rp, ignore_missing=True)
    conn.close()


def _provider(api, name=None, **inventories):
    r = api("POST", "/resource_providers", json={"name": name or _name("raw")})
    assert r.status_code == 200, r.text
    rp = r.json()
    if inventories:
        r = api("PUT", f"/resource_providers/{rp['uuid']}/inventories",
                json={"resource_provider_generation": rp["generation"], "inventories": inventories})
        assert r.status_code == 200, r.text
        rp["generation"] = r.json()["resource_provider_generation"]
    return rp


def test_errors_generations_and_capacity(api):
    missing = str(uuid.uuid4())
    r = api("GET", f"/resource_providers/{missing}")
    assert r.status_code == 404
    err = r.json()["errors"][0]
    assert err["code"] == "placement.undefined_code" and missing in err["detail"] and err["request_id"]
    assert "code" not in api("GET", f"/resource_providers/{missing}", version="1.22").json()["errors"][0]
    assert api("GET", "/traits", version="1.5").status_code == 404  # not there before 1.6
    r = api("GET", "/resource_providers?resources=NOT_A_CLASS:1")
    assert r.status_code == 400 and "NOT_A_CLASS" in r.json()["errors"][0]["detail"]
    assert api("GET", "/resource_providers?bogus=1").status_code == 400

    rc = _custom("RAW")
    assert api("PUT", f"/resource_classes/{rc}").status_code == 201
    assert api("PUT", f"/resource_classes/{rc}").status_code == 204
    rp = _provider(api, **{rc: {"total": 4, "max_unit": 3}, "VCPU": {"total": 2}})
    base = f"/resource_providers/{rp['uuid']}"
    try:
        # a stale generation is a concurrent update
        r = api("PUT", base + "/inventories", json={"resource_provider_generation": rp["generation"] - 1,
                                                    "inventories": {"VCPU": {"total": 4}}})
        assert r.status_code == 409 and r.json()["errors"][0]["code"] == "placement.concurrent_update"
        r = api("PUT", base + "/traits", json={"resource_provider_generation": 99, "traits": []})
        assert r.status_code == 409 and r.json()["errors"][0]["code"] == "placement.concurrent_update"
        # capacity: the message names the class and the provider
        c1, c2 = str(uuid.uuid4()), str(uuid.uuid4())

        def put(consumer, amount, gen=None):
            return api("PUT", f"/allocations/{consumer}", json={
                "allocations": {rp["uuid"]: {"resources": {rc: amount}}}, "project_id": "p", "user_id": "u",
                "consumer_generation": gen, "consumer_type": "INSTANCE"})

        assert put(c1, 3).status_code == 204
        r = put(c2, 2)
        assert r.status_code == 409
        assert rc in r.json()["errors"][0]["detail"] and rp["uuid"] in r.json()["errors"][0]["detail"]
        assert put(c2, 4).status_code == 409  # above max_unit
        got = api("GET", f"/allocations/{c1}").json()
        assert got["consumer_generation"] == 1 and got["consumer_type"] == "INSTANCE"
        assert got["allocations"][rp["uuid"]]["resources"] == {rc: 3}
        r = put(c1, 1)  # null generation for an existing consumer
        assert r.status_code == 409 and r.json()["errors"][0]["code"] == "placement.concurrent_update"
        assert put(c1, 1, gen=1).status_code == 204
        # inventory in use cannot shrink below what is allocated, nor go
        gen = api("GET", base).json()["generation"]
        r = api("PUT", base + "/inventories/" + rc, json={"resource_provider_generation": gen, "total": 0})
        assert r.status_code == 400  # total must be at least 1
        r = api("DELETE", base + "/inventories/" + rc)
        assert r.status_code == 409 and r.json()["errors"][0]["code"] == "placement.inventory.inuse"
        r = api("DELETE", f"/resource_classes/{rc}")
        assert r.status_code == 409
        r = api("DELETE", base)
        assert r.status_code == 409 and r.json()["errors"][0]["code"] == "placement.resource_provider.inuse"
        # usages by project (grouped by consumer type at 1.38)
        assert api("GET", "/usages?project_id=p", version="1.37").json()["usages"].get(rc) == 1
        assert api("GET", "/usages?project_id=p&consumer_type=INSTANCE").json()["usages"]["INSTANCE"][
            "consumer_count"] >= 1
        # POST /allocations: several consumers at once, all or nothing
        r = api("POST", "/allocations", json={
            c1: {"allocations": {}, "project_id": "p", "user_id": "u", "consumer_generation": 2,
                 "consumer_type": "INSTANCE"},
            c2: {"allocations": {rp["uuid"]: {"resources": {rc: 3}}}, "project_id": "p", "user_id": "u",
                 "consumer_generation": None, "consumer_type": "MIGRATION"}})
        assert r.status_code == 204, r.text
        assert api("GET", f"/allocations/{c1}").json() == {"allocations": {}}
        allocs = api("GET", base + "/allocations").json()["allocations"]
        assert allocs == {c2: {"resources": {rc: 3}}}
        assert api("DELETE", f"/allocations/{c2}").status_code == 204
        assert api("DELETE", f"/allocations/{c2}").status_code == 404
    finally:
        api("DELETE", base)
        api("DELETE", f"/resource_classes/{rc}")


def test_allocation_candidates_nested_granular(api):
    vf = _custom("VF")
    api("PUT", f"/resource_classes/{vf}")
    root = _provider(api, **{"VCPU": {"total": 4}})
    r = api("POST", "/resource_providers", json={"name": _name("pf"), "parent_provider_uuid": root["uuid"]})
    pf = r.json()
    api("PUT", f"/resource_providers/{pf['uuid']}/inventories",
        json={"resource_provider_generation": 0, "inventories": {vf: {"total": 2}}})
    try:
        q = f"/allocation_candidates?resources=VCPU:1&resources1={vf}:1&group_policy=isolate&in_tree={root['uuid']}"
        r = api("GET", q)
        assert r.status_code == 200, r.text
        (req,) = r.json()["allocation_requests"]
        assert req["allocations"] == {root["uuid"]: {"resources": {"VCPU": 1}},
                                      pf["uuid"]: {"resources": {vf: 1}}}
        assert req["mappings"] == {"": [root["uuid"]], "1": [pf["uuid"]]}
        summaries = r.json()["provider_summaries"]
        assert summaries[pf["uuid"]]["parent_provider_uuid"] == root["uuid"]
        assert summaries[pf["uuid"]]["resources"] == {vf: {"capacity": 2, "used": 0}}
        # before 1.29 a nested provider cannot take part; before 1.25 no granular groups
        assert api("GET", f"/allocation_candidates?resources=VCPU:1,{vf}:1", version="1.28").json()[
            "allocation_requests"] == []
        assert api("GET", q, version="1.24").status_code == 400
        # 1.10 - 1.11: the list format
        assert api("GET", f"/allocation_candidates?resources={vf}:1", version="1.10").json()[
            "allocation_requests"] == []
        r = api("GET", "/allocation_candidates?resources=VCPU:1", version="1.10")
        assert {"allocations": [{"resource_provider": {"uuid": root["uuid"]}, "resources": {"VCPU": 1}}]} \
            in r.json()["allocation_requests"]
        # two suffixed groups need a group_policy
        r = api("GET", f"/allocation_candidates?resources1=VCPU:1&resources2={vf}:1")
        assert r.status_code == 400 and "group_policy" in r.json()["errors"][0]["detail"]
    finally:
        api("DELETE", f"/resource_providers/{pf['uuid']}")
        api("DELETE", f"/resource_providers/{root['uuid']}")
        api("DELETE", f"/resource_classes/{vf}")
