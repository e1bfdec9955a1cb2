"""Trusts (OS-TRUST): a trustor delegates some of its roles on a project to a trustee,
who then gets trust-scoped tokens with its own credentials plus the trust id.

Nothing about a trust is copied into its tokens but the trust id: every validation
looks the trust up again, so a deleted or expired trust, a disabled trustor or a role
the trustor no longer holds ends its tokens at once. ``remaining_uses`` limits how
many tokens are issued (the last one stays valid until it expires). Redelegation
chains follow Keystone: a trust-scoped token may create a trust only from a trust
that allows it, with no more roles, no later expiry and one level less depth.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from onestack.common import db, errors
from onestack.common.auth import RequestContext
from onestack.common.timeutils import parse_iso, utcnow
from onestack.identity import assignments, core
from onestack.identity import models as m

# Keystone's [trust] max_redelegation_count default: the longest chain of redelegations.
MAX_REDELEGATION_COUNT = 3


def not_found(trust_id: str) -> errors.NotFound:
    return errors.NotFound(f"Could not find trust: {trust_id}.")


def expired(t: m.Trust, now: datetime | None = None) -> bool:
    return t.expires_at is not None and t.expires_at <= (now or utcnow())


def usable(t: m.Trust) -> bool:
    """Not expired and not used up: what Keystone's get_trust finds at all."""
    return not expired(t) and (t.remaining_uses is None or t.remaining_uses > 0)


def get(s: Session, trust_id: str) -> m.Trust:
    """A trust that can still be used; 404 otherwise (as Keystone shows them)."""
    t = s.get(m.Trust, trust_id)
    if t is None or not usable(t):
        raise not_found(trust_id)
    return t


def find(s: Session, trust_id: str) -> m.Trust:
    """Any existing trust, used up or expired too (those can still be deleted)."""
    t = s.get(m.Trust, trust_id)
    if t is None:
        raise not_found(trust_id)
    return t


def role_ids(s: Session, trust_id: str) -> list[str]:
    return list(s.scalars(sa.select(m.TrustRole.role_id).where(m.TrustRole.trust_id == trust_id)))


def roles(s: Session, trust_id: str) -> list[m.Role]:
    """The delegated roles that still exist, by name."""
    ids = role_ids(s, trust_id)
    if not ids:
        return []
    return list(s.scalars(sa.select(m.Role).where(m.Role.id.in_(ids)).order_by(m.Role.name)))


def listing(s: Session, trustor_user_id: str | None = None, trustee_user_id: str | None = None,
            related_to: str | None = None) -> list[m.Trust]:
    q = sa.select(m.Trust).order_by(m.Trust.created_at, m.Trust.id)
    if trustor_user_id is not None:
        q = q.where(m.Trust.trustor_user_id == trustor_user_id)
    if trustee_user_id is not None:
        q = q.where(m.Trust.trustee_user_id == trustee_user_id)
    if related_to is not None:
        q = q.where(sa.or_(m.Trust.trustor_user_id == related_to,
                           m.Trust.trustee_user_id == related_to))
    return list(s.scalars(q))


def ancestors(s: Session, t: m.Trust) -> list[m.Trust | None]:
    """The trusts ``t`` was redelegated from, nearest first; None where one is gone."""
    out: list[m.Trust | None] = []
    seen = {t.id}
    cur = t
    while cur.redelegated_trust_id:
        parent = s.get(m.Trust, cur.redelegated_trust_id)
        if parent is None or parent.id in seen:
            out.append(None)
            break
        out.append(parent)
        seen.add(parent.id)
        cur = parent
    return out


# -- creating -------------------------------------------------------------------


def _lookup_role(s: Session, ref: dict) -> m.Role:
    """A role by id or by (unique) name. An id that is no role's id is tried as a name:
    `openstack trust create --role member` sends the name as the id when its user may
    not look roles up (not an admin), as it does for every trustor delegating."""
    key = ref.get("id") or ref["name"]
    if ref.get("id"):
        role = s.get(m.Role, key)
        if role is not None:
            return role
    found = list(s.scalars(sa.select(m.Role).where(m.Role.name == key)))
    if not found:
        raise errors.NotFound(f"Could not find role: {key}.")
    if len(found) > 1:
        raise errors.BadRequest(
            f"Invalid input for field 'roles': more than one role is named {key}; give its id."
        )
    return found[0]


def parse_expiry(value) -> datetime | None:
    """``expires_at`` of a new trust: None, or an ISO 8601 time in the future."""
    if value is None:
        return None
    try:
        when = parse_iso(value)
    except ValueError:
        raise errors.BadRequest(
            f"Invalid input for field 'expires_at': {value!r} is not an ISO 8601 time."
        ) from None
    if when <= utcnow():
        raise errors.BadRequest(
            "Invalid input for field 'expires_at': the expiration time must be in the future."
        )
    return when


def _check_redelegation(s: Session, new: m.Trust, wanted: set[str], chain: list[m.Trust]) -> None:
    """Keystone's rules for a trust made with a trust-scoped token, against every trust
    of the chain it comes from: each must still allow redelegation, and the new trust
    may not outlive it, add roles to it, or impersonate where it did not."""
    for t in chain:
        if not 0 < t.redelegation_count <= MAX_REDELEGATION_COUNT:
            raise errors.Forbidden(
                f"Remaining redelegation depth of {t.redelegation_count} out of allowed range "
                f"of [0..{MAX_REDELEGATION_COUNT}]."
            )
        if new.remaining_uses is not None:
            raise errors.Forbidden(
                f'Field "remaining_uses" is set to {new.remaining_uses} while it must not be '
                "set in order to redelegate a trust."
            )
        if new.expires_at is None:
            new.expires_at = t.expires_at
        elif t.expires_at is not None and t.expires_at < new.expires_at:
            raise errors.Forbidden("Requested expiration time is more than redelegated trust can provide.")
        if not wanted <= set(role_ids(s, t.id)):
            raise errors.Forbidden("Some of requested roles are not in redelegated trust.")
        if new.impersonation and not t.impersonation:
            raise errors.Forbidden(
                "Impersonation is not allowed because redelegated trust does not specify "
                f"impersonation. Redelegated trust id: {t.id}."
            )


def create(s: Session, ctx: RequestContext, obj: dict) -> tuple[m.Trust, list[m.Role]]:
    """A new trust from a validated ``trust`` object, made by ``ctx`` (its trustor)."""
    project_id = obj.get("project_id") or None
    refs = obj.get("roles") or []
    if project_id and not refs:
        raise errors.Forbidden("At least one role should be specified.")
    core.get_user(s, obj["trustee_user_id"])
    chosen = {r.id: r for r in (_lookup_role(s, ref) for ref in refs)}
    wanted = set(chosen)

    # A trust-scoped token may only make a trust from its own trust (redelegation).
    chain: list[m.Trust] = []
    if ctx.trust_id:
        parent = get(s, ctx.trust_id)
        chain = [parent, *ancestors(s, parent)]
        if None in chain:
            raise not_found(parent.redelegated_trust_id)
        if project_id != parent.project_id:
            raise errors.Forbidden(
                f"A redelegated trust must be on the project of trust {parent.id}."
            )
    root = chain[-1] if chain else None

    if project_id:
        project = core.get_project(s, project_id)
        trustor_id = root.trustor_user_id if root else obj["trustor_user_id"]
        held = assignments.expand(assignments.roles_on_project(s, trustor_id, project),
                                  assignments.implication_map(s))
        missing = sorted(chosen[r].name for r in wanted - held)
        if missing:
            raise errors.Forbidden(
                f"User {trustor_id} cannot delegate role(s) {', '.join(missing)}: "
                f"not assigned on project {project_id}."
            )
    elif wanted:
        raise errors.Forbidden("Roles can only be delegated on a project: project_id is required.")

    requested = obj.get("redelegation_count")
    redelegatable = bool(obj.get("allow_redelegation")) and requested != 0
    if redelegatable:
        if requested is not None and requested > MAX_REDELEGATION_COUNT:
            raise errors.Forbidden(
                f"Requested redelegation depth of {requested} is greater than allowed "
                f"{MAX_REDELEGATION_COUNT}."
            )
        if obj.get("remaining_uses") is not None:
            raise errors.BadRequest(
                "Invalid input for field 'remaining_uses': it must not be set if redelegation "
                "is allowed."
            )
    t = m.Trust(
        id=core.new_id(),
        trustor_user_id=obj["trustor_user_id"],
        trustee_user_id=obj["trustee_user_id"],
        project_id=project_id,
        impersonation=obj["impersonation"],
        expires_at=parse_expiry(obj.get("expires_at")),
        remaining_uses=obj.get("remaining_uses"),
        created_at=utcnow(),
    )
    if chain:
        t.redelegated_trust_id = chain[0].id
        depth = chain[0].redelegation_count - 1
        if redelegatable and requested and requested != depth:
            raise errors.Forbidden(
                'Modifying "redelegation_count" upon redelegation is forbidden. Omitting this '
                "parameter is advised."
            )
        t.redelegation_count = depth if redelegatable else 0
        _check_redelegation(s, t, wanted, chain)
    else:
        t.redelegation_count = (requested or MAX_REDELEGATION_COUNT) if redelegatable else 0
    s.add(t)
    s.flush()
    s.add_all([m.TrustRole(trust_id=t.id, role_id=rid) for rid in sorted(wanted)])
    return t, sorted(chosen.values(), key=lambda r: r.name)


# -- deleting -------------------------------------------------------------------


def delete(s: Session, t: m.Trust) -> None:
    """The trust, and every trust redelegated from it."""
    for child in s.scalars(sa.select(m.Trust).where(m.Trust.redelegated_trust_id == t.id)).all():
        delete(s, child)
    s.execute(sa.delete(m.TrustRole).where(m.TrustRole.trust_id == t.id))
    s.delete(t)


def delete_for_user(s: Session, user_id: str) -> None:
    """A deleted user's trusts go with it, as trustor or trustee (as in Keystone)."""
    for t in listing(s, related_to=user_id):
        if s.get(m.Trust, t.id) is not None:  # (a parent's delete may have taken it)
            delete(s, t)


def delete_for_project(s: Session, project_id: str) -> None:
    for t in s.scalars(sa.select(m.Trust).where(m.Trust.project_id == project_id)).all():
        if s.get(m.Trust, t.id) is not None:
            delete(s, t)


# -- trust-scoped tokens -------------------------------------------------------------


def for_token(s: Session, trust_id: str, user_id: str) -> tuple[m.Trust, m.User]:
    """The trust of a trust-scoped token of ``user_id`` and its trustor, as they stand
    now: Unauthorized if the trust (or one it comes from) is gone or expired,
    Forbidden if the user is not its trustee or a delegating user is disabled."""
    t = s.get(m.Trust, trust_id)
    if t is None or expired(t):
        raise errors.Unauthorized(f"Could not find trust: {trust_id}.")
    if t.trustee_user_id != user_id:
        raise errors.Forbidden("User is not a trustee.")
    trustor = s.get(m.User, t.trustor_user_id)
    if trustor is None or not trustor.enabled:
        raise errors.Forbidden("Trustor is disabled.")
    domain = s.get(m.Project, trustor.domain_id)
    if domain is None or not domain.enabled:
        raise errors.Forbidden("Trustor domain is disabled.")
    for parent in ancestors(s, t):
        if parent is None or expired(parent):
            raise errors.Unauthorized(f"Could not find trust: {trust_id}.")
        agent = s.get(m.User, parent.trustee_user_id)
        if agent is None or not agent.enabled:
            raise errors.Forbidden("One of the trust agents is disabled or deleted.")
    return t, trustor


def delegated_role_ids(s: Session, t: m.Trust) -> set[str]:
    """The roles a token of ``t`` carries (with what they imply): Forbidden unless the
    original trustor still holds every one of them on the project."""
    if not t.project_id:
        return set()
    project = s.get(m.Project, t.project_id)
    chain = [t, *ancestors(s, t)]
    root = chain[-1] or t
    implied = assignments.implication_map(s)
    wanted = assignments.expand(set(role_ids(s, t.id)), implied)
    held = assignments.expand(assignments.roles_on_project(s, root.trustor_user_id, project), implied) \
        if project is not None else set()
    if not wanted or not wanted <= held:
        raise errors.Forbidden("Trustee has no delegated roles.")
    return wanted


def requested(s: Session, scope: dict) -> m.Trust:
    """The trust an auth ``scope`` names with OS-TRUST:trust; Unauthorized unless it
    can issue a token now (not expired, uses left)."""
    ref = scope["OS-TRUST:trust"]
    if not isinstance(ref, dict) or not isinstance(ref.get("id"), str) or not ref["id"]:
        raise errors.BadRequest(
            "Invalid input for field 'auth.scope.OS-TRUST:trust': an object with the trust id "
            "is required."
        )
    t = s.get(m.Trust, ref["id"])
    if t is None or not usable(t):
        raise errors.Unauthorized(f"Could not find trust: {ref['id']}.")
    return t


def consume(trust_id: str) -> None:
    """Count one use of a trust with limited uses (the UPDATE only succeeds while uses
    remain, so two concurrent issues cannot both take the last one)."""
    with db.transaction() as s:
        done = s.execute(
            sa.update(m.Trust)
            .where(m.Trust.id == trust_id, m.Trust.remaining_uses > 0)
            .values(remaining_uses=m.Trust.remaining_uses - 1)
        )
        if done.rowcount == 0:
            raise errors.Unauthorized(f"Could not find trust: {trust_id}.")
