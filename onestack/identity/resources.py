"""Domains, projects, users and groups: what happens on each write."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from onestack.common import errors
from onestack.common.timeutils import utcnow
from onestack.identity import authn, core, limits, passwords, security, trusts
from onestack.identity import models as m

PROJECT_CORE = {"id", "name", "domain_id", "description", "enabled", "parent_id", "is_domain",
                "tags", "options", "links"}
USER_CORE = {"id", "name", "domain_id", "enabled", "default_project_id", "password", "options",
             "links", "password_expires_at", "federated"}
MAX_TAGS = 80
MAX_TAG_LENGTH = 255


def _duplicate(kind: str, name: str) -> errors.Conflict:
    return errors.Conflict(f"Conflict occurred attempting to store {kind} - Duplicate entry found with name {name}.")


def split_extra(body: dict, core_keys: set[str]) -> dict:
    return {k: v for k, v in body.items() if k not in core_keys}


def check_tags(tags) -> list[str]:
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise errors.BadRequest("Invalid input for field 'tags': must be a list of strings.")
    if len(tags) > MAX_TAGS:
        raise errors.BadRequest(f"Invalid input for field 'tags': at most {MAX_TAGS} tags.")
    for t in tags:
        if not t or len(t) > MAX_TAG_LENGTH or "," in t or "/" in t:
            raise errors.BadRequest(
                f"Invalid input for field 'tags': tag {t!r} must be 1-{MAX_TAG_LENGTH} characters without ',' or '/'."
            )
    return list(dict.fromkeys(tags))


# -- projects and domains --------------------------------------------------


def create_project(s: Session, body: dict, is_domain: bool = False) -> m.Project:
    name = core.check_name(body.get("name"), "domain" if is_domain else "project")
    is_domain = is_domain or bool(body.get("is_domain"))
    parent_id = body.get("parent_id")
    if is_domain:
        domain_id = m.ROOT_DOMAIN
        if parent_id:
            raise errors.BadRequest("A domain cannot have a parent project.")
        if s.scalar(sa.select(m.Project.id).where(m.Project.is_domain.is_(True), m.Project.name == name)):
            raise _duplicate("domain", name)
    else:
        domain_id = body.get("domain_id")
        if parent_id:
            parent = s.get(m.Project, parent_id)
            if parent is None:
                raise errors.NotFound(f"Could not find project: {parent_id}.")
            parent_domain = parent.id if parent.is_domain else parent.domain_id
            if domain_id and domain_id != parent_domain:
                raise errors.BadRequest("The project's domain_id must match its parent's domain.")
            domain_id = parent_domain
            if parent.is_domain:
                parent_id = parent.id
        domain_id = domain_id or "default"
        core.get_domain(s, domain_id)
        if parent_id is None:
            parent_id = domain_id
        if s.scalar(sa.select(m.Project.id).where(m.Project.domain_id == domain_id, m.Project.name == name)):
            raise _duplicate("project", name)
    project_id = body.get("id") if is_domain and body.get("id") else core.new_id()
    if s.get(m.Project, project_id) is not None:
        raise errors.Conflict(f"Conflict occurred attempting to store project - Duplicate ID {project_id}.")
    p = m.Project(
        id=project_id,
        name=name,
        domain_id=domain_id,
        parent_id=None if is_domain else parent_id,
        is_domain=is_domain,
        enabled=body.get("enabled", True),
        description=body.get("description") or "",
        extra=split_extra(body, PROJECT_CORE),
    )
    s.add(p)
    s.flush()
    for tag in check_tags(body.get("tags", [])):
        s.add(m.ProjectTag(project_id=p.id, name=tag))
    return p


def update_project(s: Session, p: m.Project, body: dict) -> m.Project:
    for key in ("id", "domain_id", "is_domain", "parent_id"):
        if key in body and body[key] != getattr(p, key):
            raise errors.BadRequest(f"Invalid input for field '{key}': it cannot be changed.")
    if "name" in body and body["name"] != p.name:
        name = core.check_name(body["name"], "domain" if p.is_domain else "project")
        clash = sa.select(m.Project.id).where(m.Project.domain_id == p.domain_id, m.Project.name == name)
        if s.scalar(clash):
            raise _duplicate("domain" if p.is_domain else "project", name)
        p.name = name
    if "description" in body:
        p.description = body["description"] or ""
    if "enabled" in body:
        if p.enabled and not body["enabled"]:
            _revoke_scope(s, p)
        p.enabled = body["enabled"]
    if "tags" in body:
        set_tags(s, p, body["tags"])
    extra = split_extra(body, PROJECT_CORE)
    if extra:
        p.extra = {**(p.extra or {}), **extra}
    return p


def _revoke_scope(s: Session, p: m.Project) -> None:
    if p.is_domain:
        authn.revoke(s, domain_id=p.id)
    else:
        authn.revoke(s, project_id=p.id)


def delete_project(s: Session, p: m.Project) -> None:
    if p.is_domain:
        if p.enabled:
            raise errors.Forbidden("Cannot delete a domain that is enabled, please disable it first.")
        if p.id == "default":
            raise errors.Forbidden("The default domain cannot be deleted.")
        children = list(s.scalars(sa.select(m.Project).where(m.Project.domain_id == p.id)))
        for child in children:
            _delete_project_row(s, child)
        for model in (m.User, m.Group):
            for row in s.scalars(sa.select(model).where(model.domain_id == p.id)):
                _delete_actor(s, row)
        s.execute(sa.delete(m.Role).where(m.Role.domain_id == p.id))
    elif s.scalar(sa.select(m.Project.id).where(m.Project.parent_id == p.id)):
        raise errors.Forbidden(f"Cannot delete project {p.id}: it has child projects.")
    _delete_project_row(s, p)


def _delete_project_row(s: Session, p: m.Project) -> None:
    s.execute(sa.delete(m.Assignment).where(m.Assignment.target_id == p.id))
    trusts.delete_for_project(s, p.id)
    limits.delete_for_project(s, p.id)
    _revoke_scope(s, p)
    s.delete(p)


def tags_of(s: Session, project_ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {pid: [] for pid in project_ids}
    if project_ids:
        rows = s.execute(
            sa.select(m.ProjectTag.project_id, m.ProjectTag.name)
            .where(m.ProjectTag.project_id.in_(project_ids))
            .order_by(m.ProjectTag.name)
        )
        for pid, name in rows:
            out[pid].append(name)
    return out


def set_tags(s: Session, p: m.Project, tags) -> list[str]:
    tags = check_tags(tags)
    s.execute(sa.delete(m.ProjectTag).where(m.ProjectTag.project_id == p.id))
    for t in tags:
        s.add(m.ProjectTag(project_id=p.id, name=t))
    return tags


def add_tag(s: Session, p: m.Project, tag: str) -> None:
    check_tags([tag])
    current = tags_of(s, [p.id])[p.id]
    if tag in current:
        return
    if len(current) >= MAX_TAGS:
        raise errors.BadRequest(f"Invalid input for field 'tags': at most {MAX_TAGS} tags.")
    s.add(m.ProjectTag(project_id=p.id, name=tag))


# -- users --------------------------------------------------------------------


def check_password_value(password) -> str:
    if not isinstance(password, str) or not password:
        raise errors.BadRequest("Invalid input for field 'password': must be a non-empty string.")
    if len(password.encode()) > passwords.MAX_BYTES:
        raise errors.BadRequest(f"Invalid input for field 'password': longer than {passwords.MAX_BYTES} bytes.")
    return password


def create_user(s: Session, body: dict) -> m.User:
    name = core.check_name(body.get("name"), "user")
    domain_id = body.get("domain_id") or "default"
    core.get_domain(s, domain_id)
    if s.scalar(sa.select(m.User.id).where(m.User.domain_id == domain_id, m.User.name == name)):
        raise _duplicate("user", name)
    default_project = body.get("default_project_id")
    if default_project:
        proj = s.get(m.Project, default_project)
        if proj is None:
            raise errors.NotFound(f"Could not find project: {default_project}.")
        if proj.is_domain:
            raise errors.BadRequest("The default project of a user cannot be a domain.")
    now = utcnow()
    u = m.User(
        id=core.new_id(), name=name, domain_id=domain_id, enabled=body.get("enabled", True),
        default_project_id=default_project, extra=split_extra(body, USER_CORE), created_at=now,
        failed_auth_count=0, options={}, password_self_service=False,
    )
    if body.get("options") is not None:
        security.set_options(u, body["options"])
    if u.enabled and core.settings().disable_user_account_days_inactive:
        u.last_active_at = now.date()  # the inactivity clock starts now (Keystone)
    if body.get("password") is not None:
        security.check_strength(check_password_value(body["password"]))
        security.store_password(s, u, body["password"], self_service=False)
    s.add(u)
    return u


def update_user(s: Session, u: m.User, body: dict) -> m.User:
    for key in ("id", "domain_id"):
        if key in body and body[key] != getattr(u, key):
            raise errors.BadRequest(f"Invalid input for field '{key}': it cannot be changed.")
    if "name" in body and body["name"] != u.name:
        name = core.check_name(body["name"], "user")
        if s.scalar(sa.select(m.User.id).where(m.User.domain_id == u.domain_id, m.User.name == name)):
            raise _duplicate("user", name)
        u.name = name
    if "default_project_id" in body:
        pid = body["default_project_id"]
        if pid and s.get(m.Project, pid) is None:
            raise errors.NotFound(f"Could not find project: {pid}.")
        u.default_project_id = pid
    if body.get("options") is not None:
        security.set_options(u, body["options"])
    if "enabled" in body:
        if u.enabled and not body["enabled"]:
            authn.revoke(s, user_id=u.id)
        u.enabled = body["enabled"]
        if u.enabled:
            u.failed_auth_count = 0
            if core.settings().disable_user_account_days_inactive:
                u.last_active_at = security.today()  # enabling again restarts the clock
    if body.get("password") is not None:
        set_password(s, u, body["password"])
    extra = split_extra(body, USER_CORE)
    if extra:
        merged = {**(u.extra or {}), **extra}
        u.extra = {k: v for k, v in merged.items() if v is not None or k not in extra}
    return u


def set_password(s: Session, u: m.User, password, self_service: bool = False) -> None:
    security.check_strength(check_password_value(password))
    security.store_password(s, u, password, self_service)
    u.failed_auth_count = 0
    authn.revoke(s, user_id=u.id)


def change_own_password(s: Session, u: m.User, original, new) -> None:
    """POST /users/{id}/password: needs the current password, not a token."""
    # the same answer as for an unknown user, so it does not reveal who exists;
    # failures count towards lockout as failed logins do
    authn.check_user_password(
        u, original if isinstance(original, str) else "",
        "Error when changing user password: invalid user / password.",
    )
    if not u.enabled:
        raise errors.Unauthorized(f"User {u.id} is disabled.")
    if security.inactive(u):
        raise errors.Unauthorized(f"The account is disabled for user: {u.id}.")
    # (an expired password may be changed: that is how its user gets a new one)
    security.check_strength(check_password_value(new))
    security.check_self_service_change(s, u, new)
    set_password(s, u, new, self_service=True)
    u.last_active_at = security.today()


def _delete_actor(s: Session, actor: m.User | m.Group) -> None:
    s.execute(sa.delete(m.Assignment).where(m.Assignment.actor_id == actor.id))
    if isinstance(actor, m.User):
        authn.revoke(s, user_id=actor.id)
        trusts.delete_for_user(s, actor.id)
        s.execute(sa.delete(m.PasswordHistory).where(m.PasswordHistory.user_id == actor.id))
    s.delete(actor)


def delete_user(s: Session, u: m.User) -> None:
    _delete_actor(s, u)


# -- groups -------------------------------------------------------------------


def create_group(s: Session, body: dict) -> m.Group:
    name = core.check_name(body.get("name"), "group")
    domain_id = body.get("domain_id") or "default"
    core.get_domain(s, domain_id)
    if s.scalar(sa.select(m.Group.id).where(m.Group.domain_id == domain_id, m.Group.name == name)):
        raise _duplicate("group", name)
    g = m.Group(id=core.new_id(), name=name, domain_id=domain_id,
                description=body.get("description") or "",
                extra=split_extra(body, {"id", "name", "domain_id", "description", "links"}))
    s.add(g)
    return g


def update_group(s: Session, g: m.Group, body: dict) -> m.Group:
    for key in ("id", "domain_id"):
        if key in body and body[key] != getattr(g, key):
            raise errors.BadRequest(f"Invalid input for field '{key}': it cannot be changed.")
    if "name" in body and body["name"] != g.name:
        name = core.check_name(body["name"], "group")
        if s.scalar(sa.select(m.Group.id).where(m.Group.domain_id == g.domain_id, m.Group.name == name)):
            raise _duplicate("group", name)
        g.name = name
    if "description" in body:
        g.description = body["description"] or ""
    extra = split_extra(body, {"id", "name", "domain_id", "description", "links"})
    if extra:
        g.extra = {**(g.extra or {}), **extra}
    return g


def delete_group(s: Session, g: m.Group) -> None:
    for uid in s.scalars(sa.select(m.Membership.user_id).where(m.Membership.group_id == g.id)):
        authn.revoke(s, user_id=uid)
    _delete_actor(s, g)


def add_member(s: Session, g: m.Group, u: m.User) -> None:
    if s.get(m.Membership, (u.id, g.id)) is None:
        s.add(m.Membership(user_id=u.id, group_id=g.id))


def remove_member(s: Session, g: m.Group, u: m.User) -> None:
    row = s.get(m.Membership, (u.id, g.id))
    if row is None:
        raise errors.NotFound(f"User {u.id} is not a member of group {g.id}.")
    s.delete(row)
    authn.revoke(s, user_id=u.id)
