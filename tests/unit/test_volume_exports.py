"""NBD exports of volumes (onestack.volume.exports) with a real qemu-storage-daemon on
127.0.0.1: data written through the export lands in the file, a wrong export name is
refused, stopping leaves no process, a new manager re-adopts (or restarts) the daemons
of its ledger, purge stops only its own daemons, and TLS with client certificates
keeps plain clients out. Also the compute side: the network <disk> XML, the fake
driver, and the volume agent's connection info."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from onestack.common import errors
from onestack.compute.agent import volume_source
from onestack.compute.virt import FakeDriver, ImageRef, InstanceSpec, VirtError, domain
from onestack.compute.virt.domain import Disk, NbdSource
from onestack.volume import exports as ex
from onestack.volume.exports import ExportError, ExportManager, use_nbd

needs_qsd = pytest.mark.tools("qemu-storage-daemon", "qemu-io", "qemu-img")
pytestmark = pytest.mark.timeout(120)

MiB = 1024 * 1024
VOL = "6f1ab1b4-5b1c-4b5e-9d56-0d4a1f1b1c01"
CONNECTOR = {"host": "compute-2", "mountpoint": "/dev/vdb", "mode": "rw"}


def _img(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["qemu-img", *args], capture_output=True, text=True, timeout=60, check=check)


def _io(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["qemu-io", *args], capture_output=True, text=True, timeout=60, check=check)


def _url(e) -> str:
    return f"nbd://{e.host}:{e.port}/{e.name}"


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


@pytest.fixture
def volume(tmp_path) -> Path:
    path = tmp_path / "volumes" / f"volume-{VOL}"
    path.parent.mkdir()
    _img("create", "-f", "raw", str(path), "16M")
    return path


@pytest.fixture
def manager(tmp_path):
    made = []

    def make() -> ExportManager:
        m = ExportManager(tmp_path / "volumes" / "exports")
        made.append(m)
        return m
    yield make
    for m in made:  # nothing outlives a test
        m.stop_all()


def test_use_nbd():
    assert use_nbd("nbd", "node1@filedriver-1", {"host": "node1"})
    assert not use_nbd("file", "node1@filedriver-1", {"host": "node2"})
    assert not use_nbd("auto", "node1@filedriver-1", {"host": "node1"})
    assert use_nbd("auto", "node1@filedriver-1", {"host": "node2"})
    assert not use_nbd("auto", "node1@filedriver-1", None)
    assert ex.attachment_key(VOL, CONNECTOR) == ex.attachment_key(VOL, dict(reversed(CONNECTOR.items())))
    assert ex.attachment_key(VOL, CONNECTOR) != ex.attachment_key(VOL, {**CONNECTOR, "host": "x"})


@needs_qsd
def test_export_write_lands_in_file(volume, manager):
    m = manager()
    e = m.export(VOL, volume, "raw", CONNECTOR)
    assert len(e.name) == 64 and int(e.name, 16) >= 0  # 256 random bits
    assert e.name not in repr(e)
    data = e.connection_data()
    assert data == {"host": "127.0.0.1", "port": e.port, "name": e.name, "format": "raw", "volume_id": VOL,
                    "access_mode": "rw"}
    info = json.loads(_img("info", "--output=json", _url(e)).stdout)
    assert info["virtual-size"] == 16 * MiB
    _io("-f", "raw", _url(e), "-c", "write -P 0xab 0 1M")
    with open(volume, "rb") as f:
        assert f.read(MiB) == b"\xab" * MiB
    # the ledger names it (0600: it holds the export name)
    ledger = m.dir / ex.LEDGER
    assert oct(ledger.stat().st_mode & 0o777) == "0o600"
    assert [x["pid"] for x in json.loads(ledger.read_text())["exports"]] == [e.pid]
    # the same attachment again: the same export
    assert m.export(VOL, volume, "raw", CONNECTOR).pid == e.pid
    # its own session, not onestack's
    assert os.getsid(e.pid) != os.getsid(0)


@needs_qsd
def test_wrong_name_refused_and_stop_leaves_nothing(volume, manager):
    m = manager()
    e = m.export(VOL, volume, "raw", CONNECTOR)
    wrong = _img("info", f"nbd://{e.host}:{e.port}/{'0' * 64}", check=False)
    assert wrong.returncode != 0 and "not" in wrong.stderr.lower()
    assert m.unexport(VOL, CONNECTOR)
    assert _gone(e.pid)
    assert not m.pidfile(e.key).exists()
    assert m.exports() == []
    assert json.loads((m.dir / ex.LEDGER).read_text())["exports"] == []
    assert _img("info", _url(e), check=False).returncode != 0
    assert not m.unexport(VOL, CONNECTOR)  # twice: nothing to do


@needs_qsd
def test_qcow2_presented_raw(tmp_path, manager):
    path = tmp_path / "volumes" / f"volume-{VOL}"
    path.parent.mkdir()
    _img("create", "-f", "qcow2", str(path), "8M")
    m = manager()
    e = m.export(VOL, path, "qcow2", CONNECTOR)
    info = json.loads(_img("info", "--output=json", _url(e)).stdout)
    assert info["format"] == "raw" and info["virtual-size"] == 8 * MiB
    _io("-f", "raw", _url(e), "-c", "write -P 0x5a 1M 64k")
    m.unexport(VOL, CONNECTOR)
    _io("-f", "qcow2", str(path), "-c", "read -P 0x5a 1M 64k")


@needs_qsd
def test_readonly_export(volume, manager):
    m = manager()
    e = m.export(VOL, volume, "raw", {**CONNECTOR, "mode": "ro"}, readonly=True)
    assert e.connection_data()["access_mode"] == "ro"
    _io("-r", "-f", "raw", _url(e), "-c", "read 0 64k")
    w = _io("-f", "raw", _url(e), "-c", "write -P 1 0 64k", check=False)
    assert w.returncode != 0 or "error" in (w.stdout + w.stderr).lower()
    with open(volume, "rb") as f:
        assert f.read(65536) == b"\0" * 65536


@needs_qsd
def test_readoption_and_restart(volume, manager):
    m1 = manager()
    e = m1.export(VOL, volume, "raw", CONNECTOR)
    # onestack restarts: a new manager adopts the live daemon as it is
    m2 = manager()
    [adopted] = m2.exports()
    assert (adopted.pid, adopted.port, adopted.name) == (e.pid, e.port, e.name)
    assert m2.alive(adopted)
    # the daemon died (host reboot, OOM): the next start serves the same port and name again
    os.kill(e.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not _gone(e.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    m3 = manager()
    [again] = m3.exports()
    assert (again.port, again.name) == (e.port, e.name) and again.pid != e.pid
    _io("-f", "raw", _url(again), "-c", "write -P 0xcd 0 64k")
    with open(volume, "rb") as f:
        assert f.read(65536) == b"\xcd" * 65536
    assert m3.unexport(VOL, CONNECTOR) and _gone(again.pid)
    # a volume whose file is gone is forgotten, not started
    e2 = m3.export(VOL, volume, "raw", CONNECTOR)
    os.kill(e2.pid, signal.SIGKILL)
    while not _gone(e2.pid):
        time.sleep(0.05)
    volume.unlink()
    assert manager().exports() == []


@needs_qsd
def test_shared_export_counts_users_and_delete_stops(volume, manager):
    m = manager()
    e = m.export(VOL, volume, "raw", CONNECTOR, shared=True)
    assert m.export(VOL, volume, "raw", CONNECTOR, shared=True).users == 2
    other = m.export(VOL, volume, "raw", {**CONNECTOR, "host": "compute-3"}, shared=True)
    assert other.pid != e.pid  # a second daemon on the same (multiattach) file
    assert m.unexport(VOL, CONNECTOR) and not _gone(e.pid)  # one user left
    assert m.stop_volume(VOL) == 2  # the volume is deleted: every export goes
    assert _gone(e.pid) and _gone(other.pid) and m.exports() == []


@needs_qsd
def test_errors(volume, manager, tmp_path):
    m = manager()
    with pytest.raises(ExportError, match="missing"):
        m.export(VOL, tmp_path / "nothing", "raw", CONNECTOR)
    with pytest.raises(ExportError, match="format"):
        m.export(VOL, volume, "vmdk", CONNECTOR)
    # a non-multiattach volume has one export: a new connector's replaces a stale one
    old = m.export(VOL, volume, "raw", CONNECTOR)
    new = m.export(VOL, volume, "raw", {**CONNECTOR, "host": "compute-3"})
    assert _gone(old.pid) and [x.pid for x in m.exports()] == [new.pid]
    m.stop_all()
    # a qcow2 multiattach volume is served by one daemon only (two would corrupt its metadata)
    qcow = tmp_path / "volumes" / "volume-q"
    _img("create", "-f", "qcow2", str(qcow), "8M")
    m.export("q", qcow, "qcow2", CONNECTOR, shared=True)
    with pytest.raises(ExportError, match="corrupt"):
        m.export("q", qcow, "qcow2", {**CONNECTOR, "host": "compute-3"}, shared=True)
    # a daemon that cannot start says why, without the export name
    with pytest.raises(ExportError, match="qcow2") as err:
        m.export(VOL, volume, "qcow2", {**CONNECTOR, "host": "compute-4"})  # a raw file said to be qcow2
    assert not any(x in str(err.value) for x in ("name", "{"))
    assert [x.volume_id for x in m.exports()] == ["q"]


@needs_qsd
def test_purge_stops_only_its_own(volume, manager, tmp_path):
    m = manager()
    e = m.export(VOL, volume, "raw", CONNECTOR)
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        # a ledger entry naming someone else's process (a reused pid) is not killed
        ledger = json.loads((m.dir / ex.LEDGER).read_text())
        ledger["exports"].append({**ledger["exports"][0], "key": "f" * 32, "pid": stranger.pid})
        (m.dir / ex.LEDGER).write_text(json.dumps(ledger))
        assert ex.purge(m.dir) == 1
        assert _gone(e.pid)
        assert stranger.poll() is None
        assert not (m.dir / ex.LEDGER).exists()
    finally:
        stranger.kill()
        stranger.wait()


def _certs(d: Path) -> tuple[Path, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate: (server dir, client dir)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(subject, key, issuer, issuer_key, ca=False, usage=None, san=None):
        b = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), True)
        else:
            b = b.add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), True)
            b = b.add_extension(x509.ExtendedKeyUsage([usage]), False)
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), False)
        return b.sign(issuer_key, hashes.SHA256())

    def pem(obj) -> bytes:
        if hasattr(obj, "private_bytes"):
            return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
        return obj.public_bytes(serialization.Encoding.PEM)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert("onestack test CA", ca_key, "onestack test CA", ca_key, ca=True)
    skey, ckey = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    server = cert("127.0.0.1", skey, "onestack test CA", ca_key, usage=ExtendedKeyUsageOID.SERVER_AUTH,
                  san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
    client = cert("compute-2", ckey, "onestack test CA", ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    sdir, cdir = d / "server", d / "client"
    for sub, files in ((sdir, {"server-cert.pem": server, "server-key.pem": skey}),
                       (cdir, {"client-cert.pem": client, "client-key.pem": ckey})):
        sub.mkdir(parents=True)
        (sub / "ca-cert.pem").write_bytes(pem(ca))
        for fname, obj in files.items():
            (sub / fname).write_bytes(pem(obj))
    return sdir, cdir


@needs_qsd
def test_tls_with_client_certificates(volume, tmp_path):
    sdir, cdir = _certs(tmp_path / "pki")
    m = ExportManager(tmp_path / "volumes" / "exports", tls_dir=sdir)
    try:
        e = m.export(VOL, volume, "raw", CONNECTOR)
        assert e.connection_data()["tls"] is True
        plain = _img("info", _url(e), check=False)
        assert plain.returncode != 0  # the server insists on TLS
        opts = f"driver=nbd,host={e.host},port={e.port},export={e.name},tls-creds=tls0"
        obj = f"tls-creds-x509,id=tls0,dir={cdir},endpoint=client"
        _io("--object", obj, "--image-opts", opts, "-c", "write -P 0x77 0 64k")
        with open(volume, "rb") as f:
            assert f.read(65536) == b"\x77" * 65536
        # a client with no certificate of the CA's is refused (verify-peer)
        nocert = tmp_path / "pki" / "nocert"
        nocert.mkdir()
        shutil.copy(cdir / "ca-cert.pem", nocert / "ca-cert.pem")
        bad = _img("info", "--object", f"tls-creds-x509,id=tls0,dir={nocert},endpoint=client",
                   "--image-opts", opts, check=False)
        assert bad.returncode != 0
    finally:
        m.stop_all()


# -- the compute side


def test_network_disk_xml_and_targets():
    src = NbdSource("127.0.0.1", 10809, "s" * 64)
    el = ET.fromstring(domain.disk_xml(Disk(src, "vdb", format="raw", serial=VOL)))
    assert el.get("type") == "network" and el.get("device") == "disk"
    assert el.find("driver").get("type") == "raw"
    source = el.find("source")
    assert (source.get("protocol"), source.get("name"), source.get("tls")) == ("nbd", "s" * 64, None)
    assert (source.find("host").get("name"), source.find("host").get("port")) == ("127.0.0.1", "10809")
    assert el.find("target").get("dev") == "vdb" and el.find("serial").text == VOL[:20]
    tls = ET.fromstring(domain.disk_xml(Disk(NbdSource("::1", 1, "n", tls=True), "vdc")))
    assert tls.find("source").get("tls") == "yes" and tls.find("source/host").get("name") == "::1"
    dom = f"<domain><devices>{ET.tostring(el, encoding='unicode')}</devices></domain>"
    assert domain.disk_targets(dom) == {"vdb": "nbd://127.0.0.1:10809"}  # never the export name
    assert "s" * 64 not in repr(src) + str(src)


def test_volume_source_of_connection_data(tmp_path):
    assert volume_source({"path": "/v/volume-1", "format": "raw"}) == Path("/v/volume-1")
    nbd = volume_source({"host": "10.0.0.2", "port": 10900, "name": "abc", "format": "raw"})
    assert nbd == NbdSource("10.0.0.2", 10900, "abc")
    with pytest.raises(VirtError):
        volume_source({"host": "node1@filedriver-1"})


def test_fake_driver_takes_nbd_volumes():
    d = FakeDriver()
    d.spawn(InstanceSpec(VOL, 256, 1, ImageRef(None, Path("/nonexistent"), "raw"),
                         root_volume=NbdSource("127.0.0.1", 10901, "root")))
    assert d.root_volume(VOL) == "nbd://127.0.0.1:10901"
    assert d.attach_volume(VOL, NbdSource("127.0.0.1", 10902, "x"), serial="v") == "vdb"
    assert d.volumes(VOL) == {"vdb": "nbd://127.0.0.1:10902"}
    d.detach_volume(VOL, "vdb")
    assert d.volumes(VOL) == {}


# -- the volume agent's connection info


class _Conductor:
    def __init__(self, volume: dict):
        self.volume = volume

    def volume_get(self, volume_id):
        return dict(self.volume) if volume_id == self.volume["id"] else None


@needs_qsd
def test_agent_initialize_and_terminate(tmp_path, monkeypatch):
    from onestack.volume import settings
    from onestack.volume.agent import VolumeAgent
    from onestack.volume.backends.file import FileBackend

    backend = FileBackend(tmp_path / "volumes")
    made = backend.create(VOL, 1)
    monkeypatch.setattr(settings.current, "volumes_dir", tmp_path / "volumes")
    agent = VolumeAgent("node1@filedriver-1", backend, "filedriver-1")
    agent.conductor = _Conductor({"id": VOL, "deleted": False, "provider_location": made["path"],
                                  "disk_format": made["format"], "multiattach": False})
    try:
        monkeypatch.setattr(settings.current, "attach_protocol", "auto")
        same = agent.initialize_connection(VOL, {"host": "node1", "mode": "rw"})
        assert same["driver_volume_type"] == "file" and same["data"]["path"] == made["path"]
        far = {"host": "node2", "mountpoint": "/dev/vdb", "mode": "rw"}
        info = agent.initialize_connection(VOL, far)
        assert info["driver_volume_type"] == "nbd"
        data = info["data"]
        assert set(data) == {"host", "port", "name", "format", "volume_id", "access_mode"}
        assert data["format"] == "raw" and data["volume_id"] == VOL
        [e] = agent.exports.exports()
        assert agent.exports.dir == tmp_path / "volumes" / "exports"
        _img("info", f"nbd://{data['host']}:{data['port']}/{data['name']}")
        agent.terminate_connection(VOL, far)
        assert _gone(e.pid) and agent.exports.exports() == []
        agent.terminate_connection(VOL, {"host": "node1", "mode": "rw"})  # a file attachment: nothing
        # an export that cannot be made is the service's error, not a 500
        monkeypatch.setattr(settings.current, "attach_protocol", "nbd")
        monkeypatch.setattr(agent.exports, "binary", "/nonexistent/qemu-storage-daemon")
        with pytest.raises(errors.ServiceUnavailable):
            agent.initialize_connection(VOL, far)
    finally:
        agent.exports.stop_all()
