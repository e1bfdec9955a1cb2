"""Authentication, and issuing, validating and revoking tokens.

A token is a Fernet payload (user, methods, scope, expiry, audit ids); its
body is rebuilt from the database on validation, so a disabled user, a
disabled or deleted project or a removed role takes effect at once.
Revocation events cover what the database cannot show: an explicitly
revoked token, a changed password, a user or project disabled and enabled
again, a role removed and granted again.

A trust-scoped token's payload names the trustee (who authenticated) and the trust;
its body shows the trustor as the user when the trust impersonates, and carries
only the trust's roles on the trust's project (trusts.py checks them each time).
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from onestack.common import db, errors
from onestack.common.timeutils import iso, iso_plain, parse_iso, utcnow
from onestack.identity import assignments, catalog, core, passwords, security, tokens, trusts
from onestack.identity import models as m

METHODS = ("password", "token", "application_credential")
_NOT_AUTHENTICATED = "The request you have made requires authentication."


class TokenNotValid(Exception):
    """The token is malformed, expired, revoked, or its subject is gone."""


# -- revocation events ---------------------------------------------------------


class _Revocations:
    """The revocation events in memory, as of one identity revision (reloaded when
    any process has advanced it: every new event does, in its own transaction)."""

    lock = threading.Lock()
    events: list[m.RevocationEvent] = []
    revision = -1


def revoke(s: Session, **match) -> None:
    """Record an event: tokens matching ``match`` issued up to now are revoked (in every
    process as soon as ``s`` commits, since the event advances the revision with it)."""
    now = utcnow()
    s.add(m.RevocationEvent(issued_before=now, revoked_at=now, **match))
    # Forget events older than any token that could still be valid.
    horizon = now - timedelta(seconds=core.settings().token_expiration + 60)
    s.execute(sa.delete(m.RevocationEvent).where(m.RevocationEvent.revoked_at < horizon))
    core.bump(s)


def _events(s: Session, revision: int) -> list[m.RevocationEvent]:
    r = _Revocations
    with r.lock:
        if r.revision == revision:
            return r.events
    events = list(s.scalars(sa.select(m.RevocationEvent)))
    for e in events:
        s.expunge(e)
    with r.lock:  # (events newer than ``revision`` make the list stricter, never laxer)
        r.events, r.revision = events, revision
    return events


def _is_revoked(s: Session, p: tokens.TokenPayload, revision: int,
                trustor_id: str | None = None) -> bool:
    # An event about a user also revokes the trust-scoped tokens in which it is the
    # trustor (a password change, a disabled account), as Keystone's do.
    users = {p.user_id, trustor_id}
    for e in _events(s, revision):
        if p.issued_at > e.issued_before:
            continue
        if e.user_id and e.user_id not in users:
            continue
        if e.project_id and e.project_id != p.project_id:
            continue
        if e.domain_id and e.domain_id != p.domain_id:
            continue
        if e.audit_id and e.audit_id != p.audit_ids[0]:
            continue
        if e.audit_chain_id and e.audit_chain_id != p.audit_ids[-1]:
            continue
        if e.app_cred_id and e.app_cred_id != p.app_cred_id:
            continue
        return True
    return False


# -- authentication ------------------------------------------------------------


def _unauthorized(msg: str = _NOT_AUTHENTICATED) -> errors.Unauthorized:
    return errors.Unauthorized(msg)


def _find_domain(s: Session, ref: dict, what: str) -> m.Project:
    if not isinstance(ref, dict) or not (ref.get("id") or ref.get("name")):
        raise errors.BadRequest(f"Invalid input for field '{what}.domain': id or name required.")
    try:
        if ref.get("id"):
            return core.get_domain(s, str(ref["id"]))
        return core.get_domain_by_name(s, str(ref["name"]))
    except errors.NotFound:
        raise _unauthorized() from None


def _find_user(s: Session, ref: dict, where: str) -> m.User | None:
    """The user named by ``{"id"}`` or ``{"name", "domain"}``; None if unknown."""
    if not isinstance(ref, dict):
        raise errors.BadRequest(f"Invalid input for field '{where}': must be an object.")
    if ref.get("id"):
        return s.get(m.User, str(ref["id"]))
    if not ref.get("name"):
        raise errors.BadRequest(f"Invalid input for field '{where}': id or name required.")
    dom = ref.get("domain")
    if dom is None:
        raise errors.BadRequest(f"Invalid input for field '{where}.domain': required with name.")
    domain = _find_domain(s, dom, where)
    return s.scalar(sa.select(m.User).where(m.User.domain_id == domain.id, m.User.name == str(ref["name"])))


def _check_user_usable(s: Session, user: m.User) -> None:
    if not user.enabled:
        raise _unauthorized(f"User {user.id} is disabled.")
    if security.inactive(user):  # disable_user_account_days_inactive
        raise _unauthorized(f"The account is disabled for user: {user.id}.")
    dom = s.get(m.Project, user.domain_id)
    if dom is None or not dom.enabled:
        raise _unauthorized(f"Domain {user.domain_id} is disabled.")


def _password_auth(s: Session, data) -> m.User:
    conf = core.settings()
    if not isinstance(data, dict) or not isinstance(data.get("user"), dict):
        raise errors.BadRequest("Invalid input for field 'identity.password.user': required object.")
    ref = data["user"]
    secret = ref.get("password")
    if not isinstance(secret, str):
        raise errors.BadRequest("Invalid input for field 'identity.password.user.password': required string.")
    user = _find_user(s, ref, "identity.password.user")
    if user is None:
        passwords.check_password(secret, None, conf.bcrypt_rounds)
        raise _unauthorized()
    check_user_password(user, secret, _NOT_AUTHENTICATED)
    _check_user_usable(s, user)
    if security.password_expired(user):
        raise _unauthorized(f"The password is expired and needs to be changed for user: {user.id}.")
    security.mark_active(user)
    return user


def check_user_password(user: m.User, secret: str, failure: str) -> None:
    """Verify a user's password, counting failures towards lockout; a wrong
    password (or a locked account) is Unauthorized(``failure``)."""
    conf = core.settings()
    # ignore_lockout_failure_attempts: failures are still counted, never lock
    attempts = 0 if security.option(user, security.IGNORE_LOCKOUT) else conf.lockout_failure_attempts
    if attempts and user.failed_auth_count >= attempts and user.failed_auth_at:
        if utcnow() - user.failed_auth_at < timedelta(seconds=conf.lockout_duration):
            raise _unauthorized(f"The account is locked for user: {user.id}.")
        _reset_failures(user.id)  # the lockout has run out: start counting afresh
    if not passwords.check_password(secret, user.password_hash, conf.bcrypt_rounds):
        if conf.lockout_failure_attempts:
            _record_failure(user.id)
        raise _unauthorized(failure)
    if user.failed_auth_count:
        _reset_failures(user.id)


def _reset_failures(user_id: str) -> None:
    with db.transaction() as w:
        w.execute(sa.update(m.User).where(m.User.id == user_id).values(failed_auth_count=0))


def _record_failure(user_id: str) -> None:
    with db.transaction() as w:
        w.execute(
            sa.update(m.User)
            .where(m.User.id == user_id)
            .values(failed_auth_count=m.User.failed_auth_count + 1, failed_auth_at=utcnow())
        )


def _app_cred_auth(s: Session, data) -> tuple[m.User, m.AppCredential]:
    if not isinstance(data, dict) or not isinstance(data.get("secret"), str):
        raise errors.BadRequest(
            "Invalid input for field 'identity.application_credential': id (or name and user) and secret required."
        )
    cred = None
    if data.get("id"):
        cred = s.get(m.AppCredential, str(data["id"]))
    elif data.get("name"):
        user = _find_user(s, data.get("user") or {}, "identity.application_credential.user")
        if user is not None:
            cred = s.scalar(
                sa.select(m.AppCredential).where(
                    m.AppCredential.user_id == user.id, m.AppCredential.name == str(data["name"])
                )
            )
    else:
        raise errors.BadRequest(
            "Invalid input for field 'identity.application_credential': id or name required."
        )
    rounds = core.settings().bcrypt_rounds
    if cred is None:
        passwords.check_password(data["secret"], None, rounds)
        raise _unauthorized()
    if not passwords.check_password(data["secret"], cred.secret_hash, rounds):
        raise _unauthorized()
    if cred.expires_at and cred.expires_at <= utcnow():
        raise _unauthorized(f"Application credential {cred.id} has expired.")
    user = s.get(m.User, cred.user_id)
    _check_user_usable(s, user)
    return user, cred


def _resolve_scope(s: Session, scope) -> tuple[str | None, str | None, str | None]:
    """(project_id, domain_id, system) requested by an auth ``scope`` object."""
    if scope is None:
        return None, None, None
    if scope == "unscoped":
        return None, None, None
    if not isinstance(scope, dict):
        raise errors.BadRequest("Invalid input for field 'auth.scope': must be an object.")
    if len([k for k in ("project", "domain", "system", "OS-TRUST:trust") if k in scope]) > 1:
        raise errors.BadRequest(
            "Invalid input for field 'auth.scope': specify only one of project, domain, system, "
            "OS-TRUST:trust."
        )
    if "OS-TRUST:trust" in scope:
        return None, None, None  # the trust gives the scope (see issue)
    if "project" in scope:
        ref = scope["project"]
        if not isinstance(ref, dict):
            raise errors.BadRequest("Invalid input for field 'auth.scope.project': must be an object.")
        if ref.get("id"):
            p = s.get(m.Project, str(ref["id"]))
        elif ref.get("name"):
            dom = _find_domain(s, ref.get("domain"), "auth.scope.project")
            p = s.scalar(sa.select(m.Project).where(m.Project.domain_id == dom.id, m.Project.name == str(ref["name"])))
        else:
            raise errors.BadRequest("Invalid input for field 'auth.scope.project': id or name required.")
        if p is None:
            raise _unauthorized(f"Could not find project: {ref.get('id') or ref.get('name')}.")
        return p.id, None, None
    if "domain" in scope:
        d = _find_domain(s, scope["domain"], "auth.scope")
        return None, d.id, None
    if "system" in scope:
        if scope["system"] != {"all": True}:
            raise errors.BadRequest("Invalid input for field 'auth.scope.system': only {\"all\": true} is supported.")
        return None, None, "all"
    raise errors.BadRequest("Invalid input for field 'auth.scope': project, domain or system required.")


def issue(auth: dict) -> tuple[str, dict]:
    """Authenticate an ``auth`` object; return (token id, token body)."""
    if not isinstance(auth, dict) or not isinstance(auth.get("identity"), dict):
        raise errors.BadRequest("Invalid input for field 'auth.identity': required object.")
    identity = auth["identity"]
    methods = identity.get("methods")
    if not isinstance(methods, list) or not methods or not all(isinstance(x, str) for x in methods):
        raise errors.BadRequest("Invalid input for field 'auth.identity.methods': a list of method names is required.")
    unknown = [x for x in methods if x not in METHODS]
    if unknown:
        raise _unauthorized(f"Attempted to authenticate with an unsupported method: {unknown[0]}.")
    if len(set(methods)) != len(methods) or len(methods) > 1 and "application_credential" in methods:
        raise errors.BadRequest("Invalid input for field 'auth.identity.methods': combine methods only once each.")
    now = utcnow()
    expires = now + timedelta(seconds=core.settings().token_expiration)
    audit_ids = [tokens.new_audit_id()]
    app_cred = None
    with db.session() as s:
        user: m.User | None = None
        for method in methods:
            if method not in identity:
                raise errors.BadRequest(f"Invalid input for field 'auth.identity.{method}': required.")
        if "password" in methods:
            user = _password_auth(s, identity["password"])
        if "application_credential" in methods:
            user, app_cred = _app_cred_auth(s, identity["application_credential"])
        if "token" in methods:
            ref = identity["token"]
            if not isinstance(ref, dict) or not isinstance(ref.get("id"), str):
                raise errors.BadRequest("Invalid input for field 'auth.identity.token.id': required string.")
            try:
                parent = _check(s, ref["id"])
            except TokenNotValid as e:
                if str(e) in ("expired", "revoked"):  # Keystone: TokenNotFound, a 404
                    raise errors.NotFound("Failed to validate token") from None
                raise _unauthorized() from None
            if parent.app_cred_id:
                raise errors.Forbidden("A token created with an application credential cannot be rescoped.")
            if parent.trust_id:
                raise errors.Forbidden(
                    "Using trust-scoped token to create another token. Create a new trust-scoped "
                    "token instead."
                )
            if user is not None and user.id != parent.user_id:
                raise _unauthorized("Methods identify different users.")
            user = s.get(m.User, parent.user_id)
            expires = min(expires, parent.expires_at)
            audit_ids = [audit_ids[0], parent.audit_ids[-1]]
            methods = list(dict.fromkeys(parent.methods + methods))

        scope = auth.get("scope")
        project_id, domain_id, system = _resolve_scope(s, scope)
        trust = trusts.requested(s, scope) if isinstance(scope, dict) and "OS-TRUST:trust" in scope else None
        if trust is not None:
            if app_cred is not None:
                raise _unauthorized("Application credentials cannot request a scope.")
            project_id = trust.project_id
            if trust.expires_at:  # a token does not outlive its trust
                expires = min(expires, trust.expires_at)
        elif app_cred is not None:
            if (domain_id or system) or (project_id and project_id != app_cred.project_id):
                raise _unauthorized("Application credentials cannot request a scope.")
            project_id = app_cred.project_id
        elif scope is None and "token" not in methods and user.default_project_id:
            # Keystone scopes to the default project when no scope is asked for,
            # if the user may use it.
            p = s.get(m.Project, user.default_project_id)
            if p is not None and p.enabled and assignments.roles_on_project(s, user.id, p):
                project_id = p.id
        payload = tokens.TokenPayload(
            user_id=user.id, methods=methods, expires_at=expires, issued_at=now,
            audit_ids=audit_ids, project_id=project_id, domain_id=domain_id, system=system,
            app_cred_id=app_cred.id if app_cred else None, trust_id=trust.id if trust else None,
        )
        body = render(s, payload, with_catalog=True)
        token_id = tokens.encode(core.State.keys, payload)
    if trust is not None and trust.remaining_uses is not None:
        trusts.consume(trust.id)  # only once the token could be made, as Keystone does
    return token_id, body


# -- validation ------------------------------------------------------------------

_cache: dict[tuple[str, bool], tuple[int, datetime, dict]] = {}
_cache_lock = threading.Lock()


def _check(s: Session, token_id: str, allow_expired: bool = False,
           revision: int | None = None) -> tokens.TokenPayload:
    try:
        p = tokens.decode(core.State.keys, token_id)
    except ValueError:
        raise TokenNotValid("malformed") from None
    if not allow_expired and p.expires_at <= utcnow():
        raise TokenNotValid("expired")
    trustor_id = None
    if p.trust_id:
        trust = s.get(m.Trust, p.trust_id)
        if trust is None:
            raise TokenNotValid("its trust was deleted")
        trustor_id = trust.trustor_user_id
    if _is_revoked(s, p, core.revision() if revision is None else revision, trustor_id):
        raise TokenNotValid("revoked")
    return p


def validate(token_id: str, with_catalog: bool = True, allow_expired: bool = False) -> dict:
    """The token's body, rebuilt and checked; TokenNotValid if it is not valid now.
    A body is cached for the identity revision it was built at: any change, by any
    process, is a new revision, so nothing stale is ever served."""
    key = (token_id, with_catalog)
    revision = core.revision()
    if not allow_expired:
        with _cache_lock:
            hit = _cache.get(key)
        if hit and hit[0] == revision and hit[1] > utcnow():
            return hit[2]
    with db.session() as s:
        p = _check(s, token_id, allow_expired, revision)
        try:
            body = render(s, p, with_catalog)
        except (errors.Unauthorized, errors.Forbidden, errors.NotFound) as e:
            raise TokenNotValid(str(e)) from None
    if not allow_expired:
        with _cache_lock:
            if len(_cache) > 10000:
                _cache.clear()
            _cache[key] = (revision, p.expires_at, body)
    return body


def render(s: Session, p: tokens.TokenPayload, with_catalog: bool) -> dict:
    """Token body for a payload; Unauthorized if its user or scope is not usable."""
    user = s.get(m.User, p.user_id)
    if user is None:
        raise _unauthorized(f"Could not find user: {p.user_id}.")
    _check_user_usable(s, user)
    trust = None
    if p.trust_id:
        trust, trustor = trusts.for_token(s, p.trust_id, user.id)
        if trust.impersonation:
            user = trustor  # services see the trustor acting, as Keystone shows it
    user_domain = s.get(m.Project, user.domain_id)
    t: dict = {
        "methods": p.methods,
        "user": {
            "id": user.id,
            "name": user.name,
            "domain": {"id": user_domain.id, "name": user_domain.name},
            "password_expires_at": iso_plain(user.password_expires_at),
        },
        "audit_ids": p.audit_ids,
        "expires_at": iso(p.expires_at, micro=True),
        "issued_at": iso(p.issued_at, micro=True),
    }
    role_ids: set[str] | None = None
    if p.project_id:
        project = s.get(m.Project, p.project_id)
        if project is None:
            raise _unauthorized(f"Could not find project: {p.project_id}.")
        pdom = s.get(m.Project, project.domain_id) if not project.is_domain else project
        if not project.enabled or (pdom is not None and not pdom.enabled):
            raise _unauthorized(f"Project {project.id} is disabled.")
        if trust is not None:
            role_ids = trusts.delegated_role_ids(s, trust)
        else:
            role_ids = assignments.roles_on_project(s, user.id, project)
        t["project"] = {
            "id": project.id,
            "name": project.name,
            "domain": {"id": pdom.id, "name": pdom.name} if pdom else None,
        }
        t["is_domain"] = project.is_domain
        what = f"project {project.id}"
    elif p.domain_id:
        domain = s.get(m.Project, p.domain_id)
        if domain is None or not domain.enabled:
            raise _unauthorized(f"Domain {p.domain_id} is disabled or does not exist.")
        role_ids = assignments.roles_on_domain(s, user.id, domain.id)
        t["domain"] = {"id": domain.id, "name": domain.name}
        what = f"domain {domain.id}"
    elif p.system:
        role_ids = assignments.roles_on_system(s, user.id)
        t["system"] = {"all": True}
        what = "the system"
    if role_ids is not None:
        roles = assignments.token_roles(s, role_ids)
        if p.app_cred_id:
            cred = s.get(m.AppCredential, p.app_cred_id)
            if cred is None or (cred.expires_at and cred.expires_at <= utcnow()):
                raise _unauthorized(f"Application credential {p.app_cred_id} is no longer valid.")
            allowed = assignments.expand(
                set(s.scalars(sa.select(m.AppCredentialRole.role_id).where(
                    m.AppCredentialRole.app_cred_id == cred.id))),
                assignments.implication_map(s),
            )
            roles = [r for r in roles if r.id in allowed]
            t["application_credential"] = {
                "id": cred.id, "name": cred.name, "restricted": not cred.unrestricted,
            }
        if not roles:
            raise _unauthorized(f"User {user.id} has no access to {what}.")
        t["roles"] = [{"id": r.id, "name": r.name} for r in roles]
    if trust is not None:
        t["OS-TRUST:trust"] = {
            "id": trust.id,
            "impersonation": trust.impersonation,
            "trustor_user": {"id": trust.trustor_user_id},
            "trustee_user": {"id": trust.trustee_user_id},
        }
        if trust.redelegated_trust_id:
            t["OS-TRUST:trust"].update(redelegated_trust_id=trust.redelegated_trust_id,
                                       redelegation_count=trust.redelegation_count)
    # Unscoped tokens carry no catalog at all (Keystone omits the key).
    if with_catalog and role_ids is not None:
        t["catalog"] = catalog.build(s, (t.get("project") or {}).get("id"))
    return {"token": t}


def revoke_token(token_id: str) -> None:
    """DELETE /v3/auth/tokens: revoke this token (by its audit id)."""
    with db.transaction() as s:
        try:
            p = _check(s, token_id)
        except TokenNotValid:
            raise errors.NotFound("Could not find token.") from None
        revoke(s, audit_id=p.audit_ids[0])
    core.changed("token.revoked", {"audit_id": p.audit_ids[0]})


def payload_of(token_id: str) -> tokens.TokenPayload:
    with db.session() as s:
        return _check(s, token_id)


def parse_expiry(value) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise errors.BadRequest("Invalid input for field 'expires_at': must be an ISO 8601 time.")
    try:
        return parse_iso(value)
    except ValueError:
        raise errors.BadRequest(f"Invalid input for field 'expires_at': {value!r} is not an ISO 8601 time.") from None
