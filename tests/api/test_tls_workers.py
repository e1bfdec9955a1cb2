"""`onestack up --tls --workers 2`: both API workers serve HTTPS, and `onestack tls rotate`
reaches each of them (the main process passes SIGHUP on) without a restart."""

from __future__ import annotations

import socket
import ssl
import urllib.parse

import pytest
from cryptography import x509

from onestack.common import tls
from tests import requirements
from tests.cloud import Cloud, Postgres, RabbitMQ, wait_for

HEADER = b"x-onestack-worker"


@pytest.fixture(scope="module")
def cloud():
    try:
        pg = Postgres().start()
    except FileNotFoundError as e:
        requirements.missing(str(e))
    try:
        rb = RabbitMQ().start()
    except FileNotFoundError as e:
        pg.stop()
        requirements.missing(str(e))
    c = Cloud("tls-workers", database_url=pg.url, extra_env={
        "ONESTACK_BUS_BACKEND": "amqp", "ONESTACK_BUS_URL": rb.url, "ONESTACK_SERVER_WORKERS": "2"})
    try:
        c.start("--tls")
        yield c
    finally:
        c.stop()
        rb.close()
        pg.stop()


def _served(port: int, cafile: str) -> tuple[str, int]:
    """(worker index, certificate serial) of one new verified connection."""
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        serial = x509.load_der_x509_certificate(s.getpeercert(binary_form=True)).serial_number
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
    worker = next((line.split(b":", 1)[1].strip().decode() for line in head.split(b"\r\n")
                   if line.lower().startswith(HEADER + b":")), "")
    return worker, serial


def _serials_by_worker(port: int, cafile: str, want: int) -> dict[str, int]:
    """Connect until both workers have answered with ``want`` (or any, want=0)."""
    seen: dict[str, int] = {}

    def both():
        worker, serial = _served(port, cafile)
        if not want or serial == want:
            seen[worker] = serial
        return {"1", "2"} <= set(seen)

    wait_for(both, 60, what="both workers presenting the certificate", step=0)
    return seen


@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_rotation_reaches_every_worker(cloud):
    rc = cloud.openrc()
    assert rc["OS_AUTH_URL"].startswith("https://")
    cloud.openstack("project", "list")
    port = urllib.parse.urlsplit(rc["OS_AUTH_URL"]).port
    before = _serials_by_worker(port, rc["OS_CACERT"], 0)
    assert len(set(before.values())) == 1
    cloud.onestack("tls", "rotate")
    after = tls.serial_of((cloud.state / "tls" / "server.crt").read_bytes())
    assert after not in before.values()
    assert set(_serials_by_worker(port, rc["OS_CACERT"], after).values()) == {after}
    cloud.openstack("network", "list")
