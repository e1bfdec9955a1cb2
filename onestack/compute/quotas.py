"""Compute quotas: limits (defaults, the ``default`` quota class, per-project
overrides), usage counted from the tables, and the checks Nova makes.

-1 means unlimited. Defaults come from the config (``compute.quota_*``); once
the ``default`` quota class is updated through the API its values win, as in
Nova. Usage is counted, never tracked: instances/cores/ram from the
non-deleted instances of the project (each row's flavor snapshot), server
groups from their table, key pairs per user.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from onestack.common import errors
from onestack.compute import models as m
from onestack.compute import settings

# The resources of a project's quota set, in Nova's order.
RESOURCES = ("instances", "cores", "ram", "metadata_items", "injected_files", "injected_file_content_bytes",
             "injected_file_path_bytes", "key_pairs", "server_groups", "server_group_members")
# Nova-network quotas, shown before microversion 2.36 (unlimited unless set; nothing counts them).
NETWORK_RESOURCES = ("fixed_ips", "floating_ips", "security_groups", "security_group_rules")
MAX = 0x7FFFFFFF

_CLASS = "class:"  # quota class rows are stored under this prefix (no project id has a colon)


def _rows(s: Session, owner: str) -> dict[str, int]:
    return {r.resource: r.hard_limit for r in s.scalars(sa.select(m.Quota).where(m.Quota.project_id == owner))}


def class_limits(s: Session, name: str = "default") -> dict[str, int]:
    """The limits of quota class ``name``: the config's defaults, then what the
    ``default`` class and (for another class) that class set through the API."""
    out = {r: int(settings.current.quotas.get(r, -1)) for r in RESOURCES}
    for r in NETWORK_RESOURCES:
        out[r] = -1
    out.update({k: v for k, v in _rows(s, _CLASS + "default").items() if k in out})
    if name != "default":
        out.update({k: v for k, v in _rows(s, _CLASS + name).items() if k in out})
    return out


def defaults(s: Session) -> dict[str, int]:
    return class_limits(s, "default")


def owner(project_id: str, user_id: str | None = None) -> str:
    """The key limits are stored under: a project, or one user in a project."""
    return f"{project_id}:user:{user_id}" if user_id else project_id


def limits(s: Session, project_id: str, user_id: str | None = None) -> dict[str, int]:
    """The limits of ``project_id``: defaults overridden by the project's own (and,
    with ``user_id``, by that user's within the project)."""
    out = defaults(s)
    out.update({k: v for k, v in _rows(s, project_id).items() if k in out})
    if user_id:
        out.update({k: v for k, v in _rows(s, owner(project_id, user_id)).items() if k in out})
    return out


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
    """Store limits under ``key`` (``owner(project, user)`` or a class key)."""
    for resource, limit in values.items():
        row = s.get(m.Quota, (key, resource))
        if row is None:
            s.add(m.Quota(project_id=key, resource=resource, hard_limit=int(limit)))
        else:
            row.hard_limit = int(limit)
    s.flush()


def set_class_limits(s: Session, name: str, values: dict[str, int]) -> None:
    set_limits(s, _CLASS + name, values)


def reset(s: Session, project_id: str, user_id: str | None = None) -> None:
    """Back to the defaults: forget the project's own limits (and its users'), or
    with ``user_id`` only that user's."""
    if user_id:
        s.execute(sa.delete(m.Quota).where(m.Quota.project_id == owner(project_id, user_id)))
        return
    s.execute(sa.delete(m.Quota).where(sa.or_(m.Quota.project_id == project_id,
                                              m.Quota.project_id.like(f"{project_id}:user:%"))))


def check_servers(s: Session, project_id: str, count: int, vcpus: int, ram: int) -> None:
    """403 unless ``project_id`` may add ``count`` servers of ``vcpus`` cores and
    ``ram`` MiB each (the flavor's), worded as Nova words it. With ``count`` 0 (a
    resize), ``vcpus`` and ``ram`` are the growth of the one server."""
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
    limit = limits(s, project_id)["server_groups"]
    if limit >= 0 and usage(s, project_id)["server_groups"] + adding > limit:
        raise errors.Forbidden("Quota exceeded, too many server groups.")


def check_group_members(s: Session, project_id: str, members_now: int, adding: int = 1) -> None:
    """403 when a server group of ``project_id`` would hold more servers than allowed."""
    limit = limits(s, project_id)["server_group_members"]
    if limit >= 0 and members_now + adding > limit:
        raise errors.Forbidden("Quota exceeded, too many servers in group")
