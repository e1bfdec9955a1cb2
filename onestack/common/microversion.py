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
