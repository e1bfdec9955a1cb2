"""Detaching a volume or an interface from a guest that does not let go at once.

A guest still booting has not set up ACPI hot-plug and drops the unplug request, so the
libvirt driver asks again every ``device_detach_timeout`` s, ``device_detach_attempts``
times (Nova's [libvirt] options). Here a fake libvirt domain plays such a guest; the
compute agent's side is checked with a fake conductor and a fake volume API: a guest
that never lets go leaves the volume in-use with its attachment, and a fault.
(tests/e2e/test_volume_guests.py does it with a real guest still booting.)
"""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

libvirt = pytest.importorskip("libvirt")

from onestack.compute import agent as agent_mod  # noqa: E402
from onestack.compute import clients  # noqa: E402
from onestack.compute.virt import (  # noqa: E402
    DeviceDetachFailed,
    DeviceNotFound,
    Interface,
    LibvirtDriver,
    domain,
)
from onestack.compute.virt.domain import Disk, DomainSpec  # noqa: E402

UUID = "6f1ab1b4-5b1c-4b5e-9d56-0d4a1f1b1c03"
VOL = "0d7a9c4e-2f4b-4f43-9c1e-5a6b7c8d9e01"
NIC = Interface("brq1234", "fa:16:3e:00:00:01", "tap1234")


def _domain_xml() -> str:
    dom = ET.fromstring(domain.domain_xml(DomainSpec(
        uuid=UUID, memory_mib=256, vcpus=1, root=Disk(Path("/i/disk"), backing=Path("/b/img")),
        console_log=Path("/i/console.log"), interfaces=[NIC])))
    dom.find("devices").append(domain.disk_element(Disk(Path("/v/vol1"), "vdb", format="raw", serial=VOL)))
    return ET.tostring(dom, encoding="unicode")


def _key(el: ET.Element) -> tuple:
    """What identifies a device, as libvirt matches it: a disk's target, a NIC's MAC."""
    if el.tag == "disk":
        return ("disk", el.find("target").get("dev"))
    return ("interface", el.find("mac").get("address").lower())


class FakeDomain:
    """libvirt's side of a running domain whose guest drops the first ``ignore`` unplug
    requests (later ones may fail with QEMU's "already in the process of unplug" while one
    is pending, as real QEMU does with ``pending_error``)."""

    def __init__(self, ignore: int = 0, pending_error: bool = False, active: bool = True):
        self.live = ET.fromstring(_domain_xml())
        self.config = ET.fromstring(_domain_xml())
        self.ignore, self.pending_error, self.active = ignore, pending_error, active
        self.requests = 0

    def isActive(self):
        return 1 if self.active else 0

    def XMLDesc(self, flags=0):
        root = self.config if flags & libvirt.VIR_DOMAIN_XML_INACTIVE or not self.active else self.live
        return ET.tostring(root, encoding="unicode")

    def _remove(self, root: ET.Element, key: tuple) -> None:
        devices = root.find("devices")
        for el in list(devices):
            if el.tag in ("disk", "interface") and _key(el) == key:
                devices.remove(el)
                return
        e = libvirt.libvirtError("device not found")
        e.err = (libvirt.VIR_ERR_DEVICE_MISSING, 0, "device not found", 2)
        raise e

    def detachDeviceFlags(self, xml: str, flags: int) -> None:
        key = _key(ET.fromstring(xml))
        if flags & libvirt.VIR_DOMAIN_AFFECT_CONFIG:
            self._remove(self.config, key)
        if flags & libvirt.VIR_DOMAIN_AFFECT_LIVE:
            self.requests += 1
            if self.pending_error and 1 < self.requests <= self.ignore:
                raise libvirt.libvirtError("internal error: unable to execute QEMU command 'device_del': "
                                           "Device virtio-disk1 is already in the process of unplug")
            if self.requests > self.ignore:
                self._remove(self.live, key)

    def has(self, key: tuple) -> tuple[bool, bool]:
        """(in the live XML, in the definition)"""
        return tuple(any(el.tag in ("disk", "interface") and _key(el) == key for el in root.find("devices"))
                     for root in (self.live, self.config))


def _driver(dom: FakeDomain, attempts: int = 8) -> LibvirtDriver:
    # only what the detach paths use: no libvirt connection, no state directory
    d = LibvirtDriver.__new__(LibvirtDriver)
    d.detach_attempts, d.detach_timeout = attempts, 0  # ask again at once: no waiting in tests
    d._lookup = lambda uuid: dom
    return d


# -- the driver


@pytest.mark.parametrize("pending_error", [False, True])
def test_volume_detach_asks_again_until_the_guest_lets_go(pending_error):
    dom = FakeDomain(ignore=3, pending_error=pending_error)
    _driver(dom).detach_volume(UUID, "vdb")
    assert dom.requests == 4
    assert dom.has(("disk", "vdb")) == (False, False)
    assert dom.has(("disk", "vda")) == (True, True)


def test_volume_detach_gives_up_leaving_the_disk_attached_everywhere():
    dom = FakeDomain(ignore=100)
    with pytest.raises(DeviceDetachFailed, match="did not release vdb.*asked 3 times"):
        _driver(dom, attempts=3).detach_volume(UUID, "vdb")
    assert dom.requests == 3
    # nothing half-removed: the definition agrees with the running guest
    assert dom.has(("disk", "vdb")) == (True, True)
    # a later detach (the guest has booted) succeeds
    dom.ignore = 0
    _driver(dom).detach_volume(UUID, "vdb")
    assert dom.has(("disk", "vdb")) == (False, False)
    with pytest.raises(DeviceNotFound):
        _driver(dom).detach_volume(UUID, "vdb")


def test_stopped_guest_detaches_from_its_definition_only():
    dom = FakeDomain(ignore=100, active=False)
    _driver(dom, attempts=1).detach_volume(UUID, "/v/vol1")  # by its file too
    assert dom.requests == 0 and not dom.has(("disk", "vdb"))[1]


def test_interface_detach_asks_again_and_gives_up_the_same_way():
    key = ("interface", NIC.mac)
    dom = FakeDomain(ignore=2, pending_error=True)
    _driver(dom).detach_interface(UUID, NIC.mac.upper())
    assert dom.requests == 3 and dom.has(key) == (False, False)

    dom = FakeDomain(ignore=100)
    with pytest.raises(DeviceDetachFailed, match=f"did not release {NIC.mac}"):
        _driver(dom, attempts=2).detach_interface(UUID, NIC.mac)
    assert dom.requests == 2 and dom.has(key) == (True, True)
    with pytest.raises(DeviceNotFound):
        _driver(dom).detach_interface(UUID, "fa:16:3e:00:00:99")


# -- the compute agent


class FakeConductor:
    def __init__(self, inst: dict):
        self.inst = inst
        self.updates: list[dict] = []
        self.events: list[dict] = []

    def instance_get(self, instance_uuid):
        return copy.deepcopy(self.inst)

    def instance_update(self, instance_uuid, **changes):
        self.updates.append(changes)
        return copy.deepcopy(self.inst)

    def action_event(self, **kw):
        self.events.append(kw)

    def bdm_delete(self, instance_uuid, volume_id):
        bdms = self.inst["block_device_mapping"]
        self.inst["block_device_mapping"] = [b for b in bdms if b["volume_id"] != volume_id]
        return True


class FakeVolumeAPI:
    """The volume API's statuses as its attachments make them (the API's begin_detaching
    has made the volume "detaching")."""

    def __init__(self):
        self.status, self.attachments = "detaching", {"att-1"}

    def _settle(self):
        self.status = "in-use" if self.attachments else "available"

    def post(self, path, json=None, **kw):
        assert path == f"/volumes/{VOL}/action"
        if "os-roll_detaching" in json and self.status == "detaching":
            self._settle()

    def delete(self, path, **kw):
        self.attachments.discard(path.removeprefix("/attachments/"))
        self._settle()


class FakeClients:
    def __init__(self):
        self.volume = FakeVolumeAPI()


def test_agent_detach_failure_rolls_the_volume_back_to_in_use(monkeypatch):
    fake = FakeClients()
    monkeypatch.setattr(clients, "current", fake)
    dom = FakeDomain(ignore=100)
    a = agent_mod.ComputeAgent("h1", _driver(dom, attempts=2), plug=False)
    bdm = {"source_type": "volume", "destination_type": "volume", "volume_id": VOL, "device": "/dev/vdb",
           "attachment_id": "att-1", "boot_index": None}
    a.conductor = FakeConductor({"uuid": UUID, "deleted": False, "block_device_mapping": [bdm]})

    a.detach_volume(UUID, VOL, request_id="req-1")
    vol = fake.volume
    assert (vol.status, vol.attachments) == ("in-use", {"att-1"})  # never left "detaching"
    assert a.conductor.inst["block_device_mapping"] == [bdm]
    assert dom.has(("disk", "vdb")) == (True, True)
    fault = next(u["fault"] for u in a.conductor.updates if "fault" in u)
    assert "did not release vdb" in fault["message"] and fault["details"]
    done = a.conductor.events[-1]
    assert (done["event"], done["phase"], done["result"]) == ("compute_detach_volume", "finish", "Error")
    assert "did not release vdb" in done["details"] and done["traceback"]

    # asked again once the guest has booted: it goes
    dom.ignore = dom.requests
    vol.status = "detaching"
    a.detach_volume(UUID, VOL, request_id="req-2")
    assert (vol.status, vol.attachments) == ("available", set())
    assert a.conductor.inst["block_device_mapping"] == []
    assert dom.has(("disk", "vdb")) == (False, False)
    assert a.conductor.events[-1]["result"] == "Success"
