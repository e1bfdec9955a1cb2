"""The metadata proxy: http://169.254.169.254 inside a router or DHCP namespace.

Neutron runs one haproxy per namespace plus a metadata agent behind a unix socket.
Here one thread pool in the agent's own process does both: :func:`listen_in_netns`
opens the listening socket *inside* the namespace (a helper thread enters it with
setns(2), creates the socket and ends; the socket stays in that namespace), while
the forwarding connection is made from the agent's namespace to the compute metadata
API (a local URL). So no process runs in the namespace and nothing in the namespace
can reach the API except through the proxy.

Each request gets the instance identity as Nova's metadata API expects it from
Neutron: ``X-Forwarded-For`` (the guest's address), ``X-Instance-ID`` (resolved by
the caller from the namespace's network/router and that address) and
``X-Instance-ID-Signature`` (HMAC-SHA256 of the instance id with the shared secret),
plus ``X-Tenant-ID`` when known. A guest whose address resolves to no instance gets
404, so a guest learns only about itself.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import logging
import socket
import socketserver
import ssl
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from onestack.network.linux import ip as iplib

log = logging.getLogger(__name__)

METADATA_IP = "169.254.169.254"
IP_FREEBIND = 15
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
               "trailers", "transfer-encoding", "upgrade", "host", "content-length"}
_IDENTITY = {"x-forwarded-for", "x-instance-id", "x-instance-id-signature", "x-tenant-id",
             "x-neutron-router-id", "x-neutron-network-id"}


@dataclass
class Identity:
    instance_id: str
    project_id: str | None = None


# (guest address) -> the instance behind it in this namespace's network, or None
Resolver = Callable[[str], "Identity | None"]


def sign(instance_id: str, secret: str | bytes) -> str:
    """Nova's ``X-Instance-ID-Signature``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, instance_id.encode(), hashlib.sha256).hexdigest()


def listen_in_netns(netns: str, host: str, port: int, *, backlog: int = 64) -> socket.socket:
    """A listening TCP socket that lives in ``netns`` (this process stays where it is)."""

    def listen() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
            s.bind((host, port))
            s.listen(backlog)
        except OSError as e:
            s.close()
            raise OSError(f"listen on {host}:{port} in {netns}: {e}") from e
        return s

    return iplib.in_netns(netns, listen)


def ensure_address(netns: str, dev: str = "lo") -> None:
    """169.254.169.254 local in the namespace (on ``lo`` unless some device has it)."""
    for rec in iplib.ip_json("addr", "show", netns=netns):
        if any(a.get("local") == METADATA_IP for a in rec.get("addr_info", [])):
            return
    iplib.ensure_address(dev, f"{METADATA_IP}/32", netns)


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, sock: socket.socket, proxy: MetadataProxy):
        super().__init__(sock.getsockname(), _Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.proxy = proxy


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # one debug line, not stderr
        log.debug("metadata %s: " + fmt, self.server.proxy.netns, *args)

    def _forward(self) -> None:
        proxy = self.server.proxy
        client = self.client_address[0]
        ident = proxy.resolve(client)
        if ident is None:
            self._reply(404, b"no instance at this address\n")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in _HOP_BY_HOP and k.lower() not in _IDENTITY}
        headers.update({
            "X-Forwarded-For": client,
            "X-Instance-ID": ident.instance_id,
            "X-Instance-ID-Signature": sign(ident.instance_id, proxy.secret),
            **({"X-Tenant-ID": ident.project_id} if ident.project_id else {}),
            **proxy.labels,
        })
        up = urllib.parse.urlsplit(proxy.upstream)
        path = (up.path.rstrip("/") + self.path) if up.path else self.path
        if up.scheme == "https":  # (`up --tls`: verified with the CA SSL_CERT_FILE names)
            conn = http.client.HTTPSConnection(up.hostname, up.port or 443, timeout=proxy.timeout,
                                               context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(up.hostname, up.port or 80, timeout=proxy.timeout)
        try:
            conn.request(self.command, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except OSError as e:
            log.warning("metadata upstream %s failed: %s", proxy.upstream, e)
            self._reply(502, b"metadata service unavailable\n")
            return
        finally:
            conn.close()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in _HOP_BY_HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_HEAD = do_POST = _forward


class MetadataProxy:
    """Serve http://169.254.169.254 in ``netns``, forwarding to ``upstream``.

    ``labels`` are extra headers naming where the request came from (Neutron sends
    ``X-Neutron-Router-ID`` or ``X-Neutron-Network-ID``).
    """

    def __init__(self, netns: str, upstream: str, resolve: Resolver, secret: str | bytes, *,
                 labels: dict[str, str] | None = None, port: int = 80, timeout: float = 10.0):
        if urllib.parse.urlsplit(upstream).scheme not in ("http", "https"):
            raise ValueError(f"metadata upstream must be an http:// or https:// URL, not {upstream!r}")
        self.netns, self.upstream, self.resolve = netns, upstream, resolve
        self.secret, self.labels, self.port, self.timeout = secret, labels or {}, port, timeout
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> MetadataProxy:
        ensure_address(self.netns)
        sock = listen_in_netns(self.netns, METADATA_IP, self.port)
        self._server = _Server(sock, self)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name=f"metadata-{self.netns}")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> MetadataProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
