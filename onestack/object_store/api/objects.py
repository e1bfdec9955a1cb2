"""Objects: PUT, GET/HEAD (ranges, conditions), POST (metadata), DELETE, COPY and
``X-Copy-From``; the routes, dispatching to containers (``/v1/a/c/``), large objects,
bulk, form uploads and versioning. The shared reading and writing is in object_io."""

from __future__ import annotations

from urllib.parse import unquote

from starlette.responses import Response

from onestack.common import errors
from onestack.common.http import Req, empty
from onestack.object_store import proxy
from onestack.object_store.api import (
    api,
    bulk,
    containers,
    formpost,
    large,
    object_io,
    tempurl,
    versioning,
)
from onestack.object_store.api.common import http_date, object_metadata_from

# --------------------------------------------------------------------------- GET / HEAD


@api.route("/v1/{account}/{container}/{obj:path}", ["GET", "HEAD"])
def get_object(req: Req) -> Response:
    account, container, obj = req.path["account"], req.path["container"], req.path["obj"]
    if obj == "":  # "/v1/a/c/" is the container
        return containers.show_container(req, account, container)
    t = object_io.target(req, account, container, obj)
    object_io.authorize_read(req, t)
    return serve(req, t)


def serve(req: Req, t: object_io.Target, extra_headers: dict | None = None) -> Response:
    cluster = proxy.cluster()
    reader = proxy.object_reader(cluster, t.account, t.container, t.obj)
    if reader is None:
        raise errors.NotFound(f"Object {t.obj} not found.")
    info = reader.info
    headers = object_io.object_headers(info)
    headers.update(extra_headers or {})
    if "temp_url_sig" in req.query:  # a temp URL names the download, hides private metadata (tempurl.py)
        tempurl.outgoing(req, t, headers)
    manifest = info.metadata.get("X-Object-Manifest") or info.metadata.get("X-Static-Large-Object")
    # large.py also answers an SLO's ?multipart-manifest=get (JSON manifest, or format=raw)
    if manifest and (req.query.get("multipart-manifest") != "get" or info.metadata.get("X-Static-Large-Object")):
        reader.close()
        return large.respond(req, t, info, headers)
    try:
        early = object_io.check_conditions(req, info, headers["ETag"])
    except BaseException:
        reader.close()
        raise
    if early is not None or req.method == "HEAD":
        reader.close()
        return early or Response(b"", 200, headers)
    names = (t.account, t.container, t.obj)
    return object_io.ranged(req, headers, info.size,
                            lambda off, n: proxy.chunked(reader, off, n, names, close=False), reader.close)


# --------------------------------------------------------------------------- PUT


@api.route("/v1/{account}/{container}/{obj:path}", ["PUT"], stream=True)
def put_object(req: Req) -> Response:
    account, container, obj = req.path["account"], req.path["container"], req.path["obj"]
    if obj == "":
        return containers.put_container(req)
    t = object_io.target(req, account, container, obj)
    object_io.authorize_write(req, t)
    object_io.need_container(t)
    if req.query.get("extract-archive"):
        return bulk.extract(req, t)
    if "x-copy-from" in req.headers:
        src_container, src_obj = _path_header(req, "X-Copy-From")
        source = object_io.target(req, _account_header(req, "X-Copy-From-Account", account), src_container, src_obj)
        return copy(req, source, t)
    if req.query.get("multipart-manifest") == "put":
        return large.put_slo(req, t)
    return object_io.store(req, t, req.chunks(), object_io.user_metadata(req, obj))


# --------------------------------------------------------------------------- COPY


def _unquoted(req: Req, name: str) -> str:
    """A header naming a path is percent-encoded by the clients (swiftclient quotes it),
    as Swift's copy middleware reads it; bytes that are not UTF-8 are refused like a path's."""
    try:
        value = unquote(req.headers[name.lower()], errors="strict")
    except UnicodeDecodeError:
        raise errors.PreconditionFailed("Invalid UTF8 or contains NULL") from None
    if "\0" in value:
        raise errors.PreconditionFailed("Invalid UTF8 or contains NULL")
    return value


def _path_header(req: Req, name: str) -> tuple[str, str]:
    container, _, obj = _unquoted(req, name).lstrip("/").partition("/")
    if not container or not obj:
        raise errors.PreconditionFailed(f"{name} header must be of the form <container name>/<object name>")
    return container, obj


def _account_header(req: Req, name: str, default: str) -> str:
    return _unquoted(req, name) if name.lower() in req.headers else default


def copy(req: Req, source: object_io.Target, dest: object_io.Target) -> Response:
    object_io.authorize_read(req, source)
    reader = proxy.object_reader(proxy.cluster(), source.account, source.container, source.obj)
    if reader is None:
        raise errors.NotFound(f"Object {source.obj} not found.")
    info = reader.info
    fresh = req.headers.get("x-fresh-metadata", "").lower() == "true"
    meta = {} if fresh else {k: v for k, v in info.metadata.items()
                             if k.lower().startswith("x-object-meta-") or k.lower() in object_io.KEPT}
    meta.update(object_metadata_from(req))
    for name in object_io.KEPT:
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
        meta.pop("X-Object-Manifest", None)
        body, size = large.content(source, info)
        return object_io.store(req, dest, body, meta, length=size, response_headers=copied)
    return object_io.store(req, dest, proxy.chunked(reader), meta, length=info.size, response_headers=copied)


@api.route("/v1/{account}/{container}/{obj:path}", ["COPY"])
def copy_object(req: Req) -> Response:
    account, container, obj = req.path["account"], req.path["container"], req.path["obj"]
    source = object_io.target(req, account, container, obj)
    if not req.headers.get("destination"):
        raise errors.PreconditionFailed("Destination header required")
    d_container, d_obj = _path_header(req, "Destination")
    dest = object_io.target(req, _account_header(req, "Destination-Account", account), d_container, d_obj)
    object_io.authorize_write(req, dest)
    object_io.need_container(dest)
    return copy(req, source, dest)


# --------------------------------------------------------------------------- POST / DELETE


# stream=True: a FormPost upload (formpost.py) streams its files; metadata POSTs have no body
@api.route("/v1/{account}/{container}/{obj:path}", ["POST"], stream=True)
def post_object(req: Req) -> Response:
    account, container, obj = req.path["account"], req.path["container"], req.path["obj"]
    if obj == "":
        return containers.post_container(req)
    if formpost.is_form(req):  # an HTML form upload to <container>/<prefix> (formpost.py)
        return formpost.handle(req, account, container, obj)
    t = object_io.target(req, account, container, obj)
    object_io.authorize_write(req, t)
    info = proxy.object_info(proxy.cluster(), account, container, obj)
    if info is None:
        raise errors.NotFound(f"Object {obj} not found.")
    meta = object_io.user_metadata(req, obj)
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
        return containers.delete_container(req)
    t = object_io.target(req, account, container, obj)
    object_io.authorize_write(req, t)
    if req.query.get("multipart-manifest") == "delete":
        return large.delete_slo(req, t)
    handled = versioning.on_delete(t)
    if handled is not None:
        return handled
    if not proxy.object_delete(proxy.cluster(), account, container, obj):
        raise errors.NotFound(f"Object {obj} not found.")
    return empty(204)
