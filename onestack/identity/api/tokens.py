"""/v3/auth: issue, validate, check and revoke tokens; what a token may reach."""

from __future__ import annotations

from onestack.common import db, errors
from onestack.common.http import Req, empty, json_response
from onestack.identity import assignments, authn, catalog
from onestack.identity.api import api, views
from onestack.identity.api.common import authorize, body_object, collection

SUBJECT = "X-Subject-Token"


@api.route("/v3/auth/tokens", methods=["POST"], auth=False)
def issue_token(req: Req):
    auth = body_object(req, "auth")
    token_id, body = authn.issue(auth)
    if "nocatalog" in req.query:
        body["token"].pop("catalog", None)
    return json_response(body, 201, {SUBJECT: token_id})


def _subject(req: Req) -> str:
    token = req.headers.get(SUBJECT)
    if not token:
        raise errors.NotFound("Could not find token: the X-Subject-Token header is missing.")
    return token.strip()


def _validated_subject(req: Req, with_catalog: bool = False) -> tuple[str, dict]:
    token = _subject(req)
    try:
        body = authn.validate(
            token, with_catalog=with_catalog, allow_expired="allow_expired" in req.query
        )
    except authn.TokenNotValid:
        raise errors.NotFound(f"Could not find token: {token[:16]}...") from None
    return token, body


# HEAD before GET: a GET route would also answer HEAD.
@api.route("/v3/auth/tokens", methods=["HEAD"])
def check_token(req: Req):
    token, body = _validated_subject(req)
    authorize(req, "identity:check_token", {"token": {"user_id": body["token"]["user"]["id"]}})
    return empty(200, {SUBJECT: token})


@api.route("/v3/auth/tokens", methods=["GET"])
def validate_token(req: Req):
    token, body = _validated_subject(req, with_catalog="nocatalog" not in req.query)
    authorize(req, "identity:validate_token", {"token": {"user_id": body["token"]["user"]["id"]}})
    return json_response(body, headers={SUBJECT: token})


@api.route("/v3/auth/tokens", methods=["DELETE"])
def revoke_token(req: Req):
    token, body = _validated_subject(req)
    authorize(req, "identity:revoke_token", {"token": {"user_id": body["token"]["user"]["id"]}})
    authn.revoke_token(token)
    return empty(204)


@api.route("/v3/auth/catalog", methods=["GET"])
def auth_catalog(req: Req):
    authorize(req, "identity:get_auth_catalog")
    ctx = req.ctx
    if not (ctx.project_id or ctx.domain_id or ctx.system_scope):
        raise errors.Forbidden("A catalog can only be retrieved with a scoped token.")
    with db.session() as s:
        return json_response({"catalog": catalog.build(s, ctx.project_id), "links": {"self": str(req.url)}})


@api.route("/v3/auth/projects", methods=["GET"])
def auth_projects(req: Req):
    authorize(req, "identity:get_auth_projects")
    with db.session() as s:
        projects = assignments.projects_for_user(s, req.ctx.user_id)
        return collection(req, "projects", [views.project(req, p) for p in projects])


@api.route("/v3/auth/domains", methods=["GET"])
def auth_domains(req: Req):
    authorize(req, "identity:get_auth_domains")
    with db.session() as s:
        domains = assignments.domains_for_user(s, req.ctx.user_id)
        return collection(req, "domains", [views.domain(req, d) for d in domains])


@api.route("/v3/auth/system", methods=["GET"])
def auth_system(req: Req):
    authorize(req, "identity:get_auth_system")
    with db.session() as s:
        has = bool(assignments.roles_on_system(s, req.ctx.user_id))
    return json_response({"system": [{"all": True}] if has else [], "links": {"self": str(req.url)}})
