"""Request schemas of the Compute API, as data: one variant per microversion where a body
changes (as Nova's ``api/openstack/compute/schemas``), checked by onestack.common.validation."""
