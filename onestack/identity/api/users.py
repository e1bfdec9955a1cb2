"""/v3/users (with password change, projects and groups of a user) and
/v3/groups (with membership)."""

from __future__ import annotations

import sqlalchemy as sa

from onestack.common import db, errors
from onestack.common.http import Req, empty, json_response
from onestack.identity import assignments, core, passwords, resources, security
from onestack.identity import models as m
from onestack.identity.api import api, views
from onestack.identity.api.common import (
    authorize,
    body_object,
    check_bool,
    check_str,
    collection,
    limit_list,
    query_bool,
)

# -- body checks -----------------------------------------------------------------


def _check_user_body(obj: dict, creating: bool) -> None:
    if creating or "name" in obj:
        core.check_name(obj.get("name"), "user")
    check_bool(obj, "enabled")
    check_str(obj, "domain_id", nullable=creating, max_length=64)
    check_str(obj, "default_project_id", max_length=64)
    check_str(obj, "description")
    if "options" in obj:
        security.check_options(obj["options"])
    # Refuse a bad password here, before any lookup, so the message names it.
    if obj.get("password") is not None:
        resources.check_password_value(obj["password"])


def _check_group_body(obj: dict, creating: bool) -> None:
    if creating or "name" in obj:
        core.check_name(obj.get("name"), "group")
    check_str(obj, "domain_id", nullable=creating, max_length=64)
    check_str(obj, "description")


def _user_target(u: m.User) -> dict:
    return {"user": {"id": u.id, "domain_id": u.domain_id}, "domain_id": u.domain_id}


def _group_target(g: m.Group) -> dict:
    return {"group": {"id": g.id, "domain_id": g.domain_id}, "domain_id": g.domain_id}


def _list_domain(req: Req) -> str | None:
    """The domain a list is limited to: the ``domain_id`` filter, else the domain
    of a domain-scoped token (such a token only ever sees its own domain)."""
    return req.query.get("domain_id") or req.ctx.domain_id


def _in_scope_domain(req: Req, domain_id: str) -> bool:
    return not req.ctx.domain_id or req.ctx.domain_id == domain_id


def _filter_users(req: Req, users: list[m.User]) -> list[m.User]:
    """The name/enabled/domain_id filters, for lists built in Python."""
    name, domain_id, enabled = (
        req.query.get("name"),
        req.query.get("domain_id"),
        query_bool(req, "enabled"),
    )
    expiry = req.query.get("password_expires_at")
    compare, when = security.expiry_filter(expiry) if expiry is not None else (None, None)
    return [
        u
        for u in users
        if (name is None or u.name == name)
        and (domain_id is None or u.domain_id == domain_id)
        and (enabled is None or u.enabled is enabled)
        and (compare is None or (u.password_expires_at is not None
                                 and compare(u.password_expires_at, when)))
        and _in_scope_domain(req, u.domain_id)
    ]


# -- users -----------------------------------------------------------------------


@api.route("/v3/users", methods=["GET"])
def list_users(req: Req):
    domain_id = _list_domain(req)
    authorize(req, "identity:list_users", {"domain_id": domain_id})
    q = sa.select(m.User).order_by(m.User.name, m.User.id)
    if domain_id:
        q = q.where(m.User.domain_id == domain_id)
    if "name" in req.query:
        q = q.where(m.User.name == req.query["name"])
    enabled = query_bool(req, "enabled")
    if enabled is not None:
        q = q.where(m.User.enabled.is_(enabled))
    if "password_expires_at" in req.query:
        compare, when = security.expiry_filter(req.query["password_expires_at"])
        q = q.where(compare(m.User.password_expires_at, when))
    with db.session() as s:
        rows, truncated = limit_list(list(s.scalars(q)))
        return collection(req, "users", [views.user(req, u) for u in rows], truncated)


@api.route("/v3/users", methods=["POST"])
def create_user(req: Req):
    obj = body_object(req, "user")
    _check_user_body(obj, creating=True)
    domain_id = obj.get("domain_id") or req.ctx.domain_id or "default"
    obj = {**obj, "domain_id": domain_id}
    authorize(
        req, "identity:create_user", {"user": {"domain_id": domain_id}, "domain_id": domain_id}
    )
    with db.transaction() as s:
        u = resources.create_user(s, obj)
        s.flush()
        out = views.user(req, u)
    core.changed("user.created", {"resource_info": u.id})
    return json_response({"user": out}, 201)


@api.route("/v3/users/{user_id}", methods=["GET"])
def get_user(req: Req):
    with db.session() as s:
        u = core.get_user(s, req.path["user_id"])
        authorize(req, "identity:get_user", _user_target(u))
        return json_response({"user": views.user(req, u)})


@api.route("/v3/users/{user_id}", methods=["PATCH"])
def update_user(req: Req):
    obj = body_object(req, "user")
    _check_user_body(obj, creating=False)
    with db.transaction() as s:
        u = core.get_user(s, req.path["user_id"])
        authorize(req, "identity:update_user", _user_target(u))
        resources.update_user(s, u, obj)
        s.flush()
        out = views.user(req, u)
    core.changed("user.updated", {"resource_info": u.id})
    return json_response({"user": out})


@api.route("/v3/users/{user_id}", methods=["DELETE"])
def delete_user(req: Req):
    with db.transaction() as s:
        u = core.get_user(s, req.path["user_id"])
        authorize(req, "identity:delete_user", _user_target(u))
        resources.delete_user(s, u)
    core.changed("user.deleted", {"resource_info": req.path["user_id"]})
    return empty()


@api.route("/v3/users/{user_id}/password", methods=["POST"], auth=False)
def change_password(req: Req):
    """Change one's own password: proven by the original password, not a token."""
    obj = body_object(req, "user")
    for key in ("password", "original_password"):
        if key not in obj:
            raise errors.BadRequest(
                f"Invalid input for field '{key}': '{key}' is a required property."
            )
    if not isinstance(obj["original_password"], str):
        raise errors.BadRequest("Invalid input for field 'original_password': must be a string.")
    resources.check_password_value(obj["password"])
    with db.transaction() as s:
        u = s.get(m.User, req.path["user_id"])
        if u is None:
            # Same answer and cost as a wrong password: don't reveal who exists.
            passwords.check_password(obj["original_password"], None, core.settings().bcrypt_rounds)
            raise errors.Unauthorized("Error when changing user password: invalid user / password.")
        resources.change_own_password(s, u, obj["original_password"], obj["password"])
    core.changed("user.updated", {"resource_info": req.path["user_id"]})
    return empty()


@api.route("/v3/users/{user_id}/projects", methods=["GET"])
def list_user_projects(req: Req):
    with db.session() as s:
        u = core.get_user(s, req.path["user_id"])
        authorize(req, "identity:list_user_projects", _user_target(u))
        name, domain_id = req.query.get("name"), req.query.get("domain_id")
        enabled = query_bool(req, "enabled")
        projects = [
            p
            for p in assignments.projects_for_user(s, u.id)
            if (name is None or p.name == name)
            and (domain_id is None or p.domain_id == domain_id)
            and (enabled is None or p.enabled is enabled)
        ]
        tags = resources.tags_of(s, [p.id for p in projects])
        return collection(req, "projects", [views.project(req, p, tags[p.id]) for p in projects])


@api.route("/v3/users/{user_id}/groups", methods=["GET"])
def list_user_groups(req: Req):
    with db.session() as s:
        u = core.get_user(s, req.path["user_id"])
        authorize(req, "identity:list_groups_for_user", _user_target(u))
        q = (
            sa.select(m.Group)
            .join(m.Membership, m.Membership.group_id == m.Group.id)
            .where(m.Membership.user_id == u.id)
            .order_by(m.Group.name)
        )
        if "name" in req.query:
            q = q.where(m.Group.name == req.query["name"])
        groups = [g for g in s.scalars(q) if _in_scope_domain(req, g.domain_id)]
        return collection(req, "groups", [views.group(req, g) for g in groups])


# -- groups ----------------------------------------------------------------------


@api.route("/v3/groups", methods=["GET"])
def list_groups(req: Req):
    domain_id = _list_domain(req)
    authorize(req, "identity:list_groups", {"domain_id": domain_id})
    q = sa.select(m.Group).order_by(m.Group.name, m.Group.id)
    if domain_id:
        q = q.where(m.Group.domain_id == domain_id)
    if "name" in req.query:
        q = q.where(m.Group.name == req.query["name"])
    with db.session() as s:
        rows, truncated = limit_list(list(s.scalars(q)))
        return collection(req, "groups", [views.group(req, g) for g in rows], truncated)


@api.route("/v3/groups", methods=["POST"])
def create_group(req: Req):
    obj = body_object(req, "group")
    _check_group_body(obj, creating=True)
    domain_id = obj.get("domain_id") or req.ctx.domain_id or "default"
    obj = {**obj, "domain_id": domain_id}
    authorize(
        req, "identity:create_group", {"group": {"domain_id": domain_id}, "domain_id": domain_id}
    )
    with db.transaction() as s:
        g = resources.create_group(s, obj)
        s.flush()
        out = views.group(req, g)
    core.changed("group.created", {"resource_info": g.id})
    return json_response({"group": out}, 201)


@api.route("/v3/groups/{group_id}", methods=["GET"])
def get_group(req: Req):
    with db.session() as s:
        g = core.get_group(s, req.path["group_id"])
        authorize(req, "identity:get_group", _group_target(g))
        return json_response({"group": views.group(req, g)})


@api.route("/v3/groups/{group_id}", methods=["PATCH"])
def update_group(req: Req):
    obj = body_object(req, "group")
    _check_group_body(obj, creating=False)
    with db.transaction() as s:
        g = core.get_group(s, req.path["group_id"])
        authorize(req, "identity:update_group", _group_target(g))
        resources.update_group(s, g, obj)
        extra = resources.split_extra(obj, {"id", "name", "domain_id", "description", "links"})
        if extra:  # other attributes are kept, as on create
            g.extra = {**(g.extra or {}), **extra}
        s.flush()
        out = views.group(req, g)
    core.changed("group.updated", {"resource_info": g.id})
    return json_response({"group": out})


@api.route("/v3/groups/{group_id}", methods=["DELETE"])
def delete_group(req: Req):
    with db.transaction() as s:
        g = core.get_group(s, req.path["group_id"])
        authorize(req, "identity:delete_group", _group_target(g))
        resources.delete_group(s, g)
    core.changed("group.deleted", {"resource_info": req.path["group_id"]})
    return empty()


@api.route("/v3/groups/{group_id}/users", methods=["GET"])
def list_group_users(req: Req):
    with db.session() as s:
        g = core.get_group(s, req.path["group_id"])
        authorize(req, "identity:list_users_in_group", _group_target(g))
        q = (
            sa.select(m.User)
            .join(m.Membership, m.Membership.user_id == m.User.id)
            .where(m.Membership.group_id == g.id)
            .order_by(m.User.name)
        )
        users = _filter_users(req, list(s.scalars(q)))
        return collection(req, "users", [views.user(req, u) for u in users])


def _membership(s, req: Req) -> tuple[m.Group, m.User, dict]:
    g = core.get_group(s, req.path["group_id"])
    u = core.get_user(s, req.path["user_id"])
    target = {**_group_target(g), "user": {"id": u.id, "domain_id": u.domain_id}}
    return g, u, target


@api.route("/v3/groups/{group_id}/users/{user_id}", methods=["GET", "HEAD"])
def check_group_user(req: Req):
    with db.session() as s:
        g, u, target = _membership(s, req)
        authorize(req, "identity:check_user_in_group", target)
        if s.get(m.Membership, (u.id, g.id)) is None:
            raise errors.NotFound(f"User {u.id} is not a member of group {g.id}.")
    return empty()


@api.route("/v3/groups/{group_id}/users/{user_id}", methods=["PUT"])
def add_group_user(req: Req):
    with db.transaction() as s:
        g, u, target = _membership(s, req)
        authorize(req, "identity:add_user_to_group", target)
        resources.add_member(s, g, u)
    core.changed("group.updated", {"resource_info": req.path["group_id"]})
    return empty()


@api.route("/v3/groups/{group_id}/users/{user_id}", methods=["DELETE"])
def remove_group_user(req: Req):
    with db.transaction() as s:
        g, u, target = _membership(s, req)
        authorize(req, "identity:remove_user_from_group", target)
        resources.remove_member(s, g, u)
    core.changed("group.updated", {"resource_info": req.path["group_id"]})
    return empty()
