"""The Placement wire contract in process (no server): microversion variants of
bodies and routes, headers, error bodies, the reshaper, and the client class."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from onestack.common import auth, db, errors
from onestack.placement import core, models
from onestack.placement.client import PlacementClient

ROLES = {"admin": ["admin", "member", "reader"], "nova": ["service"], "someone": ["member", "reader"]}


@pytest.fixture
def client(tmp_path):
    db.configure(f"sqlite:///{tmp_path / 'placement.db'}")
    db.upgrade("placement")
    core.configure(None)
    with db.transaction() as s:
        core.sync_standard(s)

    def validator(token):
        return {"token": {"user": {"id": token, "name": token, "domain": {"id": "default"}},
                          "project": {"id": "p", "name": "p", "domain": {"id": "default"}},
                          "roles": [{"id": r, "name": r} for r in ROLES[token]]}}

    auth.set_validator(validator)
    from onestack.app import PrefixDispatcher
    from onestack.common.http import RequestIdMiddleware
    from onestack.placement.api import build

    app = RequestIdMiddleware(PrefixDispatcher({"/placement": build()}, None))
    with TestClient(app, base_url="http://cloud") as c:
        yield c
    auth.clear_cache()
    db.engine().dispose()


@pytest.fixture
def call(client):
    def go(method, path, version="1.39", token="admin", **kw):
        headers = {"X-Auth-Token": token, **kw.pop("headers", {})}
        if version:
            headers["OpenStack-API-Version"] = f"placement {version}"
        return client.request(method, "/placement" + path, headers=headers, **kw)

    return go


def _rp(call, name="cn", **inv):
    rp = call("POST", "/resource_providers", json={"name": name}).json()
    if inv:
        r = call("PUT", f"/resource_providers/{rp['uuid']}/inventories",
                 json={"resource_provider_generation": 0, "inventories": inv})
        assert r.status_code == 200, r.text
    return rp["uuid"]


def test_policy_admin_or_service(call):
    assert call("GET", "/resource_providers", token="nova").status_code == 200
    r = call("GET", "/resource_providers", token="someone")
    assert r.status_code == 403 and r.json()["errors"][0]["title"] == "Forbidden"


def test_create_provider_by_version_and_headers(call):
    r = call("POST", "/resource_providers", json={"name": "old"}, version="1.19")
    assert r.status_code == 201 and r.content == b""
    assert r.headers["location"].startswith("http://cloud/placement/resource_providers/")
    shown = call("GET", r.headers["location"][len("http://cloud/placement"):], version="1.15")
    assert shown.headers["cache-control"] == "no-cache" and "last-modified" in shown.headers
    links = {link["rel"] for link in shown.json()["links"]}
    assert links == {"self", "aggregates", "inventories", "usages", "traits", "allocations"}
    old = call("GET", r.headers["location"][len("http://cloud/placement"):], version="1.0")
    assert "root_provider_uuid" not in old.json() and "last-modified" not in old.headers
    assert {link["rel"] for link in old.json()["links"]} == {"self", "inventories", "usages"}
    assert call("POST", "/resource_providers", json={"name": "old"}).json()["errors"][0]["code"] == \
        "placement.duplicate_name"
    r = call("POST", "/resource_providers", json={"name": "x", "parent_provider_uuid": str(uuid.uuid4())})
    assert r.status_code == 400
    r = call("POST", "/resource_providers", content=b'{"name": "y"}', headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    r = call("POST", "/resource_providers", json={"name": "z", "parent_provider_uuid": None}, version="1.13")
    assert r.status_code == 400  # parent_provider_uuid is 1.14+


def test_allocations_formats_by_version(call):
    rp = _rp(call, VCPU={"total": 8})
    c = str(uuid.uuid4())
    r = call("PUT", f"/allocations/{c}", version="1.0",
             json={"allocations": [{"resource_provider": {"uuid": rp}, "resources": {"VCPU": 2}}]})
    assert r.status_code == 204, r.text
    assert call("GET", f"/allocations/{c}", version="1.0").json() == {
        "allocations": {rp: {"generation": 2, "resources": {"VCPU": 2}}}}
    got = call("GET", f"/allocations/{c}", version="1.38").json()
    assert got["project_id"] == "00000000-0000-0000-0000-000000000000"
    assert got["consumer_generation"] == 1 and got["consumer_type"] == "unknown"
    r = call("PUT", f"/allocations/{c}", version="1.8",  # project and user required from 1.8
             json={"allocations": [{"resource_provider": {"uuid": rp}, "resources": {"VCPU": 2}}]})
    assert r.status_code == 400
    r = call("PUT", f"/allocations/{c}", version="1.27", json={"allocations": {}, "project_id": "p",
                                                               "user_id": "u"})
    assert r.status_code == 400  # empty allocations only from 1.28
    r = call("PUT", f"/allocations/{c}", version="1.34", json={
        "allocations": {rp: {"resources": {"VCPU": 1}}}, "project_id": "p", "user_id": "u",
        "consumer_generation": 1, "mappings": {"": [rp]}})
    assert r.status_code == 204, r.text
    r = call("PUT", f"/allocations/{c}", version="1.38", json={
        "allocations": {rp: {"resources": {"VCPU": 1}}}, "project_id": "p", "user_id": "u",
        "consumer_generation": 2})
    assert r.status_code == 400  # consumer_type is required at 1.38
    r = call("PUT", f"/allocations/{c}", version="1.28", json={
        "allocations": {}, "project_id": "p", "user_id": "u", "consumer_generation": 2})
    assert r.status_code == 204
    assert call("GET", f"/allocations/{c}").json() == {"allocations": {}}
    assert call("GET", f"/resource_providers/{rp}/usages").json()["usages"] == {"VCPU": 0}


def test_aggregates_traits_and_classes_by_version(call):
    rp = _rp(call)
    agg = str(uuid.uuid4())
    r = call("PUT", f"/resource_providers/{rp}/aggregates", version="1.1", json=[agg])
    assert r.json() == {"aggregates": [agg]}
    assert call("GET", f"/resource_providers/{rp}", version="1.1").json()["generation"] == 0  # not bumped
    r = call("PUT", f"/resource_providers/{rp}/aggregates", json={"aggregates": [], "resource_provider_generation": 0})
    assert r.json() == {"aggregates": [], "resource_provider_generation": 1}
    assert call("GET", f"/resource_providers?member_of={agg}", version="1.3").json()["resource_providers"] == []
    # traits
    assert call("PUT", "/traits/CUSTOM_GOLD").status_code == 201
    assert call("PUT", "/traits/CUSTOM_GOLD").status_code == 204
    assert call("PUT", "/traits/GOLD").status_code == 400
    assert call("GET", "/traits/CUSTOM_GOLD").status_code == 204
    r = call("PUT", f"/resource_providers/{rp}/traits", json={"traits": ["CUSTOM_GOLD", "HW_CPU_X86_AVX2"],
                                                              "resource_provider_generation": 1})
    assert r.json() == {"traits": ["CUSTOM_GOLD", "HW_CPU_X86_AVX2"], "resource_provider_generation": 2}
    assert call("GET", "/traits?associated=true").json() == {"traits": ["CUSTOM_GOLD", "HW_CPU_X86_AVX2"]}
    assert call("GET", "/traits?name=in:CUSTOM_GOLD,NOPE").json() == {"traits": ["CUSTOM_GOLD"]}
    assert call("DELETE", "/traits/CUSTOM_GOLD").status_code == 409
    assert call("DELETE", "/traits/HW_CPU_X86_AVX2").status_code == 400
    r = call("GET", "/resource_providers?required=CUSTOM_GOLD,!HW_CPU_X86_SSE", version="1.22")
    assert [p["uuid"] for p in r.json()["resource_providers"]] == [rp]
    r = call("GET", "/resource_providers?required=in:CUSTOM_GOLD,CUSTOM_NONE", version="1.39")
    assert r.status_code == 400 and "CUSTOM_NONE" in r.json()["errors"][0]["detail"]
    assert call("DELETE", f"/resource_providers/{rp}/traits").status_code == 204
    assert call("DELETE", "/traits/CUSTOM_GOLD").status_code == 204
    # resource classes: rename before 1.7, create-or-confirm after
    assert call("POST", "/resource_classes", json={"name": "CUSTOM_A"}, version="1.2").status_code == 201
    r = call("PUT", "/resource_classes/CUSTOM_A", json={"name": "CUSTOM_B"}, version="1.6")
    assert r.json()["name"] == "CUSTOM_B"
    assert call("PUT", "/resource_classes/CUSTOM_B", version="1.7").status_code == 204
    assert call("PUT", "/resource_classes/VCPU", json={"name": "CUSTOM_C"}, version="1.6").status_code == 400
    assert call("DELETE", "/resource_classes/VCPU").status_code == 400
    assert call("DELETE", "/resource_classes/CUSTOM_B").status_code == 204
    assert call("GET", "/resource_classes/CUSTOM_B").status_code == 404


def test_inventory_routes(call):
    rp = _rp(call)
    r = call("POST", f"/resource_providers/{rp}/inventories", json={"resource_class": "DISK_GB", "total": 10})
    assert r.status_code == 201 and r.json()["resource_provider_generation"] == 1
    assert call("POST", f"/resource_providers/{rp}/inventories",
                json={"resource_class": "DISK_GB", "total": 10}).status_code == 409
    r = call("PUT", f"/resource_providers/{rp}/inventories/VCPU",
             json={"resource_provider_generation": 1, "total": 4, "reserved": 4})
    assert r.status_code == 200 and r.json()["reserved"] == 4  # reserved == total from 1.26
    r = call("PUT", f"/resource_providers/{rp}/inventories/VCPU", version="1.25",
             json={"resource_provider_generation": 2, "total": 4, "reserved": 4})
    assert r.status_code == 400
    assert call("GET", f"/resource_providers/{rp}/inventories/VCPU").json()["total"] == 4
    assert call("GET", f"/resource_providers/{rp}/inventories/PCPU").status_code == 404
    assert call("DELETE", f"/resource_providers/{rp}/inventories/VCPU").status_code == 204
    assert call("DELETE", f"/resource_providers/{rp}/inventories", version="1.4").status_code == 404
    assert call("DELETE", f"/resource_providers/{rp}/inventories", version="1.5").status_code == 204
    assert call("GET", f"/resource_providers/{rp}/inventories").json()["inventories"] == {}


def test_reshaper_and_parenting(call):
    root = _rp(call, "cn", VCPU={"total": 8})
    c = str(uuid.uuid4())
    call("PUT", f"/allocations/{c}", json={"allocations": {root: {"resources": {"VCPU": 2}}}, "project_id": "p",
                                           "user_id": "u", "consumer_generation": None, "consumer_type": "INSTANCE"})
    child = call("POST", "/resource_providers", json={"name": "numa0", "parent_provider_uuid": root}).json()
    gen = call("GET", f"/resource_providers/{root}").json()["generation"]
    r = call("POST", "/reshaper", json={
        "inventories": {root: {"resource_provider_generation": gen, "inventories": {}},
                        child["uuid"]: {"resource_provider_generation": 0,
                                        "inventories": {"VCPU": {"total": 8}}}},
        "allocations": {c: {"allocations": {child["uuid"]: {"resources": {"VCPU": 2}}}, "project_id": "p",
                            "user_id": "u", "consumer_generation": 1, "consumer_type": "INSTANCE"}}})
    assert r.status_code == 204, r.text
    assert list(call("GET", f"/allocations/{c}").json()["allocations"]) == [child["uuid"]]
    assert call("POST", "/reshaper", json={"inventories": {}, "allocations": {}}, version="1.29").status_code == 404
    # re-parenting from 1.37
    r = call("PUT", f"/resource_providers/{child['uuid']}", version="1.36", json={"name": "numa0",
                                                                               "parent_provider_uuid": None})
    assert r.status_code == 400
    r = call("PUT", f"/resource_providers/{child['uuid']}", json={"name": "numa0", "parent_provider_uuid": None})
    assert r.status_code == 200 and r.json()["root_provider_uuid"] == child["uuid"]


def test_candidate_query_errors(call):
    _rp(call, VCPU={"total": 8})
    ok = call("GET", "/allocation_candidates?resources=VCPU:1&limit=1")
    assert ok.status_code == 200 and len(ok.json()["allocation_requests"]) == 1
    for q, version in [("resources=VCPU:0", "1.39"), ("resources=VCPU", "1.39"), ("limit=1", "1.39"),
                       ("resources=VCPU:1&limit=0", "1.39"), ("resources=VCPU:1&required=!HW_CPU_X86_SSE", "1.21"),
                       ("resources=VCPU:1&required1=HW_CPU_X86_SSE", "1.39"),
                       ("resources=VCPU:1&member_of=not-a-uuid", "1.39"),
                       ("resources_X=VCPU:1", "1.32"), ("resources=VCPU:1&same_subtree=_X", "1.39"),
                       ("resources=VCPU:1&limit=1", "1.15"), ("resources=VCPU:1&resources=VCPU:2", "1.39")]:
        assert call("GET", "/allocation_candidates?" + q, version=version).status_code == 400, q
    assert call("GET", "/allocation_candidates?resources=VCPU:1", version="1.9").status_code == 404


def test_client_class(client, call):
    p = PlacementClient("http://cloud/placement", lambda: "nova", client=client)
    rp = str(uuid.uuid4())
    assert p.ensure_provider(rp, "host1")["generation"] == 0
    assert p.ensure_provider(rp, "host1")["name"] == "host1"
    assert p.ensure_provider(rp, "host1b")["name"] == "host1b"
    inv = p.set_inventory(rp, {"VCPU": {"total": 4, "allocation_ratio": 2.0}, "MEMORY_MB": {"total": 2048}})
    assert inv["VCPU"]["max_unit"] == 2147483647
    gen = call("GET", f"/resource_providers/{rp}").json()["generation"]
    p.set_inventory(rp, {"VCPU": {"total": 4, "allocation_ratio": 2.0}, "MEMORY_MB": {"total": 2048}})
    assert call("GET", f"/resource_providers/{rp}").json()["generation"] == gen  # nothing to change
    assert p.set_traits(rp, ["CUSTOM_FAST", "HW_CPU_X86_AVX2"]) == ["CUSTOM_FAST", "HW_CPU_X86_AVX2"]
    (cand,) = p.candidates({"VCPU": 2, "MEMORY_MB": 512}, limit=5, required=["CUSTOM_FAST"])
    assert cand.provider_uuid == rp and cand.allocations == {rp: {"VCPU": 2, "MEMORY_MB": 512}}
    assert p.candidates({"VCPU": 1}, forbidden=["CUSTOM_FAST"]) == []
    consumer = str(uuid.uuid4())
    assert p.claim(consumer, cand.allocations, "proj", "user") is True
    assert p.claim(str(uuid.uuid4()), {rp: {"VCPU": 7}}, "proj", "user") is False  # 2 + 7 > 8
    assert p.claim(consumer, {rp: {"VCPU": 8}}, "proj", "user") is True  # replaces its own 2
    assert p.usages(rp) == {"MEMORY_MB": 0, "VCPU": 8}
    assert p.release(consumer) is True and p.release(consumer) is False
    assert p.delete_provider(rp) is True and p.provider(rp) is None


def _bump(table, uuid_: str) -> None:
    """Another writer (a second scheduler, an operator) moved the row's generation."""
    with db.transaction() as s:
        s.execute(sa.update(table).where(table.uuid == uuid_).values(generation=table.generation + 1))


def test_client_retries_generation_races_but_not_refusals(client, call):
    p = PlacementClient("http://cloud/placement", lambda: "nova", client=client)
    sent, race = [], {}

    def hook(request):
        sent.append(request.method)
        target = race.pop(request.method, None)
        if target:
            _bump(*target)

    client.event_hooks["request"] = [hook]
    rp = str(uuid.uuid4())
    # a new host: one POST and one PUT, unless the generation moves between them: then the
    # PUT's 409 concurrent_update is re-read and written again
    race["PUT"] = (models.ResourceProvider, rp)
    inv = p.report_provider(rp, "racy", {"VCPU": {"total": 8}, "MEMORY_MB": {"total": 1024}}, new=True)
    assert sent == ["POST", "PUT", "GET", "PUT"] and inv["VCPU"]["total"] == 8
    assert call("GET", f"/resource_providers/{rp}/inventories").json()["inventories"]["VCPU"]["total"] == 8
    sent.clear()
    assert p.report_provider(rp, "racy", {"VCPU": {"total": 8}, "MEMORY_MB": {"total": 1024}}) == inv
    assert sent == ["GET", "GET"]  # known and unchanged: nothing written
    # the consumer's generation moves between the read and the write: re-read, claimed
    consumer = str(uuid.uuid4())
    assert p.claim(consumer, {rp: {"VCPU": 2}}, "proj", "user", consumer_generation=None) is True
    sent.clear()
    race["PUT"] = (models.Consumer, consumer)
    assert p.claim(consumer, {rp: {"VCPU": 4}}, "proj", "user") is True
    assert sent == ["GET", "PUT", "GET", "PUT"] and p.usages(rp)["VCPU"] == 4
    # a real refusal (no room; inventory in use) is the answer at once, not retried
    sent.clear()
    assert p.claim(str(uuid.uuid4()), {rp: {"VCPU": 200}}, "proj", "user", consumer_generation=None) is False
    assert sent == ["PUT"]
    sent.clear()
    with pytest.raises(errors.Conflict) as e:
        p.set_inventory(rp, {"MEMORY_MB": {"total": 1024}})  # VCPU is allocated
    assert e.value.extra["code"] == "placement.inventory.inuse" and sent == ["GET", "PUT"]
    # a race lost every time ends in the conflict, after the client's bounded tries
    sent.clear()
    p.retries = 2
    client.event_hooks["request"] = [lambda r: r.method == "PUT" and _bump(models.ResourceProvider, rp)]
    with pytest.raises(errors.Conflict) as e:
        p.set_inventory(rp, {"VCPU": {"total": 16}, "MEMORY_MB": {"total": 1024}})
    assert e.value.extra["code"] == "placement.concurrent_update"


def test_client_moves_a_claim_to_a_migration_and_back(client, call):
    """A move's claim as Nova's since Queens: the migration consumer takes over the source's
    allocation and the instance claims the destination, in one request (a destination with no
    room changes nothing); a revert gives the source back; an evacuation keeps both."""
    p = PlacementClient("http://cloud/placement", lambda: "nova", client=client)
    src, dst = str(uuid.uuid4()), str(uuid.uuid4())
    for rp, name in ((src, "src"), (dst, "dst")):
        p.report_provider(rp, name, {"VCPU": {"total": 4}, "MEMORY_MB": {"total": 1024}}, new=True)
    inst, mig = str(uuid.uuid4()), str(uuid.uuid4())
    assert p.claim(inst, {src: {"VCPU": 2, "MEMORY_MB": 512}}, "proj", "user", consumer_generation=None)

    def held(consumer):
        return {rp: a["resources"] for rp, a in p.allocations(consumer).get("allocations", {}).items()}

    assert p.move(inst, {dst: {"VCPU": 8, "MEMORY_MB": 512}}, mig, "proj", "user") is False  # 8 > 4
    assert held(inst) == {src: {"VCPU": 2, "MEMORY_MB": 512}} and held(mig) == {}
    assert p.move(inst, {dst: {"VCPU": 4, "MEMORY_MB": 1024}}, mig, "proj", "user") is True
    assert held(inst) == {dst: {"VCPU": 4, "MEMORY_MB": 1024}}
    assert held(mig) == {src: {"VCPU": 2, "MEMORY_MB": 512}}
    assert call("GET", f"/allocations/{mig}").json()["consumer_type"] == "MIGRATION"
    assert p.revert_move(inst, mig) is True
    assert held(inst) == {src: {"VCPU": 2, "MEMORY_MB": 512}} and held(mig) == {}
    assert p.revert_move(inst, mig) is False  # nothing left to give back
    assert p.usages(dst) == {"VCPU": 0, "MEMORY_MB": 0}
    # an evacuation: the dead host's room is kept beside the new one until it is dropped
    assert p.move(inst, {dst: {"VCPU": 2, "MEMORY_MB": 512}}, None, "proj", "user") is True
    assert set(held(inst)) == {src, dst}
    assert p.drop_provider(inst, src) is True and set(held(inst)) == {dst}
    assert p.drop_provider(inst, src) is False
