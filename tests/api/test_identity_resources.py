"""Identity resources driven end to end by the real `openstack` CLI: domains, projects
(hierarchy, tags), users, groups, roles and implied roles, grants and role assignments,
regions, services and endpoints, application credentials, EC2 credentials, credentials.

Every test makes its own uniquely named resources on the session cloud and removes
them at the end. Checks are combined into scenarios because each CLI call costs a
process start; fixtures a scenario only needs (not the thing it checks) are made and
removed with openstacksdk, which is just as real a client and much quicker."""

from __future__ import annotations

import datetime
import json
import uuid

import openstack

# -- helpers -----------------------------------------------------------------------

_OPENRC: dict[tuple[str, str], dict[str, str]] = {}
_SDK: dict[str, openstack.connection.Connection] = {}


def rc(cloud, user: str = "admin") -> dict[str, str]:
    """The OS_* variables of a bootstrap user (cached: `onestack openrc` is a process too)."""
    key = (cloud.url, user)
    if key not in _OPENRC:
        _OPENRC[key] = cloud.openrc(user)
    return dict(_OPENRC[key])


def sdk(cloud) -> openstack.connection.Connection:
    """An admin openstacksdk connection to the cloud, for fixtures."""
    if cloud.url not in _SDK:
        e = rc(cloud)
        _SDK[cloud.url] = openstack.connect(
            auth_url=e["OS_AUTH_URL"], username="admin", password=e["OS_PASSWORD"],
            project_name="admin", user_domain_name="Default", project_domain_name="Default",
            region_name="RegionOne", identity_api_version="3",
        )
    return _SDK[cloud.url]


def osc(cloud, *args: str, env: dict | None = None, user: str = "admin", check: bool = True):
    return cloud.openstack(*args, env=env if env is not None else rc(cloud, user), check=check)


def osj(cloud, *args: str, **kw):
    return json.loads(osc(cloud, *args, "-f", "json", **kw).stdout)


def low(row: dict) -> dict:
    """Column names vary in case between client versions; compare them lower-cased."""
    return {k.lower(): v for k, v in row.items()}


def names(rows, key: str = "name") -> set[str]:
    return {low(r)[key] for r in rows}


def suffix() -> str:
    return uuid.uuid4().hex[:8]


def base_env(cloud) -> dict[str, str]:
    admin = rc(cloud)
    return {k: admin[k] for k in ("OS_AUTH_URL", "OS_IDENTITY_API_VERSION", "OS_REGION_NAME",
                                  "OS_INTERFACE")}


def password_env(cloud, user, password, *, user_domain="Default", project=None,
                 project_domain="Default", domain=None) -> dict[str, str]:
    env = {**base_env(cloud), "OS_AUTH_TYPE": "password", "OS_USERNAME": user,
           "OS_PASSWORD": password, "OS_USER_DOMAIN_NAME": user_domain}
    if project:
        env.update(OS_PROJECT_NAME=project, OS_PROJECT_DOMAIN_NAME=project_domain)
    if domain:
        env["OS_DOMAIN_NAME"] = domain
    return env


def appcred_env(cloud, cred: dict) -> dict[str, str]:
    cred = low(cred)
    return {**base_env(cloud), "OS_AUTH_TYPE": "v3applicationcredential",
            "OS_APPLICATION_CREDENTIAL_ID": cred["id"],
            "OS_APPLICATION_CREDENTIAL_SECRET": cred["secret"]}


def refused(r, *words: str) -> bool:
    """The command failed, and (when words are given) its error names one of them."""
    return r.returncode != 0 and (not words or any(w in r.stderr for w in words))


def assignments(rows) -> set[tuple]:
    """`role assignment list --names` rows as
    (role, user, group, project, domain, system, inherited)."""
    out = set()
    for r in rows:
        r = low(r)
        out.add((r["role"], r["user"], r["group"], r["project"], r["domain"], r["system"],
                 r["inherited"]))
    return out


def drop_domain(conn, domain_id: str) -> None:
    conn.identity.update_domain(domain_id, is_enabled=False)
    conn.identity.delete_domain(domain_id)


# -- domains -----------------------------------------------------------------------


def test_domain_lifecycle_with_project_user_and_domain_token(any_cloud):
    c, s = any_cloud, suffix()
    dom, proj, user, pw = f"dom-{s}", f"dproj-{s}", f"duser-{s}", f"pw-{s}"

    d = osj(c, "domain", "create", dom, "--description", "first")
    assert d["name"] == dom and d["enabled"] is True and d["description"] == "first"
    assert dom in names(osj(c, "domain", "list"))
    osc(c, "domain", "set", "--description", "second", dom)
    assert osj(c, "domain", "show", dom)["description"] == "second"

    p = osj(c, "project", "create", "--domain", dom, proj)
    assert p["domain_id"] == d["id"] and p["parent_id"] == d["id"] and p["is_domain"] is False
    u = osj(c, "user", "create", "--domain", dom, "--password", pw, "--project", proj,
            "--project-domain", dom, user)
    assert u["domain_id"] == d["id"] and u["default_project_id"] == p["id"]
    assert names(osj(c, "project", "list", "--domain", dom)) == {proj}
    assert names(osj(c, "user", "list", "--domain", dom)) == {user}

    conn = sdk(c)
    conn.identity.assign_project_role_to_user(p["id"], u["id"], conn.identity.find_role("member"))
    conn.identity.assign_domain_role_to_user(d["id"], u["id"], conn.identity.find_role("reader"))
    penv = password_env(c, user, pw, user_domain=dom, project=proj, project_domain=dom)
    assert osj(c, "token", "issue", env=penv)["project_id"] == p["id"]
    # domain-scoped tokens, through OS_DOMAIN_NAME and through --os-domain-name
    tok = osj(c, "token", "issue", env=password_env(c, user, pw, user_domain=dom, domain=dom))
    assert tok["domain_id"] == d["id"] and "project_id" not in tok
    tok = osj(c, "--os-domain-name", dom, "token", "issue",
              env=password_env(c, user, pw, user_domain=dom))
    assert tok["domain_id"] == d["id"] and tok["user_id"] == u["id"]

    # an enabled domain is not deleted
    assert refused(osc(c, "domain", "delete", dom, check=False))
    # a disabled domain's users cannot authenticate
    osc(c, "domain", "set", "--disable", dom)
    assert osj(c, "domain", "show", d["id"])["enabled"] is False
    assert refused(osc(c, "token", "issue", env=penv, check=False), "401")

    osc(c, "domain", "delete", dom)
    assert refused(osc(c, "domain", "show", d["id"], check=False))
    # its project and its user went with it
    assert conn.identity.find_project(p["id"]) is None
    assert conn.identity.find_user(u["id"]) is None


# -- projects ----------------------------------------------------------------------


def test_project_hierarchy_tags_and_filters(cloud):
    c, s = cloud, suffix()
    parent, child = f"parent-{s}", f"child-{s}"
    ta, tb, tc, tshared = f"a-{s}", f"b-{s}", f"c-{s}", f"shared-{s}"

    p = osj(c, "project", "create", parent, "--description", "the parent",
            "--tag", ta, "--tag", tshared)
    assert sorted(p["tags"]) == sorted([ta, tshared]) and p["parent_id"] == "default"
    ch = osj(c, "project", "create", child, "--parent", parent, "--tag", tshared, "--tag", tb)
    assert ch["parent_id"] == p["id"] and ch["domain_id"] == "default"
    assert sorted(ch["tags"]) == sorted([tshared, tb])

    # tags: add one, remove one (separate calls: the client cannot do both at once)
    osc(c, "project", "set", "--tag", tc, child)
    osc(c, "project", "set", "--remove-tag", tb, child)
    assert sorted(osj(c, "project", "show", child)["tags"]) == sorted([tshared, tc])

    assert names(osj(c, "project", "list", "--tags", tshared)) == {parent, child}
    assert names(osj(c, "project", "list", "--tags", f"{tshared},{tc}")) == {child}
    assert names(osj(c, "project", "list", "--tags-any", f"{ta},{tc}")) == {parent, child}
    not_c = names(osj(c, "project", "list", "--not-tags", tc))
    assert parent in not_c and child not in not_c and "admin" in not_c
    assert names(osj(c, "project", "list", "--parent", parent)) == {child}

    osc(c, "project", "set", "--name", f"{child}-x", "--description", "renamed", "--disable",
        "--clear-tags", child)
    shown = osj(c, "project", "show", ch["id"])
    assert (shown["name"], shown["description"], shown["enabled"], shown["tags"]) == \
        (f"{child}-x", "renamed", False, [])

    # a project with children is not deleted
    assert refused(osc(c, "project", "delete", parent, check=False))
    assert sdk(c).identity.find_project(p["id"]) is not None

    # the hierarchy as ids, as keystone gives it: {"<parent id>": ...} and {"<child id>": null}
    try:
        parents = osj(c, "project", "show", "--parents", ch["id"]).get("parents")
        subtree = osj(c, "project", "show", "--children", parent).get("subtree")
        assert isinstance(parents, dict) and p["id"] in parents, f"parents_as_ids gave {parents!r}"
        assert isinstance(subtree, dict) and ch["id"] in subtree, f"subtree_as_ids gave {subtree!r}"
    finally:
        osc(c, "project", "delete", ch["id"], parent)
    assert sdk(c).identity.find_project(p["id"]) is None


# -- users -------------------------------------------------------------------------


def test_user_lifecycle(cloud):
    c, s, conn = cloud, suffix(), sdk(cloud)
    proj, user = f"uproj-{s}", f"user-{s}"
    p = conn.identity.create_project(name=proj, domain_id="default")
    u = osj(c, "user", "create", user, "--password", "first-pw", "--email", f"{s}@example.org",
            "--description", "a user", "--project", proj)
    assert (u["name"], u["email"], u["description"], u["default_project_id"], u["enabled"]) == \
        (user, f"{s}@example.org", "a user", p.id, True)
    assert "password" not in u
    assert osj(c, "user", "show", user)["id"] == u["id"]
    row = next(low(r) for r in osj(c, "user", "list", "--long") if low(r)["name"] == user)
    assert (row["email"], row["description"], row["enabled"]) == \
        (f"{s}@example.org", "a user", True)
    # --project lists the users with a role on the project
    conn.identity.assign_project_role_to_user(p, u["id"], conn.identity.find_role("member"))
    assert names(osj(c, "user", "list", "--project", proj)) == {user}

    osc(c, "user", "set", "--name", f"{user}-x", "--email", f"new-{s}@example.org",
        "--description", "changed", "--password", "second-pw", u["id"])
    shown = osj(c, "user", "show", u["id"])
    assert (shown["name"], shown["email"], shown["description"]) == \
        (f"{user}-x", f"new-{s}@example.org", "changed")
    env = password_env(c, f"{user}-x", "second-pw", project=proj)
    assert osj(c, "token", "issue", env=env)["user_id"] == u["id"]
    old_pw = {**env, "OS_PASSWORD": "first-pw"}
    assert refused(osc(c, "token", "issue", env=old_pw, check=False), "401")

    osc(c, "user", "set", "--disable", u["id"])
    assert refused(osc(c, "token", "issue", env=env, check=False), "401")
    assert conn.identity.get_user(u["id"]).is_enabled is False

    osc(c, "user", "delete", u["id"])
    assert refused(osc(c, "user", "show", u["id"], check=False))
    # the user's assignments went with it
    assert not list(conn.identity.role_assignments(scope_project_id=p.id))
    conn.identity.delete_project(p)


# -- groups ------------------------------------------------------------------------


def test_group_membership_and_group_roles(cloud):
    c, s, conn = cloud, suffix(), sdk(cloud)
    group, proj, u1, u2 = f"grp-{s}", f"gproj-{s}", f"gu1-{s}", f"gu2-{s}"
    g = osj(c, "group", "create", group, "--description", "a group")
    assert g["name"] == group and g["domain_id"] == "default" and g["description"] == "a group"
    p = conn.identity.create_project(name=proj, domain_id="default")
    users = [conn.identity.create_user(name=u, password="pw-" + u, domain_id="default")
             for u in (u1, u2)]

    osc(c, "group", "add", "user", group, u1, u2)
    assert f"{u1} in group" in osc(c, "group", "contains", "user", group, u1).stdout
    r = osc(c, "group", "contains", "user", group, "admin")
    assert "not in group" in r.stderr and "in group" not in r.stdout
    assert group in names(osj(c, "group", "list", "--user", u1))
    assert names(osj(c, "user", "list", "--group", group)) == {u1, u2}

    # a role given to the group reaches its members
    osc(c, "role", "add", "--group", group, "--project", proj, "member")
    assert assignments(osj(c, "role", "assignment", "list", "--group", group, "--names")) == {
        ("member", "", f"{group}@Default", f"{proj}@Default", "", "", False)}
    eff = assignments(osj(c, "role", "assignment", "list", "--user", u1, "--effective", "--names"))
    assert ("member", f"{u1}@Default", "", f"{proj}@Default", "", "", False) in eff
    env1 = password_env(c, u1, "pw-" + u1, project=proj)
    assert osj(c, "token", "issue", env=env1)["project_id"] == p.id

    osc(c, "group", "remove", "user", group, u1)
    assert "not in group" in osc(c, "group", "contains", "user", group, u1).stderr
    assert refused(osc(c, "token", "issue", env=env1, check=False), "401")
    env2 = password_env(c, u2, "pw-" + u2, project=proj)
    assert osj(c, "token", "issue", env=env2)["project_id"] == p.id

    osc(c, "group", "set", "--name", f"{group}-x", "--description", "renamed", group)
    shown = osj(c, "group", "show", g["id"])
    assert (shown["name"], shown["description"]) == (f"{group}-x", "renamed")
    osc(c, "group", "delete", g["id"])
    assert refused(osc(c, "group", "show", g["id"], check=False))
    # the group's role went with it
    assert refused(osc(c, "token", "issue", env=env2, check=False), "401")
    for u in users:
        conn.identity.delete_user(u)
    conn.identity.delete_project(p)


# -- roles and implied roles ---------------------------------------------------------


def test_roles_domain_roles_and_implied_roles(cloud):
    c, s, conn = cloud, suffix(), sdk(cloud)
    prior, implied, dom, drole = f"prior-{s}", f"implied-{s}", f"rdom-{s}", f"drole-{s}"

    r = osj(c, "role", "create", prior, "--description", "first")
    assert r["name"] == prior and r["domain_id"] is None and r["description"] == "first"
    osc(c, "role", "create", implied)
    assert {prior, implied, "admin", "member", "reader"} <= names(osj(c, "role", "list"))
    osc(c, "role", "set", "--description", "second", prior)
    assert osj(c, "role", "show", prior)["description"] == "second"

    # a domain-specific role lives in its domain only
    d = conn.identity.create_domain(name=dom)
    dr = osj(c, "role", "create", "--domain", dom, drole)
    assert dr["domain_id"] == d.id
    assert names(osj(c, "role", "list", "--domain", dom)) == {drole}
    assert drole not in names(osj(c, "role", "list"))
    assert osj(c, "role", "show", "--domain", dom, drole)["id"] == dr["id"]

    # implied roles
    ir = osj(c, "implied", "role", "create", prior, "--implied-role", implied)
    assert low(ir).get("prior_role") == r["id"]
    rules = {(low(x)["prior role name"], low(x)["implied role name"])
             for x in osj(c, "implied", "role", "list")}
    assert {(prior, implied), ("admin", "member"), ("member", "reader")} <= rules
    # a cycle is refused
    assert refused(osc(c, "implied", "role", "create", implied, "--implied-role", prior,
                       check=False))

    p = conn.identity.create_project(name=f"rproj-{s}", domain_id="default")
    u = conn.identity.create_user(name=f"ruser-{s}", password="pw", domain_id="default")
    conn.identity.assign_project_role_to_user(p, u, conn.identity.find_role(prior))

    def effective():
        return {a[0] for a in assignments(osj(c, "role", "assignment", "list", "--user", u.id,
                                              "--project", p.id, "--effective", "--names"))}

    assert effective() == {prior, implied}
    osc(c, "implied", "role", "delete", prior, "--implied-role", implied)
    assert effective() == {prior}

    # renaming keeps the assignments; deleting the role removes them
    osc(c, "role", "set", "--name", f"{prior}-x", prior)
    direct = {a[0] for a in assignments(
        osj(c, "role", "assignment", "list", "--user", u.id, "--names"))}
    assert direct == {f"{prior}-x"}
    osc(c, "role", "delete", f"{prior}-x", implied)
    assert refused(osc(c, "role", "show", r["id"], check=False))
    assert not list(conn.identity.role_assignments(user_id=u.id))
    osc(c, "role", "delete", "--domain", dom, drole)
    assert conn.identity.find_role(dr["id"]) is None
    drop_domain(conn, d.id)
    conn.identity.delete_user(u)
    conn.identity.delete_project(p)


# -- grants and role assignments --------------------------------------------------------


def test_grants_on_project_domain_system_and_inherited(cloud):
    c, s, conn = cloud, suffix(), sdk(cloud)
    user, group, proj, dom = f"guser-{s}", f"ggrp-{s}", f"gproj-{s}", f"gdom-{s}"
    dp1, dp2 = f"dp1-{s}", f"dp2-{s}"
    pw = "pw-" + s
    ident = conn.identity
    u = ident.create_user(name=user, password=pw, domain_id="default")
    g = ident.create_group(name=group, domain_id="default")
    ident.add_user_to_group(u, g)
    p = ident.create_project(name=proj, domain_id="default")
    d = ident.create_domain(name=dom)
    top = ident.create_project(name=dp1, domain_id=d.id)
    leaf = ident.create_project(name=dp2, domain_id=d.id, parent_id=top.id)

    U, G, P, D = f"{user}@Default", f"{group}@Default", f"{proj}@Default", dom
    osc(c, "role", "add", "--user", user, "--project", proj, "member")
    osc(c, "role", "add", "--group", group, "--project", proj, "reader")
    osc(c, "role", "add", "--user", user, "--domain", "default", "reader")
    osc(c, "role", "add", "--user", user, "--system", "all", "reader")
    osc(c, "role", "add", "--user", user, "--domain", dom, "--inherited", "member")
    osc(c, "role", "add", "--group", group, "--domain", dom, "reader")

    assert assignments(osj(c, "role", "assignment", "list", "--user", user, "--names")) == {
        ("member", U, "", P, "", "", False),
        ("reader", U, "", "", "Default", "", False),
        ("reader", U, "", "", "", "all", False),
        ("member", U, "", "", D, "", True),
    }
    assert assignments(osj(c, "role", "assignment", "list", "--group", group, "--names")) == {
        ("reader", "", G, P, "", "", False),
        ("reader", "", G, "", D, "", False),
    }
    assert assignments(osj(c, "role", "assignment", "list", "--project", proj, "--names")) == {
        ("member", U, "", P, "", "", False),
        ("reader", "", G, P, "", "", False),
    }
    sys_rows = assignments(osj(c, "role", "assignment", "list", "--system", "all", "--names"))
    assert ("reader", U, "", "", "", "all", False) in sys_rows
    assert ("admin", "admin@Default", "", "", "", "all", False) in sys_rows

    # effective: groups expanded to the user, inherited roles onto every project of the
    # domain (not onto the domain itself), implied roles added
    eff = {(a[0], a[1], a[3], a[4], a[5]) for a in assignments(
        osj(c, "role", "assignment", "list", "--user", user, "--effective", "--names"))}
    assert eff == {
        ("member", U, P, "", ""), ("reader", U, P, "", ""),
        ("member", U, f"{dp1}@{dom}", "", ""), ("reader", U, f"{dp1}@{dom}", "", ""),
        ("member", U, f"{dp2}@{dom}", "", ""), ("reader", U, f"{dp2}@{dom}", "", ""),
        ("reader", U, "", dom, ""), ("reader", U, "", "Default", ""),
        ("reader", U, "", "", "all"),
    }

    # the inherited role gives project-scoped tokens on every project of the domain
    tok = osj(c, "token", "issue", env=password_env(c, user, pw, project=dp2, project_domain=dom))
    assert tok["project_id"] == leaf.id
    # and the group's reader role on the domain gives a domain-scoped token
    assert osj(c, "token", "issue", env=password_env(c, user, pw, domain=dom))["domain_id"] == d.id

    # remove everything; nothing is left and the tokens stop coming
    osc(c, "role", "remove", "--user", user, "--project", proj, "member")
    osc(c, "role", "remove", "--group", group, "--project", proj, "reader")
    osc(c, "role", "remove", "--user", user, "--domain", "default", "reader")
    osc(c, "role", "remove", "--user", user, "--system", "all", "reader")
    osc(c, "role", "remove", "--user", user, "--domain", dom, "--inherited", "member")
    osc(c, "role", "remove", "--group", group, "--domain", dom, "reader")
    assert not osj(c, "role", "assignment", "list", "--user", user, "--effective")
    assert refused(osc(c, "token", "issue", check=False,
                       env=password_env(c, user, pw, project=dp2, project_domain=dom)), "401")

    ident.delete_user(u)
    ident.delete_group(g)
    ident.delete_project(p)
    drop_domain(conn, d.id)


# -- catalog -------------------------------------------------------------------------


def test_regions(cloud):
    c, s = cloud, suffix()
    parent, child = f"Par-{s}", f"Chi-{s}"
    r = osj(c, "region", "create", parent, "--description", "top")
    assert low(r)["region"] == parent and low(r)["description"] == "top"
    r = osj(c, "region", "create", child, "--parent-region", parent)
    assert low(r)["parent_region"] == parent
    below = osj(c, "region", "list", "--parent-region", parent)
    assert {low(x)["region"] for x in below} == {child}
    assert {parent, child, "RegionOne"} <= {low(x)["region"] for x in osj(c, "region", "list")}
    osc(c, "region", "set", "--description", "below", child)
    assert low(osj(c, "region", "show", child))["description"] == "below"
    # no cycles, and a parent with children stays
    assert refused(osc(c, "region", "set", "--parent-region", child, parent, check=False), "400")
    assert refused(osc(c, "region", "delete", parent, check=False))
    assert low(osj(c, "region", "show", parent))["region"] == parent
    osc(c, "region", "delete", child, parent)
    assert not {parent, child} & {low(x)["region"] for x in osj(c, "region", "list")}


def test_services_endpoints_and_catalog(cloud):
    c, s = cloud, suffix()
    stype, sname, region = f"type-{s}", f"svc-{s}", f"Reg-{s}"
    sdk(c).identity.create_region(id=region)
    svc = osj(c, "service", "create", "--name", sname, "--description", "a service", stype)
    assert (svc["name"], svc["type"], svc["enabled"]) == (sname, stype, True)
    row = next(low(x) for x in osj(c, "service", "list", "--long") if low(x)["name"] == sname)
    assert row["description"] == "a service" and row["type"] == stype
    osc(c, "service", "set", "--name", f"{sname}-x", "--description", "changed", svc["id"])
    shown = osj(c, "service", "show", svc["id"])
    assert (shown["name"], shown["description"]) == (f"{sname}-x", "changed")

    urls = {i: f"http://127.0.0.1:9/{s}/{i}" for i in ("public", "internal", "admin")}
    eps = {i: osj(c, "endpoint", "create", "--region", region, svc["id"], i, url)
           for i, url in urls.items()}
    assert eps["public"]["url"] == urls["public"] and eps["public"]["region"] == region
    assert eps["public"]["enabled"] is True and eps["public"]["service_id"] == svc["id"]
    listed = osj(c, "endpoint", "list", "--service", svc["id"])
    assert {low(x)["interface"] for x in listed} == {"public", "internal", "admin"}
    listed = osj(c, "endpoint", "list", "--service", stype, "--interface", "internal")
    assert [low(x)["url"] for x in listed] == [urls["internal"]]
    listed = osj(c, "endpoint", "list", "--region", region, "--interface", "admin")
    assert [low(x)["id"] for x in listed] == [eps["admin"]["id"]]
    assert osj(c, "endpoint", "show", eps["admin"]["id"])["url"] == urls["admin"]

    # the catalog of a new token has the service, without its disabled endpoints
    cat = osj(c, "catalog", "show", stype)
    assert {e["interface"]: e["url"] for e in cat["endpoints"]} == urls
    osc(c, "endpoint", "set", "--url", urls["public"] + "/v2", "--disable", eps["public"]["id"])
    shown = osj(c, "endpoint", "show", eps["public"]["id"])
    assert shown["url"] == urls["public"] + "/v2" and shown["enabled"] is False
    cat = osj(c, "catalog", "show", stype)
    assert {e["interface"] for e in cat["endpoints"]} == {"internal", "admin"}
    ident = osj(c, "catalog", "show", "identity")
    assert ident["type"] == "identity"
    assert {e["interface"] for e in ident["endpoints"]} == {"public", "internal", "admin"}
    assert all(e["url"] == c.url + "/identity" for e in ident["endpoints"])
    # a disabled service leaves the catalog
    osc(c, "service", "set", "--disable", svc["id"])
    assert stype not in {low(x)["type"] for x in osj(c, "catalog", "list")}

    osc(c, "endpoint", "delete", eps["admin"]["id"])
    assert refused(osc(c, "endpoint", "show", eps["admin"]["id"], check=False))
    # a region with endpoints is kept; a service takes its endpoints along
    assert refused(osc(c, "region", "delete", region, check=False))
    osc(c, "service", "delete", svc["id"])
    assert not list(sdk(c).identity.endpoints(region_id=region))
    sdk(c).identity.delete_region(region)


# -- application credentials --------------------------------------------------------------


def test_application_credentials(cloud):
    c, s, conn = cloud, suffix(), sdk(cloud)
    proj, user, pw = f"acproj-{s}", f"acuser-{s}", f"pw-{s}"
    p = conn.identity.create_project(name=proj, domain_id="default")
    u = conn.identity.create_user(name=user, password=pw, domain_id="default")
    member = conn.identity.find_role("member")
    conn.identity.assign_project_role_to_user(p, u, member)
    env = password_env(c, user, pw, project=proj)

    expires = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
               ).strftime("%Y-%m-%dT%H:%M:%S")
    restricted = low(osj(c, "application", "credential", "create", "ac-r", "--role", "member",
                         "--expiration", expires, "--description", "restricted", env=env))
    assert restricted["secret"] and restricted["unrestricted"] is False
    assert restricted["project id"] == p.id and restricted["description"] == "restricted"
    role_names = {r["name"] for r in restricted["roles"]}
    assert "member" in role_names and "admin" not in role_names
    assert restricted["expires at"].startswith(expires)
    unrestricted = low(osj(c, "application", "credential", "create", "ac-u", "--unrestricted",
                           env=env))
    assert unrestricted["unrestricted"] is True

    assert names(osj(c, "application", "credential", "list", env=env)) == {"ac-r", "ac-u"}
    shown = low(osj(c, "application", "credential", "show", "ac-r", env=env))
    assert shown["id"] == restricted["id"] and "secret" not in shown
    # names are unique per user; roles are limited to what the user has
    assert refused(osc(c, "application", "credential", "create", "ac-r", env=env, check=False),
                   "409")
    assert refused(osc(c, "application", "credential", "create", "ac-admin", "--role", "admin",
                       env=env, check=False))

    r_env, u_env = appcred_env(c, restricted), appcred_env(c, unrestricted)
    tok = osj(c, "token", "issue", env=r_env)
    assert tok["project_id"] == p.id and tok["user_id"] == u.id
    # a restricted credential cannot make another credential; an unrestricted one can
    assert refused(osc(c, "application", "credential", "create", "ac-child", env=r_env,
                       check=False), "403")
    child = low(osj(c, "application", "credential", "create", "ac-child", env=u_env))
    assert child["secret"] and child["unrestricted"] is False

    osc(c, "application", "credential", "delete", "ac-r", "ac-child", env=env)
    assert names(osj(c, "application", "credential", "list", env=env)) == {"ac-u"}
    assert refused(osc(c, "token", "issue", env=r_env, check=False), "401")
    # without the role on the project the credential stops working
    conn.identity.unassign_project_role_from_user(p, u, member)
    assert refused(osc(c, "token", "issue", env=u_env, check=False), "401")

    conn.identity.delete_user(u)
    conn.identity.delete_project(p)


# -- EC2 credentials and credentials --------------------------------------------------------


def test_ec2_credentials(cloud):
    c = cloud
    created = osj(c, "ec2", "credentials", "create")
    access, secret = created["access"], created["secret"]
    admin_id = sdk(c).current_user_id
    assert access and secret and created["user_id"] == admin_id
    demo = osj(c, "ec2", "credentials", "create", "--user", "demo", "--project", "demo")
    assert demo["user_id"] != admin_id

    mine = {low(x)["access"]: low(x) for x in osj(c, "ec2", "credentials", "list")}
    assert mine[access]["secret"] == secret and demo["access"] not in mine
    theirs = {low(x)["access"] for x in osj(c, "ec2", "credentials", "list", "--user", "demo")}
    assert demo["access"] in theirs and access not in theirs
    shown = low(osj(c, "ec2", "credentials", "show", access))
    assert shown["secret"] == secret and shown["project_id"] == created["project_id"]

    osc(c, "ec2", "credentials", "delete", access)
    assert refused(osc(c, "ec2", "credentials", "show", access, check=False), "404")
    osc(c, "ec2", "credentials", "delete", "--user", "demo", demo["access"])
    assert demo["access"] not in {
        json.loads(x.blob).get("access") for x in sdk(c).identity.credentials(type="ec2")}


def test_credentials(cloud):
    c, s = cloud, suffix()
    admin_id = sdk(c).current_user_id
    blob = json.dumps({"access": f"ak-{s}", "secret": "first"})
    cred = osj(c, "credential", "create", "--type", "ec2", "--project", "admin", admin_id, blob)
    assert cred["type"] == "ec2" and cred["user_id"] == admin_id
    assert json.loads(cred["blob"]) == json.loads(blob)
    other = osj(c, "credential", "create", "--type", "cert", "demo", f"cert-{s}")
    assert other["type"] == "cert" and other["blob"] == f"cert-{s}"

    ids = {low(x)["id"] for x in osj(c, "credential", "list", "--type", "ec2")}
    assert cred["id"] in ids and other["id"] not in ids
    ids = {low(x)["id"] for x in osj(c, "credential", "list", "--user", "demo")}
    assert other["id"] in ids and cred["id"] not in ids

    osc(c, "credential", "set", "--user", admin_id, "--type", "ec2", "--project", "admin",
        "--data", json.dumps({"access": f"ak-{s}", "secret": "second"}), cred["id"])
    assert json.loads(osj(c, "credential", "show", cred["id"])["blob"])["secret"] == "second"
    # an ec2 credential needs a project
    assert refused(osc(c, "credential", "create", "--type", "ec2", admin_id,
                       json.dumps({"access": f"np-{s}", "secret": "x"}), check=False), "400")

    osc(c, "credential", "delete", cred["id"], other["id"])
    r = osc(c, "credential", "show", cred["id"], check=False)
    assert refused(r, "404", "Could not find credential")
    assert not {cred["id"], other["id"]} & {x.id for x in sdk(c).identity.credentials()}
