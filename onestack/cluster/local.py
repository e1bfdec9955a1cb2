"""A multi-node cloud on this one machine (``onestack cluster up``): a controller
(the APIs, RabbitMQ and PostgreSQL, run by onestack), two compute+network nodes and a
storage node, each in namespaces of its own on a management network (fabric.py),
joined exactly as separate machines join: with a join token, over the network.

The controller's state directory is the configured one (so `onestack openrc`,
`status` and `down` serve the cluster); the nodes' are beside it, in
``<state>-cluster/<node>/state``. ``cluster.json`` there records the nodes.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from onestack import infra
from onestack.cluster import nodes as nodes_mod
from onestack.cluster import tls
from onestack.cluster.fabric import PUBLIC_NS, Fabric, FabricError, Node
from onestack.cluster.node import NODE_CONFIG, write_toml
from onestack.config import load

log = logging.getLogger(__name__)

CONTROLLER_CONFIG = "cluster-controller.toml"  # in the controller's state dir: a cluster runs
LAYOUT = [("ctl", ["controller"]), ("c1", ["compute", "network"]), ("c2", ["compute", "network"]),
          ("s1", ["storage"])]
ONESTACK = [sys.executable, "-m", "onestack.cli"]
OBJECT_DEVICES = ("d1", "d2")  # a storage node's object devices (directories of its state dir)


def _node_env() -> dict[str, str]:
    """A node's environment: this shell's, less its ONESTACK_* overrides (a node is another
    machine: its configuration is its own file)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ONESTACK_")}


class ClusterError(RuntimeError):
    pass


def cluster_dir(conf) -> Path:
    return conf.state_dir.parent / (conf.state_dir.name + "-cluster")


def controller_config(conf) -> Path:
    return conf.state_dir / CONTROLLER_CONFIG


def layout(compute_nodes: int = 2, storage_nodes: int = 1) -> list[tuple[str, list[str]]]:
    out = [("ctl", ["controller"])]
    out += [(f"c{i + 1}", ["compute", "network"]) for i in range(compute_nodes)]
    out += [(f"s{i + 1}", ["storage"]) for i in range(storage_nodes)]
    return out


def _load_record(conf) -> dict | None:
    path = cluster_dir(conf) / "cluster.json"
    return json.loads(path.read_text()) if path.exists() else None


def _nodes_of(record: dict) -> list[Node]:
    return [Node(**n) for n in record["nodes"]]


def fabric_of(conf, record: dict | None = None) -> Fabric:
    record = record or _load_record(conf) or {}
    return Fabric(cluster_dir(conf), record.get("mgmt_cidr", "10.250.0.0/24"),
                  record.get("public_cidr", conf.network.public_cidr or "172.24.4.0/24"))


def up(conf, base_config: Path | None, *, compute_nodes: int = 2, storage_nodes: int = 1,
       mgmt_cidr: str = "10.250.0.0/24", say: Callable[[str], None] = print) -> dict:
    """Build and start the cluster (idempotent for what already runs); its record."""
    if _load_record(conf) is not None and controller_config(conf).exists():
        raise ClusterError(f"a cluster already runs from {conf.state_dir} (onestack cluster down first)")
    public = conf.network.public_cidr or "172.24.4.0/24"
    root = cluster_dir(conf)
    fabric = Fabric(root, mgmt_cidr, public)
    nodes = [Node(name, roles, fabric.address(i)) for i, (name, roles) in
             enumerate(layout(compute_nodes, storage_nodes))]
    record = {"mgmt_cidr": mgmt_cidr, "public_cidr": public, "nodes": [asdict(n) for n in nodes],
              "base_config": str(base_config or "")}
    root.mkdir(parents=True, exist_ok=True, mode=0o711)
    (root / "cluster.json").write_text(json.dumps(record, indent=2))
    say(f"fabric: management network {mgmt_cidr} (this host {fabric.host_address}), "
        f"external {public} in namespace {PUBLIC_NS}")
    fabric.create(nodes)
    base = tomllib.loads(base_config.read_text()) if base_config else {}
    # the object proxy and the storage nodes' object servers share a secret
    base.setdefault("object_store", {}).setdefault("node_secret", secrets.token_hex(32))
    ctl = nodes[0]
    ctl_conf = _controller(conf, fabric, ctl, base, say)
    url = ctl_conf.public_url
    bus_url = infra.bus_url(ctl_conf)
    for node in nodes[1:]:
        _join(fabric, node, url, ctl_conf, bus_url, base, say)
    _object_devices(fabric, [n for n in nodes if "storage" in n.roles], ctl_conf, say)
    return record


def _object_devices(fabric: Fabric, storage: list[Node], ctl_conf, say) -> None:
    """The object ring spans the storage nodes: two devices on each, in zones of their own."""
    if not storage:
        return
    cfg = str(ctl_conf.path)
    zone = 10
    for node in storage:
        for dev in OBJECT_DEVICES:
            zone += 1
            r = subprocess.run([*ONESTACK, "object", "ring", "add", "--name", f"{node.name}-{dev}", "--zone",
                                str(zone), "--node-url", f"http://{node.address}:{ctl_conf.object_store.node_port}",
                                "--path", dev, "--config", cfg], capture_output=True, text=True, env=_node_env())
            if r.returncode != 0 and "already" not in r.stdout + r.stderr:
                raise ClusterError(f"object device {node.name}-{dev}: {(r.stdout + r.stderr).strip()}")
    r = subprocess.run([*ONESTACK, "object", "ring", "rebalance", "--config", cfg], capture_output=True, text=True,
                       env=_node_env())
    if r.returncode != 0:
        raise ClusterError(f"object ring rebalance: {(r.stdout + r.stderr).strip()}")
    say(f"object ring: devices on {', '.join(n.name for n in storage)} added and rebalanced")


def _controller(conf, fabric: Fabric, ctl: Node, base: dict, say) -> object:
    values = {s: dict(k) for s, k in base.items()}

    def put(section: str, **kv) -> None:
        values.setdefault(section, {}).update(kv)

    put("state", dir=str(conf.state_dir))
    put("server", host=ctl.address, port=conf.server.port, public_url="")
    put("bus", backend="amqp", managed=True, url="")
    put("database", managed=True, url="")
    put("node", roles="controller", name=ctl.name)
    put("volume", host=ctl.name)  # (cinder-scheduler's host)
    put("network", public_cidr=fabric.public.with_prefixlen if conf.network.public_cidr else "")
    conf.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = controller_config(conf)
    write_toml(path, values)
    say(f"controller {ctl.name} ({ctl.address}): APIs, RabbitMQ, PostgreSQL")
    r = fabric.run(ctl, [*ONESTACK, "up", "--detach", "--config", str(path)], check=False, timeout=600,
                   env=_node_env())
    if r.returncode != 0:
        raise ClusterError(f"the controller did not start: {(r.stdout + r.stderr).strip()[-2000:]}")
    return load(path)


def _join(fabric: Fabric, node: Node, url: str, ctl_conf, bus_url: str, base: dict, say) -> None:
    values = {s: dict(k) for s, k in base.items() if s not in ("server", "state", "bus", "database")}
    if "network" in node.roles:
        values.setdefault("network", {})["physical_interface_mappings"] = "public:ext0"
    # NBD between nodes is always TLS, with certificates of the cluster's CA
    certs = tls.node_credentials(fabric.root / "pki", node.name, node.address,
                                 server="storage" in node.roles, client="compute" in node.roles)
    if "storage" in node.roles:
        values.setdefault("volume", {})["export_tls_dir"] = str(certs)
    if "compute" in node.roles:  # (before its libvirtd starts: it reads qemu.conf once)
        tls.nbd_client_config(fabric.node_dir(node.name) / "sys" / "etc-libvirt" / "qemu.conf", certs)
    d = fabric.node_dir(node.name)
    if "storage" in node.roles:
        values.setdefault("object_store", {})["node_host"] = node.address
        (d / "state").mkdir(mode=0o700, exist_ok=True)
        for dev in OBJECT_DEVICES:
            (d / "state" / "object" / "devices" / dev).mkdir(parents=True, exist_ok=True)
    base_path = d / "base.toml"
    write_toml(base_path, values)
    token = nodes_mod.add(ctl_conf, node.name, node.roles, bus_url)
    if "compute" in node.roles:
        fabric.start_libvirt(node)
    say(f"node {node.name} ({node.address}): {', '.join(node.roles)}")
    r = fabric.run(node, [*ONESTACK, "join", url, "--token", token, "--role", ",".join(node.roles),
                          "--state-dir", str(d / "state"), "--local-ip", node.address, "--config",
                          str(base_path), "--detach"], check=False, timeout=300, env=_node_env())
    if r.returncode != 0:
        raise ClusterError(f"node {node.name} did not join: {(r.stdout + r.stderr).strip()[-2000:]}")


def down(conf, purge: bool = False, say: Callable[[str], None] = print) -> None:
    """Stop every node and the controller, then remove the fabric (and, with purge, all state)."""
    record = _load_record(conf)
    if record is None:
        raise ClusterError(f"no cluster of {conf.state_dir} ({cluster_dir(conf)}/cluster.json is absent)")
    fabric = fabric_of(conf, record)
    nodes = _nodes_of(record)
    for node in reversed(nodes[1:]):
        cfg = fabric.node_dir(node.name) / "state" / NODE_CONFIG
        if cfg.exists() and fabric.mount_ns(node.name).exists():
            args = [*ONESTACK, "down", "--config", str(cfg), *(["--purge"] if purge else [])]
            r = fabric.run(node, args, check=False, timeout=300, env=_node_env())
            say(f"node {node.name}: {(r.stdout.strip().splitlines() or ['stopped'])[-1]}")
    ctl_cfg = controller_config(conf)
    if ctl_cfg.exists():  # (its `down` stops the RabbitMQ and PostgreSQL it runs; --purge deletes its state)
        try:
            args = [*ONESTACK, "down", "--config", str(ctl_cfg), *(["--purge"] if purge else [])]
            r = fabric.run(nodes[0], args, check=False, timeout=300, env=_node_env())
            say(f"controller: {(r.stdout.strip().splitlines() or ['stopped'])[-1]}")
        except FabricError as e:
            say(f"controller: {e}")
    fabric.destroy(nodes)
    say("fabric removed")
    ctl_cfg.unlink(missing_ok=True)
    (cluster_dir(conf) / "cluster.json").unlink(missing_ok=True)
    if purge:
        shutil.rmtree(cluster_dir(conf), ignore_errors=True)
        say(f"nodes' state deleted: {cluster_dir(conf)}")


def status(conf) -> dict | None:
    record = _load_record(conf)
    if record is None:
        return None
    fabric = fabric_of(conf, record)
    out = []
    for node in _nodes_of(record):
        out.append({**asdict(node), "processes": len(fabric.node_pids(node)) if node.name != "ctl" else None})
    return {**record, "nodes": out}


def find_namespace(conf, name: str) -> tuple[list[str], str] | None:
    """Where a namespace of the cluster is: (argv prefix entering its node, its name)."""
    record = _load_record(conf)
    if record is None:
        return None
    if name in ("public", PUBLIC_NS):
        return [], PUBLIC_NS
    fabric = fabric_of(conf, record)
    for node in _nodes_of(record):
        if name in (node.name, node.netns):
            return fabric.enter(node), ""
        if not fabric.mount_ns(node.name).exists():
            continue
        listing = fabric.run(node, ["ls", "/run/netns"], check=False, timeout=10).stdout.split()
        for candidate in (name, "qrouter-" + name, "qdhcp-" + name):
            if candidate in listing:
                return fabric.enter(node), candidate
    return None
