"""Network service state and logic: the resource store, visibility, quotas,
and what happens on each operation of networks, subnets, subnet pools, ports,
routers, floating IPs, security groups and quotas.

Resources are JSON documents (models.Resource) holding exactly the Neutron
attributes; the API layer (api/) only filters fields and formats errors.
"""

from __future__ import annotations

import ipaddress
import random
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from onestack.common import bus, db, errors
from onestack.common.limits import Limits
from onestack.common.policy import Enforcer
from onestack.common.timeutils import utcnow
from onestack.network import ipam
from onestack.network import models as m
from onestack.network.policies import DEFAULTS

QUOTA_KEYS = ["network", "subnet", "subnetpool", "port", "router", "floatingip",
              "security_group", "security_group_rule", "rbac_policy"]
KINDS = {"networks": "network", "subnets": "subnet", "subnetpools": "subnetpool", "ports": "port",
         "routers": "router", "floatingips": "floatingip", "security-groups": "security_group",
         "security-group-rules": "security_group_rule", "rbac-policies": "rbac_policy"}
NOT_FOUND = {"network": "NetworkNotFound", "subnet": "SubnetNotFound", "subnetpool": "SubnetPoolNotFound",
             "port": "PortNotFound", "router": "RouterNotFound", "floatingip": "FloatingIPNotFound",
             "security_group": "SecurityGroupNotFound", "security_group_rule": "SecurityGroupRuleNotFound",
             "rbac_policy": "RbacPolicyNotFound"}
LABEL = {"network": "Network", "subnet": "Subnet", "subnetpool": "Subnetpool", "port": "Port",
         "router": "Router", "floatingip": "Floating IP", "security_group": "Security group",
         "security_group_rule": "Security group rule", "rbac_policy": "RBAC policy"}
AUTO_PORT_OWNERS = ("network:dhcp",)
ROUTER_INTERFACE = "network:router_interface"
ROUTER_GATEWAY = "network:router_gateway"
FLOATINGIP_OWNER = "network:floatingip"


@dataclass
class Settings:
    default_mtu: int = 1450
    external_mtu: int = 1500
    vni_min: int = 1
    vni_max: int = 16777215
    quotas: dict[str, int] = field(default_factory=lambda: {
        "network": 100, "subnet": 100, "subnetpool": -1, "port": 500, "router": 10, "floatingip": 50,
        "security_group": 10, "security_group_rule": 100, "rbac_policy": 10})
    list_max: int = 1000


class State:
    settings = Settings()
    enforcer: Enforcer | None = None
    limits: Limits | None = None  # the quotas, kept in identity's unified limits


def configure(settings: Settings, policy_dir: Path | None, limits: Limits | None = None) -> None:
    State.settings = settings
    State.limits = limits
    State.enforcer = Enforcer("network", DEFAULTS, policy_dir)


def authorize(rule: str, ctx, target: dict | None = None) -> None:
    if not State.enforcer.allowed(rule, ctx, target or {}):
        raise errors.Forbidden(f"({rule}) is disallowed by policy", type="PolicyNotAuthorized")


def allowed(rule: str, ctx, target: dict | None = None) -> bool:
    return State.enforcer.allowed(rule, ctx, target or {})


def now() -> str:
    return utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id() -> str:
    return str(uuid.uuid4())


# --- the store ----------------------------------------------------------------


def rows(s: Session, kind: str, **where) -> list[m.Resource]:
    q = sa.select(m.Resource).where(m.Resource.kind == kind)
    if "project_id" in where:
        q = q.where(m.Resource.project_id == where.pop("project_id"))
    out = list(s.scalars(q.order_by(m.Resource.created_at, m.Resource.id)))
    if where:
        out = [r for r in out if all(r.data.get(k) == v for k, v in where.items())]
    return out


def docs(s: Session, kind: str, **where) -> list[dict]:
    return [r.data for r in rows(s, kind, **where)]


def find(s: Session, kind: str, rid: str) -> m.Resource | None:
    r = s.get(m.Resource, str(rid))
    return r if r is not None and r.kind == kind else None


def not_found(kind: str, rid: str) -> errors.NotFound:
    if kind == "rbac_policy":  # Neutron's wording: it cannot know the type of a policy it did not find
        return errors.NotFound(f"RBAC policy of type unknown with ID {rid} not found", type=NOT_FOUND[kind])
    return errors.NotFound(f"{LABEL[kind]} {rid} could not be found.", type=NOT_FOUND[kind])


def add(s: Session, kind: str, doc: dict) -> dict:
    t = now()
    doc.setdefault("id", new_id())
    doc.setdefault("description", "")
    doc.setdefault("tags", [])
    doc.update(created_at=t, updated_at=t, revision_number=0)
    doc["tenant_id"] = doc.get("project_id")
    s.add(m.Resource(id=doc["id"], kind=kind, project_id=doc.get("project_id"), data=doc, created_at=utcnow()))
    s.flush()
    _changed(s, kind)
    track(s, kind, "create", doc)
    return doc


def save(s: Session, row: m.Resource, changes: dict, action: str = "update") -> dict:
    doc = {**row.data, **changes}
    doc["updated_at"] = now()
    doc["revision_number"] = int(row.data.get("revision_number", 0)) + 1
    row.data = doc
    s.flush()
    _changed(s, row.kind)
    track(s, row.kind, action, doc)
    return doc


def remove(s: Session, row: m.Resource) -> None:
    doc = row.data
    s.delete(row)
    s.flush()
    _changed(s, row.kind)
    track(s, row.kind, "delete", doc)


# --- change notifications ----------------------------------------------------------
# Every write records what it changed in its session; once the transaction commits,
# one notification per change goes out on the bus (``network.<kind>.<action>``, e.g.
# ``network.port.update``), so the agents resync within milliseconds. A rolled-back
# transaction notifies nothing. Agent heartbeats are not changes of the cloud.

QUIET_KINDS = ("agent", "meta")
_PENDING = "network_changes"


def track(s: Session, kind: str, action: str, doc: dict) -> None:
    if kind in QUIET_KINDS:
        return
    payload = {"id": doc.get("id"), "kind": kind, "action": action}
    if kind == "port":
        payload.update({k: doc.get(k) for k in ("network_id", "device_id", "device_owner", "status",
                                               "binding:host_id")})
    elif kind in ("subnet",):
        payload["network_id"] = doc.get("network_id")
    elif kind == "floatingip":  # compute shows floating IPs among a server's addresses
        payload.update({k: doc.get(k) for k in ("port_id", "floating_ip_address", "fixed_ip_address")})
    s.info.setdefault(_PENDING, {})[(kind, payload["id"], action)] = payload


def _after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    b = bus.get()
    for (kind, _, action), payload in pending.items():
        b.notify(f"network.{kind}.{action}", payload, publisher="network")


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


sa.event.listen(Session, "after_commit", _after_commit)
sa.event.listen(Session, "after_soft_rollback", lambda session, previous: _after_rollback(session))


# --- who sees what -------------------------------------------------------------


def visible(s: Session, ctx, kind: str, doc: dict) -> bool:
    """Admins see everything, projects their own resources; a network also whom an RBAC
    policy grants it (shared or external), a subnet whom its network is shared with.
    An RBAC policy itself is seen by its owner only (and admins), as in Neutron."""
    if ctx.is_admin or doc.get("project_id") == ctx.project_id:
        return True
    if kind == "network":
        return bool(granted(s, doc["id"], ctx.project_id))
    if kind == "subnet":
        return SHARED in granted(s, doc["network_id"], ctx.project_id)
    if kind == "subnetpool":
        return bool(doc.get("shared"))
    return False


def get(s: Session, ctx, kind: str, rid: str) -> m.Resource:
    row = find(s, kind, rid)
    if row is None or not visible(s, ctx, kind, row.data):
        raise not_found(kind, rid)
    return row


def get_own(s: Session, ctx, kind: str, rid: str, rule: str = "update") -> m.Resource:
    """A resource the caller may change: 404 when invisible, 403 when only visible."""
    row = get(s, ctx, kind, rid)
    authorize(rule, ctx, {"project_id": row.data.get("project_id") or ""})
    return row


def owner_for(ctx, body: dict) -> str:
    pid = body.get("project_id") or body.get("tenant_id") or ctx.project_id
    if body.get("project_id") and body.get("tenant_id") and body["project_id"] != body["tenant_id"]:
        raise ipam.bad("project_id and tenant_id do not match.")
    authorize("create", ctx, {"project_id": pid or ""})
    return pid


# --- RBAC grants -------------------------------------------------------------------
# Neutron's rbac-policies: the owner of a network (or an admin) grants one project, or
# every project ("*"), access to it: ``access_as_shared`` (see it and its subnets, put
# ports on it) or ``access_as_external`` (see it, as an external network: router
# gateways and floating IPs). ``shared=True`` on a network is a "*" access_as_shared
# policy and ``router:external=True`` a "*" access_as_external one: both rows exist, as
# Neutron makes them. A network's ``shared`` is computed per caller: granted to it, or
# to everyone. The policies are rows of kind ``rbac_policy``; what they grant is read
# once per session (and again after a session writes a policy).

SHARED, EXTERNAL, WILDCARD = "access_as_shared", "access_as_external", "*"
_GRANTS = "network_rbac_grants"


def _changed(s: Session, kind: str) -> None:
    if kind == "rbac_policy":
        s.info.pop(_GRANTS, None)


def policies_on(s: Session, object_id: str) -> list[dict]:
    """The RBAC policies of one object."""
    cache = s.info.get(_GRANTS)
    if cache is None:
        cache = {}
        for d in docs(s, "rbac_policy"):
            cache.setdefault(d["object_id"], []).append(d)
        s.info[_GRANTS] = cache
    return cache.get(object_id, [])


def granted(s: Session, object_id: str, project_id: str | None) -> set[str]:
    """The actions RBAC policies grant ``project_id`` on an object (to it or to all)."""
    return {p["action"] for p in policies_on(s, object_id) if p["target_tenant"] in (WILDCARD, project_id)}


# --- quotas ---------------------------------------------------------------------


def quota_limits(project_id: str) -> dict[str, int]:
    """The project's limits, from identity's unified limits (asked again after a few seconds)."""
    return State.limits.limits(project_id)


def quota_defaults() -> dict[str, int]:
    return State.limits.defaults()


def quota_projects() -> list[str]:
    """The projects with a limit of their own."""
    return State.limits.projects()


def set_quotas(project_id: str, limits: dict[str, int]) -> None:
    State.limits.set(project_id, limits)


def reset_quotas(project_id: str) -> None:
    """Back to the defaults."""
    State.limits.reset(project_id)


def adopt_legacy_quotas() -> None:
    """Limits set in this service's quota table before they moved to identity: moved there
    (once: the rows go)."""
    with db.session() as s:
        rows = list(s.scalars(sa.select(m.Quota)))
    if not rows:
        return
    projects: dict[str, dict[str, int]] = {}
    for r in rows:
        projects.setdefault(r.project_id, {})[r.resource] = r.hard_limit
    done = State.limits.adopt(projects)
    with db.transaction() as s:
        s.execute(sa.delete(m.Quota).where(m.Quota.project_id.in_(done)))


def used(s: Session, project_id: str, kind: str) -> int:
    return int(s.scalar(sa.select(sa.func.count()).select_from(m.Resource).where(
        m.Resource.kind == kind, m.Resource.project_id == project_id)) or 0)


_UNCHECKED: ContextVar[bool] = ContextVar("network_quota_unchecked", default=False)


def check_quota(s: Session, project_id: str | None, kind: str, count: int = 1) -> None:
    if not project_id or _UNCHECKED.get() or State.limits is None:  # (None: a store without identity)
        return
    # one count-and-insert at a time per project, so concurrent creates cannot both fit
    db.serialize(s, f"network-quota:{project_id}")
    limit = State.limits.held(project_id).get(kind, -1)
    if limit >= 0 and used(s, project_id, kind) + count > limit:
        raise errors.Conflict(f"Quota exceeded for resources: ['{kind}'].", type="OverQuota")


# --- networks --------------------------------------------------------------------

PROVIDER = ("provider:network_type", "provider:physical_network", "provider:segmentation_id")


def _next_vni(s: Session) -> int:
    taken = {d.get("provider:segmentation_id") for d in docs(s, "network")
             if d.get("provider:network_type") == "vxlan"}
    for v in range(State.settings.vni_min, State.settings.vni_max + 1):
        if v not in taken:
            return v
    raise errors.ServiceUnavailable("No tenant network is available for allocation.",
                                    type="NoNetworkAvailable")


IPV4_MIN_MTU, IPV6_MIN_MTU = 68, 1280
TUNNELS = ("vxlan", "geneve", "gre")


def check_mtu(value, ntype: str) -> int:
    """Neutron's rule for a network's ``mtu``: an integer, not negative, and no more
    than its segment carries (0: that most)."""
    try:
        mtu = int(value)  # Neutron's convert_to_int: "1400" is taken, "abc" and null are not
    except (TypeError, ValueError):
        raise ipam.bad(f"'{value}' is not an integer.") from None
    if mtu < 0:
        raise errors.BadRequest(f"Invalid input for mtu. Reason: '{value}' should be non-negative.")
    most = State.settings.default_mtu if ntype in TUNNELS else State.settings.external_mtu
    if mtu > most:
        raise ipam.bad(f"Requested MTU is too big, maximum is {most}.")
    return mtu or most


def check_mtu_fits(net_id: str, mtu: int, versions) -> None:
    """409 when subnets of these IP versions could not work at this MTU."""
    need = max((IPV4_MIN_MTU if v == 4 else IPV6_MIN_MTU for v in versions), default=0)
    if mtu < need:
        raise errors.Conflict(f"MTU of {net_id} is not valid, subnet requires a minimum of {need}",
                              type="NetworkMTUSubnetConflict")


def create_network(s: Session, ctx, body: dict) -> dict:
    pid = owner_for(ctx, body)
    for attr in ("shared", "router:external"):
        if body.get(attr):
            authorize(f"create_network:{attr}", ctx, {"project_id": pid})
    if any(k in body for k in PROVIDER):
        authorize("create_network:provider", ctx, {"project_id": pid})
    check_quota(s, pid, "network")
    ntype = body.get("provider:network_type") or "vxlan"
    if ntype not in ("vxlan", "flat", "vlan", "local", "geneve", "gre"):
        raise ipam.bad(f"Network type value '{ntype}' not supported.")
    physnet = body.get("provider:physical_network")
    seg = body.get("provider:segmentation_id")
    if ntype in TUNNELS:
        seg = seg if seg is not None else _next_vni(s)
        if any(d.get("provider:segmentation_id") == seg and d.get("provider:network_type") == ntype
               for d in docs(s, "network")):
            raise errors.Conflict(f"Unable to create the network. The tunnel ID {seg} is in use.",
                                  type="TunnelIdInUse")
    elif ntype == "flat":
        physnet = physnet or "public"
        seg = None
    elif ntype == "vlan":
        physnet = physnet or "public"
        if seg is None or not 1 <= int(seg) <= 4094:
            raise ipam.bad("VLAN provider networks need a segmentation_id between 1 and 4094.")
    external = bool(body.get("router:external", False))
    doc = {
        "id": new_id(), "name": body.get("name", ""), "description": body.get("description", ""),
        "admin_state_up": body.get("admin_state_up", True), "status": "ACTIVE", "subnets": [],
        "shared": bool(body.get("shared", False)), "router:external": external,
        "mtu": check_mtu(body.get("mtu", 0), ntype),
        "provider:network_type": ntype, "provider:physical_network": physnet,
        "provider:segmentation_id": seg,
        "port_security_enabled": body.get("port_security_enabled", True),
        "availability_zone_hints": body.get("availability_zone_hints", []), "availability_zones": ["nova"],
        "ipv4_address_scope": None, "ipv6_address_scope": None, "l2_adjacency": True,
        "is_default": bool(body.get("is_default", False)), "project_id": pid,
        "dns_domain": body.get("dns_domain", ""),
    }
    ensure_default_sg(s, pid)
    doc = add(s, "network", doc)
    if doc["shared"]:
        _add_policy(s, doc, SHARED, WILDCARD)
    if external:
        _add_policy(s, doc, EXTERNAL, WILDCARD)
    return doc


def update_network(s: Session, ctx, row: m.Resource, body: dict) -> dict:
    for attr in ("shared", "router:external"):
        if attr in body and body[attr] != row.data.get(attr):
            authorize(f"update_network:{attr}", ctx, {"project_id": row.data.get("project_id") or ""})
    if any(k in body for k in PROVIDER):
        authorize("update_network:provider", ctx, {})
    if body.get("router:external") is False and row.data.get("router:external"):
        if any(r.data.get("external_gateway_info", {}) and
               (r.data["external_gateway_info"] or {}).get("network_id") == row.id for r in rows(s, "router")):
            raise errors.Conflict(f"Unable to complete operation on network {row.id}. There are one or more "
                                  "ports still in use on the network.", type="NetworkInUse")
        for p in rows(s, "rbac_policy", object_id=row.id, action=EXTERNAL):
            remove(s, p)
    elif body.get("router:external") is True and not row.data.get("router:external"):
        _add_policy(s, row.data, EXTERNAL, WILDCARD)
    if "shared" in body:
        wildcard = [p for p in rows(s, "rbac_policy", object_id=row.id, action=SHARED)
                    if p.data["target_tenant"] == WILDCARD]
        if body["shared"] and not wildcard:
            _add_policy(s, row.data, SHARED, WILDCARD)
        elif not body["shared"] and wildcard:
            if _shared_in_use(s, row.data, WILDCARD, [p for p in policies_on(s, row.id) if p["id"] != wildcard[0].id]):
                raise errors.Conflict(f"Unable to reconfigure sharing settings for network {row.id}. Multiple "
                                      "tenants are using it.", type="InvalidSharedSetting")
            remove(s, wildcard[0])
    allowed_keys = {"name", "description", "admin_state_up", "shared", "router:external", "mtu",
                    "port_security_enabled", "dns_domain", "is_default", *PROVIDER}
    changes = {k: v for k, v in body.items() if k in allowed_keys}
    if "mtu" in changes:
        changes["mtu"] = check_mtu(changes["mtu"], changes.get("provider:network_type")
                                   or row.data.get("provider:network_type") or "vxlan")
        check_mtu_fits(row.id, changes["mtu"], {d["ip_version"] for d in docs(s, "subnet", network_id=row.id)})
    return save(s, row, changes)


def delete_network(s: Session, ctx, row: m.Resource) -> None:
    ports = [p for p in rows(s, "port", network_id=row.id)]
    busy = [p for p in ports if p.data.get("device_owner") not in AUTO_PORT_OWNERS]
    if busy:
        raise errors.Conflict(
            f"Unable to complete operation on network {row.id}. There are one or more ports still in use "
            f"on the network: {', '.join(p.id for p in busy)}.", type="NetworkInUse")
    for p in ports:
        _release_port(s, p)
    for sub in rows(s, "subnet", network_id=row.id):
        remove(s, sub)
    for p in rows(s, "rbac_policy", object_id=row.id):
        remove(s, p)
    remove(s, row)


# --- subnet pools -----------------------------------------------------------------


def _prefixes(values: list, version: int | None = None) -> tuple[list[str], int]:
    if not isinstance(values, list) or not values:
        raise ipam.bad("A subnet pool needs at least one prefix.")
    nets = []
    for v in values:
        try:
            nets.append(ipaddress.ip_network(str(v), strict=False))
        except ValueError:
            raise ipam.bad(f"'{v}' is not a valid IP subnet.") from None
    versions = {n.version for n in nets}
    if len(versions) > 1 or (version and version not in versions):
        raise ipam.bad("Prefixes of a subnet pool must all be of the same IP version.")
    merged = [str(n) for n in ipaddress.collapse_addresses(nets)]
    return merged, versions.pop()


def create_subnetpool(s: Session, ctx, body: dict) -> dict:
    pid = owner_for(ctx, body)
    if body.get("shared"):
        authorize("create_subnetpool:shared", ctx, {"project_id": pid})
    if body.get("is_default"):
        authorize("create_subnetpool:is_default", ctx, {"project_id": pid})
    check_quota(s, pid, "subnetpool")
    prefixes, version = _prefixes(body.get("prefixes"))
    top = 32 if version == 4 else 128
    mn = int(body.get("min_prefixlen") or (8 if version == 4 else 64))
    mx = int(body.get("max_prefixlen") or top)
    df = int(body.get("default_prefixlen") or mn)
    if not (0 <= mn <= df <= mx <= top):
        raise ipam.bad(f"Illegal prefix bounds: min_prefixlen={mn}, default_prefixlen={df}, max_prefixlen={mx}.",
                       "IllegalSubnetPoolPrefixBounds")
    doc = {"id": new_id(), "name": body.get("name", ""), "description": body.get("description", ""),
           "prefixes": prefixes, "ip_version": version, "min_prefixlen": mn, "max_prefixlen": mx,
           "default_prefixlen": df, "shared": bool(body.get("shared", False)),
           "is_default": bool(body.get("is_default", False)), "default_quota": body.get("default_quota"),
           "address_scope_id": body.get("address_scope_id"), "project_id": pid}
    return add(s, "subnetpool", doc)


def update_subnetpool(s: Session, ctx, row: m.Resource, body: dict) -> dict:
    changes = {k: body[k] for k in ("name", "description", "default_quota", "is_default") if k in body}
    if "prefixes" in body:
        new, _ = _prefixes(body["prefixes"], row.data["ip_version"])
        old = [ipaddress.ip_network(p) for p in row.data["prefixes"]]
        for o in old:
            if not any(o.subnet_of(ipaddress.ip_network(n)) for n in new):
                raise ipam.bad("Existing prefixes must be a subset of the new prefixes.")
        changes["prefixes"] = new
    for k in ("min_prefixlen", "max_prefixlen", "default_prefixlen"):
        if k in body and body[k] is not None:
            changes[k] = int(body[k])
    merged = {**row.data, **changes}
    if not merged["min_prefixlen"] <= merged["default_prefixlen"] <= merged["max_prefixlen"]:
        raise ipam.bad("Illegal prefix bounds.", "IllegalSubnetPoolPrefixBounds")
    return save(s, row, changes)


def delete_subnetpool(s: Session, ctx, row: m.Resource) -> None:
    if rows(s, "subnet", subnetpool_id=row.id):
        raise errors.Conflict(f"Unable to delete subnet pool {row.id}: it has subnets allocated from it.",
                              type="SubnetPoolInUse")
    remove(s, row)


# --- subnets ----------------------------------------------------------------------

IPV6_MODES = ("slaac", "dhcpv6-stateful", "dhcpv6-stateless")


def _ip_list(values, field: str, version: int) -> list[str]:
    if values is None:
        return []
    out = [str(ipam.parse_ip(v, field)) for v in values]
    if len(set(out)) != len(out):
        raise ipam.bad(f"Duplicate nameserver in {field}: {values}.")
    return out


def _routes(values, version: int) -> list[dict]:
    if values is None:
        return []
    out = []
    for r in values:  # (objects with a destination and a nexthop: the request's schema says so)
        dest = ipaddress.ip_network(r["destination"], strict=False)
        hop = ipam.parse_ip(r["nexthop"], "nexthop")
        out.append({"destination": str(dest), "nexthop": str(hop)})
    return out


def _is_cidr(v) -> bool:
    try:
        ipaddress.ip_network(str(v), strict=False)
        return True
    except ValueError:
        return False


def create_subnet(s: Session, ctx, body: dict) -> dict:
    net = get(s, ctx, "network", body["network_id"])
    pid = owner_for(ctx, body)
    if net.data.get("project_id") != ctx.project_id and not ctx.is_admin:
        # Neutron's create_subnet rule: admin or the network's owner (a network shared
        # with a project lets it make ports, not subnets)
        raise errors.Forbidden("(create_subnet) is disallowed by policy: only the owner of network "
                               f"{net.id} may create subnets on it.", type="PolicyNotAuthorized")
    check_quota(s, pid, "subnet")
    version = int(body.get("ip_version", 4))  # 4 or 6 (as Neutron, "4" is taken too)
    check_mtu_fits(net.id, net.data.get("mtu") or IPV6_MIN_MTU, {version})
    pool_id = body.get("subnetpool_id")
    if body.get("use_default_subnetpool") and not pool_id:
        default = [d for d in docs(s, "subnetpool") if d.get("is_default") and d["ip_version"] == version]
        if not default:
            raise ipam.bad(f"No default subnetpool found for IPv{version}.")
        pool_id = default[0]["id"]
    siblings = docs(s, "subnet", network_id=net.id)
    if pool_id:
        pool = get(s, ctx, "subnetpool", pool_id).data
        if pool["ip_version"] != version:
            raise ipam.bad(f"Cannot allocate an IPv{version} subnet from an IPv{pool['ip_version']} subnet pool.")
        if body.get("cidr"):
            net_ = ipam.parse_cidr(body["cidr"], version)
            if not any(net_.subnet_of(ipaddress.ip_network(p)) for p in pool["prefixes"]):
                raise ipam.bad(f"Cidr {net_} is not within the prefixes of subnet pool {pool_id}.")
            if any(ipam.overlaps(str(net_), d["cidr"]) for d in docs(s, "subnet", subnetpool_id=pool_id)):
                raise errors.Conflict(f"Subnet {net_} overlaps a subnet already allocated from pool {pool_id}.",
                                      type="SubnetAllocationError")
        else:
            plen = int(body.get("prefixlen") or pool["default_prefixlen"])
            if not pool["min_prefixlen"] <= plen <= pool["max_prefixlen"]:
                raise ipam.bad(f"prefixlen {plen} is outside the pool's bounds "
                               f"{pool['min_prefixlen']}-{pool['max_prefixlen']}.")
            taken = [d["cidr"] for d in docs(s, "subnet", subnetpool_id=pool_id)] + [d["cidr"] for d in siblings]
            cidr = ipam.allocate_prefix(pool["prefixes"], plen, taken)
            if cidr is None:
                raise errors.Conflict(f"Insufficient prefix space to allocate subnet size /{plen}.",
                                      type="SubnetAllocationError")
            net_ = ipaddress.ip_network(cidr)
    else:
        if not body.get("cidr"):
            raise ipam.bad("A cidr must be specified in the absence of a subnet pool.")
        net_ = ipam.parse_cidr(body["cidr"], version)
    if net_.version == 4 and net_.prefixlen > 30 and "allocation_pools" not in body:
        pass
    for d in siblings:
        if ipam.overlaps(d["cidr"], str(net_)):
            raise ipam.bad(f"Requested subnet with cidr: {net_} for network: {net.id} overlaps with another subnet.")
    if "gateway_ip" in body:
        gw = body["gateway_ip"]
        if gw is not None:
            addr = ipam.parse_ip(gw, "gateway_ip", version)
            if addr in net_ and not ipam.usable(net_, addr, None):
                raise ipam.bad(f"Gateway is not valid on subnet {net_}: {gw} is the network or broadcast address.")
            gw = str(addr)
    else:
        gw = ipam.default_gateway(net_)
    if body.get("allocation_pools"):
        pools = ipam.validate_pools(net_, body["allocation_pools"], gw if gw and ipaddress.ip_address(gw) in net_
                                    else None)
    else:
        pools = ipam.default_pools(net_, gw if gw and ipaddress.ip_address(gw) in net_ else None)
    ra, am = body.get("ipv6_ra_mode"), body.get("ipv6_address_mode")
    for v, name in ((ra, "ipv6_ra_mode"), (am, "ipv6_address_mode")):
        if v is not None and (version == 4 or v not in IPV6_MODES):
            raise ipam.bad(f"{name} set to '{v}' is not valid on an IPv{version} subnet.")
    if ra and am and ra != am:
        raise ipam.bad(f"ipv6_ra_mode set to '{ra}' with ipv6_address_mode set to '{am}' is not valid.")
    doc = {"id": new_id(), "name": body.get("name", ""), "description": body.get("description", ""),
           "network_id": net.id, "ip_version": version, "cidr": str(net_), "gateway_ip": gw,
           "allocation_pools": pools, "dns_nameservers": _ip_list(body.get("dns_nameservers"), "dns_nameservers",
                                                                  version),
           "host_routes": _routes(body.get("host_routes"), version),
           "enable_dhcp": body.get("enable_dhcp", True), "ipv6_ra_mode": ra, "ipv6_address_mode": am,
           "subnetpool_id": pool_id, "service_types": body.get("service_types", []), "segment_id": None,
           "dns_publish_fixed_ip": bool(body.get("dns_publish_fixed_ip", False)), "project_id": pid}
    doc = add(s, "subnet", doc)
    save(s, net, {"subnets": net.data["subnets"] + [doc["id"]]})
    return doc


def update_subnet(s: Session, ctx, row: m.Resource, body: dict) -> dict:
    d = row.data
    for ro in ("cidr", "ip_version", "network_id", "subnetpool_id", "ipv6_ra_mode", "ipv6_address_mode"):
        if ro in body and body[ro] != d.get(ro):
            raise ipam.bad(f"Cannot update read-only attribute {ro}.")
    net_ = ipaddress.ip_network(d["cidr"])
    changes = {k: body[k] for k in ("name", "description", "enable_dhcp", "service_types") if k in body}
    gw = d["gateway_ip"]
    if "gateway_ip" in body:
        gw = body["gateway_ip"]
        if gw is not None:
            addr = ipam.parse_ip(gw, "gateway_ip", d["ip_version"])
            if addr in net_ and not ipam.usable(net_, addr, None):
                raise ipam.bad(f"Gateway is not valid on subnet {net_}.")
            gw = str(addr)
        changes["gateway_ip"] = gw
    pools = body.get("allocation_pools", d["allocation_pools"])
    gw_in = gw if gw and ipaddress.ip_address(gw) in net_ else None
    if "allocation_pools" in body or "gateway_ip" in body:
        changes["allocation_pools"] = ipam.validate_pools(net_, pools, gw_in)
    if "dns_nameservers" in body:
        changes["dns_nameservers"] = _ip_list(body["dns_nameservers"], "dns_nameservers", d["ip_version"])
    if "host_routes" in body:
        changes["host_routes"] = _routes(body["host_routes"], d["ip_version"])
    return save(s, row, changes)


def delete_subnet(s: Session, ctx, row: m.Resource) -> None:
    allocs = list(s.scalars(sa.select(m.IpAllocation).where(m.IpAllocation.subnet_id == row.id)))
    busy = []
    for a in allocs:
        port = find(s, "port", a.port_id)
        if port is not None and port.data.get("device_owner") not in AUTO_PORT_OWNERS:
            busy.append(a.port_id)
    if busy:
        raise errors.Conflict(f"Unable to complete operation on subnet {row.id}: One or more ports have an IP "
                              "allocation from this subnet.", type="SubnetInUse")
    for a in allocs:
        s.delete(a)
    net = find(s, "network", row.data["network_id"])
    if net is not None:
        save(s, net, {"subnets": [x for x in net.data["subnets"] if x != row.id]})
    remove(s, row)


# --- ports --------------------------------------------------------------------------


def _mac(s: Session, network_id: str) -> str:
    for _ in range(100):
        mac = f"fa:16:3e:{random.randint(0, 255):02x}:{random.randint(0, 255):02x}:{random.randint(0, 255):02x}"
        if s.get(m.MacAddress, (network_id, mac)) is None:
            return mac
    raise errors.ServiceUnavailable("Unable to generate a unique mac.", type="MacAddressGenerationFailure")


def _used_ips(s: Session, network_id: str) -> set[str]:
    return set(s.scalars(sa.select(m.IpAllocation.ip_address).where(m.IpAllocation.network_id == network_id)))


def _allocate_on(s: Session, subnet: dict, used_ips: set[str], mac: str) -> str:
    net_ = ipaddress.ip_network(subnet["cidr"])
    if net_.version == 6 and subnet.get("ipv6_address_mode") in ("slaac", "dhcpv6-stateless"):
        return ipam.eui64(net_, mac)
    ip = ipam.first_free(subnet["allocation_pools"], used_ips, [subnet.get("gateway_ip")])
    if ip is None:
        raise errors.Conflict(f"No more IP addresses available on network {subnet['network_id']}.",
                              type="IpAddressGenerationFailure")
    return ip


def _fixed_ips(s: Session, ctx, net: m.Resource, requested, mac: str, port_id: str, owner: str = "") -> list[dict]:
    """Allocate the requested fixed IPs (or one per IPv4 subnet, plus SLAAC) and record them."""
    subnets = [find(s, "subnet", sid).data for sid in net.data["subnets"]]
    used_ips = _used_ips(s, net.id)
    out: list[dict] = []
    if requested is None:
        v4 = [x for x in subnets if x["ip_version"] == 4]
        v6 = [x for x in subnets if x["ip_version"] == 6]
        chosen = v4[:1] + v6[:1]
        # Neutron tries the subnets in turn: the port gets an address from the first not exhausted
        for group in (v4, v6):
            if not group:
                continue
            last_err = None
            for sub in group:
                try:
                    ip = _allocate_on(s, sub, used_ips, mac)
                    out.append({"subnet_id": sub["id"], "ip_address": ip})
                    used_ips.add(ip)
                    break
                except errors.Conflict as e:
                    last_err = e
            else:
                if last_err:
                    raise last_err
        del chosen
    else:
        for req in requested:
            if not (req.get("subnet_id") or req.get("ip_address")):
                raise ipam.bad("A fixed IP needs a subnet_id or an ip_address.")
            sub = None
            if req.get("subnet_id"):
                sub = next((x for x in subnets if x["id"] == req["subnet_id"]), None)
                if sub is None:
                    row = find(s, "subnet", req["subnet_id"])
                    if row is None:
                        raise not_found("subnet", req["subnet_id"])
                    raise ipam.bad(f"Failed to create port on network {net.id}, because fixed_ips included "
                                   f"invalid subnet {req['subnet_id']}.")
            if req.get("ip_address"):
                addr = ipam.parse_ip(req["ip_address"], "ip_address")
                if sub is None:
                    sub = next((x for x in subnets if addr in ipaddress.ip_network(x["cidr"])), None)
                    if sub is None:
                        raise ipam.bad(f"IP address {addr} is not a valid IP for any subnet on network {net.id}.")
                net_ = ipaddress.ip_network(sub["cidr"])
                if addr not in net_ or not ipam.usable(net_, addr, None):
                    raise ipam.bad(f"IP address {addr} is not a valid IP for the specified subnet.")
                ip = str(addr)
                if ip == sub.get("gateway_ip") and owner != ROUTER_INTERFACE and not owner.startswith("network:"):
                    pass  # Neutron lets an explicit request take the gateway address (a router port)
                if ip in used_ips or any(o["ip_address"] == ip for o in out):
                    raise errors.Conflict(f"IP address {ip} already allocated in subnet {sub['id']}",
                                          type="IpAddressAlreadyAllocated")
            else:
                ip = _allocate_on(s, sub, used_ips, mac)
            out.append({"subnet_id": sub["id"], "ip_address": ip})
            used_ips.add(ip)
    for f in out:
        s.add(m.IpAllocation(network_id=net.id, ip_address=f["ip_address"], subnet_id=f["subnet_id"],
                             port_id=port_id))
    s.flush()
    return out


def _release_ips(s: Session, port_id: str) -> None:
    for a in s.scalars(sa.select(m.IpAllocation).where(m.IpAllocation.port_id == port_id)):
        s.delete(a)
    s.flush()


def _release_port(s: Session, row: m.Resource) -> None:
    _release_ips(s, row.id)
    for a in s.scalars(sa.select(m.MacAddress).where(m.MacAddress.port_id == row.id)):
        s.delete(a)
    remove(s, row)


def _pairs(values, mac: str) -> list[dict]:
    if values is None:
        return []
    out = []
    for p in values:
        ip = str(p["ip_address"])
        out.append({"ip_address": ip, "mac_address": p.get("mac_address") or mac})
    return out


def _check_sgs(s: Session, ctx, ids, pid: str) -> list[str]:
    for sg in ids:
        row = find(s, "security_group", sg)
        if row is None or not (ctx.is_admin or row.data.get("project_id") == pid or
                               row.data.get("project_id") == ctx.project_id):
            raise not_found("security_group", sg)
    return list(dict.fromkeys(ids))


def create_port(s: Session, ctx, body: dict) -> dict:
    net = get(s, ctx, "network", body["network_id"])
    pid = body.get("project_id") or body.get("tenant_id") or ctx.project_id
    if pid != ctx.project_id:
        authorize("admin_only", ctx)
    if net.data.get("project_id") != pid and not ctx.is_admin and SHARED not in granted(s, net.id, pid):
        if not (net.data.get("router:external") and str(body.get("device_owner", "")).startswith("network:")):
            raise errors.Forbidden("Cannot create a port on another project's network.", type="PolicyNotAuthorized")
    if any(k.startswith("binding:") for k in body if k != "binding:vnic_type"):
        authorize("create_port:binding", ctx, {"project_id": pid})
    check_quota(s, pid, "port")
    port_id = new_id()
    if body.get("mac_address"):
        mac = str(body["mac_address"]).lower()
        if s.get(m.MacAddress, (net.id, mac)) is not None:
            raise errors.Conflict(f"Unable to complete operation for network {net.id}. The mac address {mac} "
                                  "is in use.", type="MacAddressInUse")
    else:
        mac = _mac(s, net.id)
    s.add(m.MacAddress(network_id=net.id, mac_address=mac, port_id=port_id))
    owner = body.get("device_owner", "") or ""
    fixed = _fixed_ips(s, ctx, net, body.get("fixed_ips"), mac, port_id, owner)
    psec = body.get("port_security_enabled", net.data.get("port_security_enabled", True))
    if "security_groups" in body:
        sgs = _check_sgs(s, ctx, body["security_groups"] or [], pid)
    elif psec and not owner.startswith("network:"):
        sgs = [ensure_default_sg(s, pid)]
    else:
        sgs = []
    if sgs and not psec:
        raise errors.Conflict("Port has security group associated. Cannot disable port security or ip address "
                              "until security group is removed.", type="PortSecurityPortHasSecurityGroup")
    pairs = _pairs(body.get("allowed_address_pairs"), mac)
    if pairs and not psec:
        raise errors.Conflict("Port Security must be enabled in order to have allowed address pairs on a port.",
                              type="AddressPairAndPortSecurityRequired")
    doc = {"id": port_id, "name": body.get("name", ""), "description": body.get("description", ""),
           "network_id": net.id, "admin_state_up": body.get("admin_state_up", True), "mac_address": mac,
           "fixed_ips": fixed, "device_id": body.get("device_id", ""), "device_owner": owner,
           "status": "DOWN", "security_groups": sgs, "allowed_address_pairs": pairs,
           "port_security_enabled": psec, "extra_dhcp_opts": body.get("extra_dhcp_opts", []),
           "binding:host_id": body.get("binding:host_id", "") or "",
           "binding:profile": body.get("binding:profile", {}),
           **binding(net.id, body.get("binding:host_id")),
           "binding:vnic_type": body.get("binding:vnic_type", "normal"), "ip_allocation": "immediate",
           "dns_name": body.get("dns_name", ""), "dns_assignment": [], "propagate_uplink_status": False,
           "project_id": pid}
    if owner.startswith("network:") and owner != "network:dhcp" and not body.get("project_id"):
        doc["project_id"] = pid
    return add(s, "port", doc)


def bridge_name(network_id: str) -> str:
    """The Linux bridge of a network on every host (Neutron's ``brq`` + the id's start)."""
    return ("brq" + network_id.replace("-", ""))[:15]


def binding(network_id: str, host: str | None) -> dict:
    """binding:vif_type and vif_details of a port bound to ``host`` (or unbound):
    the Linux bridge mechanism, so the hypervisor plugs a tap into ``brq<network>``."""
    if not host:
        return {"binding:vif_type": "unbound", "binding:vif_details": {}}
    return {"binding:vif_type": "bridge",
            "binding:vif_details": {"bridge_name": bridge_name(network_id), "port_filter": True,
                                    "connectivity": "l2"}}


def set_port_status(s: Session, row: m.Resource, status: str) -> dict:
    """What an agent reports (ACTIVE once plugged, DOWN when gone): ``network.port.status``."""
    return save(s, row, {"status": status}, action="status")


def update_port(s: Session, ctx, row: m.Resource, body: dict) -> dict:
    d = row.data
    if any(k.startswith("binding:") for k in body if k != "binding:vnic_type"):
        authorize("update_port:binding", ctx, {"project_id": d.get("project_id") or ""})
    for ro in ("network_id", "mac_address"):
        if ro in body and body[ro] != d.get(ro):
            if ro == "mac_address" and ctx.is_admin:
                continue
            raise ipam.bad(f"Cannot update read-only attribute {ro}.")
    changes = {k: body[k] for k in ("name", "description", "admin_state_up", "device_id", "device_owner",
                                    "extra_dhcp_opts", "dns_name", "binding:host_id", "binding:profile",
                                    "binding:vnic_type") if k in body}
    if "binding:host_id" in body:
        changes["binding:host_id"] = body["binding:host_id"] or ""
        changes.update(binding(d["network_id"], body["binding:host_id"]))
        if changes["binding:host_id"] != d.get("binding:host_id"):
            changes["status"] = "DOWN"  # the new host's agent says when it is plugged
    if "fixed_ips" in body:
        net = find(s, "network", d["network_id"])
        _release_ips(s, row.id)
        changes["fixed_ips"] = _fixed_ips(s, ctx, net, body["fixed_ips"], d["mac_address"], row.id,
                                          d.get("device_owner", ""))
    psec = body.get("port_security_enabled", d.get("port_security_enabled", True))
    changes["port_security_enabled"] = psec
    if "security_groups" in body:
        changes["security_groups"] = _check_sgs(s, ctx, body["security_groups"] or [], d.get("project_id"))
    sgs = changes.get("security_groups", d.get("security_groups", []))
    if sgs and not psec:
        raise errors.Conflict("Port has security group associated. Cannot disable port security or ip address "
                              "until security group is removed.", type="PortSecurityPortHasSecurityGroup")
    if "allowed_address_pairs" in body:
        changes["allowed_address_pairs"] = _pairs(body["allowed_address_pairs"], d["mac_address"])
    if changes.get("allowed_address_pairs", d.get("allowed_address_pairs")) and not psec:
        raise errors.Conflict("Port Security must be enabled in order to have allowed address pairs on a port.",
                              type="AddressPairAndPortSecurityRequired")
    return save(s, row, changes)


def delete_port(s: Session, ctx, row: m.Resource, *, internal: bool = False) -> None:
    owner = row.data.get("device_owner", "")
    if not internal and owner in (ROUTER_INTERFACE, ROUTER_GATEWAY, FLOATINGIP_OWNER) and row.data.get("device_id"):
        raise errors.Conflict(f"Port {row.id} cannot be deleted directly via the port API: has device owner "
                              f"{owner}.", type="ServicePortInUse")
    for fip in rows(s, "floatingip", port_id=row.id):
        save(s, fip, {"port_id": None, "fixed_ip_address": None, "router_id": None, "status": "DOWN"})
    _release_port(s, row)


# --- security groups ------------------------------------------------------------------

PROTOCOLS = {"ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "hopopt": 0, "icmp": 1, "igmp": 2,
             "ip": 0, "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58, "icmpv6": 58,
             "ipv6-nonxt": 59, "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89, "pgm": 113, "rsvp": 46,
             "sctp": 132, "tcp": 6, "udp": 17, "udplite": 136, "vrrp": 112, "any": None}


def ensure_default_sg(s: Session, project_id: str | None) -> str | None:
    """The project's ``default`` group, created on first use (Neutron's rules)."""
    if not project_id:
        return None
    existing = [r for r in rows(s, "security_group", project_id=project_id) if r.data.get("name") == "default"]
    if existing:
        return existing[0].id
    sg = add(s, "security_group", {"id": new_id(), "name": "default", "description": "Default security group",
                                   "project_id": project_id, "stateful": True, "shared": False})
    for direction, eth in (("ingress", "IPv4"), ("ingress", "IPv6"), ("egress", "IPv4"), ("egress", "IPv6")):
        add(s, "security_group_rule", _rule_doc(sg["id"], project_id, direction, eth,
                                               remote_group_id=sg["id"] if direction == "ingress" else None))
    return sg["id"]


def _rule_doc(sg_id: str, pid: str, direction: str, ethertype: str, protocol=None, pmin=None, pmax=None,
              remote_ip_prefix=None, remote_group_id=None, description="") -> dict:
    return {"id": new_id(), "security_group_id": sg_id, "direction": direction, "ethertype": ethertype,
            "protocol": protocol, "port_range_min": pmin, "port_range_max": pmax,
            "remote_ip_prefix": remote_ip_prefix, "remote_group_id": remote_group_id,
            "remote_address_group_id": None, "normalized_cidr": remote_ip_prefix, "description": description,
            "project_id": pid, "belongs_to_default_sg": False}


def create_security_group(s: Session, ctx, body: dict) -> dict:
    pid = owner_for(ctx, body)
    default_id = ensure_default_sg(s, pid)
    if body.get("name") == "default":
        raise errors.Conflict(f"Default security group already exists: {default_id}.",
                              type="SecurityGroupDefaultAlreadyExists")
    check_quota(s, pid, "security_group")
    sg = add(s, "security_group", {"id": new_id(), "name": body.get("name", ""),
                                   "description": body.get("description", ""), "project_id": pid,
                                   "stateful": body.get("stateful", True), "shared": False})
    check_quota(s, pid, "security_group_rule", 2)
    for eth in ("IPv4", "IPv6"):
        add(s, "security_group_rule", _rule_doc(sg["id"], pid, "egress", eth))
    return sg


def update_security_group(s: Session, ctx, row: m.Resource, body: dict) -> dict:
    if row.data.get("name") == "default" and body.get("name", "default") != "default":
        raise errors.Conflict("Updating default security group not allowed.", type="SecurityGroupCannotUpdateDefault")
    if body.get("name") == "default" and row.data.get("name") != "default":
        raise errors.Conflict("Default security group already exists.", type="SecurityGroupDefaultAlreadyExists")
    return save(s, row, {k: body[k] for k in ("name", "description", "stateful") if k in body})


def delete_security_group(s: Session, ctx, row: m.Resource) -> None:
    if row.data.get("name") == "default" and not ctx.is_admin:
        raise errors.Conflict("Removing default security group not allowed.", type="SecurityGroupCannotRemoveDefault")
    in_use = [p.id for p in rows(s, "port") if row.id in p.data.get("security_groups", [])]
    if in_use:
        raise errors.Conflict(f"Security Group {row.id} in use.", type="SecurityGroupInUse")
    for r in rows(s, "security_group_rule", security_group_id=row.id):
        remove(s, r)
    remove(s, row)


def _port_value(v, name: str):
    if v is None:
        return None
    try:
        iv = int(v)
    except (TypeError, ValueError):
        raise ipam.bad(f"{name} '{v}' is not an integer.", "InvalidInput") from None
    return iv


def create_security_group_rule(s: Session, ctx, body: dict) -> dict:
    if "security_group_id" not in body:
        raise ipam.bad("'security_group_id' is required.")
    sg = find(s, "security_group", body["security_group_id"])
    if sg is None or not (ctx.is_admin or sg.data.get("project_id") == ctx.project_id):
        raise not_found("security_group", body["security_group_id"])
    pid = sg.data.get("project_id")
    authorize("create", ctx, {"project_id": pid})
    direction = body.get("direction")
    if direction not in ("ingress", "egress"):
        raise ipam.bad(f"{direction} is not in ['ingress', 'egress'].")
    eth = body.get("ethertype", "IPv4")
    if eth not in ("IPv4", "IPv6"):
        raise errors.BadRequest(f"Security group rule for ethertype '{eth}' not supported. Allowed values are "
                                "['IPv4', 'IPv6'].", type="SecurityGroupRuleInvalidEtherType")
    proto = body.get("protocol")
    if proto is not None:
        proto = str(proto).lower()
        if proto.isdigit():
            if not 0 <= int(proto) <= 255:
                raise errors.BadRequest(f"Security group rule protocol {proto} not supported. Only protocol values "
                                        f"{sorted(PROTOCOLS)} and integer representations [0 to 255] are supported.",
                                        type="SecurityGroupRuleInvalidProtocol")
        elif proto not in PROTOCOLS:
            raise errors.BadRequest(f"Security group rule protocol {proto} not supported. Only protocol values "
                                    f"{sorted(PROTOCOLS)} and integer representations [0 to 255] are supported.",
                                    type="SecurityGroupRuleInvalidProtocol")
        if proto == "any":
            proto = None
    pmin = _port_value(body.get("port_range_min"), "port_range_min")
    pmax = _port_value(body.get("port_range_max"), "port_range_max")
    num = PROTOCOLS.get(proto) if proto and not proto.isdigit() else (int(proto) if proto else None)
    if (pmin is not None or pmax is not None) and proto is None:
        raise errors.BadRequest("Must also specify protocol if port range is given.",
                                type="SecurityGroupProtocolRequiredWithPorts")
    if num in (6, 17, 132, 33, 136):
        if pmin is not None and pmax is None or pmax is not None and pmin is None:
            raise errors.BadRequest("For TCP/UDP protocols, port_range_min must be <= port_range_max",
                                    type="SecurityGroupInvalidPortRange")
        for v in (pmin, pmax):
            if v is not None and not 1 <= v <= 65535:
                raise errors.BadRequest(f"Invalid value for port {v}.", type="SecurityGroupInvalidPortValue")
        if pmin is not None and pmax is not None and pmin > pmax:
            raise errors.BadRequest("For TCP/UDP protocols, port_range_min must be <= port_range_max",
                                    type="SecurityGroupInvalidPortRange")
    elif num in (1, 58):
        for v, name in ((pmin, "type"), (pmax, "code")):
            if v is not None and not 0 <= v <= 255:
                raise errors.BadRequest(f"Invalid value for ICMP {name} (port_range_min): {v}.",
                                        type="SecurityGroupInvalidIcmpValue")
        if pmax is not None and pmin is None:
            raise errors.BadRequest(f"ICMP code (port-range-max) {pmax} is provided but ICMP type "
                                    "(port-range-min) is missing.", type="SecurityGroupMissingIcmpType")
    elif pmin is not None or pmax is not None:
        raise errors.BadRequest(f"Protocol {proto} does not support port ranges.",
                                type="SecurityGroupInvalidProtocolForPortRange")
    if num == 58 and eth == "IPv4":
        raise errors.BadRequest(f"Protocol {proto} is not supported for ethertype IPv4.",
                                type="SecurityGroupEthertypeConflictWithProtocol")
    prefix = body.get("remote_ip_prefix")
    rgid = body.get("remote_group_id")
    if prefix is not None and rgid is not None:
        raise errors.BadRequest("Only remote_ip_prefix or remote_group_id may be provided.",
                                type="SecurityGroupRemoteGroupAndRemoteIpPrefix")
    if prefix is not None:
        try:
            pnet = ipaddress.ip_network(str(prefix), strict=False)
        except ValueError:
            raise ipam.bad(f"'{prefix}' is not a valid IP subnet.") from None
        if f"IPv{pnet.version}" != eth:
            raise errors.BadRequest(f"Conflicting value ethertype {eth} for CIDR {prefix}",
                                    type="SecurityGroupRuleParameterConflict")
        prefix = str(pnet)
    if rgid is not None and find(s, "security_group", rgid) is None:
        raise not_found("security_group", rgid)
    key = (direction, eth, proto, pmin, pmax, prefix, rgid)
    for r in docs(s, "security_group_rule", security_group_id=sg.id):
        if (r["direction"], r["ethertype"], r["protocol"], r["port_range_min"], r["port_range_max"],
                r["remote_ip_prefix"], r["remote_group_id"]) == key:
            raise errors.Conflict(f"Security group rule already exists. Rule id is {r['id']}.",
                                  type="SecurityGroupRuleExists")
    check_quota(s, pid, "security_group_rule")
    doc = _rule_doc(sg.id, pid, direction, eth, proto, pmin, pmax, prefix, rgid, body.get("description", ""))
    doc["belongs_to_default_sg"] = sg.data.get("name") == "default"
    doc = add(s, "security_group_rule", doc)
    save(s, sg, {})
    return doc


def delete_security_group_rule(s: Session, ctx, row: m.Resource) -> None:
    remove(s, row)


# --- routers ----------------------------------------------------------------------------


def _gateway(s: Session, ctx, router: dict, info, pid: str) -> dict | None:
    """Set, change or clear a router's gateway; returns the new external_gateway_info."""
    old = router.get("external_gateway_info")
    if not info or not info.get("network_id"):
        if old:
            busy = [f for f in docs(s, "floatingip", router_id=router["id"])]
            if busy:
                raise errors.Conflict(f"Gateway cannot be updated for router {router['id']}, since a gateway to "
                                      f"external network {old['network_id']} is required by one or more floating "
                                      "IPs.", type="RouterExternalGatewayInUseByFloatingIp")
            for p in rows(s, "port", device_id=router["id"], device_owner=ROUTER_GATEWAY):
                _release_port(s, p)
        return None
    if not isinstance(info, dict):
        raise ipam.bad("external_gateway_info must be an object.")
    net = get(s, ctx, "network", info["network_id"])  # visible: own, shared or external to the caller
    if not net.data.get("router:external"):
        raise errors.BadRequest(f"Bad router request: Network {net.id} is not an external network.",
                                type="BadRequest")
    if "external_fixed_ips" in info:
        authorize("create_router:external_gateway_info:external_fixed_ips", ctx, {"project_id": pid})
    if "enable_snat" in info and info["enable_snat"] is False:
        authorize("create_router:external_gateway_info:enable_snat", ctx, {"project_id": pid})
    same_net = old and old.get("network_id") == net.id
    ports = rows(s, "port", device_id=router["id"], device_owner=ROUTER_GATEWAY)
    if same_net and ports and "external_fixed_ips" not in info:
        fixed = ports[0].data["fixed_ips"]
    else:
        for p in ports:
            _release_port(s, p)
        if net.data["subnets"] or info.get("external_fixed_ips"):
            port = create_port(s, _Admin(), {"network_id": net.id, "device_owner": ROUTER_GATEWAY,
                                             "device_id": router["id"], "project_id": "",
                                             "fixed_ips": info.get("external_fixed_ips") or None,
                                             "security_groups": []})
            fixed = port["fixed_ips"]
        else:
            fixed = []
    return {"network_id": net.id, "enable_snat": info.get("enable_snat", True), "external_fixed_ips": fixed}


class _Admin:
    """The service itself acting (gateway and floating IP ports): admin, no project."""

    is_admin = True
    project_id = ""
    roles = ["admin"]

    def policy_creds(self):
        return {"roles": ["admin"], "roles_lower": ["admin"], "project_id": "", "is_admin": True}


def _check_routes(s: Session, router_id: str, routes) -> list[dict]:
    if routes is None:
        return []
    if not isinstance(routes, list):
        raise ipam.bad("routes must be a list.")
    cidrs = [find(s, "subnet", f["subnet_id"]).data["cidr"]
             for p in rows(s, "port", device_id=router_id) for f in p.data["fixed_ips"]]
    out = []
    for r in routes:
        if not isinstance(r, dict) or "destination" not in r or "nexthop" not in r:
            raise ipam.bad("A route needs a destination and a nexthop.")
        if not _is_cidr(r["destination"]):
            raise ipam.bad(f"'{r['destination']}' is not a valid IP subnet.")
        hop = ipam.parse_ip(r["nexthop"], "nexthop")
        if not any(hop in ipaddress.ip_network(c) for c in cidrs):
            raise errors.BadRequest(f"Invalid format for routes: {r}, the nexthop is not connected with router",
                                    type="InvalidRoutes")
        out.append({"destination": str(ipaddress.ip_network(str(r["destination"]), strict=False)),
                    "nexthop": str(hop)})
    return out


def create_router(s: Session, ctx, body: dict) -> dict:
    pid = owner_for(ctx, body)
    for attr in ("distributed", "ha"):
        if attr in body:
            authorize(f"create_router:{attr}", ctx, {"project_id": pid})
    check_quota(s, pid, "router")
    doc = {"id": new_id(), "name": body.get("name", ""), "description": body.get("description", ""),
           "admin_state_up": body.get("admin_state_up", True), "status": "ACTIVE", "routes": [],
           "external_gateway_info": None, "distributed": bool(body.get("distributed", False)),
           "ha": bool(body.get("ha", False)), "availability_zone_hints": body.get("availability_zone_hints", []),
           "availability_zones": ["nova"], "flavor_id": body.get("flavor_id"), "project_id": pid}
    doc["external_gateway_info"] = _gateway(s, ctx, doc, body.get("external_gateway_info"), pid)
    return add(s, "router", doc)


def update_router(s: Session, ctx, row: m.Resource, body: dict) -> dict:
    changes = {k: body[k] for k in ("name", "description", "admin_state_up") if k in body}
    if "external_gateway_info" in body:
        changes["external_gateway_info"] = _gateway(s, ctx, row.data, body["external_gateway_info"],
                                                    row.data.get("project_id"))
    if "routes" in body:
        changes["routes"] = _check_routes(s, row.id, body["routes"])
    return save(s, row, changes)


def delete_router(s: Session, ctx, row: m.Resource) -> None:
    if rows(s, "port", device_id=row.id, device_owner=ROUTER_INTERFACE):
        raise errors.Conflict(f"Router {row.id} still has ports", type="RouterInUse")
    if docs(s, "floatingip", router_id=row.id):
        raise errors.Conflict(f"Router {row.id} is still used by floating IPs", type="RouterInUse")
    for p in rows(s, "port", device_id=row.id):
        _release_port(s, p)
    remove(s, row)


def _router_cidrs(s: Session, router_id: str) -> list[tuple[str, str]]:
    out = []
    for p in rows(s, "port", device_id=router_id, device_owner=ROUTER_INTERFACE):
        for f in p.data["fixed_ips"]:
            sub = find(s, "subnet", f["subnet_id"])
            if sub:
                out.append((sub.id, sub.data["cidr"]))
    return out


def _interface_info(router: m.Resource, port: dict) -> dict:
    sids = [f["subnet_id"] for f in port["fixed_ips"]]
    return {"id": router.id, "tenant_id": router.data.get("project_id"), "project_id": router.data.get("project_id"),
            "port_id": port["id"], "network_id": port["network_id"], "subnet_id": sids[0] if sids else None,
            "subnet_ids": sids}


def add_router_interface(s: Session, ctx, router: m.Resource, body: dict) -> dict:
    if not isinstance(body, dict) or ("subnet_id" in body) == ("port_id" in body):
        raise ipam.bad("Either subnet_id or port_id must be specified", "BadRequest")
    existing = _router_cidrs(s, router.id)
    if "port_id" in body:
        port = get(s, ctx, "port", body["port_id"])
        if port.data.get("device_id") or port.data.get("device_owner"):
            raise errors.Conflict(f"Port {port.id} has owner {port.data.get('device_owner')} and therefore cannot "
                                  f"be deleted directly via the port API.", type="PortInUse")
        if not port.data["fixed_ips"]:
            raise errors.BadRequest("Bad router request: Router port must have at least one fixed IP.",
                                    type="BadRequest")
        for f in port.data["fixed_ips"]:
            sub = find(s, "subnet", f["subnet_id"])
            for sid, cidr in existing:
                if ipam.overlaps(cidr, sub.data["cidr"]):
                    raise errors.BadRequest(f"Bad router request: Cidr {sub.data['cidr']} of subnet {sub.id} "
                                            f"overlaps with cidr {cidr} of subnet {sid}.", type="BadRequest")
        doc = save(s, port, {"device_id": router.id, "device_owner": ROUTER_INTERFACE, "status": "ACTIVE"})
    else:
        sub = get(s, ctx, "subnet", body["subnet_id"])
        if not ctx.is_admin and sub.data.get("project_id") != ctx.project_id and not any(
                p["action"] == SHARED and p["target_tenant"] == ctx.project_id
                for p in policies_on(s, sub.data["network_id"])):
            # Neutron (LP 1757482, 1975603): another project's subnet only when its network is
            # shared with this project by name, not through "*" (its gateway address is at stake)
            raise errors.BadRequest(f"Bad router request: Cannot add interface to router because subnet {sub.id} "
                                    "is not owned by project making the request", type="BadRequest")
        if not sub.data.get("gateway_ip"):
            raise errors.BadRequest("Bad router request: Subnet for router interface must have a gateway IP.",
                                    type="BadRequest")
        for sid, cidr in existing:
            if sid == sub.id:
                raise errors.BadRequest(f"Bad router request: Router already has a port on subnet {sub.id}.",
                                        type="BadRequest")
            if ipam.overlaps(cidr, sub.data["cidr"]):
                raise errors.BadRequest(f"Bad router request: Cidr {sub.data['cidr']} of subnet {sub.id} overlaps "
                                        f"with cidr {cidr} of subnet {sid}.", type="BadRequest")
        doc = create_port(s, _Admin(), {"network_id": sub.data["network_id"], "device_owner": ROUTER_INTERFACE,
                                        "device_id": router.id, "project_id": router.data.get("project_id"),
                                        "fixed_ips": [{"subnet_id": sub.id, "ip_address": sub.data["gateway_ip"]}],
                                        "security_groups": []})
        port = find(s, "port", doc["id"])
        doc = save(s, port, {"status": "ACTIVE"})
    save(s, router, {})
    return _interface_info(router, doc)


def remove_router_interface(s: Session, ctx, router: m.Resource, body: dict) -> dict:
    if not isinstance(body, dict) or not (body.get("subnet_id") or body.get("port_id")):
        raise ipam.bad("Either subnet_id or port_id must be specified", "BadRequest")
    ports = rows(s, "port", device_id=router.id, device_owner=ROUTER_INTERFACE)
    if body.get("port_id"):
        port = next((p for p in ports if p.id == body["port_id"]), None)
        if port is None:
            raise errors.NotFound(f"Router {router.id} does not have an interface with id {body['port_id']}",
                                  type="RouterInterfaceNotFound")
        if body.get("subnet_id") and body["subnet_id"] not in [f["subnet_id"] for f in port.data["fixed_ips"]]:
            raise errors.Conflict(f"Subnet {body['subnet_id']} is not on port {port.id}.",
                                  type="SubnetMismatchForPort")
    else:
        get(s, ctx, "subnet", body["subnet_id"])
        port = next((p for p in ports if body["subnet_id"] in [f["subnet_id"] for f in p.data["fixed_ips"]]), None)
        if port is None:
            raise errors.NotFound(f"Router {router.id} has no interface on subnet {body['subnet_id']}",
                                  type="RouterInterfaceNotFoundForSubnet")
    info = _interface_info(router, port.data)
    for f in port.data["fixed_ips"]:
        cidr = ipaddress.ip_network(find(s, "subnet", f["subnet_id"]).data["cidr"])
        for r in router.data.get("routes", []):
            if ipaddress.ip_address(r["nexthop"]) in cidr:
                raise errors.Conflict(f"Router interface for subnet {f['subnet_id']} on router {router.id} cannot "
                                      f"be deleted, as it is required by one or more routes.",
                                      type="RouterInterfaceInUseByRoute")
        for fip in docs(s, "floatingip", router_id=router.id):
            if fip.get("fixed_ip_address") and ipaddress.ip_address(fip["fixed_ip_address"]) in cidr:
                raise errors.Conflict(f"Router interface for subnet {f['subnet_id']} on router {router.id} cannot "
                                      "be deleted, as it is required by one or more floating IPs.",
                                      type="RouterInterfaceInUseByFloatingIP")
    _release_port(s, port)
    save(s, router, {})
    return info


# --- floating IPs --------------------------------------------------------------------------


def _fip_target(s: Session, ctx, fip: dict, port_id: str, fixed_ip: str | None) -> dict:
    port = find(s, "port", port_id)
    if port is None or not (ctx.is_admin or port.data.get("project_id") == ctx.project_id):
        raise not_found("port", port_id)
    ips = [f for f in port.data["fixed_ips"] if ipaddress.ip_address(f["ip_address"]).version == 4]
    if fixed_ip:
        match = [f for f in ips if f["ip_address"] == fixed_ip]
        if not match:
            raise ipam.bad(f"Port {port_id} does not have fixed ip {fixed_ip}.", "BadRequest")
    elif len(ips) > 1:
        raise ipam.bad(f"Port {port_id} has multiple fixed IPv4 addresses. Must provide a specific IPv4 address "
                       "when assigning a floating IP.", "BadRequest")
    elif not ips:
        raise ipam.bad(f"Bad floatingip request: Port {port_id} does not have any IPv4 address.", "BadRequest")
    chosen = match[0] if fixed_ip else ips[0]
    for other in docs(s, "floatingip", port_id=port_id):
        if other["id"] != fip.get("id") and other.get("fixed_ip_address") == chosen["ip_address"]:
            raise errors.Conflict(f"Cannot associate floating IP {fip.get('floating_ip_address')} with port "
                                  f"{port_id} using fixed IP {chosen['ip_address']}, as that fixed IP already has a "
                                  f"floating IP on external network {other['floating_network_id']}.",
                                  type="FloatingIPPortAlreadyAssociated")
    for r in rows(s, "router"):
        gw = r.data.get("external_gateway_info") or {}
        if gw.get("network_id") != fip["floating_network_id"]:
            continue
        if any(sid == chosen["subnet_id"] for sid, _ in _router_cidrs(s, r.id)):
            return {"port_id": port_id, "fixed_ip_address": chosen["ip_address"], "router_id": r.id,
                    "status": "ACTIVE"}
    raise errors.NotFound(f"External network {fip['floating_network_id']} is not reachable from subnet "
                          f"{chosen['subnet_id']}.  Therefore, cannot associate Port {port_id} with a Floating IP.",
                          type="ExternalGatewayForFloatingIPNotFound")


def create_floatingip(s: Session, ctx, body: dict) -> dict:
    if "floating_network_id" not in body:
        raise ipam.bad("'floating_network_id' is required.")
    pid = owner_for(ctx, body)
    net = get(s, ctx, "network", body["floating_network_id"])  # external to the caller (RBAC) or own
    if not net.data.get("router:external"):
        raise errors.BadRequest(f"Bad floatingip request: Network {net.id} is not a valid external network.",
                                type="BadRequest")
    if body.get("floating_ip_address"):
        authorize("create_floatingip:floating_ip_address", ctx, {"project_id": pid})
    check_quota(s, pid, "floatingip")
    fid = new_id()
    fixed = [{"ip_address": body["floating_ip_address"]}] if body.get("floating_ip_address") else None
    if body.get("subnet_id"):
        fixed = [{"subnet_id": body["subnet_id"], **(fixed[0] if fixed else {})}]
    if fixed is None:
        v4 = [sid for sid in net.data["subnets"] if find(s, "subnet", sid).data["ip_version"] == 4]
        if not v4:
            raise ipam.bad(f"Bad floatingip request: Network {net.id} has no IPv4 subnet.", "BadRequest")
        fixed = None
    port = create_port(s, _Admin(), {"network_id": net.id, "device_owner": FLOATINGIP_OWNER, "device_id": fid,
                                     "project_id": "", "fixed_ips": fixed, "security_groups": []})
    v4ip = next(f for f in port["fixed_ips"] if ipaddress.ip_address(f["ip_address"]).version == 4)
    doc = {"id": fid, "floating_network_id": net.id, "floating_ip_address": v4ip["ip_address"],
           "port_id": None, "fixed_ip_address": None, "router_id": None, "status": "DOWN",
           "description": body.get("description", ""), "project_id": pid, "qos_policy_id": None,
           "port_details": None, "dns_domain": "", "dns_name": ""}
    if body.get("port_id"):
        doc.update(_fip_target(s, ctx, doc, body["port_id"], body.get("fixed_ip_address")))
    return add(s, "floatingip", doc)


def update_floatingip(s: Session, ctx, row: m.Resource, body: dict) -> dict:
    changes = {k: body[k] for k in ("description",) if k in body}
    if "port_id" in body:
        if body["port_id"]:
            changes.update(_fip_target(s, ctx, row.data, body["port_id"], body.get("fixed_ip_address")))
        else:
            changes.update(port_id=None, fixed_ip_address=None, router_id=None, status="DOWN")
    return save(s, row, changes)


def delete_floatingip(s: Session, ctx, row: m.Resource) -> None:
    for p in rows(s, "port", device_id=row.id, device_owner=FLOATINGIP_OWNER):
        _release_port(s, p)
    remove(s, row)


# --- RBAC policies ---------------------------------------------------------------------------

RBAC_OBJECT_TYPES = ("address_group", "address_scope", "network", "qos_policy", "security_group", "subnetpool")
RBAC_ACTIONS = {"network": (EXTERNAL, SHARED)}  # what this cloud supports


def _add_policy(s: Session, net: dict, action: str, target: str, project_id: str | None = None) -> dict:
    return add(s, "rbac_policy", {"id": new_id(), "object_type": "network", "object_id": net["id"],
                                  "action": action, "target_tenant": target,
                                  "project_id": (net.get("project_id") or "") if project_id is None else project_id})


def _shared_in_use(s: Session, net: dict, target: str, remaining: list[dict]) -> str | None:
    """Why ``target`` may not lose access_as_shared to ``net`` (None when it may): one of its
    ports is there and no remaining policy (to it or to all) keeps it allowed."""
    owner = net.get("project_id") or ""
    keep = {p["target_tenant"] for p in remaining if p["action"] == SHARED}
    if target == owner or WILDCARD in keep:
        return None
    keep |= {owner, ""}  # "" is the service's own ports (gateways, floating IPs)
    for port in docs(s, "port", network_id=net["id"]):
        pp = port.get("project_id") or ""
        if pp not in keep and target in (WILDCARD, pp):
            return f"Port {port['id']} of project {pp} is on network {net['id']}."
    return None


def _external_in_use(s: Session, net: dict, target: str, remaining: list[dict]) -> str | None:
    """Why ``target`` may not lose access_as_external to ``net``: a router of its has its
    gateway there, or it holds a floating IP from it, and nothing else lets it see it."""
    owner = net.get("project_id") or ""
    keep = {p["target_tenant"] for p in remaining}
    if target == owner or WILDCARD in keep:
        return None
    keep |= {owner}

    def loses(pid) -> bool:
        return (pid or "") not in keep and target in (WILDCARD, pid)

    for r in docs(s, "router"):
        if (r.get("external_gateway_info") or {}).get("network_id") == net["id"] and loses(r.get("project_id")):
            return f"Router {r['id']} has an external gateway on network {net['id']}."
    for f in docs(s, "floatingip", floating_network_id=net["id"]):
        if loses(f.get("project_id")):
            return f"Floating IP {f['id']} is allocated from network {net['id']}."
    return None


def _rbac_in_use(s: Session, policy: dict, remaining: list[dict]) -> None:
    net = find(s, "network", policy["object_id"])
    if net is None:
        return
    check = _shared_in_use if policy["action"] == SHARED else _external_in_use
    why = check(s, net.data, policy["target_tenant"], remaining)
    if why:
        raise errors.Conflict(f"RBAC policy on object {policy['object_id']} cannot be removed because other "
                              f"objects depend on it.\nDetails: {why}", type="RbacPolicyInUse")


def _target(body: dict) -> str:
    target = body.get("target_tenant", body.get("target_project"))
    if target is None:
        raise errors.BadRequest("Failed to parse request. Required attribute 'target_tenant' not specified",
                                type="HTTPBadRequest")
    if not isinstance(target, str) or not target or len(target) > 255:
        raise ipam.bad(f"Invalid input for target_tenant. Reason: '{target}' is not a valid project id.",
                       "InvalidInput")
    return target


def _duplicate(s: Session, object_id: str, action: str, target: str) -> None:
    if any(p["action"] == action and p["target_tenant"] == target for p in policies_on(s, object_id)):
        raise errors.Conflict("An RBAC policy already exists with those values.", type="DuplicateRbacPolicy")


def _sync_flags(s: Session, net_id: str) -> None:
    """A network's stored ``shared`` says whether a "*" access_as_shared policy exists;
    ``router:external`` becomes True with its first access_as_external policy (and, as in
    Neutron, stays so until an admin sets it False)."""
    net = find(s, "network", net_id)
    if net is None:
        return
    pols = policies_on(s, net_id)
    changes = {}
    shared = any(p["action"] == SHARED and p["target_tenant"] == WILDCARD for p in pols)
    if shared != bool(net.data.get("shared")):
        changes["shared"] = shared
    if any(p["action"] == EXTERNAL for p in pols) and not net.data.get("router:external"):
        changes["router:external"] = True
    if changes:
        save(s, net, changes)


def create_rbac_policy(s: Session, ctx, body: dict) -> dict:
    for k in ("object_type", "object_id", "action"):
        if body.get(k) in (None, ""):
            raise errors.BadRequest(f"Failed to parse request. Required attribute '{k}' not specified",
                                    type="HTTPBadRequest")
    otype, oid, action = body["object_type"], str(body["object_id"]), body["action"]
    if otype not in RBAC_OBJECT_TYPES:
        raise ipam.bad(f"Invalid input for object_type. Reason: '{otype}' is not in {list(RBAC_OBJECT_TYPES)}.",
                       "InvalidInput")
    if otype not in RBAC_ACTIONS:
        raise ipam.bad(f"RBAC policies on object type '{otype}' are not supported by this cloud; supported "
                       f"object types: {', '.join(RBAC_ACTIONS)}.", "InvalidInput")
    if action not in RBAC_ACTIONS[otype]:
        raise ipam.bad(f"Invalid input for action. Reason: '{action}' is not in {list(RBAC_ACTIONS[otype])}.",
                       "InvalidInput")
    target = _target(body)
    pid = owner_for(ctx, body)
    net = find(s, "network", oid)
    if net is None or not visible(s, ctx, "network", net.data):
        raise ipam.bad(f"Network {oid} could not be found.")
    if not ctx.is_admin and net.data.get("project_id") != ctx.project_id:
        raise ipam.bad("Only admins can manipulate policies on networks they do not own.")
    if action == EXTERNAL and not net.data.get("router:external"):
        # the first such policy makes the network external, which moves its bridge into
        # the external namespace (the cloud's outside world): who may set router:external
        authorize("update_network:router:external", ctx, {"project_id": net.data.get("project_id") or ""})
    if target == WILDCARD:
        authorize("create_rbac_policy:target_tenant", ctx, {"project_id": pid or ""})
    _duplicate(s, oid, action, target)
    check_quota(s, pid, "rbac_policy")
    doc = _add_policy(s, net.data, action, target, pid or "")
    _sync_flags(s, oid)
    return doc


def update_rbac_policy(s: Session, ctx, row: m.Resource, body: dict) -> dict:
    for k in body:
        if k not in ("target_tenant", "target_project"):
            raise ipam.bad(f"Attribute '{k}' not allowed in PUT", "HTTPBadRequest")
    if not body:
        return row.data
    target = _target(body)
    if target == row.data["target_tenant"]:
        return row.data
    if target == WILDCARD:
        authorize("update_rbac_policy:target_tenant", ctx, {"project_id": row.data.get("project_id") or ""})
    _duplicate(s, row.data["object_id"], row.data["action"], target)
    others = [p for p in policies_on(s, row.data["object_id"]) if p["id"] != row.id]
    _rbac_in_use(s, row.data, others + [{**row.data, "target_tenant": target}])
    doc = save(s, row, {"target_tenant": target})
    _sync_flags(s, row.data["object_id"])
    return doc


def delete_rbac_policy(s: Session, ctx, row: m.Resource) -> None:
    others = [p for p in policies_on(s, row.data["object_id"]) if p["id"] != row.id]
    _rbac_in_use(s, row.data, others)
    remove(s, row)
    _sync_flags(s, row.data["object_id"])


def backfill_rbac(s: Session) -> None:
    """Once per cloud: the "*" policies of networks made shared or external before RBAC
    policies existed (a marker row remembers it was done)."""
    if s.get(m.Resource, "rbac-backfill") is not None:
        return
    s.add(m.Resource(id="rbac-backfill", kind="meta", project_id=None, data={}, created_at=utcnow()))
    s.flush()
    for net in docs(s, "network"):
        pols = policies_on(s, net["id"])
        if net.get("shared") and not any(p["action"] == SHARED and p["target_tenant"] == WILDCARD for p in pols):
            _add_policy(s, net, SHARED, WILDCARD)
        if net.get("router:external") and not any(p["action"] == EXTERNAL for p in pols):
            _add_policy(s, net, EXTERNAL, WILDCARD)


CREATE = {"network": create_network, "subnet": create_subnet, "subnetpool": create_subnetpool,
          "port": create_port, "router": create_router, "floatingip": create_floatingip,
          "security_group": create_security_group, "security_group_rule": create_security_group_rule,
          "rbac_policy": create_rbac_policy}
UPDATE = {"network": update_network, "subnet": update_subnet, "subnetpool": update_subnetpool,
          "port": update_port, "router": update_router, "floatingip": update_floatingip,
          "security_group": update_security_group, "rbac_policy": update_rbac_policy}
DELETE = {"network": delete_network, "subnet": delete_subnet, "subnetpool": delete_subnetpool,
          "port": delete_port, "router": delete_router, "floatingip": delete_floatingip,
          "security_group": delete_security_group, "security_group_rule": delete_security_group_rule,
          "rbac_policy": delete_rbac_policy}


def expand(s: Session, kind: str, doc: dict, ctx=None) -> dict:
    """Attributes computed at read time (for the caller ``ctx``, when given)."""
    if kind == "network" and ctx is not None:
        # Neutron: shared is True when the network is shared with the caller's project or all
        doc = {**doc, "shared": SHARED in granted(s, doc["id"], ctx.project_id)}
    if kind == "security_group":
        doc = {**doc, "security_group_rules": docs(s, "security_group_rule", security_group_id=doc["id"])}
    return doc


def make_public_network(s: Session, cidr: str = "172.24.4.0/24") -> None:
    """DevStack's external network ``public`` (and its subnet), created once."""
    if any(d.get("name") == "public" and d.get("router:external") for d in docs(s, "network")):
        return
    admin = _Admin()
    net = create_network(s, admin, {"name": "public", "router:external": True, "shared": False,
                                    "provider:network_type": "flat", "provider:physical_network": "public",
                                    "project_id": "", "mtu": State.settings.external_mtu})
    create_subnet(s, admin, {"network_id": net["id"], "name": "public-subnet", "cidr": cidr, "ip_version": 4,
                             "enable_dhcp": False, "project_id": "",
                             "allocation_pools": [{"start": str(ipaddress.ip_network(cidr).network_address + 2),
                                                   "end": str(ipaddress.ip_network(cidr).broadcast_address - 1)}]})


def make_demo_topology(s: Session, project_id: str, cidr: str = "10.0.0.0/26") -> dict | None:
    """DevStack's tenant topology for the demo project, made once: network ``private``
    with ``private-subnet``, router ``router1`` with its gateway on ``public`` and an
    interface on the subnet. A marker row remembers it was made, so a user who deletes
    it does not see it come back at the next start. Returns the router (None if done)."""
    if s.get(m.Resource, "demo-topology") is not None:
        return None
    s.add(m.Resource(id="demo-topology", kind="meta", project_id=None, data={"project_id": project_id},
                     created_at=utcnow()))
    s.flush()
    ctx = _Admin()
    # (made at start, before identity's port answers: the cloud's own, not held to quota)
    token = _UNCHECKED.set(True)
    try:
        return _demo_topology(s, ctx, project_id, cidr)
    finally:
        _UNCHECKED.reset(token)


def _demo_topology(s: Session, ctx, project_id: str, cidr: str) -> dict:
    net = create_network(s, ctx, {"name": "private", "project_id": project_id})
    sub = create_subnet(s, ctx, {"network_id": net["id"], "name": "private-subnet", "cidr": cidr,
                                 "ip_version": 4, "project_id": project_id})
    router = create_router(s, ctx, {"name": "router1", "project_id": project_id})
    public = next((d for d in docs(s, "network") if d.get("name") == "public" and d.get("router:external")),
                  None)
    row = find(s, "router", router["id"])
    if public is not None:
        router = update_router(s, ctx, row, {"external_gateway_info": {"network_id": public["id"]}})
    add_router_interface(s, ctx, row, {"subnet_id": sub["id"]})
    return router


def any_doc(x: Any) -> Any:
    return x
