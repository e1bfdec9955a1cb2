"""Resource types: one module per service namespace (heat, nova, neutron, cinder, ...).

Importing this package registers every type in :data:`base.REGISTRY`.
"""

from onestack.orchestration.resources import (  # noqa: F401,E402  (register the other services' types)
    aodh,
    autoscaling,
    cfn,
    cinder,
    glance,
    heat,  # noqa: F401,E402  (registers OS::Heat::*)
    keystone,
    neutron,
    nova,
    software,
    stack,
    swift,
)
