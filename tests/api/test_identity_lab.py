"""The book's identity lab, driven by the real `openstack` CLI, on SQLite and PostgreSQL."""

import uuid

import pytest


def names(rows, key="Name"):
    return {r[key] for r in rows}


def user_env(cloud, user, password, project):
    env = cloud.openrc("admin")
    env.update(OS_USERNAME=user, OS_PASSWORD=password, OS_PROJECT_NAME=project)
    return env


def test_identity_lab(any_cloud):
    c = any_cloud
    suffix = uuid.uuid4().hex[:6]
    project, user = f"hellovinoth{suffix}.com", f"bootcamp{suffix}"

    p = c.os_json("project", "create", project, "--description", "Bootcamp lab project")
    assert p["name"] == project and p["enabled"] is True and p["domain_id"] == "default"
    u = c.os_json("user", "create", user, "--project", project, "--email", "bootcamp@hellovinoth.com",
                  "--description", "Bootcamp user", "--password", "nomoresecret")
    assert u["email"] == "bootcamp@hellovinoth.com" and u["description"] == "Bootcamp user"
    assert u["default_project_id"] == p["id"]
    c.openstack("role", "add", "--user", user, "--project", project, "member")
    assigned = c.os_json("role", "assignment", "list", "--user", user, "--project", project, "--names")
    assert [a["Role"] for a in assigned] == ["member"]

    env = user_env(c, user, "nomoresecret", project)
    tok = c.os_json("token", "issue", env=env)
    assert tok["project_id"] == p["id"] and tok["user_id"] == u["id"]
    assert "identity" in {s["Type"] for s in c.os_json("catalog", "list", env=env)}

    endpoints = c.os_json("endpoint", "list", "--service", "identity")
    assert {e["Interface"] for e in endpoints} == {"public", "internal", "admin"}
    assert all(e["URL"].endswith("/identity") for e in endpoints)

    # the user changes their own password; the old one stops working
    c.openstack("user", "password", "set", "--password", "newsecret",
                "--original-password", "nomoresecret", env=env)
    assert c.openstack("token", "issue", env=env, check=False).returncode != 0
    env["OS_PASSWORD"] = "newsecret"
    c.os_json("token", "issue", env=env)

    # a disabled project, then a disabled user, cannot authenticate
    c.openstack("project", "set", "--disable", project)
    r = c.openstack("token", "issue", env=env, check=False)
    assert r.returncode != 0 and "401" in r.stderr
    c.openstack("project", "set", "--enable", project)
    c.os_json("token", "issue", env=env)
    c.openstack("user", "set", "--disable", user)
    r = c.openstack("token", "issue", env=env, check=False)
    assert r.returncode != 0 and "401" in r.stderr
    c.openstack("user", "set", "--enable", user)
    c.os_json("token", "issue", env=env)

    c.openstack("user", "delete", user)
    c.openstack("project", "delete", project)
    assert project not in names(c.os_json("project", "list"))


def test_application_credential(cloud):
    env = cloud.openrc("demo")
    name = f"ci-{uuid.uuid4().hex[:6]}"
    cred = cloud.os_json("application", "credential", "create", name, "--description", "for CI",
                         env=env)
    cred = {k.lower(): v for k, v in cred.items()}  # newer clients capitalise the columns
    assert cred["secret"] and cred["name"] == name
    app_env = {
        "OS_AUTH_URL": env["OS_AUTH_URL"], "OS_AUTH_TYPE": "v3applicationcredential",
        "OS_APPLICATION_CREDENTIAL_ID": cred["id"],
        "OS_APPLICATION_CREDENTIAL_SECRET": cred["secret"],
        "OS_IDENTITY_API_VERSION": "3", "OS_REGION_NAME": "RegionOne",
    }
    tok = cloud.os_json("token", "issue", env=app_env)
    assert tok["project_id"] == cloud.os_json("token", "issue", env=env)["project_id"]
    listed = cloud.os_json("application", "credential", "list", env=env)
    assert name in names(listed)
    cloud.openstack("application", "credential", "delete", name, env=env)
    assert cloud.openstack("token", "issue", env=app_env, check=False).returncode != 0


@pytest.mark.parametrize("command", [
    ["project", "create", "not-allowed"],
    ["user", "list"],
    ["user", "create", "intruder", "--password", "x"],
    ["domain", "create", "evil"],
    ["endpoint", "list"],
])
def test_member_cannot_do_admin_things(cloud, command):
    r = cloud.openstack(*command, user="demo", check=False)
    assert r.returncode != 0
    assert "403" in r.stderr or "Forbidden" in r.stderr or "not authorized" in r.stderr


def test_member_cannot_grant_roles(cloud):
    # (openstackclient ignores the 403 of the PUT here, so look at the outcome)
    cloud.openstack("role", "add", "--user", "demo", "--project", "admin", "admin",
                    user="demo", check=False)
    roles = cloud.os_json("role", "assignment", "list", "--user", "demo", "--names")
    assert {(r["Role"], r["Project"]) for r in roles} == {("member", "demo@Default")}


def test_member_sees_only_own_projects(cloud):
    rows = cloud.os_json("project", "list", user="demo")
    assert names(rows) == {"demo"}


def test_token_revoke(cloud):
    tok = cloud.os_json("token", "issue")["id"]
    cloud.openstack("token", "revoke", tok)
    env = cloud.openrc("admin")
    env.update(OS_AUTH_TYPE="token", OS_TOKEN=tok)
    for k in ("OS_USERNAME", "OS_PASSWORD", "OS_USER_DOMAIN_NAME"):
        env.pop(k)
    r = cloud.openstack("project", "list", env=env, check=False)
    # trading a revoked token for another is Keystone's TokenNotFound (404)
    assert r.returncode != 0 and "Failed to validate token (HTTP 404)" in r.stderr
