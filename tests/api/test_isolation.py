"""Tenant isolation, as a matrix generated from the route tables.

Every operation of every service comes from the service's own description
(``/<service>/openapi.json``, made from its route table; placement's table read here), so a
new route is probed automatically, or fails ``test_every_route_is_classified`` until it is.
What cannot be derived is kept in small tables below: which path parameter names which of
the owner's resources (``PARAMS``), and the routes that are admin-only, caller-scoped or
legitimately shared across projects (``RULES``, each with its reason).

One owner (a member of project A) makes one resource of each kind with the real clients.
Then, with httpx (no client sends another project's token on purpose):

* ``other``, a member of project B, gets 403/404 on every show, update, delete and action
  of them, also with A's project id in the URL (Cinder's and Heat's ``/{project_id}/``,
  Swift's ``AUTH_<project>``); lists, also with ``all_tenants``/``all_projects``/
  ``project_id=<A>`` filters, and every other answer it gets, name none of A's resources;
* ``reader``, a reader of project A, reads them and writes nothing (403);
* both are refused admin APIs with 403;
* afterwards the owner sees every resource as it was.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field

import httpx
import pytest

from onestack.common import openapi
from onestack.network.api.resources import SINGULAR, UNTAGGED
from onestack.placement import api as placement_api
from tests.cloud import wait_for

# the services' mount points (the catalog's URL paths), and how this file names them
MOUNTS = {"identity": "identity", "compute": "compute", "network": "networking", "volume": "volume",
          "image": "image", "orchestration": "orchestration", "metric": "metric", "alarming": "alarming",
          "object_store": "object-store", "placement": "placement"}
WRITES = ("POST", "PUT", "PATCH", "DELETE", "COPY")
FILTERS = ("all_tenants=1", "all_projects=1", "all_tenants=true&project_id={owner}", "project_id={owner}",
           "tenant_id={owner}", "owner={owner}", "project={owner}", "all_tenants=1&tenant_id={owner}",
           "visibility=all", "visibility=shared&member_status=all", "is_public=None", "deleted=true&all_tenants=1")

# path parameter -> the owner's resource it names, per service ("{project}" params are the
# project in the URL: the caller's own, and in a second probe the owner's)
PARAMS = {
    "identity": {"user_id": "user_id", "cred_id": "app_cred", "rule_id": "access_rule",
                 "credential_id": "credential", "access": "ec2", "trust_id": "trust",
                 "project_id": "project_id", "role_id": "member_role", "tag": "tag"},
    "compute": {"server_id": "server", "name": "keypair", "group_id": "server_group",
                "key": "meta_key", "tag": "tag", "network": "net_name", "request_id": "request_id",
                "volume_id": "volume_attached", "port_id": "port_of_server", "tenant_id": "project_id",
                "image_id": "image"},
    "network": {},  # {collection}/{id}: expanded per collection below
    "volume": {"project_id": "{project}", "volume_id": "volume", "snapshot_id": "snapshot", "key": "meta_key",
               "attachment_id": "attachment", "transfer_id": "transfer", "backup_id": "backup",
               "target_id": "project_id"},
    "image": {"image_id": "image", "tag": "tag", "member_id": "image_member"},
    "orchestration": {"tenant_id": "{project}", "name": "stack_name", "stack_id": "stack",
                      "resource": "stack_resource", "event_id": "stack_event", "key": "stack_output",
                      "snapshot_id": "stack_snapshot", "config_id": "software_config",
                      "deployment_id": "software_deployment", "server_id": "server", "rest": "stack_rest"},
    "metric": {"type": "generic", "id": "metric_resource", "name": "metric_name"},
    "alarming": {"alarm_id": "alarm"},
    "object_store": {"account": "{account}", "container": "container", "obj": "object"},
}
# metric's /v1/metric/{id}: a metric, not a resource
PARAMS_BY_PREFIX = {("metric", "/v1/metric/"): {"id": "metric"}}


@dataclass
class Rule:
    service: str
    methods: str  # "*" or "GET,PUT"
    path: str  # a regex on the described path
    kind: str  # admin | shared | self | skip | own (with ``allow``)
    reason: str
    allow: tuple = ()  # further statuses another project's member may get (with the reason)

    def matches(self, service: str, method: str, path: str) -> bool:
        return (self.service == service and (self.methods == "*" or method in self.methods.split(","))
                and re.fullmatch(self.path, path) is not None)


R = Rule
RULES = [
    R("identity", "GET", r"/v3/projects/\{project_id\}/tags/\{tag\}", "own",
      "the owner's project has no tags: not found, for its reader too", (404,)),
    R("placement", "GET", r"/", "skip", "placement's version document (its table marks no route "
      "authenticated: placement checks tokens itself)"),
    # --- compute
    R("compute", "GET", r"/v2\.1/flavors(/detail|/\{flavor_id\}(/os-extra_specs(/\{key\})?)?)?", "shared",
      "flavors (public ones) are every project's, as in Nova"),
    R("compute", "*", r"/v2\.1/flavors.*", "admin", "flavors are managed by admins"),
    R("compute", "GET", r"/v2\.1/images(/detail|/\{image_id\}(/metadata)?)?", "shared",
      "the image proxy shows what Glance lets the caller see (tested on the image service)"),
    R("compute", "DELETE", r"/v2\.1/images/\{image_id\}", "own", "image proxy", ()),
    R("compute", "GET", r"/v2\.1/(os-availability-zone|limits)", "shared", "zones and own limits"),
    R("compute", "GET", r"/v2\.1/os-quota-sets/\{tenant_id\}/defaults", "shared",
      "the default quotas are the same for every project (Nova lets anyone read them)"),
    R("compute", "*", r"/v2\.1/(os-services|os-hypervisors|os-hosts|os-aggregates|os-migrations|"
      r"os-quota-class-sets|os-server-external-events|os-availability-zone/detail).*", "admin",
      "host-level and admin APIs"),
    R("compute", "GET", r"/v2\.1/os-simple-tenant-usage/?", "admin", "every project's usage", (404,)),
    R("compute", "PUT,DELETE", r"/v2\.1/os-quota-sets/\{tenant_id\}", "admin", "quotas are set by admins"),
    R("compute", "GET", r"/v2\.1/servers/\{server_id\}/(diagnostics|migrations(/.*)?)", "admin",
      "diagnostics and migrations are admin APIs (Nova's defaults)"),
    R("compute", "POST,DELETE", r"/v2\.1/servers/\{server_id\}/migrations/.*", "admin", "admin API"),
    # --- network
    R("network", "GET", r"/v2\.0/agents(\.json)?", "list",
      "agents are admin-only: Neutron filters them out of a member's list (empty)"),
    R("network", "*", r"/v2\.0/(agents.*|networks/\{id\}/dhcp-agents|routers/\{id\}/l3-agents)", "admin",
      "agents are admin-only"),
    R("network", "PUT,DELETE", r"/v2\.0/quotas/\{project_id\}", "admin", "quotas are set by admins"),
    R("network", "GET", r"/v2\.0/(availability_zones|extensions.*)", "shared", "the same for every project"),
    R("network", "GET", r"/v2\.0/\{collection\}/\{id\}/tags/\{tag\}", "own",
      "security group rules cannot be tagged by the CLI: their tag is not found", (404,)),
    # --- volume
    R("volume", "GET", r"/v3(/\{project_id\})?/types(/default|/\{type_id\})?", "shared",
      "public volume types are every project's, as in Cinder"),
    R("volume", "*", r"/v3(/\{project_id\})?/types.*", "admin", "types are managed by admins"),
    R("volume", "*", r"/v3(/\{project_id\})?/(os-services|scheduler-stats|capabilities|os-quota-class-sets).*",
      "admin", "host-level and admin APIs"),
    R("volume", "PUT,DELETE", r"/v3(/\{project_id\})?/os-quota-sets/\{target_id\}", "admin",
      "quotas are set by admins"),
    R("volume", "GET", r"/v3(/\{project_id\})?/(os-availability-zone|extensions|limits|resource_filters|"
      r"group_types|os-quota-sets/\{target_id\}/defaults)", "shared", "the same for every project"),
    R("volume", "POST", r"/v3(/\{project_id\})?/(os-volume-transfer|volume-transfers)/\{transfer_id\}/accept",
      "own", "a transfer is accepted by another project with its auth key, as in Cinder: a wrong key is a 400",
      (400,)),
    # --- image
    R("image", "GET", r"/v2/(schemas/.*|info/.*)", "shared", "schemas and stores are the same for everyone"),
    # --- orchestration
    R("orchestration", "*", r"/v1/\{tenant_id\}/(build_info|resource_types.*|template_versions.*|validate|"
      r"stacks/preview)", "shared", "templates and types, no project data"),
    R("orchestration", "GET", r"/v1/\{tenant_id\}/software_deployments/metadata/\{server_id\}", "list",
      "the deployments of a server that the caller's project made: judged by what it names"),
    R("orchestration", "*", r"/v1/\{tenant_id\}/stacks/\{name\}(/\{rest\})?", "own",
      "a stack by name alone, or by a longer path, redirects (302) to its canonical URL", (302, 404, 405)),
    R("orchestration", "GET", r"/v1/\{tenant_id\}/stacks/\{name\}/\{stack_id\}/export", "own",
      "exporting a stack is a member's (Heat's stacks:export)", (403,)),
    # --- metric
    R("metric", "GET", r"/v1/resource/\{type\}/?", "list", "a list of resources"),
    R("metric", "POST", r"/v1/resource/\{type\}/?", "create", "a resource in the caller's project"),
    R("metric", "DELETE", r"/v1/resource/\{type\}/?", "bulk",
      "a batch delete by query: of what the caller may see (the snapshot proves the owner's stay)"),
    R("metric", "GET", r"/v1/(archive_policy|archive_policy_rule|resource_type)(/\{name\})?/?", "shared",
      "archive policies and resource types are the same for every project, as in Gnocchi"),
    R("metric", "*", r"/v1/(archive_policy|archive_policy_rule)(/\{name\})?/?", "admin",
      "archive policies are managed by admins"),
    R("metric", "*", r"/v1/resource_type(/\{name\})?/?", "admin", "resource types are managed by admins"),
    R("metric", "GET", r"/v1/(status|capabilities)/?", "shared", "the service's own state, no project data"),
    # --- alarming
    R("alarming", "GET", r"/v2/(capabilities/?|metrics)", "shared", "no project data"),
    R("alarming", "POST,DELETE", r"/v2/quotas", "admin", "quotas are set by admins"),
    R("alarming", "POST", r"/v2/query/alarms(/history)?", "list", "a query: what it finds is judged"),
    R("metric", "POST", r"/v1/(search/resource/\{type\}|aggregates|aggregation/.*)/?", "list",
      "a search or an aggregation: what it finds is judged"),
    R("metric", "GET", r"/v1/aggregation/.*", "list", "an aggregation: what it finds is judged; none "
      "named, a 400", (400,)),
    R("metric", "POST", r"/v1/batch/.*", "bulk", "batched measures: the body names the owner's metrics"),
    # --- object-store
    R("object_store", "PUT,DELETE", r"/v1/\{account\}/?", "admin", "accounts are made and removed by "
      "the reseller admin, as in Swift"),
]


def classify(service: str, method: str, path: str) -> tuple[str, Rule | None]:
    for rule in RULES:
        if rule.matches(service, method, path):
            return rule.kind, rule
    if service == "placement":
        return "admin", None  # placement is an admin-only API
    if service == "identity":
        return _identity(method, path), None
    params = [p for p in _params(path) if not _project_param(service, p)]
    if service == "network":
        if path.startswith(("/v2.0/{collection}/{id}", "/v2.0/routers/{router_id}", "/v2.0/quotas/{project_id}")):
            return "own", None
        if path in ("/v2.0/{collection}", "/v2.0/quotas"):
            return ("list" if method == "GET" else "create"), None
    if not params:
        return {"GET": "list", "POST": "create"}.get(method, "unclassified"), None
    known = {**PARAMS.get(service, {}), **_prefixed(service, path)}
    if all(p in known for p in params):
        return "own", None
    return "unclassified", None


def _identity(method: str, path: str) -> str:
    """Keystone's defaults: a member reads its own user, project and roles and manages its
    own credentials, application credentials and trusts; everything else is admin's (a new
    identity route is probed as an admin API: a member's 2xx there fails the matrix)."""
    if path.startswith("/v3/auth/") or path == "/v3/limits/model":
        return "self"
    if path.startswith("/v3/users/{user_id}/") and any(
            s in path for s in ("application_credentials", "access_rules", "credentials/OS-EC2")):
        return "own"  # the owner's own: another user gets 403/404
    if path == "/v3/users/{user_id}/password":
        return "skip"  # no token: the old password is the credential
    if path in ("/v3/users/{user_id}", "/v3/users/{user_id}/projects", "/v3/users/{user_id}/groups",
                "/v3/projects/{project_id}") and method == "GET":
        return "own"
    if path.startswith("/v3/credentials") or path.startswith("/v3/OS-TRUST/trusts"):
        return {"/v3/credentials": "list", "/v3/OS-TRUST/trusts": "list"}.get(path, "own") \
            if method in ("GET", "DELETE", "PATCH") else "create"
    if path in ("/v3/projects/{project_id}/tags", "/v3/projects/{project_id}/tags/{tag}") and method == "GET":
        return "own"
    if path in ("/v3/role_assignments", "/v3/projects", "/v3/regions", "/v3/services", "/v3/endpoints",
                "/v3/roles", "/v3/domains", "/v3/limits", "/v3/registered_limits") and method == "GET":
        return "list"  # filtered to what the caller may see, or refused
    return "admin"


def _params(path: str) -> list[str]:
    return [p.split(":")[0] for p in re.findall(r"{([^}]+)}", path)]


def _project_param(service: str, name: str) -> bool:
    return PARAMS.get(service, {}).get(name) in ("{project}", "{account}")


def _prefixed(service: str, path: str) -> dict:
    out: dict = {}
    for (svc, prefix), extra in PARAMS_BY_PREFIX.items():
        if svc == service and path.startswith(prefix):
            out.update(extra)
    return out


@dataclass
class Op:
    service: str
    method: str
    path: str
    kind: str
    rule: Rule | None = None


def operations(cloud) -> list[Op]:
    ops = []
    docs = {s: httpx.get(f"{cloud.url}/{m}/openapi.json").json() for s, m in MOUNTS.items() if s != "placement"}
    placement_api.build()
    docs["placement"] = openapi.document(placement_api.api, "Placement", "1")
    for service, doc in docs.items():
        for path, item in doc["paths"].items():
            for method, op in [*item.items(), *item.get("x-methods", {}).items()]:
                if method == "x-methods":
                    continue
                if not op["security"] and service != "placement":
                    continue  # no token: versions, descriptions, Heat's signed signal URL
                kind, rule = classify(service, method.upper(), path)
                ops.append(Op(service, method.upper(), path, kind, rule))
    return ops


# --- the owner's resources, made with the real clients ------------------------------------


@dataclass
class World:
    marker: str
    env: dict = field(default_factory=dict)  # persona -> OS_* env
    ids: dict = field(default_factory=dict)  # persona -> {"project_id", "user_id", "token"}
    res: dict = field(default_factory=dict)  # resource kind -> id (or name)
    secrets: set = field(default_factory=set)


def _token(cloud, env) -> dict:
    t = cloud.os_json("token", "issue", env=env)
    return {"token": t["id"], "project_id": t["project_id"], "user_id": t["user_id"]}


@pytest.fixture(scope="module")
def world(cloud, tmp_path_factory):
    m = f"iso{uuid.uuid4().hex[:6]}"
    w = World(marker=m)
    with cloud.new_member(f"{m}-own") as owner, cloud.new_member("isolation-other") as other:
        w.env = {"owner": owner, "other": other}
        reader_name = f"{m}-reader"
        cloud.openstack("user", "create", "--project", owner["OS_PROJECT_NAME"], "--password", "pw", reader_name)
        cloud.openstack("role", "add", "--project", owner["OS_PROJECT_NAME"], "--user", reader_name, "reader")
        w.env["reader"] = {**owner, "OS_USERNAME": reader_name, "OS_PASSWORD": "pw"}
        w.ids = {p: _token(cloud, e) for p, e in w.env.items()}
        _make(cloud, w, tmp_path_factory.mktemp("iso"))
        yield w
        cloud.openstack("user", "delete", reader_name, check=False)
        _cleanup(cloud, w)


def _make(cloud, w: World, tmp) -> None:
    env, m, r = w.env["owner"], w.marker, w.res

    def j(*args):  # the CLI's JSON, its keys in lower case ("ID" or "id" by command)
        out = cloud.os_json(*args, env=env)
        low = lambda d: {k.lower(): v for k, v in d.items()}  # noqa: E731
        return [low(d) for d in out] if isinstance(out, list) else low(out)

    def run(*args):
        return cloud.openstack(*args, env=env).stdout

    own = w.ids["owner"]
    r["project_id"], r["user_id"] = own["project_id"], own["user_id"]
    r["member_role"] = cloud.os_json("role", "show", "member")["id"]
    r["meta_key"], r["tag"] = "isokey", f"{m}-tag"
    # identity
    r["app_cred"] = j("application", "credential", "create", f"{m}-ac")["id"]
    r["access_rule"] = uuid.uuid4().hex  # access rules are not supported: any id is someone else's
    r["ec2"] = j("ec2", "credentials", "create")["access"]
    r["credential"] = j("credential", "create", own["user_id"], f"{m}-blob", "--project", own["project_id"])["id"]
    admin_user = cloud.os_json("user", "show", "admin")["id"]
    r["trust"] = j("trust", "create", "--project", own["project_id"], "--role", "member",
                   own["user_id"], admin_user)["id"]
    # image: shared with a third project (admin's) only
    disk = tmp / "disk.raw"
    disk.write_bytes(b"\0" * 1024)
    r["image"] = j("image", "create", "--shared", "--disk-format", "raw", "--container-format", "bare",
                   "--file", str(disk), "--tag", r["tag"], f"{m}-img")["id"]
    r["public_image"] = cloud.os_json("image", "create", "--public", "--disk-format", "raw", "--container-format",
                                      "bare", "--file", str(disk), "isolation-public")["id"]  # every project's
    admin_project = cloud.os_json("project", "show", "admin")["id"]
    run("image", "add", "project", r["image"], admin_project)
    r["image_member"] = admin_project
    # network
    r["network"] = j("network", "create", "--tag", r["tag"], f"{m}-net")["id"]
    r["net_name"] = f"{m}-net"
    r["subnet"] = j("subnet", "create", "--network", r["network"], "--subnet-range", "10.77.0.0/24", "--tag", r["tag"], f"{m}-sn")["id"]
    r["port"] = j("port", "create", "--network", r["network"], "--tag", r["tag"], f"{m}-port")["id"]
    r["router"] = j("router", "create", "--tag", r["tag"], f"{m}-rt")["id"]
    r["security_group"] = j("security", "group", "create", "--tag", r["tag"], f"{m}-sg")["id"]
    r["security_group_rule"] = j("security", "group", "rule", "create", "--proto", "tcp", "--dst-port", "22",
                                 r["security_group"])["id"]
    r["subnetpool"] = j("subnet", "pool", "create", "--pool-prefix", "10.78.0.0/16", "--tag", r["tag"], f"{m}-pool")["id"]
    r["rbac_policy"] = j("network", "rbac", "create", "--type", "network", "--action", "access_as_shared",
                         "--target-project", admin_project, r["network"])["id"]
    ext = cloud.os_json("network", "create", "--external", f"ext{uuid.uuid4().hex[:6]}")["id"]  # shared
    cloud.openstack("subnet", "create", "--network", ext, "--subnet-range", "10.79.0.0/24", "ext-sn")
    r["ext_network"] = ext
    r["floatingip"] = j("floating", "ip", "create", "--tag", r["tag"], ext)["id"]
    # compute
    r["keypair"] = f"{m}-kp"
    run("keypair", "create", "--private-key", str(tmp / "kp"), r["keypair"])
    r["server_group"] = j("server", "group", "create", "--policy", "anti-affinity", f"{m}-sg")["id"]
    r["server"] = j("server", "create", "--flavor", "m1.nano", "--image", r["image"], "--network", r["network"],
                    "--property", f"{r['meta_key']}=v", f"{m}-vm")["id"]
    wait_for(lambda: j("server", "show", r["server"])["status"] == "ACTIVE", 60, "the owner's server ACTIVE")
    run("--os-compute-api-version", "2.26", "server", "set", "--tag", r["tag"], r["server"])
    r["request_id"] = j("server", "event", "list", r["server"])[0]["request id"]
    r["port_of_server"] = j("port", "list", "--server", r["server"])[0]["id"]
    # volume
    r["volume"] = j("volume", "create", "--size", "1", "--property", f"{r['meta_key']}=v", f"{m}-vol")["id"]
    wait_for(lambda: j("volume", "show", r["volume"])["status"] == "available", 60, "the volume")
    r["snapshot"] = j("volume", "snapshot", "create", "--volume", r["volume"], "--property",
                      f"{r['meta_key']}=v", f"{m}-snap")["id"]
    wait_for(lambda: j("volume", "snapshot", "show", r["snapshot"])["status"] == "available", 60, "the snapshot")
    r["backup"] = j("volume", "backup", "create", "--name", f"{m}-bak", r["volume"])["id"]
    wait_for(lambda: j("volume", "backup", "show", r["backup"])["status"] == "available", 60, "the backup")
    moving = j("volume", "create", "--size", "1", f"{m}-vol2")["id"]
    wait_for(lambda: j("volume", "show", moving)["status"] == "available", 60, "the second volume")
    r["transfer"] = j("volume", "transfer", "request", "create", "--name", f"{m}-xfer", moving)["id"]
    r["volume2"] = moving
    attached = j("volume", "create", "--size", "1", f"{m}-vol3")["id"]
    wait_for(lambda: j("volume", "show", attached)["status"] == "available", 60, "the third volume")
    run("server", "add", "volume", r["server"], attached)
    vol = wait_for(lambda: (v := j("volume", "show", attached))["status"] == "in-use" and v, 60, "in-use")
    r["volume_attached"], r["attachment"] = attached, vol["attachments"][0]["attachment_id"]
    # orchestration
    tpl = tmp / "stack.yaml"
    tpl.write_text(json.dumps({"heat_template_version": "2018-08-31",
                               "resources": {"rnd": {"type": "OS::Heat::RandomString"}},
                               "outputs": {"out": {"value": {"get_attr": ["rnd", "value"]}}}}))
    r["stack_name"] = f"{m}-stack"
    r["stack"] = j("stack", "create", "-t", str(tpl), r["stack_name"])["id"]
    wait_for(lambda: j("stack", "show", r["stack"])["stack_status"] == "CREATE_COMPLETE", 60, "the stack")
    r["stack_resource"], r["stack_output"] = "rnd", "out"
    r["stack_event"] = j("stack", "event", "list", "--resource", "rnd", r["stack_name"])[0]["id"]
    r["stack_snapshot"] = j("stack", "snapshot", "create", r["stack_name"])["id"]
    r["stack_rest"] = f"{r['stack']}/resources"
    cfg = tmp / "cfg.sh"
    cfg.write_text("#!/bin/sh\n")
    r["software_config"] = j("software", "config", "create", "--config-file", str(cfg), f"{m}-cfg")["id"]
    r["software_deployment"] = j("software", "deployment", "create", "--config", r["software_config"],
                                 "--server", r["server"], "--signal-transport", "NO_SIGNAL", f"{m}-dep")["id"]
    # metric
    r["metric_resource"] = str(uuid.uuid4())
    j("metric", "resource", "create", "--type", "generic", "--create-metric", "cpu:low", r["metric_resource"])
    r["metric_name"] = "cpu"
    r["metric"] = j("metric", "create", "--archive-policy-name", "low", f"{m}-metric")["id"]
    # alarming
    r["alarm"] = j("alarm", "create", "--type", "event", "--event-type", "compute.instance.update",
                   "--name", f"{m}-alarm")["alarm_id"]
    # object-store
    r["container"], r["object"] = f"{m}-c", f"{m}-o"
    obj = tmp / r["object"]
    obj.write_text("isolated")
    run("container", "create", r["container"])
    cloud.openstack("object", "create", "--name", r["object"], r["container"], str(obj), env=env)
    w.secrets = {v for k, v in r.items() if k not in ("project_id", "user_id", "member_role", "meta_key",
                                                         "stack_resource", "stack_output", "metric_name",
                                                         "image_member", "ext_network", "stack_rest", "access_rule",
                                                         "public_image")}
    w.secrets.add(m + "-")  # every name made here


def _cleanup(cloud, w: World) -> None:
    env, r = w.env["owner"], w.res
    for args in (("stack", "delete", "--yes", "--wait", w.res.get("stack_name", "-")),
                 ("server", "delete", "--wait", r.get("server", "-")),
                 ("floating", "ip", "delete", r.get("floatingip", "-")),
                 ("router", "delete", r.get("router", "-")),
                 ("port", "delete", r.get("port", "-")),
                 ("network", "delete", r.get("network", "-")),
                 ("image", "delete", r.get("image", "-"))):
        cloud.openstack(*args, env=env, check=False)
    cloud.openstack("network", "delete", r.get("ext_network", "-"), check=False)
    cloud.openstack("image", "delete", r.get("public_image", "-"), check=False)


# --- the probes ---------------------------------------------------------------------------


def _urls(cloud, w: World, op: Op, persona: str) -> list[tuple[str, bool]]:
    """The URLs ``persona`` sends ``op`` to: (url, whether it carries the owner's project
    where the caller's own belongs)."""
    r = w.res
    caller = w.ids[persona]["project_id"]
    base = f"{cloud.url}/{MOUNTS[op.service]}"
    known = {**PARAMS.get(op.service, {}), **_prefixed(op.service, op.path)}

    def fill(path: str, project: str) -> str:
        def one(mt):
            name = mt.group(1).split(":")[0]
            key = known.get(name)
            if key == "{project}":
                return project
            if key == "{account}":
                return f"AUTH_{project}"
            if key is None:
                return {"flavor_id": "1", "hypervisor_id": "1", "host": "h", "aggregate_id": "1"}.get(
                    name, "x")  # admin routes: the policy answers before any lookup
            return str(r.get(key, key))
        return base + re.sub(r"{([^}]+)}", one, path)

    if op.service == "network" and "{collection}" in op.path:
        # every collection the service has: the owner made one of each (world checks it)
        return [(base + op.path.replace("{collection}", c).replace("{id}", r[kind]).replace("{tag}", r["tag"]), False)
                for c, kind in SINGULAR.items() if not ("/tags" in op.path and kind in UNTAGGED)]
    if op.service == "network":
        p = op.path.replace("{router_id}", r["router"]).replace("{id}", r["network"])
        p = p.replace("{project_id}", r["project_id"])
        return [(base + p, False)]
    has_project = any(_project_param(op.service, p) for p in _params(op.path))
    urls = [] if op.service == "object_store" and persona == "other" and op.kind == "own" else \
        [(fill(op.path, caller), False)]
    if has_project and persona == "other":
        urls.append((fill(op.path, r["project_id"]), True))
    return urls


# bodies a write is valid with, so that the probe reaches the lookup (an empty body is
# mostly refused first, 400, which proves less); by the path's last part, or the path
BODIES = {
    "/v2.1/servers/{server_id}": {"server": {"name": "probe"}},
    "/v2.1/servers/{server_id}/action": {"pause": None},
    "/v2.1/servers/{server_id}/os-volume_attachments": {"volumeAttachment": {"volumeId": "{volume2}"}},
    "/v2.1/servers/{server_id}/remote-consoles": {"remote_console": {"protocol": "vnc", "type": "novnc"}},
    "metadata": {"metadata": {"probe": "x"}},
    "{key}": {"meta": {"isokey": "x"}},
    "tags": {"tags": ["probe"]},
    "/v3/volumes/{volume_id}": {"volume": {"name": "probe"}},
    "/v3/volumes/{volume_id}/action": {"os-extend": {"new_size": 2}},
    "/v3/snapshots/{snapshot_id}": {"snapshot": {"name": "probe"}},
    "/v3/snapshots/{snapshot_id}/action": {"os-update_snapshot_status": {"status": "error"}},
    "/v3/backups/{backup_id}": {"backup": {"name": "probe"}},
    "/v3/backups/{backup_id}/action": {"os-reset_status": {"status": "error"}},
    "/v3/backups/{backup_id}/restore": {"restore": {}},
    "/v3/attachments/{attachment_id}": {"attachment": {"connector": {}}},
    "/v3/attachments/{attachment_id}/action": {"os-complete": {}},
    "accept": {"accept": {"auth_key": "probe"}},
    "/v3/credentials/{credential_id}": {"credential": {"blob": "probe"}},
    "/v3/users/{user_id}/credentials/OS-EC2": {"tenant_id": "{project_id}"},
    "/v3/users/{user_id}/application_credentials": {"application_credential": {"name": "probe"}},
    "/v2/images/{image_id}/members": {"member": "{image_member}"},
    "/v2/images/{image_id}/members/{member_id}": {"status": "accepted"},
    "/v2/images/{image_id}/import": {"method": {"name": "glance-direct"}},
    "/v2/alarms/{alarm_id}/state": "alarm",
    "/v2/alarms/{alarm_id}": {"name": "probe", "type": "event"},
    "/v1/batch/metrics/measures": {"{metric}": [{"timestamp": "2026-01-01T00:00:00", "value": 1}]},
    "/v1/batch/resources/metrics/measures": {
        "{metric_resource}": {"cpu": [{"timestamp": "2026-01-01T00:00:00", "value": 1}]}},
}


def _body(op: Op, url: str, w: World):
    path = re.sub(r"^/v3/\{project_id\}", "/v3", op.path).rstrip("/")
    if op.service == "network" and path == "/v2.0/{collection}/{id}":
        kind = SINGULAR[url.split("/v2.0/")[1].split("/")[0]]
        return {kind: {"description": "probe"}}
    last = path.rstrip("/").rsplit("/", 1)[-1]
    body = BODIES.get(path, BODIES.get(last, {}))
    text = json.dumps(body)
    for key, value in w.res.items():  # "{volume2}": the owner's second volume
        text = text.replace("{" + key + "}", str(value))
    return json.loads(text)


def _send(client: httpx.Client, op: Op, url: str, token: str, w: World) -> httpx.Response:
    headers = {"X-Auth-Token": token, # compute 2.26: server tags, and os-hosts still there
               "OpenStack-API-Version": "compute 2.26, volume latest, placement latest"}
    if op.method == "COPY":
        headers["Destination"] = "copied/object"
    if op.method not in WRITES or op.method == "DELETE":
        return client.request(op.method, url, headers=headers)
    if op.service == "image" and op.method == "PATCH":
        headers["Content-Type"] = "application/openstack-images-v2.1-json-patch"
        return client.request(op.method, url, headers=headers, content=b"[]")
    return client.request(op.method, url, headers=headers, json=_body(op, url, w))


def _leaks(w: World, resp: httpx.Response) -> list[str]:
    """The owner's ids and names in an answer, but for those the request named itself
    (a 404 may say which id it did not find, a 400 which ones of a batch, a 403 which object
    it may not copy)."""
    req = resp.request
    text, asked = resp.text, " ".join([str(req.url), req.content.decode(errors="replace"), *req.headers.values()])
    return sorted(s for s in w.secrets if s and s in text and s not in asked)


@pytest.fixture(scope="module")
def ops(cloud):
    return operations(cloud)


def test_every_route_is_classified(ops):
    """A new route fails here until it is derived (its parameters name known resources) or
    classified in RULES with a reason."""
    assert all(rule.reason for rule in RULES)
    # a route whose parameter names nothing known is not guessed at
    assert classify("compute", "GET", "/v2.1/os-new/{thing_id}") == ("unclassified", None)
    assert classify("volume", "GET", "/v3/{project_id}/volumes/{volume_id}")[0] == "own"
    unclassified = [f"{o.service} {o.method} {o.path}" for o in ops if o.kind == "unclassified"]
    assert not unclassified, "classify these routes in RULES or PARAMS:\n" + "\n".join(unclassified)


def _snapshot(cloud, w: World) -> dict:
    """What the owner sees of each resource (the fields no probe may change)."""
    r, env = w.res, w.env["owner"]
    shows = {
        "server": ("server", "show", r["server"]), "volume": ("volume", "show", r["volume"]),
        "snapshot": ("volume", "snapshot", "show", r["snapshot"]), "image": ("image", "show", r["image"]),
        "network": ("network", "show", r["network"]), "port": ("port", "show", r["port"]),
        "router": ("router", "show", r["router"]), "stack": ("stack", "show", r["stack"]),
        "alarm": ("alarm", "show", r["alarm"]), "keypair": ("keypair", "show", r["keypair"]),
        "security_group": ("security", "group", "show", r["security_group"]),
        "backup": ("volume", "backup", "show", r["backup"]),
        "metric": ("metric", "show", r["metric"]),
        "measures": ("metric", "measures", "show", "--refresh", r["metric"]),
        "metric_resource": ("metric", "resource", "show", r["metric_resource"]),
        "object": ("object", "show", r["container"], r["object"]),
    }
    volatile = {"updated_at", "updated", "updated_time", "OS-SRV-USG:launched_at", "revision_number",
                "state_timestamp", "timestamp", "last-modified", "x-timestamp", "x-openstack-request-id"}
    out = {}
    for name, args in shows.items():
        done = cloud.openstack(*args, "-f", "json", env=env, check=False)
        if done.returncode:
            out[name] = f"gone: {done.stderr.strip()[-200:]}"
            continue
        data = json.loads(done.stdout)
        out[name] = {k: v for k, v in data.items() if k.lower() not in volatile} if isinstance(data, dict) else data
    return out


def test_isolation_matrix(cloud, world, ops):
    w, r = world, world.res
    before = _snapshot(cloud, w)
    failures: list[str] = []
    probes = 0
    listed: list[str] = []  # the reader's lists
    with httpx.Client(timeout=30) as client:
        for op in ops:
            if op.kind in ("skip", "self", "unclassified"):
                continue
            for persona in ("other", "reader"):
                token = w.ids[persona]["token"]
                for url, owners_project in _urls(cloud, w, op, persona):
                    variants = [url]
                    if op.kind == "list" and persona == "other" and op.method == "GET":
                        variants += [f"{url}?{f.format(owner=r['project_id'])}" for f in FILTERS]
                    for u in variants:
                        if op.kind == "create" and persona == "other" and not owners_project:
                            continue  # creating in one's own project is no probe
                        resp = _send(client, op, u, token, w)
                        probes += 1
                        problem = _judge(op, persona, owners_project, resp, w)
                        if persona == "reader" and op.kind == "list" and resp.is_success:
                            listed.append(resp.text)
                        if problem:
                            failures.append(f"{persona} {op.method} {u.removeprefix(cloud.url)} -> "
                                            f"{resp.status_code} {problem}: {resp.text[:160]}")
    after = _snapshot(cloud, w)
    changed = [k for k in before if before[k] != after[k]]
    print(f"isolation matrix: {len(ops)} operations x 2 personas, {probes} probes")
    # the reader lists what its project has (but for what is the owner user's own)
    text = "\n".join(listed)
    unlisted = sorted(k for k in READER_LISTS if str(r[k]) not in text)
    if unlisted:
        failures.append(f"the reader's lists miss the owner's {unlisted}")
    changes = [f"the owner's {k} changed: {before[k]} -> {after[k]}" for k in changed]
    assert not failures and not changes, f"{len(failures)} of {probes} probes:\n" + "\n".join(failures + changes)


# what the reader must find in its project's lists
READER_LISTS = ("server", "server_group", "image", "network", "subnet", "port", "router", "security_group",
                "security_group_rule", "subnetpool", "floatingip", "rbac_policy", "volume", "snapshot", "backup",
                "attachment", "transfer", "stack", "software_config", "software_deployment", "metric_resource",
                "metric", "alarm", "container")


def _judge(op: Op, persona: str, owners_project: bool, resp: httpx.Response, w: World) -> str:
    """What is wrong with an answer, or "". A 400 (a body refused before the lookup) and a
    405 (no such method) change nothing and name nothing: what they could have changed, the
    owner's snapshot shows."""
    code = resp.status_code
    write = op.method in WRITES
    harmless = {400, 405} if write else set()
    allow = set(op.rule.allow) if op.rule else set()
    if code >= 500:
        return "a server error"
    if persona == "other":
        if leaked := _leaks(w, resp):
            return f"names the owner's {leaked}"
        if op.kind == "admin":
            ok = {403} if not _params(op.path) and not write else {403, 404} | harmless
            ok |= allow | ({400, 401} if owners_project else set())
            return "" if code in ok else f"not one of {sorted(ok)} for an admin API"
        if op.kind == "bulk" and op.method == "POST":
            return "" if code in {400, 403, 404} else "wrote into the owner's resources"
        if op.kind == "own" or owners_project:
            ok = {403, 404} | harmless | allow | ({400, 401} if owners_project else set())
            return "" if code in ok else f"not one of {sorted(ok)}"
        return ""  # lists, searches and shared reads: judged by what they name
    # the reader of the owner's project
    if op.kind == "admin":
        ok = {403} if not _params(op.path) and not write else {403, 404} | harmless
        return "" if code in ok | allow else f"not one of {sorted(ok)} for an admin API"
    if op.kind == "own" and _user_scoped(op):  # the reader is just another user there
        return "" if code in {403, 404} | harmless else "another user's resource, not 403/404"
    if op.kind in ("own", "create", "bulk") and write:
        return "" if code in {403} | harmless | allow else "a reader wrote (not 403)"
    if op.kind == "own" and not (200 <= code < 300 or code in allow):
        return "a reader could not read"
    if op.kind == "list" and op.method == "GET" and not (200 <= code < 300 or code in {403} | allow):
        return "a reader could not list"
    return ""


def _user_scoped(op: Op) -> bool:
    """Resources of the owner *user* (Keystone's credentials and trusts, Nova's keypairs)."""
    return (op.service == "identity" and op.path.startswith(("/v3/users/", "/v3/credentials", "/v3/OS-TRUST"))
            or op.service == "compute" and op.path.startswith("/v2.1/os-keypairs"))


# Creates in the caller's own project that name one of the owner's resources in their body
# (or Swift's copy headers): a reference no route table shows, so a table of its own.
# (service, path under the mount, body, headers); "{x}" is the owner's x, "{own}" the caller's project
CROSS_CREATES = [
    ("networking", "/v2.0/ports", {"port": {"network_id": "{network}"}}, {}),
    ("networking", "/v2.0/subnets", {"subnet": {"network_id": "{network}", "cidr": "10.90.0.0/24",
                                                "ip_version": 4}}, {}),
    ("networking", "/v2.0/security-group-rules", {"security_group_rule": {
        "security_group_id": "{security_group}", "direction": "ingress"}}, {}),
    ("networking", "/v2.0/rbac-policies", {"rbac_policy": {"object_type": "network", "object_id": "{network}",
                                                           "action": "access_as_shared", "target_tenant": "{own}"}}, {}),
    ("networking", "/v2.0/floatingips", {"floatingip": {"floating_network_id": "{ext_network}",
                                                        "port_id": "{port}"}}, {}),
    ("volume", "/v3/volumes", {"volume": {"size": 1, "snapshot_id": "{snapshot}"}}, {}),
    ("volume", "/v3/volumes", {"volume": {"size": 1, "source_volid": "{volume}"}}, {}),
    ("volume", "/v3/volumes", {"volume": {"size": 1, "backup_id": "{backup}"}}, {}),
    ("volume", "/v3/snapshots", {"snapshot": {"volume_id": "{volume}"}}, {}),
    ("volume", "/v3/backups", {"backup": {"volume_id": "{volume}"}}, {}),
    ("volume", "/v3/volume-transfers", {"transfer": {"volume_id": "{volume}"}}, {}),
    ("volume", "/v3/attachments", {"attachment": {"volume_uuid": "{volume}", "instance_uuid": "{server}"}}, {}),
    ("compute", "/v2.1/servers", {"server": {"name": "probe", "flavorRef": "{flavor}", "imageRef": "{image}",
                                             "networks": "none"}}, {}),
    ("compute", "/v2.1/servers", {"server": {"name": "probe", "flavorRef": "{flavor}", "imageRef": "{public_image}",
                                             "networks": [{"uuid": "{network}"}]}}, {}),
    ("compute", "/v2.1/servers", {"server": {"name": "probe", "flavorRef": "{flavor}", "imageRef": "{public_image}",
                                             "networks": [{"port": "{port}"}]}}, {}),
    ("compute", "/v2.1/servers", {"server": {"name": "probe", "flavorRef": "{flavor}", "imageRef": "{public_image}",
                                             "networks": "none", "key_name": "{keypair}"}}, {}),
    ("compute", "/v2.1/servers", {"server": {"name": "probe", "flavorRef": "{flavor}", "networks": "none",
                                             "block_device_mapping_v2": [{
                                                 "uuid": "{volume}", "source_type": "volume",
                                                 "destination_type": "volume", "boot_index": 0}]}}, {}),
    ("compute", "/v2.1/servers", {"server": {"name": "probe", "flavorRef": "{flavor}", "imageRef": "{public_image}",
                                             "networks": "none"},
                                  "os:scheduler_hints": {"group": "{server_group}"}}, {}),
    ("orchestration", "/v1/{own}/software_deployments", {"server_id": "{server}", "config_id": "{software_config}"},
     {}),
    ("metric", "/v1/resource/generic", {"id": "{probe_id}", "metrics": {"cpu": "{metric}"}}, {}),
    ("object-store", "/v1/AUTH_{own}/probe", None, {}),  # the caller's container, for the copies
    ("object-store", "/v1/AUTH_{own}/probe/copied", b"", {"X-Copy-From": "{container}/{object}",
                                                          "X-Copy-From-Account": "AUTH_{project_id}"}),
]


def test_creates_cannot_name_the_owners_resources(cloud, world):
    w, r = world, world.res
    before = _snapshot(cloud, w)
    token, own = w.ids["other"]["token"], w.ids["other"]["project_id"]
    flavor = cloud.os_json("flavor", "show", "m1.nano")["id"]
    values = {**{k: str(v) for k, v in r.items()}, "own": own, "flavor": flavor, "probe_id": str(uuid.uuid4())}
    failures = []
    with httpx.Client(timeout=30) as client:
        for service, path, body, headers in CROSS_CREATES:
            def fill(text: str) -> str:
                return re.sub(r"{(\w+)}", lambda mt: values.get(mt.group(1), mt.group(0)), text)
            kw: dict = {"headers": {"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.37, volume 3.27",
                                    **{k: fill(v) for k, v in headers.items()}}}
            if isinstance(body, dict):
                kw["json"] = json.loads(fill(json.dumps(body)))
            elif body is not None:
                kw["content"] = body
            resp = client.request("POST" if isinstance(body, dict) else "PUT",
                                  f"{cloud.url}/{service}{fill(path)}", **kw)
            if body is None:  # the caller's own container
                assert resp.is_success, resp.text
                continue
            if resp.status_code not in (400, 403, 404) or _leaks(w, resp):
                failures.append(f"{service} {fill(path)} {kw.get('json') or headers} -> {resp.status_code}: "
                                f"{resp.text[:200]}")
    after = _snapshot(cloud, w)
    changes = [f"the owner's {k} changed: {before[k]} -> {after[k]}" for k in before if before[k] != after[k]]
    assert not failures and not changes, "\n".join(failures + changes)
