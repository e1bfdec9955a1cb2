"""Who may do what, through the real `openstack` CLI: a project member sees what is
their own and nothing else; system and domain readers read within their scope and
change nothing."""

from __future__ import annotations

import openstack
import pytest
from openstack import exceptions

from tests.api.test_identity_resources import (
    low,
    names,
    osc,
    osj,
    password_env,
    rc,
    refused,
    sdk,
    suffix,
)


def forbidden(r) -> bool:
    return refused(r, "403", "Forbidden", "not authorized")


def test_member_sees_own_user_and_credentials_only(cloud):
    c, conn = cloud, sdk(cloud)
    demo = rc(c, "demo")
    demo_id = conn.identity.find_user("demo").id
    admin_id = conn.current_user_id

    me = osj(c, "user", "show", demo_id, env=demo)
    assert me["name"] == "demo" and me["email"] == "demo@example.com"
    assert isinstance(osj(c, "group", "list", "--user", demo_id, env=demo), list)
    assert forbidden(osc(c, "user", "show", admin_id, env=demo, check=False))
    # reading yourself is not changing yourself
    assert forbidden(osc(c, "user", "set", "--description", "changed by demo", demo_id, env=demo,
                         check=False))
    assert "RegionOne" in {low(r)["region"] for r in osj(c, "region", "list", env=demo)}

    # credentials: their own, yes; someone else's, no
    theirs = conn.identity.create_credential(type="cert", user_id=admin_id,
                                             blob=f"admin-{suffix()}")
    mine = osj(c, "credential", "create", "--type", "cert", demo_id, f"demo-{suffix()}", env=demo)
    assert mine["user_id"] == demo_id
    listed = osj(c, "credential", "list", env=demo)
    assert mine["id"] in {low(x)["id"] for x in listed}
    assert {low(x)["user id"] for x in listed} == {demo_id}
    assert forbidden(osc(c, "credential", "show", theirs.id, env=demo, check=False))
    osc(c, "credential", "delete", theirs.id, env=demo, check=False)
    assert conn.identity.get_credential(theirs.id).blob == theirs.blob
    # (the CLI cannot even look the other user up; the SDK sends the POST)
    demo_conn = openstack.connect(
        auth_url=demo["OS_AUTH_URL"], username="demo", password=demo["OS_PASSWORD"],
        project_name="demo", user_domain_name="Default", project_domain_name="Default",
        region_name="RegionOne", identity_api_version="3")
    with pytest.raises(exceptions.ForbiddenException):
        demo_conn.identity.create_credential(type="cert", user_id=admin_id, blob="planted")
    demo_conn.close()
    assert "planted" not in {x.blob for x in conn.identity.credentials(user_id=admin_id)}
    osc(c, "credential", "delete", mine["id"], env=demo)
    conn.identity.delete_credential(theirs)

    # EC2 credentials: their own, yes; someone else's, no
    ec2 = osj(c, "ec2", "credentials", "create", env=demo)
    assert ec2["user_id"] == demo_id
    admin_ec2 = osj(c, "ec2", "credentials", "create")
    assert {low(x)["user id"] for x in osj(c, "ec2", "credentials", "list", env=demo)} == {demo_id}
    r = osc(c, "ec2", "credentials", "show", admin_ec2["access"], "-f", "json", env=demo,
            check=False)
    assert r.returncode != 0 and admin_ec2["secret"] not in r.stdout
    osc(c, "ec2", "credentials", "delete", admin_ec2["access"], env=demo, check=False)
    assert low(osj(c, "ec2", "credentials", "show", admin_ec2["access"]))["secret"] == \
        admin_ec2["secret"]
    osc(c, "ec2", "credentials", "delete", ec2["access"], env=demo)
    osc(c, "ec2", "credentials", "delete", admin_ec2["access"])

    # application credentials of someone else are not listed for them
    assert forbidden(osc(c, "application", "credential", "list", "--user", admin_id, env=demo,
                         check=False))


@pytest.mark.parametrize("command", [
    ["service", "list"],
    ["region", "create", "member-region"],
    ["role", "list"],
    ["group", "list"],
    ["role", "assignment", "list"],
    ["implied", "role", "list"],
])
def test_member_is_refused(cloud, command):
    r = osc(cloud, *command, user="demo", check=False)
    assert forbidden(r), (r.returncode, r.stdout, r.stderr)


def test_system_reader_and_domain_reader(cloud):
    c, s, conn = cloud, suffix(), sdk(cloud)
    ident = conn.identity
    reader = ident.find_role("reader")
    sr = ident.create_user(name=f"sysread-{s}", password="pw", domain_id="default")
    ident.assign_system_role_to_user(sr, reader, "all")
    d = ident.create_domain(name=f"rdom-{s}")
    dr = ident.create_user(name=f"domread-{s}", password="pw", domain_id=d.id)
    other = ident.create_user(name=f"other-{s}", password="pw", domain_id=d.id)
    dp = ident.create_project(name=f"rproj-{s}", domain_id=d.id)
    ident.assign_domain_role_to_user(d, dr, reader)

    # a system reader reads everything and changes nothing
    sys_env = {**password_env(c, sr.name, "pw"), "OS_SYSTEM_SCOPE": "all"}
    assert {"admin", "demo", sr.name, dr.name} <= names(osj(c, "user", "list", env=sys_env))
    assert "identity" in {low(x)["type"] for x in osj(c, "service", "list", env=sys_env)}
    assert forbidden(osc(c, "user", "create", f"nope-{s}", env=sys_env, check=False))
    assert forbidden(osc(c, "project", "create", f"nope-{s}", env=sys_env, check=False))
    osc(c, "role", "add", "--user", sr.id, "--system", "all", "admin", env=sys_env, check=False)
    roles = {a.role["id"] for a in ident.role_assignments(user_id=sr.id)}
    assert roles == {reader.id}

    # a domain reader reads their domain only
    dom_env = password_env(c, dr.name, "pw", user_domain=d.name, domain=d.name)
    try:
        assert names(osj(c, "user", "list", env=dom_env)) == {dr.name, other.name}
        # (the CLI cannot resolve another domain for them; the SDK sends the filter as is)
        dconn = openstack.connect(
            auth_url=dom_env["OS_AUTH_URL"], username=dr.name, password="pw",
            user_domain_name=d.name, domain_name=d.name, region_name="RegionOne",
            identity_api_version="3")
        try:
            seen = {x.name for x in dconn.identity.users(domain_id="default")}
        except exceptions.ForbiddenException:
            seen = set()
        dconn.close()
        assert not {"admin", "demo"} & seen, seen
        assert forbidden(osc(c, "user", "create", "--domain", d.id, f"nope-{s}", env=dom_env,
                             check=False))
        projects = names(osj(c, "project", "list", env=dom_env))
        assert projects == {dp.name}, f"a domain reader's project list gave {projects}"
    finally:
        ident.delete_user(sr)
        ident.update_domain(d, is_enabled=False)
        ident.delete_domain(d)
