"""onestack's own CA and server certificate (onestack/common/tls.py)."""

from __future__ import annotations

import pytest
from cryptography import x509

from onestack.common import tls
from onestack.config import load


def _conf(tmp_path, **env):
    return load(None, env={"ONESTACK_STATE_DIR": str(tmp_path), "ONESTACK_TLS_ENABLED": "true", **env})


def _sans(path) -> set[str]:
    san = x509.load_pem_x509_certificate(path.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName)) | {str(a) for a in san.get_values_for_type(x509.IPAddress)}


def test_own_ca_names_every_address_and_is_kept(tmp_path):
    conf = _conf(tmp_path)
    assert conf.public_url == "https://127.0.0.1:8800"
    files = tls.ensure(conf)
    assert files.generated and files.ca == tmp_path / "tls" / "ca.crt"
    assert {"localhost", "127.0.0.1", "::1"} <= _sans(files.cert)
    assert oct(files.key.stat().st_mode & 0o777) == "0o600"
    serial = tls.serial_of(files.cert.read_bytes())
    assert tls.serial_of(tls.ensure(conf).cert.read_bytes()) == serial  # nothing changed: kept
    # the catalog moves to a name the certificate lacks: a new one, from the same CA
    ca = files.ca.read_bytes()
    moved = _conf(tmp_path, ONESTACK_SERVER_PUBLIC_URL="http://cloud.example.test:8800")
    assert moved.public_url == "https://cloud.example.test:8800"
    tls.ensure(moved)
    assert "cloud.example.test" in _sans(files.cert) and files.ca.read_bytes() == ca
    assert tls.serial_of(files.cert.read_bytes()) != serial


def test_given_files_are_checked(tmp_path):
    own = tls.ensure(_conf(tmp_path / "a"))
    other = tls.ensure(_conf(tmp_path / "b"))
    with pytest.raises(tls.TlsError, match="go together"):
        tls.ensure(_conf(tmp_path, ONESTACK_TLS_CERT=str(own.cert)))
    with pytest.raises(tls.TlsError, match="does not exist"):
        tls.ensure(_conf(tmp_path, ONESTACK_TLS_CERT=str(own.cert), ONESTACK_TLS_KEY=str(tmp_path / "nope")))
    with pytest.raises(tls.TlsError, match="cannot use"):
        tls.ensure(_conf(tmp_path, ONESTACK_TLS_CERT=str(own.cert), ONESTACK_TLS_KEY=str(other.key)))
    given = tls.ensure(_conf(tmp_path, ONESTACK_TLS_CERT=str(own.cert), ONESTACK_TLS_KEY=str(own.key),
                             ONESTACK_TLS_CA=str(own.ca)))
    assert not given.generated and given.ca == own.ca


def test_plain_http_by_default(tmp_path):
    conf = load(None, env={"ONESTACK_STATE_DIR": str(tmp_path)})
    assert conf.public_url == "http://127.0.0.1:8800" and not tls.enabled(conf)
