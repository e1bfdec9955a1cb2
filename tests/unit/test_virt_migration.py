"""The libvirt driver's side of moving guests between hosts, without libvirtd.

Two drivers (a source and a destination host, each its own instances directory) talk to
fake libvirt connections; the disks are real qcow2 files. A cold migration's disk really
travels: the source exports it with qemu-storage-daemon on loopback and the destination
copies it with qemu-img (tests/api/test_server_moves.py runs the flows on fake hosts; the
multi-node cluster tests run them with real guests). A live migration's call to libvirt
(migrateToURI3: flags, parameters, the destination's XML) is recorded and checked.
"""

from __future__ import annotations

import subprocess
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

libvirt = pytest.importorskip("libvirt")

from onestack.compute.virt import ImageRef, InstanceSpec, LibvirtDriver, VirtError, domain, transfer  # noqa: E402
from onestack.compute.virt.domain import Disk, DomainSpec, NbdSource  # noqa: E402
from onestack.compute.virt.images import GiB, ImageCache  # noqa: E402

UUID = "6f1ab1b4-5b1c-4b5e-9d56-0d4a1f1b1c09"
MiB = 1 << 20
needs_qemu = pytest.mark.tools("qemu-img", "qemu-io", "qemu-storage-daemon")


def _no_domain() -> libvirt.libvirtError:
    e = libvirt.libvirtError("Domain not found")
    e.err = (libvirt.VIR_ERR_NO_DOMAIN, 0, "Domain not found", 2)
    return e


class FakeDomain:
    def __init__(self, conn: FakeConn, xml: str, active: bool = False):
        self.conn, self.xml, self.active = conn, xml, active
        self.migrated = None  # (uri, params, flags) of migrateToURI3
        self.fail: str | None = None
        self.state = libvirt.VIR_DOMAIN_RUNNING

    def name(self):
        return ET.fromstring(self.xml).findtext("name")

    def isActive(self):
        return 1 if self.active else 0

    def info(self):
        return [self.state if self.active else libvirt.VIR_DOMAIN_SHUTOFF, 256 * 1024, 256 * 1024, 1, 0]

    def hasManagedSaveImage(self, flags):
        return 0

    def XMLDesc(self, flags=0):
        return self.xml

    def create(self):
        self.active = True

    def destroy(self):
        self.active = False

    def shutdown(self):
        self.active = False

    def resume(self):
        self.state = libvirt.VIR_DOMAIN_RUNNING

    def undefineFlags(self, flags):
        self.conn.domains.pop(UUID, None)

    def blockInfo(self, dev, flags=0):
        assert dev == "vda"
        return [64 * MiB, 0, 0]

    def jobStats(self, flags=0):
        return {"memory_total": 256 * MiB, "memory_processed": 128 * MiB, "memory_remaining": 128 * MiB}

    def migrateToURI3(self, uri, params, flags):
        if self.fail:
            raise libvirt.libvirtError(self.fail)
        self.migrated = (uri, params, flags)
        self.conn.domains.pop(UUID)


class FakeConn:
    def __init__(self):
        self.domains: dict[str, FakeDomain] = {}

    def isAlive(self):
        return 1

    def lookupByUUIDString(self, uuid):
        if uuid not in self.domains:
            raise _no_domain()
        return self.domains[uuid]

    def defineXML(self, xml):
        dom = self.domains.get(UUID) or FakeDomain(self, xml)
        dom.xml = xml
        self.domains[UUID] = dom
        return dom


def _driver(root: Path) -> LibvirtDriver:
    """A libvirt driver on `root` with a fake connection (no libvirtd, no KVM probe)."""
    d = LibvirtDriver.__new__(LibvirtDriver)
    d.uri, d.qemu_user, d.virt_type, d.disk_cache = "qemu:///system", "nobody-here", "qemu", "writethrough"
    d.detach_attempts, d.detach_timeout, d.vnc_listen = 1, 0, "127.0.0.1"
    d.root = root / "compute"
    d.instances_dir = d.root / "instances"
    d.images = ImageCache(d.root / "base")
    d.instances_dir.mkdir(parents=True)
    d.exports = transfer.DiskExports(d.root / "exports")
    d._conn_lock, d._conn = threading.Lock(), FakeConn()
    d._reboots, d._reboot_cond = {}, threading.Condition()
    return d


def _qemu_img(*args: str) -> str:
    return subprocess.run(["qemu-img", *args], check=True, capture_output=True, text=True).stdout


def _guest_on(d: LibvirtDriver, base: Path) -> Path:
    """A running guest of `d`: a qcow2 overlay on `base` with data of its own, and its domain."""
    inst = d.instance_dir(UUID)
    inst.mkdir()
    disk = inst / "disk"
    _qemu_img("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(disk), str(64 * MiB))
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 1M 2M", str(disk)], check=True,
                   capture_output=True)
    xml = domain.domain_xml(DomainSpec(uuid=UUID, memory_mib=256, vcpus=1, root=Disk(disk, backing=base),
                                       console_log=inst / "console.log"))
    d._conn.domains[UUID] = FakeDomain(d._conn, xml, active=True)
    return disk


@pytest.fixture
def base(tmp_path) -> Path:
    path = tmp_path / "base.qcow2"
    _qemu_img("create", "-q", "-f", "qcow2", str(path), str(64 * MiB))
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 1M", str(path)], check=True,
                   capture_output=True)
    return path


def _spec(root_gb: int = 0) -> InstanceSpec:
    return InstanceSpec(UUID, 256, 1, ImageRef("img", Path("/nonexistent"), "qcow2"), root_gb=root_gb)


# -- the domain XML of a live migration's destination


def test_migration_xml_moves_paths_and_base():
    xml = domain.domain_xml(DomainSpec(
        uuid=UUID, memory_mib=256, vcpus=1, root=Disk(Path(f"/a/instances/{UUID}/disk"), backing=Path("/a/base/img")),
        console_log=Path(f"/a/instances/{UUID}/console.log")))
    assert domain.backing_file(xml) == "/a/base/img"
    moved = domain.migration_xml(xml, f"/a/instances/{UUID}", f"/b/instances/{UUID}", "/b/base/img")
    assert f"/a/instances/{UUID}" not in moved and f"/b/instances/{UUID}/console.log" in moved
    assert domain.disk_targets(moved)["vda"] == f"/b/instances/{UUID}/disk"
    assert domain.backing_file(moved) == "/b/base/img"
    standalone = domain.migration_xml(xml, f"/a/instances/{UUID}", f"/b/instances/{UUID}", None)
    assert domain.backing_file(standalone) is None
    assert ET.fromstring(standalone).find("devices/disk/backingStore") is not None  # <backingStore/>: none


# -- cold migration: the disk travels over NBD


@needs_qemu
def test_exported_disk_is_copied_whole_and_standalone(tmp_path, base):
    src = _driver(tmp_path / "src")
    disk = _guest_on(src, base)
    offered = src.exports.start(UUID, disk, "qcow2", "127.0.0.1")
    assert offered["host"] == "127.0.0.1" and len(offered["name"]) == 64
    try:
        copy = tmp_path / "copy.qcow2"
        transfer.pull(offered, copy)
    finally:
        assert src.exports.stop(UUID)
    assert not src.exports.stop(UUID)
    subprocess.run(["qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", str(disk), str(copy)], check=True,
                   capture_output=True)
    assert "backing file" not in _qemu_img("info", str(copy))
    with pytest.raises(VirtError, match="could not be copied") as e:  # the export is gone
        transfer.pull(offered, tmp_path / "again.qcow2")
    assert offered["name"] not in str(e.value)  # the export name is a secret: never in a message


@needs_qemu
def test_cold_migration_between_two_drivers(tmp_path, base):
    src, dst = _driver(tmp_path / "src"), _driver(tmp_path / "dst")
    disk = _guest_on(src, base)
    info = src.migrate_disk_and_power_off(UUID, "127.0.0.1")
    assert info["local"] and info["size"] == 64 * MiB
    assert not src._conn.domains[UUID].active  # stopped, still defined for a revert
    try:
        dst.finish_migration(_spec(root_gb=1), info, power_on=True)
    finally:
        src.migration_transfer_done(UUID)
    moved = dst.instance_dir(UUID) / "disk"
    assert dst._conn.domains[UUID].active
    xml = dst._conn.domains[UUID].xml
    assert domain.disk_targets(xml)["vda"] == str(moved) and domain.backing_file(xml) is None
    assert "virtual size: 1 GiB" in _qemu_img("info", str(moved))  # grown to the new flavor's disk
    data = subprocess.run(["qemu-io", "-f", "qcow2", "-c", "read -P 0x5a 1M 2M", "-c", "read -P 0x11 0 1M",
                           str(moved)], check=True, capture_output=True, text=True).stdout
    assert "Pattern verification failed" not in data
    # revert: the source starts its guest again; confirm: its copy goes
    src.finish_revert_migration(UUID, power_on=True)
    assert src._conn.domains[UUID].active
    src.confirm_migration(UUID)
    assert UUID not in src._conn.domains and not disk.exists()


@needs_qemu
def test_a_failed_copy_leaves_nothing_on_the_destination(tmp_path):
    dst = _driver(tmp_path / "dst")
    bogus = {"local": True, "size": GiB, "nbd": {"host": "127.0.0.1", "port": 9, "name": "x" * 64}}
    with pytest.raises(VirtError, match="could not be copied"):
        dst.finish_migration(_spec(), bogus)
    assert not dst.instance_dir(UUID).exists() and UUID not in dst._conn.domains


# -- live migration: libvirt's, peer to peer, the disk copied by QEMU


@needs_qemu
@pytest.mark.parametrize("base_there", [True, False])
def test_live_migration_call(tmp_path, base, base_there):
    src, dst = _driver(tmp_path / "src"), _driver(tmp_path / "dst")
    _guest_on(src, base)
    copy = tmp_path / "dst-base"
    _qemu_img("convert", "-q", "-O", "qcow2", str(base), str(copy))

    def ensure(image_id, source, fmt):
        if not base_there:
            raise VirtError("image img could not be downloaded (404)")
        return copy

    dst.images.ensure = ensure
    info = src.live_migration_info(UUID)
    assert info == {"local": True, "size": 64 * MiB, "base": str(base)}
    prepared = dst.prepare_incoming(_spec(), info)
    target = Path(prepared["instance_dir"]) / "disk"
    assert "virtual size: 64 MiB" in _qemu_img("info", str(target))  # the block copy's target, same size
    assert prepared["full_copy"] is not base_there
    dom = src._conn.domains[UUID]
    src.live_migrate(UUID, {**prepared, "address": "192.0.2.7", "local": True})
    assert not src.instance_dir(UUID).exists()  # undefined there by libvirt, its files gone
    uri, params, flags = dom.migrated
    assert uri == "qemu+tcp://192.0.2.7/system"
    assert params[libvirt.VIR_MIGRATE_PARAM_URI] == "tcp://192.0.2.7"  # QEMU's stream to that address
    assert params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] == ["vda"]
    need = libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER | libvirt.VIR_MIGRATE_PERSIST_DEST | \
        libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
    assert flags & need == need
    # the overlay only on the same base; the whole disk when the image is gone
    copy_flag = libvirt.VIR_MIGRATE_NON_SHARED_INC if base_there else libvirt.VIR_MIGRATE_NON_SHARED_DISK
    assert flags & (libvirt.VIR_MIGRATE_NON_SHARED_INC | libvirt.VIR_MIGRATE_NON_SHARED_DISK) == copy_flag
    xml = params[libvirt.VIR_MIGRATE_PARAM_DEST_XML]
    assert xml == params[libvirt.VIR_MIGRATE_PARAM_PERSIST_XML]
    assert domain.disk_targets(xml)["vda"] == str(target)
    assert domain.backing_file(xml) == (str(copy) if base_there else None)


@needs_qemu
def test_live_migration_failure_keeps_the_guest_and_the_destination_cleans_up(tmp_path, base):
    src, dst = _driver(tmp_path / "src"), _driver(tmp_path / "dst")
    _guest_on(src, base)
    dst.images.ensure = lambda *a: base
    prepared = dst.prepare_incoming(_spec(), src.live_migration_info(UUID))
    src._conn.domains[UUID].fail = "operation failed: migration out job: unexpectedly failed"
    with pytest.raises(VirtError, match="live migration of .* to 192.0.2.7 failed: operation failed"):
        src.live_migrate(UUID, {**prepared, "address": "192.0.2.7", "local": True})
    assert src._conn.domains[UUID].active and (src.instance_dir(UUID) / "disk").exists()
    dst.rollback_incoming(UUID)
    assert not dst.instance_dir(UUID).exists()


def test_a_volume_file_of_the_source_cannot_follow(tmp_path):
    src = _driver(tmp_path / "src")
    inst = src.instance_dir(UUID)
    dom = ET.fromstring(domain.domain_xml(DomainSpec(uuid=UUID, memory_mib=256, vcpus=1,
                                                     root=Disk(inst / "disk"), console_log=inst / "console.log")))
    dom.find("devices").append(domain.disk_element(Disk(tmp_path / "volume-1", "vdb", format="raw")))
    dom.find("devices").append(domain.disk_element(Disk(NbdSource("192.0.2.9", 10809, "secret"), "vdc")))
    src._conn.domains[UUID] = FakeDomain(src._conn, ET.tostring(dom, encoding="unicode"), active=True)
    with pytest.raises(VirtError, match="disk vdb .* is a file of this host"):
        src.live_migration_info(UUID)
