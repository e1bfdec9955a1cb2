"""The object node protocol: what ``RemoteNode`` (remote.py) and the node server
(server.py) agree on. Plain HTTP/1.1; JSON bodies; object data streamed.

Requests are signed with the secret the proxy and its storage nodes share
(``object_store.node_secret``): ``X-Node-Auth: <unix time> <hex HMAC-SHA256 of
"METHOD\\nPATH?QUERY\\nTIME">``. The node refuses a request without it (401) or
with a wrong or stale one (403, more than ``MAX_SKEW`` seconds off), so a stray
client on the storage network can neither read nor write. As in Swift the
network is a trusted management one: bodies are not signed nor encrypted.

Paths name the device and partition, as Swift's object, container and account
servers do, under one port (segments URL-quoted; an object name keeps its
slashes)::

    /object/<device>/<part>/<account>/<container>/<object>
    /container/<device>/<part>/<account>/<container>[/<object>]
    /account/<device>/<part>/<account>[/<container>]
    /replicate/<device>/<op>                        (the replicator's RPC, JSON)
    /replicate/<device>/file/<part>/<suffix>/<hash>/<file>   (one file, streamed)

``X-Timestamp`` carries a write's timestamp and ``X-Backend-Hash`` the name's
hash in the proxy's ring (the node needs no ring nor hash secret of its own).

An object PUT body is a sequence of frames, ``<kind byte><4-byte big-endian
length><payload>``: ``D`` frames carry data, one final ``M`` frame the metadata
(JSON) that commits it. A body that ends without ``M`` (or a connection that
drops) leaves nothing behind. An object GET answers one line of JSON (the
``ObjectInfo``) and then the bytes asked for.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from urllib.parse import quote

from onestack.object_store.node import AccountRow, ContainerRow, DbInfo, ObjectInfo

AUTH_HEADER = "X-Node-Auth"
MAX_SKEW = 300.0  # seconds a signature stays valid (clocks of the nodes must agree this well)
DATA, META = b"D", b"M"
FRAME = struct.Struct(">cI")
MAX_META_FRAME = 1024 * 1024


# -- signatures ---------------------------------------------------------------------------


def sign(secret: str, method: str, target: bytes, now: float | None = None) -> str:
    """The ``X-Node-Auth`` value of a request (``target``: raw path and query)."""
    stamp = str(int(time.time() if now is None else now))
    return f"{stamp} {_mac(secret, method, target, stamp)}"


def verify(secret: str, method: str, target: bytes, value: str | None,
           now: float | None = None) -> bool:
    if not value:
        return False
    stamp, _, mac = value.partition(" ")
    try:
        skew = abs((time.time() if now is None else now) - int(stamp))
    except ValueError:
        return False
    return skew <= MAX_SKEW and hmac.compare_digest(mac.encode("utf-8", "replace"),
                                                    _mac(secret, method, target, stamp).encode())


def _mac(secret: str, method: str, target: bytes, stamp: str) -> str:
    msg = method.upper().encode() + b"\n" + target + b"\n" + stamp.encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


# -- paths --------------------------------------------------------------------------------


def path(*segments: object) -> str:
    """``/seg/seg/...`` with each segment URL-quoted (an object name keeps its ``/``).
    Dot segments (an object ``a/../b``) are quoted too, or HTTP clients would resolve them."""
    out = []
    for i, s in enumerate(segments):
        parts = str(s).split("/") if i == len(segments) - 1 else [str(s)]
        out.append("/" + "/".join(p.replace(".", "%2E") if p in (".", "..") else quote(p, safe="")
                                  for p in parts))
    return "".join(out)


# -- frames of an object PUT ---------------------------------------------------------------


def frame_header(kind: bytes, length: int) -> bytes:
    return FRAME.pack(kind, length)


def read_frames(chunks: Iterable[bytes]) -> Iterator[tuple[bytes, bytes]]:
    """(kind, payload piece) from a byte stream of frames; a ``D`` frame may come in
    several pieces (never held whole in memory), an ``M`` frame comes whole.
    ValueError on a malformed stream."""
    buf = b""
    kind, left, meta = b"", 0, b""
    for chunk in chunks:
        buf += chunk
        while buf:
            if left == 0 and not kind:
                if len(buf) < FRAME.size:
                    break
                kind, left = FRAME.unpack_from(buf)
                buf = buf[FRAME.size:]
                if kind not in (DATA, META) or (kind == META and left > MAX_META_FRAME):
                    raise ValueError("malformed object stream")
                if left == 0:
                    if kind == META:
                        yield META, b""
                    kind = b""
                    continue
            piece, buf = buf[:left], buf[left:]
            left -= len(piece)
            if kind == DATA:
                yield DATA, piece
            else:
                meta += piece
            if left == 0:
                if kind == META:
                    yield META, meta
                    meta = b""
                kind = b""
    if kind or buf:
        raise ValueError("the object stream ended inside a frame")


# -- JSON forms of the Node interface's values --------------------------------------------


def dumps(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def object_info(info: ObjectInfo) -> dict:
    return asdict(info)


def to_object_info(d: dict) -> ObjectInfo:
    return ObjectInfo(timestamp=str(d["timestamp"]), deleted=bool(d.get("deleted")),
                      metadata={str(k): str(v) for k, v in (d.get("metadata") or {}).items()},
                      size=int(d.get("size", 0)), expired=bool(d.get("expired")))


def db_meta(metadata: dict[str, tuple[str, str]]) -> dict:
    return {k: [v, t] for k, (v, t) in metadata.items()}


def to_db_meta(d: dict) -> dict[str, tuple[str, str]]:
    return {str(k): (str(v[0]), str(v[1])) for k, v in d.items()}


def db_info(info: DbInfo) -> dict:
    return {**asdict(info), "metadata": db_meta(info.metadata)}


def to_db_info(d: dict) -> DbInfo:
    return DbInfo(**{**d, "metadata": to_db_meta(d.get("metadata") or {})})


def row(r: ContainerRow | AccountRow) -> dict:
    return asdict(r)


def listing(items: list) -> list:
    """A listing's items: a row as an object, a subdirectory as ``{"subdir": ...}``."""
    return [{"subdir": i} if isinstance(i, str) else asdict(i) for i in items]


def to_listing(items: list, cls: type) -> list:
    return [i["subdir"] if "subdir" in i else cls(**i) for i in items]
