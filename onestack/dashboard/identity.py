"""The Identity panels: projects (edit, enable or disable, members, compute quotas),
users (edit, password, enable or disable), groups and their members, roles, and the
user's own application credentials. All but the last are for administrators; every form
shows the identity (or compute) API's refusal in itself.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.responses import Response

from onestack.dashboard.backend import COMPUTE, IDENTITY, NOVA_VERSION, Failure
from onestack.dashboard.pages import Page, fail, page

QUOTAS = (("instances", "Instances"), ("cores", "VCPUs"), ("ram", "RAM (MiB)"))


def _by_name(listing: dict | None, key: str) -> list[dict]:
    return sorted((listing or {}).get(key, []), key=lambda x: (x.get("name") or "").lower())


def _id(p: Page) -> str:
    return quote(p.request.path_params["id"])


# -- projects and users -------------------------------------------------------------------

@page(admin=True)
async def identity(p: Page, errors: dict | None = None, status: int = 200) -> Response:
    got = await p.api.gather(projects=IDENTITY + "/projects", users=IDENTITY + "/users", roles=IDENTITY + "/roles",
                             domains=IDENTITY + "/domains")
    return await p.render("identity.html", status=status, errors=errors or {},
                          all_projects=_by_name(got["projects"], "projects"), users=_by_name(got["users"], "users"),
                          roles=_by_name(got["roles"], "roles"), domains=(got["domains"] or {}).get("domains", []))


def _limits(f) -> dict[str, int]:
    limits = {}
    for key, label in QUOTAS:
        if f.get(key, "").strip():
            try:
                limits[key] = int(f[key])
            except ValueError:
                raise Failure(400, f"Quota {label} must be a whole number (-1: unlimited).") from None
    return limits


@page(admin=True)
async def identity_post(p: Page) -> Response:
    """The forms of the projects and users page: a project, a user (with a role on its
    project), a role assignment, a project's compute quotas; enable, disable, delete."""
    f, what = p.form, p.request.path_params["what"]
    try:
        if what == "project":
            await p.api.post(IDENTITY + "/projects", {"project": {
                "name": f.get("name", "").strip(), "description": f.get("description", ""),
                "domain_id": f.get("domain_id") or "default", "enabled": True}})
        elif what == "user":
            user: dict[str, Any] = {"name": f.get("name", "").strip(), "password": f.get("password", ""),
                                    "domain_id": f.get("domain_id") or "default", "enabled": True}
            if f.get("email"):
                user["email"] = f["email"]
            if f.get("project_id"):
                user["default_project_id"] = f["project_id"]
            uid = (await p.api.post(IDENTITY + "/users", {"user": user}))["user"]["id"]
            if f.get("project_id") and f.get("role_id"):
                try:
                    await _grant(p, f["project_id"], uid, f["role_id"])
                except Failure:  # (nothing half-made: the user goes again)
                    await p.api.delete(f"{IDENTITY}/users/{uid}")
                    raise
        elif what == "assignment":
            await _grant(p, f.get("project_id", ""), f.get("user_id", ""), f.get("role_id", ""))
        elif what in ("delete-project", "delete-user"):
            kind = what.split("-")[1]
            await p.api.delete(f"{IDENTITY}/{kind}s/{quote(_not_own(p, kind, f.get('id', '')))}")
        elif what in ("enable-user", "disable-user", "enable-project", "disable-project"):
            verb, kind = what.split("-")
            target = f.get("id", "") if verb == "enable" else _not_own(p, kind, f.get("id", ""))
            await p.api.request("PATCH", f"{IDENTITY}/{kind}s/{quote(target)}",
                                json={kind: {"enabled": verb == "enable"}})
        elif what == "quota":
            await p.api.put(f"{COMPUTE}/os-quota-sets/{quote(f.get('project_id', ''))}",
                            {"quota_set": _limits(f)}, headers=NOVA_VERSION)
        else:
            raise Failure(404, f"There is no identity form {what!r}.")
    except Failure as e:
        where = "list" if what.startswith(("delete-", "enable-", "disable-")) else what
        return await identity.show(p, {where: e.message}, fail(e))
    return p.redirect("/identity/")


def _not_own(p: Page, kind: str, target: str) -> str:
    """``target``, unless it is the user logged in or the project worked in (not disabled
    or deleted from under this session)."""
    if kind == "user" and target == p.login.user_id:
        raise Failure(400, "You cannot delete or disable the user you are logged in as.")
    if kind == "project" and target == p.login.project_id:
        raise Failure(400, "You cannot delete or disable the project you are working in: switch project first.")
    return target


async def _grant(p: Page, project_id: str, user_id: str, role_id: str) -> None:
    if not (project_id and user_id and role_id):
        raise Failure(400, "Choose a project, a user and a role.")
    await p.api.put(f"{IDENTITY}/projects/{quote(project_id)}/users/{quote(user_id)}/roles/{quote(role_id)}")


@page(admin=True)
async def project_detail(p: Page, errors: dict | None = None, status: int = 200) -> Response:
    """One project: edit it, its members (users and groups with their roles), its quotas."""
    pid = _id(p)
    project = (await p.api.get(f"{IDENTITY}/projects/{pid}"))["project"]
    got = await p.api.gather(
        assignments=f"{IDENTITY}/role_assignments?scope.project.id={pid}&include_names=true",
        users=IDENTITY + "/users", roles=IDENTITY + "/roles", quota=f"{COMPUTE}/os-quota-sets/{pid}")
    members = []
    for a in (got["assignments"] or {}).get("role_assignments", []):
        who = a.get("user") or a.get("group") or {}
        members.append({"kind": "user" if "user" in a else "group", "id": who.get("id", ""),
                        "name": who.get("name") or who.get("id", ""), "role_id": a["role"]["id"],
                        "role": a["role"].get("name") or a["role"]["id"]})
    members.sort(key=lambda x: (x["kind"] != "user", x["name"].lower(), x["role"]))
    quota = (got["quota"] or {}).get("quota_set", {})
    return await p.render("identity_project.html", status=status, errors=errors or {}, project=project,
                          members=members, users=_by_name(got["users"], "users"), roles=_by_name(got["roles"], "roles"),
                          quota=quota, quota_fields=QUOTAS)


@page(admin=True)
async def project_post(p: Page) -> Response:
    pid, f = _id(p), p.form
    action = f.get("action", "")
    try:
        if action == "edit":
            await p.api.request("PATCH", f"{IDENTITY}/projects/{pid}", json={"project": {
                "name": f.get("name", "").strip(), "description": f.get("description", "")}})
        elif action == "add-member":
            await _grant(p, p.request.path_params["id"], f.get("user_id", ""), f.get("role_id", ""))
        elif action == "remove-member":
            kind = "groups" if f.get("kind") == "group" else "users"
            await p.api.delete(f"{IDENTITY}/projects/{pid}/{kind}/{quote(f.get('id', ''))}"
                               f"/roles/{quote(f.get('role_id', ''))}")
        elif action == "quota":
            await p.api.put(f"{COMPUTE}/os-quota-sets/{pid}", {"quota_set": _limits(f)}, headers=NOVA_VERSION)
        else:
            raise Failure(400, f"Unknown action {action!r}: edit, add-member, remove-member or quota.")
    except Failure as e:  # (shown in its form; an unknown action's above the members)
        where = action if action in ("edit", "add-member", "quota") else "remove-member"
        return await project_detail.show(p, {where: e.message}, fail(e))
    return p.redirect(f"/identity/projects/{pid}")


@page(admin=True)
async def user_detail(p: Page, errors: dict | None = None, status: int = 200) -> Response:
    """One user: edit (name, email, primary project, password), their groups and roles."""
    uid = _id(p)
    user = (await p.api.get(f"{IDENTITY}/users/{uid}"))["user"]
    got = await p.api.gather(projects=IDENTITY + "/projects", groups=f"{IDENTITY}/users/{uid}/groups",
                             assignments=f"{IDENTITY}/role_assignments?user.id={uid}&include_names=true")
    roles = [{"project": (a.get("scope") or {}).get("project", {}).get("name", "(not a project)"),
              "role": a["role"].get("name") or a["role"]["id"]}
             for a in (got["assignments"] or {}).get("role_assignments", [])]
    return await p.render("identity_user.html", status=status, errors=errors or {}, user=user,
                          all_projects=_by_name(got["projects"], "projects"),
                          groups=_by_name(got["groups"], "groups"), roles=roles)


@page(admin=True)
async def user_post(p: Page) -> Response:
    uid, f = _id(p), p.form
    change: dict[str, Any] = {"name": f.get("name", "").strip(), "email": f.get("email", "").strip(),
                              "default_project_id": f.get("project_id") or None}
    if f.get("password"):
        change["password"] = f["password"]
    try:
        await p.api.request("PATCH", f"{IDENTITY}/users/{uid}", json={"user": change})
    except Failure as e:
        return await user_detail.show(p, {"edit": e.message}, fail(e))
    return p.redirect(f"/identity/users/{uid}")


# -- groups and roles -------------------------------------------------------------------

@page(admin=True)
async def groups(p: Page, errors: dict | None = None, status: int = 200) -> Response:
    got = await p.api.gather(groups=IDENTITY + "/groups")
    return await p.render("identity_groups.html", status=status, errors=errors or {},
                          groups=_by_name(got["groups"], "groups"))


async def _create_or_delete(p: Page, collection: str, body: dict, listing) -> Response:
    """A list page's form: create ``body`` in the identity ``collection``, or delete the one
    whose id the form names; a refusal is shown on the ``listing`` page."""
    action = p.form.get("action", "")
    try:
        if action == "create":
            await p.api.post(f"{IDENTITY}/{collection}", body)
        elif action == "delete":
            await p.api.delete(f"{IDENTITY}/{collection}/{quote(p.form.get('id', ''))}")
        else:
            raise Failure(400, f"Unknown action {action!r}: create or delete.")
    except Failure as e:
        return await listing.show(p, {"create" if action == "create" else "list": e.message}, fail(e))
    return p.redirect(f"/identity/{collection}")


@page(admin=True)
async def groups_post(p: Page) -> Response:
    f = p.form
    return await _create_or_delete(p, "groups", {"group": {
        "name": f.get("name", "").strip(), "description": f.get("description", ""), "domain_id": "default"}},
        groups)


@page(admin=True)
async def group_detail(p: Page, errors: dict | None = None, status: int = 200) -> Response:
    gid = _id(p)
    group = (await p.api.get(f"{IDENTITY}/groups/{gid}"))["group"]
    got = await p.api.gather(members=f"{IDENTITY}/groups/{gid}/users", users=IDENTITY + "/users")
    members = _by_name(got["members"], "users")
    inside = {u["id"] for u in members}
    return await p.render("identity_group.html", status=status, errors=errors or {}, group=group, members=members,
                          others=[u for u in _by_name(got["users"], "users") if u["id"] not in inside])


@page(admin=True)
async def group_post(p: Page) -> Response:
    gid, action = _id(p), p.form.get("action", "")
    member = f"{IDENTITY}/groups/{gid}/users/{quote(p.form.get('user_id', ''))}"
    try:
        if not p.form.get("user_id"):
            raise Failure(400, "Choose a user.")
        if action == "add":
            await p.api.put(member)
        elif action == "remove":
            await p.api.delete(member)
        else:
            raise Failure(400, f"Unknown action {action!r}: add or remove.")
    except Failure as e:
        return await group_detail.show(p, {"members": e.message}, fail(e))
    return p.redirect(f"/identity/groups/{gid}")


@page(admin=True)
async def roles(p: Page, errors: dict | None = None, status: int = 200) -> Response:
    got = await p.api.gather(roles=IDENTITY + "/roles")
    return await p.render("identity_roles.html", status=status, errors=errors or {},
                          roles=_by_name(got["roles"], "roles"))


@page(admin=True)
async def roles_post(p: Page) -> Response:
    return await _create_or_delete(p, "roles", {"role": {"name": p.form.get("name", "").strip()}}, roles)


# -- application credentials (every user's own) --------------------------------------------

@page()
async def app_credentials(p: Page, errors: dict | None = None, status: int = 200, created: dict | None = None
                          ) -> Response:
    got = await p.api.gather(creds=f"{IDENTITY}/users/{quote(p.login.user_id)}/application_credentials")
    return await p.render("identity_appcreds.html", status=status, errors=errors or {}, created=created,
                          creds=_by_name(got["creds"], "application_credentials"))


@page()
async def app_credentials_post(p: Page) -> Response:
    """Create one (its secret is this answer's page, shown once and kept nowhere) or delete one."""
    f, action = p.form, p.form.get("action", "")
    base = f"{IDENTITY}/users/{quote(p.login.user_id)}/application_credentials"
    try:
        if action == "create":
            cred: dict[str, Any] = {"name": f.get("name", "").strip(), "description": f.get("description", ""),
                                    "unrestricted": bool(f.get("unrestricted"))}
            if f.get("expires_at", "").strip():
                cred["expires_at"] = f["expires_at"].strip()
            made = (await p.api.post(base, {"application_credential": cred}))["application_credential"]
            return await app_credentials.show(p, created=made, status=201)
        if action == "delete":
            await p.api.delete(f"{base}/{quote(f.get('id', ''))}")
        else:
            raise Failure(400, f"Unknown action {action!r}: create or delete.")
    except Failure as e:
        return await app_credentials.show(p, {"create" if action == "create" else "list": e.message}, fail(e))
    return p.redirect("/identity/application_credentials")
