"""Remote consoles: short-lived tokens, the noVNC proxy and the serial console proxy.

A console request (``os-getVNCConsole``, ``os-getSerialConsole`` or 2.6's
``POST /servers/{id}/remote-consoles``) asks the instance's compute agent where
the guest's console is (the VNC server's (host, port), or the serial pty), and
issues a random token bound to that instance, host and target, valid for
``TOKEN_TTL`` seconds (several connections may use it until then, as noVNC
reconnects). Tokens live in the database (only their SHA-256, as Nova keeps them), so
the proxy of any API process (``server.workers``) accepts a token another issued.

The proxies are ASGI apps mounted beside the compute API (``extra_mounts``):

    /novnc/vnc_lite.html, /novnc/vnc.html, ...   noVNC's files (Debian package novnc)
    /novnc/websockify?token=T                    websocket <-> the guest's VNC TCP port
    /serial?token=T                              websocket <-> the guest's serial pty

Each websocket carries the raw byte stream in binary frames (websockify's protocol;
the "binary" subprotocol is accepted when asked for). An unknown or expired token
is refused before the websocket is accepted (HTTP 403), so no byte of the target
is ever sent without one.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import re
import secrets
import termios
import tty
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from onestack.common import db, errors
from onestack.common.timeutils import utcnow
from onestack.compute import instances, settings
from onestack.compute import models as m

log = logging.getLogger(__name__)

TOKEN_TTL = 600.0  # seconds
NOVNC_DIR = Path("/usr/share/novnc")
VNC_TYPES = {"novnc": "vnc"}  # console type -> protocol; xvpvnc is gone from Nova
SERIAL_TYPES = {"serial": "serial"}
PROTOCOL_TYPES = {"vnc": ("novnc",), "serial": ("serial",)}  # what 2.6's remote-consoles serves
_PTY = re.compile(r"^/dev/pts/\d+$")
_NOT_READY_STATES = ("building", "shelved_offloaded", "deleted", "soft-delete", "error")


@dataclass(frozen=True)
class ConsoleToken:
    token: str
    instance_uuid: str
    host: str  # the compute host the guest runs on
    console_type: str  # novnc | serial
    target: tuple  # ("tcp", address, port) | ("pty", path)
    expires_at: datetime  # naive UTC


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Tokens in the database: issued (expired ones are purged then), checked, revoked
    per instance. The token itself is only ever in the URL handed to the client."""

    def __init__(self, ttl: float = TOKEN_TTL):
        self.ttl = ttl

    def issue(
        self, instance_uuid: str, host: str, console_type: str, target: tuple
    ) -> ConsoleToken:
        now = utcnow()
        tok = ConsoleToken(secrets.token_urlsafe(32), instance_uuid, host, console_type,
                           tuple(target), now + timedelta(seconds=self.ttl))
        T = m.ConsoleAuthToken
        with db.transaction() as s:
            s.execute(sa.delete(T).where(T.expires_at <= now))
            s.add(T(token_hash=_digest(tok.token), instance_uuid=instance_uuid, host=host,
                    console_type=console_type, target=list(tok.target), expires_at=tok.expires_at))
        return tok

    def check(self, token: str | None, console_type: str) -> ConsoleToken | None:
        """The live token of that type, or None."""
        if not token:
            return None
        T = m.ConsoleAuthToken
        with db.session() as s:
            row = s.scalar(sa.select(T).where(T.token_hash == _digest(token)))
        if row is None or row.expires_at <= utcnow() or row.console_type != console_type:
            return None
        return ConsoleToken(token, row.instance_uuid, row.host, row.console_type, tuple(row.target),
                            row.expires_at)

    def revoke_instance(self, instance_uuid: str) -> int:
        """Forget every token of an instance (deleted, moved); how many there were."""
        T = m.ConsoleAuthToken
        with db.transaction() as s:
            return s.execute(sa.delete(T).where(T.instance_uuid == instance_uuid)).rowcount

    def __len__(self) -> int:
        """How many live tokens there are."""
        T = m.ConsoleAuthToken
        with db.session() as s:
            return s.scalar(sa.select(sa.func.count()).select_from(T).where(T.expires_at > utcnow()))


tokens = TokenStore()


# ---------------------------------------------------------------------------------------
# issuing (called by the API)


def _public_url() -> str:
    return settings.current.public_url.rstrip("/")


def novnc_url(token: str, public_url: str | None = None) -> str:
    """noVNC's page, told (path=) to open its websocket at /novnc/websockify?token=..."""
    base = (public_url or _public_url()).rstrip("/")
    prefix = urllib.parse.urlsplit(base).path.strip("/")
    path = (prefix + "/" if prefix else "") + "novnc/websockify?token=" + token
    return f"{base}/novnc/vnc_lite.html?path={urllib.parse.quote(path, safe='')}"


def serial_url(token: str, public_url: str | None = None) -> str:
    base = (public_url or _public_url()).rstrip("/")
    parts = urllib.parse.urlsplit(base)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}{parts.path}/serial?token={token}"


def _check_ready(instance) -> None:
    if (
        not instance.host
        or instance.vm_state in _NOT_READY_STATES
        or instance.task_state in ("deleting",)
    ):
        raise errors.Conflict(f"Instance {instance.uuid} is not ready.")


def _ask_host(instance, method: str):
    """Ask the instance's compute agent (bus topic compute.<host>); it answers 409 when the
    guest has no such console now (not running, no VNC, no pty)."""
    return instances.call_host(instance, method, timeout=30)


def get_vnc_console(ctx, instance, console_type: str, address: tuple | None = None) -> dict:
    """os-getVNCConsole for `instance` (an Instance row the caller may act on):
    {"type", "url"}. `address`: the guest's VNC (host, port) if the caller asked the
    agent already; otherwise the agent is asked (its ``vnc_address``)."""
    if console_type not in VNC_TYPES:
        raise errors.BadRequest(f"Unavailable console type {console_type}.")
    _check_ready(instance)
    host, port = address if address is not None else _ask_host(instance, "vnc_address")
    tok = tokens.issue(instance.uuid, instance.host, console_type, ("tcp", host, int(port)))
    return {"type": console_type, "url": novnc_url(tok.token)}


def get_serial_console(ctx, instance, console_type: str, pty: str | None = None) -> dict:
    """os-getSerialConsole: {"type": "serial", "url": "ws://.../serial?token=..."}.
    `pty`: the guest's serial pty if known; otherwise the agent is asked (``serial_pty``)."""
    if console_type not in SERIAL_TYPES:
        raise errors.BadRequest(f"Unavailable console type {console_type}.")
    _check_ready(instance)
    path = pty if pty is not None else _ask_host(instance, "serial_pty")
    tok = tokens.issue(instance.uuid, instance.host, console_type, ("pty", str(path)))
    return {"type": console_type, "url": serial_url(tok.token)}


def get_remote_console(ctx, instance, protocol: str, console_type: str) -> dict:
    """2.6's remote-consoles: {"protocol", "type", "url"}."""
    if protocol not in PROTOCOL_TYPES:
        raise errors.BadRequest(f"Unavailable console type {console_type}.")
    if console_type not in PROTOCOL_TYPES[protocol]:
        raise errors.BadRequest(
            f"Invalid input: console type {console_type} is not valid for protocol {protocol}."
        )
    if protocol == "vnc":
        out = get_vnc_console(ctx, instance, console_type)
    else:
        out = get_serial_console(ctx, instance, console_type)
    return {"protocol": protocol, "type": console_type, "url": out["url"]}


# ---------------------------------------------------------------------------------------
# the proxies (ASGI)


async def _accept(websocket, console_type: str) -> ConsoleToken | None:
    tok = await asyncio.to_thread(tokens.check, websocket.query_params.get("token"), console_type)
    if tok is None:
        log.info("console websocket refused: unknown or expired %s token", console_type)
        await websocket.close(code=1008)  # before accept: the handshake answers 403
        return None
    asked = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",")]
    await websocket.accept(subprotocol="binary" if "binary" in asked else None)
    return tok


async def _from_client(websocket, write) -> None:
    """Client frames to `write` until the client goes away."""
    while True:
        msg = await websocket.receive()
        if msg["type"] == "websocket.disconnect":
            return
        data = msg.get("bytes")
        if data is None:
            data = (msg.get("text") or "").encode()
        if data:
            await write(data)


async def _relay(websocket, read, write, what: str) -> None:
    """Bytes both ways until either side ends; then the websocket is closed."""

    async def to_client():
        while data := await read():
            await websocket.send_bytes(data)

    tasks = [
        asyncio.ensure_future(to_client()),
        asyncio.ensure_future(_from_client(websocket, write)),
    ]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if t.exception() is not None and not isinstance(t.exception(), ConnectionError):
                log.info("%s console relay ended: %s", what, t.exception())
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await websocket.close()
        except Exception:
            pass


async def vnc_websocket(websocket) -> None:
    tok = await _accept(websocket, "novnc")
    if tok is None:
        return
    _, host, port = tok.target
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
    except (TimeoutError, OSError) as e:
        log.warning("VNC of %s at %s:%s unreachable: %s", tok.instance_uuid, host, port, e)
        await websocket.close(code=1011)
        return

    async def write(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    try:
        await _relay(websocket, lambda: reader.read(65536), write, "VNC")
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


def _claim(fd: int, path: str) -> bool:
    """Hold the pty for this session: two readers of one pty would each get part of the
    output. An flock, so a session of another API process holds it too (the fake
    driver's /dev/null is nobody's console: not locked)."""
    if path == "/dev/null":
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


async def serial_websocket(websocket) -> None:
    tok = await _accept(websocket, "serial")
    if tok is None:
        return
    path = tok.target[1]
    if not (_PTY.match(path) or path == "/dev/null"):
        await websocket.close(code=1011)
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as e:
        log.warning("serial pty %s of %s: %s", path, tok.instance_uuid, e)
        await websocket.close(code=1011)
        return
    if not _claim(fd, path):
        os.close(fd)
        await websocket.close(code=1013)
        return
    loop = asyncio.get_running_loop()
    incoming: asyncio.Queue[bytes] = asyncio.Queue()
    try:
        if os.isatty(fd):
            tty.setraw(fd, termios.TCSANOW)  # bytes as they are: no echo, no line editing

        def readable() -> None:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(fd)
            incoming.put_nowait(data)

        loop.add_reader(fd, readable)

        async def write(data: bytes) -> None:
            view = memoryview(data)
            while view:
                try:
                    n = os.write(fd, view)
                except BlockingIOError:
                    await asyncio.sleep(0.01)
                    continue
                view = view[n:]

        await _relay(websocket, incoming.get, write, "serial")
    finally:
        loop.remove_reader(fd)
        os.close(fd)  # (and with it the flock)


def vnc_app():
    """The noVNC proxy and noVNC's files, for prefix /novnc."""
    routes = [WebSocketRoute("/websockify", vnc_websocket)]
    if NOVNC_DIR.is_dir():
        static = StaticFiles(directory=NOVNC_DIR, html=True, follow_symlink=True)
        routes.append(Mount("/", static))
    else:

        async def missing(request):
            return PlainTextResponse(
                f"noVNC is not installed ({NOVNC_DIR}: Debian package novnc)", status_code=404
            )

        routes.append(Route("/{path:path}", missing))
    return Starlette(routes=routes)


def serial_app():
    """The serial console proxy, for prefix /serial."""
    return Starlette(routes=[WebSocketRoute("/", serial_websocket)])


def extra_mounts() -> dict:
    """What compute's service module mounts beside its API."""
    return {"/novnc": vnc_app(), "/serial": serial_app()}
