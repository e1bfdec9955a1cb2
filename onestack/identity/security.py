"""Keystone's security compliance rules for local users' passwords and accounts:
complexity (password_regex), expiry, the history of recent passwords, the minimum
age of a self-set password, change upon first use, inactivity, and the user options
that exempt a user from some of them. Messages and status codes are Keystone's."""

from __future__ import annotations

import operator
import re
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from onestack.common import db, errors
from onestack.common.timeutils import parse_iso, utcnow
from onestack.identity import core, passwords
from onestack.identity import models as m

# The user options Keystone has (its registry), all booleans.
IGNORE_CHANGE_PASSWORD = "ignore_change_password_upon_first_use"
IGNORE_PASSWORD_EXPIRY = "ignore_password_expiry"
IGNORE_LOCKOUT = "ignore_lockout_failure_attempts"
LOCK_PASSWORD = "lock_password"
IGNORE_INACTIVITY = "ignore_user_inactivity"
USER_OPTIONS = (IGNORE_CHANGE_PASSWORD, IGNORE_PASSWORD_EXPIRY, IGNORE_LOCKOUT, LOCK_PASSWORD,
                IGNORE_INACTIVITY)

_OPERATORS = {"lt": operator.lt, "lte": operator.le, "gt": operator.gt, "gte": operator.ge,
              "eq": operator.eq, "neq": operator.ne}


# -- user options ---------------------------------------------------------------


def check_options(value) -> dict:
    """The ``options`` of a user body: known names, each true, false or null."""
    if not isinstance(value, dict):
        raise errors.BadRequest("Invalid input for field 'options': must be an object.")
    for name, v in value.items():
        if name not in USER_OPTIONS:
            raise errors.BadRequest(
                f"Invalid input for field 'options': Additional properties are not allowed "
                f"('{name}' was unexpected)."
            )
        if v is not None and not isinstance(v, bool):
            raise errors.BadRequest(
                f"Invalid input for field 'options.{name}': {v!r} is not of type 'boolean', 'null'."
            )
    return value


def set_options(u: m.User, value: dict) -> None:
    """Merge options into the user's, as Keystone does: null removes one, the
    options not named are kept."""
    merged = {**(u.options or {}), **check_options(value)}
    u.options = {k: v for k, v in merged.items() if v is not None}


def option(u: m.User, name: str) -> bool:
    return (u.options or {}).get(name) is True


# -- passwords ------------------------------------------------------------------


def check_strength(password: str) -> None:
    """password_regex: a 400 showing password_regex_description when it does not match."""
    conf = core.settings()
    if not conf.password_regex:
        return
    try:
        ok = re.match(conf.password_regex, password)
    except re.error:
        raise errors.BadRequest(
            "Password validation error: Unable to validate password due to invalid configuration."
        ) from None
    if not ok:
        raise errors.BadRequest(
            f"The password does not match the requirements: {conf.password_regex_description}."
        )


def _expires_at(u: m.User, now: datetime) -> datetime | None:
    days = core.settings().password_expires_days
    if days and not option(u, IGNORE_PASSWORD_EXPIRY):
        return (now + timedelta(days=days)).replace(microsecond=0)
    return None


def store_password(s: Session, u: m.User, password: str, self_service: bool) -> None:
    """Hash and set a new password (already checked): keep the one it replaces in
    the history, give it its expiry; one an administrator set expires at once when
    change_password_upon_first_use asks for it."""
    conf = core.settings()
    now = utcnow()
    if u.password_hash and u.id:
        s.add(m.PasswordHistory(user_id=u.id, password_hash=u.password_hash,
                                created_at=u.password_created_at or now))
        s.flush()
        # keep only the earlier passwords the history check can still need
        ids = list(s.scalars(sa.select(m.PasswordHistory.id).where(
            m.PasswordHistory.user_id == u.id).order_by(m.PasswordHistory.id.desc())))
        old = ids[max(conf.unique_last_password_count - 1, 0):]
        if old:
            s.execute(sa.delete(m.PasswordHistory).where(m.PasswordHistory.id.in_(old)))
    u.password_hash = passwords.hash_password(password, conf.bcrypt_rounds)
    u.password_created_at = now
    u.password_self_service = self_service
    u.password_expires_at = _expires_at(u, now)
    if (not self_service and conf.change_password_upon_first_use
            and not option(u, IGNORE_CHANGE_PASSWORD)):
        u.password_expires_at = now


def password_expired(u: m.User) -> bool:
    if u.password_expires_at is None or option(u, IGNORE_PASSWORD_EXPIRY):
        return False
    return utcnow() >= u.password_expires_at


def check_self_service_change(s: Session, u: m.User, password: str) -> None:
    """What a user changing its own password must also satisfy (an administrator's
    reset is exempt): lock_password, the minimum age of a self-set password, and
    unique_last_password_count."""
    conf = core.settings()
    if option(u, LOCK_PASSWORD):
        raise errors.BadRequest(
            "You cannot change your password at this time due to password policy disallowing "
            "password changes. Please contact your administrator to reset your password."
        )
    min_age = conf.minimum_password_age
    if u.password_self_service and min_age and u.password_created_at:
        allowed_at = u.password_created_at + timedelta(days=min_age)
        now = utcnow()
        if now < allowed_at:
            raise errors.BadRequest(
                "You cannot change your password at this time due to the minimum password age. "
                f"Once you change your password, it must be used for {min_age} day(s) before it "
                f"can be changed. Please try again in {(allowed_at - now).days} day(s) or contact "
                "your administrator to reset your password."
            )
    count = conf.unique_last_password_count
    if count > 0:
        earlier = s.scalars(
            sa.select(m.PasswordHistory.password_hash).where(m.PasswordHistory.user_id == u.id)
            .order_by(m.PasswordHistory.id.desc()).limit(count - 1)
        ) if count > 1 else []
        for hashed in [u.password_hash, *earlier]:
            if hashed and passwords.check_password(password, hashed, conf.bcrypt_rounds):
                raise errors.BadRequest(
                    "The new password cannot be identical to a previous password. The total "
                    f"number which includes the new password must be unique is {count}."
                )


# -- activity ---------------------------------------------------------------------


def inactive(u: m.User) -> bool:
    """Whether disable_user_account_days_inactive counts this user as disabled."""
    days = core.settings().disable_user_account_days_inactive
    if not days or option(u, IGNORE_INACTIVITY):
        return False
    last = u.last_active_at or (u.created_at.date() if u.created_at else None)
    return last is not None and (utcnow().date() - last).days >= days


def effectively_enabled(u: m.User) -> bool:
    """``enabled`` as the API shows it: an inactive user reads as disabled (Keystone)."""
    return bool(u.enabled) and not inactive(u)


def today() -> date:
    return utcnow().date()


def mark_active(u: m.User) -> None:
    """Record the day of a successful authentication (one write a day at most)."""
    day = today()
    if u.last_active_at == day:
        return
    with db.transaction() as w:
        w.execute(sa.update(m.User).where(m.User.id == u.id).values(last_active_at=day))


# -- the password_expires_at list filter -------------------------------------------


def expiry_filter(raw: str) -> tuple:
    """``password_expires_at={operator}:{timestamp}`` (no operator: eq) as
    (comparison function, naive UTC time); 400s as Keystone's."""
    if ":" in raw[2:4]:
        op, _, stamp = raw.partition(":")
    else:
        op, stamp = "eq", raw
    try:
        when = parse_iso(stamp)
    except ValueError:
        raise errors.BadRequest(
            "Timestamp not in expected format. The server could not comply with the request "
            "since it is either malformed or otherwise incorrect. The client is assumed to be "
            "in error."
        ) from None
    if op not in _OPERATORS:
        raise errors.BadRequest(
            f"The given operator {op} is not valid. It must be one of the following: "
            "'eq', 'neq', 'lt', 'lte', 'gt', or 'gte'."
        )
    return _OPERATORS[op], when
