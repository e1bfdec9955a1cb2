"""Swift's bulk middleware: bulk delete and archive extraction (tar upload).

* ``POST|DELETE /v1/AUTH_x?bulk-delete``: the body lists URL-quoted
  ``/container/object`` or ``/container`` paths, one a line; objects are
  deleted first, then the (empty) containers, each with the caller's rights.
* ``PUT /v1/AUTH_x[/container[/prefix]]?extract-archive=tar|tar.gz|tar.bz2``:
  every regular file of the archive becomes an object (at the account level
  the first path component names the container, created when missing).

As in Swift the HTTP status is always 200 and the body says what happened
("Response Status", counts, "Errors"), in text, JSON or XML as Accept asks,
sent chunked as Swift's. Unlike Swift no whitespace heartbeats precede it: the
job must have read the whole request body before the response starts (Starlette
listens for a disconnect on the same channel while a response streams).
"""

from __future__ import annotations

import json
import logging
import mimetypes
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

from starlette.responses import Response, StreamingResponse

from onestack.common import errors
from onestack.common.http import Req
from onestack.object_store import proxy
from onestack.object_store.api import access, object_io, versioning
from onestack.object_store.api.common import (
    MAX_CONTAINER_NAME,
    MAX_OBJECT_NAME,
    Limits,
    check_account,
    check_container,
    check_meta,
)
from onestack.object_store.node import NotEmpty

log = logging.getLogger(__name__)

ACCEPTABLE_FORMATS = ["text/plain", "application/json", "application/xml", "text/xml"]
MAX_DELETES = 10000
MAX_FAILED_DELETES = 1000
MAX_CONTAINERS = 10000
MAX_FAILED_EXTRACTIONS = 1000
MAX_PATH = MAX_OBJECT_NAME + MAX_CONTAINER_NAME + 2
ARCHIVES = {"tar": "", "tar.gz": "gz", "tar.bz2": "bz2"}


def status_line(exc_or_code: errors.ApiError | int, title: str = "") -> str:
    if isinstance(exc_or_code, errors.ApiError):
        return f"{exc_or_code.status} {exc_or_code.title}"
    return f"{exc_or_code} {title}"


# --------------------------------------------------------------------------- response bodies


def best_match(accept: str | None, offers: list[str] = ACCEPTABLE_FORMATS) -> str | None:
    """The offer the Accept header prefers (ties: the first offer); None if none is acceptable."""
    if not accept or not accept.strip():
        return offers[0]
    ranges = []
    for item in accept.split(","):
        mtype, *params = [p.strip() for p in item.split(";")]
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        ranges.append((mtype.lower(), q))
    best, best_q = None, 0.0
    for offer in offers:
        otype = offer.split("/")[0]
        # the most specific matching range decides the offer's quality
        matches = [
            (3 if m == offer else 2 if m == otype + "/*" else 1, q)
            for m, q in ranges
            if m in (offer, otype + "/*", "*/*")
        ]
        if matches:
            q = max(matches)[1]
            if q > best_q:
                best, best_q = offer, q
    return best


def render(fmt: str | None, data: dict, failed: list[list[str]], root_tag: str) -> bytes:
    """Swift's get_heartbeat_response_body: JSON, XML or ``Key: value`` lines."""
    if fmt == "application/json":
        return json.dumps({**data, "Errors": failed}).encode()
    if fmt and fmt.endswith("/xml"):
        out = [f"<{root_tag}>\n"]
        for key in sorted(data):
            tag = key.replace(" ", "_").lower()
            out.append(f"<{tag}>{escape(str(data[key]))}</{tag}>\n")
        out.append("<errors>\n")
        out.extend(
            f"<object><name>{escape(n)}</name><status>{escape(s)}</status></object>\n"
            for n, s in failed
        )
        out.append(f"</errors>\n</{root_tag}>\n")
        return "".join(out).encode()
    out = [f"{key}: {data[key]}\n" for key in sorted(data)]
    out.append("Errors:\n")
    out.extend(f"{n}, {s}\n" for n, s in failed)
    return "".join(out).encode()


class Abort(Exception):
    """Stop the job; its status line (and body) become the result."""

    def __init__(self, status: str, body: str = ""):
        super().__init__(status)
        self.status, self.body = status, body


Job = Callable[[dict, list], None]


def respond(req: Req, job: Job, result: dict, root_tag: str) -> Response:
    """Run ``job(result, failed)``; answer 200 with the result body."""
    fmt = best_match(req.headers.get("accept"))
    failed: list[list[str]] = []
    try:
        if fmt is None:
            raise Abort("406 Not Acceptable")
        job(result, failed)
    except Abort as e:
        result["Response Status"], result["Response Body"] = e.status, e.body
    except errors.ApiError as e:
        result["Response Status"], result["Response Body"] = status_line(e), e.message
    except (tarfile.TarError, zlib.error, EOFError, OSError) as e:
        result["Response Status"], result["Response Body"] = (
            "400 Bad Request",
            f"Invalid Tar File: {e}",
        )
    except Exception:
        log.exception("bulk %s failed", root_tag)
        result["Response Status"] = "500 Internal Error"
    body = render(fmt, result, failed, root_tag)
    if fmt and fmt.endswith("/xml"):
        body = b'<?xml version="1.0" encoding="UTF-8"?>\n' + body
    # chunked (no Content-Length), as Swift's bulk responses are
    return StreamingResponse(iter([body]), 200, media_type=fmt or "text/plain")


# --------------------------------------------------------------------------- deleting


def delete_object(req: Req, account: str, container: str, obj: str) -> bool:
    """DELETE one object with the caller's rights (versioning applies); False: not found."""
    t = object_io.target(req, account, container, obj)
    object_io.authorize_write(req, t)
    if t.cinfo is None:
        return False
    handled = versioning.on_delete(t)
    if handled is not None:
        return True
    return proxy.object_delete(proxy.cluster(), account, container, obj)


def delete_container(req: Req, account: str, container: str) -> bool:
    check_container(container)
    if access.owner_level(req.ctx, account) != "write":
        raise access.deny(req.ctx, f"container {container}")
    if proxy.container_info(proxy.cluster(), account, container) is None:
        return False
    try:
        proxy.container_delete(proxy.cluster(), account, container)
    except NotEmpty:
        raise errors.Conflict(f"Container {container} is not empty.") from None
    return True


def delete_paths(req: Req, account: str, names: Iterable[str], result: dict, failed: list) -> None:
    """Delete ``/container/object`` and ``/container`` names, counting as Swift does."""
    bad_gateway = False
    for name in names:
        if len(failed) >= MAX_FAILED_DELETES:
            raise Abort("400 Bad Request", "Max delete failures exceeded")
        container, _, obj = name.strip("/").partition("/")
        try:
            if not container:
                raise errors.BadRequest("Invalid path")
            found = (
                delete_object(req, account, container, obj)
                if obj
                else delete_container(req, account, container)
            )
            result["Number Deleted" if found else "Number Not Found"] += 1
        except errors.NotFound:
            result["Number Not Found"] += 1
        except errors.ApiError as e:
            bad_gateway |= e.status >= 500
            failed.append([quote(name), status_line(e)])
    if failed:
        result["Response Status"] = "502 Bad Gateway" if bad_gateway else "400 Bad Request"
    elif not (result["Number Deleted"] or result["Number Not Found"]):
        result["Response Status"], result["Response Body"] = (
            "400 Bad Request",
            "Invalid bulk delete.",
        )


def _body_lines(req: Req) -> Iterator[str]:
    """The URL-quoted names of a bulk-delete body, unquoted, at most MAX_DELETES."""
    line, count = b"", 0
    for data in req.chunks():
        line += data
        *names, line = line.split(b"\n")
        for n in names:
            if n.strip():
                count += 1
                if count > MAX_DELETES:
                    raise Abort(
                        "413 Request Entity Too Large",
                        f"Maximum Bulk Deletes: {MAX_DELETES} per request",
                    )
                yield unquote(n.strip().decode("utf-8", "replace"))
        if len(line) > MAX_PATH * 2:
            raise Abort("400 Bad Request", "Invalid File Name")
    if line.strip():
        if count + 1 > MAX_DELETES:
            raise Abort(
                "413 Request Entity Too Large", f"Maximum Bulk Deletes: {MAX_DELETES} per request"
            )
        yield unquote(line.strip().decode("utf-8", "replace"))


def delete_result() -> dict:
    """The counters of a bulk-delete answer (also SLO deletes, large.py)."""
    return {"Response Status": "200 OK", "Response Body": "", "Number Deleted": 0, "Number Not Found": 0}


def bulk_delete(req: Req) -> Response:
    """``POST|DELETE /v1/<account>?bulk-delete``."""
    account = check_account(req.path["account"])
    result = delete_result()

    def job(result: dict, failed: list) -> None:
        incoming = req.headers.get("content-type")
        if incoming and not incoming.startswith("text/plain"):
            raise Abort("406 Not Acceptable")  # only newline-separated names, as Swift
        if (
            "content-length" not in req.headers
            and "chunked" not in req.headers.get("transfer-encoding", "").lower()
        ):
            raise Abort("411 Length Required")
        names = list(_body_lines(req))
        # objects first, so that containers emptied by this request can go too
        ordered = [n for n in names if "/" in n.strip("/")] + [
            n for n in names if "/" not in n.strip("/")
        ]
        delete_paths(req, account, ordered, result, failed)

    return respond(req, job, result, "delete")


# --------------------------------------------------------------------------- extracting


class _ChunkFile:
    """A read-only file over an iterator of byte chunks (tarfile's stream mode needs read())."""

    def __init__(self, chunks: Iterable[bytes]):
        self._it, self._buf, self._pos = iter(chunks), b"", 0

    def read(self, n: int = -1) -> bytes:
        # tarfile reads ~10 KiB at a time: keep a position rather than re-slicing the chunk
        while n < 0 or len(self._buf) - self._pos < n:
            data = next(self._it, None)
            if data is None:
                break
            self._buf, self._pos = self._buf[self._pos :] + data, 0
        end = len(self._buf) if n < 0 else min(len(self._buf), self._pos + n)
        out, self._pos = self._buf[self._pos : end], end
        return out


def _pax_metadata(member: tarfile.TarInfo) -> dict[str, str]:
    """Content type and user metadata that GNU tar/bsdtar record as xattrs (as Swift reads them)."""
    meta = {}
    for key, value in (member.pax_headers or {}).items():
        for lib in ("SCHILY.xattr.user.", "LIBARCHIVE.xattr.user."):
            if key == lib + "mime_type":
                meta["Content-Type"] = value
            elif key.startswith(lib + "meta."):
                name = key[len(lib + "meta.") :]
                meta[
                    "X-Object-Meta-" + "-".join(p[:1].upper() + p[1:] for p in name.split("-"))
                ] = value
    return meta


def _file_data(fileobj, size: int = 1024 * 1024) -> Iterator[bytes]:
    while data := fileobj.read(size):
        yield data


def extract(req: Req, t=None) -> Response:
    """``PUT /v1/<account>[/<container>[/<prefix>]]?extract-archive=<format>``.

    ``t`` is the object target when the URL names a prefix (already authorized
    for writing by the caller, objects.put_object); otherwise the names come from the path."""
    kind = ARCHIVES.get(req.query.get("extract-archive", "").lower().strip("."))
    if kind is None:
        raise errors.BadRequest("Unsupported archive format")
    account = req.path["account"]
    base = "/".join(
        p for p in (req.path.get("container", ""), req.path.get("obj", "")) if p
    ).rstrip("/")
    if (
        "content-length" not in req.headers
        and "chunked" not in req.headers.get("transfer-encoding", "").lower()
    ):
        raise errors.LengthRequired("Missing Content-Length or Transfer-Encoding: chunked.")
    result = {"Response Status": "201 Created", "Response Body": "", "Number Files Created": 0}

    def job(result: dict, failed: list) -> None:
        bad_gateway, created_containers, seen = False, 0, set()
        with tarfile.open(mode="r|" + kind, fileobj=_ChunkFile(req.chunks())) as tar:
            for member in tar:
                if len(failed) >= MAX_FAILED_EXTRACTIONS:
                    break
                if not member.isfile():
                    continue
                path = member.name[2:] if member.name.startswith("./") else member.name
                path = path.lstrip("/")
                if base:
                    path = base + "/" + path
                if "/" not in path:
                    continue  # a file at the top of an account-level archive has no container
                container, obj = path.split("/", 1)
                try:
                    if container not in seen:
                        seen.add(container)
                        created_containers += _ensure_container(req, account, container)
                        if created_containers > MAX_CONTAINERS:
                            raise Abort(
                                "400 Bad Request",
                                f"More than {MAX_CONTAINERS} containers to create from tar.",
                            )
                    _store_member(req, account, container, obj, member, tar)
                    result["Number Files Created"] += 1
                except errors.Unauthorized as e:
                    failed.append([quote(path[:MAX_PATH]), status_line(e)])
                    raise Abort("401 Unauthorized") from None
                except errors.ApiError as e:
                    bad_gateway |= e.status >= 500
                    failed.append([quote(path[:MAX_PATH]), status_line(e)])
        if failed:
            result["Response Status"] = "502 Bad Gateway" if bad_gateway else "400 Bad Request"
        elif not result["Number Files Created"]:
            result["Response Status"], result["Response Body"] = (
                "400 Bad Request",
                "Invalid Tar File: No Valid Files",
            )

    return respond(req, job, result, "extract")


def _ensure_container(req: Req, account: str, container: str) -> int:
    """Create a missing container (only its account's owner may); 1 if created."""
    check_container(container)
    cluster = proxy.cluster()
    if proxy.container_info(cluster, account, container) is not None:
        return 0
    if access.owner_level(req.ctx, account) != "write":
        raise access.deny(req.ctx, f"container {container}")
    return 1 if proxy.container_put(cluster, account, container, {}) else 0


def _store_member(
    req: Req, account: str, container: str, obj: str, member: tarfile.TarInfo, tar
) -> None:
    if member.size > Limits.max_file_size:
        raise errors.PayloadTooLarge("Your request is too large.")
    t = object_io.target(req, account, container, obj)
    object_io.authorize_write(req, t)
    object_io.need_container(t)
    meta = _pax_metadata(member)
    ctype = meta.pop("Content-Type", None)
    check_meta(meta, "x-object-meta-")
    meta["Content-Type"] = ctype or mimetypes.guess_type(obj)[0] or "application/octet-stream"
    # expect_etag="": the archive request's own ETag header (if any) is not this file's
    object_io.store(
        req, t, _file_data(tar.extractfile(member)), meta, length=member.size, expect_etag=""
    )
