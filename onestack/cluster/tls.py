"""The cluster's own certificate authority, for NBD over TLS between its nodes.

A storage node's volume exports (qemu-storage-daemon) require TLS with a client
certificate of this CA (``volume.export_tls_dir``); a compute node's QEMU presents
its node's client certificate (libvirt's ``nbd_tls_x509_cert_dir`` in the node's
qemu.conf) and checks the storage node's certificate against its address. Under
``<cluster dir>/pki``, with the file names QEMU looks for::

    ca/ca-cert.pem, ca/ca-key.pem          the CA (its key: root only)
    <node>/ca-cert.pem                     a copy of the CA certificate
    <node>/server-cert.pem, server-key.pem a storage node's (SAN: its management address)
    <node>/client-cert.pem, client-key.pem a compute node's (its key: QEMU's user only)

Made with ``cryptography`` (already a dependency; keys are written 0600 from the
start, no temporary files). Idempotent: a certificate still valid, issued by the
current CA for the same name and address, is kept.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import pwd
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from onestack.common import fsacl
from onestack.compute.virt.driver import QEMU_USER

CA_NAME = "onestack cluster CA"
CA_DAYS = 3650
CERT_DAYS = 825
RENEW_BEFORE = datetime.timedelta(days=30)  # a certificate this close to its end is made again
QEMU_CONF_KEYS = ("nbd_tls", "nbd_tls_x509_cert_dir")
MARK = "# onestack cluster: NBD over TLS"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _own(path: Path, owner: str | None) -> None:
    """Give ``path`` to user ``owner`` (when there is such a user)."""
    if owner is None:
        return
    try:
        uid = pwd.getpwnam(owner).pw_uid
    except KeyError:
        return
    if path.stat().st_uid != uid:
        os.chown(path, uid, -1)


def _write(path: Path, data: bytes, mode: int, owner: str | None = None) -> None:
    """Write ``data`` with ``mode`` from the first byte, owned by ``owner`` before it takes
    its name (replaced atomically)."""
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    _own(tmp, owner)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _fresh(cert: x509.Certificate) -> bool:
    return cert.not_valid_after_utc - RENEW_BEFORE > _now()


def _load_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def ensure_ca(pki: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The cluster's CA under ``pki/ca``: the one there, or a new one."""
    pki.mkdir(parents=True, exist_ok=True, mode=0o700)  # (no chmod later: it would mask the ACLs)
    d = pki / "ca"
    d.mkdir(exist_ok=True, mode=0o700)
    cert = _load_cert(d / "ca-cert.pem")
    try:
        key = serialization.load_pem_private_key((d / "ca-key.pem").read_bytes(), None)
    except (OSError, ValueError):
        key = None
    if cert is not None and isinstance(key, ec.EllipticCurvePrivateKey) and _fresh(cert) \
            and cert.public_key() == key.public_key():
        return cert, key
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(_name(CA_NAME)).issuer_name(_name(CA_NAME))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         key_cert_sign=True, crl_sign=True, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write(d / "ca-key.pem", _key_pem(key), 0o600)
    _write(d / "ca-cert.pem", _cert_pem(cert), 0o644)
    return cert, key


def _sans(name: str, address: str) -> list[x509.GeneralName]:
    return [x509.IPAddress(ipaddress.ip_address(address)), x509.DNSName(name)]


def _valid(cert: x509.Certificate | None, ca: x509.Certificate, sans: list[x509.GeneralName]) -> bool:
    """Whether ``cert`` can be kept: issued by ``ca``, for these names, not near its end."""
    if cert is None or not _fresh(cert):
        return False
    try:
        cert.verify_directly_issued_by(ca)
        have = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (InvalidSignature, ValueError, TypeError, x509.ExtensionNotFound):
        return False
    return set(have) == set(sans)


def _issue(d: Path, role: str, name: str, address: str, ca: x509.Certificate, ca_key,
           key_owner: str | None) -> None:
    """``<role>-cert.pem`` and ``<role>-key.pem`` (role: server | client) in ``d``."""
    sans = _sans(name, address)
    if _valid(_load_cert(d / f"{role}-cert.pem"), ca, sans) and (d / f"{role}-key.pem").exists():
        _own(d / f"{role}-key.pem", key_owner)  # (the QEMU user may be new since)
        return
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if role == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            # QEMU refuses a non-CA certificate whose critical key usage lacks either
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=True, data_encipherment=False, key_agreement=False,
                                         key_cert_sign=False, crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write(d / f"{role}-key.pem", _key_pem(key), 0o600, key_owner)
    _write(d / f"{role}-cert.pem", _cert_pem(cert), 0o644)


def node_credentials(pki: Path, name: str, address: str, *, server: bool = False, client: bool = False,
                     qemu_user: str = QEMU_USER) -> Path:
    """The TLS directory of node ``name`` (management ``address``): the CA certificate, a
    server certificate (a storage node's exports) and/or a client certificate (a compute
    node's QEMU: its key belongs to ``qemu_user``, who may pass down to the directory)."""
    ca, ca_key = ensure_ca(pki)
    d = pki / name
    d.mkdir(exist_ok=True, mode=0o700)
    copy = d / "ca-cert.pem"
    if not copy.exists() or copy.read_bytes() != _cert_pem(ca):
        _write(copy, _cert_pem(ca), 0o644)
    if server:
        _issue(d, "server", name, address, ca, ca_key, None)
    if client:
        _issue(d, "client", name, address, ca, ca_key, qemu_user)
        fsacl.let_pass(d, qemu_user)
    return d


def nbd_client_config(qemu_conf: Path, cert_dir: Path) -> None:
    """Set libvirt's NBD client TLS in a node's qemu.conf: every NBD disk over TLS
    (``nbd_tls``; onestack's disks say ``tls='yes'`` anyway), with the node's client
    certificate. libvirtd reads qemu.conf when it starts: call this before."""
    lines = qemu_conf.read_text().splitlines() if qemu_conf.exists() else []
    keep = [ln for ln in lines if ln.strip() != MARK and ln.split("=")[0].strip() not in QEMU_CONF_KEYS]
    keep += [MARK, "nbd_tls = 1", f'nbd_tls_x509_cert_dir = "{cert_dir}"']
    mode = qemu_conf.stat().st_mode & 0o777 if qemu_conf.exists() else 0o600
    _write(qemu_conf, ("\n".join(keep) + "\n").encode(), mode)
