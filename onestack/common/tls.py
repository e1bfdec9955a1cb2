"""HTTPS for the APIs (``onestack up --tls``, the ``[tls]`` config section).

Either the operator gives a certificate and key (``tls.cert``, ``tls.key``, and the CA
that signed them, ``tls.ca``), or onestack makes its own: a local CA and a server
certificate signed by it, under ``<state>/tls/``. The server certificate names every
address clients use: the catalog's host, the listening address, 127.0.0.1, ::1 and
localhost.

Clients trust the CA through one bundle, ``<state>/tls/trust.pem`` (the public CAs plus
ours): openrc and clouds.yaml name it (``OS_CACERT``, ``cacert``) and the cloud's own
processes set ``SSL_CERT_FILE``/``REQUESTS_CA_BUNDLE`` to it, which every httpx,
requests and ``ssl.create_default_context`` client reads, so services calling each
other verify the certificate without each call site being told.

``onestack tls rotate`` issues a new server certificate (same CA) and sends the server
SIGHUP; the server loads the new pair into its ``ssl.SSLContext``, which new
connections use at once: no restart. A signal, not a file watch: it is immediate, needs
no polling thread, and the command knows when to look for the new certificate.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import os
import signal
import socket
import ssl
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

CA_DAYS = 3650
SERVER_DAYS = 397  # what browsers accept for a server certificate
RENEW_DAYS = 30  # `up` issues a new server certificate this close to its expiry


class TlsError(Exception):
    """A TLS set-up problem, phrased for a one-line CLI error."""


@dataclass(frozen=True)
class Files:
    cert: Path
    key: Path
    ca: Path | None  # the CA clients verify with (None: a publicly trusted certificate)
    generated: bool  # onestack's own CA signed it (so `tls rotate` can issue a new one)


def enabled(conf) -> bool:
    return bool(conf.tls.enabled or conf.tls.cert)


def tls_dir(conf) -> Path:
    return conf.state_dir / "tls"


def trust_file(conf) -> Path:
    return tls_dir(conf) / "trust.pem"


def _serving_file(conf) -> Path:
    return tls_dir(conf) / "serving.json"


def names(conf) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) the server certificate must carry."""
    dns, ips = {"localhost"}, {"127.0.0.1", "::1"}
    for host in (urllib.parse.urlsplit(conf.public_url).hostname, conf.server.host):
        if not host or host in ("0.0.0.0", "::"):
            continue
        try:
            ips.add(str(ipaddress.ip_address(host)))
        except ValueError:
            dns.add(host.lower())
    if conf.server.host in ("0.0.0.0", "::", ""):  # every address: the machine's name too
        dns.add(socket.gethostname().lower())
    return sorted(dns), sorted(ips)


def _write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Whole or not at all: the running server may read it at any time."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    os.replace(tmp, path)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _make_ca(d: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"onestack local CA ({socket.gethostname()})")])
    now = _now()
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(d / "ca.key", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    _write(d / "ca.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644)


def issue(conf) -> int:
    """A new server certificate and key signed by onestack's CA (made first if missing),
    written over the old ones; its serial number."""
    d = tls_dir(conf)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not (d / "ca.key").exists():
        _make_ca(d)
    ca_key = serialization.load_pem_private_key((d / "ca.key").read_bytes(), None)
    ca = x509.load_pem_x509_certificate((d / "ca.crt").read_bytes())
    dns, ips = names(conf)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    serial = x509.random_serial_number()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns[0] if not ips else ips[0])]))
        .issuer_name(ca.subject).public_key(key.public_key()).serial_number(serial)
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(n) for n in dns] + [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    # key first: a reload between the two writes fails (mismatch) and keeps the old pair
    _write(d / "server.key", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    _write(d / "server.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return serial


def _needs_new(conf, cert_path: Path) -> bool:
    """No certificate yet, one that misses a name the catalog now uses, or near its end."""
    if not cert_path.exists():
        return True
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    have = set(san.get_values_for_type(x509.DNSName)) | {str(a) for a in san.get_values_for_type(x509.IPAddress)}
    dns, ips = names(conf)
    return not set(dns + ips) <= have or cert.not_valid_after_utc - _now() < datetime.timedelta(days=RENEW_DAYS)


def ensure(conf) -> Files:
    """The certificate, key and CA to serve with: the configured ones (checked), else
    onestack's own, made or renewed as needed. TlsError says what is wrong."""
    if conf.tls.cert or conf.tls.key:
        if not (conf.tls.cert and conf.tls.key):
            raise TlsError("tls.cert and tls.key go together (--tls-cert and --tls-key)")
        files = Files(Path(conf.tls.cert), Path(conf.tls.key), Path(conf.tls.ca) if conf.tls.ca else None, False)
        for what, p in (("certificate", files.cert), ("key", files.key), ("CA", files.ca)):
            if p is not None and not p.is_file():
                raise TlsError(f"TLS {what} file {p} does not exist")
        server_context(files)  # a key that does not match its certificate fails here, not at the first client
        return files
    if conf.tls.ca:
        raise TlsError("tls.ca without tls.cert: onestack's own certificates use its own CA")
    d = tls_dir(conf)
    if _needs_new(conf, d / "server.crt"):
        issue(conf)
    return Files(d / "server.crt", d / "server.key", d / "ca.crt", True)


def server_context(files: Files) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(files.cert, files.key)
    except (ssl.SSLError, OSError) as e:
        raise TlsError(f"cannot use TLS certificate {files.cert} with key {files.key}: {e}") from None
    return ctx


def reload(ctx: ssl.SSLContext, files: Files) -> bool:
    """Load the pair again into the serving context (new connections use it); a pair that
    does not load is logged and the old one kept."""
    try:
        ctx.load_cert_chain(files.cert, files.key)
    except (ssl.SSLError, OSError) as e:
        log.error("TLS certificate not reloaded (the old one stays): %s", e)
        return False
    log.info("TLS certificate reloaded from %s", files.cert)
    return True


def trust(conf, files: Files) -> Path:
    """Write the client bundle (public CAs + the cloud's CA) and make this process and
    its children verify with it. Its path."""
    path = trust_file(conf)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    bundle = Path(certifi.where()).read_bytes()
    if files.ca is not None:
        bundle += b"\n" + files.ca.read_bytes()
    _write(path, bundle, 0o644)
    os.environ["SSL_CERT_FILE"] = os.environ["REQUESTS_CA_BUNDLE"] = str(path)
    return path


def record(conf, files: Files | None) -> None:
    """Note in the state dir how the cloud serves (for `onestack openrc`, `status`, `tls
    rotate` run without the flags `up` had); None: plain HTTP."""
    if files is None:
        _serving_file(conf).unlink(missing_ok=True)
        return
    tls_dir(conf).mkdir(parents=True, exist_ok=True, mode=0o700)
    _write(_serving_file(conf), json.dumps({"cert": str(files.cert), "key": str(files.key),
                                            "ca": str(files.ca) if files.ca else "",
                                            "generated": files.generated}).encode())


def serving(conf) -> Files | None:
    """What the last `up` serves with (None: plain HTTP)."""
    try:
        d = json.loads(_serving_file(conf).read_text())
    except (OSError, ValueError):
        return None
    return Files(Path(d["cert"]), Path(d["key"]), Path(d["ca"]) if d["ca"] else None, bool(d["generated"]))


def adopt(conf) -> None:
    """Make ``conf`` describe the cloud as its last `up` served it (https or not), when
    the configuration itself does not ask for TLS."""
    files = serving(conf)
    if files is not None and not enabled(conf):
        conf.tls.enabled = True
        conf.tls.cert, conf.tls.key, conf.tls.ca = str(files.cert), str(files.key), str(files.ca or "")


def ca_file(conf) -> Path | None:
    """The CA clients verify the server certificate with: the configured one, else
    onestack's own (None: a given certificate without a CA, publicly trusted)."""
    if conf.tls.cert:
        return Path(conf.tls.ca) if conf.tls.ca else None
    return tls_dir(conf) / "ca.crt"


def client_context(conf) -> ssl.SSLContext:
    """A client context that trusts the cloud's CA (and the public ones)."""
    ctx = ssl.create_default_context(cafile=certifi.where())
    ca = ca_file(conf)
    if ca is not None and ca.exists():
        ctx.load_verify_locations(cafile=str(ca))
    return ctx


def serial_of(pem: bytes) -> int:
    return x509.load_pem_x509_certificate(pem).serial_number


def served_serial(host: str, port: int, timeout: float = 5) -> int:
    """The serial number of the certificate a server presents now (not verified)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=timeout) as raw, ctx.wrap_socket(raw) as s:
        der = s.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def serve_options(files: Files) -> dict:
    """uvicorn options serving ``files`` from one SSLContext that SIGHUP reloads (the
    handler runs in the main thread, between the event loop's steps)."""
    ctx = server_context(files)
    signal.signal(signal.SIGHUP, lambda signum, frame: reload(ctx, files))
    return {"ssl_context_factory": lambda config, default: ctx}
