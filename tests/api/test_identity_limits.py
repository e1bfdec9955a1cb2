"""Unified limits (/v3/registered_limits, /v3/limits, /v3/limits/model) through the real
clients: `openstack registered limit ...` / `openstack limit ...` and openstacksdk.
Bad input gets Keystone's error body and changes nothing; a project member sees only
its own project's limits. Each test makes its own service, resources and projects."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
from openstack import exceptions as sdk_exc

from tests.api.test_identity_resources import (
    drop_domain,
    low,
    osc,
    osj,
    password_env,
    refused,
    sdk,
    suffix,
)


@contextmanager
def made_service(cloud) -> Iterator[SimpleNamespace]:
    """A service of its own and a project, both removed afterwards (with what limits
    remain on them)."""
    conn, s = sdk(cloud), suffix()
    svc = conn.identity.create_service(name=f"limsvc-{s}", type=f"limtype-{s}")
    project = conn.identity.create_project(name=f"limproj-{s}", domain_id="default")
    try:
        yield SimpleNamespace(conn=conn, s=s, svc=svc, project=project)
    finally:
        for lim in conn.identity.limits(service_id=svc.id):
            conn.identity.delete_limit(lim, ignore_missing=True)
        for reg in conn.identity.registered_limits(service_id=svc.id):
            conn.identity.delete_registered_limit(reg, ignore_missing=True)
        conn.identity.delete_project(project, ignore_missing=True)
        conn.identity.delete_service(svc, ignore_missing=True)


@pytest.fixture
def env(cloud):
    with made_service(cloud) as e:
        yield e


def _raw(conn, method: str, path: str, body=None):
    """A request the clients cannot send (their own checks stop it first), through the
    SDK's authenticated identity adapter."""
    return conn.identity.request(path, method, json=body, raise_exc=False)


def _error(resp, code: int) -> str:
    assert resp.status_code == code, resp.text
    err = resp.json()["error"]
    assert err["code"] == code and err["title"] and err["message"]
    return err["message"]


def test_registered_limit_and_limit_lifecycle_through_cli(cloud, env):
    c, s = cloud, env.s
    res = f"cores-{s}"
    reg = low(osj(c, "registered", "limit", "create", "--service", env.svc.name, "--default-limit", "10",
                  "--region", "RegionOne", "--description", "first", res))
    assert reg["default_limit"] == 10 and reg["service_id"] == env.svc.id
    assert reg["region_id"] == "RegionOne" and reg["resource_name"] == res

    rows = osj(c, "registered", "limit", "list", "--service", env.svc.name, "--region", "RegionOne")
    assert [low(r)["id"] for r in rows] == [reg["id"]]
    assert osj(c, "registered", "limit", "list", "--resource-name", f"nothing-{s}") == []
    osc(c, "registered", "limit", "set", reg["id"], "--default-limit", "20", "--description", "second")
    shown = low(osj(c, "registered", "limit", "show", reg["id"]))
    assert shown["default_limit"] == 20 and shown["description"] == "second"

    lim = low(osj(c, "limit", "create", "--project", env.project.name, "--service", env.svc.name,
                  "--resource-limit", "5", "--region", "RegionOne", "--description", "mine", res))
    assert lim["project_id"] == env.project.id and lim["resource_limit"] == 5
    assert lim["service_id"] == env.svc.id and lim["resource_name"] == res
    for filt in (("--project", env.project.name), ("--service", env.svc.name), ("--resource-name", res),
                 ("--region", "RegionOne")):
        assert lim["id"] in {low(r)["id"] for r in osj(c, "limit", "list", *filt)}, filt
    osc(c, "limit", "set", lim["id"], "--resource-limit", "7")
    assert low(osj(c, "limit", "show", lim["id"]))["resource_limit"] == 7

    # A registered limit with limits on it keeps its service, region and resource (403)
    # and cannot be deleted; its default can still change.
    r = osc(c, "registered", "limit", "set", reg["id"], "--resource-name", f"other-{s}", check=False)
    assert refused(r, "limits associated", "403")
    r = osc(c, "registered", "limit", "delete", reg["id"], check=False)
    assert r.returncode != 0
    osc(c, "registered", "limit", "set", reg["id"], "--default-limit", "30")
    shown = low(osj(c, "registered", "limit", "show", reg["id"]))
    assert shown["resource_name"] == res and shown["default_limit"] == 30

    # nor can its service go while it names it
    assert refused(osc(c, "service", "delete", env.svc.id, check=False), "registered limits refer")

    osc(c, "limit", "delete", lim["id"])
    assert refused(osc(c, "limit", "show", lim["id"], check=False), "Could not find limit", "404")
    osc(c, "registered", "limit", "set", reg["id"], "--resource-name", f"other-{s}")
    osc(c, "registered", "limit", "delete", reg["id"])
    assert osj(c, "registered", "limit", "list", "--service", env.svc.name) == []


def test_sdk_calls_model_and_project_delete(cloud, env):
    conn = env.conn
    model = conn.identity.get("/limits/model").json()["model"]
    assert model["name"] == "flat" and model["description"]
    home = conn.identity.get("/", headers={"Accept": "application/json-home"}).json()["resources"]
    rel = "https://docs.openstack.org/api/openstack-identity/3/rel/"
    assert home[rel + "limit_model"] == {"href": "/v3/limits/model"}
    assert home[rel + "registered_limits"] == {"href": "/v3/registered_limits"}

    reg = conn.identity.create_registered_limit(service_id=env.svc.id, resource_name="ram",
                                                default_limit=-1)  # -1: unlimited
    assert reg.default_limit == -1 and reg.region_id is None
    lim = conn.identity.create_limit(service_id=env.svc.id, resource_name="ram",
                                     project_id=env.project.id, resource_limit=0)
    assert conn.identity.get_limit(lim.id).resource_limit == 0
    conn.identity.update_limit(lim, resource_limit=100)
    assert [x.resource_limit for x in conn.identity.limits(project_id=env.project.id)] == [100]
    assert conn.identity.update_registered_limit(reg, default_limit=50).default_limit == 50

    # A region that a registered limit names stays (403), as its service does.
    region = conn.identity.create_region(id=f"limregion-{env.s}")
    regional = conn.identity.create_registered_limit(service_id=env.svc.id, resource_name="ram",
                                                     region_id=region.id, default_limit=1)
    with pytest.raises(sdk_exc.ForbiddenException):
        conn.identity.delete_region(region)
    conn.identity.delete_registered_limit(regional)
    conn.identity.delete_region(region)

    # A project's limits go with it.
    conn.identity.delete_project(env.project)
    assert list(conn.identity.limits(service_id=env.svc.id)) == []
    conn.identity.delete_registered_limit(reg)


def test_bad_input_gets_keystone_errors_and_changes_nothing(cloud, env):
    conn, svc, pid = env.conn, env.svc.id, env.project.id
    good = {"service_id": svc, "resource_name": "disk", "default_limit": 5}
    assert _raw(conn, "POST", "/registered_limits", {"registered_limits": [good]}).status_code == 201

    def registered():
        return sorted((r.resource_name, r.default_limit) for r in conn.identity.registered_limits(service_id=svc))

    def project_limits():
        return list(conn.identity.limits(service_id=svc))

    before = registered()
    cases = [
        ({**good, "service_id": "0" * 32, "resource_name": "x"}, 400, "service_id"),
        ({**good, "resource_name": "x", "region_id": "NoSuchRegion"}, 400, "region_id"),
        ({**good, "resource_name": "x", "default_limit": -2}, 400, "default_limit"),
        ({**good, "resource_name": "x", "default_limit": "ten"}, 400, "default_limit"),
        ({**good, "resource_name": "x", "bogus": 1}, 400, "bogus"),
        (good, 409, "Duplicate entry"),
    ]
    for body, code, word in cases:
        # in a batch after a good one: all or nothing
        batch = [{**good, "resource_name": "fine"}, body]
        msg = _error(_raw(conn, "POST", "/registered_limits", {"registered_limits": batch}), code)
        assert word in msg, msg
    msg = _error(_raw(conn, "POST", "/registered_limits", {"registered_limits": []}), 400)
    assert "registered_limits" in msg
    _error(_raw(conn, "POST", "/registered_limits", {"registered_limit": good}), 400)
    assert registered() == before

    lim = {"service_id": svc, "resource_name": "disk", "project_id": pid, "resource_limit": 3}
    cases = [
        ({**lim, "resource_limit": -7}, 400, "resource_limit"),
        ({**lim, "project_id": "0" * 32}, 400, "project_id"),
        ({**lim, "resource_name": "unregistered"}, 403, "no corresponding registered limit"),
        ({**lim, "region_id": "RegionOne"}, 403, "no corresponding registered limit"),
        ({k: v for k, v in lim.items() if k != "project_id"}, 400, "project_id"),
        ({**lim, "domain_id": "default"}, 400, "project_id"),
    ]
    for body, code, word in cases:
        msg = _error(_raw(conn, "POST", "/limits", {"limits": [body]}), code)
        assert word in msg, msg
    assert project_limits() == []

    created = conn.identity.create_limit(**lim)
    msg = _error(_raw(conn, "POST", "/limits", {"limits": [lim]}), 409)
    assert "Duplicate entry" in msg
    _error(_raw(conn, "PATCH", f"/limits/{created.id}", {"limit": {"resource_limit": -3}}), 400)
    _error(_raw(conn, "PATCH", f"/limits/{created.id}", {"limit": {"project_id": "x"}}), 400)
    assert [x.resource_limit for x in project_limits()] == [3]
    _error(_raw(conn, "GET", "/limits/nope"), 404)
    _error(_raw(conn, "DELETE", "/registered_limits/nope"), 404)
    with pytest.raises(sdk_exc.ForbiddenException):
        conn.identity.delete_registered_limit(conn.identity.registered_limits(service_id=svc).__next__())
    assert registered() == before


def test_member_sees_only_its_project_limits(cloud, env):
    c, conn, svc = cloud, env.conn, env.svc
    conn.identity.create_registered_limit(service_id=svc.id, resource_name="vols", default_limit=10)
    other = conn.identity.create_limit(service_id=svc.id, resource_name="vols",
                                       project_id=env.project.id, resource_limit=1)
    with c.new_member("limmember") as menv:
        mine_project = conn.identity.find_project(menv["OS_PROJECT_NAME"], domain_id="default")
        mine = conn.identity.create_limit(service_id=svc.id, resource_name="vols",
                                          project_id=mine_project.id, resource_limit=2)
        seen = osj(c, "limit", "list", env=menv)
        assert {low(r)["id"] for r in seen} == {mine.id}
        assert low(osj(c, "limit", "show", mine.id, env=menv))["resource_limit"] == 2
        assert refused(osc(c, "limit", "show", other.id, env=menv, check=False), "403", "not authorized")
        # members read registered limits but write nothing
        assert "vols" in {low(r)["resource name"] for r in osj(c, "registered", "limit", "list", env=menv)}
        assert refused(osc(c, "limit", "set", mine.id, "--resource-limit", "99", env=menv, check=False),
                       "403", "not authorized")
        assert refused(osc(c, "limit", "delete", other.id, env=menv, check=False))
        assert conn.identity.get_limit(mine.id).resource_limit == 2
        assert conn.identity.get_limit(other.id).resource_limit == 1


def test_domain_scoped_caller_sees_its_domain_limits(cloud, env):
    c, conn, svc, s = cloud, env.conn, env.svc, env.s
    dom = conn.identity.create_domain(name=f"limdom-{s}")
    try:
        proj = conn.identity.create_project(name=f"limdproj-{s}", domain_id=dom.id)
        user = conn.identity.create_user(name=f"limduser-{s}", password=f"pw-{s}", domain_id=dom.id)
        conn.identity.assign_domain_role_to_user(dom, user, conn.identity.find_role("member"))
        conn.identity.create_registered_limit(service_id=svc.id, resource_name="nets", default_limit=3)
        in_project = conn.identity.create_limit(service_id=svc.id, resource_name="nets",
                                                project_id=proj.id, resource_limit=4)
        # a project id that is a domain makes a domain limit, as in Keystone
        on_domain = conn.identity.create_limit(service_id=svc.id, resource_name="nets",
                                               project_id=dom.id, resource_limit=5)
        assert on_domain.domain_id == dom.id and on_domain.project_id is None
        conn.identity.create_limit(service_id=svc.id, resource_name="nets",
                                   project_id=env.project.id, resource_limit=6)
        denv = password_env(c, user.name, f"pw-{s}", user_domain=dom.name, domain=dom.name)
        seen = {low(r)["id"] for r in osj(c, "limit", "list", env=denv)}
        assert seen == {in_project.id, on_domain.id}
    finally:
        for lim in conn.identity.limits(service_id=svc.id):
            conn.identity.delete_limit(lim)
        drop_domain(conn, dom.id)
