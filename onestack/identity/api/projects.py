"""/v3/domains and /v3/projects (with tags)."""

from __future__ import annotations

import sqlalchemy as sa

from onestack.common import db, errors
from onestack.common.http import Req, empty, json_response
from onestack.identity import assignments, core, resources
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


def _check_body(obj: dict) -> None:
    check_bool(obj, "enabled")
    check_bool(obj, "is_domain")
    check_str(obj, "description")
    check_str(obj, "domain_id", max_length=64)
    check_str(obj, "parent_id", max_length=64)
    if "name" in obj:
        core.check_name(obj["name"], "project")


def _project_target(p: m.Project) -> dict:
    return {"project": {"id": p.id, "domain_id": p.domain_id}, "domain_id": p.domain_id}


# -- domains ---------------------------------------------------------------------


@api.route("/v3/domains", methods=["GET"])
def list_domains(req: Req):
    authorize(req, "identity:list_domains")
    q = sa.select(m.Project).where(m.Project.is_domain.is_(True)).order_by(m.Project.name)
    if "name" in req.query:
        q = q.where(m.Project.name == req.query["name"])
    enabled = query_bool(req, "enabled")
    if enabled is not None:
        q = q.where(m.Project.enabled.is_(enabled))
    with db.session() as s:
        rows, truncated = limit_list(list(s.scalars(q)))
        tags = resources.tags_of(s, [d.id for d in rows])
        return collection(req, "domains", [views.domain(req, d, tags[d.id]) for d in rows], truncated)


@api.route("/v3/domains", methods=["POST"])
def create_domain(req: Req):
    obj = body_object(req, "domain")
    authorize(req, "identity:create_domain")
    _check_body(obj)
    with db.transaction() as s:
        d = resources.create_project(s, obj, is_domain=True)
        s.flush()
        out = views.domain(req, d, resources.tags_of(s, [d.id])[d.id])
    core.changed("domain.created", {"resource_info": d.id})
    return json_response({"domain": out}, 201)


@api.route("/v3/domains/{domain_id}", methods=["GET"])
def get_domain(req: Req):
    with db.session() as s:
        d = core.get_domain(s, req.path["domain_id"])
        authorize(req, "identity:get_domain", {"domain": {"id": d.id}})
        return json_response({"domain": views.domain(req, d, resources.tags_of(s, [d.id])[d.id])})


@api.route("/v3/domains/{domain_id}", methods=["PATCH"])
def update_domain(req: Req):
    obj = body_object(req, "domain")
    authorize(req, "identity:update_domain")
    _check_body(obj)
    with db.transaction() as s:
        d = core.get_domain(s, req.path["domain_id"])
        resources.update_project(s, d, obj)
        s.flush()
        out = views.domain(req, d, resources.tags_of(s, [d.id])[d.id])
    core.changed("domain.updated", {"resource_info": d.id})
    return json_response({"domain": out})


@api.route("/v3/domains/{domain_id}", methods=["DELETE"])
def delete_domain(req: Req):
    authorize(req, "identity:delete_domain")
    with db.transaction() as s:
        d = core.get_domain(s, req.path["domain_id"])
        resources.delete_project(s, d)
    core.changed("domain.deleted", {"resource_info": req.path["domain_id"]})
    return empty()


# -- projects --------------------------------------------------------------------


def _tag_filter(q, req: Req):
    """tags / tags-any / not-tags / not-tags-any filters (comma-separated)."""
    def has(tag):
        return sa.exists().where(m.ProjectTag.project_id == m.Project.id, m.ProjectTag.name == tag)

    for param, combine, negate in (
        ("tags", sa.and_, False), ("tags-any", sa.or_, False),
        ("not-tags", sa.and_, True), ("not-tags-any", sa.or_, True),
    ):
        raw = req.query.get(param)
        if raw:
            cond = combine(*[has(t) for t in raw.split(",")])
            q = q.where(sa.not_(cond) if negate else cond)
    return q


@api.route("/v3/projects", methods=["GET"])
def list_projects(req: Req):
    # A domain-scoped token lists its own domain, as in Keystone.
    domain_id = req.query.get("domain_id") or req.ctx.domain_id
    authorize(req, "identity:list_projects", {"domain_id": domain_id})
    if req.ctx.domain_id and domain_id != req.ctx.domain_id:
        return collection(req, "projects", [])
    is_domain = query_bool(req, "is_domain")
    q = sa.select(m.Project).where(m.Project.is_domain.is_(bool(is_domain))).order_by(m.Project.name)
    if domain_id:
        q = q.where(m.Project.domain_id == domain_id)
    if "name" in req.query:
        q = q.where(m.Project.name == req.query["name"])
    if "parent_id" in req.query:
        q = q.where(m.Project.parent_id == req.query["parent_id"])
    enabled = query_bool(req, "enabled")
    if enabled is not None:
        q = q.where(m.Project.enabled.is_(enabled))
    q = _tag_filter(q, req)
    with db.session() as s:
        rows, truncated = limit_list(list(s.scalars(q)))
        tags = resources.tags_of(s, [p.id for p in rows])
        return collection(req, "projects", [views.project(req, p, tags[p.id]) for p in rows], truncated)


@api.route("/v3/projects", methods=["POST"])
def create_project(req: Req):
    obj = body_object(req, "project")
    _check_body(obj)
    authorize(req, "identity:create_project", {"project": {"domain_id": obj.get("domain_id")}})
    with db.transaction() as s:
        p = resources.create_project(s, obj)
        s.flush()
        out = views.project(req, p, resources.tags_of(s, [p.id])[p.id])
    core.changed("project.created", {"resource_info": p.id})
    return json_response({"project": out}, 201)


@api.route("/v3/projects/{project_id}", methods=["GET"])
def get_project(req: Req):
    with db.session() as s:
        p = core.get_project(s, req.path["project_id"])
        authorize(req, "identity:get_project", _project_target(p))
        out = views.project(req, p, resources.tags_of(s, [p.id])[p.id])
        out.update(_hierarchy(req, s, p))
        return json_response({"project": out})


def _hierarchy(req: Req, s, p: m.Project) -> dict:
    """The parents_as_* / subtree_as_* views of GET /projects/{id}: lists of
    projects, or nested {id: {id: None}} maps as Keystone writes them."""
    out: dict = {}
    if query_bool(req, "parents_as_list") or query_bool(req, "parents_as_ids"):
        parents = assignments.ancestors(s, p)  # nearest first
        if query_bool(req, "parents_as_list"):
            out["parents"] = [{"project": views.project(req, x)} for x in parents]
        else:
            nested = None
            for x in reversed(parents):
                nested = {x.id: nested}
            out["parents"] = nested
    if query_bool(req, "subtree_as_list") or query_bool(req, "subtree_as_ids"):
        below = [s.get(m.Project, i) for i in assignments.subtree_ids(s, p.id)]
        if query_bool(req, "subtree_as_list"):
            out["subtree"] = [{"project": views.project(req, x)} for x in below]
        else:
            kids: dict[str, list[str]] = {}
            for x in below:
                kids.setdefault(x.parent_id, []).append(x.id)

            def tree(pid: str):
                return {k: tree(k) for k in kids[pid]} if pid in kids else None

            out["subtree"] = tree(p.id)
    return out


@api.route("/v3/projects/{project_id}", methods=["PATCH"])
def update_project(req: Req):
    obj = body_object(req, "project")
    _check_body(obj)
    with db.transaction() as s:
        p = core.get_project(s, req.path["project_id"])
        authorize(req, "identity:update_project", _project_target(p))
        resources.update_project(s, p, obj)
        s.flush()
        out = views.project(req, p, resources.tags_of(s, [p.id])[p.id])
    core.changed("project.updated", {"resource_info": p.id})
    return json_response({"project": out})


@api.route("/v3/projects/{project_id}", methods=["DELETE"])
def delete_project(req: Req):
    with db.transaction() as s:
        p = core.get_project(s, req.path["project_id"])
        authorize(req, "identity:delete_project", _project_target(p))
        resources.delete_project(s, p)
    core.changed("project.deleted", {"resource_info": req.path["project_id"]})
    return empty()


# -- project tags ----------------------------------------------------------------


@api.route("/v3/projects/{project_id}/tags", methods=["GET"])
def list_tags(req: Req):
    with db.session() as s:
        p = core.get_project(s, req.path["project_id"])
        authorize(req, "identity:list_project_tags", _project_target(p))
        return json_response({"tags": resources.tags_of(s, [p.id])[p.id]})


@api.route("/v3/projects/{project_id}/tags", methods=["PUT"])
def replace_tags(req: Req):
    body = req.json()
    if not isinstance(body, dict) or "tags" not in body:
        raise errors.BadRequest("Invalid input for field 'tags': 'tags' is a required property.")
    with db.transaction() as s:
        p = core.get_project(s, req.path["project_id"])
        authorize(req, "identity:update_project_tags", _project_target(p))
        tags = resources.set_tags(s, p, body["tags"])
    core.changed("project.updated", {"resource_info": p.id})
    return json_response({"tags": tags})


@api.route("/v3/projects/{project_id}/tags", methods=["DELETE"])
def delete_tags(req: Req):
    with db.transaction() as s:
        p = core.get_project(s, req.path["project_id"])
        authorize(req, "identity:delete_project_tags", _project_target(p))
        resources.set_tags(s, p, [])
    core.changed("project.updated", {"resource_info": p.id})
    return empty()


@api.route("/v3/projects/{project_id}/tags/{tag}", methods=["GET"])
def check_tag(req: Req):
    with db.session() as s:
        p = core.get_project(s, req.path["project_id"])
        authorize(req, "identity:get_project_tag", _project_target(p))
        if req.path["tag"] not in resources.tags_of(s, [p.id])[p.id]:
            raise errors.NotFound(f"Tag {req.path['tag']} not found on project {p.id}.")
    return empty(204)


@api.route("/v3/projects/{project_id}/tags/{tag}", methods=["PUT"])
def add_tag(req: Req):
    with db.transaction() as s:
        p = core.get_project(s, req.path["project_id"])
        authorize(req, "identity:create_project_tag", _project_target(p))
        resources.add_tag(s, p, req.path["tag"])
    core.changed("project.updated", {"resource_info": p.id})
    return empty(201, {"Location": str(req.url)})


@api.route("/v3/projects/{project_id}/tags/{tag}", methods=["DELETE"])
def delete_tag(req: Req):
    with db.transaction() as s:
        p = core.get_project(s, req.path["project_id"])
        authorize(req, "identity:delete_project_tag", _project_target(p))
        row = s.get(m.ProjectTag, (p.id, req.path["tag"]))
        if row is None:
            raise errors.NotFound(f"Tag {req.path['tag']} not found on project {p.id}.")
        s.delete(row)
    core.changed("project.updated", {"resource_info": p.id})
    return empty()
