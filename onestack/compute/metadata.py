"""The metadata API: what a guest learns about itself at http://169.254.169.254.

Guests never reach this app directly: the network agent's metadata proxy (see
onestack/network/linux/metadata.py) answers in the guest's router or DHCP
namespace, resolves the guest's address to its instance, and forwards the request
here (``<public url>/metadata/...``) with ``X-Instance-ID``,
``X-Instance-ID-Signature`` (HMAC-SHA256 of the id with the shared secret,
onestack/network/metadata_secret.py), ``X-Tenant-ID`` and ``X-Forwarded-For``. A
request whose signature does not check out is refused (403); one without the
headers is a 400; the answer is always about the signed instance only.

Both of Nova's layouts are served, built by the same functions as the config drive
(onestack/compute/virt/configdrive.py), so both say the same thing:

    /                                   EC2 versions (1.0 ... 2009-04-04, latest)
    /<version>/meta-data/...            EC2 meta-data tree (instance-id, hostname,
                                        local-ipv4, public-ipv4, ami-id, instance-type,
                                        placement/availability-zone, public-keys/0/openssh-key)
    /<version>/user-data                404 when the server has none
    /openstack                          OpenStack versions (2012-08-10 ... 2018-08-27, latest)
    /openstack/<version>/meta_data.json, user_data, vendor_data.json,
                         network_data.json (2015-10-15+), vendor_data2.json (2016-10-06+)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import posixpath
import threading

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common import db
from onestack.compute import models as m
from onestack.compute.virt import configdrive
from onestack.network import metadata_secret

log = logging.getLogger(__name__)

_ec2_latest = configdrive.EC2_VERSIONS[-1]


class _State:
    secret: str | None = None
    lock = threading.Lock()


def configure(conf=None, secret: str | None = None) -> None:
    """Set the shared secret: given, or the network's (``network.metadata_secret`` or
    the generated one in the state directory)."""
    if secret is None and conf is not None:
        secret = metadata_secret.get(conf)
    _State.secret = secret


def sign(instance_id: str, secret: str) -> str:
    return hmac.new(secret.encode(), instance_id.encode(), hashlib.sha256).hexdigest()


class MetadataError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


# ---------------------------------------------------------------------------------------
# the documents


def instance_record(instance_id: str) -> tuple[dict, list[dict]] | None:
    """(instance fields, its key pairs) from the compute tables, or None."""
    with db.session() as s:
        inst = s.get(m.Instance, instance_id)
        if inst is None or inst.deleted:
            return None
        fields = {
            c: getattr(inst, c)
            for c in (
                "uuid", "name", "hostname", "project_id", "user_id", "availability_zone",
                "key_name", "key_data", "user_data", "network_info", "launch_index",
                "reservation_id", "flavor", "image_ref", "security_groups",
            )
        }  # fmt: skip
        fields["metadata"] = dict(inst.metadata_ or {})
        keypairs = []
        if inst.key_name and inst.key_data:
            kp = s.scalars(
                sa.select(m.KeyPair).where(
                    m.KeyPair.user_id == inst.user_id, m.KeyPair.name == inst.key_name
                )
            ).first()
            keypairs.append(
                {
                    "name": inst.key_name,
                    "public_key": inst.key_data,
                    "type": kp.type if kp is not None else "ssh",
                }
            )
    return fields, keypairs


def _os_version_ok(version: str, since: str) -> bool:
    return version == "latest" or version >= since


def openstack_item(inst: dict, keypairs: list[dict], tokens: list[str]):
    """The OpenStack tree: a listing (list of names) or a document (dict/bytes)."""
    versions = list(configdrive.OPENSTACK_VERSIONS)
    if not tokens:
        return versions + ["latest"]
    version = tokens[0]
    if version not in versions and version != "latest":
        raise MetadataError(404, f"no metadata version {version}")
    user_data = configdrive.user_data_of(inst)
    files = {"meta_data.json": lambda: configdrive.instance_meta_data(inst, keypairs, version)}
    if user_data is not None:
        files["user_data"] = lambda: user_data
    if _os_version_ok(version, "2013-04-04"):
        files["vendor_data.json"] = lambda: {}
    if _os_version_ok(version, "2015-10-15"):
        files["network_data.json"] = lambda: configdrive.network_data(
            inst.get("network_info") or []
        )
    if _os_version_ok(version, "2016-10-06"):
        files["vendor_data2.json"] = lambda: {}
    if len(tokens) == 1:
        order = ["meta_data.json", "user_data", "vendor_data.json", "network_data.json",
                 "vendor_data2.json"]  # fmt: skip
        return [n for n in order if n in files]
    if len(tokens) > 2 or tokens[1] not in files:
        raise MetadataError(404, "no such metadata")
    return files[tokens[1]]()


def ec2_item(inst: dict, keypairs: list[dict], tokens: list[str]):
    version = tokens[0]
    if version == "latest":
        version = _ec2_latest
    if version not in configdrive.EC2_VERSIONS:
        raise MetadataError(404, f"no metadata version {tokens[0]}")
    data: object = {"meta-data": configdrive.ec2_meta_data(inst, keypairs)}
    user_data = configdrive.user_data_of(inst)
    if user_data is not None:
        data["user-data"] = user_data
    for token in tokens[1:]:
        if not isinstance(data, dict) or token not in data or token == "_name":
            raise MetadataError(404, "no such metadata")
        data = data[token]
    return data


def ec2_format(data) -> bytes:
    """Nova's ec2_md_print: a dict lists its keys (sub-trees with "/"), a list one item
    a line, anything else as text."""
    if isinstance(data, dict):
        lines = []
        for key in sorted(data):
            if key == "_name":
                continue
            value = data[key]
            if isinstance(value, dict):
                lines.append(str(value["_name"]) if "_name" in value else key + "/")
            else:
                lines.append(key)
        return "\n".join(lines).encode()
    if isinstance(data, list):
        return "\n".join(str(x) for x in data).encode()
    if isinstance(data, bytes):
        return data
    return str(data).encode()


def lookup(inst: dict, keypairs: list[dict], path: str) -> tuple[bytes, str]:
    """(body, content type) of `path` for this instance; MetadataError(404) otherwise."""
    path = posixpath.normpath("/" + path.lstrip("/"))
    tokens = [t for t in path.split("/") if t]
    if not tokens:
        return "\n".join([*configdrive.EC2_VERSIONS, "latest"]).encode(), "text/plain"
    if tokens[0] == "openstack":
        data = openstack_item(inst, keypairs, tokens[1:])
        if isinstance(data, dict):
            return json.dumps(data).encode(), "application/json"
        if isinstance(data, bytes):
            return data, "application/octet-stream"
        return "\n".join(data).encode(), "text/plain"
    data = ec2_item(inst, keypairs, tokens)
    return ec2_format(data), "text/plain"


# ---------------------------------------------------------------------------------------
# the app


def authenticate(headers, secret: str | None) -> str:
    """The signed instance id of a proxied request."""
    instance_id = headers.get("x-instance-id")
    signature = headers.get("x-instance-id-signature")
    if not instance_id or not signature:
        raise MetadataError(400, "X-Instance-ID header is missing from request.")
    if not secret:
        raise MetadataError(503, "The metadata service has no shared secret configured.")
    if not hmac.compare_digest(sign(instance_id, secret), signature.strip().lower()):
        log.warning(
            "metadata request for %s from %s with a bad signature",
            instance_id,
            headers.get("x-forwarded-for", "?"),
        )
        raise MetadataError(403, "Invalid proxy request signature.")
    return instance_id


def answer(headers, path: str, secret: str | None) -> tuple[int, bytes, str]:
    """(status, body, content type) of one metadata request."""
    try:
        instance_id = authenticate(headers, secret)
        found = instance_record(instance_id)
        if found is None:
            raise MetadataError(404, "no such instance")
        inst, keypairs = found
        tenant = headers.get("x-tenant-id")
        if tenant and tenant != inst["project_id"]:
            log.warning("metadata: tenant %s does not own instance %s", tenant, instance_id)
            raise MetadataError(404, "no such instance")
        body, ctype = lookup(inst, keypairs, path)
        return 200, body, ctype
    except MetadataError as e:
        return e.status, (e.message + "\n").encode(), "text/plain"


def metadata_app(secret: str | None = None):
    """The metadata API for prefix /metadata. The secret: given here, else the one
    `configure(conf)` set (compute's set-up calls it)."""
    def endpoint(request: Request) -> Response:
        status, body, ctype = answer(
            request.headers, request.path_params.get("path", ""), secret or _State.secret
        )
        return Response(body, status_code=status, media_type=ctype)

    return Starlette(
        routes=[
            Route("/", endpoint, methods=["GET", "HEAD"]),
            Route("/{path:path}", endpoint, methods=["GET", "HEAD"]),
        ]
    )
