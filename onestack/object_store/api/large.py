"""Large objects, as Swift's slo and dlo middlewares.

* Static (SLO): ``PUT ?multipart-manifest=put`` sends a JSON list of segments
  (``path``/``etag``/``size_bytes``/``range``, or inline ``data``); each is
  checked and the manifest is stored as the object, in Swift's stored form
  (``name``/``hash``/``bytes``/``content_type``/``last_modified``), with
  ``X-Static-Large-Object: True``. A GET streams the segments in order.
* Dynamic (DLO): an object with ``X-Object-Manifest: <container>/<prefix>``;
  a GET streams the objects under the prefix in listing order.

Either way the ETag is the md5 of the segments' etags, quoted, and Range and
conditional requests apply to the assembled data; segments are read one at a
time as the client consumes them, never held in memory.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote

from starlette.responses import Response

from onestack.common import errors
from onestack.common.http import Req
from onestack.object_store import proxy
from onestack.object_store.api import access, bulk, object_io
from onestack.object_store.api.common import (
    Limits,
    check_container,
    check_object,
    iso_listing,
    live_metadata,
)
from onestack.object_store.node import ContainerRow, ObjectInfo

log = logging.getLogger(__name__)

MAX_SEGMENTS = 1000
MAX_MANIFEST_SIZE = 8 * 1024 * 1024
MAX_DEPTH = 10  # nested SLOs, as Swift's max recursion
SLO = "X-Static-Large-Object"
DLO = "X-Object-Manifest"


def _md5(data: bytes | str) -> str:
    return hashlib.md5(
        data.encode() if isinstance(data, str) else data, usedforsecurity=False
    ).hexdigest()


class SegmentError(Exception):
    """A segment vanished or changed while its large object was being sent: the
    response is cut short (the headers are gone already), as Swift does."""


@dataclass(frozen=True)
class Leaf:
    """A piece of the assembled object: ``length`` bytes from ``start`` of a segment
    object (or of inline ``data``)."""

    container: str
    obj: str
    start: int
    length: int
    etag: str | None = None  # checked when the segment is opened (SLO only)
    data: bytes | None = None


# --------------------------------------------------------------------------- DLO


def _dlo_rows(
    account: str, value: str, manifest: tuple[str, str]
) -> tuple[str, list[ContainerRow]]:
    """The segment container and the objects under the prefix, in listing order."""
    container, _, prefix = value.partition("/")
    container, prefix = unquote(container), unquote(prefix)
    cluster, rows, marker = proxy.cluster(), [], ""
    if proxy.container_info(cluster, account, container) is None:
        return container, []
    while True:
        page = proxy.container_list(
            cluster,
            account,
            container,
            limit=Limits.container_listing_limit,
            prefix=prefix,
            marker=marker,
        )
        rows.extend(
            r for r in page if isinstance(r, ContainerRow) and (container, r.name) != manifest
        )
        if len(page) < Limits.container_listing_limit:
            return container, rows
        marker = page[-1].name if isinstance(page[-1], ContainerRow) else page[-1]


# --------------------------------------------------------------------------- SLO: reading


def _read_json(account: str, container: str, obj: str) -> tuple[ObjectInfo, list]:
    """An SLO manifest's stored segment list (raises 404 / 400 'Not an SLO manifest')."""
    reader = proxy.object_reader(proxy.cluster(), account, container, obj)
    if reader is None:
        raise errors.NotFound("SLO manifest not found")
    if not reader.info.metadata.get(SLO):
        reader.close()
        raise errors.BadRequest("Not an SLO manifest")
    raw = b"".join(proxy.chunked(reader))
    try:
        segments = json.loads(raw)
    except ValueError:
        raise errors.ApiError("Unable to load SLO manifest") from None
    return reader.info, segments


def _split(name: str) -> tuple[str, str]:
    container, _, obj = name.lstrip("/").partition("/")
    return container, obj


def _slo_etag(segments: list[dict]) -> str:
    """md5 over each segment's etag (``hash:range;`` for a ranged one, md5 of inline data)."""
    h = hashlib.md5(usedforsecurity=False)
    for seg in segments:
        if "data" in seg:
            h.update(_md5(base64.b64decode(seg["data"])).encode())
        elif seg.get("range"):
            h.update(f"{seg['hash']}:{seg['range']};".encode())
        else:
            h.update(seg["hash"].encode())
    return h.hexdigest()


def _slice(leaves: list[Leaf], start: int, length: int) -> list[Leaf]:
    """The leaves covering bytes [start, start+length) of their concatenation."""
    out, pos, end = [], 0, start + length
    for leaf in leaves:
        lo, hi = pos, pos + leaf.length
        pos = hi
        if hi <= start or lo >= end:
            continue
        a, b = max(start, lo) - lo, min(end, hi) - lo
        out.append(replace(leaf, start=leaf.start + a, length=b - a))
    return out


def _leaves(account: str, segments: list[dict], readable, depth: int = 0) -> list[Leaf]:
    """Flatten a manifest (and nested ones) into leaves; ``readable(container)`` raises
    when the caller may not read a segment's container."""
    out: list[Leaf] = []
    for seg in segments:
        if "data" in seg:
            data = base64.b64decode(seg["data"])
            out.append(Leaf("", "", 0, len(data), data=data))
            continue
        container, obj = _split(seg["name"])
        readable(container)
        size = int(seg["bytes"])
        start, length = (
            _resolve(_parse_range(seg["range"]), size) if seg.get("range") else (0, size)
        )
        if seg.get("sub_slo"):
            if depth + 1 >= MAX_DEPTH:
                raise errors.Conflict(
                    f"Max recursion depth exceeded reading the manifest {seg['name']}."
                )
            sub = _leaves(account, _read_json(account, container, obj)[1], readable, depth + 1)
            out.extend(_slice(sub, start, length))
        else:
            out.append(Leaf(container, obj, start, length, etag=seg.get("hash")))
    return out


def _stream(account: str, leaves: list[Leaf], offset: int, length: int | None) -> Iterator[bytes]:
    """Bytes [offset, offset+length) of the assembled object, a segment at a time."""
    cluster = proxy.cluster()
    want = _slice(
        leaves, offset, length if length is not None else sum(x.length for x in leaves) - offset
    )
    for leaf in want:
        if leaf.data is not None:
            yield leaf.data[leaf.start : leaf.start + leaf.length]
            continue
        reader = proxy.object_reader(cluster, account, leaf.container, leaf.obj)
        problem = None
        if reader is None:
            problem = "is missing"
        elif leaf.etag and reader.info.metadata.get("ETag") != leaf.etag:
            problem = "has changed (ETag mismatch)"
        elif leaf.start + leaf.length > reader.info.size:
            problem = "is shorter than its manifest says"
        if problem:
            if reader is not None:
                reader.close()
            log.warning(
                "large object segment %s/%s/%s %s", account, leaf.container, leaf.obj, problem
            )
            raise SegmentError(f"segment {leaf.container}/{leaf.obj} {problem}")
        yield from proxy.chunked(reader, leaf.start, leaf.length)


# --------------------------------------------------------------------------- ranges of SLO segments

_SEG_RANGE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


def _parse_range(spec: str) -> tuple[int | None, int | None]:
    """``M-N`` / ``M-`` / ``-N`` -> (first, last); ValueError if malformed."""
    m = _SEG_RANGE.match(str(spec))
    if m is None or (m[1] == "" and m[2] == ""):
        raise ValueError(spec)
    first = int(m[1]) if m[1] else None
    last = int(m[2]) if m[2] else None
    if first is not None and last is not None and last < first:
        raise ValueError(spec)
    return first, last


def _resolve(rng: tuple[int | None, int | None], size: int) -> tuple[int, int] | None:
    """(start, length) of a parsed range within ``size`` bytes; None if unsatisfiable."""
    first, last = rng
    if first is None:
        if not last or size == 0:
            return None
        start = max(0, size - last)
        return start, size - start
    if first >= size:
        return None
    end = size - 1 if last is None else min(last, size - 1)
    return first, end - first + 1


# --------------------------------------------------------------------------- access to segments


def _readable(req: Req, account: str):
    """A check that the caller may read objects of a container (cached per container):
    with the caller's token or ACLs, or within the scope of the temp URL used."""
    seen: dict[str, bool] = {}

    def check(container: str) -> None:
        if container not in seen:
            scope = req.request.scope.get("state", {}).get("tempurl")
            if scope is not None:
                seen[container] = scope[0] == account and scope[1] in (None, container)
            else:
                cinfo = proxy.container_info(proxy.cluster(), account, container)
                acl = live_metadata(cinfo.metadata).get("X-Container-Read") if cinfo else None
                seen[container] = access.may_read_objects(
                    req.ctx, account, acl, req.headers.get("referer")
                )
        if not seen[container]:
            raise access.deny(req.ctx, f"the segments in container {container}")

    return check


# --------------------------------------------------------------------------- GET / HEAD


def respond(req: Req, t, info: ObjectInfo, headers: dict) -> Response:
    """GET/HEAD of a large object (``headers``: the manifest object's own)."""
    if info.metadata.get(SLO):
        _, segments = _read_json(t.account, t.container, t.obj)
        if req.query.get("multipart-manifest") == "get":
            return _manifest_response(req, info, headers, segments)
        leaves = _leaves(t.account, segments, _readable(req, t.account))
        headers["X-Manifest-Etag"] = headers.get("ETag", "")
        return _assembled(req, t, info, headers, leaves, _slo_etag(segments))
    readable = _readable(req, t.account)
    container, rows = _dlo_rows(t.account, info.metadata[DLO], (t.container, t.obj))
    readable(container)
    leaves = [Leaf(container, r.name, 0, r.size) for r in rows]
    return _assembled(req, t, info, headers, leaves, _md5("".join(r.etag for r in rows)))


def _assembled(
    req: Req, t, info: ObjectInfo, headers: dict, leaves: list[Leaf], etag: str
) -> Response:
    total = sum(x.length for x in leaves)
    headers.update({"ETag": f'"{etag}"', "Content-Length": str(total)})
    early = object_io.check_conditions(req, info, etag)
    if early is not None:
        early.headers["ETag"] = f'"{etag}"'
        return early
    if req.method == "HEAD":
        return Response(b"", 200, headers)
    return object_io.ranged(req, headers, total, lambda off, n: _stream(t.account, leaves, off, n))


def _manifest_response(req: Req, info: ObjectInfo, headers: dict, segments: list) -> Response:
    """``?multipart-manifest=get``: the stored manifest as JSON, or with ``format=raw``
    the form a client can PUT back (Swift's convert_segment_listing)."""
    if req.query.get("format") == "raw":
        body = json.dumps(raw_form(segments), sort_keys=True).encode()
        headers["ETag"] = _md5(body)
    else:
        body = json.dumps(segments).encode()
        headers["Content-Type"] = "application/json; charset=utf-8"
    headers["Content-Length"] = str(len(body))
    early = object_io.check_conditions(req, info, headers["ETag"])
    if early is not None:
        return early
    return Response(b"" if req.method == "HEAD" else body, 200, headers)


def raw_form(segments: list[dict]) -> list[dict]:
    out = []
    for seg in segments:
        if "data" in seg:
            out.append(dict(seg))
            continue
        raw = {"path": seg["name"], "size_bytes": seg.get("bytes"), "etag": seg.get("hash")}
        if seg.get("range"):
            raw["range"] = seg["range"]
        out.append(raw)
    return out


def content(t, info: ObjectInfo) -> tuple[Iterator[bytes], int]:
    """The assembled data of a large object (COPY of an SLO or a DLO) and its size."""
    if info.metadata.get(SLO):
        leaves = _leaves(t.account, _read_json(t.account, t.container, t.obj)[1], lambda c: None)
    else:
        container, rows = _dlo_rows(t.account, info.metadata[DLO], (t.container, t.obj))
        leaves = [Leaf(container, r.name, 0, r.size) for r in rows]
    total = sum(x.length for x in leaves)
    return _stream(t.account, leaves, 0, total), total


# --------------------------------------------------------------------------- SLO: PUT


def _read_body(req: Req) -> bytes:
    h = req.headers
    if "content-length" in h:
        if h["content-length"].isdigit() and int(h["content-length"]) > MAX_MANIFEST_SIZE:
            raise errors.PayloadTooLarge(f"Manifest File > {MAX_MANIFEST_SIZE} bytes")
    elif "chunked" not in h.get("transfer-encoding", "").lower():
        raise errors.LengthRequired("Missing Content-Length or Transfer-Encoding: chunked.")
    parts, size = [], 0
    for data in req.chunks():
        size += len(data)
        if size > MAX_MANIFEST_SIZE:
            raise errors.PayloadTooLarge(f"Manifest File > {MAX_MANIFEST_SIZE} bytes")
        parts.append(data)
    return b"".join(parts)


def _text(status: int, body: str, fmt: str = "text/plain") -> Response:
    return Response(body.encode(), status, media_type=fmt)


def parse_manifest(body: bytes, manifest_path: str) -> list[dict] | Response:
    """Swift's parse_and_validate_input: the segment list, or a 400 listing every problem."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return _text(400, "Manifest must be valid JSON.\n")
    if not isinstance(parsed, list):
        return _text(400, "Manifest must be a list.\n")
    problems = []
    for i, seg in enumerate(parsed):
        problem = _check_segment(i, seg, len(parsed), manifest_path)
        if problem:
            problems.append(f"Index {i}: {problem}")
    if parsed and all(isinstance(s, dict) and "data" in s for s in parsed):
        problems.append("Inline data segments require at least one object-backed segment.")
    if problems:
        return _text(400, "".join(p + "\n" for p in problems))
    return parsed


def _check_segment(i: int, seg, count: int, manifest_path: str) -> str | None:
    """One segment's syntax (normalizing it in place); the problem, or None."""
    if not isinstance(seg, dict):
        return "not a JSON object"
    kind = "path" if "path" in seg else "data" if "data" in seg else None
    if kind is None:
        return "expected keys to include one of 'path' or 'data'"
    allowed = {"path", "etag", "size_bytes", "range"} if kind == "path" else {"data"}
    extra = sorted(k for k in seg if k not in allowed)
    if extra:
        return "extraneous keys " + ", ".join(json.dumps(k) for k in extra)
    if kind == "data":
        try:
            data = (
                base64.b64decode(seg["data"], validate=True)
                if isinstance(seg["data"], str)
                else None
            )
        except (binascii.Error, ValueError):
            data = None
        if data is None:
            return "data must be valid base64"
        if not data:
            return "too small; each segment must be at least 1 byte."
        seg["data"] = base64.b64encode(data).decode()
        return None
    if not isinstance(seg["path"], str):
        return '"path" must be a string'
    if not (seg.get("etag") is None or isinstance(seg["etag"], str)):
        return '"etag" must be a string or null (if provided)'
    if "/" not in seg["path"].strip("/"):
        return "path does not refer to an object. Path must be of the form /container/object."
    size = seg.get("size_bytes")
    if size is not None:
        try:
            size = seg["size_bytes"] = int(size)
        except (TypeError, ValueError):
            return "invalid size_bytes"
        if size < 1 and i != count - 1:
            return "too small; each segment must be at least 1 byte."
    if "/" + seg["path"].lstrip("/") == manifest_path:
        return "manifest must not include itself as a segment"
    if seg.get("range"):
        if "," in str(seg["range"]):
            return "multiple ranges (only one allowed)"
        try:
            rng = _parse_range(seg["range"])
        except ValueError:
            return "invalid range"
        if size is not None and _resolve(rng, size) is None:
            return "unsatisfiable range"
    return None


def put_slo(req: Req, t) -> Response:
    """``PUT ...?multipart-manifest=put``: validate the segments, store the manifest."""
    parsed = parse_manifest(_read_body(req), f"/{t.container}/{t.obj}")
    if isinstance(parsed, Response):
        return parsed
    paths = [s["path"] for s in parsed if "path" in s]
    if len(paths) > MAX_SEGMENTS:
        raise errors.PayloadTooLarge(f"Number of object-backed segments must be <= {MAX_SEGMENTS}")
    fmt = bulk.best_match(req.headers.get("accept")) or "text/plain"
    heads = {p: _head_segment(req, t.account, p) for p in dict.fromkeys(paths)}
    problems: list[list[str]] = []
    stored, total = [], 0
    for i, seg in enumerate(parsed):
        if "data" in seg:
            stored.append({"data": seg["data"]})
            total += len(base64.b64decode(seg["data"]))
            continue
        entry, length = _validate(seg, heads[seg["path"]], i == len(parsed) - 1, problems)
        stored.append(entry)
        total += length
    if problems:
        return Response(bulk.render(fmt, {}, problems, "upload"), 400, media_type=fmt)
    etag = _slo_etag(stored)
    client_etag = req.headers.get("etag", "").strip().strip('"').lower()
    if client_etag and client_etag != etag:
        raise errors.UnprocessableEntity("The ETag you sent does not match the segments' ETags.")
    body = json.dumps(stored).encode()
    meta = {**object_io.user_metadata(req, t.obj), SLO: "True"}
    meta.pop(DLO, None)
    # the listing shows the assembled size, as Swift's (the stored bytes are the manifest's)
    return object_io.store(
        req,
        t,
        [body],
        meta,
        length=len(body),
        expect_etag="",
        response_headers={"ETag": f'"{etag}"'},
        listing_size=total,
    )


def _head_segment(req: Req, account: str, path: str) -> tuple[ObjectInfo, int, str] | str:
    """(info, size, etag) of a segment as a HEAD through the proxy shows it, or a status line."""
    container, obj = _split(path)
    try:
        check_container(container)
        check_object(obj)
        _readable(req, account)(container)
        info = proxy.object_info(proxy.cluster(), account, container, obj)
        if info is None:
            raise errors.NotFound()
        if info.metadata.get(SLO):  # a nested SLO counts with its assembled size and etag
            _, segments = _read_json(account, container, obj)
            size = sum(x.length for x in _leaves(account, segments, lambda c: None))
            return info, size, _slo_etag(segments)
        return info, info.size, info.metadata.get("ETag", "")
    except errors.ApiError as e:
        return bulk.status_line(e)


def _validate(seg: dict, head, last: bool, problems: list) -> tuple[dict, int]:
    """Check a segment against its HEAD; (the stored form, its length in the object)."""
    name = "/" + seg["path"].lstrip("/")
    if isinstance(head, str):
        problems.append([quote(seg["path"]), head])
        return {"name": name}, 0
    info, size, etag = head
    length = size
    entry = {
        "name": name,
        "bytes": size,
        "hash": etag,
        "content_type": info.metadata.get("Content-Type", "application/octet-stream"),
        "last_modified": iso_listing(info.timestamp),
    }
    if seg.get("range"):
        span = _resolve(_parse_range(seg["range"]), size)
        if span is None:
            problems.append([quote(seg["path"]), "Unsatisfiable Range"])
        elif span != (0, size):  # a range of the whole object is no range
            entry["range"] = f"{span[0]}-{span[0] + span[1] - 1}"
            length = span[1]
    if length < 1 and not last:
        problems.append([quote(seg["path"]), "Too small; each segment must be at least 1 byte."])
    if seg.get("size_bytes") is not None and seg["size_bytes"] != size:
        problems.append([quote(seg["path"]), "Size Mismatch"])
    if seg.get("etag") is not None and seg["etag"].strip('"').lower() != etag:
        problems.append([quote(seg["path"]), "Etag Mismatch"])
    if info.metadata.get(SLO):
        entry["sub_slo"] = True
    return entry, length


# --------------------------------------------------------------------------- SLO: DELETE


def delete_slo(req: Req, t) -> Response:
    """``DELETE ...?multipart-manifest=delete``: the segments (nested manifests too),
    then the manifest; answered with a bulk-delete body, as Swift does."""
    result = bulk.delete_result()

    def job(result: dict, failed: list) -> None:
        names, pending = [], [(f"/{t.container}/{t.obj}", True)]
        while pending:
            if len(pending) > MAX_SEGMENTS * 10:
                raise bulk.Abort("400 Bad Request", "Too many buffered slo segments to delete.")
            name, manifest = pending.pop(0)
            if not manifest:
                names.append(name)
                continue
            try:
                segments = _read_json(t.account, *_split(name))[1]
            except errors.NotFound:
                result["Number Not Found"] += 1
                continue
            except errors.ApiError as e:
                failed.append([quote(name), e.message])
                continue
            pending.extend((s["name"], bool(s.get("sub_slo"))) for s in segments if "name" in s)
            pending.append((name, False))  # the manifest goes after its segments
        bulk.delete_paths(req, t.account, names, result, failed)

    return bulk.respond(req, job, result, "delete")
