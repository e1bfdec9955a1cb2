"""Request bodies of the Networking v2.0 API as data: the attributes of networks, subnets and
ports with the types neutron-lib's attribute maps give them, checked by
onestack.common.validation in Neutron's words ("Invalid input for <attribute>. Reason: ...").

Booleans are converted first, as Neutron's ``convert_to_boolean`` does (true/false/1/0 in
any case, and the integers 0 and 1). Attributes of extensions a client may send and this
cloud keeps as they are stay open (no ``additionalProperties: false``), as Neutron's
extension attributes are; what needs the database is checked in network.core.
"""

from __future__ import annotations

from onestack.common import booleans, validation

# neutron-lib's convert_to_boolean
BOOLEANS = {"network": ("admin_state_up", "shared", "router:external", "port_security_enabled", "is_default"),
            "subnet": ("enable_dhcp", "use_default_subnetpool", "dns_publish_fixed_ip"),
            "port": ("admin_state_up", "port_security_enabled"),
            "subnetpool": ("shared", "is_default"), "router": ("admin_state_up", "distributed", "ha"),
            "security_group": ("stateful",), "agent": ("admin_state_up",)}
TRUE, FALSE = ("true", "1"), ("false", "0")


def convert_booleans(kind: str, body: dict) -> None:
    """The boolean attributes of ``body`` as bools, in place; a 400 for any other value."""
    for key in BOOLEANS.get(kind, ()):
        if key in body:
            body[key] = booleans.parse_bool(
                body[key], key, true=TRUE, false=FALSE, type="InvalidInput",
                message="Invalid input for operation: '{value}' is not a valid boolean value for {field}.")


def _string(most: int = 255) -> dict:
    return {"type": "string", "maxLength": most}


_UUID = {"type": "string", "format": "uuid"}
_NULLABLE_UUID = {"type": ["string", "null"], "format": "uuid"}
_IP = {"type": "string", "oneOf": [{"format": "ipv4"}, {"format": "ipv6"}]}
_NULLABLE_IP = {"type": ["string", "null"], "anyOf": [{"type": "null"}, {"format": "ipv4"}, {"format": "ipv6"}]}
_CIDR = {"type": "string", "format": "cidr"}
_IP_OR_CIDR = {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}, {"format": "cidr"}]}
_COMMON = {"name": _string(), "description": _string(), "project_id": _string(), "tenant_id": _string()}

NETWORK = {**_COMMON, "provider:network_type": _string(), "provider:physical_network": _string(64),
           "availability_zone_hints": {"type": "array", "items": _string()}, "dns_domain": _string(),
           "qos_policy_id": _NULLABLE_UUID}
SUBNET = {
    **_COMMON,
    "network_id": _UUID,
    "ip_version": {"type": ["integer", "string"], "enum": [4, 6, "4", "6"]},
    "cidr": {"type": ["string", "null"], "format": "cidr"},
    "gateway_ip": _NULLABLE_IP,
    "allocation_pools": {"type": "array", "items": {
        "type": "object", "properties": {"start": _IP, "end": _IP}, "required": ["start", "end"]}},
    "dns_nameservers": {"type": ["array", "null"], "items": _IP},
    "host_routes": {"type": ["array", "null"], "items": {
        "type": "object", "properties": {"destination": _CIDR, "nexthop": _IP},
        "required": ["destination", "nexthop"]}},
    "ipv6_ra_mode": {"type": ["string", "null"], "enum": ["slaac", "dhcpv6-stateful", "dhcpv6-stateless", None]},
    "ipv6_address_mode": {"type": ["string", "null"],
                          "enum": ["slaac", "dhcpv6-stateful", "dhcpv6-stateless", None]},
    "subnetpool_id": {"type": ["string", "null"]},  # a UUID, or Neutron's "prefix_delegation"
    "prefixlen": {"type": ["integer", "string"], "pattern": "^[0-9]+$", "minimum": 0, "maximum": 128},
    "service_types": {"type": "array", "items": _string()},
    "segment_id": _NULLABLE_UUID,
}
PORT = {
    **_COMMON,
    "network_id": _UUID,
    "mac_address": {"type": "string", "format": "mac"},
    "fixed_ips": {"type": ["array", "null"], "items": {
        "type": "object", "properties": {"subnet_id": _UUID, "ip_address": _IP}}},
    "device_id": _string(), "device_owner": _string(),
    "security_groups": {"type": ["array", "null"], "items": _UUID},
    "allowed_address_pairs": {"type": ["array", "null"], "items": {
        "type": "object", "properties": {"ip_address": _IP_OR_CIDR, "mac_address": {"type": "string",
                                                                                   "format": "mac"}},
        "required": ["ip_address"]}},
    "binding:host_id": {"type": ["string", "null"], "maxLength": 255},
    "binding:profile": {"type": ["object", "null"]},
    "binding:vnic_type": {"type": "string", "enum": ["normal", "direct", "macvtap", "baremetal",
                                                     "direct-physical", "virtio-forwarder", "smart-nic",
                                                     "vdpa", "accelerator-direct",
                                                     "accelerator-direct-physical", "remote-managed"]},
    "extra_dhcp_opts": {"type": ["array", "null"], "items": {"type": "object"}},
    "dns_name": _string(),
    "qos_policy_id": _NULLABLE_UUID,
}


def _schema(props: dict, required: tuple[str, ...] = ()) -> dict:
    return {"type": "object", "properties": props, "required": list(required)}


CREATE = {"network": _schema(NETWORK), "subnet": _schema(SUBNET, ("network_id",)),
          "port": _schema(PORT, ("network_id",))}
UPDATE = {"network": _schema(NETWORK), "subnet": _schema(SUBNET), "port": _schema(PORT)}
# the other collections: the attributes every resource shares
OTHER = _schema({"name": _string(), "description": _string()})


def check(kind: str, body: dict, *, create: bool) -> dict:
    """``body`` of a create (or update) of a ``kind``, booleans converted, checked: a 400 in
    Neutron's words naming the attribute."""
    convert_booleans(kind, body)
    schema = (CREATE if create else UPDATE).get(kind, OTHER)
    return validation.validate(schema, body, style=validation.NEUTRON)
