"""Quotas and limits: ``os-quota-sets``, ``os-quota-class-sets`` and ``/limits``.

The resources shown depend on the microversion: the nova-network ones
(``fixed_ips``, ``floating_ips``, ``security_groups``, ``security_group_rules``)
until 2.35, the personality ones (``injected_file*``) until 2.56; quota class
sets show server groups from 2.50.
"""

from __future__ import annotations

from onestack.common import booleans, db, errors, validation
from onestack.common.http import Req, empty, json_response
from onestack.common.microversion import Version
from onestack.compute import quotas
from onestack.compute.api import api, body_of, mv
from onestack.compute.api import helpers as h

V_NO_NETWORK = Version(2, 36)
V_NO_IMAGE_META = Version(2, 39)
V_CLASS_GROUPS = Version(2, 50)
V_NO_PERSONALITY = Version(2, 57)

_INJECTED = ("injected_files", "injected_file_content_bytes", "injected_file_path_bytes")
_GROUPS = ("server_groups", "server_group_members")


def quota_resources(v: Version) -> list[str]:
    """The resources of ``os-quota-sets`` at version ``v``."""
    out = list(quotas.RESOURCES)
    if v < V_NO_NETWORK:
        out += list(quotas.NETWORK_RESOURCES)
    if v >= V_NO_PERSONALITY:
        out = [r for r in out if r not in _INJECTED]
    return out


def class_resources(v: Version) -> list[str]:
    """The resources of ``os-quota-class-sets`` at version ``v``."""
    out = list(quotas.RESOURCES)
    if v < V_CLASS_GROUPS:
        out = [r for r in out if r not in _GROUPS] + list(quotas.NETWORK_RESOURCES)
    if v >= V_NO_PERSONALITY:
        out = [r for r in out if r not in _INJECTED]
    return out


# ---------------------------------------------------------------- views


def _set_view(values: dict, resources: list[str], ident: str | None = None) -> dict:
    out = {r: values.get(r, -1) for r in resources}
    if ident is not None:
        out["id"] = ident
    return out


def _detail_view(lim: dict, used: dict, resources: list[str], ident: str) -> dict:
    out: dict = {r: {"in_use": used.get(r, 0), "limit": lim.get(r, -1), "reserved": 0} for r in resources}
    out["id"] = ident
    return out


def _limits_view(lim: dict, used: dict, v: Version) -> dict:
    absolute = {
        "maxServerMeta": lim["metadata_items"], "maxTotalCores": lim["cores"],
        "maxTotalInstances": lim["instances"], "maxTotalKeypairs": lim["key_pairs"],
        "maxTotalRAMSize": lim["ram"], "maxServerGroups": lim["server_groups"],
        "maxServerGroupMembers": lim["server_group_members"],
        "totalCoresUsed": used["cores"], "totalInstancesUsed": used["instances"], "totalRAMUsed": used["ram"],
        "totalServerGroupsUsed": used["server_groups"],
    }
    if v < V_NO_PERSONALITY:
        absolute["maxPersonality"] = lim["injected_files"]
        absolute["maxPersonalitySize"] = lim["injected_file_content_bytes"]
    if v < V_NO_IMAGE_META:
        absolute["maxImageMeta"] = lim["metadata_items"]
    if v < V_NO_NETWORK:
        absolute.update(maxSecurityGroups=lim["security_groups"], maxSecurityGroupRules=lim["security_group_rules"],
                        maxTotalFloatingIps=lim["floating_ips"], totalSecurityGroupsUsed=0, totalFloatingIpsUsed=0)
    return {"limits": {"absolute": absolute, "rate": []}}


# ---------------------------------------------------------------- request bodies

_LIMIT = {"type": ["integer", "string"], "pattern": "^-?[0-9]+$", "minimum": -1, "maximum": quotas.MAX}
_FORCE = validation.BOOLEAN_LIKE


def _update_schema(resources: list[str], force: bool) -> dict:
    props = {r: _LIMIT for r in resources}
    if force:
        props["force"] = _FORCE
    return {"type": "object", "properties": props, "additionalProperties": False}


def _limits_of(body: dict) -> dict[str, int]:
    out = {}
    for k, val in body.items():
        if k == "force":
            continue
        n = int(val)
        if n < -1 or n > quotas.MAX:
            raise errors.BadRequest(f"Invalid input for field/attribute {k}. Value: {val}. "
                                    f"{n} is not in the range -1..{quotas.MAX}")
        out[k] = n
    return out


# ---------------------------------------------------------------- os-quota-sets


def _target(req: Req) -> tuple[str, str | None]:
    return req.path["tenant_id"], req.query.get("user_id") or None


def _check_other(req: Req, project_id: str) -> None:
    if project_id != req.ctx.project_id:
        h.verify_project(req.ctx, project_id)


@api.route("/v2.1/os-quota-sets/{tenant_id}", ["GET"])
def show_quota(req: Req):
    project_id, user_id = _target(req)
    h.strict_query(req, {"user_id"})
    h.authorize("os-quota-sets:show", req.ctx, {"project_id": project_id})
    _check_other(req, project_id)
    with db.session() as s:
        lim = quotas.limits(s, project_id, user_id)
    return json_response({"quota_set": _set_view(lim, quota_resources(mv(req)), project_id)})


@api.route("/v2.1/os-quota-sets/{tenant_id}/detail", ["GET"])
def show_quota_detail(req: Req):
    project_id, user_id = _target(req)
    h.strict_query(req, {"user_id"})
    h.authorize("os-quota-sets:detail", req.ctx, {"project_id": project_id},
                fallback="os_compute_api:os-quota-sets:show")
    _check_other(req, project_id)
    with db.session() as s:
        lim = quotas.limits(s, project_id, user_id)
        used = quotas.usage(s, project_id, user_id or req.ctx.user_id)
    return json_response({"quota_set": _detail_view(lim, used, quota_resources(mv(req)), project_id)})


@api.route("/v2.1/os-quota-sets/{tenant_id}/defaults", ["GET"])
def show_quota_defaults(req: Req):
    project_id = req.path["tenant_id"]
    h.strict_query(req, set())
    with db.session() as s:
        lim = quotas.defaults(s)
    return json_response({"quota_set": _set_view(lim, quota_resources(mv(req)), project_id)})


@api.route("/v2.1/os-quota-sets/{tenant_id}", ["PUT"])
def update_quota(req: Req):
    project_id, user_id = _target(req)
    h.strict_query(req, {"user_id"})
    h.authorize("os-quota-sets:update", req.ctx, {"project_id": project_id})
    v = mv(req)
    body = body_of(req, "quota_set")
    resources = quota_resources(v)
    validation.validate(_update_schema(resources, force=True), body, style=validation.NOVA)
    force = booleans.to_bool(body.get("force", False))
    values = _limits_of(body)
    h.verify_project(req.ctx, project_id)
    with db.session() as s:
        if not force:
            used = quotas.usage(s, project_id, user_id)
            for r, limit in values.items():
                if limit != -1 and limit < used.get(r, 0):
                    raise errors.BadRequest(
                        f"Quota limit {limit} for {r} must be greater than or equal to already used and "
                        f"reserved {used.get(r, 0)}.")
        if user_id:
            plim = quotas.limits(s, project_id)
            for r, limit in values.items():
                if r in plim and plim[r] != -1 and (limit == -1 or limit > plim[r]):
                    raise errors.BadRequest(
                        f"Quota limit {limit} for {r} must be less than or equal to {plim[r]}.")
    if user_id:  # a user's limits within the project are this service's own
        with db.transaction() as s:
            quotas.set_limits(s, quotas.owner(project_id, user_id), values)
    else:
        quotas.set_project_limits(project_id, values)
    with db.session() as s:
        lim = quotas.limits(s, project_id, user_id)
    return json_response({"quota_set": _set_view(lim, resources)})


@api.route("/v2.1/os-quota-sets/{tenant_id}", ["DELETE"])
def delete_quota(req: Req):
    project_id, user_id = _target(req)
    h.strict_query(req, {"user_id"})
    h.authorize("os-quota-sets:delete", req.ctx, {"project_id": project_id},
                fallback="os_compute_api:os-quota-sets:update")
    quotas.reset(project_id, user_id)
    return empty(202)


# ---------------------------------------------------------------- os-quota-class-sets


@api.route("/v2.1/os-quota-class-sets/{id}", ["GET"])
def show_quota_class(req: Req):
    h.authorize("os-quota-class-sets:show", req.ctx, {}, fallback="admin_api")
    name = req.path["id"]
    with db.session() as s:
        lim = quotas.class_limits(s, name)
    return json_response({"quota_class_set": _set_view(lim, class_resources(mv(req)), name)})


@api.route("/v2.1/os-quota-class-sets/{id}", ["PUT"])
def update_quota_class(req: Req):
    h.authorize("os-quota-class-sets:update", req.ctx, {}, fallback="admin_api")
    name = req.path["id"]
    if len(name) > 255:
        raise errors.BadRequest("The quota class name is longer than 255 characters.")
    v = mv(req)
    body = body_of(req, "quota_class_set")
    resources = class_resources(v)
    validation.validate(_update_schema(resources, force=False), body, style=validation.NOVA)
    values = _limits_of(body)
    quotas.set_class_limits(name, values)
    with db.session() as s:
        lim = quotas.class_limits(s, name)
    return json_response({"quota_class_set": _set_view(lim, resources)})


# ---------------------------------------------------------------- limits


@api.route("/v2.1/limits", ["GET"])
def show_limits(req: Req):
    h.strict_query(req, {"tenant_id", "reserved"})
    ctx = req.ctx
    project_id = req.query.get("tenant_id") or ctx.project_id
    if project_id != ctx.project_id:
        h.authorize("limits:other_project", ctx, {"project_id": project_id},
                    fallback="os_compute_api:os-quota-sets:other_project")
    with db.session() as s:
        lim = quotas.limits(s, project_id)
        used = quotas.usage(s, project_id)
    return json_response(_limits_view(lim, used, mv(req)))
