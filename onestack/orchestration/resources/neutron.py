"""OS::Neutron::* types: Net, Subnet, Port, Router, RouterInterface, FloatingIP,
FloatingIPAssociation, SecurityGroup, SecurityGroupRule, on the networking API."""

from __future__ import annotations

from typing import Any

from onestack.common import errors
from onestack.orchestration.resources import constraints as c
from onestack.orchestration.resources.base import (
    BOOLEAN,
    INTEGER,
    LIST,
    MAP,
    STRING,
    Attribute,
    Constraint,
    Property,
    Resource,
    register,
)


def _allowed(*values) -> list[Constraint]:
    return [Constraint("allowed_values", list(values))]


def _custom(name: str) -> list[Constraint]:
    return [Constraint("custom_constraint", name)]


SHOW = Attribute("Detailed information about resource.", MAP)
def _require_network(props: dict[str, Any]) -> None:
    """``network`` (or its old name ``network_id``) is required, as Heat's translation has it."""
    if not props.get("network") and not props.get("network_id"):
        raise errors.BadRequest("Property network not assigned")


TAGS = Property(LIST, update_allowed=True, schema=Property(STRING), description="The tags to be added.")
VALUE_SPECS = Property(MAP, default={}, update_allowed=True,
                       description="Extra parameters to include in the request.")


class NeutronResource(Resource):
    """One Neutron object at ``/v2.0/{COLLECTION}/{id}``: the types say how properties
    become its body; showing, attributes, in-place updates and deletes are common."""

    REQUIRES_SERVICE = "network"
    COLLECTION = ""  # "networks": the body's key, and the URL's unless PATH says
    PATH = ""
    # properties sent as they are, under the same name, on create and update
    PASS_THROUGH: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return self.COLLECTION[:-1]

    @property
    def path(self) -> str:
        return f"/v2.0/{self.PATH or self.COLLECTION}"

    @property
    def neutron(self) -> Any:
        return self.client("network")

    def body(self, props: dict[str, Any], create: bool) -> dict[str, Any]:
        out = {k: props[k] for k in self.PASS_THROUGH if props.get(k) is not None}
        if "name" in self.PROPERTIES:
            out["name"] = props.get("name") or c.physical_name(self)
        out.update(props.get("value_specs") or {})
        return out

    def show(self) -> dict[str, Any]:
        return self.neutron.get(f"{self.path}/{self.resource_id}")[self.kind]

    def handle_create(self) -> None:
        body = self.body(self.properties, create=True)
        if self.properties.get("tenant_id"):
            body["tenant_id"] = self.properties["tenant_id"]
        obj = self.neutron.post(self.path, {self.kind: body})[self.kind]
        self.resource_id = obj["id"]
        c.remember(self.ctx, self.kind, obj)  # its dependents' lookups of it need not ask
        self._set_tags(self.properties.get("tags"))

    def _set_tags(self, tags: list[str] | None) -> None:
        if tags is not None and "tags" in self.PROPERTIES:
            self.neutron.put(f"{self.path}/{self.resource_id}/tags", {"tags": tags})

    def handle_update(self, new_properties: dict[str, Any], changed: set[str]) -> None:
        # only what changed: a name we made up stays, value_specs only when they change
        keep = set(changed) | self._derived(changed)
        if "value_specs" in changed:
            keep |= set(new_properties.get("value_specs") or {})
        body = {k: v for k, v in self.body(new_properties, create=False).items() if k in keep}
        if body:
            self.neutron.put(f"{self.path}/{self.resource_id}", {self.kind: body})
        if "tags" in changed:
            self._set_tags(new_properties.get("tags") or [])

    def _derived(self, changed: set[str]) -> set[str]:
        """Body keys that come from changed properties under another name."""
        return set()

    def handle_delete(self) -> None:
        if self.resource_id:
            self.neutron.delete(f"{self.path}/{self.resource_id}")
            self._gone = True  # (the networking API deletes before it answers: no need to look)

    def check_delete_complete(self) -> bool:
        if not self.resource_id or getattr(self, "_gone", False):
            return True
        try:
            self.show()
        except errors.NotFound:
            return True
        return False

    def handle_check(self) -> None:
        self.show()

    def attribute(self, name: str) -> Any:
        if name not in self.ATTRIBUTES:
            raise KeyError(name)
        if not self.resource_id:
            return None
        obj = self.show()
        if name == "show":
            return obj
        return self.attribute_of(obj, name)

    def attribute_of(self, obj: dict[str, Any], name: str) -> Any:
        return obj.get(name)

    def live_state(self) -> dict[str, Any] | None:
        obj = self.show()
        return {k: obj[k] for k in self.PROPERTIES if k in obj}


@register("OS::Neutron::Net")
class Net(NeutronResource):
    """A network."""

    COLLECTION = "networks"
    PASS_THROUGH = ("admin_state_up", "shared", "port_security_enabled", "dns_domain", "availability_zone_hints")
    PROPERTIES = {
        "name": Property(STRING, update_allowed=True, description="A string specifying a symbolic name for the "
                                                                  "network, which is not required to be unique."),
        "value_specs": VALUE_SPECS,
        "admin_state_up": Property(BOOLEAN, default=True, update_allowed=True,
                                   description="A boolean value specifying the administrative status of the "
                                               "network."),
        "tenant_id": Property(STRING, description="The ID of the tenant which will own the network (admin)."),
        "shared": Property(BOOLEAN, default=False, update_allowed=True,
                           description="Whether this network should be shared across all tenants."),
        "dhcp_agent_ids": Property(LIST, update_allowed=True, description="The IDs of the DHCP agent to schedule "
                                                                          "the network."),
        "port_security_enabled": Property(BOOLEAN, update_allowed=True,
                                          description="Flag to enable/disable port security on the network."),
        "qos_policy": Property(STRING, update_allowed=True, constraints=_custom("neutron.qos_policy")),
        "dns_domain": Property(STRING, update_allowed=True, constraints=_custom("dns_domain")),
        "availability_zone_hints": Property(LIST),
        "tags": TAGS,
    }
    ATTRIBUTES = {
        "status": Attribute("The status of the network.", STRING),
        "name": Attribute("The name of the network.", STRING),
        "subnets": Attribute("Subnets of this network.", LIST),
        "admin_state_up": Attribute("The administrative status of the network.", STRING),
        "tenant_id": Attribute("The tenant owning this network.", STRING),
        "port_security_enabled": Attribute("Port security enabled of the network.", BOOLEAN),
        "mtu": Attribute("The maximum transmission unit size(in bytes) for the network.", INTEGER),
        "qos_policy_id": Attribute("The QoS policy ID attached to this network.", STRING),
        "l2_adjacency": Attribute("A boolean value for L2 adjacency.", BOOLEAN),
        "segments": Attribute("The segments of this network.", LIST),
        "show": SHOW,
    }

    def attribute_of(self, obj: dict[str, Any], name: str) -> Any:
        if name == "segments":
            return obj.get("segments") or [{k: obj.get(f"provider:{k}") for k in
                                            ("network_type", "physical_network", "segmentation_id")}]
        if name == "l2_adjacency":
            return obj.get("l2_adjacency", True)
        return obj.get(name)


@register("OS::Neutron::Subnet")
class Subnet(NeutronResource):
    """A subnet of a network: its cidr (or a prefix from a subnet pool) and DHCP."""

    COLLECTION = "subnets"
    PASS_THROUGH = ("cidr", "prefixlen", "ip_version", "dns_nameservers", "gateway_ip", "enable_dhcp",
                    "allocation_pools", "host_routes", "ipv6_ra_mode", "ipv6_address_mode")
    PROPERTIES = {
        # network_id: Heat's older name for network (templates such as heat-tempest-plugin's use it)
        "network_id": Property(STRING, constraints=_custom("neutron.network")),
        "network": Property(STRING, constraints=_custom("neutron.network"),
                            description="The ID or name of the attached network."),
        "subnetpool": Property(STRING, constraints=_custom("neutron.subnetpool")),
        "prefixlen": Property(INTEGER, constraints=[Constraint("range", {"min": 0})]),
        "cidr": Property(STRING, constraints=_custom("net_cidr"), description="The CIDR."),
        "value_specs": VALUE_SPECS,
        "name": Property(STRING, update_allowed=True, description="The name of the subnet."),
        "ip_version": Property(INTEGER, default=4, constraints=_allowed(4, 6)),
        "dns_nameservers": Property(LIST, default=[], update_allowed=True),
        "gateway_ip": Property(STRING, update_allowed=True,
                               description="The gateway IP address; null makes a subnet without a gateway."),
        "enable_dhcp": Property(BOOLEAN, default=True, update_allowed=True),
        "allocation_pools": Property(LIST, update_allowed=True, schema=Property(MAP, schema={
            "start": Property(STRING, required=True, constraints=_custom("ip_addr")),
            "end": Property(STRING, required=True, constraints=_custom("ip_addr"))})),
        "tenant_id": Property(STRING),
        "host_routes": Property(LIST, update_allowed=True, schema=Property(MAP, schema={
            "destination": Property(STRING, required=True, constraints=_custom("net_cidr")),
            "nexthop": Property(STRING, required=True, constraints=_custom("ip_addr"))})),
        "ipv6_ra_mode": Property(STRING, constraints=_allowed("dhcpv6-stateful", "dhcpv6-stateless", "slaac")),
        "ipv6_address_mode": Property(STRING, constraints=_allowed("dhcpv6-stateful", "dhcpv6-stateless",
                                                                    "slaac")),
        "segment": Property(STRING, update_allowed=True, constraints=_custom("neutron.segment")),
        "tags": TAGS,
    }
    ATTRIBUTES = {k: Attribute(f"The {k.replace('_', ' ')} of the subnet.") for k in (
        "name", "network_id", "tenant_id", "allocation_pools", "gateway_ip", "host_routes", "ip_version",
        "cidr", "dns_nameservers", "enable_dhcp")} | {"show": SHOW}

    def validate(self) -> None:
        p = self.properties
        _require_network(p)
        if not p.get("cidr") and not p.get("subnetpool"):
            raise errors.BadRequest("At least one of the following properties must be specified: cidr, "
                                    "subnetpool.")

    def body(self, props: dict[str, Any], create: bool) -> dict[str, Any]:
        out = super().body(props, create)
        if create:
            out["network_id"] = c.resolve(c.find_network, self.ctx, props.get("network") or props.get("network_id"))
            if props.get("subnetpool"):
                out["subnetpool_id"] = c.resolve(c.find_subnetpool, self.ctx, props["subnetpool"])
        else:
            for key in ("cidr", "prefixlen", "ip_version", "ipv6_ra_mode", "ipv6_address_mode"):
                out.pop(key, None)
        if props.get("segment"):
            out["segment_id"] = props["segment"]
        return out

    def _derived(self, changed: set[str]) -> set[str]:
        return {"segment_id"} if "segment" in changed else set()


def _fixed_ips(ctx, fixed_ips: list[dict] | None) -> list[dict] | None:
    if fixed_ips is None:
        return None
    out = []
    for f in fixed_ips:
        entry = {}
        subnet = f.get("subnet") or f.get("subnet_id")
        if subnet:
            entry["subnet_id"] = c.resolve(c.find_subnet, ctx, subnet)
        if f.get("ip_address"):
            entry["ip_address"] = f["ip_address"]
        out.append(entry)
    return out


@register("OS::Neutron::Port")
class Port(NeutronResource):
    """A port of a network: addresses, security groups and who uses it."""

    COLLECTION = "ports"
    PASS_THROUGH = ("device_id", "device_owner", "admin_state_up", "mac_address", "port_security_enabled",
                    "dns_name", "propagate_uplink_status")
    PROPERTIES = {
        "name": Property(STRING, update_allowed=True, description="A symbolic name for this port."),
        "network_id": Property(STRING, constraints=_custom("neutron.network")),  # network's old name
        "network": Property(STRING, constraints=_custom("neutron.network"),
                            description="ID or name of the network this port belongs to."),
        "device_id": Property(STRING, default="", update_allowed=True, description="Device ID of this port."),
        "device_owner": Property(STRING, default="", update_allowed=True, description="Name of the network "
                                                                                      "owning the port."),
        "fixed_ips": Property(LIST, update_allowed=True, schema=Property(MAP, schema={
            "subnet_id": Property(STRING, constraints=_custom("neutron.subnet")),
            "subnet": Property(STRING, constraints=_custom("neutron.subnet")),
            "ip_address": Property(STRING, constraints=_custom("ip_addr"))}),
            description="Desired IPs for this port."),
        "security_groups": Property(LIST, update_allowed=True, description="Security group IDs or names to "
                                                                           "associate with this port."),
        "replacement_policy": Property(STRING, default="AUTO", update_allowed=True,
                                       constraints=_allowed("REPLACE_ALWAYS", "AUTO")),
        "dns_name": Property(STRING, update_allowed=True, constraints=_custom("dns_name")),
        "tags": TAGS,
        "value_specs": VALUE_SPECS,
        "admin_state_up": Property(BOOLEAN, default=True, update_allowed=True,
                                   description="The administrative state of this port."),
        "mac_address": Property(STRING, update_allowed=True, constraints=_custom("mac_addr"),
                                description="MAC address to give to this port."),
        "allowed_address_pairs": Property(LIST, update_allowed=True, schema=Property(MAP, schema={
            "mac_address": Property(STRING, constraints=_custom("mac_addr")),
            "ip_address": Property(STRING, required=True, constraints=_custom("net_cidr"))})),
        "binding:vnic_type": Property(STRING, default="normal", update_allowed=True,
                                      constraints=_allowed("normal", "direct", "macvtap", "direct-physical",
                                                           "baremetal", "virtio-forwarder", "smart-nic")),
        "port_security_enabled": Property(BOOLEAN, update_allowed=True),
        "qos_policy": Property(STRING, update_allowed=True, constraints=_custom("neutron.qos_policy")),
        "propagate_uplink_status": Property(BOOLEAN, update_allowed=True),
    }
    ATTRIBUTES = {
        "admin_state_up": Attribute("The administrative state of this port.", STRING),
        "device_id": Attribute("Unique identifier for the device.", STRING),
        "device_owner": Attribute("Name of the network owning the port.", STRING),
        "fixed_ips": Attribute("Fixed IP addresses.", LIST),
        "mac_address": Attribute("MAC address of the port.", STRING),
        "name": Attribute("Friendly name of the port.", STRING),
        "network_id": Attribute("Unique identifier for the network owning the port.", STRING),
        "security_groups": Attribute("A list of security groups for the port.", LIST),
        "status": Attribute("The status of the port.", STRING),
        "tenant_id": Attribute("Tenant owning the port.", STRING),
        "allowed_address_pairs": Attribute("Additional MAC/IP address pairs allowed to pass through a port.",
                                           LIST),
        "subnets": Attribute("A list of all subnet attributes for the port.", LIST),
        "port_security_enabled": Attribute("Port security enabled of the port.", BOOLEAN),
        "qos_policy_id": Attribute("The QoS policy ID attached to this port.", STRING),
        "dns_assignment": Attribute("The DNS assigned to this port.", MAP),
        "network": Attribute("The attributes of the network owning the port.", MAP),
        "propagate_uplink_status": Attribute("Enable/Disable propagate uplink status for the port.", BOOLEAN),
        "show": SHOW,
    }

    def validate(self) -> None:
        _require_network(self.properties)

    def body(self, props: dict[str, Any], create: bool) -> dict[str, Any]:
        out = super().body(props, create)
        if create:
            out["network_id"] = c.resolve(c.find_network, self.ctx, props.get("network") or props.get("network_id"))
            for key in ("device_id", "device_owner"):
                if not out.get(key):
                    out.pop(key, None)
        if props.get("fixed_ips") is not None:
            out["fixed_ips"] = _fixed_ips(self.ctx, props["fixed_ips"])
        if props.get("security_groups") is not None:
            out["security_groups"] = [c.resolve(c.find_security_group, self.ctx, g)
                                      for g in props["security_groups"]]
        if props.get("allowed_address_pairs") is not None:
            out["allowed_address_pairs"] = [{k: v for k, v in p.items() if v is not None}
                                            for p in props["allowed_address_pairs"]]
        if props.get("binding:vnic_type") and props["binding:vnic_type"] != "normal":
            out["binding:vnic_type"] = props["binding:vnic_type"]
        if props.get("qos_policy"):
            out["qos_policy_id"] = props["qos_policy"]
        return out

    def _derived(self, changed: set[str]) -> set[str]:
        return {"qos_policy_id"} if "qos_policy" in changed else set()

    def handle_update(self, new_properties: dict[str, Any], changed: set[str]) -> None:
        if "security_groups" in changed and new_properties.get("security_groups") is None:
            # back to the default group, as Heat does when the property goes away
            new_properties = {**new_properties, "security_groups": ["default"]}
        super().handle_update(new_properties, changed)

    def attribute_of(self, obj: dict[str, Any], name: str) -> Any:
        if name == "subnets":
            return [self.neutron.get(f"/v2.0/subnets/{f['subnet_id']}")["subnet"] for f in obj["fixed_ips"]]
        if name == "network":
            return self.neutron.get(f"/v2.0/networks/{obj['network_id']}")["network"]
        return obj.get(name)


@register("OS::Neutron::Router")
class Router(NeutronResource):
    """A router, with an optional gateway on an external network."""

    COLLECTION = "routers"
    PASS_THROUGH = ("admin_state_up", "distributed", "ha", "availability_zone_hints")
    PROPERTIES = {
        "name": Property(STRING, update_allowed=True, description="The name of the router."),
        "external_gateway_info": Property(MAP, update_allowed=True, schema={
            "network": Property(STRING, required=True, update_allowed=True,
                                constraints=_custom("neutron.network")),
            "enable_snat": Property(BOOLEAN, update_allowed=True),
            "external_fixed_ips": Property(LIST, update_allowed=True, schema=Property(MAP, schema={
                "ip_address": Property(STRING, constraints=_custom("ip_addr")),
                "subnet": Property(STRING, constraints=_custom("neutron.subnet"))}))},
            description="External network gateway configuration for a router."),
        "value_specs": VALUE_SPECS,
        "admin_state_up": Property(BOOLEAN, default=True, update_allowed=True),
        "l3_agent_ids": Property(LIST, update_allowed=True, schema=Property(STRING)),
        "distributed": Property(BOOLEAN),
        "ha": Property(BOOLEAN),
        "availability_zone_hints": Property(LIST, update_allowed=True),
        "tags": TAGS,
        "tenant_id": Property(STRING),
    }
    ATTRIBUTES = {
        "status": Attribute("The status of the router.", STRING),
        "external_gateway_info": Attribute("Gateway network for the router.", MAP),
        "name": Attribute("Friendly name of the router.", STRING),
        "admin_state_up": Attribute("Administrative state of the router.", STRING),
        "tenant_id": Attribute("Tenant owning the router.", STRING),
        "show": SHOW,
    }

    def body(self, props: dict[str, Any], create: bool) -> dict[str, Any]:
        out = super().body(props, create)
        gw = props.get("external_gateway_info")
        if gw:
            info: dict[str, Any] = {"network_id": c.resolve(c.find_network, self.ctx, gw["network"])}
            if gw.get("enable_snat") is not None:
                info["enable_snat"] = gw["enable_snat"]
            if gw.get("external_fixed_ips"):
                info["external_fixed_ips"] = _fixed_ips(self.ctx, gw["external_fixed_ips"])
            out["external_gateway_info"] = info
        elif not create:
            out["external_gateway_info"] = {}
        return out


@register("OS::Neutron::RouterInterface")
class RouterInterface(Resource):
    """A router's interface on a subnet (or an existing port)."""

    REQUIRES_SERVICE = "network"
    PROPERTIES = {
        "router": Property(STRING, required=True, constraints=_custom("neutron.router"),
                           description="The router."),
        "router_id": Property(STRING, constraints=_custom("neutron.router")),
        "subnet_id": Property(STRING, constraints=_custom("neutron.subnet")),
        "subnet": Property(STRING, constraints=_custom("neutron.subnet"),
                           description="The subnet, either subnet or port should be specified."),
        "port_id": Property(STRING, constraints=_custom("neutron.port")),
        "port": Property(STRING, constraints=_custom("neutron.port"),
                         description="The port, either subnet or port should be specified."),
    }

    def validate(self) -> None:
        p = self.properties
        given = [k for k in ("subnet", "subnet_id", "port", "port_id") if p.get(k)]
        if len(given) != 1:
            raise errors.BadRequest("Exactly one of the properties subnet or port must be specified for "
                                    f"{self.name}.")

    def handle_create(self) -> None:
        p = self.properties
        router = c.resolve(c.find_router, self.ctx, p.get("router") or p.get("router_id"))
        subnet, port = p.get("subnet") or p.get("subnet_id"), p.get("port") or p.get("port_id")
        if subnet:
            key, value = "subnet_id", c.resolve(c.find_subnet, self.ctx, subnet)
        else:
            key, value = "port_id", c.resolve(c.find_port, self.ctx, port)
        self.client("network").put(f"/v2.0/routers/{router}/add_router_interface", {key: value})
        self.resource_id = f"{router}:{key}={value}"

    def handle_delete(self) -> None:
        if not self.resource_id:
            return
        router, _, rest = self.resource_id.partition(":")
        key, _, value = rest.partition("=")
        self.client("network").put(f"/v2.0/routers/{router}/remove_router_interface", {key: value})

    def handle_check(self) -> None:
        router, _, rest = (self.resource_id or "").partition(":")
        key, _, value = rest.partition("=")
        ports = self.client("network").get("/v2.0/ports", params={"device_id": router})["ports"]
        if not any(p["id"] == value or any(f["subnet_id"] == value for f in p["fixed_ips"]) for p in ports):
            raise errors.NotFound(f"Router {router} has no interface on {value}")


@register("OS::Neutron::FloatingIP")
class FloatingIP(NeutronResource):
    """A floating IP address of an external network, optionally on a port."""

    COLLECTION = "floatingips"
    PASS_THROUGH = ("fixed_ip_address", "floating_ip_address", "dns_name", "dns_domain")
    PROPERTIES = {
        "floating_network_id": Property(STRING, constraints=_custom("neutron.network")),
        "floating_network": Property(STRING, required=True, constraints=_custom("neutron.network"),
                                     description="Network to allocate floating IP from."),
        "floating_subnet": Property(STRING, constraints=_custom("neutron.subnet"),
                                    description="Subnet to allocate floating IP from."),
        "value_specs": Property(MAP, default={}),
        "port_id": Property(STRING, update_allowed=True, constraints=_custom("neutron.port"),
                            description="ID of an existing port with at least one IP address to associate "
                                        "with this floating IP."),
        "fixed_ip_address": Property(STRING, update_allowed=True, constraints=_custom("ip_addr")),
        "floating_ip_address": Property(STRING, constraints=_custom("ip_addr")),
        "dns_name": Property(STRING, update_allowed=True, constraints=_custom("rel_dns_name")),
        "dns_domain": Property(STRING, update_allowed=True, constraints=_custom("dns_domain")),
    }
    ATTRIBUTES = {
        "router_id": Attribute("ID of the router used as gateway, set when associated with a port.", STRING),
        "tenant_id": Attribute("The tenant owning this floating IP.", STRING),
        "floating_network_id": Attribute("ID of the network in which this IP is allocated.", STRING),
        "fixed_ip_address": Attribute("IP address of the associated port, if specified.", STRING),
        "floating_ip_address": Attribute("The allocated address of this IP.", STRING),
        "port_id": Attribute("ID of the port associated with this IP.", STRING),
        "show": SHOW,
    }

    def body(self, props: dict[str, Any], create: bool) -> dict[str, Any]:
        out = super().body(props, create)
        if create:
            out["floating_network_id"] = c.resolve(c.find_network, self.ctx, props.get("floating_network")
                                                   or props.get("floating_network_id"))
            if props.get("floating_subnet"):
                out["subnet_id"] = c.resolve(c.find_subnet, self.ctx, props["floating_subnet"])
        out["port_id"] = c.resolve(c.find_port, self.ctx, props.get("port_id"))
        if not create and out["port_id"] is None:
            out["fixed_ip_address"] = None
        if create and out["port_id"] is None:
            del out["port_id"]
        return out

    def _derived(self, changed: set[str]) -> set[str]:
        return {"fixed_ip_address"} if "port_id" in changed else set()


@register("OS::Neutron::FloatingIPAssociation")
class FloatingIPAssociation(Resource):
    """A floating IP put on a port (and taken off on delete)."""

    REQUIRES_SERVICE = "network"
    PROPERTIES = {
        "floatingip_id": Property(STRING, required=True, update_allowed=True, description="ID of the floating IP "
                                                                                          "to associate."),
        "port_id": Property(STRING, required=True, update_allowed=True, constraints=_custom("neutron.port"),
                            description="ID of an existing port with at least one IP address to associate "
                                        "with this floating IP."),
        "fixed_ip_address": Property(STRING, update_allowed=True, constraints=_custom("ip_addr")),
    }

    def _associate(self, props: dict[str, Any]) -> None:
        body = {"port_id": c.resolve(c.find_port, self.ctx, props["port_id"])}
        if props.get("fixed_ip_address"):
            body["fixed_ip_address"] = props["fixed_ip_address"]
        self.client("network").put(f"/v2.0/floatingips/{props['floatingip_id']}", {"floatingip": body})

    def handle_create(self) -> None:
        self._associate(self.properties)
        self.resource_id = f"{self.properties['floatingip_id']}:{self.properties['port_id']}"

    def handle_update(self, new_properties: dict[str, Any], changed: set[str]) -> None:
        if "floatingip_id" in changed:
            self.handle_delete()
        self._associate(new_properties)
        self.resource_id = f"{new_properties['floatingip_id']}:{new_properties['port_id']}"

    def handle_delete(self) -> None:
        if self.resource_id:
            fip = self.resource_id.partition(":")[0]
            self.client("network").put(f"/v2.0/floatingips/{fip}", {"floatingip": {"port_id": None}})


RULE_SCHEMA = {
    "direction": Property(STRING, default="ingress", constraints=_allowed("ingress", "egress")),
    "ethertype": Property(STRING, default="IPv4", constraints=_allowed("IPv4", "IPv6")),
    "port_range_min": Property(INTEGER, constraints=[Constraint("range", {"min": 0, "max": 65535})]),
    "port_range_max": Property(INTEGER, constraints=[Constraint("range", {"min": 0, "max": 65535})]),
    "protocol": Property(STRING),
    "remote_mode": Property(STRING, default="remote_ip_prefix",
                            constraints=_allowed("remote_ip_prefix", "remote_group_id")),
    "remote_group_id": Property(STRING),
    "remote_ip_prefix": Property(STRING, constraints=_custom("net_cidr")),
    "description": Property(STRING),
}


@register("OS::Neutron::SecurityGroup")
class SecurityGroup(NeutronResource):
    """A security group and its rules: without an egress rule of its own the group
    keeps Neutron's default egress rules; an update replaces the rules."""

    COLLECTION = "security_groups"
    PATH = "security-groups"
    PASS_THROUGH = ("description", "stateful")
    PROPERTIES = {
        "name": Property(STRING, update_allowed=True, description="A string specifying a symbolic name for the "
                                                                  "security group."),
        "description": Property(STRING, update_allowed=True, description="Description of the security group."),
        "rules": Property(LIST, default=[], update_allowed=True, schema=Property(MAP, schema=RULE_SCHEMA),
                          description="List of security group rules."),
        "stateful": Property(BOOLEAN, update_allowed=True),
    }
    ATTRIBUTES = {"show": SHOW}

    def validate(self) -> None:
        if self.properties.get("name") == "default":
            raise errors.BadRequest('Security groups cannot be assigned the name "default".')

    def handle_create(self) -> None:
        super().handle_create()
        self._set_rules(self.properties.get("rules") or [], replace=False)

    def handle_update(self, new_properties: dict[str, Any], changed: set[str]) -> None:
        super().handle_update(new_properties, changed - {"rules"})
        if "rules" in changed:
            self._set_rules(new_properties.get("rules") or [], replace=True)

    def _set_rules(self, rules: list[dict], replace: bool) -> None:
        """The group's rules become ``rules`` (plus the default egress ones when the
        template names no egress rule); on create Neutron's own default egress stays."""
        neutron = self.neutron
        existing = self.show()["security_group_rules"]
        wants_egress = any(r.get("direction") == "egress" for r in rules)
        for rule in existing:
            if replace or rule["direction"] == "ingress" or wants_egress:
                c.ignore_missing(lambda r=rule: neutron.delete(f"/v2.0/security-group-rules/{r['id']}"))
        if not wants_egress and (replace or not any(r["direction"] == "egress" for r in existing)):
            rules = [*rules, {"direction": "egress", "ethertype": "IPv4"},
                     {"direction": "egress", "ethertype": "IPv6"}]
        for rule in rules:
            body = {"security_group_id": self.resource_id, "direction": rule.get("direction") or "ingress",
                    "ethertype": rule.get("ethertype") or "IPv4"}
            for key in ("port_range_min", "port_range_max", "protocol", "description"):
                if rule.get(key) is not None:
                    body[key] = rule[key]
            if rule.get("remote_mode") == "remote_group_id":
                body["remote_group_id"] = rule.get("remote_group_id") or self.resource_id
            elif rule.get("remote_ip_prefix"):
                body["remote_ip_prefix"] = rule["remote_ip_prefix"]
            neutron.post("/v2.0/security-group-rules", {"security_group_rule": body})


@register("OS::Neutron::SecurityGroupRule")
class SecurityGroupRule(Resource):
    """One rule of a security group."""

    REQUIRES_SERVICE = "network"
    PROPERTIES = {
        "security_group": Property(STRING, required=True, constraints=_custom("neutron.security_group"),
                                   description="Security group name or ID to add rule."),
        "description": Property(STRING, description="Description of the security group rule."),
        "direction": Property(STRING, default="ingress", constraints=_allowed("ingress", "egress")),
        "ethertype": Property(STRING, default="IPv4", constraints=_allowed("IPv4", "IPv6")),
        "port_range_min": Property(INTEGER, constraints=[Constraint("range", {"min": 0, "max": 65535})]),
        "port_range_max": Property(INTEGER, constraints=[Constraint("range", {"min": 0, "max": 65535})]),
        "protocol": Property(STRING, default="tcp"),
        "remote_group": Property(STRING, constraints=_custom("neutron.security_group")),
        "remote_ip_prefix": Property(STRING, constraints=_custom("net_cidr")),
    }
    ATTRIBUTES = {"show": SHOW}

    def validate(self) -> None:
        p = self.properties
        if p.get("remote_group") and p.get("remote_ip_prefix"):
            raise errors.BadRequest("Cannot define the following properties at the same time: remote_group, "
                                    "remote_ip_prefix")

    def handle_create(self) -> None:
        p = self.properties
        body: dict[str, Any] = {"security_group_id": c.resolve(c.find_security_group, self.ctx, p["security_group"]),
                                "direction": p.get("direction") or "ingress", "ethertype": p.get("ethertype") or "IPv4"}
        for key in ("description", "port_range_min", "port_range_max", "protocol", "remote_ip_prefix"):
            if p.get(key) is not None:
                body[key] = p[key]
        if p.get("remote_group"):
            body["remote_group_id"] = c.resolve(c.find_security_group, self.ctx, p["remote_group"])
        rule = self.client("network").post("/v2.0/security-group-rules", {"security_group_rule": body})
        self.resource_id = rule["security_group_rule"]["id"]

    def handle_delete(self) -> None:
        if self.resource_id:
            self.client("network").delete(f"/v2.0/security-group-rules/{self.resource_id}")

    def handle_check(self) -> None:
        self.client("network").get(f"/v2.0/security-group-rules/{self.resource_id}")

    def attribute(self, name: str) -> Any:
        if name == "show":
            return self.client("network").get(f"/v2.0/security-group-rules/{self.resource_id}")[
                "security_group_rule"]
        raise KeyError(name)
