"""FormPost, as Swift's formpost middleware: browsers upload straight into a container.

A ``POST /v1/AUTH_x/<container>[/<prefix>]`` with a ``multipart/form-data``
body carries the fields ``redirect``, ``max_file_size``, ``max_file_count``,
``expires`` and ``signature`` (an HMAC-SHA1/256/512 of
``path\\nredirect\\nmax_file_size\\nmax_file_count\\nexpires`` with one of the
temp-URL keys), then file fields; each file becomes ``<prefix><filename>``.
The answer is a 303 to ``redirect?status=..&message=..`` or, without a
redirect, the status as a short text. The signature is the authorization:
no token is needed (and one, if sent, is not what allows the upload).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable, Iterator
from email.message import Message
from html import escape
from urllib.parse import quote

from starlette.responses import Response

from onestack.common import errors
from onestack.common.http import Req
from onestack.object_store.api import bulk, object_io, tempurl

MAX_VALUE_LENGTH = 4096  # a non-file field
MAX_HEADER_BYTES = 64 * 1024


class FormInvalid(Exception):
    """A 400 'FormPost: ...'."""


class FormUnauthorized(Exception):
    """A 401 'FormPost: ...'."""


def _param(header: str, value: str, name: str) -> tuple[str, str | None]:
    """(main value lowercased, the named parameter) of a MIME header value."""
    m = Message()
    m[header] = value
    main = m.get_content_type() if header == "content-type" else value.split(";")[0].strip().lower()
    param = m.get_param(name, header=header)
    if isinstance(param, tuple):  # RFC 2231 encoded
        param = param[2]
    return main, param


def is_form(req: Req) -> bool:
    ctype = req.headers.get("content-type", "")
    if req.method != "POST" or not ctype.lower().startswith("multipart/form-data"):
        return False
    return bool(_param("content-type", ctype, "boundary")[1])


# --------------------------------------------------------------------------- multipart reading


class Parts:
    """A pull reader of multipart parts over a stream of chunks: each part is
    (headers, body iterator); a body left unread is skipped."""

    def __init__(self, chunks: Iterable[bytes], boundary: bytes):
        self._src = iter(chunks)
        self._buf = b"\r\n"  # so the first delimiter looks like every other one
        self._delim = b"\r\n--" + boundary

    def _more(self) -> bool:
        data = next(self._src, None)
        if data is None:
            return False
        self._buf += data
        return True

    def __iter__(self) -> Iterator[tuple[dict[str, str], Iterator[bytes]]]:
        while (i := self._buf.find(self._delim)) < 0:
            if len(self._buf) > MAX_HEADER_BYTES or not self._more():
                raise FormInvalid("invalid starting boundary")
        self._buf = self._buf[i + len(self._delim) :]
        while True:
            while len(self._buf) < 2 and self._more():
                pass
            if self._buf.startswith(b"--"):
                return  # the closing delimiter
            while (j := self._buf.find(b"\r\n\r\n")) < 0:
                if len(self._buf) > MAX_HEADER_BYTES or not self._more():
                    raise FormInvalid("malformed multipart headers")
            head, self._buf = self._buf[:j], self._buf[j + 4 :]
            headers = {}
            for line in head.decode("utf-8", "replace").split("\r\n"):
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            body = self._body()
            yield headers, body
            for _ in body:  # skip what the consumer left
                pass

    def _body(self) -> Iterator[bytes]:
        keep = len(self._delim) - 1  # a delimiter may straddle two chunks
        while True:
            i = self._buf.find(self._delim)
            if i >= 0:
                data, self._buf = self._buf[:i], self._buf[i + len(self._delim) :]
                if data:
                    yield data
                return
            if len(self._buf) > keep:
                data, self._buf = self._buf[:-keep], self._buf[-keep:]
                yield data
            if not self._more():
                raise FormInvalid("incomplete multipart body")


class _Capped:
    """A file's data, failing once it exceeds max_file_size."""

    def __init__(self, body: Iterator[bytes], limit: int):
        self.body, self.limit, self.size, self.exceeded = body, limit, 0, False

    def __iter__(self) -> Iterator[bytes]:
        for data in self.body:
            self.size += len(data)
            if self.size > self.limit:
                self.exceeded = True
                raise FormInvalid("max_file_size exceeded")
            yield data


# --------------------------------------------------------------------------- the form


def handle(req: Req, account: str, container: str, prefix: str) -> Response:
    try:
        return _translate(req, account, container, prefix)
    except FormInvalid as e:
        return Response(f"FormPost: {e}".encode(), 400, media_type="text/plain")
    except FormUnauthorized as e:
        return Response(f"FormPost: {str(e).title()}".encode(), 401, media_type="text/plain")


def _translate(req: Req, account: str, container: str, prefix: str) -> Response:
    boundary = _param("content-type", req.headers["content-type"], "boundary")[1]
    keys = [k for k, _ in tempurl.keys(account, container)]
    status, message, attributes, failure_body, count = "", "", {}, b"", 0
    for headers, body in Parts(req.chunks(), boundary.encode()):
        disp, filename = _param(
            "content-disposition", headers.get("content-disposition", ""), "filename"
        )
        if disp == "form-data" and filename:
            count += 1
            try:
                if count > int(attributes.get("max_file_count") or 0):
                    status, message = "400 Bad Request", "max file count exceeded"
                    break
            except ValueError:
                raise FormInvalid("max_file_count not an integer") from None
            attrs = {**attributes, "filename": filename}
            if "content-type" not in attributes and "content-type" in headers:
                attrs["content-type"] = headers["content-type"] or "application/octet-stream"
            if "content-encoding" not in attributes and "content-encoding" in headers:
                attrs["content-encoding"] = headers["content-encoding"]
            status, failure_body = _upload(req, account, container, prefix, attrs, body, keys)
            if not status.startswith("2"):
                break
        else:
            name = _param("content-disposition", headers.get("content-disposition", ""), "name")[1]
            data = b""
            for piece in body:
                data += piece[: MAX_VALUE_LENGTH - len(data)]
            if name:
                attributes[name.lower()] = data.decode("utf-8", "replace").rstrip(
                    "\r\n-"
                )  # as Swift (which writes "\r\n--")
    if not status:
        status, message = "400 Bad Request", "no files to process"
    redirect = attributes.get("redirect")
    if not redirect:
        text = (status + ("\r\nFormPost: " + message.title() if message else "")).encode()
        if not status.startswith("2") and failure_body:
            text = failure_body
        return Response(text, int(status.split()[0]), media_type="text/plain")
    redirect += (
        "&" if "?" in redirect else "?"
    ) + f"status={quote(status.split()[0])}&message={quote(message)}"
    page = f'<html><body><p><a href="{escape(redirect)}">Click to continue...</a></p></body></html>'
    return Response(page.encode(), 303, {"Location": redirect}, media_type="text/html")


def _check_signature(req: Req, attrs: dict, keys: list[str]) -> None:
    if not keys:
        raise FormUnauthorized("invalid signature")
    try:
        if int(attrs.get("expires") or 0) < time.time():
            raise FormUnauthorized("form expired")
    except ValueError:
        raise FormInvalid("expired not an integer") from None
    try:
        algo, given = tempurl.parse_signature(attrs.get("signature", ""))
    except ValueError:
        raise FormUnauthorized("invalid signature") from None
    path = "/v1/" + req.request.scope["path"].split("/v1/", 1)[-1]
    fields = "\n".join(
        [
            attrs.get("redirect") or "",
            attrs.get("max_file_size") or "0",
            attrs.get("max_file_count") or "0",
            attrs.get("expires") or "0",
        ]
    )
    for key in keys:
        for p in tempurl.signed_paths(req, path):
            if hmac.compare_digest(tempurl.digest(key, f"{p}\n{fields}", algo), given):
                return
    raise FormUnauthorized("invalid signature")


def _upload(
    req: Req, account: str, container: str, prefix: str, attrs: dict, body, keys
) -> tuple[str, bytes]:
    """Store one file (the signature authorizes it); (status line, error body)."""
    try:
        max_size = int(attrs.get("max_file_size") or 0)
    except ValueError:
        raise FormInvalid("max_file_size not an integer") from None
    _check_signature(req, attrs, keys)
    meta = {"Content-Type": attrs.get("content-type") or "application/octet-stream"}
    if "content-encoding" in attrs:
        meta["Content-Encoding"] = attrs["content-encoding"]
    for field, header in (("x_delete_at", "X-Delete-At"), ("x_delete_after", None)):
        if field in attrs:
            try:
                value = int(attrs[field])
            except ValueError:
                raise FormInvalid(
                    f"{field} not an integer: "
                    + ("Unix timestamp required." if header else "Number of seconds required.")
                ) from None
            meta["X-Delete-At"] = str(value if header else int(time.time()) + value)
    capped = _Capped(body, max_size)
    try:
        t = object_io.target(req, account, container, prefix + attrs["filename"])
        object_io.need_container(t)
        object_io.store(req, t, capped, meta, length=None, expect_etag="")
    except errors.ApiError as e:
        if capped.exceeded:
            raise FormInvalid("max_file_size exceeded") from None
        return bulk.status_line(e), e.message.encode()
    return "201 Created", b""
