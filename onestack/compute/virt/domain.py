"""libvirt domain XML for an instance, built with ElementTree (no string pasting).

    <domain type='qemu|kvm'>  name onestack-<uuid>, the instance uuid
      memory/vcpus, os hvm (machine pc) booting from the first disk
      vda: qcow2 overlay on virtio          (the root disk; its base read-only, not relabelled)
      vdz: vfat config drive, virtio, ro    or hdd: iso9660 config drive, IDE CD-ROM
      serial pty, logged to <instance dir>/console.log by virtlogd (append, kept across
                restarts), so the console output survives reboots and is readable
      VNC on 127.0.0.1 (autoport), virtio-rng, virtio balloon
      interfaces: bridge + MAC + tap name (Linux bridge design), virtio

Machine type `pc` (i440fx): PCI hot-plug of volumes needs no spare root ports, and
its IDE controller carries a CD-ROM config drive. The libvirt target name of a
disk is a hint: a Linux guest names virtio disks in probe order (vda, vdb, ...).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "onestack-"
XMLNS = "http://onestack.dev/xmlns/compute/1.0"
CONFIG_DRIVE_TARGETS = {"virtio": "vdz", "ide": "hdd"}
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_DEV = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")  # a kernel interface name


def domain_name(uuid: str) -> str:
    return PREFIX + uuid


def uuid_of(name: str) -> str | None:
    """The instance uuid of an onestack domain name, None for any other domain."""
    return name[len(PREFIX) :] if name.startswith(PREFIX) else None


@dataclass(frozen=True)
class NbdSource:
    """A volume exported over NBD by its volume node (onestack.volume.exports): the guest's
    QEMU connects to host:port and opens the export `name` (the per-attachment secret)."""

    host: str
    port: int
    name: str
    tls: bool = False

    def __str__(self) -> str:  # what volumes() and logs show: never the export name
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"nbd://{host}:{self.port}"

    def __repr__(self) -> str:
        return f"NbdSource({self.host}:{self.port})"


@dataclass
class Disk:
    path: Path | NbdSource  # a file, or a network disk served over NBD (presented raw)
    target: str = "vda"  # vdX on virtio, hdX on IDE
    bus: str = "virtio"  # virtio | ide
    device: str = "disk"  # disk | cdrom
    format: str = "qcow2"  # qcow2 | raw
    readonly: bool = False
    serial: str | None = None  # e.g. a volume id (first 20 characters, as Nova)
    cache: str = "none"  # none | writethrough | writeback
    # the qcow2 base of an overlay: named in the XML with relabel='no', so libvirt does
    # not hand the shared base to this guest's QEMU user (it only needs to read it)
    backing: Path | None = None

    def __post_init__(self):
        if self.bus not in ("virtio", "ide"):
            raise ValueError(f"disk bus {self.bus!r}: virtio or ide")
        if self.device not in ("disk", "cdrom"):
            raise ValueError(f"disk device {self.device!r}: disk or cdrom")
        if self.format not in ("qcow2", "raw"):
            raise ValueError(f"disk format {self.format!r}: qcow2 or raw")
        if not re.match(r"^(vd|hd)[a-z]{1,2}$", self.target):
            raise ValueError(f"disk target {self.target!r}: vdX or hdX")


@dataclass
class Interface:
    """A port: a tap named `target` enslaved to Linux bridge `bridge`, with `mac`."""

    bridge: str
    mac: str
    target: str
    mtu: int | None = None
    model: str = "virtio"

    def __post_init__(self):
        self.mac = self.mac.lower()
        if not _MAC.match(self.mac):
            raise ValueError(f"MAC address {self.mac!r} is not aa:bb:cc:dd:ee:ff")
        for what, name in (("bridge", self.bridge), ("tap", self.target)):
            if not _DEV.match(name):
                raise ValueError(f"{what} name {name!r} is not a valid interface name")


@dataclass
class DomainSpec:
    uuid: str
    memory_mib: int
    vcpus: int
    root: Disk
    console_log: Path
    virt_type: str = "qemu"  # qemu (TCG) | kvm
    config_drive: Disk | None = None
    interfaces: list[Interface] = field(default_factory=list)
    machine: str = "pc"
    vnc_listen: str = "127.0.0.1"
    # shown in <metadata>: display name, flavor, project and user ids
    display_name: str = ""
    flavor: str = ""
    project_id: str = ""
    user_id: str = ""

    @property
    def name(self) -> str:
        return domain_name(self.uuid)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, {k.rstrip("_"): v for k, v in attrs.items()})
    if text is not None:
        el.text = text
    return el


def disk_element(disk: Disk) -> ET.Element:
    if isinstance(disk.path, NbdSource):
        nbd = disk.path
        el = ET.Element("disk", {"type": "network", "device": disk.device})
        _sub(el, "driver", name="qemu", type="raw", cache=disk.cache, discard="unmap")
        source = _sub(el, "source", protocol="nbd", name=nbd.name, **({"tls": "yes"} if nbd.tls else {}))
        host = nbd.host[1:-1] if nbd.host.startswith("[") else nbd.host
        _sub(source, "host", name=host, port=str(nbd.port))
    else:
        el = ET.Element("disk", {"type": "file", "device": disk.device})
        _sub(el, "driver", name="qemu", type=disk.format, cache=disk.cache, discard="unmap")
        _sub(el, "source", file=str(disk.path))
    if disk.backing is not None:
        store = _sub(el, "backingStore", type="file")
        _sub(store, "format", type="qcow2")
        source = _sub(store, "source", file=str(disk.backing))
        _sub(source, "seclabel", model="dac", relabel="no")
        _sub(store, "backingStore")  # the base has no backing file of its own
    _sub(el, "target", dev=disk.target, bus=disk.bus)
    if disk.readonly:
        _sub(el, "readonly")
    if disk.serial:
        _sub(el, "serial", disk.serial[:20])
    return el


def disk_xml(disk: Disk) -> str:
    """<disk> for attachDeviceFlags / detachDeviceFlags."""
    return ET.tostring(disk_element(disk), encoding="unicode")


def interface_element(nic: Interface) -> ET.Element:
    el = ET.Element("interface", {"type": "bridge"})
    _sub(el, "source", bridge=nic.bridge)
    _sub(el, "mac", address=nic.mac)
    _sub(el, "target", dev=nic.target)
    _sub(el, "model", type=nic.model)
    if nic.mtu:
        _sub(el, "mtu", size=str(nic.mtu))
    return el


def domain_xml(spec: DomainSpec) -> str:
    if spec.virt_type not in ("qemu", "kvm"):
        raise ValueError(f"virt_type {spec.virt_type!r}: qemu or kvm")
    if spec.memory_mib < 16 or spec.vcpus < 1:
        raise ValueError("memory_mib must be at least 16 and vcpus at least 1")
    dom = ET.Element("domain", {"type": spec.virt_type})
    _sub(dom, "name", spec.name)
    _sub(dom, "uuid", spec.uuid)
    meta = _sub(dom, "metadata")
    ET.register_namespace("onestack", XMLNS)
    inst = _sub(meta, f"{{{XMLNS}}}instance")
    for tag, value in (
        ("name", spec.display_name),
        ("flavor", spec.flavor),
        ("project", spec.project_id),
        ("user", spec.user_id),
    ):
        _sub(inst, f"{{{XMLNS}}}{tag}", value)
    _sub(dom, "memory", str(spec.memory_mib), unit="MiB")
    _sub(dom, "currentMemory", str(spec.memory_mib), unit="MiB")
    _sub(dom, "vcpu", str(spec.vcpus), placement="static")
    os_ = _sub(dom, "os")
    _sub(os_, "type", "hvm", arch="x86_64", machine=spec.machine)
    _sub(os_, "boot", dev="hd")
    features = _sub(dom, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    if spec.virt_type == "kvm":
        _sub(dom, "cpu", mode="host-model")
    _sub(dom, "clock", offset="utc")
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "restart")
    _sub(dom, "on_crash", "destroy")

    devices = _sub(dom, "devices")
    devices.append(disk_element(spec.root))
    if spec.config_drive is not None:
        devices.append(disk_element(spec.config_drive))
    for nic in spec.interfaces:
        devices.append(interface_element(nic))
    serial = _sub(devices, "serial", type="pty")
    _sub(serial, "log", file=str(spec.console_log), append="on")
    _sub(serial, "target", port="0")
    console = _sub(devices, "console", type="pty")
    _sub(console, "target", type="serial", port="0")
    _sub(devices, "input", type="tablet", bus="usb")
    graphics = _sub(devices, "graphics", type="vnc", autoport="yes", listen=spec.vnc_listen)
    _sub(graphics, "listen", type="address", address=spec.vnc_listen)
    video = _sub(devices, "video")
    _sub(video, "model", type="vga")
    rng = _sub(devices, "rng", model="virtio")
    _sub(rng, "backend", "/dev/urandom", model="random")
    balloon = _sub(devices, "memballoon", model="virtio")
    _sub(balloon, "stats", period="10")  # the guest reports its memory use (Nova's mem_stats_period_seconds)
    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode")


def config_drive_disk(path: Path, fmt: str) -> Disk:
    """vfat: a read-only virtio disk (vdz); iso9660: an IDE CD-ROM (hdd), as Nova."""
    if fmt == "vfat":
        return Disk(path, CONFIG_DRIVE_TARGETS["virtio"], "virtio", "disk", "raw", readonly=True)
    return Disk(path, CONFIG_DRIVE_TARGETS["ide"], "ide", "cdrom", "raw", readonly=True)


def disk_targets(xml: str) -> dict[str, str]:
    """target dev -> source file of the disks in a domain's XML (nbd://host:port for an
    NBD network disk)."""
    out = {}
    for disk in ET.fromstring(xml).iter("disk"):
        target, source = disk.find("target"), disk.find("source")
        if target is not None:
            out[target.get("dev")] = _source_of(source)
    return out


def _source_of(source: ET.Element | None) -> str:
    if source is None:
        return ""
    if source.get("protocol") == "nbd":
        host = source.find("host")
        if host is not None:
            return str(NbdSource(host.get("name", ""), int(host.get("port") or 10809), ""))
    return source.get("file") or ""


def next_virtio_target(used: set[str]) -> str:
    """The first free vdX after vda, leaving vdz to the config drive."""
    for c in "bcdefghijklmnopqrstuvwxy":
        if f"vd{c}" not in used:
            return f"vd{c}"
    raise ValueError("no free virtio disk name (vdb..vdy all used)")


# -- reading and changing the XML of a defined domain (resize, rescue, rebuild, consoles)


def interface_xml(nic: Interface) -> str:
    """<interface> for attachDeviceFlags / detachDeviceFlags."""
    return ET.tostring(interface_element(nic), encoding="unicode")


def interfaces_of(xml: str) -> list[Interface]:
    """The bridge interfaces of a domain's XML, in order, as Interface values."""
    out = []
    for el in ET.fromstring(xml).iter("interface"):
        if el.get("type") != "bridge":
            continue
        source, mac, target = el.find("source"), el.find("mac"), el.find("target")
        model, mtu = el.find("model"), el.find("mtu")
        if source is None or mac is None or target is None:
            continue
        out.append(
            Interface(
                source.get("bridge", ""),
                mac.get("address", ""),
                target.get("dev", ""),
                mtu=int(mtu.get("size")) if mtu is not None and mtu.get("size") else None,
                model=model.get("type", "virtio") if model is not None else "virtio",
            )
        )
    return out


def set_resources(xml: str, memory_mib: int, vcpus: int) -> str:
    """The domain XML with new memory and vCPU counts (everything else kept)."""
    if memory_mib < 16 or vcpus < 1:
        raise ValueError("memory_mib must be at least 16 and vcpus at least 1")
    dom = ET.fromstring(xml)
    for tag in ("memory", "currentMemory"):
        el = dom.find(tag)
        if el is None:
            el = _sub(dom, tag)
        el.text, el.attrib = str(memory_mib), {"unit": "MiB"}
    vcpu = dom.find("vcpu")
    if vcpu is None:
        vcpu = _sub(dom, "vcpu", placement="static")
    vcpu.text = str(vcpus)
    vcpu.attrib.pop("current", None)
    return ET.tostring(dom, encoding="unicode")


def _strip_addresses(el: ET.Element) -> None:
    """Drop what libvirt assigned (PCI/drive address, alias), so it assigns them anew."""
    for tag in ("address", "alias"):
        for child in el.findall(tag):
            el.remove(child)


def volume_elements(xml: str) -> list[ET.Element]:
    """The <disk> elements of attached volumes (not the root disk, not the config drive),
    without their libvirt-assigned addresses."""
    out = []
    for disk in ET.fromstring(xml).iter("disk"):
        target = disk.find("target")
        if target is None or target.get("dev") in ("vda", *CONFIG_DRIVE_TARGETS.values()):
            continue
        _strip_addresses(disk)
        out.append(disk)
    return out


def with_disks(xml: str, disks: list[ET.Element]) -> str:
    """The domain XML with `disks` appended after its own disks."""
    dom = ET.fromstring(xml)
    devices = dom.find("devices")
    last = max((i for i, el in enumerate(devices) if el.tag == "disk"), default=-1)
    for n, disk in enumerate(disks):
        devices.insert(last + 1 + n, disk)
    return ET.tostring(dom, encoding="unicode")


def rescue_xml(xml: str, rescue: Disk) -> str:
    """The domain booting from `rescue` (vda, boot order 1), its own root disk kept as
    the next free virtio disk, everything else (config drive, volumes, interfaces) as
    it was. The disks' addresses are dropped so libvirt places them in this order."""
    dom = ET.fromstring(xml)
    os_ = dom.find("os")
    if os_ is not None:
        for boot in os_.findall("boot"):
            os_.remove(boot)
    devices = dom.find("devices")
    disks = [el for el in devices if el.tag == "disk"]
    used = {d.find("target").get("dev") for d in disks if d.find("target") is not None}
    for disk in disks:
        _strip_addresses(disk)
        for boot in disk.findall("boot"):
            disk.remove(boot)
        target = disk.find("target")
        if target is not None and target.get("dev") == "vda":
            target.set("dev", next_virtio_target(used))
            used.add(target.get("dev"))
    el = disk_element(rescue)
    _sub(el, "boot", order="1")
    devices.insert(0, el)
    return ET.tostring(dom, encoding="unicode")


def vnc_of(xml: str) -> tuple[str, int] | None:
    """(listen address, port) of a running domain's VNC server, from its live XML."""
    for g in ET.fromstring(xml).iter("graphics"):
        if g.get("type") != "vnc":
            continue
        port = int(g.get("port") or -1)
        if port <= 0:
            return None
        listen = g.get("listen")
        sub = g.find("listen")
        if sub is not None and sub.get("address"):
            listen = sub.get("address")
        return (listen or "127.0.0.1", port)
    return None


def serial_pty_of(xml: str) -> str | None:
    """The pty of a running domain's first serial port, from its live XML."""
    for tag in ("serial", "console"):
        for el in ET.fromstring(xml).iter(tag):
            if el.get("type") != "pty":
                continue
            source = el.find("source")
            path = source.get("path") if source is not None else el.get("tty")
            if path:
                return path
    return None


def backing_file(xml: str, target: str = "vda") -> str | None:
    """The backing file of disk `target` as the domain XML names it (a qcow2 overlay's base)."""
    for disk in ET.fromstring(xml).iter("disk"):
        t = disk.find("target")
        if t is not None and t.get("dev") == target:
            source = disk.find("backingStore/source")
            return source.get("file") if source is not None else None
    return None


def migration_xml(xml: str, src_dir: str, dest_dir: str, dest_base: str | None, target: str = "vda") -> str:
    """The domain XML for the destination of a live migration: every path under the
    instance directory `src_dir` moved under `dest_dir` (disks, config drive, console log),
    and the root disk `target` on the destination's copy of its base (`dest_base`), or
    standalone (None: the whole disk is copied)."""
    dom = ET.fromstring(xml)
    prefix = src_dir.rstrip("/") + "/"
    for el in dom.iter():
        for key, value in el.attrib.items():
            if key in ("file", "path") and value.startswith(prefix):
                el.set(key, dest_dir.rstrip("/") + "/" + value[len(prefix):])
    for disk in dom.iter("disk"):
        t = disk.find("target")
        store = disk.find("backingStore")
        if t is None or t.get("dev") != target or store is None:
            continue
        if dest_base is None:
            for child in list(store):
                store.remove(child)
            store.attrib.clear()  # <backingStore/>: no backing file
        else:
            source = store.find("source")
            if source is not None:
                source.set("file", dest_base)
    return ET.tostring(dom, encoding="unicode")
