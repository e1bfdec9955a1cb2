"""The Placement service (OpenStack Placement API): resource providers, their
inventories, traits and aggregates, allocations of consumers, usages and
allocation candidates for the compute scheduler."""
