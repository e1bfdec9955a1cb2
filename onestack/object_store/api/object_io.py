"""What the object routes share with large objects, bulk and form uploads: the target
and the caller's rights on it, object headers, conditional and ranged answers, the
metadata a write keeps, quotas, and the write itself (streamed to every replica)."""

from __future__ import annotations

import hashlib
import mimetypes
import re
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from starlette.requests import ClientDisconnect
from starlette.responses import Response, StreamingResponse

from onestack.common import errors
from onestack.common.http import Req, empty
from onestack.object_store import proxy
from onestack.object_store.api import access, tempurl, versioning
from onestack.object_store.api.common import (
    Limits,
    check_account,
    check_container,
    check_object,
    http_date,
    live_metadata,
    object_metadata_from,
)
from onestack.object_store.node import ContainerRow, DbInfo, ObjectInfo

# user-settable headers kept with the object and returned on GET/HEAD
KEPT = ("content-type", "content-disposition", "content-encoding", "x-delete-at", "x-object-manifest",
        "content-language", "cache-control", "expires")


@dataclass
class Target:
    account: str
    container: str
    obj: str
    cinfo: DbInfo | None  # the container (None: it does not exist)

    @property
    def cmeta(self) -> dict[str, str]:
        return live_metadata(self.cinfo.metadata) if self.cinfo else {}


def target(req: Req, account: str, container: str, obj: str) -> Target:
    check_account(account)
    check_container(container)
    check_object(obj)
    return Target(account, container, obj, proxy.container_info(proxy.cluster(), account, container))


def authorize_read(req: Req, t: Target) -> None:
    if _tempurl_ok(req, t):
        return
    if not access.may_read_objects(req.ctx, t.account, t.cmeta.get("X-Container-Read"), req.headers.get("referer")):
        raise access.deny(req.ctx, f"object {t.obj}")


def authorize_write(req: Req, t: Target) -> None:
    if _tempurl_ok(req, t):
        return
    if not access.may_write_objects(req.ctx, t.account, t.cmeta.get("X-Container-Write")):
        raise access.deny(req.ctx, f"object {t.obj}")


def _tempurl_ok(req: Req, t: Target) -> bool:
    if "temp_url_sig" not in req.query:
        return False
    return tempurl.check(req, t.account, t.container, t.obj)


def need_container(t: Target) -> DbInfo:
    if t.cinfo is None:
        raise errors.NotFound(f"Container {t.container} not found.")
    return t.cinfo


# --------------------------------------------------------------------------- headers


def object_headers(info: ObjectInfo) -> dict[str, str]:
    meta = info.metadata
    headers = {k: v for k, v in meta.items()
               if k.lower().startswith("x-object-meta-") or k.lower() in KEPT}
    headers.update({
        "ETag": meta.get("ETag", ""),
        "X-Timestamp": info.timestamp,
        "Last-Modified": http_date(info.timestamp),
        "Accept-Ranges": "bytes",
        "Content-Length": str(info.size),
    })
    if meta.get("X-Static-Large-Object"):
        headers["X-Static-Large-Object"] = "True"
    headers.setdefault("Content-Type", "application/octet-stream")
    return headers


def _etags(value: str) -> list[str]:
    return [e.strip().strip('"') for e in value.split(",") if e.strip()]


def check_conditions(req: Req, info: ObjectInfo, etag: str) -> Response | None:
    """If-Match / If-None-Match / If-(Un)Modified-Since; a 304 response or a 412."""
    h = req.headers
    if "if-match" in h:
        tags = _etags(h["if-match"])
        if "*" not in tags and etag not in tags:
            raise errors.PreconditionFailed("The If-Match condition did not match the object's ETag.")
    modified = float(info.timestamp)
    if "if-unmodified-since" in h:
        since = _parse_http_date(h["if-unmodified-since"])
        if since is not None and modified > since + 1:
            raise errors.PreconditionFailed("The object was modified since the If-Unmodified-Since time.")
    not_modified = {"ETag": etag, "Last-Modified": http_date(info.timestamp)}
    if "if-none-match" in h:
        tags = _etags(h["if-none-match"])
        if "*" in tags or etag in tags:
            return empty(304, not_modified)
    elif "if-modified-since" in h:
        since = _parse_http_date(h["if-modified-since"])
        if since is not None and int(modified) <= since:
            return empty(304, not_modified)
    return None


def _parse_http_date(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


_RANGE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


def parse_ranges(header: str, size: int) -> list[tuple[int, int]] | None:
    """``bytes=a-b,c-d`` -> [(start, end inclusive)]; None: ignore the header (serve all);
    [] : unsatisfiable."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec:
        return None
    out = []
    for part in spec.split(","):
        m = _RANGE.match(part)
        if m is None:
            return None
        first, last = m.groups()
        if first == "" and last == "":
            return None
        if first == "":
            n = int(last)
            if n == 0:
                continue
            out.append((max(0, size - n), size - 1))
        else:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
            if last and int(last) < start:
                return None  # a malformed range: RFC says ignore the header
            if start < size:
                out.append((start, end))
    return out


def _closing(pieces, close):
    """Hand out the pieces; ``close`` when done, or when the client goes away."""
    try:
        yield from pieces
    finally:
        close()


def ranged(req: Req, headers: dict, size: int, stream, close=lambda: None) -> Response:
    """The body, or the parts a Range header asks for (206, multipart for several)."""
    spans = parse_ranges(req.headers["range"], size) if "range" in req.headers else None
    if spans is None:
        return StreamingResponse(_closing(stream(0, None), close), 200, headers)
    if not spans:
        close()
        raise errors.RangeNotSatisfiable("Requested range not satisfiable",
                                         headers={"Content-Range": f"bytes */{size}"})
    if len(spans) == 1:
        start, end = spans[0]
        headers.update({"Content-Length": str(end - start + 1), "Content-Range": f"bytes {start}-{end}/{size}"})
        return StreamingResponse(_closing(stream(start, end - start + 1), close), 206, headers)
    boundary = hashlib.md5(str(time.time()).encode(), usedforsecurity=False).hexdigest()
    ctype = headers.get("Content-Type", "application/octet-stream")
    preambles = [(f"--{boundary}\r\nContent-Type: {ctype}\r\nContent-Range: bytes {s}-{e}/{size}\r\n\r\n").encode()
                 for s, e in spans]
    closing = f"\r\n--{boundary}--".encode()
    total = sum(len(p) + (e - s + 1) for p, (s, e) in zip(preambles, spans, strict=True)) \
        + 2 * (len(spans) - 1) + len(closing)

    def parts():
        try:
            for i, ((s, e), pre) in enumerate(zip(spans, preambles, strict=True)):
                yield (b"\r\n" if i else b"") + pre
                yield from stream(s, e - s + 1)
            yield closing
        finally:
            close()

    headers.update({"Content-Type": f"multipart/byteranges;boundary={boundary}", "Content-Length": str(total)})
    return StreamingResponse(parts(), 206, headers)


# --------------------------------------------------------------------------- PUT


def _delete_at(req: Req) -> str | None:
    h = req.headers
    if "x-delete-after" in h:
        try:
            after = int(h["x-delete-after"])
        except ValueError:
            raise errors.BadRequest("Non-integer X-Delete-After") from None
        if after < 0:
            raise errors.BadRequest("X-Delete-After in past")
        return str(int(time.time() + after))
    if "x-delete-at" in h:
        try:
            at = int(float(h["x-delete-at"]))
        except ValueError:
            raise errors.BadRequest("Non-integer X-Delete-At") from None
        if at < time.time():
            raise errors.BadRequest("X-Delete-At in past")
        return str(at)
    return None


def user_metadata(req: Req, obj: str) -> dict[str, str]:
    meta = object_metadata_from(req)
    for name in KEPT:
        if name in req.headers and name not in ("x-delete-at", "content-type"):
            meta["-".join(p.capitalize() for p in name.split("-"))] = req.headers[name]
    ctype = req.headers.get("content-type", "").strip()
    if not ctype or req.headers.get("x-detect-content-type", "").lower() == "true":
        ctype = mimetypes.guess_type(obj)[0] or "application/octet-stream"
    meta["Content-Type"] = ctype
    delete_at = _delete_at(req)
    if delete_at:
        meta["X-Delete-At"] = delete_at
    if "X-Object-Manifest" in meta:
        _check_dlo_header(meta["X-Object-Manifest"])
    return meta


def _check_dlo_header(value: str) -> None:
    """``X-Object-Manifest`` must read ``<container>/<prefix>`` (URL-quoted allowed)."""
    container, _, prefix = value.partition("/")
    if not container or not prefix or "?" in value or "&" in value or prefix.startswith("/"):
        raise errors.BadRequest("X-Object-Manifest must be in the format container/prefix")


def check_quotas(t: Target, incoming: int) -> None:
    """Container (bytes, count) and account (bytes) quotas, as Swift's middlewares."""
    cinfo = need_container(t)
    cmeta = t.cmeta
    quota = cmeta.get("X-Container-Meta-Quota-Bytes")
    if quota and quota.isdigit() and cinfo.bytes_used + incoming > int(quota):
        raise errors.PayloadTooLarge("Upload exceeds quota.")
    quota = cmeta.get("X-Container-Meta-Quota-Count")
    if quota and quota.isdigit() and cinfo.object_count + 1 > int(quota):
        raise errors.PayloadTooLarge("Upload exceeds quota.")
    ainfo = proxy.account_info(proxy.cluster(), t.account)
    ameta = live_metadata(ainfo.metadata) if ainfo else {}
    for header in ("X-Account-Meta-Quota-Bytes", "X-Account-Quota-Bytes"):
        quota = ameta.get(header)
        if quota and quota.isdigit() and ainfo.bytes_used + incoming > int(quota):
            raise errors.PayloadTooLarge("Upload exceeds quota.")
    quota = ameta.get("X-Account-Quota-Count")
    if quota and quota.isdigit() and ainfo.object_count + 1 > int(quota):
        raise errors.PayloadTooLarge("Upload exceeds quota.")


def _declared_length(req: Req) -> int | None:
    h = req.headers
    if "content-length" in h:
        try:
            length = int(h["content-length"])
        except ValueError:
            raise errors.BadRequest("Invalid Content-Length") from None
        if length < 0:
            raise errors.BadRequest("Invalid Content-Length")
        return length
    if "chunked" in h.get("transfer-encoding", "").lower():
        return None
    raise errors.LengthRequired("Missing Content-Length or Transfer-Encoding: chunked.")


def store(req: Req, t: Target, body, metadata: dict[str, str], length: int | None = -1,
          expect_etag: str | None = None, response_headers: dict | None = None,
          listing_size: int | None = None) -> Response:
    """Write ``body`` (an iterable of bytes) as the object, on every replica."""
    if length == -1:
        length = _declared_length(req)
    if length is not None and length > Limits.max_file_size:
        raise errors.PayloadTooLarge(f"Your request is too large: objects may be at most {Limits.max_file_size} bytes.")
    if req.headers.get("if-none-match", "").strip() == "*":
        if proxy.object_info(proxy.cluster(), t.account, t.container, t.obj) is not None:
            raise errors.PreconditionFailed("An object of this name exists (If-None-Match: *).")
    elif req.headers.get("if-none-match"):
        raise errors.BadRequest("If-None-Match only supports *")
    check_quotas(t, length or 0)
    if expect_etag is None and "etag" in req.headers:
        expect_etag = req.headers["etag"].strip().strip('"').lower()
    versioning.before_write(t)
    ts = proxy.now_timestamp()
    write = proxy.ReplicatedWrite(proxy.cluster(), t.account, t.container, t.obj, ts)
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    try:
        for data in proxy.pieces(body):
            size += len(data)
            if size > Limits.max_file_size:
                raise errors.PayloadTooLarge("Your request is too large.")
            # the md5 runs beside the replicas' writes (hashlib and os.write release the GIL)
            hashing = proxy.cluster().background(md5.update, data)
            write.write(data)
            hashing.result()
        if length is not None and size != length:
            raise errors.BadRequest(f"The request body had {size} bytes, not the {length} of its Content-Length.")
        etag = md5.hexdigest()
        if expect_etag and expect_etag != etag:
            raise errors.UnprocessableEntity("The ETag you sent does not match the MD5 of the data received.")
        if length is None:
            check_quotas(t, size)
        metadata = {**metadata, "ETag": etag, "Content-Length": str(size), "X-Timestamp": ts}
        # listing_size: an SLO manifest is listed with its assembled size (large.py)
        row_size = size if listing_size is None else listing_size
        write.commit(metadata, ContainerRow(t.obj, ts, row_size, metadata["Content-Type"], etag))
    except ClientDisconnect:
        write.abort()
        raise errors.BadRequest("The client went away before the object was complete.") from None
    except BaseException:
        write.abort()
        raise
    headers = {"ETag": etag, "Last-Modified": http_date(ts), **(response_headers or {})}
    return empty(201, headers)
