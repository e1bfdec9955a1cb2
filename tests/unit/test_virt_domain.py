"""The virt layer's logic: domain XML, KVM detection, config drive layout, the fake driver."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from onestack.compute.virt import (
    ConfigDrive,
    FakeDriver,
    ImageError,
    ImageRef,
    InstanceNotFound,
    InstanceSpec,
    Interface,
    PowerState,
    VirtError,
    accel,
    configdrive,
    domain,
    images,
)
from onestack.compute.virt.domain import Disk, DomainSpec

UUID = "6f1ab1b4-5b1c-4b5e-9d56-0d4a1f1b1c01"


def _spec(**kw) -> DomainSpec:
    args = dict(
        uuid=UUID,
        memory_mib=256,
        vcpus=2,
        root=Disk(Path("/s/compute/instances/x/disk"), backing=Path("/s/compute/base/img")),
        console_log=Path("/s/compute/instances/x/console.log"),
    )
    args.update(kw)
    return DomainSpec(**args)


def _parse(spec: DomainSpec) -> ET.Element:
    return ET.fromstring(domain.domain_xml(spec))


# -- domain XML


def test_domain_basics():
    dom = _parse(_spec())
    assert dom.get("type") == "qemu"
    assert dom.findtext("name") == f"onestack-{UUID}"
    assert dom.findtext("uuid") == UUID
    assert dom.find("memory").attrib == {"unit": "MiB"} and dom.findtext("memory") == "256"
    assert dom.findtext("vcpu") == "2"
    os_type = dom.find("os/type")
    assert (os_type.text, os_type.get("machine"), os_type.get("arch")) == ("hvm", "pc", "x86_64")
    assert dom.find("os/boot").get("dev") == "hd"
    assert dom.find("cpu") is None  # TCG: QEMU's default CPU model
    assert [e.tag for e in dom.find("features")] == ["acpi", "apic"]
    assert dom.findtext("on_reboot") == "restart" and dom.findtext("on_crash") == "destroy"


def test_kvm_uses_host_model_cpu():
    dom = _parse(_spec(virt_type="kvm"))
    assert dom.get("type") == "kvm"
    assert dom.find("cpu").get("mode") == "host-model"


def test_root_disk_is_an_overlay_whose_base_is_not_relabelled():
    disks = _parse(_spec()).findall("devices/disk")
    assert len(disks) == 1
    root = disks[0]
    assert root.get("device") == "disk"
    assert root.find("driver").attrib["type"] == "qcow2"
    assert root.find("source").get("file") == "/s/compute/instances/x/disk"
    assert root.find("target").attrib == {"dev": "vda", "bus": "virtio"}
    store = root.find("backingStore")
    assert store.find("format").get("type") == "qcow2"
    assert store.find("source").get("file") == "/s/compute/base/img"
    assert store.find("source/seclabel").attrib == {"model": "dac", "relabel": "no"}
    assert store.find("backingStore") is not None and len(store.find("backingStore")) == 0
    assert root.find("readonly") is None


@pytest.mark.parametrize(
    "fmt, target, bus, device",
    [("vfat", "vdz", "virtio", "disk"), ("iso9660", "hdd", "ide", "cdrom")],
)
def test_config_drive_placement(fmt, target, bus, device):
    drive = domain.config_drive_disk(Path("/i/disk.config"), fmt)
    disks = _parse(_spec(config_drive=drive)).findall("devices/disk")
    cd = disks[1]
    assert cd.get("device") == device
    assert cd.find("target").attrib == {"dev": target, "bus": bus}
    assert cd.find("driver").get("type") == "raw"
    assert cd.find("readonly") is not None
    assert cd.find("source").get("file") == "/i/disk.config"


def test_serial_console_is_logged_and_vnc_is_local():
    devices = _parse(_spec()).find("devices")
    serial = devices.find("serial")
    assert serial.get("type") == "pty"
    assert serial.find("log").attrib == {
        "file": "/s/compute/instances/x/console.log",
        "append": "on",
    }
    assert devices.find("console/target").attrib == {"type": "serial", "port": "0"}
    vnc = devices.find("graphics")
    assert (vnc.get("type"), vnc.get("autoport"), vnc.get("listen")) == ("vnc", "yes", "127.0.0.1")
    assert vnc.find("listen").attrib == {"type": "address", "address": "127.0.0.1"}
    rng = devices.find("rng")
    assert rng.get("model") == "virtio" and rng.findtext("backend") == "/dev/urandom"
    assert devices.find("memballoon").get("model") == "virtio"


def test_interfaces():
    nics = [
        Interface("brq1234", "FA:16:3E:00:00:01", "tap1234", mtu=1450),
        Interface("brq5678", "fa:16:3e:00:00:02", "tap5678"),
    ]
    dev = _parse(_spec(interfaces=nics)).findall("devices/interface")
    assert [n.get("type") for n in dev] == ["bridge", "bridge"]
    first = dev[0]
    assert first.find("source").get("bridge") == "brq1234"
    assert first.find("mac").get("address") == "fa:16:3e:00:00:01"  # normalised
    assert first.find("target").get("dev") == "tap1234"
    assert first.find("model").get("type") == "virtio"
    assert first.find("mtu").get("size") == "1450"
    assert dev[1].find("mtu") is None
    assert _parse(_spec()).findall("devices/interface") == []  # none given: no network


@pytest.mark.parametrize(
    "args",
    [
        ("br0", "fa:16:3e:00:00", "tap0"),  # short MAC
        ("br0", "fa:16:3e:00:00:zz", "tap0"),
        ("br0; rm", "fa:16:3e:00:00:01", "tap0"),  # not an interface name
        ("br0", "fa:16:3e:00:00:01", "a-name-longer-than-15"),
    ],
)
def test_interface_refuses_bad_values(args):
    with pytest.raises(ValueError):
        Interface(*args)


def test_metadata_and_escaping():
    xml = domain.domain_xml(_spec(display_name="<web & db>", flavor="m1.nano", project_id="p1"))
    dom = ET.fromstring(xml)
    ns = {"o": domain.XMLNS}
    inst = dom.find("metadata/o:instance", ns)
    assert inst.findtext("o:name", namespaces=ns) == "<web & db>"
    assert inst.findtext("o:flavor", namespaces=ns) == "m1.nano"
    assert inst.findtext("o:project", namespaces=ns) == "p1"
    assert "<web" not in xml  # escaped


@pytest.mark.parametrize("kw", [{"virt_type": "xen"}, {"memory_mib": 8}, {"vcpus": 0}])
def test_domain_refuses_bad_specs(kw):
    with pytest.raises(ValueError):
        domain.domain_xml(_spec(**kw))


def test_disk_refuses_bad_values():
    for kw in ({"bus": "scsi"}, {"device": "floppy"}, {"format": "vmdk"}, {"target": "sda"}):
        with pytest.raises(ValueError):
            Disk(Path("/x"), **kw)


def test_volume_disk_xml():
    el = ET.fromstring(
        domain.disk_xml(
            Disk(Path("/v/vol"), "vdc", format="raw", serial="0123456789abcdef0123456789")
        )
    )
    assert el.get("type") == "file" and el.get("device") == "disk"
    assert el.find("target").attrib == {"dev": "vdc", "bus": "virtio"}
    assert el.findtext("serial") == "0123456789abcdef0123"  # 20 characters, as Nova
    assert el.find("backingStore") is None


def test_next_virtio_target_and_disk_targets():
    assert domain.next_virtio_target({"vda", "vdz"}) == "vdb"
    assert domain.next_virtio_target({"vda", "vdb", "vdd", "vdz"}) == "vdc"
    with pytest.raises(ValueError):
        domain.next_virtio_target({f"vd{c}" for c in "abcdefghijklmnopqrstuvwxyz"})
    xml = domain.domain_xml(_spec(config_drive=domain.config_drive_disk(Path("/c"), "vfat")))
    assert domain.disk_targets(xml) == {"vda": "/s/compute/instances/x/disk", "vdz": "/c"}


def test_names():
    assert domain.domain_name(UUID) == f"onestack-{UUID}"
    assert domain.uuid_of(f"onestack-{UUID}") == UUID
    assert domain.uuid_of("someone-elses-vm") is None


# -- KVM detection


def test_probe_sector_is_a_boot_sector():
    assert len(accel.PROBE_SECTOR) == 512
    assert accel.PROBE_SECTOR.endswith(b"\x55\xaa")


@pytest.mark.tools("qemu-system-x86_64")
def test_probe_sector_runs_under_tcg(tmp_path):
    """The probe itself is right: under TCG (no KVM involved) it prints all four letters."""
    disk = tmp_path / "probe.img"
    disk.write_bytes(accel.PROBE_SECTOR)
    serial = tmp_path / "serial"
    proc = subprocess.Popen(
        [
            "qemu-system-x86_64",
            "-machine",
            "pc,accel=tcg",
            "-nodefaults",
            "-display",
            "none",
            "-m",
            "16",
            "-serial",
            f"file:{serial}",
            "-drive",
            f"file={disk},format=raw,if=ide",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import time

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if serial.exists() and accel.EXPECTED in serial.read_bytes():
                break
            time.sleep(0.05)
        assert serial.read_bytes().startswith(accel.EXPECTED)
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.mark.parametrize(
    "serial, stderr, rc, verdict",
    [
        (b"RPIK\n", "", None, True),
        (b"RPIK\n", "warning: host doesn't support requested feature", None, True),
        (b"RP", "KVM internal error. Suberror: 1\nemulation failure", None, False),
        (b"", "qemu-system-x86_64: failed to initialize kvm: Permission denied", 1, False),
        (b"R", "", 1, False),  # QEMU ended before the guest finished
        (b"RP", "", None, None),  # not yet
    ],
)
def test_judge(serial, stderr, rc, verdict):
    assert accel.judge(serial, stderr, rc) is verdict


def test_failure_reasons():
    r = accel.failure_reason(b"RP", "warning: x\nKVM internal error. Suberror: 1\n", None)
    assert "KVM internal error" in r and "'RP'" in r
    r = accel.failure_reason(b"", "warning: x\nqemu: failed to initialize kvm: No such\n", 1)
    assert r == "QEMU with accel=kvm failed: qemu: failed to initialize kvm: No such"
    assert "status 1" in accel.failure_reason(b"", "", 1)
    assert "in time" in accel.failure_reason(b"R", "", None)


def test_probe_without_dev_kvm(monkeypatch, tmp_path):
    monkeypatch.setattr(accel, "KVM_DEVICE", str(tmp_path / "kvm"))
    assert accel.probe_kvm() == (False, f"no {tmp_path / 'kvm'}")


def test_probe_without_qemu(monkeypatch, tmp_path):
    fake = tmp_path / "kvm"
    fake.write_bytes(b"")
    monkeypatch.setattr(accel, "KVM_DEVICE", str(fake))
    assert accel.probe_kvm(qemu="no-such-qemu-binary") == (False, "no-such-qemu-binary not found")


def test_detect_tries_once_and_caches(monkeypatch):
    calls = []

    def probe():
        calls.append(1)
        return len(calls) > 1, f"try {len(calls)}"

    monkeypatch.setattr(accel, "_cached", None)
    monkeypatch.setattr(accel, "probe_kvm", probe)
    assert accel.detect() == ("qemu", "try 1")
    assert accel.detect() == accel.Accel("qemu", "try 1")
    assert len(calls) == 1
    assert accel.detect(refresh=True) == ("kvm", "try 2")
    assert accel.detect().virt_type == "kvm"


# -- config drive and images


def test_config_drive_files():
    md = configdrive.nova_meta_data(UUID, "vm-1", public_keys={"k": "ssh-ed25519 AAAA x"})
    assert md["hostname"] == "vm-1" and md["keys"][0]["data"] == "ssh-ed25519 AAAA x"
    files = configdrive.files(md, b"#!/bin/sh\n", ec2_meta_data={"hostname": "vm-1"})
    assert set(files) == {
        "openstack/latest/meta_data.json",
        "openstack/latest/network_data.json",
        "openstack/latest/vendor_data.json",
        "openstack/latest/vendor_data2.json",
        "openstack/latest/user_data",
        "ec2/latest/meta-data.json",
        "ec2/latest/user-data",
    }
    assert json.loads(files["openstack/latest/meta_data.json"])["uuid"] == UUID
    assert json.loads(files["openstack/latest/network_data.json"]) == {
        "links": [],
        "networks": [],
        "services": [],
    }
    assert "openstack/latest/user_data" not in configdrive.files(md)
    assert configdrive.vfat_size_kib({"a": b"x"}) == 1024
    assert configdrive.vfat_size_kib({"a": bytes(4 << 20)}) > 8 * 1024


@pytest.mark.tools("mkfs.vfat", "mcopy")
def test_vfat_config_drive(tmp_path):
    files = configdrive.files({"uuid": UUID, "hostname": "h"}, b"#!/bin/sh\necho hi\n")
    path = configdrive.build(tmp_path / "disk.config", files, "vfat")
    assert path.stat().st_mode & 0o777 == 0o600
    label = subprocess.run(["mlabel", "-s", "-i", str(path), "::"], capture_output=True, text=True)
    assert "config-2" in label.stdout.lower()
    data = subprocess.run(
        ["mtype", "-i", str(path), "::/openstack/latest/user_data"],
        capture_output=True,
        check=True,
    ).stdout
    assert data == b"#!/bin/sh\necho hi\n"
    assert [p.name for p in tmp_path.iterdir()] == ["disk.config"]  # no work files left


def test_config_drive_refuses_unknown_format(tmp_path):
    with pytest.raises(VirtError):
        configdrive.build(tmp_path / "x", {}, "udf")


def test_image_source_checks():
    ok = {"format": "qcow2", "virtual-size": 1}
    images.check_source(ok, "qcow2")
    for bad in (
        {**ok, "backing-filename": "/etc/shadow"},
        {**ok, "format-specific": {"type": "qcow2", "data": {"data-file": "/dev/sda"}}},
        {**ok, "format": "raw"},
    ):
        with pytest.raises(ImageError):
            images.check_source(bad, "qcow2")


def test_image_cache_names(tmp_path):
    cache = images.ImageCache(tmp_path)
    assert cache.path("0f6b3d9e-1111-2222-3333-444455556666").parent == tmp_path
    for bad in ("../etc", ".hidden", "a/b", ""):
        with pytest.raises(ImageError):
            cache.path(bad)
    with pytest.raises(ImageError, match="cannot be booted"):
        cache.ensure("x", tmp_path / "x", "ova")


# -- the fake driver


def _fake_spec(**kw) -> InstanceSpec:
    md = {"uuid": UUID, "hostname": "fake-1"}
    return InstanceSpec(
        UUID, 64, 1, ImageRef("img", Path("/nonexistent")), config_drive=ConfigDrive(md), **kw
    )


def test_fake_driver_life_cycle():
    d = FakeDriver()
    assert d.spawn(_fake_spec()).state == PowerState.RUNNING
    with pytest.raises(VirtError):
        d.spawn(_fake_spec())
    assert d.list_instances() == [UUID]
    d.pause(UUID)
    assert d.get_info(UUID).state == PowerState.PAUSED
    with pytest.raises(VirtError):
        d.pause(UUID)
    d.unpause(UUID)
    d.suspend(UUID)
    info = d.get_info(UUID)
    assert (info.state, info.managed_save) == (PowerState.SHUTDOWN, True)
    d.resume(UUID)
    assert d.get_info(UUID).state == PowerState.RUNNING
    assert d.reboot(UUID) == "soft" and d.reboot(UUID, hard=True) == "hard"
    assert d.get_console_output(UUID).count("ready. hostname=fake-1") == 3
    d.power_off(UUID)
    assert d.reboot(UUID) == "hard"  # a stopped guest can only be started
    assert d.attach_volume(UUID, Path("/v/1")) == "vdb"
    assert d.attach_volume(UUID, Path("/v/2")) == "vdc"
    d.detach_volume(UUID, "/v/1")
    assert d.volumes(UUID) == {"vdc": "/v/2"}
    d.destroy(UUID)
    d.destroy(UUID)
    with pytest.raises(InstanceNotFound):
        d.get_info(UUID)


def test_instance_spec_needs_a_uuid():
    with pytest.raises(ValueError):
        InstanceSpec("not-a-uuid", 64, 1, ImageRef("i", Path("/x")))
    assert InstanceSpec(UUID.upper(), 64, 1, ImageRef("i", Path("/x"))).uuid == UUID
