"""Login sessions: a server-side record per logged-in browser.

The browser holds only a random secret (the cookie); the row is keyed by its SHA-256 and
holds the user's token, the CSRF secret and what the pages show of the user. A session
idle for longer than ``dashboard.session_timeout`` (or whose token has expired) is gone.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from onestack.common import db
from onestack.common.timeutils import utcnow
from onestack.dashboard import models as m

_timeout = 1800


def configure(conf) -> None:
    global _timeout
    _timeout = max(60, conf.dashboard.session_timeout)


@dataclass
class Login:
    """Who is logged in, as the pages and the backend calls need it."""

    token: str
    token_expires: datetime
    domain: str
    user_id: str
    user_name: str
    project_id: str
    project_name: str
    roles: list[str] = field(default_factory=list)
    csrf: str = ""
    key: str = ""  # the row's id
    region: str = ""
    endpoints: dict = field(default_factory=dict)  # {region: {path prefix: base URL}}

    @property
    def regions(self) -> list[str]:
        return sorted(self.endpoints)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


def _key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(login: Login) -> str:
    """Store ``login``; the cookie secret that names it."""
    secret = secrets.token_urlsafe(32)
    login.key, login.csrf = _key(secret), secrets.token_urlsafe(32)
    with db.transaction() as s:
        s.add(m.Session(id=login.key, token=login.token, token_expires=login.token_expires, csrf=login.csrf,
                        domain=login.domain, user_id=login.user_id, user_name=login.user_name,
                        project_id=login.project_id, project_name=login.project_name, roles=login.roles,
                        region=login.region, endpoints=login.endpoints, last_seen=utcnow()))
        # (sessions nobody ended: dropped as others begin)
        s.execute(sa.delete(m.Session).where(m.Session.last_seen < utcnow() - timedelta(seconds=_timeout)))
    return secret


def find(secret: str | None) -> Login | None:
    """The live session of this cookie (its idle clock restarted), else None."""
    if not secret:
        return None
    key = _key(secret)
    now = utcnow()
    with db.session() as s:  # (a read: most requests write nothing)
        row = s.get(m.Session, key)
    if row is None:
        return None
    if row.last_seen < now - timedelta(seconds=_timeout) or row.token_expires <= now:
        with db.transaction() as s:
            s.execute(sa.delete(m.Session).where(m.Session.id == key))
        return None
    if (now - row.last_seen).total_seconds() > 10:  # (the idle clock, not a write for every page)
        with db.transaction() as s:
            s.execute(sa.update(m.Session).where(m.Session.id == key).values(last_seen=now))
    return Login(token=row.token, token_expires=row.token_expires, domain=row.domain, user_id=row.user_id,
                 user_name=row.user_name, project_id=row.project_id, project_name=row.project_name,
                 roles=list(row.roles or []), csrf=row.csrf, key=row.id, region=row.region,
                 endpoints=dict(row.endpoints or {}))


def rescope(login: Login, scoped: Login) -> None:
    """The session now works in ``scoped``'s project, with its token."""
    with db.transaction() as s:
        row = s.get(m.Session, login.key)
        if row is not None:
            row.token, row.token_expires = scoped.token, scoped.token_expires
            row.project_id, row.project_name, row.roles = scoped.project_id, scoped.project_name, scoped.roles
            row.region, row.endpoints = scoped.region, scoped.endpoints


def set_region(login: Login, region: str) -> None:
    """The session's pages now ask ``region``'s endpoints."""
    with db.transaction() as s:
        row = s.get(m.Session, login.key)
        if row is not None:
            row.region = region


def delete(login: Login) -> None:
    with db.transaction() as s:
        s.execute(sa.delete(m.Session).where(m.Session.id == login.key))
