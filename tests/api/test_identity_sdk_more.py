"""Identity through openstacksdk, in-process: users, groups, roles and every kind of grant,
role assignment queries, domains, project tags (the /tags sub-resource the CLI does not
use), the catalog, application credentials, credentials, and tokens (validate, check,
revoke, domain and system scope, self-service password change)."""

from __future__ import annotations

import datetime
import json

import openstack
import pytest
from keystoneauth1.exceptions import http as ks_http
from openstack import exceptions

from tests.api.test_identity_resources import rc, sdk, suffix


def connect(cloud, **auth) -> openstack.connection.Connection:
    """A connection with the given credentials; password auth unless auth_type says otherwise."""
    auth_type = auth.pop("auth_type", "password")
    return openstack.connect(auth_type=auth_type,
                             auth={"auth_url": rc(cloud)["OS_AUTH_URL"], **auth},
                             region_name="RegionOne", identity_api_version="3")


def access_of(conn):
    """The keystoneauth AccessInfo of the connection's token (authenticating if need be)."""
    return conn.session.auth.get_access(conn.session)


def test_sdk_users_groups_and_every_grant(any_cloud):
    c, s = any_cloud, suffix()
    ident = sdk(c).identity
    p = ident.create_project(name=f"sp-{s}", domain_id="default")
    u = ident.create_user(name=f"su-{s}", password="pw-1", email=f"{s}@example.org",
                          description="from the sdk", default_project_id=p.id)
    got = ident.get_user(u.id)
    assert (got.email, got.description, got.default_project_id, got.is_enabled) == \
        (f"{s}@example.org", "from the sdk", p.id, True)
    g = ident.create_group(name=f"sg-{s}", description="sdk group")
    r = ident.create_role(name=f"sr-{s}")
    assert ident.find_user(u.name).id == u.id and ident.find_group(g.name).id == g.id

    ident.add_user_to_group(u, g)
    assert ident.check_user_in_group(u, g)
    assert [x.id for x in ident.group_users(g)] == [u.id]
    assert [x.id for x in ident.user_groups(u)] == [g.id]

    ident.assign_project_role_to_user(p, u, r)
    ident.assign_project_role_to_group(p, g, r)
    ident.assign_domain_role_to_user("default", u, r)
    ident.assign_domain_role_to_group("default", g, r)
    ident.assign_system_role_to_user(u, r, "all")
    ident.assign_system_role_to_group(g, r, "all")
    assert ident.validate_user_has_project_role(p, u, r)
    assert ident.validate_group_has_project_role(p, g, r)
    assert ident.validate_user_has_domain_role("default", u, r)
    assert ident.validate_group_has_domain_role("default", g, r)
    assert ident.validate_user_has_system_role(u, r, "all")
    assert ident.validate_group_has_system_role(g, r, "all")

    # the grant lists of each target
    for kw in (dict(project=p, user=u), dict(project=p, group=g), dict(domain="default", user=u),
               dict(domain="default", group=g), dict(system="all", user=u),
               dict(system="all", group=g)):
        assert [x.id for x in ident.role_assignments_filter(**kw)] == [r.id], kw

    # role assignment queries
    def scopes(**query):
        out = set()
        for a in ident.role_assignments(**query):
            scope = a.scope
            kind = next(k for k in ("project", "domain", "system") if k in scope)
            who = a.user["id"] if a.user else a.group["id"]
            out.add((kind, who))
        return out

    assert scopes(user_id=u.id) == {("project", u.id), ("domain", u.id), ("system", u.id)}
    assert scopes(group_id=g.id) == {("project", g.id), ("domain", g.id), ("system", g.id)}
    assert scopes(role_id=r.id, scope_project_id=p.id) == {("project", u.id), ("project", g.id)}
    assert scopes(role_id=r.id, scope_system="all") == {("system", u.id), ("system", g.id)}
    assert scopes(role_id=r.id, effective=True) == {("project", u.id), ("domain", u.id),
                                                    ("system", u.id)}
    named = list(ident.role_assignments(user_id=u.id, scope_project_id=p.id, include_names=True))
    assert [(a.role["name"], a.user["name"], a.scope["project"]["name"]) for a in named] == \
        [(r.name, u.name, p.name)]
    assert [x.id for x in ident.user_projects(u)] == [p.id]

    ident.unassign_project_role_from_user(p, u, r)
    ident.unassign_project_role_from_group(p, g, r)
    ident.unassign_domain_role_from_user("default", u, r)
    ident.unassign_domain_role_from_group("default", g, r)
    ident.unassign_system_role_from_user(u, r, "all")
    ident.unassign_system_role_from_group(g, r, "all")
    assert not ident.validate_user_has_project_role(p, u, r)
    assert not ident.validate_group_has_system_role(g, r, "all")
    assert not list(ident.role_assignments(role_id=r.id))

    ident.remove_user_from_group(u, g)
    assert not ident.check_user_in_group(u, g)
    updated = ident.update_user(u, email=f"new-{s}@example.org", is_enabled=False)
    assert updated.email == f"new-{s}@example.org" and updated.is_enabled is False
    assert ident.get_user(u.id).is_enabled is False

    ident.delete_user(u)
    ident.delete_group(g)
    ident.delete_role(r)
    ident.delete_project(p)
    assert ident.find_user(u.id) is None and ident.find_group(g.id) is None
    assert ident.find_role(r.id) is None
    with pytest.raises(exceptions.NotFoundException):
        ident.get_user(u.id)


def test_sdk_domains_and_project_tags(cloud):
    s = suffix()
    conn = sdk(cloud)
    ident = conn.identity
    d = ident.create_domain(name=f"sdom-{s}", description="one")
    assert ident.update_domain(d, description="two").description == "two"
    assert [x.id for x in ident.domains(name=d.name)] == [d.id]

    p = ident.create_project(name=f"stag-{s}", domain_id=d.id, tags=["one"])
    child = ident.create_project(name=f"schild-{s}", domain_id=d.id, parent_id=p.id)
    assert child.parent_id == p.id
    assert [x.id for x in ident.projects(parent_id=p.id)] == [child.id]
    assert {x.id for x in ident.projects(domain_id=d.id)} == {p.id, child.id}

    # the /projects/{id}/tags sub-resource
    p.add_tag(ident, "two")
    assert sorted(ident.get_project(p.id).tags) == ["one", "two"]
    p.check_tag(ident, "two")
    p.remove_tag(ident, "one")
    assert ident.get_project(p.id).tags == ["two"]
    with pytest.raises(exceptions.NotFoundException):
        p.check_tag(ident, "one")
    p.set_tags(ident, ["x", "y"])
    assert sorted(p.fetch_tags(ident).tags) == ["x", "y"]
    assert [x.id for x in ident.projects(tags="x,y")] == [p.id]
    p.remove_all_tags(ident)
    assert ident.get_project(p.id).tags == []

    # a domain is deleted only once disabled, and takes its projects along
    with pytest.raises(exceptions.HttpException):
        ident.delete_domain(d)
    ident.update_domain(d, is_enabled=False)
    ident.delete_domain(d)
    assert ident.find_domain(d.id) is None and ident.find_project(child.id) is None


def test_sdk_catalog(cloud):
    s = suffix()
    ident = sdk(cloud).identity
    top = ident.create_region(id=f"STop-{s}", description="top")
    sub = ident.create_region(id=f"SSub-{s}", parent_region_id=top.id)
    assert ident.get_region(sub.id).parent_region_id == top.id
    assert [x.id for x in ident.regions(parent_region_id=top.id)] == [sub.id]
    assert ident.update_region(sub, description="below").description == "below"

    svc = ident.create_service(name=f"ssvc-{s}", type=f"stype-{s}", description="d")
    assert ident.find_service(svc.name).id == svc.id
    assert ident.update_service(svc, description="e").description == "e"
    ep = ident.create_endpoint(service_id=svc.id, interface="public", url="http://127.0.0.1:9/x",
                               region_id=sub.id)
    assert ep.region_id == sub.id and ep.is_enabled is True
    assert [x.id for x in ident.endpoints(service_id=svc.id, interface="public")] == [ep.id]
    assert [x.id for x in ident.endpoints(region_id=sub.id)] == [ep.id]
    ep = ident.update_endpoint(ep, url="http://127.0.0.1:9/y", is_enabled=False)
    assert ident.get_endpoint(ep.id).url == "http://127.0.0.1:9/y"
    assert ident.get_endpoint(ep.id).is_enabled is False

    ident.delete_endpoint(ep)
    assert ident.find_endpoint(ep.id) is None
    ident.delete_service(svc)
    ident.delete_region(sub)
    ident.delete_region(top)
    assert ident.find_region(top.id) is None


def test_sdk_application_credentials_and_credentials(cloud):
    c, s = cloud, suffix()
    ident = sdk(c).identity
    p = ident.create_project(name=f"sacp-{s}", domain_id="default")
    u = ident.create_user(name=f"sacu-{s}", password="pw", domain_id="default")
    ident.assign_project_role_to_user(p, u, ident.find_role("member"))
    user = connect(c, username=u.name, password="pw", user_domain_name="Default",
                   project_name=p.name, project_domain_name="Default")
    uid = user.identity

    expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=2)
    ac = uid.create_application_credential(
        u.id, f"sac-{s}", roles=[{"name": "member"}], description="sdk",
        expires_at=expires.strftime("%Y-%m-%dT%H:%M:%S"))
    assert ac.secret and ac.project_id == p.id and "member" in {r["name"] for r in ac.roles}
    assert [x.id for x in uid.application_credentials(u.id)] == [ac.id]
    assert uid.get_application_credential(u.id, ac.id).name == ac.name
    assert uid.find_application_credential(u.id, ac.name).id == ac.id
    assert list(uid.access_rules(u.id)) == []

    app = connect(c, auth_type="v3applicationcredential", application_credential_id=ac.id,
                  application_credential_secret=ac.secret)
    assert app.current_project_id == p.id and app.current_user_id == u.id
    app.close()
    uid.delete_application_credential(u.id, ac.id)
    assert uid.find_application_credential(u.id, ac.id) is None
    app = connect(c, auth_type="v3applicationcredential", application_credential_id=ac.id,
                  application_credential_secret=ac.secret)
    with pytest.raises(ks_http.Unauthorized):
        access_of(app)
    app.close()

    # the user's own credentials
    blob = json.dumps({"access": f"sak-{s}", "secret": "one"})
    cred = uid.create_credential(type="ec2", user_id=u.id, project_id=p.id, blob=blob)
    assert [x.id for x in uid.credentials()] == [cred.id]
    assert [x.id for x in ident.credentials(user_id=u.id, type="ec2")] == [cred.id]
    updated = uid.update_credential(cred, blob=json.dumps({"access": f"sak-{s}", "secret": "two"}))
    assert json.loads(updated.blob)["secret"] == "two"
    uid.delete_credential(cred)
    assert ident.find_credential(cred.id) is None

    user.close()
    ident.delete_user(u)
    ident.delete_project(p)


def test_sdk_tokens_scopes_and_password_change(cloud):
    c, s = cloud, suffix()
    ident = sdk(c).identity
    admin_pw = rc(c)["OS_PASSWORD"]

    # domain and system scope
    dom = connect(c, username="admin", password=admin_pw, user_domain_name="Default",
                  domain_name="Default")
    acc = access_of(dom)
    assert acc.domain_id == "default" and acc.project_id is None
    assert "admin" in {x.name for x in dom.identity.users()}
    dom.close()
    system = connect(c, username="admin", password=admin_pw, user_domain_name="Default",
                     system_scope="all")
    acc = access_of(system)
    assert acc.system_scoped and acc.project_id is None
    assert "admin" in acc.role_names
    system.close()

    # validate, check and revoke another user's token
    p = ident.create_project(name=f"stp-{s}", domain_id="default")
    u = ident.create_user(name=f"stu-{s}", password="pw-1", domain_id="default")
    ident.assign_project_role_to_user(p, u, ident.find_role("member"))
    user = connect(c, username=u.name, password="pw-1", user_domain_name="Default",
                   project_name=p.name, project_domain_name="Default")
    token = user.auth_token
    info = ident.validate_token(token)
    assert info.user["id"] == u.id and info.project["id"] == p.id
    assert {r["name"] for r in info.roles} == {"member", "reader"}
    assert ident.check_token(token) is True
    ident.revoke_token(token)
    assert ident.check_token(token) is False
    with pytest.raises(exceptions.NotFoundException):
        ident.validate_token(token)
    user.close()

    # self-service password change: the old password stops working
    user = connect(c, username=u.name, password="pw-1", user_domain_name="Default",
                   project_name=p.name, project_domain_name="Default")
    user.identity.update_password(u.id, "pw-1", "pw-2")
    user.close()
    again = connect(c, username=u.name, password="pw-2", user_domain_name="Default",
                    project_name=p.name, project_domain_name="Default")
    assert again.current_user_id == u.id
    again.close()
    old = connect(c, username=u.name, password="pw-1", user_domain_name="Default",
                  project_name=p.name, project_domain_name="Default")
    with pytest.raises(ks_http.Unauthorized):
        access_of(old)
    old.close()

    ident.delete_user(u)
    ident.delete_project(p)
