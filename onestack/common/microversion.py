"""Microversions: which variant of an API a request asks for.

A client names a version in ``OpenStack-API-Version: <service> X.Y`` (or a
service's legacy header, e.g. Nova's ``X-OpenStack-Nova-API-Version``);
``latest`` means the newest; none means the oldest. The answer carries the
version served and ``Vary`` so caches keep the variants apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

from starlette.datastructures import Headers

from onestack.common import errors

_VERSION = re.compile(r"^([1-9]\d*)\.(0|[1-9]\d*)$")


@total_ordering
@dataclass(frozen=True)
class Version:
    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> Version:
        m = _VERSION.match(text.strip())
        if not m:
            raise errors.BadRequest(f"Invalid API version format {text!r}: expected X.Y or 'latest'.")
        return cls(int(m.group(1)), int(m.group(2)))

    def __lt__(self, other: Version) -> bool:
        return (self.major, self.minor) < (other.major, other.minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


@dataclass(frozen=True)
class Negotiator:
    service: str  # as named in OpenStack-API-Version: compute, volume, placement ...
    minimum: Version
    maximum: Version
    legacy_header: str = ""  # e.g. X-OpenStack-Nova-API-Version

    def requested(self, headers) -> Version:
        """The version a request asks for (406 when outside what we serve)."""
        text = None
        for value in headers.getlist("openstack-api-version") if hasattr(headers, "getlist") else [
                headers.get("openstack-api-version", "")]:
            for part in value.split(","):
                words = part.split()
                if len(words) == 2 and words[0].lower() == self.service:
                    text = words[1]
        if text is None and self.legacy_header:
            text = headers.get(self.legacy_header)
        if not text:
            return self.minimum
        if text.strip().lower() == "latest":
            return self.maximum
        v = Version.parse(text)
        if not self.minimum <= v <= self.maximum:
            raise errors.NotAcceptable(
                f"Version {v} is not supported by the API. Minimum is {self.minimum} and maximum is "
                f"{self.maximum}.")
        return v

    def headers(self, v: Version) -> dict[str, str]:
        out = {"OpenStack-API-Version": f"{self.service} {v}", "Vary": "OpenStack-API-Version"}
        if self.legacy_header:
            out[self.legacy_header] = str(v)
            out["Vary"] += ", " + self.legacy_header
        return out


class MicroversionMiddleware:
    """Negotiate before routing, and name the version on every answer (errors too).

    Handlers read the version from ``scope["state"]["microversion"]``. With
    ``request_id_header``, the request id is also sent under that name (Nova's
    ``x-compute-request-id``, which Tempest reads)."""

    def __init__(self, app, negotiator: Negotiator, error_view, request_id_header: str = ""):
        self.app = app
        self.negotiator = negotiator
        self.error_view = error_view
        self.request_id_header = request_id_header.lower().encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        try:
            version = self.negotiator.requested(Headers(scope=scope))
        except errors.ApiError as e:
            resp = self.error_view(e)
            for k, v in self.negotiator.headers(self.negotiator.minimum).items():
                resp.headers[k] = v
            return await resp(scope, receive, send)
        scope.setdefault("state", {})["microversion"] = version
        extra = [(k.lower().encode(), v.encode()) for k, v in self.negotiator.headers(version).items()]
        rid = scope.get("state", {}).get("request_id", "")
        if rid and self.request_id_header:
            extra.append((self.request_id_header, rid.encode()))

        async def send_with_version(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        return await self.app(scope, receive, send_with_version)
