"""Pieces every Swift route uses: names, metadata headers, times, listings."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from email.utils import formatdate
from xml.sax.saxutils import escape, quoteattr

from starlette.responses import Response

from onestack.common import errors
from onestack.common.http import Req
from onestack.object_store.api.access import RESELLER_PREFIX
from onestack.object_store.node import AccountRow, ContainerRow

MAX_ACCOUNT_NAME = 256
MAX_CONTAINER_NAME = 256
MAX_OBJECT_NAME = 1024
MAX_META_NAME = 128
MAX_META_VALUE = 256


class Limits:
    """Set from the configuration at start-up (service.setup)."""

    max_file_size = 5368709122
    container_listing_limit = 10000
    max_meta_count = 90
    max_meta_overall_size = 4096
    tempurl_methods = ["GET", "HEAD", "PUT", "POST", "DELETE"]
    cors_allow_origin: list[str] = []


def check_account(account: str) -> str:
    if not account.startswith(RESELLER_PREFIX) or len(account) > MAX_ACCOUNT_NAME:
        raise errors.NotFound(f"No account {account!r}: accounts are named {RESELLER_PREFIX}<project id>.")
    return account


def check_container(name: str) -> str:
    if not name or "/" in name:
        raise errors.BadRequest("Container names must not be empty or contain '/'.")
    if len(name.encode()) > MAX_CONTAINER_NAME:
        raise errors.BadRequest(f"Container name length of {len(name.encode())} longer than {MAX_CONTAINER_NAME}")
    return name


def check_object(name: str) -> str:
    if len(name.encode()) > MAX_OBJECT_NAME:
        raise errors.BadRequest(f"Object name length of {len(name.encode())} longer than {MAX_OBJECT_NAME}")
    return name


# --------------------------------------------------------------------------- times


def http_date(timestamp: str | float) -> str:
    """Last-Modified: the timestamp rounded up to a whole second, as Swift does."""
    return formatdate(math.ceil(float(timestamp)), usegmt=True)


def iso_listing(timestamp: str | float) -> str:
    """``last_modified`` in listings: ISO 8601 with microseconds, no zone."""
    return datetime.fromtimestamp(float(timestamp), UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


# --------------------------------------------------------------------------- metadata


def db_metadata_from(req: Req, kind: str, timestamp: str, extra: tuple[str, ...] = ()) -> dict[str, tuple[str, str]]:
    """``X-<kind>-Meta-*`` (and ``X-Remove-<kind>-Meta-*``), plus the named
    system headers (ACLs, versioning, quotas), as (value, timestamp); '' deletes."""
    prefix = f"x-{kind}-meta-"
    remove = f"x-remove-{kind}-meta-"
    out: dict[str, tuple[str, str]] = {}
    for name, value in req.headers.items():
        lname = name.lower()
        if lname.startswith(prefix):
            out[_title(lname)] = (value.strip(), timestamp)
        elif lname.startswith(remove):
            out[_title(prefix + lname[len(remove):])] = ("", timestamp)
        elif lname in extra:
            out[_title(lname)] = (value.strip(), timestamp)
        elif lname.startswith("x-remove-") and "x-" + lname[len("x-remove-"):] in extra:
            out[_title("x-" + lname[len("x-remove-"):])] = ("", timestamp)
    check_meta({k: v for k, (v, _) in out.items() if k.lower().startswith(prefix)}, prefix)
    return out


def object_metadata_from(req: Req) -> dict[str, str]:
    meta = {_title(k): v.strip() for k, v in req.headers.items() if k.lower().startswith("x-object-meta-")}
    check_meta(meta, "x-object-meta-")
    return meta


def check_meta(meta: dict[str, str], prefix: str) -> None:
    total = 0
    for name, value in meta.items():
        key = name[len(prefix):]
        if not key:
            raise errors.BadRequest("Metadata name cannot be empty")
        if len(key.encode()) > MAX_META_NAME:
            raise errors.BadRequest(f"Metadata name too long; max {MAX_META_NAME}")
        if len(value.encode()) > MAX_META_VALUE:
            raise errors.BadRequest(f"Metadata value longer than {MAX_META_VALUE}")
        total += len(key.encode()) + len(value.encode())
    if len(meta) > Limits.max_meta_count:
        raise errors.BadRequest(f"Too many metadata items; max {Limits.max_meta_count}")
    if total > Limits.max_meta_overall_size:
        raise errors.BadRequest(f"Total metadata too large; max {Limits.max_meta_overall_size}")


def _title(name: str) -> str:
    return "-".join(p[:1].upper() + p[1:] for p in name.split("-"))


def live_metadata(metadata: dict[str, tuple[str, str]]) -> dict[str, str]:
    return {k: v for k, (v, _) in metadata.items() if v != ""}


# --------------------------------------------------------------------------- listings


def listing_params(req: Req) -> dict:
    q = req.query
    raw = q.get("limit")
    limit = Limits.container_listing_limit
    if raw not in (None, ""):
        try:
            limit = int(raw)
        except ValueError:
            raise errors.PreconditionFailed(f"Value of limit must be an integer, got {raw!r}") from None
        if limit < 0 or limit > Limits.container_listing_limit:
            raise errors.PreconditionFailed(f"Maximum limit is {Limits.container_listing_limit}")
    params = {"limit": limit}
    for key in ("marker", "end_marker", "prefix", "delimiter"):
        value = q.get(key)
        if value:
            params[key] = value
    if params.get("delimiter") and len(params["delimiter"]) != 1:
        raise errors.PreconditionFailed("Bad delimiter")
    if q.get("reverse", "").lower() in ("1", "true", "yes", "on"):
        params["reverse"] = True
    return params


def listing_format(req: Req) -> str:
    fmt = (req.query.get("format") or "").lower()
    if fmt in ("json", "xml", "plain"):
        return fmt
    accept = req.headers.get("accept", "")
    if "application/json" in accept:
        return "json"
    if "application/xml" in accept or "text/xml" in accept:
        return "xml"
    return "plain"


def listing_response(req: Req, kind: str, name: str, items: list, headers: dict[str, str]) -> Response:
    fmt = listing_format(req)
    if fmt == "json":
        body = json.dumps([_json_item(i) for i in items]).encode()
        return Response(body, 200, headers, media_type="application/json; charset=utf-8")
    if fmt == "xml":
        tag = "object" if kind == "container" else "container"
        parts = [f'<?xml version="1.0" encoding="UTF-8"?>\n<{kind} name={quoteattr(name)}>']
        for i in items:
            if isinstance(i, str):
                parts.append(f"<subdir name={quoteattr(i)}><name>{escape(i)}</name></subdir>")
            else:
                parts.append(f"<{tag}>" + "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in _json_item(i).items())
                             + f"</{tag}>")
        parts.append(f"</{kind}>")
        return Response("".join(parts).encode(), 200, headers, media_type="application/xml; charset=utf-8")
    if not items:
        return Response(b"", 204, headers, media_type="text/plain; charset=utf-8")
    text = "".join((i if isinstance(i, str) else i.name) + "\n" for i in items)
    return Response(text.encode(), 200, headers, media_type="text/plain; charset=utf-8")


def _json_item(i: ContainerRow | AccountRow | str) -> dict:
    if isinstance(i, str):
        return {"subdir": i}
    if isinstance(i, ContainerRow):
        return {"name": i.name, "hash": i.etag, "bytes": i.size, "content_type": i.content_type,
                "last_modified": iso_listing(i.timestamp)}
    return {"name": i.name, "count": i.object_count, "bytes": i.bytes_used,
            "last_modified": iso_listing(i.put_timestamp)}
