"""What every part of the identity service shares: settings, keys, policy,
lookups that 404 cleanly, and the change hook that keeps caches honest.

Caches of validated tokens (here and in ``common.auth``) are keyed on the identity
revision, a counter in the database that every change bumps: each validation reads
it (one row by key), so a change made by any process (an API worker, ``onestack``
commands) is seen by every process at once, with no time window."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from onestack.common import auth, bus, db, errors
from onestack.common.policy import Enforcer
from onestack.identity import models as m
from onestack.identity.policies import DEFAULTS
from onestack.identity.tokens import KeyRepository


@dataclass
class Settings:
    token_expiration: int = 3600
    bcrypt_rounds: int = 12
    lockout_failure_attempts: int = 0
    lockout_duration: int = 1800
    # Keystone's [security_compliance] (0 / empty / False: off)
    password_expires_days: int = 0
    unique_last_password_count: int = 0
    minimum_password_age: int = 0
    password_regex: str = ""
    password_regex_description: str = ""
    change_password_upon_first_use: bool = False
    disable_user_account_days_inactive: int = 0
    max_name_length: int = 255
    list_limit: int = 0
    region: str = "RegionOne"


class State:
    """The identity service's process-wide state, set once by ``configure``."""

    settings = Settings()
    keys: KeyRepository | None = None
    credential_keys: KeyRepository | None = None
    enforcer: Enforcer | None = None


def configure(
    settings: Settings, state_dir: Path, policy_dir: Path | None, max_active_keys: int = 3
) -> None:
    State.settings = settings
    State.keys = KeyRepository(state_dir / "fernet-keys", max_active_keys)
    State.credential_keys = KeyRepository(state_dir / "credential-keys", max_active_keys)
    State.keys.setup()
    State.credential_keys.setup()
    State.enforcer = Enforcer("identity", DEFAULTS, policy_dir)


def settings() -> Settings:
    return State.settings


def enforcer() -> Enforcer:
    return State.enforcer


def new_id() -> str:
    return uuid.uuid4().hex


def revision() -> int:
    """The identity revision now in the database (what cached validations are keyed on)."""
    with db.engine().connect() as c:
        return c.scalar(sa.select(m.Revision.value).where(m.Revision.id == 1)) or 0


def bump(s: Session) -> None:
    """Advance the revision inside the transaction ``s`` (with the change it stands for)."""
    done = s.execute(sa.update(m.Revision).where(m.Revision.id == 1).values(value=m.Revision.value + 1))
    if done.rowcount == 0:
        s.add(m.Revision(id=1, value=1))


def changed(event: str | None = None, payload: dict | None = None) -> None:
    """Call after any identity write has committed (never inside its transaction): advances
    the revision, so every process drops its cached validations, and notifies."""
    with db.transaction() as s:
        bump(s)
    auth.clear_cache()
    if event:
        bus.get().notify(f"identity.{event}", payload or {}, publisher="identity")


# -- lookups -------------------------------------------------------------


def get_domain(s: Session, domain_id: str) -> m.Project:
    d = s.get(m.Project, domain_id)
    if d is None or not d.is_domain:
        raise errors.NotFound(f"Could not find domain: {domain_id}.")
    return d


def get_domain_by_name(s: Session, name: str) -> m.Project:
    d = s.scalar(
        sa.select(m.Project).where(m.Project.is_domain.is_(True), m.Project.name == name)
    )
    if d is None:
        raise errors.NotFound(f"Could not find domain: {name}.")
    return d


def fetch(s: Session, model, row_id: str, kind: str):
    """The row of ``model`` with this primary key, or a 404 naming ``kind``."""
    row = s.get(model, row_id)
    if row is None:
        raise errors.NotFound(f"Could not find {kind}: {row_id}.")
    return row


def get_project(s: Session, project_id: str) -> m.Project:
    return fetch(s, m.Project, project_id, "project")


def get_user(s: Session, user_id: str) -> m.User:
    return fetch(s, m.User, user_id, "user")


def get_group(s: Session, group_id: str) -> m.Group:
    return fetch(s, m.Group, group_id, "group")


def get_role(s: Session, role_id: str) -> m.Role:
    return fetch(s, m.Role, role_id, "role")


# Keystone's schemas cap project and domain names at 64 characters (255 for the rest).
_NAME_CAPS = {"project": 64, "domain": 64}


def check_name(name, what: str) -> str:
    """Names: non-blank strings no longer than identity.max_name_length
    (nor than Keystone's own cap for the kind, which clients rely on)."""
    if not isinstance(name, str) or not name.strip():
        raise errors.BadRequest(f"Invalid input for field 'name': {what} name must be a non-empty string.")
    limit = min(State.settings.max_name_length, _NAME_CAPS.get(what, State.settings.max_name_length))
    if len(name) > limit:
        raise errors.BadRequest(
            f"Invalid input for field 'name': {what} name is longer than {limit} characters."
        )
    return name
