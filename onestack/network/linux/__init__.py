"""The Linux data plane of networking, as a library the network agents drive.

Each module reconciles one kind of kernel state to a desired state given as plain
data (the agents build it from the API): ``ip`` (namespaces, links, addresses, routes,
through ``ip -j``), ``nft`` (atomic nftables tables), ``dhcp`` (dnsmasq per network),
``router`` (qrouter namespaces with NAT), ``secgroups`` (nftables per port) and
``metadata`` (the 169.254.169.254 proxy). Everything they create carries a
recognisable name (``qrouter-``, ``qdhcp-``, ``brq``, ``tap``, ``qr-``, ``qg-``,
``ns-``, ``vxlan-``, ``onestack-`` tables) so it can be found and removed again.
"""
