"""Default policy of the network service (Neutron's defaults, simplified).

``admin`` may do anything; members manage the resources of their own project;
only admins create provider, shared or external networks, set binding:* or
create resources for another project. Who may *see* a resource (owner, RBAC
policies sharing a network or making it external) is decided by ``core.visible``
before any rule runs. A network's owner shares it with one project through an RBAC
policy; sharing with every project ("*") is for admins (``*_rbac_policy:target_tenant``,
checked only when the target is "*"), and so is the first ``access_as_external`` policy
of a network, which makes it external (``update_network:router:external``). Operators
override any rule in ``<policy dir>/network.yaml``.
"""

_ADMIN = "role:admin"
_OWNER = "project_id:%(target.project_id)s"
_MEMBER = f"{_ADMIN} or (role:member and {_OWNER})"

DEFAULTS: dict[str, str] = {
    "admin_only": _ADMIN,
    "create": _MEMBER,
    "update": _MEMBER,
    "delete": _MEMBER,
    "create_network:shared": _ADMIN,
    "create_network:router:external": _ADMIN,
    "create_network:provider": _ADMIN,
    "update_network:shared": _ADMIN,
    "update_network:router:external": _ADMIN,
    "update_network:provider": _ADMIN,
    "create_subnetpool:shared": _ADMIN,
    "create_subnetpool:is_default": _ADMIN,
    "create_port:binding": _ADMIN,
    "update_port:binding": _ADMIN,
    "create_port:mac_address": _MEMBER,
    "create_router:distributed": _ADMIN,
    "create_router:ha": _ADMIN,
    "create_router:external_gateway_info:external_fixed_ips": _ADMIN,
    "create_router:external_gateway_info:enable_snat": _ADMIN,
    "create_floatingip:floating_ip_address": _ADMIN,
    "create_rbac_policy:target_tenant": _ADMIN,
    "update_rbac_policy:target_tenant": _ADMIN,
    "update_quota": _ADMIN,
    "delete_quota": _ADMIN,
    "get_quota": f"{_ADMIN} or {_OWNER}",
    "get_agent": _ADMIN,
    "update_agent": _ADMIN,
    "delete_agent": _ADMIN,
    "get_dhcp-networks": _ADMIN,
    "get_l3-routers": _ADMIN,
    "get_dhcp-agents": _ADMIN,
    "get_l3-agents": _ADMIN,
    "get_availability_zone": "@",
}
