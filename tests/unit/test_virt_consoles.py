"""Console tokens and the two websocket proxies, against stand-ins on this machine: a
TCP server speaking the first line of RFB (as QEMU's VNC server does) on 127.0.0.1,
and a pseudo-terminal standing in for the guest's serial port. The proxies run in
uvicorn on a loopback port; the client is the `websockets` package."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
import threading
import time
import urllib.parse
from datetime import timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from onestack.common import db, errors
from onestack.common.timeutils import utcnow
from onestack.compute import consoles
from tests.requirements import missing

websockets = pytest.importorskip("websockets")
uvicorn = pytest.importorskip("uvicorn")
from websockets.asyncio.client import connect  # noqa: E402

RFB = b"RFB 003.008\n"


@pytest.fixture(scope="module", autouse=True)
def database(tmp_path_factory):
    """Console tokens live in compute's tables."""
    db.configure(f"sqlite:///{tmp_path_factory.mktemp('consoles') / 'compute.db'}")
    db.upgrade("compute")
    yield
    db.engine().dispose()


# -- tokens and URLs


def test_tokens_issue_check_expire_and_revoke(monkeypatch):
    store = consoles.TokenStore(ttl=60)
    a = store.issue("i-1", "host-1", "novnc", ("tcp", "127.0.0.1", 5900))
    b = store.issue("i-1", "host-1", "serial", ("pty", "/dev/pts/3"))
    c = store.issue("i-2", "host-1", "novnc", ("tcp", "127.0.0.1", 5901))
    assert len({a.token, b.token, c.token}) == 3 and len(a.token) >= 40
    assert store.check(a.token, "novnc") == a
    assert store.check(a.token, "novnc") == a  # reusable until it expires (noVNC reconnects)
    assert store.check(a.token, "serial") is None  # bound to its console type
    assert store.check("nope", "novnc") is None and store.check(None, "novnc") is None
    assert store.revoke_instance("i-1") == 2
    assert store.check(b.token, "serial") is None and store.check(c.token, "novnc") == c
    # another API process (its own store, the same database) takes a token this one issued
    assert consoles.TokenStore().check(c.token, "novnc") == c
    later = utcnow() + timedelta(seconds=61)
    monkeypatch.setattr(consoles, "utcnow", lambda: later)
    assert store.check(c.token, "novnc") is None
    assert len(store) == 0
    store.issue("i-3", "host-1", "novnc", ("tcp", "127.0.0.1", 5902))  # purges expired rows
    with db.session() as s:
        hashes = s.scalars(sa.select(consoles.m.ConsoleAuthToken.token_hash)).all()
    assert len(hashes) == 1 and c.token not in hashes  # only a digest is stored


def test_urls():
    url = consoles.novnc_url("TOK", "http://cloud.example:8800")
    assert url == (
        "http://cloud.example:8800/novnc/vnc_lite.html?path=novnc%2Fwebsockify%3Ftoken%3DTOK"
    )
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert q == {"path": ["novnc/websockify?token=TOK"]}  # what noVNC opens, from the host root
    behind = consoles.novnc_url("TOK", "https://x.example/cloud/")
    assert "path=cloud%2Fnovnc%2Fwebsockify" in behind
    assert consoles.serial_url("TOK", "http://cloud.example:8800") == (
        "ws://cloud.example:8800/serial?token=TOK"
    )
    assert consoles.serial_url("T", "https://x.example/c").startswith("wss://x.example/c/serial?")


def _instance(**kw):
    args = dict(uuid="6f1ab1b4-5b1c-4b5e-9d56-0d4a1f1b1c01", host="h1", vm_state="active",
                task_state=None)  # fmt: skip
    args.update(kw)
    return SimpleNamespace(**args)


def test_console_requests(monkeypatch):
    monkeypatch.setattr(consoles, "_public_url", lambda: "http://c:8800")
    out = consoles.get_vnc_console(None, _instance(), "novnc", ("127.0.0.1", 5905))
    assert out["type"] == "novnc" and out["url"].startswith("http://c:8800/novnc/vnc_lite.html")
    token = urllib.parse.unquote(out["url"]).split("token=")[1]
    tok = consoles.tokens.check(token, "novnc")
    assert tok.target == ("tcp", "127.0.0.1", 5905) and tok.host == "h1"
    with pytest.raises(errors.BadRequest):
        consoles.get_vnc_console(None, _instance(), "xvpvnc", ("127.0.0.1", 1))
    for inst in (_instance(host=None), _instance(vm_state="building"),
                 _instance(task_state="deleting")):  # fmt: skip
        with pytest.raises(errors.Conflict):
            consoles.get_vnc_console(None, inst, "novnc", ("127.0.0.1", 1))
    out = consoles.get_serial_console(None, _instance(), "serial", "/dev/pts/7")
    assert out == {"type": "serial", "url": out["url"]}
    assert out["url"].startswith("ws://c:8800/serial?token=")
    with pytest.raises(errors.BadRequest):
        consoles.get_serial_console(None, _instance(), "novnc", "/dev/pts/7")
    with pytest.raises(errors.BadRequest):
        consoles.get_remote_console(None, _instance(), "spice", "spice-html5")
    with pytest.raises(errors.BadRequest):
        consoles.get_remote_console(None, _instance(), "vnc", "serial")

    asked = []
    monkeypatch.setattr(consoles, "_ask_host", lambda inst, m: asked.append(m) or ("h", 5906))
    out = consoles.get_remote_console(None, _instance(), "vnc", "novnc")
    assert out["protocol"] == "vnc" and out["type"] == "novnc" and asked == ["vnc_address"]


# -- the proxies


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Mounts:
    """The two proxies under their prefixes, as onestack's dispatcher mounts them."""

    def __init__(self):
        self.apps = consoles.extra_mounts()

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            for prefix, app in self.apps.items():
                if scope["path"] == prefix or scope["path"].startswith(prefix + "/"):
                    child = dict(scope, root_path=prefix)
                    if scope["path"] == prefix:
                        child["path"] = prefix + "/"
                    return await app(child, receive, send)
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture(scope="module")
def proxy():
    port = _free_port()
    config = uvicorn.Config(_Mounts(), host="127.0.0.1", port=port, log_level="warning",
                            lifespan="on")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@contextlib.contextmanager
def fake_vnc_server():
    """A TCP server that greets with the RFB banner and echoes what it gets after it."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(10)
    got: list[bytes] = []

    def serve():
        try:
            conn, _ = srv.accept()
        except OSError:
            return
        with conn:
            conn.sendall(RFB)
            conn.settimeout(10)
            while data := conn.recv(4096):
                got.append(data)
                conn.sendall(data.upper())

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1], got
    finally:
        with contextlib.suppress(OSError):
            srv.shutdown(socket.SHUT_RDWR)  # wakes the accept() of a server nobody called
        srv.close()
        t.join(timeout=5)


def test_vnc_proxy_relays_both_ways(proxy):
    with fake_vnc_server() as (port, got):
        tok = consoles.tokens.issue("i-vnc", "h1", "novnc", ("tcp", "127.0.0.1", port))

        async def talk():
            url = f"ws://{proxy}/novnc/websockify?token={tok.token}"
            async with connect(url, subprotocols=["binary"], open_timeout=10) as ws:
                assert ws.subprotocol == "binary"
                banner = await asyncio.wait_for(ws.recv(), 10)
                await ws.send(b"rfb 003.008\n")
                echoed = await asyncio.wait_for(ws.recv(), 10)
                return banner, echoed

        banner, echoed = asyncio.run(talk())
        assert banner == RFB and isinstance(banner, bytes)
        assert echoed == b"RFB 003.008\n"
        assert got == [b"rfb 003.008\n"]


def test_vnc_proxy_refuses_bad_tokens(proxy):
    with fake_vnc_server() as (port, got):
        serial = consoles.tokens.issue("i-x", "h1", "serial", ("pty", "/dev/null"))

        async def try_(token):
            url = f"ws://{proxy}/novnc/websockify?token={token}"
            with pytest.raises(websockets.exceptions.InvalidStatus) as e:
                async with connect(url, open_timeout=10):
                    pass
            return e.value.response.status_code

        for token in ("not-a-token", "", serial.token):  # a serial token opens no VNC
            assert asyncio.run(try_(token)) == 403
        assert got == []


def test_vnc_proxy_unreachable_target(proxy):
    tok = consoles.tokens.issue("i-gone", "h1", "novnc", ("tcp", "127.0.0.1", _free_port()))

    async def talk():
        async with connect(f"ws://{proxy}/novnc/websockify?token={tok.token}") as ws:
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            return ws.close_code

    assert asyncio.run(talk()) == 1011


def test_novnc_files_are_served(proxy):
    import httpx

    if not consoles.NOVNC_DIR.is_dir():
        r = httpx.get(f"http://{proxy}/novnc/vnc_lite.html")
        assert r.status_code == 404 and "novnc" in r.text
        missing("noVNC is not installed (Debian package novnc)")
    r = httpx.get(f"http://{proxy}/novnc/vnc_lite.html")
    assert r.status_code == 200 and "readQueryVariable('path'" in r.text
    assert httpx.get(f"http://{proxy}/novnc/core/rfb.js").status_code == 200
    assert httpx.get(f"http://{proxy}/novnc/vnc.html").status_code == 200
    assert httpx.get(f"http://{proxy}/novnc/../../etc/passwd").status_code == 404


def test_serial_proxy_relays_a_pty(proxy):
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)  # the proxy opens it by its path, as it opens a guest's pty
    try:
        tok = consoles.tokens.issue("i-ser", "h1", "serial", ("pty", path))

        async def talk():
            url = f"ws://{proxy}/serial?token={tok.token}"
            async with connect(url, open_timeout=10) as ws:
                await ws.send("root\r")  # text frames are taken as UTF-8
                loop = asyncio.get_running_loop()
                typed = b""
                while not typed.endswith(b"\r"):
                    typed += await loop.run_in_executor(None, os.read, master, 100)
                # while one session holds the pty, another is turned away
                async with connect(url, open_timeout=10) as second:
                    with pytest.raises(websockets.exceptions.ConnectionClosed):
                        await asyncio.wait_for(second.recv(), 10)
                    assert second.close_code == 1013
                os.write(master, b"login: \xff")
                out = b""
                while len(out) < 8:
                    out += await asyncio.wait_for(ws.recv(), 10)
                return typed, out

        typed, out = asyncio.run(talk())
        assert typed == b"root\r"  # raw: no echo, no CR -> LF
        assert out == b"login: \xff"
    finally:
        os.close(master)


def test_serial_proxy_turns_away_a_pty_another_process_holds(proxy):
    """Another API process's session holds the pty (an flock on its own open of it):
    this process's proxy turns a second session away, as it does its own."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)
    held = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        tok = consoles.tokens.issue("i-held", "h1", "serial", ("pty", path))

        async def talk():
            async with connect(f"ws://{proxy}/serial?token={tok.token}", open_timeout=10) as ws:
                with pytest.raises(websockets.exceptions.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 10)
                return ws.close_code

        assert asyncio.run(talk()) == 1013
        fcntl.flock(held, fcntl.LOCK_UN)  # the other session ended: now it opens

        async def opens():
            async with connect(f"ws://{proxy}/serial?token={tok.token}", open_timeout=10) as ws:
                os.write(master, b"ok")
                return await asyncio.wait_for(ws.recv(), 10)

        assert asyncio.run(opens()) == b"ok"
    finally:
        os.close(held)
        os.close(master)


def test_serial_proxy_refuses_other_paths(proxy):
    tok = consoles.tokens.issue("i-ser2", "h1", "serial", ("pty", "/etc/shadow"))

    async def talk():
        async with connect(f"ws://{proxy}/serial?token={tok.token}") as ws:
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            return ws.close_code

    assert asyncio.run(talk()) == 1011

    async def bad():
        with pytest.raises(websockets.exceptions.InvalidStatus) as e:
            async with connect(f"ws://{proxy}/serial?token=forged"):
                pass
        return e.value.response.status_code

    assert asyncio.run(bad()) == 403
