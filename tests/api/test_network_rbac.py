"""RBAC policies (Neutron's ``rbac-policies``) through the real `openstack` CLI and
openstacksdk: the book's "sharing networks between projects" exercise.

Project A (a member user) shares its network with project B: B sees it, lists it,
puts a port on it (not a subnet); project C sees nothing. A policy a project's port
depends on cannot be deleted or retargeted (409) until the port is gone. An
``access_as_external`` policy lets a project take floating IPs from a network and set
router gateways on it. ``shared=True`` is a "*" access_as_shared policy, listed as one.
"""

from __future__ import annotations

import json
import uuid

import openstack
import pytest
from openstack import exceptions as sdkexc


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _conn(env: dict) -> openstack.connection.Connection:
    return openstack.connect(
        auth_url=env["OS_AUTH_URL"], username=env["OS_USERNAME"], password=env["OS_PASSWORD"],
        project_name=env["OS_PROJECT_NAME"], user_domain_name="Default", project_domain_name="Default",
        region_name="RegionOne", identity_api_version="3",
    )


class Member:
    """A member user of a project of its own: CLI environment, project id, sdk connection."""

    def __init__(self, cloud, env: dict):
        self.cloud, self.env = cloud, env
        self.project_id = cloud.os_json("project", "show", env["OS_PROJECT_NAME"])["id"]
        self.conn = _conn(env)

    def cli(self, *args: str, check: bool = True):
        return self.cloud.openstack(*args, env=self.env, check=check)

    def json(self, *args: str):
        return json.loads(self.cli(*args, "-f", "json").stdout)

    def fails(self, *args: str) -> str:
        r = self.cli(*args, check=False)
        assert r.returncode != 0, f"openstack {' '.join(args)} should have failed:\n{r.stdout}"
        return r.stderr

    def network_ids(self) -> set[str]:
        return {n["ID"] for n in self.json("network", "list")}


@pytest.fixture(scope="module")
def projects(cloud):
    """Three member users, each in a project of its own: A, B and C."""
    with cloud.new_member("rbac-a") as a, cloud.new_member("rbac-b") as b, cloud.new_member("rbac-c") as c:
        yield Member(cloud, a), Member(cloud, b), Member(cloud, c)


@pytest.fixture(scope="module")
def admin(cloud):
    return _conn(cloud.openrc("admin"))


def test_rbac_extension_listed(cloud):
    aliases = {e["Alias"] for e in cloud.os_json("extension", "list", "--network")}
    assert "rbac-policies" in aliases


def test_share_a_network_with_one_project(cloud, projects):
    a, b, c = projects
    net = a.json("network", "create", _name("a-net"))
    sub = a.json("subnet", "create", "--network", net["id"], "--subnet-range", "10.61.0.0/24", _name("a-sub"))
    try:
        assert net["id"] not in b.network_ids()
        pol = a.json("network", "rbac", "create", "--target-project", b.project_id, "--action",
                     "access_as_shared", "--type", "network", net["name"])
        assert pol["object_id"] == net["id"] and pol["object_type"] == "network"
        assert pol["action"] == "access_as_shared" and pol["target_project_id"] == b.project_id
        assert pol["project_id"] == a.project_id

        # B sees it (shared, as far as B is concerned) and its subnet; the owner's view is unchanged
        assert net["id"] in b.network_ids()
        assert b.json("network", "show", net["id"])["shared"] is True
        assert net["id"] in {n["ID"] for n in b.json("network", "list", "--share")}
        assert a.json("network", "show", net["id"])["shared"] is False
        assert sub["id"] in {s["ID"] for s in b.json("subnet", "list")}
        # B may put a port on it, not a subnet
        port = b.json("port", "create", "--network", net["id"], _name("b-port"))
        assert port["fixed_ips"][0]["subnet_id"] == sub["id"] and port["project_id"] == b.project_id
        assert "403" in b.fails("subnet", "create", "--network", net["id"], "--subnet-range", "10.62.0.0/24",
                                _name("b-sub"))
        # shared with B by name: B's router may take an interface on it (Neutron LP 1975603)
        b_router = b.json("router", "create", _name("b-router"))
        b.cli("router", "add", "subnet", b_router["id"], sub["id"])
        b.cli("router", "remove", "subnet", b_router["id"], sub["id"])
        b.cli("router", "delete", b_router["id"])

        # C sees nothing and can do nothing with it
        assert net["id"] not in c.network_ids()
        assert "No Network found" in c.fails("network", "show", net["id"])
        with pytest.raises(sdkexc.NotFoundException):
            c.conn.network.get_network(net["id"])
        with pytest.raises(sdkexc.NotFoundException):
            c.conn.network.create_port(network_id=net["id"])
        assert sub["id"] not in {s["ID"] for s in c.json("subnet", "list")}

        # list / show / filters: the policy is the owner's, not B's nor C's
        listed = a.json("network", "rbac", "list", "--long")
        assert {"ID": pol["id"], "Object Type": "network", "Object ID": net["id"],
                "Action": "access_as_shared"} in listed
        assert [p["ID"] for p in a.json("network", "rbac", "list", "--target-project", b.project_id)] == [pol["id"]]
        assert a.json("network", "rbac", "list", "--action", "access_as_external") == []
        assert a.json("network", "rbac", "show", pol["id"])["target_project_id"] == b.project_id
        assert pol["id"] not in {p["ID"] for p in b.json("network", "rbac", "list")}
        assert b.cli("network", "rbac", "show", pol["id"], check=False).returncode != 0

        # only the owner manages policies on its network; only admins share with everyone
        with pytest.raises(sdkexc.BadRequestException, match="Only admins"):
            b.conn.network.create_rbac_policy(object_type="network", object_id=net["id"],
                                              action="access_as_shared", target_project_id=c.project_id)
        with pytest.raises(sdkexc.BadRequestException, match="could not be found"):
            c.conn.network.create_rbac_policy(object_type="network", object_id=net["id"],
                                              action="access_as_shared", target_project_id=c.project_id)
        assert "403" in a.fails("network", "rbac", "create", "--target-all-projects", "--action",
                                "access_as_shared", "--type", "network", net["id"])
        # making a network external is for admins (as `network set --external` is)
        assert "403" in a.fails("network", "rbac", "create", "--target-project", b.project_id, "--action",
                                "access_as_external", "--type", "network", net["id"])
        with pytest.raises(sdkexc.ConflictException) as dup:
            a.conn.network.create_rbac_policy(object_type="network", object_id=net["id"],
                                              action="access_as_shared", target_project_id=b.project_id)
        assert dup.value.response.json()["NeutronError"]["type"] == "DuplicateRbacPolicy"

        # B's port depends on the policy: neither deleted nor retargeted while it is there
        err = a.fails("network", "rbac", "delete", pol["id"])
        assert "409" in err and port["id"] in err
        with pytest.raises(sdkexc.ConflictException) as busy:
            a.conn.network.update_rbac_policy(pol["id"], target_project_id=c.project_id)
        assert busy.value.response.json()["NeutronError"]["type"] == "RbacPolicyInUse"
        assert net["id"] in b.network_ids()
        b.cli("port", "delete", port["id"])

        # retargeted to C: C sees it, B no longer does
        a.cli("network", "rbac", "set", "--target-project", c.project_id, pol["id"])
        assert a.json("network", "rbac", "show", pol["id"])["target_project_id"] == c.project_id
        assert net["id"] in c.network_ids() and net["id"] not in b.network_ids()
        a.cli("network", "rbac", "delete", pol["id"])
        assert net["id"] not in c.network_ids()
        assert a.json("network", "rbac", "list") == []
    finally:
        a.cli("network", "delete", net["id"], check=False)


def test_access_as_external_gives_floating_ips_and_gateways(cloud, admin, projects):
    a, b, c = projects
    ext = admin.network.create_network(name=_name("ext"))
    admin.network.create_subnet(network_id=ext.id, cidr="203.0.113.0/24", ip_version=4, enable_dhcp=False)
    assert ext.is_router_external is False
    pol = admin.network.create_rbac_policy(object_type="network", object_id=ext.id, action="access_as_external",
                                           target_project_id=b.project_id)
    router = fip = None
    try:
        assert pol.target_project_id == b.project_id and pol.action == "access_as_external"
        # the network is external now; B sees it so, C does not see it at all
        seen = b.conn.network.get_network(ext.id)
        assert seen.is_router_external is True and seen.is_shared is False
        assert ext.id in {n["ID"] for n in b.json("network", "list", "--external")}
        assert ext.id not in c.network_ids()
        assert ext.id in {p.object_id for p in admin.network.rbac_policies(action="access_as_external")}

        fip = b.json("floating", "ip", "create", ext.id)
        assert fip["floating_network_id"] == ext.id and fip["floating_ip_address"].startswith("203.0.113.")
        router = b.json("router", "create", _name("b-router"))
        b.cli("router", "set", "--external-gateway", ext.id, router["id"])
        assert b.json("router", "show", router["id"])["external_gateway_info"]["network_id"] == ext.id
        assert "No Network found" in c.fails("floating", "ip", "create", ext.id)
        with pytest.raises(sdkexc.NotFoundException):  # the API itself, not only the CLI's look-up
            c.conn.network.create_ip(floating_network_id=ext.id)
        c_router = c.json("router", "create", _name("c-router"))
        assert c.cli("router", "set", "--external-gateway", ext.id, c_router["id"], check=False).returncode != 0
        with pytest.raises(sdkexc.NotFoundException):
            c.conn.network.update_router(c_router["id"], external_gateway_info={"network_id": ext.id})
        c.cli("router", "delete", c_router["id"])
        # external is not shared: no ports of B's own on it
        with pytest.raises(sdkexc.ForbiddenException):
            b.conn.network.create_port(network_id=ext.id)

        # B's floating IP and gateway depend on the policy
        with pytest.raises(sdkexc.ConflictException) as busy:
            admin.network.delete_rbac_policy(pol)
        assert busy.value.response.json()["NeutronError"]["type"] == "RbacPolicyInUse"
        b.cli("floating", "ip", "delete", fip["id"])
        fip = None
        with pytest.raises(sdkexc.ConflictException):
            admin.network.delete_rbac_policy(pol)
        b.cli("router", "unset", "--external-gateway", router["id"])
        admin.network.delete_rbac_policy(pol)
        assert ext.id not in b.network_ids()
        with pytest.raises(sdkexc.NotFoundException):
            b.conn.network.create_ip(floating_network_id=ext.id)
    finally:
        if fip:
            b.cli("floating", "ip", "delete", fip["id"], check=False)
        if router:
            b.cli("router", "delete", router["id"], check=False)
        admin.network.delete_network(ext)


def test_shared_flag_is_a_wildcard_policy(cloud, admin, projects):
    a, b, c = projects
    net = cloud.os_json("network", "create", "--share", _name("shared"))
    try:
        wild = [p for p in cloud.os_json("network", "rbac", "list", "--long", "--target-project", "*")
                if p["Object ID"] == net["id"]]
        assert len(wild) == 1 and wild[0]["Action"] == "access_as_shared"
        assert c.json("network", "show", net["id"])["shared"] is True
        cloud.openstack("subnet", "create", "--network", net["id"], "--subnet-range", "10.63.0.0/24",
                        _name("shared-sub"))
        port = c.json("port", "create", "--network", net["id"], _name("c-port"))
        # shared with all: no router of another project takes its subnet's gateway (Neutron)
        c_router = c.json("router", "create", _name("c-router"))
        shared_sub = cloud.os_json("subnet", "list", "--network", net["id"])[0]["ID"]
        with pytest.raises(sdkexc.BadRequestException, match="not owned by project"):
            c.conn.network.add_interface_to_router(c_router["id"], subnet=shared_sub)
        c.cli("router", "delete", c_router["id"])
        # C's port keeps the network shared
        r = cloud.openstack("network", "set", "--no-share", net["id"], check=False)
        assert r.returncode != 0 and "409" in r.stderr
        with pytest.raises(sdkexc.ConflictException):
            admin.network.delete_rbac_policy(wild[0]["ID"])
        # a policy for C alone lets the wildcard go
        mine = admin.network.create_rbac_policy(object_type="network", object_id=net["id"],
                                                action="access_as_shared", target_project_id=c.project_id)
        cloud.openstack("network", "set", "--no-share", net["id"])
        assert cloud.os_json("network", "show", net["id"])["shared"] is False
        assert net["id"] not in a.network_ids()
        assert c.json("network", "show", net["id"])["shared"] is True
        assert [p.id for p in admin.network.rbac_policies(object_id=net["id"])] == [mine.id]
        c.cli("port", "delete", port["id"])
        # an admin's "*" policy is the same as shared=True
        admin.network.create_rbac_policy(object_type="network", object_id=net["id"], action="access_as_shared",
                                         target_project_id="*")
        assert cloud.os_json("network", "show", net["id"])["shared"] is True
        assert net["id"] in a.network_ids()
    finally:
        cloud.openstack("network", "delete", net["id"], check=False)
    # the network's policies went with it
    assert not list(admin.network.rbac_policies(object_id=net["id"]))


def test_public_network_has_a_wildcard_external_policy(cloud, admin):
    public = admin.network.find_network("public")
    pols = list(admin.network.rbac_policies(object_id=public.id))
    assert [(p.action, p.target_project_id) for p in pols] == [("access_as_external", "*")]


def test_validation_filters_and_quota(cloud, admin, projects):
    a, b, c = projects
    net = a.conn.network.create_network(name=_name("v-net"))
    try:
        def bad(**body):
            full = {"object_type": "network", "object_id": net.id, "action": "access_as_shared",
                    "target_tenant": b.project_id, **body}
            r = a.conn.network.post("/rbac-policies", json={"rbac_policy": {k: v for k, v in full.items()
                                                                            if v is not None}})
            return r.status_code, r.json()["NeutronError"]["message"]

        code, msg = bad(object_type="qos_policy")
        assert code == 400 and "network" in msg
        code, msg = bad(object_type="bogus")
        assert code == 400 and "object_type" in msg
        code, msg = bad(action="access_as_nothing")
        assert code == 400 and "action" in msg
        code, msg = bad(target_tenant=None)
        assert code == 400 and "target_tenant" in msg

        pols = [a.conn.network.create_rbac_policy(object_type="network", object_id=net.id,
                                                  action="access_as_shared", target_project_id=p)
                for p in (b.project_id, c.project_id)]
        # only target_tenant may change
        r = a.conn.network.put(f"/rbac-policies/{pols[0].id}", json={"rbac_policy": {"object_id": net.id}})
        assert r.status_code == 400
        # filters, fields, sorting, pagination
        assert [p.id for p in a.conn.network.rbac_policies(target_project_id=c.project_id)] == [pols[1].id]
        got = a.conn.network.get("/rbac-policies", params={"object_id": net.id, "fields": ["id", "target_tenant"],
                                                            "sort_key": "target_tenant", "sort_dir": "desc",
                                                            "limit": 1}).json()
        want = sorted([b.project_id, c.project_id], reverse=True)
        assert got["rbac_policies"] == [{"id": next(p.id for p in pols if p.target_project_id == want[0]),
                                         "target_tenant": want[0]}]
        assert got["rbac_policies_links"][0]["rel"] == "next"
        assert len(list(a.conn.network.rbac_policies(object_id=net.id, limit=1))) == 2
        shown = a.conn.network.get(f"/rbac-policies/{pols[0].id}").json()["rbac_policy"]
        assert set(shown) == {"id", "project_id", "tenant_id", "object_type", "object_id", "action",
                              "target_tenant"}
        r = a.conn.network.get(f"/rbac-policies/{uuid.uuid4()}")
        assert r.status_code == 404 and r.json()["NeutronError"]["type"] == "RbacPolicyNotFound"

        # the rbac_policy quota
        cloud.openstack("quota", "set", "--rbac-policies", "2", a.env["OS_PROJECT_NAME"])
        with pytest.raises(sdkexc.ConflictException) as over:
            a.conn.network.create_rbac_policy(object_type="network", object_id=net.id, action="access_as_shared",
                                              target_project_id=a.project_id)
        assert over.value.response.json()["NeutronError"]["type"] == "OverQuota"
        details = admin.network.get_quota(a.project_id, details=True)
        assert details.rbac_policies["used"] == 2 and details.rbac_policies["limit"] == 2
        for p in pols:
            a.conn.network.delete_rbac_policy(p)
    finally:
        cloud.openstack("quota", "delete", "--network", a.env["OS_PROJECT_NAME"], check=False)
        a.conn.network.delete_network(net)
