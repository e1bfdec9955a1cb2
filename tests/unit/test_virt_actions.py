"""What Nova's server actions need of the virt layer, without libvirt: the domain XML
changes (resize, rescue, rebuild, consoles) and the fake driver's semantics, which
follow LibvirtDriver's (tests/e2e/test_virt_libvirt.py runs the real one)."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from onestack.compute.virt import (
    ConfigDrive,
    ConsoleUnavailable,
    FakeDriver,
    ImageRef,
    InstanceSpec,
    Interface,
    PowerState,
    VirtError,
    domain,
    images,
)
from onestack.compute.virt.domain import Disk, DomainSpec

UUID = "6f1ab1b4-5b1c-4b5e-9d56-0d4a1f1b1c02"
NICS = [
    Interface("brq1234", "fa:16:3e:00:00:01", "tap1234", mtu=1450),
    Interface("brq5678", "fa:16:3e:00:00:02", "tap5678"),
]


def _xml(**kw) -> str:
    args = dict(
        uuid=UUID,
        memory_mib=256,
        vcpus=1,
        root=Disk(Path("/i/disk"), backing=Path("/b/img")),
        console_log=Path("/i/console.log"),
        config_drive=domain.config_drive_disk(Path("/i/disk.config"), "vfat"),
        interfaces=NICS,
    )
    args.update(kw)
    return domain.domain_xml(DomainSpec(**args))


# -- domain XML


def test_interfaces_round_trip():
    assert domain.interfaces_of(_xml()) == NICS
    assert domain.interfaces_of(_xml(interfaces=[])) == []
    el = ET.fromstring(domain.interface_xml(NICS[0]))
    assert el.get("type") == "bridge" and el.find("target").get("dev") == "tap1234"


def test_set_resources_keeps_everything_else():
    xml = domain.set_resources(_xml(), 512, 3)
    dom = ET.fromstring(xml)
    assert dom.findtext("memory") == "512" and dom.find("memory").get("unit") == "MiB"
    assert dom.findtext("currentMemory") == "512" and dom.findtext("vcpu") == "3"
    assert domain.interfaces_of(xml) == NICS
    assert domain.disk_targets(xml) == domain.disk_targets(_xml())
    with pytest.raises(ValueError):
        domain.set_resources(_xml(), 8, 1)


def test_rescue_xml():
    base = _xml()
    # as libvirt returns it: addresses on the devices, os/boot
    dom = ET.fromstring(base)
    for disk in dom.iter("disk"):
        ET.SubElement(disk, "address", type="pci", slot="0x04")
    base = ET.tostring(dom, encoding="unicode")
    xml = domain.rescue_xml(base, Disk(Path("/i/disk.rescue"), "vda", backing=Path("/b/rescue")))
    dom = ET.fromstring(xml)
    disks = dom.findall("devices/disk")
    assert [d.find("source").get("file") for d in disks] == [
        "/i/disk.rescue",
        "/i/disk",
        "/i/disk.config",
    ]
    assert [d.find("target").get("dev") for d in disks] == ["vda", "vdb", "vdz"]
    assert disks[0].find("boot").get("order") == "1"
    assert dom.find("os/boot") is None  # per-device boot order only
    assert all(d.find("address") is None for d in disks)  # libvirt places them in this order
    assert domain.interfaces_of(xml) == NICS


def test_volume_elements_are_carried():
    dom = ET.fromstring(_xml())
    vol = domain.disk_element(Disk(Path("/v/vol1"), "vdb", format="raw", serial="vol1"))
    ET.SubElement(vol, "address", type="pci", slot="0x09")
    ET.SubElement(vol, "alias", name="virtio-disk1")
    dom.find("devices").append(vol)
    vols = domain.volume_elements(ET.tostring(dom, encoding="unicode"))
    assert len(vols) == 1 and vols[0].find("address") is None and vols[0].find("alias") is None
    rebuilt = domain.with_disks(_xml(), vols)
    assert domain.disk_targets(rebuilt) == {
        "vda": "/i/disk",
        "vdz": "/i/disk.config",
        "vdb": "/v/vol1",
    }
    tags = [el.tag for el in ET.fromstring(rebuilt).find("devices")]
    assert tags[:3] == ["disk", "disk", "disk"]  # with the other disks


def test_console_addresses_from_live_xml():
    live = _xml().replace("autoport='yes'", "port='5907' autoport='yes'")
    live = live.replace('autoport="yes"', 'port="5907" autoport="yes"')
    assert domain.vnc_of(live) == ("127.0.0.1", 5907)
    assert domain.vnc_of(_xml().replace('autoport="yes"', 'port="-1" autoport="yes"')) is None
    dom = ET.fromstring(_xml())
    ET.SubElement(dom.find("devices/serial"), "source", path="/dev/pts/4")
    assert domain.serial_pty_of(ET.tostring(dom, encoding="unicode")) == "/dev/pts/4"
    assert domain.serial_pty_of(_xml()) is None


# -- images


@pytest.mark.tools("qemu-img")
def test_empty_qcow2_is_valid(tmp_path):
    for size in (64 << 20, 3 << 30, 5 << 40):
        path = tmp_path / f"e{size}.qcow2"
        assert images.write_empty_qcow2(path, size) == size
        subprocess.run(["qemu-img", "check", "-q", str(path)], check=True)
        info = json.loads(
            subprocess.run(
                ["qemu-img", "info", "-f", "qcow2", "--output=json", str(path)],
                capture_output=True,
                check=True,
            ).stdout
        )
        assert info["virtual-size"] == size and "backing-filename" not in info
        images.check_source(info, "qcow2")  # what the image service accepts


# -- the fake driver


def _spec(**kw) -> InstanceSpec:
    args = dict(
        uuid=UUID,
        memory_mib=128,
        vcpus=1,
        image=ImageRef("img", Path("/nonexistent")),
        root_gb=1,
        config_drive=ConfigDrive({"uuid": UUID, "hostname": "fake-2"}),
        interfaces=list(NICS),
    )
    args.update(kw)
    return InstanceSpec(**args)


def test_fake_host_resources():
    d = FakeDriver("h", vcpus=4, memory_mb=8192, local_gb=50)
    r = d.host_resources()
    assert (r["vcpus"], r["memory_mb"], r["local_gb"]) == (4, 8192, 50)
    assert r["hypervisor_type"] == "QEMU" and r["hypervisor_version"] == 7002000
    assert r["cpu_info"]["topology"]["cores"] == 4
    r = FakeDriver().host_resources()
    assert (r["vcpus"], r["memory_mb"], r["local_gb"]) == (8, 16384, 200)


def test_fake_snapshot(tmp_path):
    d = FakeDriver()
    d.spawn(_spec(root_gb=2))
    assert d.snapshot(UUID, tmp_path / "snap.qcow2") == 2 << 30
    assert (tmp_path / "snap.qcow2").read_bytes()[:4] == b"QFI\xfb"


def test_fake_resize_confirm_and_revert():
    d = FakeDriver()
    d.spawn(_spec())
    info = d.resize(UUID, 256, 2, 2)
    assert (info.state, info.memory_kib, info.vcpus) == (PowerState.RUNNING, 256 * 1024, 2)
    with pytest.raises(VirtError, match="confirmed or reverted"):
        d.resize(UUID, 512, 2, 2)
    info = d.revert_resize(UUID)
    assert (info.memory_kib, info.vcpus) == (128 * 1024, 1)
    with pytest.raises(VirtError, match="no resize"):
        d.revert_resize(UUID)
    d.resize(UUID, 256, 2, 0)  # 0: the disk keeps its size
    d.confirm_resize(UUID)
    with pytest.raises(VirtError, match="no resize"):
        d.revert_resize(UUID)
    assert d.get_info(UUID).vcpus == 2
    d.resize(UUID, 256, 2, 3)
    d.confirm_resize(UUID)
    with pytest.raises(VirtError, match="cannot shrink"):
        d.resize(UUID, 256, 2, 1)
    # a stopped guest stays stopped through resize and revert
    d.power_off(UUID)
    assert d.resize(UUID, 128, 1, 3).state == PowerState.SHUTDOWN
    assert d.revert_resize(UUID).state == PowerState.SHUTDOWN
    assert d.interfaces(UUID) == NICS


def test_fake_rebuild_keeps_interfaces():
    d = FakeDriver()
    d.spawn(_spec())
    info = d.rebuild(_spec(interfaces=[], image=ImageRef("img2", Path("/x"))))
    assert info.state == PowerState.RUNNING
    assert d.interfaces(UUID) == NICS
    assert d.rebuild(_spec(), start=False).state == PowerState.SHUTDOWN
    assert d.get_console_output(UUID).count("ready.") == 2
    d.destroy(UUID)  # no guest here (a failed build): rebuilt from scratch
    assert d.rebuild(_spec()).state == PowerState.RUNNING
    assert d.rebuild(_spec(), start=False).state == PowerState.SHUTDOWN


def test_fake_rescue_and_interfaces():
    d = FakeDriver()
    d.spawn(_spec())
    with pytest.raises(VirtError, match="not rescued"):
        d.unrescue(UUID)
    d.rescue(UUID, ImageRef("rescue", Path("/x")))
    assert d.rescued(UUID)
    with pytest.raises(VirtError, match="already rescued"):
        d.rescue(UUID, ImageRef("rescue", Path("/x")))
    with pytest.raises(VirtError, match="rescued"):
        d.resize(UUID, 256, 1, 1)
    d.unrescue(UUID)
    assert not d.rescued(UUID)
    nic = Interface("brq9", "FA:16:3E:00:00:09", "tap9")
    d.attach_interface(UUID, nic)
    with pytest.raises(VirtError):
        d.attach_interface(UUID, nic)
    assert d.interfaces(UUID)[-1] == nic
    d.detach_interface(UUID, "FA:16:3E:00:00:09")
    assert d.interfaces(UUID) == NICS
    with pytest.raises(VirtError):
        d.detach_interface(UUID, "fa:16:3e:00:00:09")


def test_fake_consoles_and_diagnostics():
    d = FakeDriver()
    d.spawn(_spec())
    assert d.vnc_address(UUID) == ("127.0.0.1", 0)  # a port nothing can listen on
    assert d.serial_pty(UUID) == "/dev/null"
    diag = d.diagnostics(UUID)
    assert set(diag) == {
        "state", "driver", "hypervisor", "hypervisor_os", "uptime", "config_drive",
        "num_cpus", "num_nics", "num_disks", "cpu_details", "nic_details", "disk_details",
        "memory_details",
    }  # fmt: skip
    assert diag["state"] == "running" and diag["config_drive"] is True
    assert (diag["num_cpus"], diag["num_nics"], diag["num_disks"]) == (1, 2, 2)
    assert diag["memory_details"] == {"maximum": 128, "used": 128}
    assert diag["nic_details"][0]["mac_address"] == "fa:16:3e:00:00:01"
    assert diag["cpu_details"] == [{"id": 0, "time": 0, "utilisation": None}]
    d.power_off(UUID)
    with pytest.raises(ConsoleUnavailable):
        d.vnc_address(UUID)
    with pytest.raises(ConsoleUnavailable):
        d.serial_pty(UUID)
    assert d.diagnostics(UUID)["state"] == "shutdown"


def test_fake_driver_boots_from_a_volume_file(tmp_path):
    vol = tmp_path / "volume-1"
    vol.write_bytes(b"")
    d = FakeDriver()
    spec = InstanceSpec(UUID, 256, 1, ImageRef(None, Path("/nonexistent"), "raw"), root_volume=vol,
                        root_volume_serial="vol-1")
    d.spawn(spec)
    assert d.root_volume(UUID) == str(vol)
    assert d.volumes(UUID) == {}  # the root volume is vda, not an attached volume
    d.destroy(UUID)
    assert vol.exists()  # the volume outlives the guest


def test_root_volume_disk_xml(tmp_path):
    disk = Disk(tmp_path / "volume-1", "vda", format="raw", serial="0123456789abcdefghijXYZ")
    el = ET.fromstring(domain.disk_xml(disk))
    assert el.find("source").get("file") == str(tmp_path / "volume-1")
    assert el.find("driver").get("type") == "raw" and el.find("backingStore") is None
    assert el.find("serial").text == "0123456789abcdefghij"
