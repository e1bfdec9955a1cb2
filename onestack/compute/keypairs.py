"""Keypairs: generating and importing SSH keys and X.509 certificates, per user.

Fingerprints are what Nova shows: for SSH keys the MD5 of the key blob in
OpenSSH's legacy colon form (``ssh-keygen -E md5 -l`` without the ``MD5:``),
for X.509 certificates the SHA-1 of the DER certificate in the same form.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import timedelta

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from sqlalchemy.orm import Session

from onestack.common import errors
from onestack.common.timeutils import utcnow
from onestack.compute import models as m
from onestack.compute import quotas

TYPES = ("ssh", "x509")
_SAFE = set("_- 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _colon(hexdigest: str) -> str:
    return ":".join(hexdigest[i:i + 2] for i in range(0, len(hexdigest), 2))


def ssh_fingerprint(public_key: str) -> str:
    """MD5 fingerprint of an OpenSSH public key line; 400 if it is not one."""
    try:
        key = serialization.load_ssh_public_key(public_key.strip().encode())
        blob = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).split()[1]
        return _colon(hashlib.md5(base64.b64decode(blob), usedforsecurity=False).hexdigest())
    except (ValueError, IndexError, TypeError, binascii.Error, UnicodeError,
            NotImplementedError) as e:
        raise errors.BadRequest("Keypair data is invalid: failed to generate fingerprint") from e
    except Exception as e:  # cryptography's UnsupportedAlgorithm and friends
        raise errors.BadRequest("Keypair data is invalid: failed to generate fingerprint") from e


def x509_fingerprint(pem: str) -> str:
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
        return _colon(binascii.hexlify(cert.fingerprint(hashes.SHA1())).decode())
    except Exception as e:
        raise errors.BadRequest("Keypair data is invalid: failed to generate X509 fingerprint. "
                                "Error message: it is not a PEM-encoded X.509 certificate.") from e


def generate_ssh() -> tuple[str, str, str]:
    """(private key PEM, public key line, fingerprint) of a new 2048-bit RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    public += " Generated-by-onestack\n"
    return private, public, ssh_fingerprint(public)


def generate_x509(user_id: str) -> tuple[str, str, str]:
    """(private key PEM, self-signed certificate PEM, fingerprint) for ``user_id``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user_id or "onestack")])
    now = utcnow()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return private, pem, x509_fingerprint(pem)


def validate_name(name: str) -> None:
    if not isinstance(name, str) or not 0 < len(name) < 256:
        raise errors.BadRequest("Keypair data is invalid: Keypair name must be string and between 1 "
                                "and 255 characters long")
    if any(c not in _SAFE for c in name):
        raise errors.BadRequest("Keypair data is invalid: Keypair name contains unsafe characters")


def get(s: Session, user_id: str, name: str) -> m.KeyPair:
    kp = s.scalar(sa.select(m.KeyPair).where(m.KeyPair.user_id == user_id, m.KeyPair.name == name))
    if kp is None:
        raise errors.NotFound(f"Keypair {name} not found for user {user_id}")
    return kp


def list_for(s: Session, user_id: str) -> list[m.KeyPair]:
    return list(s.scalars(sa.select(m.KeyPair).where(m.KeyPair.user_id == user_id).order_by(m.KeyPair.name)))


def count(s: Session, user_id: str) -> int:
    return s.scalar(sa.select(sa.func.count()).select_from(m.KeyPair).where(m.KeyPair.user_id == user_id)) or 0


def create(s: Session, *, user_id: str, project_id: str, name: str, key_type: str = "ssh",
           public_key: str | None = None) -> tuple[m.KeyPair, str | None]:
    """Import ``public_key`` or generate a key pair. Returns the row and the private
    key (None when imported): the private key is never stored."""
    validate_name(name)
    if key_type not in TYPES:
        raise errors.BadRequest(f"Keypair data is invalid: Specified Keypair type {key_type} is invalid")
    limit = quotas.limits(s, project_id, user_id).get("key_pairs", -1)
    if limit >= 0 and count(s, user_id) + 1 > limit:
        raise errors.Forbidden("Quota exceeded, too many key pairs.")
    private = None
    if public_key is None:
        if key_type == "x509":
            private, public_key, fingerprint = generate_x509(user_id)
        else:
            private, public_key, fingerprint = generate_ssh()
    else:
        fingerprint = x509_fingerprint(public_key) if key_type == "x509" else ssh_fingerprint(public_key)
    if s.scalar(sa.select(m.KeyPair.id).where(m.KeyPair.user_id == user_id, m.KeyPair.name == name)):
        raise errors.Conflict(f"Key pair '{name}' already exists.")
    kp = m.KeyPair(user_id=user_id, name=name, type=key_type, fingerprint=fingerprint, public_key=public_key,
                   created_at=utcnow())
    s.add(kp)
    s.flush()
    return kp, private


def delete(s: Session, user_id: str, name: str) -> None:
    s.delete(get(s, user_id, name))


def get_public_key(s: Session, user_id: str, name: str) -> tuple[str, str]:
    """What a server booted with ``key_name`` gets: (public key, type), or 400 as Nova answers."""
    kp = s.scalar(sa.select(m.KeyPair).where(m.KeyPair.user_id == user_id, m.KeyPair.name == name))
    if kp is None:
        raise errors.BadRequest("Invalid key_name provided.")
    return kp.public_key, kp.type
