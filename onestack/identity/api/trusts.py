"""OS-TRUST: /v3/OS-TRUST/trusts (create, list, show, delete) and the roles a trust
delegates. Trust-scoped tokens themselves are issued by /v3/auth/tokens (authn)."""

from __future__ import annotations

from onestack.common import db, errors, validation
from onestack.common.http import Req, empty, json_response
from onestack.identity import core, trusts
from onestack.identity.api import api, views
from onestack.identity.api.common import allowed, authorize, body_object, collection, limit_list

_ID = {"type": "string", "minLength": 1, "maxLength": 64}
_ROLE_REF = {
    "type": "object",
    "properties": {"id": _ID, "name": {"type": "string", "minLength": 1, "maxLength": 255}},
    "minProperties": 1,
    "maxProperties": 1,
    "additionalProperties": False,
}
TRUST_CREATE = {
    "type": "object",
    "properties": {
        "trustor_user_id": _ID,
        "trustee_user_id": _ID,
        "impersonation": {"type": "boolean"},
        "project_id": {"type": ["string", "null"], "maxLength": 64},
        "roles": {"type": "array", "items": _ROLE_REF, "maxItems": 100},
        "expires_at": {"type": ["string", "null"], "maxLength": 64},
        "remaining_uses": {"type": ["integer", "null"], "minimum": 1},
        "allow_redelegation": {"type": ["boolean", "null"]},
        "redelegation_count": {"type": ["integer", "null"], "minimum": 0},
    },
    "required": ["trustor_user_id", "trustee_user_id", "impersonation"],
}


def _refuse_app_cred(req: Req) -> None:
    # An application credential is a single-project delegation: it may not read or
    # extend the trust chain (Keystone refuses it whether restricted or not).
    if req.ctx.app_cred_id:
        raise errors.Forbidden("Using method 'application_credential' is not allowed for managing trusts.")


def _target(t) -> dict:
    return {"trust": {"id": t.id, "trustor_user_id": t.trustor_user_id,
                      "trustee_user_id": t.trustee_user_id, "project_id": t.project_id}}


@api.route("/v3/OS-TRUST/trusts", methods=["POST"])
def create_trust(req: Req):
    obj = body_object(req, "trust")
    validation.validate(TRUST_CREATE, obj)
    if req.ctx.user_id != obj["trustor_user_id"]:
        raise errors.Forbidden("The authenticated user should match the trustor.")
    authorize(req, "identity:create_trust", {"trust": obj})
    _refuse_app_cred(req)
    with db.transaction() as s:
        t, roles = trusts.create(s, req.ctx, obj)
        out = views.trust(req, t, roles)
    core.changed("OS-TRUST:trust.created", {"resource_info": out["id"]})
    return json_response({"trust": out}, 201)


@api.route("/v3/OS-TRUST/trusts", methods=["GET"])
def list_trusts(req: Req):
    trustor = req.query.get("trustor_user_id")
    trustee = req.query.get("trustee_user_id")
    if trustor is not None:
        authorize(req, "identity:list_trusts_for_trustor", {"trust": {"trustor_user_id": trustor}})
    if trustee is not None:
        authorize(req, "identity:list_trusts_for_trustee", {"trust": {"trustee_user_id": trustee}})
    _refuse_app_cred(req)
    # Unfiltered, administrators see every trust and everyone else the trusts they are
    # part of (where Keystone would refuse them outright).
    mine = None
    if trustor is None and trustee is None and not allowed(req, "identity:list_trusts"):
        mine = req.ctx.user_id
    with db.session() as s:
        rows, truncated = limit_list(trusts.listing(s, trustor, trustee, related_to=mine))
        items = [views.trust(req, t) for t in rows]
    return collection(req, "trusts", items, truncated)


def _load(s, req: Req, rule: str):
    """The trust of the path, for a caller ``rule`` lets see it. A missing, used-up or
    expired trust is a 404 before any policy check, as in Keystone."""
    t = trusts.get(s, req.path["trust_id"])
    authorize(req, rule, _target(t))
    _refuse_app_cred(req)
    return t


@api.route("/v3/OS-TRUST/trusts/{trust_id}", methods=["GET"])
def get_trust(req: Req):
    with db.session() as s:
        t = _load(s, req, "identity:get_trust")
        return json_response({"trust": views.trust(req, t, trusts.roles(s, t.id))})


@api.route("/v3/OS-TRUST/trusts/{trust_id}", methods=["DELETE"])
def delete_trust(req: Req):
    trust_id = req.path["trust_id"]
    with db.transaction() as s:
        t = trusts.find(s, trust_id)  # (one used up or expired can still be deleted)
        authorize(req, "identity:delete_trust", _target(t))
        _refuse_app_cred(req)
        trusts.delete(s, t)
    # The new revision drops every cached validation: the trust's tokens fail at once.
    core.changed("OS-TRUST:trust.deleted", {"resource_info": trust_id})
    return empty()


@api.route("/v3/OS-TRUST/trusts/{trust_id}/roles", methods=["GET"])
def list_trust_roles(req: Req):
    with db.session() as s:
        t = _load(s, req, "identity:list_roles_for_trust")
        out = views.trust(req, t, trusts.roles(s, t.id))
    return json_response({"roles": out["roles"], "links": out["roles_links"]})


@api.route("/v3/OS-TRUST/trusts/{trust_id}/roles/{role_id}", methods=["GET", "HEAD"])
def get_trust_role(req: Req):
    role_id = req.path["role_id"]
    with db.session() as s:
        t = _load(s, req, "identity:get_role_for_trust")
        if role_id not in trusts.role_ids(s, t.id):
            raise errors.NotFound(f"Could not find role: {role_id}.")
        role = core.get_role(s, role_id)
        out = views.role(req, role)
    if req.method == "HEAD":
        return empty(200)
    return json_response({"role": out})
