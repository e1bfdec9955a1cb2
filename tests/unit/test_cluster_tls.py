"""The cluster's CA (onestack.cluster.tls): the chains verify with `openssl verify`, the
storage node's certificate names its address, a second run keeps what is valid and
remakes what is not, the keys are private (the client key readable by QEMU's user
alone), the compute node's qemu.conf gets libvirt's NBD client TLS settings, and a
real qemu-storage-daemon export with these certificates serves a client with the
node's certificate (run as QEMU's user) and refuses one without, or one that expects
another address."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from onestack.cluster import tls
from onestack.compute.virt.driver import QEMU_USER
from onestack.volume.exports import ExportManager

pytestmark = pytest.mark.timeout(120)

FILES = ("ca-cert.pem", "server-cert.pem", "server-key.pem", "client-cert.pem", "client-key.pem")


def _openssl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30)


def _contents(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


@pytest.fixture
def pki(tmp_path) -> Path:
    return tmp_path / "cluster" / "pki"


@pytest.mark.tools("openssl")
def test_chains_verify_and_name_the_node(pki):
    s1 = tls.node_credentials(pki, "s1", "10.250.0.13", server=True)
    c2 = tls.node_credentials(pki, "c2", "10.250.0.12", client=True)
    assert sorted(p.name for p in s1.iterdir()) == ["ca-cert.pem", "server-cert.pem", "server-key.pem"]
    assert sorted(p.name for p in c2.iterdir()) == ["ca-cert.pem", "client-cert.pem", "client-key.pem"]
    ca = pki / "ca" / "ca-cert.pem"
    assert (s1 / "ca-cert.pem").read_bytes() == (c2 / "ca-cert.pem").read_bytes() == ca.read_bytes()
    for cert, purpose in ((s1 / "server-cert.pem", "sslserver"), (c2 / "client-cert.pem", "sslclient")):
        r = _openssl("verify", "-CAfile", str(ca), "-purpose", purpose, str(cert))
        assert r.returncode == 0 and r.stdout.strip().endswith(": OK"), r.stdout + r.stderr
    # a server certificate is no client's, and the other way round
    assert _openssl("verify", "-CAfile", str(ca), "-purpose", "sslclient",
                    str(s1 / "server-cert.pem")).returncode != 0
    assert _openssl("verify", "-CAfile", str(ca), "-purpose", "sslserver",
                    str(c2 / "client-cert.pem")).returncode != 0
    # the storage node's address is its certificate's (QEMU's client checks it)
    san = _openssl("x509", "-noout", "-ext", "subjectAltName", "-in", str(s1 / "server-cert.pem")).stdout
    assert "IP Address:10.250.0.13" in san and "DNS:s1" in san, san
    r = _openssl("x509", "-noout", "-checkip", "10.250.0.13", "-in", str(s1 / "server-cert.pem"))
    assert "does match" in r.stdout, r.stdout
    # each key goes with its certificate
    for d, role in ((s1, "server"), (c2, "client")):
        pub_of_key = _openssl("pkey", "-in", str(d / f"{role}-key.pem"), "-pubout").stdout
        pub_of_cert = _openssl("x509", "-noout", "-pubkey", "-in", str(d / f"{role}-cert.pem")).stdout
        assert pub_of_key and pub_of_key == pub_of_cert


def test_a_second_run_keeps_what_is_valid(pki):
    s1 = tls.node_credentials(pki, "s1", "10.250.0.13", server=True)
    c1 = tls.node_credentials(pki, "c1", "10.250.0.11", client=True)
    ca, s1_files, c1_files = _contents(pki / "ca"), _contents(s1), _contents(c1)
    assert tls.node_credentials(pki, "s1", "10.250.0.13", server=True) == s1
    tls.node_credentials(pki, "c1", "10.250.0.11", client=True)
    assert (_contents(pki / "ca"), _contents(s1), _contents(c1)) == (ca, s1_files, c1_files)
    # another address: a new server certificate (and key) of the same CA
    tls.node_credentials(pki, "s1", "10.250.1.13", server=True)
    assert _contents(pki / "ca") == ca
    assert _contents(s1)["server-cert.pem"] != s1_files["server-cert.pem"]
    assert _contents(s1)["ca-cert.pem"] == s1_files["ca-cert.pem"]
    # a node with both roles gets both certificates; the first stays
    tls.node_credentials(pki, "c1", "10.250.0.11", server=True, client=True)
    assert _contents(c1)["client-cert.pem"] == c1_files["client-cert.pem"]
    assert {"server-cert.pem", "server-key.pem"} <= set(_contents(c1))


def test_a_new_ca_remakes_the_nodes_certificates(pki):
    s1 = tls.node_credentials(pki, "s1", "10.250.0.13", server=True)
    old = _contents(s1)
    (pki / "ca" / "ca-key.pem").unlink()  # (a CA whose key is lost is made again)
    tls.node_credentials(pki, "s1", "10.250.0.13", server=True)
    new = _contents(s1)
    assert new["ca-cert.pem"] != old["ca-cert.pem"] and new["server-cert.pem"] != old["server-cert.pem"]
    r = _openssl("verify", "-CAfile", str(pki / "ca" / "ca-cert.pem"), str(s1 / "server-cert.pem"))
    assert r.returncode == 0, r.stdout + r.stderr


def test_keys_are_private(pki):
    s1 = tls.node_credentials(pki, "s1", "10.250.0.13", server=True)
    c1 = tls.node_credentials(pki, "c1", "10.250.0.11", client=True)
    for key in (pki / "ca" / "ca-key.pem", s1 / "server-key.pem", c1 / "client-key.pem"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    for d in (pki, c1):  # (QEMU's user may pass down to c1: an ACL, shown in the group bits)
        assert stat.S_IMODE(d.stat().st_mode) & 0o067 in (0, 0o010), d
    for d in (pki / "ca", s1):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    assert stat.S_IMODE((c1 / "client-cert.pem").stat().st_mode) == 0o644
    assert (pki / "ca" / "ca-key.pem").stat().st_uid == (s1 / "server-key.pem").stat().st_uid == os.getuid()
    try:
        qemu_uid = pwd.getpwnam(QEMU_USER).pw_uid
    except KeyError:
        pytest.skip(f"no user {QEMU_USER} here")
    assert (c1 / "client-key.pem").stat().st_uid == qemu_uid


@pytest.mark.root
@pytest.mark.tools("runuser")
def test_qemu_user_reads_its_files_and_no_other_key(pki):
    try:
        pwd.getpwnam(QEMU_USER)
    except KeyError:
        pytest.skip(f"no user {QEMU_USER} here")
    tls.node_credentials(pki, "s1", "10.250.0.13", server=True)
    c1 = tls.node_credentials(pki, "c1", "10.250.0.11", client=True)

    def can_read(path: Path) -> bool:
        return subprocess.run(["runuser", "-u", QEMU_USER, "--", "head", "-c", "1", str(path)],
                              capture_output=True, timeout=30).returncode == 0
    assert all(can_read(c1 / f) for f in ("ca-cert.pem", "client-cert.pem", "client-key.pem"))
    assert not can_read(pki / "ca" / "ca-key.pem")
    assert not can_read(pki / "s1" / "server-key.pem")


def test_qemu_conf_gets_nbd_client_tls(tmp_path):
    conf = tmp_path / "qemu.conf"
    conf.write_text('# a comment\n#nbd_tls = 1\nuser = "libvirt-qemu"\nnbd_tls = 0\n')
    conf.chmod(0o600)
    certs = tmp_path / "pki" / "c1"
    tls.nbd_client_config(conf, certs)
    first = conf.read_text()
    tls.nbd_client_config(conf, certs)  # a second run changes nothing
    assert conf.read_text() == first
    lines = first.splitlines()
    assert lines[:3] == ["# a comment", "#nbd_tls = 1", 'user = "libvirt-qemu"']
    active = [ln for ln in lines if ln and not ln.startswith("#")]
    assert active == ['user = "libvirt-qemu"', "nbd_tls = 1", f'nbd_tls_x509_cert_dir = "{certs}"']
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600


# -- with QEMU


def _client(pki_dir: Path, e, *, as_qemu: bool = False) -> subprocess.CompletedProcess:
    argv = ["qemu-img", "info", "--object", f"tls-creds-x509,id=tls0,dir={pki_dir},endpoint=client",
            "--image-opts", f"driver=nbd,host={e.host},port={e.port},export={e.name},tls-creds=tls0"]
    if as_qemu:
        argv = ["runuser", "-u", QEMU_USER, "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


@pytest.mark.root
@pytest.mark.tools("qemu-storage-daemon", "qemu-img", "runuser")
def test_an_export_with_these_certificates(pki, tmp_path):
    """The storage node's export (its address: 127.0.0.1 here) serves a compute node's QEMU
    with its client certificate, and no one else."""
    volume = tmp_path / "volume"
    subprocess.run(["qemu-img", "create", "-f", "raw", str(volume), "4M"], check=True, capture_output=True)
    s1 = tls.node_credentials(pki, "s1", "127.0.0.1", server=True)
    c1 = tls.node_credentials(pki, "c1", "10.250.0.11", client=True)
    m = ExportManager(tmp_path / "exports", "127.0.0.1", tls_dir=s1)
    try:
        e = m.export("vol-1", volume, "raw", {"host": "c1"})
        ok = _client(c1, e, as_qemu=True)
        assert ok.returncode == 0 and "virtual size: 4 MiB" in ok.stdout, ok.stdout + ok.stderr
        plain = subprocess.run(["qemu-img", "info", f"nbd://{e.host}:{e.port}/{e.name}"], capture_output=True,
                               text=True, timeout=60)
        assert plain.returncode != 0  # no TLS: refused
        nocert = tmp_path / "nocert"  # the CA, but no client certificate
        nocert.mkdir()
        shutil.copy(c1 / "ca-cert.pem", nocert / "ca-cert.pem")
        assert _client(nocert, e).returncode != 0
        other = tls.node_credentials(tmp_path / "other-pki", "c1", "10.250.0.11", client=True)
        assert _client(other, e).returncode != 0  # another CA's client
    finally:
        m.stop_all()
    # a server certificate for another address: the client will not talk to it
    s2 = tls.node_credentials(pki, "s2", "127.0.0.2", server=True)
    m = ExportManager(tmp_path / "exports2", "127.0.0.1", tls_dir=s2)
    try:
        e = m.export("vol-1", volume, "raw", {"host": "c1"})
        r = _client(c1, e)
        assert r.returncode != 0 and "certificate" in r.stderr.lower(), r.stderr
    finally:
        m.stop_all()
