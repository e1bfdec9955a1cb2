"""First-`up` contents of the identity service, applied idempotently on every `up`:
the Default domain, projects admin/demo/service, roles admin > member > reader
(+ service), users admin and demo, service users, the region and the catalog."""

from __future__ import annotations

import secrets
import string

import sqlalchemy as sa

from onestack.common import db
from onestack.common.credentials import load_credentials, save_credentials
from onestack.config import Config
from onestack.identity import assignments, catalog, core, passwords
from onestack.identity import models as m


def _new_password() -> str:
    # letters and digits only: a leading "-" would read as an option on command lines
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(24))


def _get_or_create(s, model, where: dict, **values):
    row = s.scalar(sa.select(model).filter_by(**where))
    if row is None:
        row = model(**where, **values)
        s.add(row)
        s.flush()
    return row


def _project(s, name: str, description: str) -> m.Project:
    return _get_or_create(
        s, m.Project, {"domain_id": "default", "name": name},
        id=core.new_id(), parent_id="default", is_domain=False, enabled=True,
        description=description, extra={},
    )


def _user(s, name: str, password: str, project: m.Project, rounds: int, extra: dict,
          reset: bool = False) -> m.User:
    """Create the user; on later starts touch its password only when ``reset``
    (an operator configured a new one), so changes made through the API stay."""
    u = s.scalar(sa.select(m.User).where(m.User.domain_id == "default", m.User.name == name))
    if u is None:
        u = m.User(id=core.new_id(), name=name, domain_id="default", enabled=True,
                   default_project_id=project.id, extra=extra, failed_auth_count=0,
                   password_hash=passwords.hash_password(password, rounds))
        s.add(u)
        s.flush()
    elif reset and not passwords.check_password(password, u.password_hash, rounds):
        u.password_hash = passwords.hash_password(password, rounds)
    return u


def _role(s, name: str) -> m.Role:
    return _get_or_create(s, m.Role, {"name": name, "domain_id": m.NULL_DOMAIN},
                          id=core.new_id(), description="", extra={})


def run(conf: Config, services: list) -> dict[str, dict[str, str]]:
    """Make sure the bootstrap contents exist; return the bootstrap users' credentials."""
    creds = load_credentials(conf)
    wanted = {
        "admin": conf.identity.admin_password or creds.get("admin", {}).get("password"),
        "demo": conf.identity.demo_password or creds.get("demo", {}).get("password"),
    }
    for svc in services:
        if svc.SERVICE_USER:
            wanted[svc.SERVICE_USER] = creds.get(svc.SERVICE_USER, {}).get("password")
    wanted = {u: p or _new_password() for u, p in wanted.items()}
    # A password set in the config and not yet applied is enforced, as
    # keystone-manage bootstrap does with --bootstrap-password.
    reset = {
        u: bool(p) and p != creds.get(u, {}).get("password")
        for u, p in (("admin", conf.identity.admin_password), ("demo", conf.identity.demo_password))
    }
    rounds = conf.identity.bcrypt_rounds
    with db.transaction() as s:
        if s.get(m.Project, "default") is None:
            s.add(m.Project(id="default", name="Default", domain_id=m.ROOT_DOMAIN,
                            is_domain=True, enabled=True, description="The default domain",
                            extra={}))
            s.flush()
        projects = {
            "admin": _project(s, "admin", "Bootstrap project for initializing the cloud."),
            "demo": _project(s, "demo", "Demo project for trying the cloud."),
            "service": _project(s, "service", "Project of the services' own users."),
        }
        extra_roles = [r for svc in services for r in getattr(svc, "ROLES", [])]
        roles = {name: _role(s, name) for name in ("admin", "member", "reader", "service", *extra_roles)}
        # admin implies member implies reader, as in Keystone
        for prior, implied in (("admin", "member"), ("member", "reader")):
            if s.get(m.ImpliedRole, (roles[prior].id, roles[implied].id)) is None:
                s.add(m.ImpliedRole(prior_role_id=roles[prior].id, implied_role_id=roles[implied].id))
        admin = _user(s, "admin", wanted["admin"], projects["admin"], rounds, {}, reset["admin"])
        demo = _user(s, "demo", wanted["demo"], projects["demo"], rounds,
                     {"email": "demo@example.com"}, reset["demo"])
        assignments.grant(s, "User", admin.id, "Project", projects["admin"].id, roles["admin"].id)
        assignments.grant(s, "User", admin.id, "Domain", "default", roles["admin"].id)
        assignments.grant(s, "User", admin.id, "System", assignments.SYSTEM, roles["admin"].id)
        assignments.grant(s, "User", demo.id, "Project", projects["demo"].id, roles["member"].id)
        out = {
            "admin": {"password": wanted["admin"], "project": "admin"},
            "demo": {"password": wanted["demo"], "project": "demo"},
        }
        for svc in services:
            name = svc.SERVICE_USER
            if name:
                u = _user(s, name, wanted[name], projects["service"], rounds, {})
                assignments.grant(s, "User", u.id, "Project", projects["service"].id, roles["admin"].id)
                assignments.grant(s, "User", u.id, "Project", projects["service"].id, roles["service"].id)
                out[name] = {"password": wanted[name], "project": "service"}
        _get_or_create(s, m.Region, {"id": conf.identity.region}, description="", extra={})
        for svc in services:
            catalog.ensure_entry(
                s, svc.CATALOG["type"], svc.CATALOG["name"], svc.CATALOG["description"],
                conf.public_url + svc.PREFIX + svc.CATALOG.get("path", ""), conf.identity.region,
            )
    if out != creds:
        save_credentials(conf, out)
    core.changed()
    return out
