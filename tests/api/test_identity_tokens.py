"""Tokens through the real `openstack` CLI: rescoping with the token method, system and
domain scope, revocation when roles or passwords change, and account lockout."""

from __future__ import annotations

import httpx

from tests.api.test_identity_resources import (
    base_env,
    low,
    osc,
    osj,
    password_env,
    rc,
    refused,
    sdk,
    suffix,
)
from tests.cloud import Cloud


def token_env(cloud, token: str, **scope: str) -> dict[str, str]:
    """`--os-auth-type token`: keystoneauth trades TOKEN for a new token of the given scope."""
    env = {**base_env(cloud), "OS_AUTH_TYPE": "token", "OS_TOKEN": token}
    env.update({"OS_" + k.upper(): v for k, v in scope.items()})
    return env


def raw_env(cloud, token: str) -> dict[str, str]:
    """`--os-auth-type admin_token`: the token itself is sent with every request."""
    return {"OS_AUTH_TYPE": "admin_token", "OS_TOKEN": token,
            "OS_ENDPOINT": rc(cloud)["OS_AUTH_URL"], "OS_IDENTITY_API_VERSION": "3"}


def test_token_method_rescoping(cloud):
    c = cloud
    t = osj(c, "token", "issue")
    admin_project = dict(project_name="admin", project_domain_name="Default")

    again = osj(c, "token", "issue", env=token_env(c, t["id"], **admin_project))
    assert again["project_id"] == t["project_id"] and again["user_id"] == t["user_id"]
    assert again["id"] != t["id"]
    assert again["expires"] == t["expires"], "a token made from a token outlives it"
    dom = osj(c, "token", "issue", env=token_env(c, t["id"], domain_name="Default"))
    assert dom["domain_id"] == "default" and "project_id" not in dom
    system = token_env(c, t["id"], system_scope="all")
    tok = osj(c, "token", "issue", env=system)
    assert tok.get("system") in ("all", {"all": True}) and "project_id" not in tok
    # the rescoped, system-scoped admin token works for admin commands
    assert {"admin", "demo"} <= {low(p)["name"] for p in osj(c, "project", "list", env=system)}

    # a token cannot be rescoped to where its user has no role, and garbage is refused
    demo_token = osj(c, "token", "issue", user="demo")["id"]
    assert refused(osc(c, "token", "issue", env=token_env(c, demo_token, **admin_project),
                       check=False), "401")
    assert refused(osc(c, "token", "issue", env=token_env(c, "not-a-token", **admin_project),
                       check=False), "401")


def test_system_scope_needs_a_system_role(cloud):
    c = cloud
    tok = osj(c, "--os-system-scope", "all", "token", "issue",
              env=password_env(c, "admin", rc(c)["OS_PASSWORD"]))
    assert tok.get("system") in ("all", {"all": True}) and "project_id" not in tok
    demo = rc(c, "demo")
    r = osc(c, "--os-system-scope", "all", "token", "issue", check=False,
            env=password_env(c, "demo", demo["OS_PASSWORD"]))
    assert refused(r, "401")
    # nor a domain scope without a role on the domain
    r = osc(c, "token", "issue", check=False,
            env=password_env(c, "demo", demo["OS_PASSWORD"], domain="Default"))
    assert refused(r, "401")


def test_tokens_revoked_by_role_removal_and_password_changes(any_cloud):
    c, s, conn = any_cloud, suffix(), sdk(any_cloud)
    proj, user, pw = f"rvproj-{s}", f"rvuser-{s}", f"pw-{s}"
    p = conn.identity.create_project(name=proj, domain_id="default")
    u = conn.identity.create_user(name=user, password=pw, domain_id="default")
    member = conn.identity.find_role("member")
    conn.identity.assign_project_role_to_user(p, u, member)
    env = password_env(c, user, pw, project=proj)

    # role removed: the token is no longer accepted, nor traded for a new one
    t = osj(c, "token", "issue", env=env)["id"]
    assert osj(c, "project", "show", p.id, env=raw_env(c, t))["name"] == proj
    conn.identity.unassign_project_role_from_user(p, u, member)
    assert refused(osc(c, "project", "show", p.id, env=raw_env(c, t), check=False), "401")
    # (trading a revoked token is Keystone's TokenNotFound: 404, as Tempest checks)
    assert refused(osc(c, "token", "issue", env=token_env(c, t, project_id=p.id), check=False),
                   "404")

    # password set by an admin: the user's tokens stop working
    conn.identity.assign_project_role_to_user(p, u, member)
    t = osj(c, "token", "issue", env=env)["id"]
    assert osj(c, "token", "issue", env=token_env(c, t, project_id=p.id))["project_id"] == p.id
    osc(c, "user", "set", "--password", "second-" + pw, user)
    assert refused(osc(c, "project", "show", p.id, env=raw_env(c, t), check=False), "401")
    assert refused(osc(c, "token", "issue", env=token_env(c, t, project_id=p.id), check=False),
                   "404")

    # password changed by the user: the same
    env["OS_PASSWORD"] = "second-" + pw
    t = osj(c, "token", "issue", env=env)["id"]
    osc(c, "user", "password", "set", "--original-password", "second-" + pw, "--password",
        "third-" + pw, env=env)
    assert refused(osc(c, "project", "show", p.id, env=raw_env(c, t), check=False), "401")
    env["OS_PASSWORD"] = "third-" + pw
    assert osj(c, "token", "issue", env=env)["project_id"] == p.id

    conn.identity.delete_user(u)
    conn.identity.delete_project(p)


def test_account_lockout():
    c = Cloud("lockout", extra_env={"ONESTACK_IDENTITY_LOCKOUT_FAILURE_ATTEMPTS": "3",
                                    "ONESTACK_IDENTITY_LOCKOUT_DURATION": "60"})
    try:
        c.start()
        conn = sdk(c)
        u = conn.identity.create_user(name="locky", password="right", domain_id="default",
                                      default_project_id=conn.identity.find_project("demo").id)
        conn.identity.assign_project_role_to_user(
            conn.identity.find_project("demo"), u, conn.identity.find_role("member"))
        good = password_env(c, "locky", "right", project="demo")
        bad = {**good, "OS_PASSWORD": "wrong"}

        def ok(env):
            return osc(c, "token", "issue", env=env, check=False).returncode == 0

        # failures in a row are counted; a success starts the count afresh
        assert not ok(bad) and not ok(bad)
        assert ok(good)
        assert not ok(bad) and not ok(bad) and not ok(bad)
        # three in a row: locked, even with the right password
        r = osc(c, "token", "issue", env=good, check=False)
        assert refused(r, "401")
        # an administrator unlocks the account by enabling the user (the client sends
        # nothing for --enable on a user that is enabled already: disable first)
        osc(c, "user", "set", "--disable", "locky")
        osc(c, "user", "set", "--enable", "locky")
        assert ok(good)
        # wrong original passwords on a self-service change count too (raw HTTP: the
        # CLI would log in first, and that success would reset the count)
        change = f"{c.url}/identity/v3/users/{u.id}/password"
        for _ in range(3):
            r = httpx.post(change, json={"user": {"password": "new", "original_password": "x"}})
            assert r.status_code == 401
        r = httpx.post(change, json={"user": {"password": "new", "original_password": "right"}})
        assert r.status_code == 401, "a locked account must not change its password"
        assert "locked" in r.json()["error"]["message"]
        osc(c, "user", "set", "--disable", "locky")
        osc(c, "user", "set", "--enable", "locky")
        # the bootstrap admin is not affected by someone else's failures
        assert osj(c, "token", "issue")["id"]
    finally:
        forget(c)
        c.stop()


def forget(cloud) -> None:
    """Drop what the helpers cached for a cloud that is going away (its port may be reused)."""
    from tests.api import test_identity_resources as res

    res._OPENRC.pop((cloud.url, "admin"), None)
    res._OPENRC.pop((cloud.url, "demo"), None)
    conn = res._SDK.pop(cloud.url, None)
    if conn is not None:
        conn.close()
