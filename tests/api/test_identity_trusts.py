"""Trusts (OS-TRUST) through the real clients: `openstack trust create/list/show/delete`,
keystoneauth's ``v3.Password(trust_id=...)`` and openstacksdk on a trust-scoped session
(the trustee acting as the trustor against compute and networking), the limits of a
trust (uses, expiry, revocation, redelegation), the roles API Tempest checks, and the
service path the orchestration engine takes (``ServiceAuth.trust_token``).

Each test makes its own trustor (in a project of its own, with a role to delegate and
one not to), trustee and stranger, and removes them."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import httpx
import openstack
import pytest
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from onestack.common import errors
from onestack.common.clients import RestClient, ServiceAuth
from tests.api.test_identity_resources import low, osc, osj, password_env, rc, refused, sdk, suffix
from tests.cloud import wait_for

IDENTITY = {"service_type": "identity", "interface": "public"}


@contextmanager
def make_parties(cloud) -> Iterator[SimpleNamespace]:
    """trustor (member, deleg-*, other-* on project tproj-*), trustee, stranger (member on
    the same project), and a third user for redelegation; all removed afterwards."""
    conn, s = sdk(cloud), suffix()
    pw = f"pw-{s}"
    project = conn.identity.create_project(name=f"tproj-{s}", domain_id="default")
    users = {
        who: conn.identity.create_user(name=f"{who}-{s}", password=pw, domain_id="default")
        for who in ("trustor", "trustee", "stranger", "third")
    }
    member = conn.identity.find_role("member")
    deleg = conn.identity.create_role(name=f"deleg-{s}")
    other = conn.identity.create_role(name=f"other-{s}")
    for role in (member, deleg, other):
        conn.identity.assign_project_role_to_user(project, users["trustor"], role)
    conn.identity.assign_project_role_to_user(project, users["stranger"], member)
    try:
        yield SimpleNamespace(project=project, pw=pw, member=member, deleg=deleg, other=other,
                              **{k: u for k, u in users.items()})
    finally:
        for u in users.values():
            conn.identity.delete_user(u, ignore_missing=True)
        conn.identity.delete_project(project, ignore_missing=True)
        for role in (deleg, other):
            conn.identity.delete_role(role, ignore_missing=True)


@pytest.fixture
def parties(cloud):
    with make_parties(cloud) as p:
        yield p


def env_of(cloud, p, who: str, scoped: bool = True) -> dict[str, str]:
    user = getattr(p, who)
    return password_env(cloud, user.name, p.pw, project=p.project.name if scoped else None)


def session_of(cloud, p, who: str, **scope) -> ks_session.Session:
    """A keystoneauth session of one of the parties (project-scoped unless ``scope``
    says otherwise, e.g. trust_id=...)."""
    if not scope:
        scope = {"project_id": p.project.id}
    auth = v3.Password(auth_url=rc(cloud)["OS_AUTH_URL"], username=getattr(p, who).name,
                       password=p.pw, user_domain_id="default", **scope)
    return ks_session.Session(auth=auth)


def conn_of(sess: ks_session.Session) -> openstack.connection.Connection:
    return openstack.connection.Connection(session=sess, region_name="RegionOne")


def new_trust(p, sess=None, **kw):
    """A trust from the trustor to the trustee on the project delegating deleg-* (and
    what ``kw`` says), made with openstacksdk as the trustor."""
    attrs = dict(trustor_user_id=p.trustor.id, trustee_user_id=p.trustee.id,
                 project_id=p.project.id, roles=[{"name": p.deleg.name}], is_impersonation=True)
    attrs.update(kw)
    return conn_of(sess).identity.create_trust(**attrs)


def identity_url(cloud, path: str) -> str:
    return f"{rc(cloud)['OS_AUTH_URL']}{path}"


def token_body(cloud, sess: ks_session.Session) -> dict:
    """The session's own token as identity validates it (GET /v3/auth/tokens)."""
    return sess.get(identity_url(cloud, "/auth/tokens"),
                    headers={"X-Subject-Token": sess.get_token()}).json()["token"]


# -- the CLI ---------------------------------------------------------------------------


def test_trust_crud_with_the_cli(cloud, parties):
    c, p = cloud, parties
    trustor = env_of(c, p, "trustor")
    # A trustor who is no admin names roles and the trustee by id or (roles) by name:
    # the client cannot look them up and sends what it was given.
    t = osj(c, "trust", "create", "--project", p.project.id, "--role", p.deleg.name,
            "--role", p.member.id, "--impersonate", "--expiration", "2099-01-02T03:04:05",
            p.trustor.id, p.trustee.id, env=trustor)
    assert t["trustor_user_id"] == p.trustor.id and t["trustee_user_id"] == p.trustee.id
    assert t["project_id"] == p.project.id and t["is_impersonation"] is True
    assert t["expires_at"] == "2099-01-02T03:04:05.000000Z"
    assert t["remaining_uses"] is None and t["redelegation_count"] == 0
    assert {r["name"] for r in t["roles"]} == {p.deleg.name, "member"}

    # trustor and trustee see it; someone else in the same project does not
    assert osj(c, "trust", "show", t["id"], env=trustor)["id"] == t["id"]
    shown = osj(c, "trust", "show", t["id"], env=env_of(c, p, "trustee", scoped=False))
    assert shown["trustor_user_id"] == p.trustor.id
    stranger = env_of(c, p, "stranger")
    # (the server says 403; the client then looks the id up as a name and says so)
    assert refused(osc(c, "trust", "show", t["id"], env=stranger, check=False), "No Trust found")
    assert t["id"] in {low(r)["id"] for r in osj(c, "trust", "list", env=trustor)}
    assert t["id"] not in {low(r)["id"] for r in osj(c, "trust", "list", env=stranger)}
    assert refused(osc(c, "trust", "list", "--trustor", p.trustor.id, env=stranger, check=False),
                   "403")
    assert t["id"] in {low(r)["id"] for r in osj(c, "trust", "list")}  # the admin sees all

    # refused: a trust for someone else, a role the trustor does not hold, no such project
    r = osc(c, "trust", "create", "--project", p.project.id, "--role", "member",
            p.stranger.id, p.trustee.id, env=trustor, check=False)
    assert refused(r, "should match the trustor")
    r = osc(c, "trust", "create", "--project", p.project.id, "--role", "admin",
            p.trustor.id, p.trustee.id, env=trustor, check=False)
    assert refused(r, "403") and "admin" in r.stderr
    r = osc(c, "trust", "create", "--project", "no-such-project", "--role", "member",
            p.trustor.id, p.trustee.id, env=trustor, check=False)
    assert refused(r, "404")

    # only the trustor (or an admin) deletes it
    assert refused(osc(c, "trust", "delete", t["id"], env=env_of(c, p, "trustee", scoped=False),
                       check=False))
    osc(c, "trust", "delete", t["id"], env=trustor)
    assert refused(osc(c, "trust", "show", t["id"], env=trustor, check=False), "No Trust found")


def test_cli_runs_as_the_trustor_with_os_trust_id(cloud, parties):
    c, p = cloud, parties
    t = new_trust(p, session_of(c, p, "trustor"), roles=[{"name": "member"}])
    env = {**env_of(c, p, "trustee", scoped=False), "OS_TRUST_ID": t.id}
    tok = osj(c, "token", "issue", env=env)
    assert tok["user_id"] == p.trustor.id and tok["project_id"] == p.project.id
    net = osj(c, "network", "create", f"trustnet-{suffix()}", env=env)
    assert net["project_id"] == p.project.id
    assert net["id"] in {low(n)["id"] for n in osj(c, "network", "list", env=env)}
    osc(c, "network", "delete", net["id"], env=env)


# -- trust-scoped tokens -------------------------------------------------------------------


def test_trust_scoped_token_acts_as_trustor_in_other_services(cloud, parties):
    c, p = cloud, parties
    trustor = session_of(c, p, "trustor")
    t = new_trust(p, trustor, roles=[{"name": p.deleg.name}, {"name": "member"}])
    sess = session_of(c, p, "trustee", trust_id=t.id)
    ref = sess.auth.get_access(sess)
    assert ref.trust_scoped and ref.trust_id == t.id
    assert token_body(c, sess)["OS-TRUST:trust"]["impersonation"] is True
    assert ref.trustor_user_id == p.trustor.id and ref.trustee_user_id == p.trustee.id
    assert ref.user_id == p.trustor.id, "impersonation: the token's user is the trustor"
    assert ref.project_id == p.project.id
    # the delegated roles (and what they imply), never the trustor's others
    assert set(ref.role_names) == {p.deleg.name, "member", "reader"}

    # other services see the trustor working in its project
    conn = conn_of(sess)
    net = conn.network.create_network(name=f"trustnet-{suffix()}")
    try:
        assert net.project_id == p.project.id
        assert net.id in {n.id for n in conn.network.networks()}
        assert list(conn.compute.servers()) == []
    finally:
        conn.network.delete_network(net)

    # without impersonation the trustee is the user, with the same delegated roles
    plain = new_trust(p, trustor, is_impersonation=False)
    sess2 = session_of(c, p, "trustee", trust_id=plain.id)
    ref2 = sess2.auth.get_access(sess2)
    assert ref2.user_id == p.trustee.id
    assert token_body(c, sess2)["OS-TRUST:trust"]["impersonation"] is False
    assert set(ref2.role_names) == {p.deleg.name}
    assert conn_of(sess2).network.find_network(f"nothing-{suffix()}") is None

    # only the trustee may use the trust
    stranger = session_of(c, p, "stranger", trust_id=t.id)
    with pytest.raises(ks_exc.Forbidden):
        stranger.auth.get_access(stranger)

    # a trust-scoped token cannot be rescoped, nor delegate further (redelegation not
    # allowed by this trust), nor make application credentials that would outlive it
    token = sess.get_token()
    again = v3.Token(auth_url=rc(c)["OS_AUTH_URL"], token=token, project_id=p.project.id)
    with pytest.raises(ks_exc.Forbidden):
        again.get_access(ks_session.Session())
    with pytest.raises(openstack.exceptions.ForbiddenException, match="redelegation"):
        new_trust(p, sess, trustee_user_id=p.third.id)
    with pytest.raises(openstack.exceptions.ForbiddenException, match="delegation"):
        conn.identity.create_application_credential(user=p.trustor.id, name=f"ac-{suffix()}")


def test_trust_tokens_end_with_the_trust_or_the_trustors_role(cloud, parties):
    c, p = cloud, parties
    conn, trustor = sdk(c), session_of(c, p, "trustor")
    t = new_trust(p, trustor)

    def fresh():
        sess = session_of(c, p, "trustee", trust_id=t.id)
        sess.get_token()
        return sess

    def works(sess) -> bool:
        r = httpx.get(f"{c.url}/networking/v2.0/networks",
                      headers={"X-Auth-Token": sess.get_token()})
        assert r.status_code in (200, 401), r.text
        return r.status_code == 200

    sess = fresh()
    assert works(sess)
    # the trustor loses the delegated role: the token stops working, no new one is made
    conn.identity.unassign_project_role_from_user(p.project, p.trustor, p.deleg)
    assert not works(sess)
    with pytest.raises(ks_exc.Forbidden, match="delegated roles"):
        fresh()
    conn.identity.assign_project_role_to_user(p.project, p.trustor, p.deleg)
    sess = fresh()
    assert works(sess)
    # the trustor is disabled: the same
    conn.identity.update_user(p.trustor, is_enabled=False)
    assert not works(sess)
    with pytest.raises(ks_exc.Forbidden, match="Trustor is disabled"):
        fresh()
    conn.identity.update_user(p.trustor, is_enabled=True)
    sess = fresh()
    assert works(sess)
    # the trust is deleted: its tokens fail at once, in every service, and no new one
    conn_of(trustor).identity.delete_trust(t.id)
    assert not works(sess)
    r = httpx.head(identity_url(c, "/auth/tokens"), headers={
        "X-Auth-Token": conn.session.get_token(), "X-Subject-Token": sess.get_token()})
    assert r.status_code == 404
    with pytest.raises(ks_exc.Unauthorized):
        fresh()


def test_trust_uses_expiry_and_bad_input(any_cloud):
    with make_parties(any_cloud) as p:
        check_uses_expiry_and_bad_input(any_cloud, p)


def check_uses_expiry_and_bad_input(c, p):
    trustor = session_of(c, p, "trustor")
    ident = conn_of(trustor).identity

    # remaining_uses: each token takes one; the last token keeps working
    t = new_trust(p, trustor, remaining_uses=2)
    first = session_of(c, p, "trustee", trust_id=t.id)
    first.get_token()
    assert ident.get_trust(t.id).remaining_uses == 1
    second = session_of(c, p, "trustee", trust_id=t.id)
    second.get_token()
    with pytest.raises(openstack.exceptions.NotFoundException):
        ident.get_trust(t.id)  # used up: not found any more, as Keystone has it
    with pytest.raises(ks_exc.Unauthorized):
        session_of(c, p, "trustee", trust_id=t.id).get_token()
    assert conn_of(second).network.find_network(f"nothing-{suffix()}") is None
    ident.delete_trust(t.id)  # a used-up trust can still be deleted

    # a token never outlives its trust
    soon = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=20)).replace(
        microsecond=0, tzinfo=None)
    t = new_trust(p, trustor, expires_at=soon.isoformat() + "Z")
    sess = session_of(c, p, "trustee", trust_id=t.id)
    assert sess.auth.get_access(sess).expires.replace(tzinfo=None) == soon

    # an expired trust gives no tokens and is not found
    brief = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=5)
    t = new_trust(p, trustor, expires_at=brief.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))

    def expired() -> bool:
        try:
            session_of(c, p, "trustee", trust_id=t.id).get_token()
        except ks_exc.Unauthorized:
            return True
        return False

    wait_for(expired, timeout=60, what="the trust to expire")
    with pytest.raises(openstack.exceptions.NotFoundException):
        ident.get_trust(t.id)

    # bad input: an OpenStack error naming the field, and nothing made
    before = {x.id for x in ident.trusts()}
    for bad in ("bad.123Z", "", "Z", "2010-06-04T08:44:31.999999Z"):
        with pytest.raises(openstack.exceptions.BadRequestException, match="expires_at"):
            new_trust(p, trustor, expires_at=bad)
    for bad in (0, -1, 7.2, "many"):
        with pytest.raises(openstack.exceptions.BadRequestException, match="remaining_uses"):
            new_trust(p, trustor, remaining_uses=bad)
    with pytest.raises(openstack.exceptions.BadRequestException, match="impersonation"):
        ident.create_trust(trustor_user_id=p.trustor.id, trustee_user_id=p.trustee.id,
                           project_id=p.project.id, roles=[{"name": p.deleg.name}])
    with pytest.raises(openstack.exceptions.NotFoundException, match="user"):
        new_trust(p, trustor, trustee_user_id="0" * 32)
    with pytest.raises(openstack.exceptions.NotFoundException, match="role"):
        new_trust(p, trustor, roles=[{"id": "0" * 32}])
    with pytest.raises(openstack.exceptions.ForbiddenException, match="At least one role"):
        new_trust(p, trustor, roles=[])
    assert {x.id for x in ident.trusts()} == before


def test_redelegation(cloud, parties):
    c, p = cloud, parties
    trustor = session_of(c, p, "trustor")
    ident = conn_of(trustor).identity
    with pytest.raises(openstack.exceptions.ForbiddenException, match="redelegation depth"):
        new_trust(p, trustor, allow_redelegation=True, redelegation_count=4)
    parent = new_trust(p, trustor, roles=[{"name": p.deleg.name}, {"name": "member"}],
                       allow_redelegation=True)
    assert parent.redelegation_count == 3
    sess = session_of(c, p, "trustee", trust_id=parent.id)

    # the trustee (acting as the trustor) passes on less than it was given
    with pytest.raises(openstack.exceptions.ForbiddenException, match="not in redelegated"):
        new_trust(p, sess, trustee_user_id=p.third.id,
                  roles=[{"name": p.deleg.name}, {"name": p.other.name}])
    with pytest.raises(openstack.exceptions.BadRequestException, match="remaining_uses"):
        new_trust(p, sess, trustee_user_id=p.third.id, allow_redelegation=True, remaining_uses=1)
    child = new_trust(p, sess, trustee_user_id=p.third.id, allow_redelegation=True)
    assert child.redelegated_trust_id == parent.id and child.redelegation_count == 2
    third = session_of(c, p, "third", trust_id=child.id)
    ref = third.auth.get_access(third)
    assert ref.user_id == p.trustor.id and set(ref.role_names) == {p.deleg.name}
    body = token_body(c, third)["OS-TRUST:trust"]
    assert body["redelegated_trust_id"] == parent.id and body["redelegation_count"] == 2

    # deleting a trust deletes what was redelegated from it, and ends their tokens
    ident.delete_trust(parent.id)
    with pytest.raises(openstack.exceptions.NotFoundException):
        ident.get_trust(child.id)
    r = httpx.get(f"{c.url}/networking/v2.0/networks", headers={"X-Auth-Token": third.get_token()})
    assert r.status_code == 401


# -- the roles API and Tempest's expectations ----------------------------------------------


def test_trust_roles_and_what_tempest_checks(cloud, parties):
    c, p = cloud, parties
    trustor = session_of(c, p, "trustor")
    expires = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).replace(
        microsecond=0, tzinfo=None).isoformat() + "Z"
    t = new_trust(p, trustor, expires_at=expires)
    base = identity_url(c, f"/OS-TRUST/trusts/{t.id}")

    def get(url, sess=trustor, **kw):
        return sess.get(url, raise_exc=False, **kw)

    shown = get(base).json()["trust"]
    assert re.sub(r"\.([0-9]){6}", "", shown["expires_at"]) == expires
    assert "v3/OS-TRUST/trusts" in shown["links"]["self"]
    assert shown["roles_links"]["self"].endswith(f"/OS-TRUST/trusts/{t.id}/roles")
    roles = get(base + "/roles").json()["roles"]
    assert [r["id"] for r in roles] == [p.deleg.id]
    assert f"v3/roles/{p.deleg.id}" in roles[0]["links"]["self"]
    assert get(base + f"/roles/{p.deleg.id}").json()["role"]["name"] == p.deleg.name
    assert trustor.head(base + f"/roles/{p.deleg.id}", raise_exc=False).status_code == 200
    assert get(base + f"/roles/{p.other.id}").status_code == 404
    assert trustor.head(base + f"/roles/{p.other.id}", raise_exc=False).status_code == 404
    # the listing Tempest makes (note the slash), with the summary of each trust
    listed = get(identity_url(c, f"/OS-TRUST/trusts/?trustor_user_id={p.trustor.id}"))
    assert listed.status_code == 200
    [row] = listed.json()["trusts"]
    assert row["id"] == t.id and "roles" not in row and row["impersonation"] is True
    # trusts are immutable
    r = trustor.patch(base, json={"trust": {"impersonation": False}}, raise_exc=False)
    assert r.status_code == 405
    # an unknown trust is a 404 in Keystone's error body
    r = get(identity_url(c, f"/OS-TRUST/trusts/{'0' * 32}"))
    assert r.status_code == 404 and r.json()["error"]["code"] == 404
    assert "Could not find trust" in r.json()["error"]["message"]

    # application credentials manage no trusts
    cred = conn_of(trustor).identity.create_application_credential(
        user=p.trustor.id, name=f"ac-{suffix()}")
    ac = ks_session.Session(auth=v3.ApplicationCredential(
        auth_url=rc(c)["OS_AUTH_URL"], application_credential_id=cred.id,
        application_credential_secret=cred.secret))
    r = ac.get(identity_url(c, "/OS-TRUST/trusts"), raise_exc=False)
    assert r.status_code == 403 and "application_credential" in r.json()["error"]["message"]
    assert get(base, sess=ac).status_code == 403


def test_deleting_users_and_projects_deletes_their_trusts(cloud, parties):
    c, p = cloud, parties
    conn, trustor = sdk(c), session_of(c, p, "trustor")
    to_trustee = new_trust(p, trustor)
    to_stranger = new_trust(p, trustor, trustee_user_id=p.stranger.id)
    conn.identity.delete_user(p.trustee)
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.identity.get_trust(to_trustee.id)
    assert conn.identity.get_trust(to_stranger.id).id == to_stranger.id
    conn.identity.delete_project(p.project)
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.identity.get_trust(to_stranger.id)


# -- what a service (the orchestration engine) does -----------------------------------------


def test_a_service_user_acts_through_a_trust(cloud, parties):
    """The trustee is a service user holding only its own password: ServiceAuth trades
    it and the trust id for a trust-scoped token and calls another service with it."""
    c, p = cloud, parties
    t = new_trust(p, session_of(c, p, "trustor"), roles=[{"name": "member"}])
    auth = ServiceAuth(c.url, p.trustee.name, p.pw)
    compute = RestClient(auth, "/compute/v2.1")
    network = RestClient(auth, "/networking/v2.0")
    token = auth.trust_token(t.id)
    assert auth.trust_token(t.id) == token, "kept until it nears expiry"
    assert compute.get("/servers", token=token) == {"servers": []}
    net = network.post("/networks", {"network": {"name": f"svc-{suffix()}"}}, token=token)["network"]
    assert net["project_id"] == p.project.id  # made in the trustor's project, as the trustor
    network.delete(f"/networks/{net['id']}", token=token)
    # a deleted trust is an answer the engine can act on, not an outage
    sdk(c).identity.delete_trust(t.id)
    with pytest.raises(errors.Unauthorized, match="Could not find trust"):
        auth.trust_token(t.id, renew=True)
