"""Objects: PUT (streamed to every replica), GET/HEAD (ranges, conditions),
POST (metadata), DELETE, COPY and ``X-Copy-From``; container versioning."""

from __future__ import annotations

import hashlib
import mimetypes
import re
import time
from dataclasses import dataclass

from starlette.requests import ClientDisconnect
from starlette.responses import Response, StreamingResponse

from onestack.common import errors
from onestack.common.http import Req, empty
from onestack.object_store import proxy
from onestack.object_store.api import access, api
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
    from onestack.object_store.api import tempurl

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
    from email.utils import parsedate_to_datetime

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


# --------------------------------------------------------------------------- GET / HEAD


@api.route("/v1/{account}/{container}/{obj:path}", ["GET", "HEAD"])
def get_object(req: Req) -> Response:
    account, container, obj = req.path["account"], req.path["container"], req.path["obj"]
    if obj == "":  # "/v1/a/c/" is the container
        from onestack.object_store.api.containers import show_container

        return show_container(req, account, container)
    t = target(req, account, container, obj)
    authorize_read(req, t)
    return serve(req, t)


def serve(req: Req, t: Target, extra_headers: dict | None = None) -> Response:
    cluster = proxy.cluster()
    reader = proxy.object_reader(cluster, t.account, t.container, t.obj)
    if reader is None:
        raise errors.NotFound(f"Object {t.obj} not found.")
    info = reader.info
    headers = object_headers(info)
    headers.update(extra_headers or {})
    if "temp_url_sig" in req.query:  # a temp URL names the download, hides private metadata (tempurl.py)
        from onestack.object_store.api import tempurl

        tempurl.outgoing(req, t, headers)
    manifest = info.metadata.get("X-Object-Manifest") or info.metadata.get("X-Static-Large-Object")
    # large.py also answers an SLO's ?multipart-manifest=get (JSON manifest, or format=raw)
    if manifest and (req.query.get("multipart-manifest") != "get" or info.metadata.get("X-Static-Large-Object")):
        reader.close()
        from onestack.object_store.api import large

        return large.respond(req, t, info, headers)
    try:
        early = check_conditions(req, info, headers["ETag"])
    except BaseException:
        reader.close()
        raise
    if early is not None or req.method == "HEAD":
        reader.close()
        return early or Response(b"", 200, headers)
    names = (t.account, t.container, t.obj)
    return ranged(req, headers, info.size, lambda off, n: proxy.chunked(reader, off, n, names, close=False),
                  reader.close)


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
        from onestack.object_store.api import large

        large.check_dlo_header(meta["X-Object-Manifest"])
    return meta


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


@api.route("/v1/{account}/{container}/{obj:path}", ["PUT"], stream=True)
def put_object(req: Req) -> Response:
    account, container, obj = req.path["account"], req.path["container"], req.path["obj"]
    if obj == "":
        from onestack.object_store.api.containers import put_container

        return put_container(req)
    t = target(req, account, container, obj)
    authorize_write(req, t)
    need_container(t)
    if req.query.get("extract-archive"):
        from onestack.object_store.api import bulk

        return bulk.extract(req, t)
    if "x-copy-from" in req.headers:
        src_container, _, src_obj = req.headers["x-copy-from"].lstrip("/").partition("/")
        source = target(req, req.headers.get("x-copy-from-account", account), src_container, src_obj)
        return copy(req, source, t)
    if req.query.get("multipart-manifest") == "put":
        from onestack.object_store.api import large

        return large.put_slo(req, t)
    return store(req, t, req.chunks(), user_metadata(req, obj))


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
    from onestack.object_store.api import versioning

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


# --------------------------------------------------------------------------- COPY


def copy(req: Req, source: Target, dest: Target) -> Response:
    authorize_read(req, source)
    reader = proxy.object_reader(proxy.cluster(), source.account, source.container, source.obj)
    if reader is None:
        raise errors.NotFound(f"Object {source.obj} not found.")
    info = reader.info
    fresh = req.headers.get("x-fresh-metadata", "").lower() == "true"
    meta = {} if fresh else {k: v for k, v in info.metadata.items()
                             if k.lower().startswith("x-object-meta-") or k.lower() in KEPT}
    meta.update(object_metadata_from(req))
    for name in KEPT:
        if name in req.headers:
            meta["-".join(p.capitalize() for p in name.split("-"))] = req.headers[name]
    meta.setdefault("Content-Type", info.metadata.get("Content-Type", "application/octet-stream"))
    copied = {"X-Copied-From": f"{source.container}/{source.obj}",
              "X-Copied-From-Last-Modified": http_date(info.timestamp)}
    if source.account != dest.account:
        copied["X-Copied-From-Account"] = source.account
    # the answer shows the new object's metadata, as Swift's copy middleware does
    copied.update({k: v for k, v in meta.items() if k.lower().startswith("x-object-meta-")})
    manifest = info.metadata.get("X-Static-Large-Object") or info.metadata.get("X-Object-Manifest")
    if manifest and req.query.get("multipart-manifest") != "get":
        # a large object is copied as its assembled data, into an ordinary object
        reader.close()
        from onestack.object_store.api import large

        meta.pop("X-Object-Manifest", None)
        body, size = large.content(source, info)
        return store(req, dest, body, meta, length=size, response_headers=copied)
    return store(req, dest, proxy.chunked(reader), meta, length=info.size, response_headers=copied)


@api.route("/v1/{account}/{container}/{obj:path}", ["COPY"])
def copy_object(req: Req) -> Response:
    account, container, obj = req.path["account"], req.path["container"], req.path["obj"]
    source = target(req, account, container, obj)
    dest_header = req.headers.get("destination")
    if not dest_header:
        raise errors.PreconditionFailed("Destination header required")
    d_container, _, d_obj = dest_header.lstrip("/").partition("/")
    if not d_obj:
        raise errors.PreconditionFailed("Destination header must be of the form <container name>/<object name>")
    dest = target(req, req.headers.get("destination-account", account), d_container, d_obj)
    authorize_write(req, dest)
    need_container(dest)
    return copy(req, source, dest)


# --------------------------------------------------------------------------- POST / DELETE


# stream=True: a FormPost upload (formpost.py) streams its files; metadata POSTs have no body
@api.route("/v1/{account}/{container}/{obj:path}", ["POST"], stream=True)
def post_object(req: Req) -> Response:
    account, container, obj = req.path["account"], req.path["container"], req.path["obj"]
    if obj == "":
        from onestack.object_store.api.containers import post_container

        return post_container(req)
    from onestack.object_store.api import formpost

    if formpost.is_form(req):  # an HTML form upload to <container>/<prefix> (formpost.py)
        return formpost.handle(req, account, container, obj)
    t = target(req, account, container, obj)
    authorize_write(req, t)
    info = proxy.object_info(proxy.cluster(), account, container, obj)
    if info is None:
        raise errors.NotFound(f"Object {obj} not found.")
    meta = user_metadata(req, obj)
    if "content-type" not in req.headers:
        meta["Content-Type"] = info.metadata.get("Content-Type", meta["Content-Type"])
    for keep in ("X-Object-Manifest", "X-Static-Large-Object"):
        if keep in info.metadata and keep not in meta:
            meta[keep] = info.metadata[keep]
    if not proxy.object_post(proxy.cluster(), account, container, obj, meta):
        raise errors.NotFound(f"Object {obj} not found.")
    return empty(202)


@api.route("/v1/{account}/{container}/{obj:path}", ["DELETE"])
def delete_object(req: Req) -> Response:
    account, container, obj = req.path["account"], req.path["container"], req.path["obj"]
    if obj == "":
        from onestack.object_store.api.containers import delete_container

        return delete_container(req)
    t = target(req, account, container, obj)
    authorize_write(req, t)
    if req.query.get("multipart-manifest") == "delete":
        from onestack.object_store.api import large

        return large.delete_slo(req, t)
    from onestack.object_store.api import versioning

    handled = versioning.on_delete(t)
    if handled is not None:
        return handled
    if not proxy.object_delete(proxy.cluster(), account, container, obj):
        raise errors.NotFound(f"Object {obj} not found.")
    return empty(204)
