"""The API forwarder of `onestack netns exec NAME --api`: a command inside a namespace
reaches an HTTP server on the host's loopback at the same address, while it runs.

The namespace is one this test makes (`ip netns add`), with only its loopback up: no
route leaves it, so whatever the command reaches there came through the forwarder.
"""

from __future__ import annotations

import http.server
import shlex
import socketserver
import subprocess
import sys
import threading
import uuid

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120), pytest.mark.root, pytest.mark.netns]

# GET url, or POST a body of N bytes when N is given (through no proxy)
FETCH = """
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
data = b"x" * int(sys.argv[2]) if len(sys.argv) > 2 else None
with opener.open(sys.argv[1], data=data, timeout=10) as r:
    sys.stdout.write(r.read().decode())
"""


class _Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as API clients use it

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._answer(f"host says {self.path}".encode())

    def do_POST(self):
        data = self.rfile.read(int(self.headers["Content-Length"]))
        self._answer(b"echo " + data)

    def log_message(self, *args):
        pass


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True


@pytest.fixture
def host_server():
    srv = _Server(("127.0.0.1", 0), _Echo)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def netns():
    name = f"ostest-fwd-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def inside(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def test_command_in_namespace_reaches_host_loopback_only_through_forwarder(netns, host_server):
    url = f"http://{host_server[0]}:{host_server[1]}"
    fetch = [sys.executable, "-c", FETCH]
    # without the forwarder the namespace's own loopback has nothing there
    alone = subprocess.run(inside(netns, *fetch, url + "/x"), capture_output=True, text=True,
                           timeout=30)
    assert alone.returncode != 0 and "Connection refused" in alone.stderr, alone.stderr
    # with it: a GET, and a POST of 300 kB whose echo comes back whole
    fetch_twice = f"{shlex.join(fetch)} {url}/catalog; echo; {shlex.join(fetch)} {url}/ 300000"
    r = subprocess.run(
        [sys.executable, "-c", RUN, netns, str(host_server[1]), "sh", "-c", fetch_twice],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["host says /catalog", "echo " + "x" * 300000], r.stdout[:200]


def test_exit_status_of_the_command_is_returned(netns, host_server):
    r = subprocess.run([sys.executable, "-c", RUN, netns, str(host_server[1]), "sh", "-c", "exit 7"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 7, r.stderr


def test_two_sessions_forward_the_same_port_at_once(netns, host_server):
    session = [sys.executable, "-c", RUN, netns, str(host_server[1])]
    # the first one's command waits for its stdin to close; its listener is up when it runs
    first = subprocess.Popen([*session, "sh", "-c", "echo ready; cat >/dev/null"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline() == "ready\n"
        fetch = shlex.join([sys.executable, "-c", FETCH])
        url = f"http://{host_server[0]}:{host_server[1]}"
        many = "; ".join(f"{fetch} {url}/{i}; echo" for i in range(8))  # spread over both
        second = subprocess.run([*session, "sh", "-c", many], capture_output=True, text=True,
                                timeout=60)
        assert second.returncode == 0, second.stderr
        assert second.stdout.splitlines() == [f"host says /{i}" for i in range(8)]
    finally:
        first.stdin.close()
        assert first.wait(timeout=30) == 0


# A separate process, as `onestack netns exec --api` is: the forwarder owns its event loop
# and signal handlers, which pytest's thread must keep.
RUN = """
import sys
from onestack.network.linux import forward
ns, port, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
listener = forward.listen_in(ns, ("127.0.0.1", port))
sys.exit(forward.run_forwarding(["ip", "netns", "exec", ns, *argv], listener, ("127.0.0.1", port)))
"""
