"""Reach the host's API from inside a namespace: a TCP forwarder for `netns exec --api`.

The external network's namespace has its own loopback, so the catalog's URLs
(``http://127.0.0.1:<port>/...``) lead nowhere from there. :func:`listen_in` opens a
listening socket on that address *inside* the namespace (a helper thread enters it
with setns(2); the socket stays there); :func:`run_forwarding` runs a command while
it splices every connection to the same address in this process's own namespace.
So a shell in the namespace reaches the API by the catalog's URLs unchanged, and
floating IPs directly, and no route or address is added anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import socket
from collections.abc import Sequence

from onestack.network.linux import ip as iplib

Address = tuple[str, int]


def listen_in(netns: str, address: Address) -> socket.socket:
    """A listening TCP socket on ``address`` inside ``netns``.

    SO_REUSEPORT lets several sessions forward the same port at once (each takes
    some of the connections; all lead to the same API)."""

    def listen() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind(address)
            s.listen(128)
        except OSError as e:
            s.close()
            where = f"{address[0]}:{address[1]} in {netns}"
            raise OSError(f"cannot listen on {where}: {e.strerror}") from e
        s.setblocking(False)
        return s

    return iplib.in_netns(netns, listen)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of input, then pass the half-close on (HTTP clients rarely do)."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.transport.abort()


async def _splice(target: Address, reader: asyncio.StreamReader,
                  writer: asyncio.StreamWriter) -> None:
    try:
        up_reader, up_writer = await asyncio.open_connection(*target)
    except OSError:  # the API is down: the client sees its connection closed
        writer.transport.abort()
        return
    try:
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
    finally:
        for w in (writer, up_writer):
            w.close()
            with contextlib.suppress(ConnectionError, OSError):
                await w.wait_closed()


async def _run(argv: Sequence[str], listener: socket.socket, target: Address) -> int:
    loop = asyncio.get_running_loop()
    server = await asyncio.start_server(functools.partial(_splice, target), sock=listener)
    # Ctrl-C reaches the command too (same terminal group): it decides, we wait for it
    loop.add_signal_handler(signal.SIGINT, lambda: None)
    proc = await asyncio.create_subprocess_exec(*argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, proc.send_signal, sig)
    rc = await proc.wait()
    server.close()
    return rc if rc >= 0 else 128 - rc  # killed by signal N: 128+N, as shells report it


def run_forwarding(argv: Sequence[str], listener: socket.socket, target: Address) -> int:
    """Run ``argv`` (e.g. under ``ip netns exec``) while connections to ``listener`` are
    spliced to ``target`` in this namespace; return the command's exit status."""
    try:
        return asyncio.run(_run(argv, listener, target))
    finally:
        listener.close()
