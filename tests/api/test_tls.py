"""`onestack up --tls`: every API over HTTPS, verified by the real clients with the CA
onestack writes into openrc (OS_CACERT) and clouds.yaml (cacert); `onestack tls rotate`
swaps the server certificate under a running cloud."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import urllib.parse

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from onestack.common import tls
from tests.cloud import Cloud
from tests.dashboard import Dash, text


@pytest.fixture(scope="module")
def tls_cloud():
    c = Cloud("tls").start("--tls")
    yield c
    c.stop()


def _catalog_urls(cloud: Cloud) -> list[str]:
    return [ep["url"] for svc in cloud.os_json("catalog", "list") for ep in svc["Endpoints"]]


def _context(cafile) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cafile))


def test_real_clients_verify_the_certificate(tls_cloud, tmp_path):
    rc = tls_cloud.openrc()
    assert rc["OS_AUTH_URL"].startswith("https://127.0.0.1:")
    assert rc["OS_CACERT"] == str(tls_cloud.state / "tls" / "ca.crt")
    urls = _catalog_urls(tls_cloud)
    assert urls and all(u.startswith("https://") for u in urls)
    for what in ("project", "image", "network", "server", "volume", "container"):
        tls_cloud.openstack(what, "list")
    # onestack's own commands find it at https (with its CA) too
    assert tls_cloud.onestack("status").returncode == 0
    assert "already running" in tls_cloud.onestack("up", "--detach").stdout
    # a boot makes compute call image, network and placement: over https, verified
    img = tmp_path / "disk.raw"
    img.write_bytes(b"\0" * 4096)
    image = tls_cloud.os_json("image", "create", "--file", str(img), "--disk-format", "raw", "tls-image")["id"]
    server = tls_cloud.os_json("server", "create", "--flavor", "m1.nano", "--image", image, "--nic", "none",
                               "--wait", "tls-server")
    assert server["status"] == "ACTIVE"
    tls_cloud.openstack("server", "delete", "--wait", "tls-server")
    tls_cloud.openstack("image", "delete", image)
    # clouds.yaml carries the same CA
    clouds = yaml.safe_load((tls_cloud.state / "clouds.yaml").read_text())["clouds"]
    assert {c["cacert"] for c in clouds.values()} == {rc["OS_CACERT"]}
    assert all(c["auth"]["auth_url"].startswith("https://") for c in clouds.values())


def test_sdk_verifies_the_certificate(tls_cloud):
    conn = tls_cloud.sdk()
    try:
        assert "admin" in {p.name for p in conn.identity.projects()}
        assert "public" in {n.name for n in conn.network.networks()}
        list(conn.image.images())
        list(conn.compute.servers())
        list(conn.block_storage.volumes())
        list(conn.object_store.containers())
    finally:
        conn.close()


def test_plain_http_and_unknown_ca_are_refused(tls_cloud):
    rc = tls_cloud.openrc()
    plain = {**rc, "OS_AUTH_URL": rc["OS_AUTH_URL"].replace("https://", "http://")}
    plain.pop("OS_CACERT")
    r = tls_cloud.openstack("project", "list", env=plain, check=False)
    assert r.returncode != 0
    no_ca = {k: v for k, v in rc.items() if k != "OS_CACERT"}
    r = tls_cloud.openstack("project", "list", env=no_ca, check=False)
    assert r.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in r.stderr
    # (raw: the refusal itself, and the header no client shows)
    base = rc["OS_AUTH_URL"].rsplit("/identity", 1)[0]
    with pytest.raises(httpx.HTTPError):
        httpx.get(base.replace("https://", "http://") + "/", timeout=10)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(base + "/", timeout=10)
    r = httpx.get(base + "/", timeout=10, verify=_context(rc["OS_CACERT"]))
    assert r.status_code == 200
    assert r.headers["strict-transport-security"] == "max-age=31536000"


def test_rotate_serves_a_new_certificate_to_an_open_cloud(tls_cloud):
    port = urllib.parse.urlsplit(tls_cloud.openrc()["OS_AUTH_URL"]).port
    before = tls.served_serial("127.0.0.1", port)
    conn = tls_cloud.sdk()  # open (its connections kept) across the rotation
    try:
        assert "admin" in {p.name for p in conn.identity.projects()}
        out = tls_cloud.onestack("tls", "rotate").stdout
        after = tls.serial_of((tls_cloud.state / "tls" / "server.crt").read_bytes())
        assert after != before and f"{after:x}" in out
        assert tls.served_serial("127.0.0.1", port) == after  # (rotate waited for it)
        assert "admin" in {p.name for p in conn.identity.projects()}
        assert "public" in {n.name for n in conn.network.networks()}
    finally:
        conn.close()
    tls_cloud.openstack("project", "list")  # new connections verify the new one with the same CA


def _own_ca(d):
    """A CA of the operator's and a server certificate from it, as files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "operator CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (d / "ca.pem").write_bytes(ca.public_bytes(pem))
    (d / "cert.pem").write_bytes(cert.public_bytes(pem))
    (d / "key.pem").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return d / "cert.pem", d / "key.pem", d / "ca.pem"


def _restart(c: Cloud, *up_args: str) -> None:
    c.onestack("down")
    c.__dict__.pop("_openrc", None)  # (Cloud keeps what `onestack openrc` printed)
    c.start(*up_args)


def test_given_certificate_and_the_catalog_following_tls_off_and_on(tmp_path):
    cert, key, ca = _own_ca(tmp_path)
    c = Cloud("tls-switch")
    try:
        c.start("--tls-cert", str(cert), "--tls-key", str(key), "--tls-ca", str(ca))
        assert c.openrc()["OS_CACERT"] == str(ca)
        assert all(u.startswith("https://") for u in _catalog_urls(c))
        port = urllib.parse.urlsplit(c.openrc()["OS_AUTH_URL"]).port
        assert tls.served_serial("127.0.0.1", port) == tls.serial_of(cert.read_bytes())
        _restart(c)  # without TLS: the catalog goes back to http
        assert "OS_CACERT" not in c.openrc()
        assert all(u.startswith("http://") for u in _catalog_urls(c))
        _restart(c, "--tls")  # and to https again, with onestack's own CA
        assert c.openrc()["OS_CACERT"] == str(c.state / "tls" / "ca.crt")
        assert all(u.startswith("https://") for u in _catalog_urls(c))
        # a key that is not the certificate's: refused before anything starts
        c.onestack("down")
        other = tmp_path / "other"
        other.mkdir()
        _, wrong_key, _ = _own_ca(other)
        r = c.onestack("up", "--detach", "--tls-cert", str(cert), "--tls-key", str(wrong_key), check=False)
        assert r.returncode != 0 and "TLS" in r.stderr
        assert c.onestack("status", check=False).returncode != 0
    finally:
        c.stop()


def test_dashboard_over_https(tls_cloud):
    """The dashboard under TLS: its session cookie is Secure, and its calls to the APIs go
    over https (verified with the cloud's CA) on the user's behalf."""
    rc = tls_cloud.openrc("demo")
    with Dash(tls_cloud) as d:
        d.http.close()  # (its plain-http client: this one speaks https, trusting the cloud's CA)
        d.http = httpx.Client(base_url=rc["OS_AUTH_URL"].rsplit("/identity", 1)[0], verify=rc["OS_CACERT"],
                              follow_redirects=False, timeout=60)
        r = d.login("demo", rc["OS_PASSWORD"])
        assert r.status_code == 303
        cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("onestack_session="))
        assert "secure" in cookie.lower() and "httponly" in cookie.lower()
        assert "Used 0 of" in text(d.get("/dashboard/project/"))  # the quota APIs answered over https
        openrc = d.get("/dashboard/project/api_access/openrc").text
        assert "export OS_AUTH_URL=https://" in openrc and f"export OS_CACERT={rc['OS_CACERT']}" in openrc
