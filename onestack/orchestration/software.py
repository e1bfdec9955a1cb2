"""Software configs and deployments (the domain of ``/software_configs`` and
``/software_deployments``): what a server's agent reads as its metadata."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from onestack.common import db, errors
from onestack.common.timeutils import utcnow
from onestack.orchestration import models as m
from onestack.orchestration import policies


def _owned(ctx, row, kind: str, ident: str):
    if row is None or (row.project_id != ctx.project_id and not ctx.is_admin):
        raise errors.NotFound(f"The {kind} ({ident}) could not be found.")
    return row


def create_config(ctx, body: Any) -> m.SoftwareConfig:
    policies.authorize("software_configs:create", ctx)
    if not isinstance(body, dict):
        raise errors.BadRequest("The request body must be a JSON object.")
    for key, kind in (("inputs", list), ("outputs", list), ("options", dict)):
        if body.get(key) is not None and not isinstance(body[key], kind):
            raise errors.BadRequest(f"{key} must be a {kind.__name__}.")
    for key in ("name", "group"):  # the columns hold 255 characters of text
        if body.get(key) is not None and not (isinstance(body[key], str) and len(body[key]) <= 255):
            raise errors.BadRequest(f"{key} must be a string of at most 255 characters.")
    row = m.SoftwareConfig(id=str(uuid.uuid4()), project_id=ctx.project_id, name=body.get("name"),
                           group=body.get("group") or "Heat::Ungrouped",
                           config={"config": body.get("config") or "", "inputs": body.get("inputs") or [],
                                   "outputs": body.get("outputs") or [], "options": body.get("options") or {}},
                           created_at=utcnow())
    with db.transaction() as s:
        s.add(row)
    return row


def get_config(ctx, config_id: str) -> m.SoftwareConfig:
    policies.authorize("software_configs:show", ctx)
    with db.session() as s:
        return _owned(ctx, s.get(m.SoftwareConfig, config_id), "Software Config", config_id)


def list_configs(ctx, query) -> list[m.SoftwareConfig]:
    policies.authorize("software_configs:index", ctx)
    q = sa.select(m.SoftwareConfig).order_by(m.SoftwareConfig.created_at)
    if query.get("tenant_safe", "true").lower() != "false" or not ctx.is_admin:
        q = q.where(m.SoftwareConfig.project_id == ctx.project_id)
    with db.session() as s:
        rows = list(s.scalars(q))
    marker, limit = query.get("marker"), query.get("limit")
    if marker:
        ids = [r.id for r in rows]
        rows = rows[ids.index(marker) + 1:] if marker in ids else []
    if limit and limit.isdigit():
        rows = rows[:int(limit)]
    return rows


def delete_config(ctx, config_id: str) -> None:
    policies.authorize("software_configs:delete", ctx)
    with db.transaction() as s:
        s.delete(_owned(ctx, s.get(m.SoftwareConfig, config_id), "Software Config", config_id))


def create_deployment(ctx, body: Any) -> m.SoftwareDeployment:
    policies.authorize("software_deployments:create", ctx)
    if not isinstance(body, dict):
        raise errors.BadRequest("The request body must be a JSON object.")
    for key in ("config_id", "server_id"):
        if not isinstance(body.get(key), str) or not body[key]:
            raise errors.BadRequest(f"{key} is required.")
    get_config(ctx, body["config_id"])
    row = m.SoftwareDeployment(id=str(uuid.uuid4()), project_id=ctx.project_id, config_id=body["config_id"],
                               server_id=body["server_id"], action=body.get("action") or "INIT",
                               status=body.get("status") or "COMPLETE",
                               status_reason=body.get("status_reason") or "",
                               input_values=body.get("input_values") or {}, output_values={},
                               created_at=utcnow())
    with db.transaction() as s:
        s.add(row)
    push_metadata(row.server_id, row.project_id)
    return row


def get_deployment(ctx, deployment_id: str) -> m.SoftwareDeployment:
    policies.authorize("software_deployments:show", ctx)
    with db.session() as s:
        return _owned(ctx, s.get(m.SoftwareDeployment, deployment_id), "Software Deployment", deployment_id)


def list_deployments(ctx, query) -> list[m.SoftwareDeployment]:
    policies.authorize("software_deployments:index", ctx)
    q = sa.select(m.SoftwareDeployment).where(m.SoftwareDeployment.project_id == ctx.project_id)
    if query.get("server_id"):
        q = q.where(m.SoftwareDeployment.server_id == query["server_id"])
    with db.session() as s:
        return list(s.scalars(q.order_by(m.SoftwareDeployment.created_at)))


def update_deployment(ctx, deployment_id: str, body: Any) -> m.SoftwareDeployment:
    policies.authorize("software_deployments:update", ctx)
    if not isinstance(body, dict):
        raise errors.BadRequest("The request body must be a JSON object.")
    with db.transaction() as s:
        row = _owned(ctx, s.get(m.SoftwareDeployment, deployment_id), "Software Deployment", deployment_id)
        new_config = bool(body.get("config_id")) and body["config_id"] != row.config_id
        if body.get("config_id"):
            if s.get(m.SoftwareConfig, body["config_id"]) is None:
                raise errors.NotFound(f"The Software Config ({body['config_id']}) could not be found.")
            row.config_id = body["config_id"]
        for key in ("action", "status", "status_reason"):
            if body.get(key) is not None:
                setattr(row, key, str(body[key]))
        for key in ("input_values", "output_values"):
            if body.get(key) is not None:
                if not isinstance(body[key], dict):
                    raise errors.BadRequest(f"{key} must be a map.")
                setattr(row, key, body[key])
        row.updated_at = utcnow()
    if new_config:  # the server's metadata lists configs: only a new config changes it
        push_metadata(row.server_id, row.project_id)
    return row


def delete_deployment(ctx, deployment_id: str) -> None:
    policies.authorize("software_deployments:delete", ctx)
    with db.transaction() as s:
        row = _owned(ctx, s.get(m.SoftwareDeployment, deployment_id), "Software Deployment", deployment_id)
        server_id, project_id = row.server_id, row.project_id
        s.delete(row)
    push_metadata(server_id, project_id)


def _metadata(s, server_id: str, project_id: str) -> list[dict]:
    deps = list(s.scalars(sa.select(m.SoftwareDeployment).where(
        m.SoftwareDeployment.server_id == server_id, m.SoftwareDeployment.project_id == project_id)
        .order_by(m.SoftwareDeployment.created_at)))
    out = []
    for d in deps:
        c = s.get(m.SoftwareConfig, d.config_id)
        if c is None:
            continue
        cfg = c.config or {}
        # a deployment resource's derived config carries each input's value already
        inputs = [{**i, "value": i["value"] if "value" in i else
                   (d.input_values or {}).get(i.get("name"), i.get("default"))}
                  for i in cfg.get("inputs", [])]
        out.append({"id": c.id, "name": c.name, "group": c.group, "config": cfg.get("config", ""),
                    "inputs": inputs, "outputs": cfg.get("outputs", []), "options": cfg.get("options", {}),
                    "creation_time": c.created_at.isoformat(), "updated_time": None})
    # by config name: a deterministic order the template controls (Heat's)
    return sorted(out, key=lambda x: (x["name"] or "", x["creation_time"]))


def server_metadata(ctx, server_id: str) -> list[dict]:
    """The configs deployed to a server, as its agent reads them (``deployments`` metadata)."""
    policies.authorize("software_deployments:metadata", ctx)
    with db.session() as s:
        return _metadata(s, server_id, ctx.project_id)


def push_metadata(server_id: str, project_id: str) -> None:
    """Put a server's deployments into the metadata of the stack resource that is that
    server (``GET .../resources/{server}/metadata``, what its agent polls)."""
    with db.transaction() as s:
        rows = list(s.scalars(sa.select(m.Resource).join(m.Stack, m.Stack.id == m.Resource.stack_id).where(
            m.Resource.physical_id == server_id, m.Resource.current.is_(True), m.Resource.action != "DELETE",
            m.Stack.project_id == project_id, m.Stack.deleted_at.is_(None))))
        if not rows:
            return
        deployments = _metadata(s, server_id, project_id)
        for r in rows:
            r.metadata_ = {**(r.metadata_ or {}), "deployments": deployments}
