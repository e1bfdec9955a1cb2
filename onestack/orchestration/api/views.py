"""Heat's wire format for stacks, resources, events, outputs and software configs."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from onestack.common.timeutils import iso
from onestack.orchestration import models as m


def _t(dt) -> str | None:
    return iso(dt)


def stack_url(base: str, row: m.Stack) -> str:
    return f"{base}/stacks/{quote(row.name, safe='')}/{row.id}"


def stack_links(base: str, row: m.Stack) -> list[dict]:
    return [{"href": stack_url(base, row), "rel": "self"}]


def _description(row: m.Stack) -> str:
    t = row.template or {}
    return t.get("description") or t.get("Description") or "No description"


def stack_summary(base: str, row: m.Stack, include_project: bool = False) -> dict[str, Any]:
    out = {"id": row.id, "links": stack_links(base, row), "stack_name": row.name,
           "description": _description(row), "stack_status": f"{row.action}_{row.status}",
           "stack_status_reason": row.status_reason, "creation_time": _t(row.created_at),
           "deletion_time": _t(row.deleted_at), "updated_time": _t(row.updated_at),
           "stack_owner": row.username, "parent": row.parent_id, "stack_user_project_id": row.project_id,
           "tags": row.tags}
    if include_project:
        out["project"] = row.project_id
    return out


def stack_detail(base: str, row: m.Stack, parameters: dict, outputs: list[dict] | None) -> dict[str, Any]:
    out = stack_summary(base, row, include_project=True)
    out.update(capabilities=[], notification_topics=[], timeout_mins=row.timeout_mins,
               disable_rollback=row.disable_rollback, parameters=parameters,
               template_description=_description(row))
    if outputs is not None:
        out["outputs"] = outputs
    return out


def resource(base: str, stack: m.Stack, r: m.Resource, required_by: list[str], *,
             nested: tuple[str, str] | None = None, attributes: dict | None = None,
             with_detail: bool = False, parent_name: str | None = None) -> dict[str, Any]:
    surl = stack_url(base, stack)
    out = {"resource_name": r.name, "logical_resource_id": r.name, "physical_resource_id": r.physical_id or "",
           "resource_type": r.type, "resource_status": f"{r.action}_{r.status}",
           "resource_status_reason": r.status_reason, "creation_time": _t(r.created_at),
           "updated_time": _t(r.updated_at or r.created_at), "required_by": required_by,
           "links": [{"href": f"{surl}/resources/{quote(r.name, safe='')}", "rel": "self"},
                     {"href": surl, "rel": "stack"}]}
    if nested:  # the child stack's own name and id
        out["links"].append({"href": f"{base}/stacks/{quote(nested[0], safe='')}/{nested[1]}", "rel": "nested"})
    if stack.parent_id:
        out["parent_resource"] = stack.parent_resource
    if attributes is not None:
        out["attributes"] = attributes
        out["description"] = ""
        out["metadata"] = r.metadata_ or {}
    if with_detail:
        out["stack_name"] = stack.name
        out["attributes"] = attributes or {}
    return out


def event(base: str, stack: m.Stack, e: m.Event, detail: bool = False) -> dict[str, Any]:
    surl = stack_url(base, stack)
    out = {"id": e.id, "event_time": _t(e.created_at), "resource_name": e.resource_name,
           "logical_resource_id": e.resource_name, "physical_resource_id": e.physical_id or "",
           "resource_status": f"{e.action}_{e.status}", "resource_status_reason": e.status_reason,
           "links": [{"href": f"{surl}/resources/{quote(e.resource_name, safe='')}/events/{e.id}", "rel": "self"},
                     {"href": f"{surl}/resources/{quote(e.resource_name, safe='')}", "rel": "resource"},
                     {"href": surl, "rel": "stack"}]}
    if detail:
        out["resource_type"] = e.resource_type
        out["resource_properties"] = e.properties or {}
    return out


def software_config(c: m.SoftwareConfig) -> dict[str, Any]:
    cfg = c.config or {}
    return {"id": c.id, "name": c.name, "group": c.group, "config": cfg.get("config", ""),
            "inputs": cfg.get("inputs", []), "outputs": cfg.get("outputs", []),
            "options": cfg.get("options", {}), "creation_time": _t(c.created_at), "project": c.project_id}


def software_deployment(d: m.SoftwareDeployment) -> dict[str, Any]:
    return {"id": d.id, "config_id": d.config_id, "server_id": d.server_id, "action": d.action,
            "status": d.status, "status_reason": d.status_reason, "input_values": d.input_values or {},
            "output_values": d.output_values or {}, "creation_time": _t(d.created_at),
            "updated_time": _t(d.updated_at)}
