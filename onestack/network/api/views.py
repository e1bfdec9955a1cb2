"""Wire format of the Networking API: which attributes a caller sees, and `fields=`."""

from __future__ import annotations

from onestack.network import agent_records

ADMIN_ONLY = {
    "network": ("provider:network_type", "provider:physical_network", "provider:segmentation_id"),
    "port": ("binding:host_id", "binding:profile", "binding:vif_type", "binding:vif_details"),
    "router": ("distributed", "ha"),
}

EXTENSIONS = [
    ("agent", "agent", "The agent management extension."),
    ("availability_zone", "Availability Zone", "The availability zone extension."),
    ("allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs"),
    ("binding", "Port Binding", "Expose port bindings of a virtual port to external application"),
    ("default-subnetpools", "Default Subnetpools", "Provides ability to mark and use a subnetpool as the default."),
    ("external-net", "Neutron external network", "Adds external network attribute to network resource."),
    ("extra_dhcp_opt", "Neutron Extra DHCP options", "Extra options configuration for DHCP."),
    ("extraroute", "Neutron Extra Route", "Extra routes configuration for L3 router"),
    ("ext-gw-mode", "Neutron L3 Configurable external gateway mode",
     "Extension of the router abstraction for specifying whether SNAT should occur on the external gateway"),
    ("network-mtu", "Network MTU", "Provides MTU attribute for a network resource."),
    ("network_availability_zone", "Network Availability Zone", "Availability zone support for network."),
    ("port-security", "Port Security", "Provides port security"),
    ("project-id", "project_id field enabled", "Extension that indicates that project_id field is enabled."),
    ("provider", "Provider Network", "Expose mapping of virtual networks to physical networks"),
    ("quotas", "Quota management support", "Expose functions for quotas management per project"),
    ("rbac-policies", "RBAC Policies", "Allows creation and modification of policies that control tenant access "
     "to resources."),
    ("quota_details", "Quota details management support",
     "Expose functions for quotas usage statistics per project"),
    ("router", "Neutron L3 Router",
     "Router abstraction for basic L3 forwarding between L2 Neutron networks and access to external networks "
     "via a NAT gateway."),
    ("router_availability_zone", "Router Availability Zone", "Availability zone support for router."),
    ("security-group", "security-group", "The security groups extension."),
    ("sorting", "Sorting support", "Enables sorting support."),
    ("pagination", "Pagination support", "Extension that indicates that pagination is enabled."),
    ("fields-query", "Fields query", "Fields query support"),
    ("filter-validation", "Filter parameters validation", "Provides validation on filter parameters."),
    ("standard-attr-description", "standard-attr-description", "Extension to add descriptions to standard attributes"),
    ("standard-attr-revisions", "Resource revision numbers", "This extension will display the revision number of "
     "neutron resources."),
    ("standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at fields to all Neutron "
     "resources that have Neutron standard attributes."),
    ("standard-attr-tag", "Tag support for resources with standard attribute: subnet, trunk, network_segment_range, "
     "router, network, policy, subnetpool, port, security_group, floatingip", "Enables to set tag on resources with "
     "standard attribute."),
    ("tag-ext", "Tag support for resources: subnet, subnetpool, port, router", "Extends tag support to more L2 and "
     "L3 resources."),
    ("stateful-security-group", "Stateful security group", "Indicates if the security group is stateful or not"),
    ("subnet_allocation", "Subnet Allocation", "Enables allocation of subnets from a subnet pool"),
    ("ip-substring-filtering", "IP address substring filtering", "Provides IP address substring filtering when "
     "listing ports"),
    ("empty-string-filtering", "Empty String Filtering Extension", "Allow filtering by attributes with empty "
     "string value"),
]


def extension(alias: str, name: str, description: str) -> dict:
    return {"alias": alias, "name": name, "description": description, "updated": "2013-01-01T10:00:00-00:00",
            "links": []}


def agent(doc: dict, fields: list[str] | None = None) -> dict:
    """Neutron's agent resource; ``alive`` comes from the heartbeat's age."""
    out = agent_records.agent_view(doc)
    return {k: v for k, v in out.items() if k in fields} if fields else out


def availability_zone(name: str, resource: str, available: bool) -> dict:
    return {"name": name, "resource": resource, "state": "available" if available else "unavailable"}


# resources without Neutron's standard attributes show exactly these
ONLY = {"rbac_policy": ("id", "project_id", "object_type", "object_id", "action", "target_tenant")}


def resource(ctx, kind: str, doc: dict, fields: list[str] | None = None) -> dict:
    out = {k: doc.get(k) for k in ONLY[kind]} if kind in ONLY else dict(doc)
    if not ctx.is_admin:
        for k in ADMIN_ONLY.get(kind, ()):
            out.pop(k, None)
    out["tenant_id"] = out.get("project_id")
    if fields:
        out = {k: v for k, v in out.items() if k in fields}
    return out
