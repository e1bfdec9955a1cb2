"""Application credentials (/v3/users/{user_id}/application_credentials, access
rules) and stored credentials: /v3/credentials and the OS-EC2 view of them
(/v3/users/{user_id}/credentials/OS-EC2) that `openstack ec2 credentials` uses."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import string

import sqlalchemy as sa
from cryptography.fernet import InvalidToken

from onestack.common import db, errors, validation
from onestack.common.http import Req, empty, json_response
from onestack.common.timeutils import utcnow
from onestack.identity import assignments, authn, core, passwords
from onestack.identity import models as m
from onestack.identity.api import api, views
from onestack.identity.api.common import (
    allowed,
    authorize,
    body_object,
    collection,
    limit_list,
)
from onestack.identity.resources import split_extra

log = logging.getLogger(__name__)

# -- application credentials -------------------------------------------------------

_ROLE_REF = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 64},
        "name": {"type": "string", "minLength": 1, "maxLength": 255},
        "domain_id": {"type": ["string", "null"], "maxLength": 64},
    },
    "anyOf": [{"required": ["id"]}, {"required": ["name"]}],
}
APP_CRED_CREATE = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 255},
        # bcrypt reads 72 bytes; a longer secret would be silently shortened
        "secret": {"type": ["string", "null"], "maxLength": passwords.MAX_BYTES},
        "description": {"type": ["string", "null"], "maxLength": 65535},
        "expires_at": {"type": ["string", "null"]},
        "roles": {"type": "array", "items": _ROLE_REF, "maxItems": 100},
        "unrestricted": {"type": ["boolean", "null"]},
        "access_rules": {"type": "array"},
    },
    "required": ["name"],
}



def _user_target(user_id: str) -> dict:
    return {"user": {"id": user_id}}


def _generate_secret() -> str:
    # 64 letters and digits (~381 bits): within bcrypt's 72 bytes, and never a
    # leading "-" that a command line would take for an option.
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(64))


def _cred_roles(s, cred_id: str) -> list[m.Role]:
    return list(
        s.scalars(
            sa.select(m.Role)
            .join(m.AppCredentialRole, m.AppCredentialRole.role_id == m.Role.id)
            .where(m.AppCredentialRole.app_cred_id == cred_id)
            .order_by(m.Role.name)
        )
    )


def _restricted_app_cred(s, ctx) -> bool:
    """True when the caller's token came from a restricted application credential."""
    if not ctx.app_cred_id:
        return False
    cred = s.get(m.AppCredential, ctx.app_cred_id)
    return cred is None or not cred.unrestricted


def _refuse_trust(req: Req) -> None:
    # A credential made from a trust-scoped token would outlive the trust and drop
    # the delegation chain from the audit trail (Keystone refuses it so).
    if req.ctx.trust_id:
        raise errors.Forbidden(
            "Cannot manage application credentials with a token issued via delegation."
        )


def _refuse_restricted(s, ctx, what: str) -> None:
    if _restricted_app_cred(s, ctx):
        raise errors.Forbidden(
            f"Using method 'application_credential' is not allowed for managing {what}."
        )


def _lookup_role(s, ref: dict) -> m.Role:
    if ref.get("id"):
        role = s.get(m.Role, ref["id"])
        shown = ref["id"]
    else:
        dom = ref.get("domain_id") or m.NULL_DOMAIN
        role = s.scalar(
            sa.select(m.Role).where(m.Role.name == ref["name"], m.Role.domain_id == dom)
        )
        shown = ref["name"]
    if role is None:
        raise errors.NotFound(f"Could not find role: {shown}.")
    return role


def _choose_roles(s, req: Req, obj: dict, project: m.Project) -> list[m.Role]:
    """The roles the new credential carries: those asked for (plus what they imply),
    or the token's; never a role the user does not hold on the project now."""
    implied = assignments.implication_map(s)
    held = assignments.expand(assignments.roles_on_project(s, req.ctx.user_id, project), implied)
    if req.ctx.app_cred_id:
        # an (unrestricted) app-cred token may not hand out more than it carries
        held &= set(req.ctx.role_ids)
    if obj.get("roles"):
        wanted = {_lookup_role(s, ref).id for ref in obj["roles"]}
        ids = assignments.expand(wanted, implied)
        missing = ids - held
        if missing:
            names = sorted(
                r.name for r in s.scalars(sa.select(m.Role).where(m.Role.id.in_(missing)))
            )
            raise errors.BadRequest(
                "Invalid application credential: cannot create an application credential "
                f"with unassigned role(s) {', '.join(names)} on project {project.id}."
            )
    else:
        ids = set(req.ctx.role_ids) & held
    roles = [
        r
        for r in s.scalars(sa.select(m.Role).where(m.Role.id.in_(ids)).order_by(m.Role.name))
        if r.domain_id == m.NULL_DOMAIN
    ]  # tokens never carry domain-specific roles
    if not roles:
        raise errors.BadRequest(
            f"Invalid application credential: user {req.ctx.user_id} has no role on project "
            f"{project.id} to delegate."
        )
    return roles


@api.route("/v3/users/{user_id}/application_credentials", methods=["POST"])
def create_app_cred(req: Req):
    user_id = req.path["user_id"]
    obj = body_object(req, "application_credential")
    validation.validate(APP_CRED_CREATE, obj)
    authorize(req, "identity:create_application_credential", _user_target(user_id))
    _refuse_trust(req)
    ctx = req.ctx
    if ctx.user_id != user_id:  # the rule allows only this already; say it plainly anyway
        raise errors.Forbidden("Cannot create an application credential for another user.")
    if not ctx.project_id:
        raise errors.Forbidden(
            "Application credentials are created for the project of the token: "
            "authenticate with a project-scoped token."
        )
    if obj.get("access_rules"):
        # Silently ignoring them would hand out more access than was asked for.
        raise errors.BadRequest(
            "Invalid input for field 'access_rules': access rules are not supported."
        )
    name = core.check_name(obj["name"], "application credential")
    expires_at = authn.parse_expiry(obj.get("expires_at"))
    if expires_at is not None and expires_at <= utcnow():
        raise errors.BadRequest(
            "Invalid input for field 'expires_at': the expiration time must be in the future."
        )
    secret = obj.get("secret") or _generate_secret()
    if len(secret.encode()) > passwords.MAX_BYTES:
        raise errors.BadRequest(
            f"Invalid input for field 'secret': longer than {passwords.MAX_BYTES} bytes."
        )
    duplicate = (
        "Conflict occurred attempting to store application_credential - "
        f"Duplicate entry found with name {name}."
    )
    with db.transaction(duplicate) as s:
        _refuse_restricted(s, ctx, "additional application credentials")
        project = core.get_project(s, ctx.project_id)
        roles = _choose_roles(s, req, obj, project)
        if s.scalar(
            sa.select(m.AppCredential.id).where(
                m.AppCredential.user_id == user_id, m.AppCredential.name == name
            )
        ):
            raise errors.Conflict(duplicate)
        cred = m.AppCredential(
            id=core.new_id(),
            name=name,
            user_id=user_id,
            project_id=project.id,
            # stored only as a hash: the secret is shown once, in this response
            secret_hash=passwords.hash_password(secret, core.settings().bcrypt_rounds),
            description=obj.get("description") or "",
            expires_at=expires_at,
            unrestricted=bool(obj.get("unrestricted")),
            system=None,
            created_at=utcnow(),
        )
        s.add(cred)
        s.flush()
        s.add_all([m.AppCredentialRole(app_cred_id=cred.id, role_id=r.id) for r in roles])
        out = views.app_credential(req, cred, roles, secret=secret)
    core.changed("application_credential.created", {"resource_info": cred.id})
    return json_response({"application_credential": out}, 201)


@api.route("/v3/users/{user_id}/application_credentials", methods=["GET"])
def list_app_creds(req: Req):
    user_id = req.path["user_id"]
    authorize(req, "identity:list_application_credentials", _user_target(user_id))
    _refuse_trust(req)
    q = (
        sa.select(m.AppCredential)
        .where(m.AppCredential.user_id == user_id)
        .order_by(m.AppCredential.name)
    )
    if "name" in req.query:
        q = q.where(m.AppCredential.name == req.query["name"])
    with db.session() as s:
        rows, truncated = limit_list(list(s.scalars(q)))
        items = [views.app_credential(req, c, _cred_roles(s, c.id)) for c in rows]
        return collection(req, "application_credentials", items, truncated)


def _get_app_cred(s, user_id: str, cred_id: str) -> m.AppCredential:
    cred = s.get(m.AppCredential, cred_id)
    # Another user's credential is "not found" here, whatever the path claims.
    if cred is None or cred.user_id != user_id:
        raise errors.NotFound(f"Could not find Application Credential: {cred_id}.")
    return cred


@api.route("/v3/users/{user_id}/application_credentials/{cred_id}", methods=["GET"])
def get_app_cred(req: Req):
    user_id = req.path["user_id"]
    authorize(req, "identity:get_application_credential", _user_target(user_id))
    _refuse_trust(req)
    with db.session() as s:
        cred = _get_app_cred(s, user_id, req.path["cred_id"])
        out = views.app_credential(req, cred, _cred_roles(s, cred.id))
    return json_response({"application_credential": out})


@api.route("/v3/users/{user_id}/application_credentials/{cred_id}", methods=["DELETE"])
def delete_app_cred(req: Req):
    user_id = req.path["user_id"]
    authorize(req, "identity:delete_application_credential", _user_target(user_id))
    _refuse_trust(req)
    with db.transaction() as s:
        _refuse_restricted(s, req.ctx, "application credentials")
        cred = _get_app_cred(s, user_id, req.path["cred_id"])
        s.execute(sa.delete(m.AppCredentialRole).where(m.AppCredentialRole.app_cred_id == cred.id))
        s.delete(cred)
        # Its tokens would fail validation anyway (the credential is gone); the event
        # says so in the revocation list, and drops them from every process's caches.
        authn.revoke(s, app_cred_id=cred.id)
    core.changed("application_credential.deleted", {"resource_info": req.path["cred_id"]})
    return empty()


@api.route("/v3/users/{user_id}/access_rules", methods=["GET"])
def list_access_rules(req: Req):
    """Access rules are not supported (creating them is refused), so none exist."""
    authorize(req, "identity:list_application_credentials", _user_target(req.path["user_id"]))
    return collection(req, "access_rules", [])


@api.route("/v3/users/{user_id}/access_rules/{rule_id}", methods=["GET", "DELETE"])
def access_rule(req: Req):
    authorize(req, "identity:list_application_credentials", _user_target(req.path["user_id"]))
    raise errors.NotFound(f"Could not find Access Rule: {req.path['rule_id']}.")


# -- credentials (/v3/credentials) ---------------------------------------------------

EC2 = "ec2"
CREDENTIAL_CORE = {"id", "user_id", "project_id", "type", "blob", "links"}
_CRED_PROPS = {
    "user_id": {"type": "string", "minLength": 1, "maxLength": 64},
    "project_id": {"type": ["string", "null"], "maxLength": 64},
    "type": {"type": "string", "minLength": 1, "maxLength": 255},
    "blob": {"type": "string", "maxLength": 65535},
}
CREDENTIAL_CREATE = {
    "type": "object",
    "properties": _CRED_PROPS,
    "required": ["user_id", "type", "blob"],
}
CREDENTIAL_UPDATE = {"type": "object", "properties": _CRED_PROPS, "minProperties": 1}
# Keys an EC2 blob carries to scope the tokens made from it; they may not change.
_EC2_PINNED = ("trust_id", "app_cred_id", "access_token_id")


def _ec2_blob(blob: str) -> dict:
    """An EC2 blob: a JSON object with string "access" and "secret"."""
    try:
        data = json.loads(blob)
    except ValueError:
        raise errors.BadRequest(
            "Invalid input for field 'blob': an ec2 blob must be JSON."
        ) from None
    if not isinstance(data, dict):
        raise errors.BadRequest(
            "Invalid input for field 'blob': an ec2 blob must be a JSON object."
        )
    for key in ("access", "secret"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise errors.BadRequest(
                f"Invalid input for field 'blob': an ec2 blob needs a non-empty string '{key}'."
            )
    return data


def _json_object(text: str) -> dict:
    """A stored blob as a dict; {} if it is not a JSON object."""
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _ec2_id(access: str) -> str:
    # Keystone's id of an EC2 credential, so the access key finds it directly.
    return hashlib.sha256(access.encode()).hexdigest()


def _encrypt(blob: str) -> str:
    return core.State.credential_keys.fernet().encrypt(blob.encode()).decode()


def _decrypt(c: m.Credential) -> str:
    try:
        return core.State.credential_keys.fernet().decrypt(c.encrypted_blob.encode()).decode()
    except InvalidToken:
        # Only if the credential keys were lost or rotated past this blob.
        log.error("credential %s cannot be decrypted with the current credential keys", c.id)
        raise errors.ApiError(f"Credential {c.id} could not be decrypted.") from None


def _cred_target(c) -> dict:
    if isinstance(c, m.Credential):
        c = {"id": c.id, "user_id": c.user_id, "project_id": c.project_id, "type": c.type}
    return {"credential": c}


def _delegated(ctx) -> bool:
    return bool(ctx.app_cred_id or ctx.trust_id)


def _check_delegated_scope(ctx, project_id: str | None) -> None:
    """A token from an application credential or a trust reaches only its own project's
    credentials."""
    if _delegated(ctx) and project_id != ctx.project_id:
        raise errors.Forbidden(
            "Credential project does not match the project scope of the delegated token."
        )


def _check_user(s, user_id: str) -> None:
    if s.get(m.User, user_id) is None:
        raise errors.BadRequest(
            f"Invalid input for field 'user_id': user {user_id} does not exist."
        )


def _load_credential(s, req: Req, rule: str) -> m.Credential:
    """The credential in the path, authorized with ``rule``. A missing one is a 404
    only to callers who could have seen it; others get the usual 403."""
    cred_id = req.path["credential_id"]
    c = s.get(m.Credential, cred_id)
    if c is None:
        authorize(req, rule, {})
        raise errors.NotFound(f"Could not find credential: {cred_id}.")
    authorize(req, rule, _cred_target(c))
    _check_delegated_scope(req.ctx, c.project_id)
    return c


@api.route("/v3/credentials", methods=["GET"])
def list_credentials(req: Req):
    q = sa.select(m.Credential).order_by(m.Credential.user_id, m.Credential.id)
    if "user_id" in req.query:
        q = q.where(m.Credential.user_id == req.query["user_id"])
    if "type" in req.query:
        q = q.where(m.Credential.type == req.query["type"])
    ctx = req.ctx
    with db.session() as s:
        # Everyone may list; each caller sees only the credentials policy lets them see.
        visible = [
            c
            for c in s.scalars(q)
            if allowed(req, "identity:list_credentials", _cred_target(c))
            and not (_delegated(ctx) and c.project_id != ctx.project_id)
        ]
        rows, truncated = limit_list(visible)
        items = [views.credential(req, c, _decrypt(c)) for c in rows]
    return collection(req, "credentials", items, truncated)


@api.route("/v3/credentials", methods=["POST"])
def create_credential(req: Req):
    obj = body_object(req, "credential")
    validation.validate(CREDENTIAL_CREATE, obj)
    authorize(req, "identity:create_credential", _cred_target(obj))
    ctx = req.ctx
    blob = obj["blob"]
    with db.transaction("Conflict occurred attempting to store credential - Duplicate ID.") as s:
        _check_user(s, obj["user_id"])
        if obj["type"] == EC2:
            _refuse_restricted(s, ctx, "additional credentials")
            if not obj.get("project_id"):
                raise errors.BadRequest(
                    "Invalid input for field 'project_id': required for ec2 credentials."
                )
            data = _ec2_blob(blob)
            if ctx.app_cred_id or ctx.trust_id:
                # EC2 tokens made from it will then carry the same delegation.
                if ctx.app_cred_id:
                    data["app_cred_id"] = ctx.app_cred_id
                if ctx.trust_id:
                    data["trust_id"] = ctx.trust_id
                blob = json.dumps(data)
            cred_id = _ec2_id(data["access"])
        else:
            cred_id = core.new_id()
        _check_delegated_scope(ctx, obj.get("project_id"))
        if s.get(m.Credential, cred_id) is not None:
            raise errors.Conflict(
                f"Conflict occurred attempting to store credential - Duplicate ID, {cred_id}."
            )
        c = m.Credential(
            id=cred_id,
            user_id=obj["user_id"],
            project_id=obj.get("project_id"),
            type=obj["type"],
            encrypted_blob=_encrypt(blob),
            extra=split_extra(obj, CREDENTIAL_CORE),
        )
        s.add(c)
        s.flush()
        out = views.credential(req, c, blob)
    core.changed("credential.created", {"resource_info": cred_id})
    return json_response({"credential": out}, 201)


@api.route("/v3/credentials/{credential_id}", methods=["GET"])
def get_credential(req: Req):
    with db.session() as s:
        c = _load_credential(s, req, "identity:get_credential")
        return json_response({"credential": views.credential(req, c, _decrypt(c))})


@api.route("/v3/credentials/{credential_id}", methods=["PATCH"])
def update_credential(req: Req):
    obj = body_object(req, "credential")
    validation.validate(CREDENTIAL_UPDATE, obj)
    if "id" in obj and obj["id"] != req.path["credential_id"]:
        raise errors.BadRequest(
            "Invalid input for field 'id': the id of a credential cannot change."
        )
    with db.transaction() as s:
        c = _load_credential(s, req, "identity:update_credential")
        current = {"id": c.id, "user_id": c.user_id, "project_id": c.project_id, "type": c.type}
        # the caller must also be allowed the credential as it will be (no handing it to others)
        authorize(req, "identity:update_credential", _cred_target({**current, **obj}))
        old_blob = _decrypt(c)
        new_blob = obj.get("blob", old_blob)
        new_type = obj.get("type", c.type)
        new_project = obj.get("project_id", c.project_id)
        if "user_id" in obj:
            _check_user(s, obj["user_id"])
        _check_delegated_scope(req.ctx, new_project)
        if new_type == EC2:
            if not new_project:
                raise errors.BadRequest(
                    "Invalid input for field 'project_id': required for ec2 credentials."
                )
            new_data = _ec2_blob(new_blob)
            if c.type == EC2 and "blob" in obj:
                old_data = _json_object(old_blob)
                for key in _EC2_PINNED:
                    if old_data.get(key) != new_data.get(key):
                        raise errors.BadRequest(
                            f"Invalid input for field 'blob': {key} can not be updated for credential."
                        )
        for key in ("user_id", "project_id", "type"):
            if key in obj:
                setattr(c, key, obj[key])
        if "blob" in obj:
            c.encrypted_blob = _encrypt(new_blob)
        extra = split_extra(obj, CREDENTIAL_CORE)
        if extra:
            c.extra = {**(c.extra or {}), **extra}
        s.flush()
        out = views.credential(req, c, new_blob)
    core.changed("credential.updated", {"resource_info": c.id})
    return json_response({"credential": out})


@api.route("/v3/credentials/{credential_id}", methods=["DELETE"])
def delete_credential(req: Req):
    with db.transaction() as s:
        c = _load_credential(s, req, "identity:delete_credential")
        s.delete(c)
    core.changed("credential.deleted", {"resource_info": req.path["credential_id"]})
    return empty()


# -- OS-EC2: /v3/users/{user_id}/credentials/OS-EC2 ------------------------------------
# The same rows as /v3/credentials of type "ec2", shown the way the EC2 extension
# does ({"access", "secret", "tenant_id", ...}); keystoneclient (`openstack ec2
# credentials ...`) speaks only this. Policy reuses the credential rules.


def _ec2_view(req: Req, c: m.Credential) -> dict:
    return views.ec2_credential(req, c, _json_object(_decrypt(c)))


def _ec2_by_access(s, req: Req, rule: str) -> m.Credential:
    user_id, access = req.path["user_id"], req.path["access"]
    authorize(req, rule, {"credential": {"user_id": user_id}})
    core.get_user(s, user_id)
    c = s.get(m.Credential, _ec2_id(access))
    if c is None or c.type != EC2 or c.user_id != user_id:
        raise errors.NotFound(f"Could not find EC2 credential: {access}.")
    _check_delegated_scope(req.ctx, c.project_id)
    return c


@api.route("/v3/users/{user_id}/credentials/OS-EC2", methods=["GET"])
def list_ec2(req: Req):
    user_id = req.path["user_id"]
    authorize(req, "identity:list_credentials", {"credential": {"user_id": user_id}})
    ctx = req.ctx
    with db.session() as s:
        core.get_user(s, user_id)
        rows = s.scalars(
            sa.select(m.Credential)
            .where(m.Credential.user_id == user_id, m.Credential.type == EC2)
            .order_by(m.Credential.id)
        )
        items = [
            _ec2_view(req, c)
            for c in rows
            if not (_delegated(ctx) and c.project_id != ctx.project_id)
        ]
    return collection(req, "credentials", items)


@api.route("/v3/users/{user_id}/credentials/OS-EC2", methods=["POST"])
def create_ec2(req: Req):
    user_id = req.path["user_id"]
    body = req.json()
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("tenant_id"), str)
        or not body["tenant_id"]
    ):
        raise errors.BadRequest("Invalid input for field 'tenant_id': a project id is required.")
    authorize(req, "identity:create_credential", {"credential": {"user_id": user_id}})
    ctx = req.ctx
    with db.transaction("Conflict occurred attempting to store credential: retry the request.") as s:
        _refuse_restricted(s, ctx, "additional credentials")
        core.get_user(s, user_id)
        project = core.get_project(s, body["tenant_id"])
        _check_delegated_scope(ctx, project.id)
        data = {"access": secrets.token_hex(16), "secret": secrets.token_hex(16),
                "trust_id": ctx.trust_id}
        if ctx.app_cred_id:
            data["app_cred_id"] = ctx.app_cred_id
        c = m.Credential(
            id=_ec2_id(data["access"]),
            user_id=user_id,
            project_id=project.id,
            type=EC2,
            encrypted_blob=_encrypt(json.dumps(data)),
            extra={},
        )
        s.add(c)
        s.flush()
        out = _ec2_view(req, c)
    core.changed("credential.created", {"resource_info": c.id})
    return json_response({"credential": out}, 201)


@api.route("/v3/users/{user_id}/credentials/OS-EC2/{access}", methods=["GET"])
def get_ec2(req: Req):
    with db.session() as s:
        c = _ec2_by_access(s, req, "identity:get_credential")
        return json_response({"credential": _ec2_view(req, c)})


@api.route("/v3/users/{user_id}/credentials/OS-EC2/{access}", methods=["DELETE"])
def delete_ec2(req: Req):
    with db.transaction() as s:
        c = _ec2_by_access(s, req, "identity:delete_credential")
        cred_id = c.id
        s.delete(c)
    core.changed("credential.deleted", {"resource_info": cred_id})
    return empty()
