"""/v3/roles (with implied roles), grants of roles on projects, domains and the
system (and OS-INHERIT inherited grants), and /v3/role_assignments."""

from __future__ import annotations

import sqlalchemy as sa

from onestack.common import db, errors
from onestack.common.http import Req, empty, json_response
from onestack.identity import assignments, authn, core
from onestack.identity import models as m
from onestack.identity.api import api, views
from onestack.identity.api.common import (
    authorize,
    base,
    body_object,
    check_str,
    collection,
    limit_list,
    query_bool,
)

# Keystone's [assignment] prohibited_implied_role default: nothing may imply
# admin, or every holder of a lesser role would become a cloud administrator.
PROHIBITED_IMPLIED = {"admin"}

# -- roles -----------------------------------------------------------------------


def _check_role_body(obj: dict, creating: bool) -> None:
    if creating or "name" in obj:
        core.check_name(obj.get("name"), "role")
    check_str(obj, "domain_id", max_length=64)
    check_str(obj, "description")
    if "options" in obj and not isinstance(obj["options"], dict):
        raise errors.BadRequest("Invalid input for field 'options': must be an object.")


def _role_rule(action: str, role: m.Role) -> str:
    """Domain-specific roles have their own read rules (get_domain_role)."""
    return (
        f"identity:{action}_domain_role"
        if role.domain_id != m.NULL_DOMAIN
        else f"identity:{action}_role"
    )


@api.route("/v3/roles", methods=["GET"])
def list_roles(req: Req):
    domain_id = req.query.get("domain_id")
    authorize(
        req,
        "identity:list_domain_roles" if domain_id else "identity:list_roles",
        {"domain_id": domain_id},
    )
    # Without a domain_id filter Keystone lists the global roles only.
    q = (
        sa.select(m.Role)
        .where(m.Role.domain_id == (domain_id or m.NULL_DOMAIN))
        .order_by(m.Role.name)
    )
    if "name" in req.query:
        q = q.where(m.Role.name == req.query["name"])
    with db.session() as s:
        rows, truncated = limit_list(list(s.scalars(q)))
        return collection(req, "roles", [views.role(req, r) for r in rows], truncated)


@api.route("/v3/roles", methods=["POST"])
def create_role(req: Req):
    obj = body_object(req, "role")
    _check_role_body(obj, creating=True)
    authorize(req, "identity:create_role", {"domain_id": obj.get("domain_id")})
    extra = {k: v for k, v in obj.items() if k not in assignments.ROLE_CORE}
    with db.transaction() as s:
        r = assignments.create_role(
            s, obj["name"], obj.get("domain_id"), obj.get("description") or "", extra
        )
        s.flush()
        out = views.role(req, r)
    core.changed("role.created", {"resource_info": r.id})
    return json_response({"role": out}, 201)


@api.route("/v3/roles/{role_id}", methods=["GET"])
def get_role(req: Req):
    with db.session() as s:
        r = core.get_role(s, req.path["role_id"])
        authorize(
            req,
            _role_rule("get", r),
            {"domain_id": None if r.domain_id == m.NULL_DOMAIN else r.domain_id},
        )
        return json_response({"role": views.role(req, r)})


@api.route("/v3/roles/{role_id}", methods=["PATCH"])
def update_role(req: Req):
    obj = body_object(req, "role")
    _check_role_body(obj, creating=False)
    with db.transaction() as s:
        r = core.get_role(s, req.path["role_id"])
        authorize(req, "identity:update_role")
        assignments.update_role(s, r, obj)
        s.flush()
        out = views.role(req, r)
    core.changed("role.updated", {"resource_info": r.id})
    return json_response({"role": out})


@api.route("/v3/roles/{role_id}", methods=["DELETE"])
def delete_role(req: Req):
    with db.transaction() as s:
        r = core.get_role(s, req.path["role_id"])
        authorize(req, "identity:delete_role")
        assignments.delete_role(s, r)
    core.changed("role.deleted", {"resource_info": req.path["role_id"]})
    return empty()


# -- implied roles ----------------------------------------------------------------


def _inference(req: Req, prior: m.Role, implied: m.Role) -> dict:
    return {
        "role_inference": {
            "prior_role": views.role_ref(req, prior),
            "implies": views.role_ref(req, implied),
        },
        "links": {"self": f"{base(req)}/roles/{prior.id}/implies/{implied.id}"},
    }


def _existing_rule(s, req: Req) -> tuple[m.Role, m.Role]:
    prior = core.get_role(s, req.path["prior_role_id"])
    implied = core.get_role(s, req.path["implied_role_id"])
    if s.get(m.ImpliedRole, (prior.id, implied.id)) is None:
        raise errors.NotFound(f"{prior.id} does not imply {implied.id}.")
    return prior, implied


@api.route("/v3/roles/{prior_role_id}/implies/{implied_role_id}", methods=["PUT"])
def create_implied_role(req: Req):
    authorize(req, "identity:create_implied_role")
    with db.transaction() as s:
        prior = core.get_role(s, req.path["prior_role_id"])
        implied = core.get_role(s, req.path["implied_role_id"])
        if implied.name in PROHIBITED_IMPLIED:
            raise errors.Forbidden(f"{implied.id} cannot be an implied role.")
        assignments.add_implied_role(s, prior.id, implied.id)
        out = _inference(req, prior, implied)
    core.changed("implied_role.created", {"prior_role": prior.id, "implied_role": implied.id})
    return json_response(out, 201)


# HEAD answers 204 without a body, so it is registered before the GET route
# (which Starlette would otherwise also use for HEAD).
@api.route("/v3/roles/{prior_role_id}/implies/{implied_role_id}", methods=["HEAD"])
def check_implied_role(req: Req):
    authorize(req, "identity:get_implied_role")
    with db.session() as s:
        _existing_rule(s, req)
    return empty()


@api.route("/v3/roles/{prior_role_id}/implies/{implied_role_id}", methods=["GET"])
def get_implied_role(req: Req):
    authorize(req, "identity:get_implied_role")
    with db.session() as s:
        prior, implied = _existing_rule(s, req)
        return json_response(_inference(req, prior, implied))


@api.route("/v3/roles/{prior_role_id}/implies/{implied_role_id}", methods=["DELETE"])
def delete_implied_role(req: Req):
    authorize(req, "identity:delete_implied_role")
    with db.transaction() as s:
        assignments.remove_implied_role(s, req.path["prior_role_id"], req.path["implied_role_id"])
    core.changed(
        "implied_role.deleted",
        {"prior_role": req.path["prior_role_id"], "implied_role": req.path["implied_role_id"]},
    )
    return empty()


def _implied_by(s, prior_ids: list[str]) -> dict[str, list[m.Role]]:
    """prior role id -> the roles it directly implies."""
    out: dict[str, list[m.Role]] = {pid: [] for pid in prior_ids}
    q = (
        sa.select(m.ImpliedRole.prior_role_id, m.Role)
        .join(m.Role, m.Role.id == m.ImpliedRole.implied_role_id)
        .where(m.ImpliedRole.prior_role_id.in_(prior_ids))
        .order_by(m.Role.name)
    )
    for pid, role in s.execute(q):
        out[pid].append(role)
    return out


@api.route("/v3/roles/{prior_role_id}/implies", methods=["GET"])
def list_implied_roles(req: Req):
    authorize(req, "identity:list_implied_roles")
    with db.session() as s:
        prior = core.get_role(s, req.path["prior_role_id"])
        implies = _implied_by(s, [prior.id])[prior.id]
        return json_response(
            {
                "role_inference": {
                    "prior_role": views.role_ref(req, prior),
                    "implies": [views.role_ref(req, r) for r in implies],
                },
                "links": {"self": str(req.url)},
            }
        )


@api.route("/v3/role_inferences", methods=["GET"])
def list_role_inferences(req: Req):
    authorize(req, "identity:list_role_inference_rules")
    with db.session() as s:
        prior_ids = list(s.scalars(sa.select(m.ImpliedRole.prior_role_id).distinct()))
        priors = {r.id: r for r in s.scalars(sa.select(m.Role).where(m.Role.id.in_(prior_ids)))}
        implied = _implied_by(s, prior_ids)
        items = [
            {
                "prior_role": views.role_ref(req, priors[pid]),
                "implies": [views.role_ref(req, r) for r in implied[pid]],
            }
            for pid in sorted(priors, key=lambda i: priors[i].name)
        ]
        return json_response({"role_inferences": items, "links": {"self": str(req.url)}})


# -- grants ------------------------------------------------------------------------
#
# One set of handlers serves every combination of actor (users/groups), target
# (projects/domains/system) and inheritance; they are registered in a loop below.

_ACTORS = {"users": "User", "groups": "Group"}
_TARGETS = {"projects": "Project", "domains": "Domain"}


def _grant_target(
    s, actor: str, actor_id: str, target: str, target_id: str, role_id: str | None = None
) -> dict:
    """Look everything up (404 for unknown ids) and build the policy target."""
    t: dict = {}
    if target == "Project":
        p = core.get_project(s, target_id)
        t["project"] = {"id": p.id, "domain_id": p.domain_id}
        t["domain_id"] = p.domain_id
    elif target == "Domain":
        d = core.get_domain(s, target_id)
        t["domain"] = {"id": d.id}
        t["domain_id"] = d.id
    if actor == "User":
        u = core.get_user(s, actor_id)
        t["user"] = {"id": u.id, "domain_id": u.domain_id}
    else:
        g = core.get_group(s, actor_id)
        t["group"] = {"id": g.id, "domain_id": g.domain_id}
    if role_id is not None:
        r = core.get_role(s, role_id)
        t["role"] = {"id": r.id, "domain_id": None if r.domain_id == m.NULL_DOMAIN else r.domain_id}
    return t


def _authorize_grant(req: Req, rule: str, s, *args) -> None:
    """Policy on a grant; unknown ids are a 404 only for callers the rule could allow,
    so nobody else learns which users, projects or roles exist (as Keystone does)."""
    try:
        target = _grant_target(s, *args)
    except errors.NotFound:
        authorize(req, rule, {})
        raise
    authorize(req, rule, target)


def _revoke_tokens(
    s, actor: str, actor_id: str, target: str, target_id: str, inherited: bool
) -> None:
    """Record revocation events for the tokens a removed grant could have given."""
    if actor == "User":
        users = [actor_id]
    else:
        users = list(
            s.scalars(sa.select(m.Membership.user_id).where(m.Membership.group_id == actor_id))
        )
    for uid in users:
        if target == "Project" and not inherited:
            authn.revoke(s, user_id=uid, project_id=target_id)
        elif target == "Domain" and not inherited:
            authn.revoke(s, user_id=uid, domain_id=target_id)
        else:  # system, or inherited onto projects we would have to enumerate
            authn.revoke(s, user_id=uid)


def _register_grants(prefix: str, actor: str, target: str, inherited: bool) -> None:
    """Routes for one actor/target pair: ``prefix`` ends in ``/roles``."""
    system = target == "System"
    suffix = "/inherited_to_projects" if inherited else ""
    rules = (
        {
            "list": "identity:list_system_grants",
            "check": "identity:check_system_grant",
            "create": "identity:create_system_grant",
            "revoke": "identity:revoke_system_grant",
        }
        if system
        else {
            "list": "identity:list_grants",
            "check": "identity:check_grant",
            "create": "identity:create_grant",
            "revoke": "identity:revoke_grant",
        }
    )

    def ids(req: Req) -> tuple[str, str]:
        return req.path["actor_id"], (assignments.SYSTEM if system else req.path["target_id"])

    def payload(req: Req, actor_id: str, target_id: str) -> dict:
        return {
            "role": req.path.get("role_id"),
            actor.lower(): actor_id,
            target.lower(): target_id,
            "inherited_to_projects": inherited,
        }

    def list_grants(req: Req):
        actor_id, target_id = ids(req)
        with db.session() as s:
            _authorize_grant(req, rules["list"], s, actor, actor_id, target, target_id)
            roles = assignments.direct_roles(s, actor, actor_id, target, target_id, inherited)
            return collection(req, "roles", [views.role(req, r) for r in roles])

    def check_grant(req: Req):
        actor_id, target_id = ids(req)
        role_id = req.path["role_id"]
        with db.session() as s:
            _authorize_grant(req, rules["check"], s, actor, actor_id, target, target_id, role_id)
            key = (
                assignments.assignment_type(actor, target),
                actor_id,
                target_id,
                role_id,
                inherited,
            )
            if s.get(m.Assignment, key) is None:
                raise errors.NotFound(
                    f"Could not find role assignment with role: {role_id}, "
                    f"{actor.lower()}: {actor_id}, {target.lower()}: {target_id}."
                )
        return empty()

    def create_grant(req: Req):
        actor_id, target_id = ids(req)
        with db.transaction() as s:
            _authorize_grant(
                req, rules["create"], s, actor, actor_id, target, target_id, req.path["role_id"]
            )
            assignments.grant(s, actor, actor_id, target, target_id, req.path["role_id"], inherited)
        core.changed("role_assignment.created", payload(req, actor_id, target_id))
        return empty()

    def revoke_grant(req: Req):
        actor_id, target_id = ids(req)
        with db.transaction() as s:
            _authorize_grant(
                req, rules["revoke"], s, actor, actor_id, target, target_id, req.path["role_id"]
            )
            assignments.revoke(
                s, actor, actor_id, target, target_id, req.path["role_id"], inherited
            )
            _revoke_tokens(s, actor, actor_id, target, target_id, inherited)
        core.changed("role_assignment.deleted", payload(req, actor_id, target_id))
        return empty()

    # Distinct function names keep the request log and tracebacks readable.
    tag = f"{'inherited_' if inherited else ''}{actor.lower()}_{target.lower()}"
    for fn in (list_grants, check_grant, create_grant, revoke_grant):
        fn.__name__ = f"{fn.__name__}_{tag}"
    api.route(f"{prefix}{suffix}", methods=["GET"])(list_grants)
    api.route(f"{prefix}/{{role_id}}{suffix}", methods=["GET", "HEAD"])(check_grant)
    api.route(f"{prefix}/{{role_id}}{suffix}", methods=["PUT"])(create_grant)
    api.route(f"{prefix}/{{role_id}}{suffix}", methods=["DELETE"])(revoke_grant)


for _aseg, _actor in _ACTORS.items():
    for _tseg, _target in _TARGETS.items():
        _register_grants(
            f"/v3/{_tseg}/{{target_id}}/{_aseg}/{{actor_id}}/roles", _actor, _target, False
        )
        _register_grants(
            f"/v3/OS-INHERIT/{_tseg}/{{target_id}}/{_aseg}/{{actor_id}}/roles",
            _actor,
            _target,
            True,
        )
    _register_grants(f"/v3/system/{_aseg}/{{actor_id}}/roles", _actor, "System", False)


# -- role assignments ----------------------------------------------------------------


def _assignment_filters(req: Req) -> dict:
    """Query parameters -> assignments.list_role_assignments arguments (400 on
    combinations Keystone refuses)."""
    q = req.query
    user_id, group_id = q.get("user.id"), q.get("group.id")
    project_id, domain_id, system = (
        q.get("scope.project.id"),
        q.get("scope.domain.id"),
        q.get("scope.system"),
    )
    effective = bool(query_bool(req, "effective"))
    inherited = None
    if "scope.OS-INHERIT:inherited_to" in q:
        inherited = q["scope.OS-INHERIT:inherited_to"] == "projects"
    if project_id and domain_id:
        raise errors.BadRequest("Specify a domain or project, not both.")
    if system and (project_id or domain_id):
        raise errors.BadRequest("Specify system or a domain or project, not both.")
    if system is not None and system != "all":
        raise errors.BadRequest(f"Invalid input for field 'scope.system': {system!r} is not 'all'.")
    if user_id and group_id:
        raise errors.BadRequest("Specify a user or group, not both.")
    if effective and group_id:
        raise errors.BadRequest(
            "Combining effective and group filter will always result in an empty list."
        )
    if effective and inherited and domain_id:
        raise errors.BadRequest(
            "Combining effective, domain and inherited filters will always result in an empty list."
        )
    if query_bool(req, "include_subtree") and not project_id:
        raise errors.BadRequest(
            "scope.project.id must be specified if include_subtree is also specified."
        )
    return {
        "user_id": user_id,
        "group_id": group_id,
        "role_id": q.get("role.id"),
        "project_ids": [project_id] if project_id else None,
        "domain_id": domain_id,
        "system": bool(system),
        "inherited": inherited,
        "effective": effective,
    }


def _names(s, refs: list[assignments.AssignmentRef]) -> dict:
    """Rows by id for include_names (projects also hold the domains)."""

    def rows(model, ids):
        ids = {i for i in ids if i}
        return (
            {r.id: r for r in s.scalars(sa.select(model).where(model.id.in_(ids)))} if ids else {}
        )

    roles = rows(m.Role, (r.role_id for r in refs))
    users = rows(m.User, (r.user_id for r in refs))
    groups = rows(m.Group, (r.group_id for r in refs))
    projects = rows(m.Project, (r.target_id for r in refs if r.target != "System"))
    domain_ids = {x.domain_id for x in (*users.values(), *groups.values(), *projects.values())}
    domain_ids |= {r.domain_id for r in roles.values() if r.domain_id != m.NULL_DOMAIN}
    projects.update(rows(m.Project, domain_ids - projects.keys()))
    return {"roles": roles, "users": users, "groups": groups, "projects": projects}


@api.route("/v3/role_assignments", methods=["GET"])
def list_role_assignments(req: Req):
    filters = _assignment_filters(req)
    include_names = bool(query_bool(req, "include_names"))
    # A domain-scoped token sees the assignments within its domain only.
    scoped_domain = req.ctx.domain_id
    with db.session() as s:
        target: dict = {"domain_id": scoped_domain}
        if query_bool(req, "include_subtree"):
            p = core.get_project(s, filters["project_ids"][0])
            target = {
                "project": {"id": p.id, "domain_id": p.domain_id},
                "domain_id": scoped_domain or p.domain_id,
            }
            filters["project_ids"].extend(assignments.subtree_ids(s, p.id))
        authorize(req, "identity:list_role_assignments", target)
        refs = assignments.list_role_assignments(s, **filters)
        if scoped_domain:
            project_domains = dict(
                s.execute(
                    sa.select(m.Project.id, m.Project.domain_id).where(
                        m.Project.id.in_({r.target_id for r in refs if r.target == "Project"})
                    )
                ).all()
            )
            refs = [
                r
                for r in refs
                if (r.target == "Domain" and r.target_id == scoped_domain)
                or (r.target == "Project" and project_domains.get(r.target_id) == scoped_domain)
            ]
        names = _names(s, refs) if include_names else None
        return collection(
            req, "role_assignments", [views.role_assignment(req, r, names) for r in refs]
        )
