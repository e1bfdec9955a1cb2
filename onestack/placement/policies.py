"""Default policy of the placement service: Placement's own defaults, where
every operation is for the cloud administrator and for services (nova,
neutron, ... hold the ``service`` role in the service project). Rule names are
Placement's, so an operator's ``<policy dir>/placement.yaml`` reads the same."""

_ADMIN_OR_SERVICE = "rule:admin_or_service"

_OPERATIONS = [
    "placement:resource_providers:list",
    "placement:resource_providers:create",
    "placement:resource_providers:show",
    "placement:resource_providers:update",
    "placement:resource_providers:delete",
    "placement:resource_classes:list",
    "placement:resource_classes:create",
    "placement:resource_classes:show",
    "placement:resource_classes:update",
    "placement:resource_classes:delete",
    "placement:resource_providers:inventories:list",
    "placement:resource_providers:inventories:create",
    "placement:resource_providers:inventories:show",
    "placement:resource_providers:inventories:update",
    "placement:resource_providers:inventories:delete",
    "placement:resource_providers:aggregates:list",
    "placement:resource_providers:aggregates:update",
    "placement:resource_providers:usages",
    "placement:usages",
    "placement:traits:list",
    "placement:traits:show",
    "placement:traits:update",
    "placement:traits:delete",
    "placement:resource_providers:traits:list",
    "placement:resource_providers:traits:update",
    "placement:resource_providers:traits:delete",
    "placement:allocations:manage",
    "placement:allocations:list",
    "placement:allocations:update",
    "placement:allocations:delete",
    "placement:resource_providers:allocations:list",
    "placement:allocation_candidates:list",
    "placement:reshaper:reshape",
]

DEFAULTS: dict[str, str] = {
    "admin_or_service": "role:admin or role:service",
    **{name: _ADMIN_OR_SERVICE for name in _OPERATIONS},
}
