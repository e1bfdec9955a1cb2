"""Temporary URLs, as Swift's tempurl middleware.

``?temp_url_sig=<sig>&temp_url_expires=<unix time or 2026-11-21T10:00:00Z>``
(optionally ``temp_url_prefix``, ``temp_url_ip_range``, ``filename``, ``inline``)
lets anyone do one method on one object (or every object under a prefix)
until the expiry. The signature is an HMAC (sha1, sha256 or sha512; hex, or
``<digest>:<base64>``) of ``METHOD\\nEXPIRES\\nPATH`` keyed with one of the
account's or the container's ``Temp-Url-Key`` / ``Temp-Url-Key-2``.

PATH is ``/v1/AUTH_x/c/o`` as the client signed it. Our API lives under
``/object-store``, and clients sign what they see: ``swift tempurl`` the path
it is given, Tempest the path of its storage URL. So both
``/v1/...`` and ``/object-store/v1/...`` are accepted.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hmac
import ipaddress
import time
from email.utils import formatdate
from urllib.parse import quote

from onestack.common import errors
from onestack.common.http import Req
from onestack.object_store import proxy
from onestack.object_store.api.common import Limits, live_metadata

DIGESTS = {40: "sha1", 64: "sha256", 128: "sha512"}  # hex length -> algorithm
ALLOWED_DIGESTS = ("sha1", "sha256", "sha512")
HEAD_MAY_USE = ("HEAD", "GET", "POST", "PUT")  # a HEAD may use a signature made for these
DISALLOWED_HEADERS = ("x-object-manifest", "x-symlink-target")  # would point at other data


def _invalid() -> errors.Unauthorized:
    return errors.Unauthorized("Temp URL invalid")


def parse_expires(value: str) -> int | None:
    """Unix seconds, or ISO 8601 ``%Y-%m-%dT%H:%M:%SZ``; None if neither."""
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return None


def parse_signature(sig: str) -> tuple[str, str]:
    """(algorithm, hex digest) of a signature; ValueError if malformed."""
    if ":" in sig:
        algo, b64 = sig.split(":", 1)
        if ("-" in b64 or "_" in b64) and not ("+" in b64 or "/" in b64):
            b64 = b64.replace("-", "+").replace("_", "/")  # url-safe base64 too
        try:
            digest = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True).hex()
        except (binascii.Error, ValueError):
            raise ValueError(sig) from None
    else:
        try:
            bytes.fromhex(sig)
        except ValueError:
            raise ValueError(sig) from None
        algo, digest = DIGESTS.get(len(sig), ""), sig.lower()
    if algo not in ALLOWED_DIGESTS:
        raise ValueError(sig)
    return algo, digest


def keys(account: str, container: str | None) -> list[tuple[str, str]]:
    """(key, scope) pairs: the account's keys ('account') then the container's ('container')."""
    cluster = proxy.cluster()
    out = []
    ainfo = proxy.account_info(cluster, account)
    meta = live_metadata(ainfo.metadata) if ainfo else {}
    out += [
        (meta[k], "account")
        for k in ("X-Account-Meta-Temp-Url-Key", "X-Account-Meta-Temp-Url-Key-2")
        if meta.get(k)
    ]
    if container:
        cinfo = proxy.container_info(cluster, account, container)
        meta = live_metadata(cinfo.metadata) if cinfo else {}
        out += [
            (meta[k], "container")
            for k in ("X-Container-Meta-Temp-Url-Key", "X-Container-Meta-Temp-Url-Key-2")
            if meta.get(k)
        ]
    return out


def signed_paths(req: Req, path: str) -> list[str]:
    """``path`` (``/v1/...``) as a client may have signed it: bare, or under our mount point."""
    root = req.request.scope.get("root_path", "")
    return [path, root + path] if root else [path]


def digest(key: str, body: str, algo: str) -> str:
    return hmac.new(key.encode(), body.encode(), algo).hexdigest()


def check(req: Req, account: str, container: str, obj: str) -> bool:
    """True when the request carries a valid temp URL for this object; 401 otherwise."""
    q = req.query
    sig, raw_expires = q.get("temp_url_sig"), q.get("temp_url_expires")
    if not sig or not raw_expires:
        raise _invalid()
    expires = parse_expires(raw_expires)
    if expires is None:
        raise _invalid()
    if expires < time.time():
        raise errors.Unauthorized("Temp URL expired")
    if req.method not in Limits.tempurl_methods or not obj:
        raise _invalid()
    try:
        algo, given = parse_signature(sig)
    except ValueError:
        raise _invalid() from None
    prefix = q.get("temp_url_prefix")
    if prefix is None:
        path = f"/v1/{account}/{container}/{obj}"
    elif obj.startswith(prefix):
        path = f"/v1/{account}/{container}/{prefix}"
    else:
        raise _invalid()
    ip_range = q.get("temp_url_ip_range")
    if ip_range is not None:
        client = req.request.client.host if req.request.client else None
        try:
            if client is None or ipaddress.ip_address(client) not in ipaddress.ip_network(ip_range):
                raise _invalid()
        except ValueError:
            raise _invalid() from None
    methods = HEAD_MAY_USE if req.method == "HEAD" else (req.method,)
    for key, scope in keys(account, container):
        for method in methods:
            for p in signed_paths(req, path):
                # the expiry is signed as unix seconds, even when the URL shows ISO 8601
                body = f"{method}\n{expires}\n{'prefix:' if prefix is not None else ''}{p}"
                if ip_range is not None:
                    body = f"ip={ip_range}\n{body}"
                if hmac.compare_digest(digest(key, body, algo), given):
                    _accept(req, account, container, scope)
                    return True
    raise _invalid()


def _accept(req: Req, account: str, container: str, scope: str) -> None:
    if req.method in ("PUT", "POST"):
        for name in DISALLOWED_HEADERS:
            if name in req.headers:
                raise errors.BadRequest(f"The header {name!r} is not allowed in this tempurl")
    # large objects read their segments within this scope (large.py)
    req.request.scope.setdefault("state", {})["tempurl"] = (
        account,
        container if scope == "container" else None,
    )


def outgoing(req: Req, t, headers: dict) -> None:
    """A GET/HEAD through a temp URL: name the download, hide private metadata (as Swift)."""
    for name in [h for h in headers if h.lower().startswith("x-object-meta-")]:
        if not name.lower().startswith("x-object-meta-public-"):
            del headers[name]
    q = req.query
    filename, inline = q.get("filename"), "inline" in q
    existing = next((k for k in headers if k.lower() == "content-disposition"), None)
    if inline:
        value = _disposition("inline", filename) if filename else "inline"
    elif filename:
        value = _disposition("attachment", filename)
    elif existing:
        value = headers[existing]
    else:
        value = _disposition("attachment", t.obj.rstrip("/").rsplit("/", 1)[-1])
    if existing:
        del headers[existing]
    headers["Content-Disposition"] = value.replace("\n", "%0A")
    expires = parse_expires(q.get("temp_url_expires", ""))
    if expires is not None:
        headers["Expires"] = formatdate(expires, usegmt=True)


def _disposition(kind: str, filename: str) -> str:
    return f"{kind}; filename=\"{quote(filename, safe=' /')}\"; filename*=UTF-8''{quote(filename)}"
