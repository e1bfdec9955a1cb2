"""The controller's side of joining: each node gets a user of its own and a join token.

A node acts for the services on its machine (compute, network, storage agents call
Placement, Neutron, Glance, Cinder and Swift as Nova's and Cinder's service users
do), so its user has the roles of a service user in the ``service`` project — but it
is the node's own: never the admin's password, and removing the node (deleting its
user) ends its access at once. The join token carries what a node needs and nothing
more: the controller's URL, the node's user and password, the message bus URL and
the metadata proxies' secret. It is a secret: show it once, pass it to ``onestack
join`` on the node.
"""

from __future__ import annotations

import base64
import json
import re
import secrets

from onestack.common import errors
from onestack.common.clients import RestClient, ServiceAuth
from onestack.common.credentials import load_credentials
from onestack.network import metadata_secret

TOKEN_PREFIX = "osj1."
USER_PREFIX = "node-"
NODE_ROLES = ("admin", "service")  # as the service users bootstrap makes
NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")


class JoinError(Exception):
    """A join token or a node name that cannot be used, said in one line."""


def encode_token(data: dict) -> str:
    return TOKEN_PREFIX + base64.urlsafe_b64encode(json.dumps(data, sort_keys=True).encode()).decode().rstrip("=")


def decode_token(token: str) -> dict:
    token = token.strip()
    if not token.startswith(TOKEN_PREFIX):
        raise JoinError("not an onestack join token (it starts with osj1.; `onestack node add` prints one)")
    body = token[len(TOKEN_PREFIX):]
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise JoinError("the join token is damaged (copy it whole)") from None
    missing = [k for k in ("url", "node", "user", "password", "bus_url") if not data.get(k)]
    if not isinstance(data, dict) or missing:
        raise JoinError(f"the join token lacks {', '.join(missing)}")
    return data


def _identity(conf) -> RestClient:
    admin = load_credentials(conf).get("admin")
    if not admin:
        raise JoinError(f"no admin credentials in {conf.state_dir}: run this on the controller")
    return RestClient(ServiceAuth(conf.public_url, "admin", admin["password"], admin.get("project", "admin")),
                      "/identity/v3")


def _one(items: list[dict], what: str) -> dict:
    if not items:
        raise JoinError(f"identity has no {what}: is this the controller's configuration?")
    return items[0]


def add(conf, name: str, roles: list[str], bus_url: str) -> str:
    """Make (or renew) node ``name``'s user and return its join token."""
    if not NAME.match(name):
        raise JoinError(f"node name {name!r}: use 1-40 lowercase letters, digits and dashes")
    if not bus_url or not bus_url.startswith("amqp"):
        raise JoinError("nodes reach the controller over RabbitMQ: start the controller with "
                        "`onestack up --role controller` (or bus.backend = \"amqp\")")
    ident = _identity(conf)
    user_name = USER_PREFIX + name
    password = secrets.token_urlsafe(24)
    found = ident.get("/users", params={"name": user_name, "domain_id": "default"})["users"]
    description = f"onestack node {name} ({', '.join(roles)})"
    if found:
        ident.request("PATCH", f"/users/{found[0]['id']}",
                      json={"user": {"password": password, "description": description}})
        user_id = found[0]["id"]
    else:
        user_id = ident.post("/users", json={"user": {"name": user_name, "domain_id": "default",
                                                      "password": password, "description": description,
                                                      "enabled": True}})["user"]["id"]
    project = _one(ident.get("/projects", params={"name": "service", "domain_id": "default"})["projects"],
                   "project service")
    for role_name in NODE_ROLES:
        role = _one(ident.get("/roles", params={"name": role_name})["roles"], f"role {role_name}")
        ident.put(f"/projects/{project['id']}/users/{user_id}/roles/{role['id']}")
    return encode_token({"url": conf.public_url, "node": name, "user": user_name, "password": password,
                         "project": "service", "bus_url": bus_url, "roles": roles,
                         "metadata_secret": metadata_secret.get(conf)})


def remove(conf, name: str) -> bool:
    """Delete node ``name``'s user: its agents can no longer call the APIs. False: no such node."""
    ident = _identity(conf)
    found = ident.get("/users", params={"name": USER_PREFIX + name, "domain_id": "default"})["users"]
    if not found:
        return False
    try:
        ident.delete(f"/users/{found[0]['id']}")
    except errors.NotFound:
        return False
    return True


def listing(conf) -> list[dict]:
    """The nodes made here: name and description."""
    users = _identity(conf).get("/users", params={"domain_id": "default"})["users"]
    return [{"name": u["name"][len(USER_PREFIX):], "user_id": u["id"], "description": u.get("description") or ""}
            for u in users if u["name"].startswith(USER_PREFIX)]
