"""API worker processes: ``onestack up --workers N`` (``server.workers``).

With N > 1 the main process sets the cloud up (migrations, bootstrap) and runs the
conductors, schedulers and agents once, as a single process does; but instead of
serving HTTP itself it opens the listening socket and starts N workers. A worker is a
fresh interpreter (``python -m onestack.workers``, not a fork: no memory is shared)
that inherits the socket, builds the API app only (``create_app(api_only=True)``) and
serves it with uvicorn; the kernel hands each new connection to one of them. Workers
reach the conductors and agents over RabbitMQ, and what they must agree on lives in the
database (identity's revision, which every cached token validation is keyed on; console
tokens; lockout counts), so N > 1 needs the amqp bus and PostgreSQL.

The main process watches its workers: one that dies is started again (after a pause
that grows while it keeps dying young, so a broken start-up does not spin). On SIGTERM
or SIGINT it stops them all, then returns. A worker also exits when the main process
dies (PR_SET_PDEATHSIG): no worker outlives its cloud.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import uvicorn

from onestack import infra
from onestack.app import create_app
from onestack.common import http, tls
from onestack.config import Config, load

log = logging.getLogger(__name__)

HEADER = b"x-onestack-worker"  # each response names the worker (1..N) that made it
STOP_WAIT = 8.0  # seconds workers get to finish on shutdown (`onestack down` waits 10)
YOUNG = 10.0  # a worker that dies sooner than this after its start is restarted after a pause
MAX_PAUSE = 30.0


def refusal(conf: Config) -> str | None:
    """Why this configuration cannot run ``server.workers`` processes (None: it can)."""
    n = conf.server.workers
    if n < 1:
        return f"server.workers must be 1 or more (got {n})"
    if n == 1:
        return None
    if conf.bus.backend != "amqp":
        return (f'server.workers = {n} needs the RabbitMQ bus (bus.backend = "amqp", with bus.url or '
                "bus.managed): API workers reach the conductors and agents through it")
    if not conf.database.managed and conf.database_url.startswith("sqlite"):
        return (f"server.workers = {n} needs PostgreSQL (database.url or database.managed): SQLite takes "
                "writes from one process at a time")
    return None


def listen(conf: Config) -> socket.socket:
    """The listening socket every worker accepts on (inherited by them)."""
    host = conf.server.host
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, conf.server.port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


# -- the main process ---------------------------------------------------------------


@dataclass
class _Slot:
    index: int
    proc: subprocess.Popen | None = None
    started: float = 0.0
    pause: float = 0.0  # before the next start, while it keeps dying young
    due: float = 0.0  # when it may start again


class Supervisor:
    """Starts ``conf.server.workers`` workers on ``sock``, restarts those that die, and
    stops them all when ``stop`` is set."""

    def __init__(self, conf: Config, sock: socket.socket):
        self.conf = conf
        self.sock = sock
        self.slots = [_Slot(i + 1) for i in range(conf.server.workers)]
        self.stop = threading.Event()

    def _command(self, index: int) -> list[str]:
        args = [sys.executable, "-m", "onestack.workers", "--fd", str(self.sock.fileno()),
                "--index", str(index), "--parent", str(os.getpid()),
                "--host", self.conf.server.host, "--port", str(self.conf.server.port)]
        if self.conf.path is not None:
            args += ["--config", str(self.conf.path)]
        return args

    def _start(self, slot: _Slot) -> None:
        # stdout and stderr are this process's (the log file of `up --detach`)
        slot.proc = subprocess.Popen(self._command(slot.index), pass_fds=(self.sock.fileno(),),
                                     stdin=subprocess.DEVNULL)
        slot.started = time.monotonic()
        log.info("API worker %d started (pid %d)", slot.index, slot.proc.pid)

    def _check(self, slot: _Slot) -> None:
        now = time.monotonic()
        if slot.proc is not None and slot.proc.poll() is not None:
            young = now - slot.started < YOUNG
            slot.pause = min(MAX_PAUSE, max(1.0, 2 * slot.pause)) if young else 0.0
            slot.due = now + slot.pause
            log.warning("API worker %d (pid %d) exited with %s; starting it again%s", slot.index,
                        slot.proc.pid, slot.proc.returncode, f" in {slot.pause:.0f} s" if slot.pause else "")
            slot.proc = None
        if slot.proc is None and now >= slot.due:
            self._start(slot)

    def pids(self) -> list[int]:
        return [s.proc.pid for s in self.slots if s.proc is not None]

    def run(self) -> None:
        """Until ``stop``: keep every worker running. Then stop them (SIGTERM, then SIGKILL)."""
        try:
            while not self.stop.is_set():
                for slot in self.slots:
                    self._check(slot)
                self.stop.wait(0.5)
        finally:
            self._stop_all()

    def _stop_all(self) -> None:
        running = [s.proc for s in self.slots if s.proc is not None and s.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT
        for proc in running:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("API worker pid %d did not stop within %.0f s: killed", proc.pid, STOP_WAIT)
                proc.kill()
                proc.wait()


def serve(conf: Config) -> None:
    """The main process's part: serve the APIs from ``conf.server.workers`` workers until
    SIGTERM or SIGINT (the cloud is set up and its agents run in this process)."""
    sock = listen(conf)
    sup = Supervisor(conf, sock)

    def on_signal(signum, frame) -> None:
        sup.stop.set()

    def forward(signum, frame) -> None:  # `onestack tls rotate`: the workers serve, they reload
        for pid in sup.pids():
            os.kill(pid, signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    if tls.enabled(conf):
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, forward)
    try:
        sup.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()


# -- a worker -------------------------------------------------------------------------


def _die_with(parent: int) -> None:
    """SIGTERM this process when the main process dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before the request was in place
        sys.exit(0)


def tagged(app, index: int):
    """``app`` with the ``X-Onestack-Worker`` header on every HTTP response (and websocket
    handshake: the console proxies)."""
    value = str(index).encode()

    async def tagged_app(scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await app(scope, receive, send)

        async def send_tagged(message):
            if message["type"] in ("http.response.start", "websocket.accept"):
                message = {**message, "headers": [*message.get("headers", []), (HEADER, value)]}
            await send(message)

        return await app(scope, receive, send_tagged)

    return tagged_app


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m onestack.workers",
                                 description="One API worker of `onestack up --workers N`.")
    ap.add_argument("--fd", type=int, required=True, help="the listening socket, inherited")
    ap.add_argument("--index", type=int, required=True)
    ap.add_argument("--parent", type=int, required=True, help="the main process's pid")
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--config")
    a = ap.parse_args(argv)
    _die_with(a.parent)
    os.umask(0o077)
    conf = load(a.config)
    conf.server.host, conf.server.port = a.host, a.port
    for name, url in infra.urls(conf).items():  # the servers the main process runs (managed)
        (conf.bus if name == "bus" else conf.database).url = url
    logging.basicConfig(level=getattr(logging, str(conf.log.level).upper(), logging.INFO),
                        format=f"%(asctime)s %(levelname)s worker-{a.index} %(name)s %(message)s")
    sock = socket.socket(fileno=a.fd)
    try:
        app = tagged(create_app(conf, api_only=True), a.index)
        # (the main process passes its TLS files in the environment: ONESTACK_TLS_*)
        ssl_options = tls.serve_options(tls.ensure(conf)) if tls.enabled(conf) else {}
    except Exception:
        log.exception("API worker %d: start-up failed", a.index)
        sys.exit(1)
    server = uvicorn.Server(uvicorn.Config(app, **http.SERVER_OPTIONS, **ssl_options))
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
