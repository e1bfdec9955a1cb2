"""A node's side: ``onestack join`` writes the node's configuration from its join
token, then runs the agents of its roles — no API, no database: everything it knows
of the cloud it asks the conductors over RabbitMQ, and the APIs over HTTP as its
own node user.

The node's state directory holds ``node.toml`` (its configuration: a config file
like any other, so ``onestack down --config <state>/node.toml`` stops it) and
``credentials.toml`` (the node user, under each service user's name, so the agents'
clients authenticate as the node).
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import tomllib
import urllib.parse
from pathlib import Path
from types import SimpleNamespace

from onestack import services
from onestack.cluster.nodes import JoinError, decode_token
from onestack.common import bus
from onestack.common.clients import ServiceAuth
from onestack.common.credentials import save_credentials
from onestack.common.credentials import write_secret_toml as write_toml
from onestack.config import Config

log = logging.getLogger(__name__)

NODE_CONFIG = "node.toml"
# the service users whose clients a node's agents make (each acts as the node user)
SERVICE_USERS = ("nova", "neutron", "cinder", "glance", "swift", "placement")


def local_address_towards(url: str) -> str:
    """This machine's address on the way to ``url`` (no packet is sent: a UDP socket's
    connect only picks the route)."""
    host = urllib.parse.urlsplit(url).hostname or "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect((host, 9))
        return s.getsockname()[0]


def prepare(url: str, token: str, roles: frozenset[str], state_dir: Path, *, base: Path | None = None,
            local_ip: str = "", host: str = "") -> Path:
    """Check the token against the controller and write the node's configuration;
    returns its path. ``base``: a config file whose settings the node keeps (the
    token's and the node's own settings win)."""
    data = decode_token(token)
    if "controller" in roles:
        raise JoinError("a joining node has no controller role: run `onestack up --role controller` there")
    url = (url or data["url"]).rstrip("/")
    auth = ServiceAuth(url, data["user"], data["password"], data.get("project", "service"))
    try:
        auth.token()
    except Exception as e:  # noqa: BLE001 (one line for the operator, whatever it was)
        raise JoinError(f"the controller at {url} refused the node's credentials: {e}") from None
    local_ip = local_ip or local_address_towards(url)
    host = host or data["node"]
    values: dict[str, dict] = {}
    if base is not None:
        values = tomllib.loads(base.read_text())
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def put(section: str, **kv) -> None:
        values.setdefault(section, {}).update(kv)

    put("state", dir=str(state_dir))
    put("server", public_url=url)
    put("bus", backend="amqp", url=data["bus_url"])
    put("node", roles=",".join(sorted(roles)), controller_url=url, name=data["node"])
    put("compute", host=host, migration_address=local_ip, vnc_listen="0.0.0.0")
    put("volume", host=host, export_address=local_ip)
    put("network", local_ip=local_ip, metadata_url=f"{url}/metadata",
        metadata_secret=data.get("metadata_secret", ""))
    path = state_dir / NODE_CONFIG
    write_toml(path, values)
    save_credentials_for(state_dir, data)
    return path


def save_credentials_for(state_dir: Path, data: dict) -> None:
    creds = {name: {"user": data["user"], "password": data["password"], "project": data.get("project", "service")}
             for name in SERVICE_USERS}
    save_credentials(SimpleNamespace(state_dir=state_dir), creds)  # (it reads only the state dir)


def run(conf: Config, roles: frozenset[str], stop: threading.Event | None = None) -> None:
    """Run the agents of ``roles`` until SIGTERM/SIGINT (or ``stop``)."""
    if conf.bus.backend != "amqp" or not conf.bus.url:
        raise JoinError("a node needs the controller's message bus (bus.backend = \"amqp\" and bus.url)")
    stop = stop or threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    bus.configure("amqp", conf.bus.url)
    started = []
    for mod in services.load():
        if hasattr(mod, "start_node"):
            mod.start_node(conf, set(roles))
            started.append(mod.NAME)
    log.info("node %s: agents of %s running (roles %s)", conf.compute.host or socket.gethostname(),
             ", ".join(started), ", ".join(sorted(roles)))
    stop.wait()
    log.info("node stopping")
    for mod in services.load():
        if hasattr(mod, "stop_node"):
            mod.stop_node()
    bus.get().close()
