"""Compute quotas: limits (defaults, per-project overrides, quota classes, per-user
limits), usage counted from the tables, and the checks Nova makes.

-1 means unlimited. A project's limits are identity's unified limits of service
``compute``, under Nova's unified-limit names (``servers``, ``class:VCPU``,
``class:MEMORY_MB``, ``server_metadata_items``, ``server_key_pairs``...): the
registered limits are the defaults (registered from the config, ``compute.quota_*``,
at start; the ``default`` quota class writes them), a project limit overrides one.
Limits of one user within a project and of quota classes other than ``default``
have no place in unified limits and stay in this service's quota table. Usage is
counted, never tracked: instances/cores/ram from the non-deleted instances of the
project (each row's flavor snapshot), server groups from their table, key pairs per user.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from onestack.common import db, errors
from onestack.common.clients import ServiceAuth
from onestack.common.limits import Limits
from onestack.compute import models as m
from onestack.compute import settings

# The resources of a project's quota set, in Nova's order.
RESOURCES = ("instances", "cores", "ram", "metadata_items", "injected_files", "injected_file_content_bytes",
             "injected_file_path_bytes", "key_pairs", "server_groups", "server_group_members")
# Their names in unified limits (nova/limit/local.py and placement.py).
UNIFIED = {"instances": "servers", "cores": "class:VCPU", "ram": "class:MEMORY_MB",
           "metadata_items": "server_metadata_items", "injected_files": "server_injected_files",
           "injected_file_content_bytes": "server_injected_file_content_bytes",
           "injected_file_path_bytes": "server_injected_file_path_bytes", "key_pairs": "server_key_pairs",
           "server_groups": "server_groups", "server_group_members": "server_group_members"}
# Nova-network quotas, shown before microversion 2.36 (unlimited unless set; nothing counts them).
NETWORK_RESOURCES = ("fixed_ips", "floating_ips", "security_groups", "security_group_rules")
MAX = 0x7FFFFFFF

_CLASS = "class:"  # quota class rows are stored under this prefix (no project id has a colon)

unified: Limits | None = None  # made at set-up


def configure(conf) -> None:
    global unified
    unified = Limits(lambda: ServiceAuth.for_service(conf, "nova"), "compute", UNIFIED,
                     {r: int(settings.current.quotas.get(r, -1)) for r in RESOURCES})


def _rows(s: Session, owner: str) -> dict[str, int]:
    return {r.resource: r.hard_limit for r in s.scalars(sa.select(m.Quota).where(m.Quota.project_id == owner))}


def class_limits(s: Session, name: str = "default") -> dict[str, int]:
    """The limits of quota class ``name``: the registered limits (and the nova-network
    ones the ``default`` class set), then what that other class set through the API."""
    out = unified.defaults()
    for r in NETWORK_RESOURCES:
        out[r] = -1
    out.update({k: v for k, v in _rows(s, _CLASS + "default").items() if k in NETWORK_RESOURCES})
    if name != "default":
        out.update({k: v for k, v in _rows(s, _CLASS + name).items() if k in out})
    return out


def defaults(s: Session) -> dict[str, int]:
    return class_limits(s, "default")


def owner(project_id: str, user_id: str | None = None) -> str:
    """The key limits are stored under: a project, or one user in a project."""
    return f"{project_id}:user:{user_id}" if user_id else project_id


def prefetch(project_id: str | None) -> None:
    """Ask identity for the project's limits before a write transaction checks them."""
    if project_id:
        unified.limits(project_id)


def limits(s: Session, project_id: str, user_id: str | None = None) -> dict[str, int]:
    """The limits of ``project_id``: defaults overridden by the project's own (and,
    with ``user_id``, by that user's within the project)."""
    out = defaults(s)
    out.update(unified.limits(project_id))
    out.update({k: v for k, v in _rows(s, project_id).items() if k in NETWORK_RESOURCES})
    if user_id:
        out.update({k: v for k, v in _rows(s, owner(project_id, user_id)).items() if k in out})
    return out


def adopt_legacy_quotas() -> None:
    """Project limits (and the ``default`` class's) set in this service's quota table
    before they moved to identity: moved there (once: the rows go)."""
    with db.session() as s:
        rows = [r for r in s.scalars(sa.select(m.Quota).where(m.Quota.resource.in_(UNIFIED)))
                if ":" not in r.project_id]
        defaults = {k: v for k, v in _rows(s, _CLASS + "default").items() if k in UNIFIED}
    if not rows and not defaults:
        return
    projects: dict[str, dict[str, int]] = {}
    for r in rows:
        projects.setdefault(r.project_id, {})[r.resource] = r.hard_limit
    done = unified.adopt(projects, defaults)
    with db.transaction() as s:
        s.execute(sa.delete(m.Quota).where(m.Quota.project_id.in_(done + [_CLASS + "default"]),
                                           m.Quota.resource.in_(UNIFIED)))


def _flavor_size(f: dict | None) -> tuple[int, int]:
    f = f or {}
    vcpus, ram = int(f.get("vcpus") or 0), int(f.get("memory_mb") or 0)
    new = f.get("new")
    if isinstance(new, dict):  # resizing: count the larger of the two, as the resize reserved it
        vcpus, ram = max(vcpus, int(new.get("vcpus") or 0)), max(ram, int(new.get("memory_mb") or 0))
    return vcpus, ram


def usage(s: Session, project_id: str, user_id: str | None = None) -> dict[str, int]:
    """What ``project_id`` uses now (key pairs: those of ``user_id``, when given)."""
    n = cores = ram = 0
    for flavor in s.scalars(sa.select(m.Instance.flavor).where(m.Instance.project_id == project_id,
                                                               m.Instance.deleted.is_(False))):
        n += 1
        v, r = _flavor_size(flavor)
        cores += v
        ram += r
    groups = s.scalar(sa.select(sa.func.count()).select_from(m.ServerGroup)
                      .where(m.ServerGroup.project_id == project_id)) or 0
    keys = 0
    if user_id:
        keys = s.scalar(sa.select(sa.func.count()).select_from(m.KeyPair).where(m.KeyPair.user_id == user_id)) or 0
    out = {r: 0 for r in RESOURCES + NETWORK_RESOURCES}
    out.update(instances=n, cores=cores, ram=ram, server_groups=groups, key_pairs=keys)
    return out


def set_limits(s: Session, key: str, values: dict[str, int]) -> None:
    """Store limits under ``key`` here (a user's in a project, a class's, or the
    nova-network ones of a project: none of them are unified limits)."""
    for resource, limit in values.items():
        row = s.get(m.Quota, (key, resource))
        if row is None:
            s.add(m.Quota(project_id=key, resource=resource, hard_limit=int(limit)))
        else:
            row.hard_limit = int(limit)
    s.flush()


def set_project_limits(project_id: str, values: dict[str, int]) -> None:
    """The project's own limits: unified limits in identity (asked outside any write
    transaction of ours: identity's writes must not wait for it), nova-network ones here."""
    unified.set(project_id, {k: v for k, v in values.items() if k in UNIFIED})
    local = {k: v for k, v in values.items() if k not in UNIFIED}
    if local:
        with db.transaction() as s:
            set_limits(s, project_id, local)


def set_class_limits(name: str, values: dict[str, int]) -> None:
    """The ``default`` class's limits are the registered limits; other classes' stay here."""
    if name == "default":
        unified.set_defaults({k: v for k, v in values.items() if k in UNIFIED})
        values = {k: v for k, v in values.items() if k not in UNIFIED}
    if values:
        with db.transaction() as s:
            set_limits(s, _CLASS + name, values)


def reset(project_id: str, user_id: str | None = None) -> None:
    """Back to the defaults: forget the project's own limits (and its users'), or
    with ``user_id`` only that user's."""
    if not user_id:
        unified.reset(project_id)
    with db.transaction() as s:
        if user_id:
            s.execute(sa.delete(m.Quota).where(m.Quota.project_id == owner(project_id, user_id)))
            return
        s.execute(sa.delete(m.Quota).where(sa.or_(m.Quota.project_id == project_id,
                                                  m.Quota.project_id.like(f"{project_id}:user:%"))))


def serialize(s: Session, project_id: str) -> None:
    """One count-and-create at a time per project (till ``s`` commits), so that concurrent
    creates cannot each see room for themselves."""
    db.serialize(s, f"compute-quota:{project_id}")


def check_servers(s: Session, project_id: str, count: int, vcpus: int, ram: int) -> None:
    """403 unless ``project_id`` may add ``count`` servers of ``vcpus`` cores and
    ``ram`` MiB each (the flavor's), worded as Nova words it. With ``count`` 0 (a
    resize), ``vcpus`` and ``ram`` are the growth of the one server."""
    serialize(s, project_id)
    lim = limits(s, project_id)
    used = usage(s, project_id)
    n = max(count, 1)
    requested = {"instances": count, "cores": n * vcpus, "ram": n * ram}
    overs = [r for r, want in requested.items()
             if want > 0 and lim[r] >= 0 and used[r] + want > lim[r]]
    if not overs:
        return
    join = ", ".join
    raise errors.Forbidden(
        f"Quota exceeded for {join(overs)}: Requested {join(str(requested[r]) for r in overs)}, but already "
        f"used {join(str(used[r]) for r in overs)} of {join(str(lim[r]) for r in overs)} {join(overs)}")


def check_metadata(s: Session, project_id: str, n: int) -> None:
    """403 when a server would carry more than ``metadata_items`` metadata items."""
    limit = limits(s, project_id)["metadata_items"]
    if 0 <= limit < n:
        raise errors.Forbidden(f"Maximum number of metadata items exceeds {limit}")


def check_image_metadata(s: Session, project_id: str, n: int) -> None:
    """403 when a server's snapshot would be given more properties than ``metadata_items``."""
    limit = limits(s, project_id)["metadata_items"]
    if 0 <= limit < n:
        raise errors.Forbidden("Image metadata limit exceeded")


def check_server_groups(s: Session, project_id: str, adding: int = 1) -> None:
    serialize(s, project_id)
    limit = limits(s, project_id)["server_groups"]
    if limit >= 0 and usage(s, project_id)["server_groups"] + adding > limit:
        raise errors.Forbidden("Quota exceeded, too many server groups.")


def check_group_members(s: Session, project_id: str, members_now: int, adding: int = 1) -> None:
    """403 when a server group of ``project_id`` would hold more servers than allowed."""
    limit = limits(s, project_id)["server_group_members"]
    if limit >= 0 and members_now + adding > limit:
        raise errors.Forbidden("Quota exceeded, too many servers in group")
