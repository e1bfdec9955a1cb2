"""Who may do what: Swift's keystoneauth rules.

* The owner of ``AUTH_<project_id>`` is a user of that project holding an
  operator role (``admin`` or ``member``); ``reader`` may only read.
* A reseller admin (role ``ResellerAdmin``, or the ``service`` role of the
  services' own users) may use every account, and alone may set account quotas.
* Others only through container ACLs: ``X-Container-Read`` lets them read
  objects (``.r:*`` anyone, even anonymous; ``.r:<host>`` by Referer) and, with
  ``.rlistings``, list the container; ``X-Container-Write`` lets them write
  objects. ACL entries name ``<project>:<user>`` (ids, or names in the default
  domain), with ``*`` for any, or a role name held in the token's project.
"""

from __future__ import annotations

from urllib.parse import urlparse

from onestack.common import errors

OPERATOR_ROLES = {"admin", "member"}
READER_ROLES = {"reader"}
RESELLER_ROLES = {"reselleradmin", "service"}
RESELLER_PREFIX = "AUTH_"


def roles(ctx) -> set[str]:
    return {r.lower() for r in ctx.roles} if ctx else set()


def is_reseller(ctx) -> bool:
    return bool(roles(ctx) & RESELLER_ROLES)


def owner_level(ctx, account: str) -> str | None:
    """'write' (operator or reseller), 'read' (reader of the project) or None."""
    if ctx is None:
        return None
    if is_reseller(ctx):
        return "write"
    if ctx.project_id and account == RESELLER_PREFIX + ctx.project_id:
        if roles(ctx) & OPERATOR_ROLES:
            return "write"
        if roles(ctx) & READER_ROLES:
            return "read"
    return None


def deny(ctx, what: str) -> errors.ApiError:
    """401 for anonymous requests (they might authenticate), 403 otherwise."""
    if ctx is None:
        return errors.Unauthorized(f"Authentication required to {what}.")
    return errors.Forbidden(f"Access was denied to {what}.")


def parse_acl(value: str | None) -> list[str]:
    return [e.strip() for e in (value or "").split(",") if e.strip()]


def _referrer_allowed(entries: list[str], referer: str | None) -> bool:
    host = urlparse(referer).hostname if referer else None
    allowed = False
    for e in entries:
        if not e.startswith((".r:", ".referrer:")):
            continue
        target = e.split(":", 1)[1]
        negate = target.startswith("-")
        target = target.lstrip("-")
        if target == "*" or (host and (host == target or (target.startswith(".") and host.endswith(target)))):
            allowed = not negate
    return allowed


def _user_allowed(entries: list[str], ctx) -> bool:
    if ctx is None:
        return False
    for e in entries:
        if e.startswith("."):
            continue
        if ":" in e:
            project, user = e.split(":", 1)
            in_default = ctx.project_domain_id == "default" and ctx.user_domain_id == "default"
            project_ok = project == "*" or project == ctx.project_id or (in_default and project == ctx.project_name)
            user_ok = user == "*" or user == ctx.user_id or (in_default and user == ctx.user_name)
            if project_ok and user_ok:
                return True
        elif e.lower() in roles(ctx):  # a bare entry is a role in the token's project
            return True
    return False


def may_read_objects(ctx, account: str, read_acl: str | None, referer: str | None) -> bool:
    if owner_level(ctx, account):
        return True
    entries = parse_acl(read_acl)
    return _referrer_allowed(entries, referer) or _user_allowed(entries, ctx)


def may_list(ctx, account: str, read_acl: str | None, referer: str | None) -> bool:
    if owner_level(ctx, account):
        return True
    entries = parse_acl(read_acl)
    if _user_allowed(entries, ctx):
        return True
    return ".rlistings" in entries and _referrer_allowed(entries, referer)


def may_write_objects(ctx, account: str, write_acl: str | None) -> bool:
    if owner_level(ctx, account) == "write":
        return True
    return _user_allowed(parse_acl(write_acl), ctx)


def check_acl_syntax(header: str, value: str) -> None:
    """Refuse ACL values Swift would refuse (a 400 naming the entry)."""
    for e in parse_acl(value):
        if e.startswith(".") and not (e == ".rlistings" or e.startswith((".r:", ".referrer:"))):
            raise errors.BadRequest(f"Invalid entry {e!r} in {header}: unknown dot-element.")
        if header.lower() == "x-container-write" and e.startswith((".r:", ".referrer:", ".rlistings")):
            raise errors.BadRequest(f"Referrer entries like {e!r} are not allowed in {header}.")
