"""Many machines, one cloud: node roles, joining a node to a controller, and a
multi-node cloud built on this one machine (``onestack cluster up``).

- ``nodes``: the controller's side of joining (a node's own user, its join token);
- ``node``: a node's side (``onestack join``: its configuration, its agents);
- ``fabric`` and ``local``: the nodes of a cluster on one host (network and mount
  namespaces on a management bridge), and bringing the whole cluster up and down.
"""
