"""How the object store plugs into onestack: set-up, agents and ASGI app."""

from __future__ import annotations

import logging

from onestack.config import Config

NAME = "object_store"
PREFIX = "/object-store"
# the catalog URL names the caller's account, as Swift endpoints in Keystone do
CATALOG = {"type": "object-store", "name": "swift", "description": "Object Storage (Swift v1)",
           "path": "/v1/AUTH_$(project_id)s"}
SERVICE_USER = "swift"
ROLES = ["ResellerAdmin"]  # Swift's reseller admin role, as DevStack creates it


def version() -> str:
    return "v1"


def setup(conf: Config) -> None:
    from onestack.object_store import agents, proxy
    from onestack.object_store import ring as ring_mod
    from onestack.object_store.api.common import Limits
    from onestack.object_store.remote import Nodes

    o = conf.object_store
    Limits.max_file_size = o.max_file_size
    Limits.container_listing_limit = o.container_listing_limit
    Limits.max_meta_count = o.max_meta_count
    Limits.max_meta_overall_size = o.max_meta_overall_size
    Limits.tempurl_methods = o.tempurl_methods.split()
    Limits.cors_allow_origin = o.cors_allow_origin.split()
    ring = ring_mod.ensure_default(conf)
    if not o.node_secret and any(d.node_url for d in ring.devices):
        logging.getLogger(__name__).warning(
            "the object ring has devices on storage nodes but object_store.node_secret is not "
            "set: those devices count as failed replicas")
    # devices of this host as directories, devices of storage nodes over HTTP
    nodes = Nodes.from_conf(conf)
    cluster = proxy.configure(proxy.Cluster(ring, nodes.node, ring_mod.RingFile(ring_mod.ring_path(conf))))
    agents.start(conf, cluster, lambda a, c, obj, ts: proxy.object_delete(cluster, a, c, obj, ts),
                 stores=nodes.store)


def app():
    from onestack.object_store.api import build

    return build()


def start(conf: Config) -> None:
    """The controller's part beside the proxy: telemetry of the accounts (telemetry.enabled)."""
    from onestack.object_store import meter

    meter.start(conf)


_node_thread = None


def start_node(conf: Config, roles: set[str]) -> None:
    """A storage node's object node server (its devices over HTTP), when the node has the
    proxy's secret (a join token of a cluster with object devices on storage nodes)."""
    global _node_thread
    import threading

    from onestack.object_store import server

    if "storage" not in roles or not conf.object_store.node_secret or _node_thread is not None:
        return
    _node_thread = threading.Thread(target=server.serve_node, args=(conf,), name="object-node", daemon=True)
    _node_thread.start()


def node_app(conf: Config):
    """The object node server of a storage host (its devices over HTTP, for the proxy
    and the replicator); ``server.serve_node(conf, host, port)`` runs it."""
    from onestack.object_store import server

    return server.node_app(conf)
