"""Roles, implied roles, role assignments and the effective roles a token carries."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from onestack.common import errors
from onestack.identity import core
from onestack.identity import models as m

SYSTEM = "system"
ACTOR_TYPES = ("User", "Group")
TARGET_TYPES = ("Project", "Domain", "System")


# -- roles -----------------------------------------------------------------


def create_role(s: Session, name: str, domain_id: str | None, description: str, extra: dict) -> m.Role:
    core.check_name(name, "role")
    dom = domain_id or m.NULL_DOMAIN
    if domain_id:
        core.get_domain(s, domain_id)
    if s.scalar(sa.select(m.Role.id).where(m.Role.name == name, m.Role.domain_id == dom)):
        raise errors.Conflict(f"Conflict occurred attempting to store role - Duplicate entry for name {name}.")
    role = m.Role(id=core.new_id(), name=name, domain_id=dom, description=description or "", extra=extra)
    s.add(role)
    return role


def find_role(s: Session, name_or_id: str) -> m.Role | None:
    return s.get(m.Role, name_or_id) or s.scalar(
        sa.select(m.Role).where(m.Role.name == name_or_id, m.Role.domain_id == m.NULL_DOMAIN)
    )


def implication_map(s: Session) -> dict[str, set[str]]:
    rows = s.execute(sa.select(m.ImpliedRole.prior_role_id, m.ImpliedRole.implied_role_id))
    out: dict[str, set[str]] = {}
    for prior, implied in rows:
        out.setdefault(prior, set()).add(implied)
    return out


def expand(role_ids: set[str], implied: dict[str, set[str]]) -> set[str]:
    """Role ids plus everything they imply, transitively (cycles are refused on write)."""
    out = set(role_ids)
    todo = list(role_ids)
    while todo:
        for nxt in implied.get(todo.pop(), ()):
            if nxt not in out:
                out.add(nxt)
                todo.append(nxt)
    return out


def add_implied_role(s: Session, prior_id: str, implied_id: str) -> None:
    prior, implied = core.get_role(s, prior_id), core.get_role(s, implied_id)
    if prior.id == implied.id:
        raise errors.BadRequest("A role cannot imply itself.")
    # As Keystone: a global role may not imply a domain-specific one (a domain's roles
    # would leak into every domain); domain roles may imply any role. Implying admin
    # (Keystone's default prohibited_implied_role) would hand out admin by the back door.
    if prior.domain_id == m.NULL_DOMAIN and implied.domain_id != m.NULL_DOMAIN:
        raise errors.Forbidden(f"Global role {prior.id} cannot imply domain-specific role {implied.id}.")
    if implied.name == "admin":
        raise errors.Forbidden(f"{implied.id} cannot be an implied role.")
    if prior.id in expand({implied.id}, implication_map(s)):
        raise errors.Conflict(f"Implying role {implied.id} from {prior.id} would create a cycle.")
    if s.get(m.ImpliedRole, (prior.id, implied.id)) is None:
        s.add(m.ImpliedRole(prior_role_id=prior.id, implied_role_id=implied.id))


# -- grants ----------------------------------------------------------------


def assignment_type(actor: str, target: str) -> str:
    return actor + target  # "UserProject", "GroupSystem", ...


def check_actor(s: Session, actor: str, actor_id: str) -> None:
    (core.get_user if actor == "User" else core.get_group)(s, actor_id)


def check_target(s: Session, target: str, target_id: str) -> None:
    if target == "Project":
        core.get_project(s, target_id)
    elif target == "Domain":
        core.get_domain(s, target_id)


def grant(s: Session, actor: str, actor_id: str, target: str, target_id: str, role_id: str,
          inherited: bool = False) -> None:
    check_actor(s, actor, actor_id)
    check_target(s, target, target_id)
    role = core.get_role(s, role_id)
    if role.domain_id != m.NULL_DOMAIN:
        dom = target_id if target == "Domain" else (
            core.get_project(s, target_id).domain_id if target == "Project" else None)
        if dom != role.domain_id:
            raise errors.Forbidden(
                f"Domain-specific role {role.id} can only be granted within domain {role.domain_id}."
            )
    key = (assignment_type(actor, target), actor_id, target_id, role_id, inherited)
    if s.get(m.Assignment, key) is None:
        s.add(m.Assignment(type=key[0], actor_id=actor_id, target_id=target_id, role_id=role_id,
                           inherited=inherited))


def revoke(s: Session, actor: str, actor_id: str, target: str, target_id: str, role_id: str,
           inherited: bool = False) -> None:
    key = (assignment_type(actor, target), actor_id, target_id, role_id, inherited)
    row = s.get(m.Assignment, key)
    if row is None:
        core.get_role(s, role_id)
        raise errors.NotFound(
            f"Could not find role assignment with role: {role_id}, {actor.lower()}: {actor_id}, "
            f"{target.lower()}: {target_id}."
        )
    s.delete(row)


def direct_roles(s: Session, actor: str, actor_id: str, target: str, target_id: str,
                 inherited: bool = False) -> list[m.Role]:
    q = (
        sa.select(m.Role)
        .join(m.Assignment, m.Assignment.role_id == m.Role.id)
        .where(
            m.Assignment.type == assignment_type(actor, target),
            m.Assignment.actor_id == actor_id,
            m.Assignment.target_id == target_id,
            m.Assignment.inherited.is_(inherited),
        )
        .order_by(m.Role.name)
    )
    return list(s.scalars(q))


# -- effective roles -------------------------------------------------------


def group_ids_of(s: Session, user_id: str) -> list[str]:
    return list(s.scalars(sa.select(m.Membership.group_id).where(m.Membership.user_id == user_id)))


def ancestors(s: Session, project: m.Project) -> list[m.Project]:
    """Parents of a project, nearest first (the domain is not included)."""
    out, seen = [], {project.id}
    cur = project
    while cur.parent_id and cur.parent_id not in seen:
        parent = s.get(m.Project, cur.parent_id)
        if parent is None or parent.is_domain:
            break
        out.append(parent)
        seen.add(parent.id)
        cur = parent
    return out


@dataclass
class EffectiveAssignment:
    """One role an actor holds on a target, and how (for role_assignments?effective)."""

    user_id: str
    role_id: str
    target: str  # Project/Domain/System
    target_id: str
    via_group: str | None = None
    inherited_from: str | None = None  # target id the inherited grant was made on


def roles_on_project(s: Session, user_id: str, project: m.Project) -> set[str]:
    """Role ids (before implication) a user holds on a project, directly, via a
    group, or inherited from the project's domain or parents."""
    actors = [user_id, *group_ids_of(s, user_id)]
    parents = [p.id for p in ancestors(s, project)]
    q = sa.select(m.Assignment.role_id).where(
        m.Assignment.actor_id.in_(actors),
        sa.or_(
            sa.and_(
                m.Assignment.type.in_(("UserProject", "GroupProject")),
                m.Assignment.target_id == project.id,
                m.Assignment.inherited.is_(False),
            ),
            sa.and_(
                m.Assignment.type.in_(("UserProject", "GroupProject")),
                m.Assignment.target_id.in_(parents),
                m.Assignment.inherited.is_(True),
            ),
            sa.and_(
                m.Assignment.type.in_(("UserDomain", "GroupDomain")),
                m.Assignment.target_id == project.domain_id,
                m.Assignment.inherited.is_(True),
            ),
        ),
    )
    return set(s.scalars(q))


def roles_on_domain(s: Session, user_id: str, domain_id: str) -> set[str]:
    actors = [user_id, *group_ids_of(s, user_id)]
    q = sa.select(m.Assignment.role_id).where(
        m.Assignment.actor_id.in_(actors),
        m.Assignment.type.in_(("UserDomain", "GroupDomain")),
        m.Assignment.target_id == domain_id,
        m.Assignment.inherited.is_(False),
    )
    return set(s.scalars(q))


def roles_on_system(s: Session, user_id: str) -> set[str]:
    actors = [user_id, *group_ids_of(s, user_id)]
    q = sa.select(m.Assignment.role_id).where(
        m.Assignment.actor_id.in_(actors),
        m.Assignment.type.in_(("UserSystem", "GroupSystem")),
        m.Assignment.target_id == SYSTEM,
    )
    return set(s.scalars(q))


def token_roles(s: Session, role_ids: set[str]) -> list[m.Role]:
    """What a token lists: the roles plus implied ones, without domain-specific
    roles (those only contribute what they imply), as Keystone does."""
    if not role_ids:
        return []
    ids = expand(role_ids, implication_map(s))
    roles = s.scalars(sa.select(m.Role).where(m.Role.id.in_(ids)).order_by(m.Role.name))
    return [r for r in roles if r.domain_id == m.NULL_DOMAIN]


def projects_for_user(s: Session, user_id: str) -> list[m.Project]:
    """Enabled projects on which the user has any role (the /auth/projects list)."""
    actors = [user_id, *group_ids_of(s, user_id)]
    rows = s.execute(
        sa.select(m.Assignment.type, m.Assignment.target_id, m.Assignment.inherited).where(
            m.Assignment.actor_id.in_(actors),
            m.Assignment.type.in_(("UserProject", "GroupProject", "UserDomain", "GroupDomain")),
        )
    ).all()
    ids: set[str] = set()
    inherited_domains: set[str] = set()
    inherited_parents: set[str] = set()
    for typ, target, inherited in rows:
        if typ.endswith("Project"):
            (inherited_parents if inherited else ids).add(target)
        elif inherited:
            inherited_domains.add(target)
    projects = list(
        s.scalars(
            sa.select(m.Project).where(
                m.Project.is_domain.is_(False),
                sa.or_(m.Project.id.in_(ids), m.Project.domain_id.in_(inherited_domains)),
            )
        )
    )
    if inherited_parents:
        frontier = list(inherited_parents)
        while frontier:
            kids = list(s.scalars(sa.select(m.Project).where(m.Project.parent_id.in_(frontier))))
            projects.extend(kids)
            frontier = [k.id for k in kids]
    uniq = {p.id: p for p in projects if p.enabled}
    enabled_domains = _enabled_domains(s, {p.domain_id for p in uniq.values()})
    return sorted((p for p in uniq.values() if p.domain_id in enabled_domains), key=lambda p: p.name)


def domains_for_user(s: Session, user_id: str) -> list[m.Project]:
    actors = [user_id, *group_ids_of(s, user_id)]
    ids = set(
        s.scalars(
            sa.select(m.Assignment.target_id).where(
                m.Assignment.actor_id.in_(actors),
                m.Assignment.type.in_(("UserDomain", "GroupDomain")),
                m.Assignment.inherited.is_(False),
            )
        )
    )
    if not ids:
        return []
    return list(
        s.scalars(
            sa.select(m.Project)
            .where(m.Project.id.in_(ids), m.Project.is_domain.is_(True), m.Project.enabled.is_(True))
            .order_by(m.Project.name)
        )
    )


def _enabled_domains(s: Session, ids: set[str]) -> set[str]:
    if not ids:
        return set()
    return set(
        s.scalars(sa.select(m.Project.id).where(m.Project.id.in_(ids), m.Project.enabled.is_(True)))
    )


# -- role and implied-role writes (used by the /v3/roles API) -------------------

ROLE_CORE = {"id", "name", "domain_id", "description", "options", "links"}


def update_role(s: Session, role: m.Role, body: dict) -> m.Role:
    if "domain_id" in body and (body["domain_id"] or m.NULL_DOMAIN) != role.domain_id:
        raise errors.BadRequest("Invalid input for field 'domain_id': it cannot be changed.")
    if "name" in body and body["name"] != role.name:
        name = core.check_name(body["name"], "role")
        clash = sa.select(m.Role.id).where(m.Role.name == name, m.Role.domain_id == role.domain_id)
        if s.scalar(clash):
            raise errors.Conflict(f"Conflict occurred attempting to store role - Duplicate entry for name {name}.")
        role.name = name
    if "description" in body:
        role.description = body["description"] or ""
    extra = {k: v for k, v in body.items() if k not in ROLE_CORE}
    if extra:
        role.extra = {**(role.extra or {}), **extra}
    return role


def delete_role(s: Session, role: m.Role) -> None:
    """A role goes with its grants and inference rules (explicitly, so it does not
    depend on the database enforcing foreign keys)."""
    s.execute(sa.delete(m.Assignment).where(m.Assignment.role_id == role.id))
    s.execute(sa.delete(m.ImpliedRole).where(
        sa.or_(m.ImpliedRole.prior_role_id == role.id, m.ImpliedRole.implied_role_id == role.id)))
    s.execute(sa.delete(m.AppCredentialRole).where(m.AppCredentialRole.role_id == role.id))
    s.delete(role)


def remove_implied_role(s: Session, prior_id: str, implied_id: str) -> None:
    core.get_role(s, prior_id)
    core.get_role(s, implied_id)
    row = s.get(m.ImpliedRole, (prior_id, implied_id))
    if row is None:
        raise errors.NotFound(f"{prior_id} does not imply {implied_id}.")
    s.delete(row)


# -- listing role assignments (GET /v3/role_assignments) -------------------------


@dataclass
class AssignmentRef:
    """One entry of a role assignment listing, and where it comes from."""

    role_id: str
    target: str  # Project / Domain / System
    target_id: str
    user_id: str | None = None
    group_id: str | None = None  # a group's own grant (not effective mode)
    inherited: bool = False  # comes from an inherited_to_projects grant
    source: tuple[str, str] | None = None  # (Project|Domain, id) an inherited grant was made on
    via_group: str | None = None  # effective: the user holds it through this group
    granted_role_id: str | None = None  # effective: the granted role an implied role comes from
    prior_role_id: str | None = None  # effective: the role directly implying this one


def subtree_ids(s: Session, project_id: str) -> list[str]:
    """Ids of every project below ``project_id`` (not itself)."""
    out: list[str] = []
    frontier = [project_id]
    while frontier:
        kids = list(s.scalars(sa.select(m.Project.id).where(
            m.Project.parent_id.in_(frontier), m.Project.is_domain.is_(False))))
        kids = [k for k in kids if k not in out and k != project_id]  # guard against loops
        out.extend(kids)
        frontier = kids
    return out


def _split_type(typ: str) -> tuple[str, str]:
    actor = "User" if typ.startswith("User") else "Group"
    return actor, typ[len(actor):]


def list_role_assignments(
    s: Session,
    *,
    user_id: str | None = None,
    group_id: str | None = None,
    role_id: str | None = None,
    project_ids: list[str] | None = None,
    domain_id: str | None = None,
    system: bool = False,
    inherited: bool | None = None,
    effective: bool = False,
) -> list[AssignmentRef]:
    """Role assignments matching the filters, as Keystone lists them.

    ``project_ids`` is the scope.project.id filter (plus its subtree when asked).
    In effective mode group grants become one entry per member, inherited grants
    one entry per project they reach, implied roles are added and domain-specific
    roles (which never reach a token) dropped: what the users can actually do.
    """
    if effective:
        return _effective_assignments(s, user_id, group_id, role_id, project_ids, domain_id,
                                      system, inherited)
    q = sa.select(m.Assignment)
    if user_id:
        q = q.where(m.Assignment.actor_id == user_id, m.Assignment.type.like("User%"))
    if group_id:
        q = q.where(m.Assignment.actor_id == group_id, m.Assignment.type.like("Group%"))
    if role_id:
        q = q.where(m.Assignment.role_id == role_id)
    if inherited is not None:
        q = q.where(m.Assignment.inherited.is_(inherited))
    if project_ids is not None:
        q = q.where(m.Assignment.type.like("%Project"), m.Assignment.target_id.in_(project_ids))
    elif domain_id:
        q = q.where(m.Assignment.type.like("%Domain"), m.Assignment.target_id == domain_id)
    elif system:
        q = q.where(m.Assignment.type.like("%System"))
    out = []
    for a in s.scalars(q):
        actor, target = _split_type(a.type)
        out.append(AssignmentRef(
            role_id=a.role_id, target=target, target_id=a.target_id,
            user_id=a.actor_id if actor == "User" else None,
            group_id=a.actor_id if actor == "Group" else None,
            inherited=a.inherited,
        ))
    return _sorted(out)


def _sorted(refs: list[AssignmentRef]) -> list[AssignmentRef]:
    order = {"System": 0, "Domain": 1, "Project": 2}
    return sorted(refs, key=lambda r: (order.get(r.target, 3), r.target_id, r.user_id or "",
                                       r.group_id or "", r.role_id, r.via_group or "",
                                       r.source or ("", ""), r.granted_role_id or ""))


def _effective_assignments(s, user_id, group_id, role_id, project_ids, domain_id, system,
                           inherited) -> list[AssignmentRef]:
    # Group grants are expanded to users and domains inherit nothing: these
    # filters can only ever give an empty list.
    if group_id or (domain_id and inherited):
        return []
    if domain_id:
        inherited = False
    q = sa.select(m.Assignment)
    if user_id:
        q = q.where(m.Assignment.actor_id.in_([user_id, *group_ids_of(s, user_id)]))
    if inherited is not None:
        q = q.where(m.Assignment.inherited.is_(inherited))
    wanted: set[str] | None = None
    if project_ids is not None:
        # Only grants that can reach these projects: on them, inherited from
        # their parents or inherited from their domain.
        wanted = set(project_ids)
        sources, domains = set(project_ids), set()
        for pid in project_ids:
            p = s.get(m.Project, pid)
            if p is not None:
                domains.add(p.domain_id)
                sources.update(x.id for x in ancestors(s, p))
        q = q.where(sa.or_(
            sa.and_(m.Assignment.type.like("%Project"), m.Assignment.target_id.in_(sources)),
            sa.and_(m.Assignment.type.like("%Domain"), m.Assignment.inherited.is_(True),
                    m.Assignment.target_id.in_(domains)),
        ))
    elif domain_id:
        q = q.where(m.Assignment.type.like("%Domain"), m.Assignment.target_id == domain_id)
    elif system:
        q = q.where(m.Assignment.type.like("%System"))
    rows = list(s.scalars(q))

    members: dict[str, list[str]] = {}
    group_ids = {a.actor_id for a in rows if a.type.startswith("Group")}
    if group_ids:
        mq = sa.select(m.Membership.group_id, m.Membership.user_id).where(
            m.Membership.group_id.in_(group_ids))
        if user_id:
            mq = mq.where(m.Membership.user_id == user_id)
        for gid, uid in s.execute(mq):
            members.setdefault(gid, []).append(uid)

    reach: dict[tuple[str, str], list[str]] = {}  # inherited grant source -> projects

    def reached(target: str, target_id: str) -> list[str]:
        key = (target, target_id)
        if key not in reach:
            if target == "Domain":
                reach[key] = list(s.scalars(sa.select(m.Project.id).where(
                    m.Project.domain_id == target_id, m.Project.is_domain.is_(False))))
            else:
                reach[key] = subtree_ids(s, target_id)
        return reach[key]

    refs: list[AssignmentRef] = []
    for a in rows:
        actor, target = _split_type(a.type)
        holders = [(a.actor_id, None)] if actor == "User" else [
            (uid, a.actor_id) for uid in members.get(a.actor_id, [])]
        if a.inherited:
            targets = [("Project", pid, (target, a.target_id)) for pid in reached(target, a.target_id)]
        else:
            targets = [(target, a.target_id, None)]
        for t_kind, t_id, source in targets:
            if wanted is not None and (t_kind != "Project" or t_id not in wanted):
                continue
            for uid, via in holders:
                refs.append(AssignmentRef(
                    role_id=a.role_id, target=t_kind, target_id=t_id, user_id=uid,
                    inherited=a.inherited, source=source, via_group=via,
                ))

    # Implied roles, transitively; each remembers the granted role and its prior.
    implied = implication_map(s)
    expanded: list[AssignmentRef] = []
    for ref in refs:
        expanded.append(ref)
        seen = {ref.role_id}
        todo = [ref.role_id]
        while todo:
            prior = todo.pop()
            for nxt in sorted(implied.get(prior, ())):
                if nxt in seen:
                    continue
                seen.add(nxt)
                todo.append(nxt)
                expanded.append(AssignmentRef(
                    role_id=nxt, target=ref.target, target_id=ref.target_id, user_id=ref.user_id,
                    inherited=ref.inherited, source=ref.source, via_group=ref.via_group,
                    granted_role_id=ref.role_id, prior_role_id=prior,
                ))
    role_ids = {r.role_id for r in expanded}
    global_roles = set(s.scalars(sa.select(m.Role.id).where(
        m.Role.id.in_(role_ids), m.Role.domain_id == m.NULL_DOMAIN))) if role_ids else set()
    return _sorted([r for r in expanded if r.role_id in global_roles
                    and (role_id is None or r.role_id == role_id)])
