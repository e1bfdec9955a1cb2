"""The virt driver interface, its libvirt implementation, and a fake for API tests.

The compute agent calls a `VirtDriver`; every method is blocking (the agent runs
them in worker threads) and addresses an instance by its uuid. `LibvirtDriver`
runs real guests through libvirt on qemu:///system; `FakeDriver` keeps instances
in memory, for API tests and scale simulation only.

On disk (LibvirtDriver), under <state>/compute:

    base/<image id>                  cached base images (images.ImageCache)
    instances/<uuid>/disk            qcow2 overlay on the base
    instances/<uuid>/disk.config     config drive (vfat or iso9660)
    instances/<uuid>/console.log     serial console, written by virtlogd

Every failure of spawn removes what spawn made (domain, overlay, config drive,
instance directory); destroy removes them too and leaves no domain defined.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import threading
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

from onestack.common import fsacl, qemu_img
from onestack.compute.virt import accel, configdrive, transfer
from onestack.compute.virt.domain import (
    CONFIG_DRIVE_TARGETS,
    Disk,
    DomainSpec,
    Interface,
    NbdSource,
    backing_file,
    config_drive_disk,
    disk_targets,
    disk_xml,
    domain_name,
    domain_xml,
    interface_xml,
    interfaces_of,
    migration_xml,
    next_virtio_target,
    rescue_xml,
    serial_pty_of,
    set_resources,
    uuid_of,
    vnc_of,
    volume_elements,
    with_disks,
)
from onestack.compute.virt.errors import (
    ConsoleUnavailable,
    DeviceDetachFailed,
    DeviceNotFound,
    InstanceNotFound,
    VirtError,
)
from onestack.compute.virt.images import (
    GiB,
    ImageCache,
    create_overlay,
    flatten,
    grow,
    virtual_size,
    write_empty_qcow2,
)

log = logging.getLogger(__name__)

CONSOLE_LOG = "console.log"
DISK = "disk"  # the root disk (qcow2 overlay)
CONFIG_DISK = "disk.config"
RESCUE_DISK = "disk.rescue"  # the disk a rescued guest boots from
RESCUE_XML = "unrescue.xml"  # the definition to go back to on unrescue
RESIZE_DISK = "disk.resize-backup"  # the root disk from before a resize, until confirmed
RESIZE_STATE = "resize.json"  # the definition and power state from before a resize
QEMU_USER = QEMU_GROUP = "libvirt-qemu"  # qemu.conf's user and group on Debian
# Linux input key codes (libvirt VIR_KEYCODE_SET_LINUX): ctrl-alt-del
KEY_LEFTCTRL, KEY_LEFTALT, KEY_DELETE = 29, 56, 111


class PowerState(IntEnum):
    """Nova's power_state values, as the API reports them."""

    NOSTATE = 0
    RUNNING = 1
    PAUSED = 3
    SHUTDOWN = 4
    CRASHED = 6
    SUSPENDED = 7


@dataclass(frozen=True)
class InstanceInfo:
    state: PowerState
    memory_kib: int
    vcpus: int
    cpu_time_ns: int = 0
    # suspended (libvirt managed save): the domain is off (SHUTDOWN, as Nova reports
    # it) with its memory saved, and resume restores it
    managed_save: bool = False


@dataclass
class GuestStats:
    """One poll of a running guest's counters (telemetry): cumulative since the guest's
    QEMU started, as libvirt reports them."""

    cpu_time_ns: int
    vcpus: int
    memory_mb: int  # what the guest has now (balloon)
    memory_used_mb: float | None  # what it uses: the guest's own figure, else QEMU's resident set
    # target device (vda) -> read_bytes, write_bytes, read_requests, write_requests
    disks: dict[str, dict[str, int]] = field(default_factory=dict)
    # tap name -> rx_bytes, tx_bytes, rx_packets, tx_packets
    interfaces: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass
class ImageRef:
    """The image to boot: a cache key and where its data comes from."""

    id: str | None  # the image service's id; None: key by the data's sha256
    source: Path | Callable[[Path], None]  # a file, or a function that writes it to a path
    disk_format: str = "qcow2"


@dataclass
class ConfigDrive:
    """What goes on the config drive (see configdrive.files)."""

    meta_data: dict
    user_data: bytes | None = None
    network_data: dict | None = None
    vendor_data: dict | None = None
    ec2_meta_data: dict | None = None
    format: str = "vfat"  # vfat (virtio disk) | iso9660 (IDE CD-ROM)


@dataclass
class InstanceSpec:
    uuid: str
    memory_mib: int
    vcpus: int
    image: ImageRef
    root_gb: int = 0  # 0: the image's own virtual size
    config_drive: ConfigDrive | None = None
    interfaces: list[Interface] = field(default_factory=list)
    display_name: str = ""
    flavor: str = ""
    project_id: str = ""
    user_id: str = ""
    # booted from a volume: this file (or NBD export) is the root disk vda (no image, no overlay)
    root_volume: Path | NbdSource | None = None
    root_volume_format: str = "raw"
    root_volume_serial: str | None = None

    def __post_init__(self):
        self.uuid = str(uuidlib.UUID(self.uuid))  # canonical form, or ValueError


class VirtDriver(ABC):
    """What the compute agent needs from a hypervisor."""

    virt_type: str = "fake"

    @abstractmethod
    def spawn(self, spec: InstanceSpec) -> InstanceInfo:
        """Build the disks, define and start the guest; RUNNING when it returns."""

    @abstractmethod
    def destroy(self, uuid: str) -> None:
        """Stop the guest, undefine it and delete its files; fine if it is already gone."""

    @abstractmethod
    def reboot(self, uuid: str, hard: bool = False, timeout: float = 60) -> str:
        """Restart the guest: "soft" (the guest reboots itself) or "hard" (reset); which was done."""

    @abstractmethod
    def power_off(self, uuid: str, timeout: float = 0) -> None:
        """Stop the guest: a clean shutdown for up to `timeout` s, then pull the plug."""

    @abstractmethod
    def power_on(self, uuid: str) -> None: ...

    @abstractmethod
    def pause(self, uuid: str) -> None: ...

    @abstractmethod
    def unpause(self, uuid: str) -> None: ...

    @abstractmethod
    def suspend(self, uuid: str) -> None:
        """Save the guest's memory to disk and stop it."""

    @abstractmethod
    def resume(self, uuid: str) -> None:
        """Restore a suspended guest."""

    @abstractmethod
    def get_info(self, uuid: str) -> InstanceInfo:
        """The guest's state; InstanceNotFound if there is no such guest here."""

    @abstractmethod
    def console_log_path(self, uuid: str) -> Path: ...

    @abstractmethod
    def attach_volume(
        self,
        uuid: str,
        path: Path | NbdSource,
        *,
        device: str | None = None,
        serial: str | None = None,
        disk_format: str = "raw",
    ) -> str:
        """Attach a disk file (or a volume node's NBD export, raw) as a virtio disk; the
        device name given to it (vdb, ...)."""

    @abstractmethod
    def detach_volume(self, uuid: str, device: str) -> None:
        """Detach the disk `device` (or the disk whose file is `device`): from the running guest
        (asked again until it lets go) and from the definition. DeviceNotFound if there is no
        such disk; DeviceDetachFailed if the guest never let go (it is then still attached,
        in the definition too)."""

    def extend_volume(self, uuid: str, device: str, new_size_bytes: int) -> None:
        """Tell a running guest that its disk `device` is now `new_size_bytes` long (the volume
        grew online); a stopped guest sees the size at its next start."""
        raise VirtError(f"{type(self).__name__} cannot extend volumes online")

    @abstractmethod
    def list_instances(self) -> list[str]:
        """uuids of the instances this driver has on this host."""

    def volumes(self, uuid: str) -> dict[str, str]:
        """Attached volumes: device -> file."""
        return {}

    # -- what Nova's server actions need

    @abstractmethod
    def snapshot(self, uuid: str, dest: Path) -> int:
        """Write the root disk as it is now, flattened into a standalone qcow2 at `dest`
        (a running guest is paused for the copy and resumed); its virtual size."""

    @abstractmethod
    def resize(self, uuid: str, memory_mib: int, vcpus: int, root_gb: int) -> InstanceInfo:
        """Give the guest new memory/vCPUs and grow its root disk to `root_gb` GiB (0: keep
        the size; smaller than now: VirtError). A running guest is stopped for it and
        started again. What revert_resize needs is kept until confirm or revert."""

    @abstractmethod
    def confirm_resize(self, uuid: str) -> None:
        """Forget what the last resize kept for a revert; fine if there is nothing."""

    @abstractmethod
    def revert_resize(self, uuid: str) -> InstanceInfo:
        """Back to the memory, vCPUs and root disk (contents too) from before the resize,
        running if it was running then."""

    # -- moves between hosts. Cold: migrate_disk_and_power_off (source) -> finish_migration
    # (destination) -> confirm_migration | finish_revert_migration (source). Live:
    # live_migration_info (source) -> prepare_incoming (destination) -> live_migrate (source)
    # -> finish_incoming (destination) | rollback_incoming (destination).

    def migrate_disk_and_power_off(self, uuid: str, address: str, timeout: float = 0) -> dict:
        """Cold migration, on the source: stop the guest and offer its root disk to the
        destination at `address`; what finish_migration there needs (plain data). The
        stopped guest stays here until confirm_migration or finish_revert_migration."""
        raise VirtError(f"{type(self).__name__} cannot migrate guests")

    @abstractmethod
    def migration_transfer_done(self, uuid: str) -> None:
        """On the source: the destination has the disk (or gave up): stop offering it."""

    def finish_migration(self, spec: InstanceSpec, disk_info: dict, power_on: bool = True) -> InstanceInfo:
        """Cold migration, on the destination: the guest of `spec` made here around the disk
        the source offers (grown to `spec.root_gb`), running if `power_on`. Any failure
        removes what it made."""
        raise VirtError(f"{type(self).__name__} cannot migrate guests")

    def confirm_migration(self, uuid: str) -> None:
        """On the source, once the move is confirmed: the stopped guest and its files go."""
        self.migration_transfer_done(uuid)
        self.destroy(uuid)

    def finish_revert_migration(self, uuid: str, power_on: bool = True) -> InstanceInfo:
        """On the source, the move reverted: the stopped guest is back, running if `power_on`."""
        raise VirtError(f"{type(self).__name__} cannot migrate guests")

    def live_migration_info(self, uuid: str) -> dict:
        """Live migration, on the source: what the destination must prepare (plain data)."""
        raise VirtError(f"{type(self).__name__} cannot live-migrate guests")

    def prepare_incoming(self, spec: InstanceSpec, info: dict) -> dict:
        """On the destination: disks and definition ready to receive the running guest of
        `spec`; what live_migrate on the source needs (plain data)."""
        raise VirtError(f"{type(self).__name__} cannot live-migrate guests")

    def live_migrate(self, uuid: str, dest: dict, progress: Callable[[dict], None] | None = None) -> None:
        """On the source: move the running guest to the destination `dest` prepared; returns
        once it runs there and is gone here (files too). `progress` is told the job's
        memory/disk figures now and then."""
        raise VirtError(f"{type(self).__name__} cannot live-migrate guests")

    def finish_incoming(self, uuid: str, running: bool = True) -> InstanceInfo:
        """On the destination, after live_migrate: the guest is this host's now; running
        (resumed if the move paused it) unless `running` is False (it was paused)."""
        raise VirtError(f"{type(self).__name__} cannot live-migrate guests")

    @abstractmethod
    def rollback_incoming(self, uuid: str) -> None:
        """On the destination, the live migration failed: what prepare_incoming made goes."""

    def live_migration_abort(self, uuid: str) -> None:
        """Cancel the live migration of `uuid` in progress (the guest stays here)."""
        raise VirtError(f"{type(self).__name__} cannot abort live migrations")

    def live_migration_force_complete(self, uuid: str) -> None:
        """Make the live migration in progress finish (the guest is paused so that its memory
        stops changing; the destination resumes it)."""
        raise VirtError(f"{type(self).__name__} cannot force live migrations")

    @abstractmethod
    def rebuild(self, spec: InstanceSpec, start: bool = True) -> InstanceInfo:
        """A new root disk (and config drive) from `spec.image`, keeping the instance's
        uuid, console log, attached volumes and interfaces (those of the domain when
        `spec.interfaces` is empty); started unless `start` is False. An instance with
        no domain here (a failed build) is spawned afresh."""

    @abstractmethod
    def rescue(self, uuid: str, image: ImageRef) -> InstanceInfo:
        """Boot from a fresh disk of `image`, the instance's own root disk attached as
        the second disk; unrescue goes back."""

    @abstractmethod
    def unrescue(self, uuid: str) -> InstanceInfo: ...

    @abstractmethod
    def attach_interface(self, uuid: str, nic: Interface) -> None:
        """Plug a port in (live when running, and in the definition)."""

    @abstractmethod
    def detach_interface(self, uuid: str, mac: str) -> None:
        """Unplug the interface with MAC `mac` (errors as detach_volume's)."""

    @abstractmethod
    def interfaces(self, uuid: str) -> list[Interface]:
        """The guest's interfaces as defined."""

    @abstractmethod
    def vnc_address(self, uuid: str) -> tuple[str, int]:
        """(host, port) of the running guest's VNC server; ConsoleUnavailable otherwise."""

    @abstractmethod
    def serial_pty(self, uuid: str) -> str:
        """The pty of the running guest's serial console; ConsoleUnavailable otherwise."""

    @abstractmethod
    def diagnostics(self, uuid: str) -> dict:
        """Nova's standard diagnostics (API 2.48 shape)."""

    @abstractmethod
    def host_resources(self) -> dict:
        """What this host offers: vcpus, memory_mb, local_gb, hypervisor_type,
        hypervisor_version (Nova's integer, 7002000 for 7.2.0), cpu_info."""

    def guest_stats(self) -> dict[str, GuestStats]:
        """Counters of every running guest of this host (uuid -> stats), read at once: the
        telemetry collector's poll. Stopped guests are left out."""
        return {}

    def get_console_output(self, uuid: str, max_bytes: int = 256 * 1024) -> str:
        """The end of the serial console log (os-getConsoleOutput)."""
        path = self.console_log_path(uuid)
        try:
            with open(path, "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - max_bytes))
                data = f.read()
        except FileNotFoundError:
            return ""
        return data.decode(errors="replace").replace("\r\n", "\n")


# ---------------------------------------------------------------------------------------
# libvirt


_LIBVIRT_STATES = {  # virDomainState -> power state (as Nova's libvirt driver maps them)
    0: PowerState.NOSTATE,
    1: PowerState.RUNNING,
    2: PowerState.RUNNING,  # blocked
    3: PowerState.PAUSED,
    4: PowerState.SHUTDOWN,  # being shut down
    5: PowerState.SHUTDOWN,  # shut off
    6: PowerState.CRASHED,
    7: PowerState.SUSPENDED,  # pmsuspended
}

_event_lock = threading.Lock()
_event_loop_started = False


def _libvirt():
    try:
        import libvirt  # noqa: PLC0415  (only hosts that run real guests need the binding)
    except ImportError as e:  # pragma: no cover - the package is a dependency
        raise VirtError("the libvirt-python package is not installed") from e
    return libvirt


def _start_event_loop() -> None:
    """libvirt's default event loop on a daemon thread (once per process): domain events
    and connection keepalives. Must run before the first connection is opened."""
    global _event_loop_started
    with _event_lock:
        if _event_loop_started:
            return
        libvirt = _libvirt()
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # no stderr noise
        libvirt.virEventRegisterDefaultImpl()

        def run():
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _event_loop_started = True


def make_reachable(path: Path, user: str) -> list[Path]:
    """Let `user` (the QEMU user) traverse every directory down to `path` (search-only ACL
    entries where it could not); the directories changed."""
    try:
        return fsacl.let_pass(path, user)
    except fsacl.PassError as e:
        raise VirtError(str(e)) from None


def _direct_io_works(directory: Path) -> bool:
    """Whether files here can be opened with O_DIRECT (QEMU's cache=none needs it)."""
    probe = directory / ".directio-probe"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_WRONLY | getattr(os, "O_DIRECT", 0), 0o600)
        os.close(fd)
        return True
    except OSError:
        return False
    finally:
        probe.unlink(missing_ok=True)


class LibvirtDriver(VirtDriver):
    """Guests as libvirt domains `onestack-<uuid>` on qemu:///system."""

    def __init__(
        self,
        state_dir: Path,
        *,
        uri: str = "qemu:///system",
        virt_type: str | None = None,
        qemu_user: str = QEMU_USER,
        qemu_group: str = QEMU_GROUP,
        detach_attempts: int = 8,
        detach_timeout: float = 20,
        vnc_listen: str = "127.0.0.1",
    ):
        self.uri = uri
        self.vnc_listen = vnc_listen
        # a device unplug is asked of the guest this often, this many seconds apart
        self.detach_attempts = max(1, detach_attempts)
        self.detach_timeout = max(0.0, detach_timeout)
        self.qemu_user = qemu_user
        self.root = Path(state_dir) / "compute"
        self.instances_dir = self.root / "instances"
        self.images = ImageCache(self.root / "base", group=qemu_group)
        for d in (self.root, self.images.root, self.instances_dir):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o711)  # QEMU may pass, nobody may list
        make_reachable(self.instances_dir, qemu_user)
        self.accel = accel.detect() if virt_type is None else accel.Accel(virt_type, "configured")
        self.virt_type = self.accel.virt_type
        self.disk_cache = "none" if _direct_io_works(self.instances_dir) else "writethrough"
        self._conn_lock = threading.Lock()
        self._conn = None
        self._reboots: dict[str, int] = {}  # uuid -> guest-initiated resets seen
        self._reboot_cond = threading.Condition()
        self.exports = transfer.DiskExports(self.root / "exports")  # disks offered to a migration's destination

    # -- connection and lookups

    def conn(self):
        """The libvirt connection, (re)opened when needed."""
        libvirt = _libvirt()
        with self._conn_lock:
            if self._conn is not None:
                try:
                    if self._conn.isAlive():
                        return self._conn
                except libvirt.libvirtError:
                    pass
                self._conn = None
            _start_event_loop()
            try:
                c = libvirt.open(self.uri)
            except libvirt.libvirtError as e:
                raise VirtError(f"cannot connect to libvirt at {self.uri}: {_msg(e)}") from e
            try:
                c.setKeepAlive(5, 3)
                c.domainEventRegisterAny(
                    None, libvirt.VIR_DOMAIN_EVENT_ID_REBOOT, self._on_reboot, None
                )
            except libvirt.libvirtError:
                pass  # no events: a soft reboot then waits for the shutdown path only
            self._conn = c
            return c

    def close(self) -> None:
        with self._conn_lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except Exception:
                    pass
                self._conn = None

    def _on_reboot(self, _conn, dom, _opaque) -> None:
        uuid = uuid_of(dom.name())
        if uuid:
            with self._reboot_cond:
                self._reboots[uuid] = self._reboots.get(uuid, 0) + 1
                self._reboot_cond.notify_all()

    def _lookup(self, uuid: str):
        """The domain of `uuid`, or None."""
        libvirt = _libvirt()
        try:
            dom = self.conn().lookupByUUIDString(uuid)
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise VirtError(f"libvirt: {_msg(e)}") from e
        return dom if uuid_of(dom.name()) == uuid else None  # not a domain of ours

    def _domain(self, uuid: str):
        dom = self._lookup(uuid)
        if dom is None:
            raise InstanceNotFound(f"instance {uuid} has no domain on this host")
        return dom

    def instance_dir(self, uuid: str) -> Path:
        return self.instances_dir / str(uuidlib.UUID(uuid))

    def console_log_path(self, uuid: str) -> Path:
        return self.instance_dir(uuid) / CONSOLE_LOG

    # -- lifecycle

    def spawn(self, spec: InstanceSpec) -> InstanceInfo:
        libvirt = _libvirt()
        if self._lookup(spec.uuid) is not None:
            raise VirtError(f"instance {spec.uuid} already has a domain on this host")
        inst_dir = self.instance_dir(spec.uuid)
        if inst_dir.exists():  # left by a spawn that died with its process: ours to remove
            shutil.rmtree(inst_dir)
        inst_dir.mkdir()
        inst_dir.chmod(0o711)  # QEMU may pass (whatever the umask: onestack up's is 077)
        dom = None
        try:
            base, drive = self._build_disks(spec, inst_dir, "")
            dom = self.conn().defineXML(self._spec_xml(spec, base, drive, list(spec.interfaces)))
            dom.create()
        except BaseException as e:
            self._remove(spec.uuid, dom, lookup=False)  # only what this call made
            if isinstance(e, libvirt.libvirtError):
                raise VirtError(f"libvirt could not start the guest: {_msg(e)}") from e
            raise
        return self.get_info(spec.uuid)

    def _build_disks(self, spec: InstanceSpec, inst_dir: Path, suffix: str):
        """The root overlay `disk<suffix>` on the cached base and the config drive
        `disk.config<suffix>`; (base, config drive Disk named by its final path | None)."""
        if isinstance(spec.root_volume, NbdSource):
            base = None  # served by the volume's node
        elif spec.root_volume is not None:
            if not Path(spec.root_volume).is_file():
                raise VirtError(f"volume file {spec.root_volume} does not exist")
            make_reachable(Path(spec.root_volume).resolve().parent, self.qemu_user)
            base = None
        else:
            base = self.images.ensure(spec.image.id, spec.image.source, spec.image.disk_format)
            create_overlay(base, inst_dir / f"{DISK}{suffix}", spec.root_gb)
        return base, self._config_drive(spec, inst_dir, suffix)

    def _config_drive(self, spec: InstanceSpec, inst_dir: Path, suffix: str = ""):
        """The config drive `disk.config<suffix>`; its Disk named by its final path, or None."""
        if spec.config_drive is None:
            return None
        cd = spec.config_drive
        configdrive.build(
            inst_dir / f"{CONFIG_DISK}{suffix}",
            configdrive.files(
                cd.meta_data, cd.user_data, cd.network_data, cd.vendor_data, cd.ec2_meta_data
            ),
            cd.format,
        )
        return config_drive_disk(inst_dir / CONFIG_DISK, cd.format)

    def _spec_xml(self, spec: InstanceSpec, base: Path, drive, interfaces: list) -> str:
        inst_dir = self.instance_dir(spec.uuid)
        return domain_xml(
            DomainSpec(
                uuid=spec.uuid,
                memory_mib=spec.memory_mib,
                vcpus=spec.vcpus,
                root=self._root_disk(spec, inst_dir, base),
                console_log=inst_dir / CONSOLE_LOG,
                virt_type=self.virt_type,
                config_drive=drive,
                interfaces=interfaces,
                display_name=spec.display_name,
                flavor=spec.flavor,
                project_id=spec.project_id,
                user_id=spec.user_id,
                vnc_listen=self.vnc_listen,
            )
        )

    def _root_disk(self, spec: InstanceSpec, inst_dir: Path, base: Path | None) -> Disk:
        if isinstance(spec.root_volume, NbdSource):
            return Disk(spec.root_volume, "vda", format="raw", serial=spec.root_volume_serial,
                        cache=self.disk_cache)
        if spec.root_volume is not None:
            return Disk(Path(spec.root_volume).resolve(), "vda", format=spec.root_volume_format,
                        serial=spec.root_volume_serial, cache=self.disk_cache)
        return Disk(inst_dir / DISK, "vda", cache=self.disk_cache, backing=base)

    def _remove(self, uuid: str, dom=None, lookup: bool = True) -> None:
        """Stop and undefine the domain (`dom`, or the one of `uuid` if `lookup`) and
        delete the instance's files."""
        libvirt = _libvirt()
        if dom is None and lookup:
            try:
                dom = self._lookup(uuid)
            except VirtError:
                dom = None
        if dom is not None:
            try:
                if dom.isActive():
                    dom.destroy()
            except libvirt.libvirtError as e:
                if e.get_error_code() not in (
                    libvirt.VIR_ERR_OPERATION_INVALID,
                    libvirt.VIR_ERR_NO_DOMAIN,
                ):
                    raise VirtError(f"libvirt could not stop {uuid}: {_msg(e)}") from e
            try:
                dom.undefineFlags(
                    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                    | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                    | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
                )
            except libvirt.libvirtError as e:
                if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise VirtError(f"libvirt could not undefine {uuid}: {_msg(e)}") from e
        shutil.rmtree(self.instance_dir(uuid), ignore_errors=True)
        with self._reboot_cond:
            self._reboots.pop(uuid, None)

    def destroy(self, uuid: str) -> None:
        uuid = str(uuidlib.UUID(uuid))
        self.exports.stop(uuid)
        self._remove(uuid)

    def reboot(self, uuid: str, hard: bool = False, timeout: float = 60) -> str:
        libvirt = _libvirt()
        dom = self._domain(uuid)
        if not hard and dom.isActive() and dom.info()[0] == libvirt.VIR_DOMAIN_RUNNING:
            if self._soft_reboot(uuid, dom, timeout):
                return "soft"
        self._call(uuid, "reset", self._hard_reboot, dom)
        return "hard"

    def _soft_reboot(self, uuid: str, dom, timeout: float) -> bool:
        """Ask the guest to restart itself; True if it did within `timeout` s.

        First ctrl-alt-del on its keyboard (init reboots: busybox's and systemd's
        ctrlaltdel), seen as the guest's reset event; if that does not come within a
        third of the time, the ACPI power button as Nova's soft reboot does (a
        guest that powers off is started again)."""
        libvirt = _libvirt()
        with self._reboot_cond:
            seen = self._reboots.get(uuid, 0)
        start = time.monotonic()

        def wait(until: float) -> bool:
            while time.monotonic() < until:
                with self._reboot_cond:
                    if self._reboots.get(uuid, 0) > seen:
                        return True
                    self._reboot_cond.wait(0.2)
                try:
                    if not dom.isActive():  # it powered off: start it again
                        dom.create()
                        return True
                except libvirt.libvirtError as e:
                    raise VirtError(f"reboot of {uuid} failed: {_msg(e)}") from e
            return False

        keys = [KEY_LEFTCTRL, KEY_LEFTALT, KEY_DELETE]
        try:
            dom.sendKey(libvirt.VIR_KEYCODE_SET_LINUX, 0, keys, len(keys), 0)
        except libvirt.libvirtError:
            pass  # no keyboard: only the power button is left
        else:
            if wait(start + timeout / 3):
                return True
        try:
            dom.shutdown()
        except libvirt.libvirtError:
            return False
        return wait(start + timeout)

    def _hard_reboot(self, dom) -> None:
        if dom.isActive():
            dom.destroy()
        if dom.hasManagedSaveImage(0):
            dom.managedSaveRemove(0)
        dom.create()

    def power_off(self, uuid: str, timeout: float = 0) -> None:
        libvirt = _libvirt()
        dom = self._domain(uuid)
        if not dom.isActive():
            return
        if timeout > 0:
            try:
                dom.shutdown()
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    if not dom.isActive():
                        return
                    time.sleep(0.2)
            except libvirt.libvirtError:
                pass
        try:
            dom.destroy()
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:  # already off
                raise VirtError(f"libvirt could not stop {uuid}: {_msg(e)}") from e

    def power_on(self, uuid: str) -> None:
        dom = self._domain(uuid)
        if not dom.isActive():
            self._call(uuid, "start", dom.create)

    def pause(self, uuid: str) -> None:
        self._call(uuid, "pause", self._domain(uuid).suspend)

    def unpause(self, uuid: str) -> None:
        self._call(uuid, "unpause", self._domain(uuid).resume)

    def suspend(self, uuid: str) -> None:
        self._call(uuid, "suspend", self._domain(uuid).managedSave, 0)

    def resume(self, uuid: str) -> None:
        dom = self._domain(uuid)
        if not dom.hasManagedSaveImage(0):
            raise VirtError(f"instance {uuid} is not suspended")
        self._call(uuid, "resume", dom.create)

    def _call(self, uuid: str, what: str, fn, *args):
        libvirt = _libvirt()
        try:
            return fn(*args)
        except libvirt.libvirtError as e:
            raise VirtError(f"{what} of {uuid} failed: {_msg(e)}") from e

    def get_info(self, uuid: str) -> InstanceInfo:
        dom = self._domain(uuid)
        state, _max_kib, mem_kib, vcpus, cpu_ns = self._call(uuid, "info", dom.info)
        saved = bool(self._call(uuid, "info", dom.hasManagedSaveImage, 0))
        return InstanceInfo(
            _LIBVIRT_STATES.get(state, PowerState.NOSTATE), mem_kib, vcpus, cpu_ns, saved
        )

    def list_instances(self) -> list[str]:
        libvirt = _libvirt()
        try:
            doms = self.conn().listAllDomains(0)
        except libvirt.libvirtError as e:
            raise VirtError(f"libvirt: {_msg(e)}") from e
        return sorted(u for u in (uuid_of(d.name()) for d in doms) if u)

    def domain_xml(self, uuid: str, inactive: bool = False) -> str:
        libvirt = _libvirt()
        flags = libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0
        return self._call(uuid, "XML", self._domain(uuid).XMLDesc, flags)

    # -- volumes

    def volumes(self, uuid: str) -> dict[str, str]:
        disks = disk_targets(self.domain_xml(uuid))
        return {dev: src for dev, src in disks.items() if dev not in ("vda", "vdz", "hdd")}

    def attach_volume(
        self,
        uuid: str,
        path: Path | NbdSource,
        *,
        device: str | None = None,
        serial: str | None = None,
        disk_format: str = "raw",
    ) -> str:
        libvirt = _libvirt()
        dom = self._domain(uuid)
        if isinstance(path, NbdSource):  # <disk type='network'><source protocol='nbd'>: raw over NBD
            disk_format = "raw"
        else:
            path = Path(path).resolve()
            if not path.is_file():
                raise VirtError(f"volume file {path} does not exist")
        live = disk_targets(self.domain_xml(uuid))
        config = disk_targets(self.domain_xml(uuid, inactive=True))
        if str(path) in live.values() or str(path) in config.values():
            raise VirtError(f"{path} is already attached to {uuid}")
        used = set(live) | set(config)
        target = device or next_virtio_target(used)
        if target in used:
            raise VirtError(f"device {target} is in use on {uuid}")
        if not isinstance(path, NbdSource):
            make_reachable(path.parent, self.qemu_user)
        disk = Disk(
            path, target, "virtio", "disk", disk_format, serial=serial, cache=self.disk_cache
        )
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if dom.isActive():
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        self._call(uuid, "attach", dom.attachDeviceFlags, disk_xml(disk), flags)
        return target

    def _detach_live(self, uuid: str, dom, element: ET.Element, what: str, attached) -> None:
        """Unplug a device from the running guest. libvirt asks the guest to let go (ACPI PCI
        hot-unplug) and the device leaves the live XML once it has; a guest that has not set up
        hot-plug yet (still booting) drops the request. So it is asked again every
        `detach_timeout` s, `detach_attempts` times in all, as Nova's [libvirt]
        device_detach_attempts and device_detach_timeout do. `attached()`: still in the live XML."""
        libvirt = _libvirt()
        xml = _xml(element)
        for attempt in range(1, self.detach_attempts + 1):
            try:
                dom.detachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
            except libvirt.libvirtError as e:
                # "already in the process of unplug": the last request is still pending; wait on
                if "already in the process of unplug" not in _msg(e):
                    if not dom.isActive() or not attached():
                        return  # stopped, or released meanwhile
                    raise VirtError(f"detach of {what} from {uuid} failed: {_msg(e)}") from e
            if self._released(dom, attached):
                return
            log.info("%s has not released %s yet (request %d of %d)", uuid, what, attempt,
                     self.detach_attempts)
        raise DeviceDetachFailed(
            f"the guest did not release {what} (asked {self.detach_attempts} times, "
            f"{self.detach_timeout:g} s apart); it stays attached"
        )

    def _released(self, dom, attached) -> bool:
        """Whether the device left the live XML (or the guest stopped) within detach_timeout s."""
        deadline = time.monotonic() + self.detach_timeout
        while dom.isActive() and attached():
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(0.2, self.detach_timeout))
        return True

    def detach_volume(self, uuid: str, device: str) -> None:
        libvirt = _libvirt()
        dom = self._domain(uuid)

        def find(xml: str):
            for disk in ET.fromstring(xml).iter("disk"):
                target, source = disk.find("target"), disk.find("source")
                dev = target.get("dev") if target is not None else None
                src = source.get("file") if source is not None else None
                if device in (dev, src):
                    return dev, disk
            return None, None

        live_dev, live_el = find(self.domain_xml(uuid)) if dom.isActive() else (None, None)
        conf_dev, conf_el = find(self.domain_xml(uuid, inactive=True))
        if live_el is None and conf_el is None:
            raise DeviceNotFound(f"no disk {device} on {uuid}")
        if (live_dev or conf_dev) in ("vda",):
            raise VirtError("the root disk cannot be detached")
        # the running guest first: one that never lets go keeps the disk in its definition too
        if live_el is not None:
            self._detach_live(uuid, dom, live_el, live_dev,
                              lambda: live_dev in disk_targets(self.domain_xml(uuid)))
        if conf_el is not None:
            self._call(
                uuid,
                "detach",
                dom.detachDeviceFlags,
                _xml(conf_el),
                libvirt.VIR_DOMAIN_AFFECT_CONFIG,
            )

    def extend_volume(self, uuid: str, device: str, new_size_bytes: int) -> None:
        libvirt = _libvirt()
        dom = self._domain(uuid)
        if not dom.isActive():
            return  # QEMU reads the file's size when it starts the guest
        if device not in disk_targets(self.domain_xml(uuid)):
            raise VirtError(f"no disk {device} on {uuid}")
        # QEMU's block_resize: grows a qcow2 image itself, and the guest gets a capacity change
        self._call(uuid, "blockResize", dom.blockResize, device, new_size_bytes,
                   libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)

    # -- snapshot, resize, rebuild, rescue

    def _define(self, uuid: str, xml: str):
        libvirt = _libvirt()
        try:
            return self.conn().defineXML(xml)
        except libvirt.libvirtError as e:
            raise VirtError(f"libvirt could not define {uuid}: {_msg(e)}") from e

    def _stop(self, uuid: str, dom) -> None:
        """Pull the plug if it runs (the caller has asked for a clean shutdown if it
        wanted one)."""
        libvirt = _libvirt()
        try:
            if dom.isActive():
                dom.destroy()
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:
                raise VirtError(f"libvirt could not stop {uuid}: {_msg(e)}") from e

    def _start(self, uuid: str) -> None:
        dom = self._domain(uuid)
        if not dom.isActive():
            self._call(uuid, "start", dom.create)

    def snapshot(self, uuid: str, dest: Path) -> int:
        libvirt = _libvirt()
        dom = self._domain(uuid)
        paused = False
        if dom.isActive() and dom.info()[0] == libvirt.VIR_DOMAIN_RUNNING:
            # QEMU drains and flushes every disk (qcow2 metadata too) when it pauses
            self._call(uuid, "pause", dom.suspend)
            paused = True
        try:
            return flatten(self.instance_dir(uuid) / DISK, Path(dest))
        finally:
            if paused:
                self._call(uuid, "resume", dom.resume)

    def resize(
        self,
        uuid: str,
        memory_mib: int,
        vcpus: int,
        root_gb: int,
        *,
        shutdown_timeout: float = 0,
    ) -> InstanceInfo:
        dom = self._domain(uuid)
        inst_dir = self.instance_dir(uuid)
        if (inst_dir / RESIZE_STATE).exists():
            raise VirtError(f"a resize of {uuid} waits to be confirmed or reverted")
        if (inst_dir / RESCUE_XML).exists():
            raise VirtError(f"instance {uuid} is rescued; unrescue it first")
        if self._call(uuid, "info", dom.hasManagedSaveImage, 0):
            raise VirtError(f"instance {uuid} is suspended; resume it first")
        disk = inst_dir / DISK
        local = disk.exists()  # booted from a volume: no local root disk, nothing to grow
        current = virtual_size(disk) if local else 0
        size = root_gb * GiB if root_gb else current
        if local and size < current:
            raise VirtError(
                f"the root disk of {uuid} is {current / GiB:g} GiB and cannot shrink to "
                f"{root_gb} GiB"
            )
        old_xml = self.domain_xml(uuid, inactive=True)
        try:
            new_xml = set_resources(old_xml, memory_mib, vcpus)
        except ValueError as e:
            raise VirtError(str(e)) from e
        running = bool(dom.isActive())
        if running:
            self.power_off(uuid, shutdown_timeout)
        if local:
            _copy_file(disk, inst_dir / RESIZE_DISK)
        _write_private(inst_dir / RESIZE_STATE, json.dumps({"xml": old_xml, "running": running,
                                                            "local": local}))
        try:
            if local:
                grow(disk, size)
            self._define(uuid, new_xml)
            if running:
                self._start(uuid)
        except BaseException:
            try:
                self.revert_resize(uuid)
            except Exception:
                log.exception("could not undo the failed resize of %s", uuid)
            raise
        return self.get_info(uuid)

    def confirm_resize(self, uuid: str) -> None:
        inst_dir = self.instance_dir(uuid)
        (inst_dir / RESIZE_STATE).unlink(missing_ok=True)
        (inst_dir / RESIZE_DISK).unlink(missing_ok=True)

    def revert_resize(self, uuid: str) -> InstanceInfo:
        inst_dir = self.instance_dir(uuid)
        try:
            state = json.loads((inst_dir / RESIZE_STATE).read_text())
        except FileNotFoundError:
            raise VirtError(f"instance {uuid} has no resize to revert") from None
        local = state.get("local", True)
        if local and not (inst_dir / RESIZE_DISK).exists():
            raise VirtError(f"the root disk from before the resize of {uuid} is missing")
        self._stop(uuid, self._domain(uuid))
        if local:
            os.replace(inst_dir / RESIZE_DISK, inst_dir / DISK)
        self._define(uuid, state["xml"])
        (inst_dir / RESIZE_STATE).unlink()
        if state.get("running"):
            self._start(uuid)
        return self.get_info(uuid)

    # -- moves between hosts (see VirtDriver; transfer.py tells how a cold migration's disk
    # travels; a live migration is libvirt's, peer to peer, the disks copied by QEMU over NBD)

    def migrate_disk_and_power_off(self, uuid: str, address: str, timeout: float = 0) -> dict:
        dom = self._domain(uuid)
        inst_dir = self.instance_dir(uuid)
        for name, why in ((RESIZE_STATE, "a resize of it waits to be confirmed or reverted"),
                          (RESCUE_XML, "it is rescued")):
            if (inst_dir / name).exists():
                raise VirtError(f"instance {uuid} cannot move: {why}")
        if self._call(uuid, "info", dom.hasManagedSaveImage, 0):
            raise VirtError(f"instance {uuid} is suspended; resume it first")
        self.power_off(uuid, timeout)
        disk = inst_dir / DISK
        if not disk.exists():  # booted from a volume: the root disk is the volume, nothing to copy
            return {"local": False}
        return {"local": True, "size": virtual_size(disk),
                "nbd": self.exports.start(uuid, disk, "qcow2", address)}

    def migration_transfer_done(self, uuid: str) -> None:
        self.exports.stop(uuid)

    def finish_migration(self, spec: InstanceSpec, disk_info: dict, power_on: bool = True) -> InstanceInfo:
        libvirt = _libvirt()
        if self._lookup(spec.uuid) is not None:
            raise VirtError(f"instance {spec.uuid} already has a domain on this host")
        inst_dir = self.instance_dir(spec.uuid)
        if inst_dir.exists():  # left by a move that died with its process: ours to remove
            shutil.rmtree(inst_dir)
        inst_dir.mkdir()
        inst_dir.chmod(0o711)
        dom = None
        try:
            if disk_info.get("local"):
                disk = inst_dir / DISK
                transfer.pull(disk_info["nbd"], disk)  # standalone: no base image needed here
                if spec.root_gb * GiB > virtual_size(disk):
                    grow(disk, spec.root_gb * GiB)
            elif spec.root_volume is not None and not isinstance(spec.root_volume, NbdSource):
                make_reachable(Path(spec.root_volume).resolve().parent, self.qemu_user)
            drive = self._config_drive(spec, inst_dir)
            dom = self.conn().defineXML(self._spec_xml(spec, None, drive, list(spec.interfaces)))
            if power_on:
                dom.create()
        except BaseException as e:
            self._remove(spec.uuid, dom, lookup=False)
            if isinstance(e, libvirt.libvirtError):
                raise VirtError(f"libvirt could not start the guest: {_msg(e)}") from e
            raise
        return self.get_info(spec.uuid)

    def finish_revert_migration(self, uuid: str, power_on: bool = True) -> InstanceInfo:
        self.exports.stop(uuid)
        if power_on:
            self._start(uuid)
        return self.get_info(uuid)

    def live_migration_info(self, uuid: str) -> dict:
        dom = self._domain(uuid)
        xml = self._call(uuid, "reading the definition", dom.XMLDesc, 0)
        inst_dir = self.instance_dir(uuid)
        local = False
        for dev, src in disk_targets(xml).items():
            if dev in CONFIG_DRIVE_TARGETS.values() or src.startswith("nbd://"):
                continue  # regenerated on the destination; served over the network to both
            if dev == "vda" and src == str(inst_dir / DISK):
                local = True
                continue
            raise VirtError(f"disk {dev} of {uuid} is a file of this host ({src}): it cannot follow the guest "
                            f"to another host (volume.attach_protocol = nbd serves volumes over the network)")
        size = int(self._call(uuid, "reading the disk size", dom.blockInfo, "vda")[0]) if local else 0
        return {"local": local, "size": size, "base": backing_file(xml) if local else None}

    def prepare_incoming(self, spec: InstanceSpec, info: dict) -> dict:
        if self._lookup(spec.uuid) is not None:
            raise VirtError(f"instance {spec.uuid} already has a domain on this host")
        inst_dir = self.instance_dir(spec.uuid)
        if inst_dir.exists():
            shutil.rmtree(inst_dir)
        inst_dir.mkdir()
        inst_dir.chmod(0o711)
        try:
            base = None
            if info.get("local") and info.get("base") and spec.image.id:
                try:  # the same base here: only the overlay's own clusters travel
                    base = self.images.ensure(spec.image.id, spec.image.source, spec.image.disk_format)
                except Exception as e:  # (the image is gone from the image service, ...)
                    log.warning("base image of %s not available here (%s): the whole disk is copied", spec.uuid, e)
            if info.get("local"):  # QEMU's block copy needs the target there, of the same size
                qemu_img.create(inst_dir / DISK, "qcow2", int(info["size"]), backing=base,
                                backing_fmt="qcow2" if base else None)
            self._config_drive(spec, inst_dir)
        except BaseException:
            shutil.rmtree(inst_dir, ignore_errors=True)
            raise
        return {"instance_dir": str(inst_dir), "base": str(base) if base else None,
                "full_copy": bool(info.get("local")) and base is None}

    def live_migrate(self, uuid: str, dest: dict, progress: Callable[[dict], None] | None = None) -> None:
        libvirt = _libvirt()
        dom = self._domain(uuid)
        src_dir = str(self.instance_dir(uuid))
        xml = migration_xml(self._call(uuid, "reading the definition", dom.XMLDesc,
                                       libvirt.VIR_DOMAIN_XML_MIGRATABLE),
                            src_dir, dest["instance_dir"], dest.get("base"))
        address = dest["address"]
        host = f"[{address}]" if ":" in address and not address.startswith("[") else address
        flags = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER | libvirt.VIR_MIGRATE_PERSIST_DEST
                 | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)
        # QEMU's own stream to the destination's address (not whatever its host name resolves to)
        params = {libvirt.VIR_MIGRATE_PARAM_DEST_XML: xml, libvirt.VIR_MIGRATE_PARAM_PERSIST_XML: xml,
                  libvirt.VIR_MIGRATE_PARAM_URI: f"tcp://{host}"}
        if dest.get("local"):  # no shared storage: the root disk is copied (the overlay only, on a shared base)
            flags |= libvirt.VIR_MIGRATE_NON_SHARED_DISK if dest.get("full_copy") else libvirt.VIR_MIGRATE_NON_SHARED_INC
            params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = ["vda"]
        done = threading.Event()

        def monitor():
            while not done.wait(2):
                try:
                    stats = dom.jobStats(0)
                except libvirt.libvirtError:
                    continue
                figures = {k: int(stats[k]) for k in ("memory_total", "memory_processed", "memory_remaining",
                                                       "disk_total", "disk_processed", "disk_remaining")
                           if k in stats}
                if figures and progress is not None:
                    try:
                        progress(figures)
                    except Exception:
                        log.debug("progress of the migration of %s not reported", uuid, exc_info=True)

        watcher = threading.Thread(target=monitor, name=f"migrate-{uuid[:8]}", daemon=True)
        watcher.start()
        try:
            dom.migrateToURI3(f"qemu+tcp://{host}/system", params, flags)
        except libvirt.libvirtError as e:
            raise VirtError(f"live migration of {uuid} to {address} failed: {_msg(e)}") from e
        finally:
            done.set()
            watcher.join(5)
        # the guest runs there and is undefined here: its files here go
        shutil.rmtree(self.instance_dir(uuid), ignore_errors=True)
        with self._reboot_cond:
            self._reboots.pop(uuid, None)

    def finish_incoming(self, uuid: str, running: bool = True) -> InstanceInfo:
        libvirt = _libvirt()
        dom = self._domain(uuid)
        state = dom.info()[0]
        if running and state == libvirt.VIR_DOMAIN_PAUSED:  # paused to make it converge
            self._call(uuid, "resume", dom.resume)
        elif not running and state == libvirt.VIR_DOMAIN_RUNNING:
            self._call(uuid, "pause", dom.suspend)
        return self.get_info(uuid)

    def rollback_incoming(self, uuid: str) -> None:
        if self._lookup(uuid) is None:  # never a guest that made it here
            shutil.rmtree(self.instance_dir(uuid), ignore_errors=True)

    def live_migration_abort(self, uuid: str) -> None:
        dom = self._domain(uuid)
        self._call(uuid, "aborting the migration", dom.abortJob)

    def live_migration_force_complete(self, uuid: str) -> None:
        dom = self._domain(uuid)
        self._call(uuid, "pause", dom.suspend)  # its memory stops changing: the copy converges

    def rebuild(self, spec: InstanceSpec, start: bool = True) -> InstanceInfo:
        libvirt = _libvirt()
        dom = self._lookup(spec.uuid)
        if dom is None:
            info = self.spawn(spec)
            if not start:
                self.power_off(spec.uuid)
                info = self.get_info(spec.uuid)
            return info
        inst_dir = self.instance_dir(spec.uuid)
        saved = inst_dir / RESCUE_XML
        current = saved.read_text() if saved.exists() else self.domain_xml(spec.uuid, True)
        interfaces = list(spec.interfaces) or interfaces_of(current)
        volumes = volume_elements(current)
        new = ".new"
        try:  # the new disks beside the old ones: a failure here changes nothing
            base, drive = self._build_disks(spec, inst_dir, new)
            xml = with_disks(self._spec_xml(spec, base, drive, interfaces), volumes)
        except BaseException:
            for name in (DISK, CONFIG_DISK):
                (inst_dir / f"{name}{new}").unlink(missing_ok=True)
            raise
        self._stop(spec.uuid, dom)
        try:
            if dom.hasManagedSaveImage(0):
                dom.managedSaveRemove(0)
        except libvirt.libvirtError as e:
            raise VirtError(f"rebuild of {spec.uuid} failed: {_msg(e)}") from e
        if spec.root_volume is None:  # a root volume is kept as it is (its data too)
            os.replace(inst_dir / f"{DISK}{new}", inst_dir / DISK)
        if drive is not None:
            os.replace(inst_dir / f"{CONFIG_DISK}{new}", inst_dir / CONFIG_DISK)
        else:
            (inst_dir / CONFIG_DISK).unlink(missing_ok=True)
        for name in (RESCUE_DISK, RESCUE_XML, RESIZE_DISK, RESIZE_STATE):
            (inst_dir / name).unlink(missing_ok=True)
        self._define(spec.uuid, xml)
        if start:
            self._start(spec.uuid)
        return self.get_info(spec.uuid)

    def rescue(self, uuid: str, image: ImageRef) -> InstanceInfo:
        dom = self._domain(uuid)
        inst_dir = self.instance_dir(uuid)
        saved = inst_dir / RESCUE_XML
        if saved.exists():
            raise VirtError(f"instance {uuid} is already rescued")
        if self._call(uuid, "info", dom.hasManagedSaveImage, 0):
            raise VirtError(f"instance {uuid} is suspended; resume it first")
        old = self.domain_xml(uuid, inactive=True)
        rescue_disk = inst_dir / RESCUE_DISK
        rescue_disk.unlink(missing_ok=True)
        base = self.images.ensure(image.id, image.source, image.disk_format)
        create_overlay(base, rescue_disk)
        xml = rescue_xml(old, Disk(rescue_disk, "vda", cache=self.disk_cache, backing=base))
        _write_private(saved, old)
        self._stop(uuid, dom)
        try:
            self._define(uuid, xml)
            self._start(uuid)
        except BaseException:
            self._define(uuid, old)
            saved.unlink(missing_ok=True)
            rescue_disk.unlink(missing_ok=True)
            raise
        return self.get_info(uuid)

    def unrescue(self, uuid: str) -> InstanceInfo:
        dom = self._domain(uuid)
        inst_dir = self.instance_dir(uuid)
        saved = inst_dir / RESCUE_XML
        if not saved.exists():
            raise VirtError(f"instance {uuid} is not rescued")
        self._stop(uuid, dom)
        self._define(uuid, saved.read_text())
        saved.unlink()
        (inst_dir / RESCUE_DISK).unlink(missing_ok=True)
        self._start(uuid)
        return self.get_info(uuid)

    # -- interfaces

    def interfaces(self, uuid: str) -> list[Interface]:
        return interfaces_of(self.domain_xml(uuid, inactive=True))

    def attach_interface(self, uuid: str, nic: Interface) -> None:
        libvirt = _libvirt()
        dom = self._domain(uuid)
        macs = {n.mac for n in interfaces_of(self.domain_xml(uuid))}
        macs |= {n.mac for n in interfaces_of(self.domain_xml(uuid, inactive=True))}
        if nic.mac in macs:
            raise VirtError(f"instance {uuid} already has an interface with MAC {nic.mac}")
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if dom.isActive():
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        self._call(uuid, "interface attach", dom.attachDeviceFlags, interface_xml(nic), flags)

    def detach_interface(self, uuid: str, mac: str) -> None:
        libvirt = _libvirt()
        dom = self._domain(uuid)
        mac = mac.lower()

        def find(xml: str):
            for el in ET.fromstring(xml).iter("interface"):
                m = el.find("mac")
                if m is not None and (m.get("address") or "").lower() == mac:
                    return el
            return None

        live = find(self.domain_xml(uuid)) if dom.isActive() else None
        conf = find(self.domain_xml(uuid, inactive=True))
        if live is None and conf is None:
            raise DeviceNotFound(f"no interface with MAC {mac} on {uuid}")
        # as detach_volume: the running guest first
        if live is not None:
            self._detach_live(uuid, dom, live, mac, lambda: find(self.domain_xml(uuid)) is not None)
        if conf is not None:
            self._call(
                uuid,
                "interface detach",
                dom.detachDeviceFlags,
                _xml(conf),
                libvirt.VIR_DOMAIN_AFFECT_CONFIG,
            )

    # -- consoles, diagnostics, host

    def _live_xml(self, uuid: str, what: str) -> str:
        dom = self._domain(uuid)
        if not dom.isActive():
            raise ConsoleUnavailable(f"instance {uuid} is not running: no {what}")
        return self.domain_xml(uuid)

    def vnc_address(self, uuid: str) -> tuple[str, int]:
        found = vnc_of(self._live_xml(uuid, "VNC console"))
        if found is None:
            raise ConsoleUnavailable(f"instance {uuid} has no VNC server")
        return found

    def serial_pty(self, uuid: str) -> str:
        found = serial_pty_of(self._live_xml(uuid, "serial console"))
        if found is None:
            raise ConsoleUnavailable(f"instance {uuid} has no serial pty")
        return found

    def diagnostics(self, uuid: str) -> dict:
        libvirt = _libvirt()
        dom = self._domain(uuid)
        state, max_kib, mem_kib, nvcpus, _cpu_ns = self._call(uuid, "info", dom.info)
        power = _LIBVIRT_STATES.get(state, PowerState.NOSTATE)
        active = bool(dom.isActive())
        root = ET.fromstring(self.domain_xml(uuid))
        disks = [
            t.get("dev")
            for d in root.iter("disk")
            if (t := d.find("target")) is not None and d.get("device") == "disk"
        ]
        nics = interfaces_of(ET.tostring(root, encoding="unicode"))
        cpu_details, disk_details, nic_details = [], [], []
        uptime = 0
        if active:
            try:
                for n, _state, cpu_time, _cpu in dom.vcpus()[0]:
                    cpu_details.append({"id": n, "time": cpu_time, "utilisation": None})
            except libvirt.libvirtError:
                pass
            for dev in disks:
                try:
                    rd_req, rd_bytes, wr_req, wr_bytes, errs = dom.blockStats(dev)
                except libvirt.libvirtError:
                    continue
                disk_details.append(
                    {
                        "read_bytes": rd_bytes,
                        "read_requests": rd_req,
                        "write_bytes": wr_bytes,
                        "write_requests": wr_req,
                        "errors_count": max(errs, 0),
                    }
                )
            for nic in nics:
                try:
                    st = dom.interfaceStats(nic.target)
                except libvirt.libvirtError:
                    st = (0,) * 8
                nic_details.append(_nic_detail(nic.mac, st))
            pidfile = Path("/run/libvirt/qemu") / f"{domain_name(uuid)}.pid"
            try:
                uptime = max(0, int(time.time() - pidfile.stat().st_mtime))
            except OSError:
                uptime = 0
        else:
            nic_details = [_nic_detail(nic.mac, (0,) * 8) for nic in nics]
        config_drive = any(
            d.find("source") is not None
            and (d.find("source").get("file") or "").endswith("/" + CONFIG_DISK)
            for d in root.iter("disk")
        )
        return _diagnostics(
            power,
            driver="libvirt",
            hypervisor=self.virt_type,
            uptime=uptime,
            config_drive=config_drive,
            num_cpus=nvcpus,
            num_disks=len(disks),
            num_nics=len(nics),
            cpu_details=cpu_details
            or [{"id": i, "time": 0, "utilisation": None} for i in range(nvcpus)],
            disk_details=disk_details,
            nic_details=nic_details,
            memory=(max_kib // 1024, mem_kib // 1024 if active else 0),
        )

    def guest_stats(self) -> dict[str, GuestStats]:
        # one bulk call for every running domain (virConnectGetAllDomainStats), no per-guest round trips
        libvirt = _libvirt()
        groups = (libvirt.VIR_DOMAIN_STATS_CPU_TOTAL | libvirt.VIR_DOMAIN_STATS_BALLOON
                  | libvirt.VIR_DOMAIN_STATS_VCPU | libvirt.VIR_DOMAIN_STATS_INTERFACE
                  | libvirt.VIR_DOMAIN_STATS_BLOCK)
        try:
            records = self.conn().getAllDomainStats(groups, libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE)
        except libvirt.libvirtError as e:
            raise VirtError(f"libvirt: {_msg(e)}") from e
        out = {}
        for dom, st in records:
            uuid = uuid_of(dom.name())
            if uuid:
                out[uuid] = stats_of(st)
        return out

    def host_resources(self) -> dict:
        libvirt = _libvirt()
        try:
            conn = self.conn()
            info = conn.getInfo()  # model, memory MiB, cpus, MHz, nodes, sockets, cores, threads
            version = conn.getVersion()
            caps = ET.fromstring(conn.getCapabilities())
        except libvirt.libvirtError as e:
            raise VirtError(f"libvirt: {_msg(e)}") from e
        st = os.statvfs(self.instances_dir)
        cpu = caps.find("host/cpu")
        topo = cpu.find("topology") if cpu is not None else None
        cpu_info = {
            "arch": (cpu.findtext("arch") if cpu is not None else None) or info[0],
            "model": cpu.findtext("model") if cpu is not None else None,
            "vendor": cpu.findtext("vendor") if cpu is not None else None,
            "topology": {
                "cells": int(info[4]),
                "sockets": int(topo.get("sockets", info[5])) if topo is not None else info[5],
                "cores": int(topo.get("cores", info[6])) if topo is not None else info[6],
                "threads": int(topo.get("threads", info[7])) if topo is not None else info[7],
            },
            "features": sorted(
                f.get("name") for f in (cpu.findall("feature") if cpu is not None else [])
            ),
        }
        return {
            "vcpus": int(info[2]),
            "memory_mb": int(info[1]),
            "local_gb": st.f_frsize * st.f_blocks // GiB,
            "hypervisor_type": "QEMU",
            "hypervisor_version": int(version),
            "cpu_info": cpu_info,
        }


def _xml(el: ET.Element) -> str:
    return ET.tostring(el, encoding="unicode")


def _copy_file(src: Path, dest: Path) -> None:
    """A sparse copy of a disk file (reflinked where the file system can), atomically."""
    tmp = dest.with_name(f".{dest.name}.partial")
    done = subprocess.run(
        ["cp", "--sparse=always", "--reflink=auto", str(src), str(tmp)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise VirtError(f"cannot copy {src.name}: {done.stderr.strip()}")
    tmp.chmod(0o600)
    os.replace(tmp, dest)


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# Nova's power state names in diagnostics
_STATE_NAMES = {
    PowerState.NOSTATE: "pending",
    PowerState.RUNNING: "running",
    PowerState.PAUSED: "paused",
    PowerState.SHUTDOWN: "shutdown",
    PowerState.CRASHED: "crashed",
    PowerState.SUSPENDED: "suspended",
}


def _nic_detail(mac: str, st) -> dict:
    rx_bytes, rx_packets, rx_errs, rx_drop, tx_bytes, tx_packets, tx_errs, tx_drop = st
    return {
        "mac_address": mac,
        "rx_octets": rx_bytes,
        "rx_errors": rx_errs,
        "rx_drop": rx_drop,
        "rx_packets": rx_packets,
        "rx_rate": None,
        "tx_octets": tx_bytes,
        "tx_errors": tx_errs,
        "tx_drop": tx_drop,
        "tx_packets": tx_packets,
        "tx_rate": None,
    }


def _diagnostics(
    state: PowerState,
    *,
    driver: str,
    hypervisor: str,
    uptime: int,
    config_drive: bool,
    num_cpus: int,
    num_disks: int,
    num_nics: int,
    cpu_details: list,
    disk_details: list,
    nic_details: list,
    memory: tuple[int, int],
) -> dict:
    """Nova's standard diagnostics (compute API 2.48); memory in MiB."""
    return {
        "state": _STATE_NAMES.get(state, "pending"),
        "driver": driver,
        "hypervisor": hypervisor,
        "hypervisor_os": "linux",
        "uptime": uptime,
        "config_drive": config_drive,
        "num_cpus": num_cpus,
        "num_nics": num_nics,
        "num_disks": num_disks,
        "cpu_details": cpu_details,
        "nic_details": nic_details,
        "disk_details": disk_details,
        "memory_details": {"maximum": memory[0], "used": memory[1]},
    }


def stats_of(st: dict) -> GuestStats:
    """GuestStats of one record of virConnectGetAllDomainStats (typed parameters by name)."""
    current = st.get("balloon.current", 0)  # KiB
    if "balloon.available" in st and "balloon.unused" in st:  # the guest's balloon driver reports
        used = (st["balloon.available"] - st["balloon.unused"]) / 1024
    elif "balloon.rss" in st:  # else QEMU's resident memory, at most what the guest has
        used = min(st["balloon.rss"], current or st["balloon.rss"]) / 1024
    else:
        used = None
    disks = {}
    for i in range(st.get("block.count", 0)):
        name = st.get(f"block.{i}.name")
        if name:
            disks[name] = {"read_bytes": st.get(f"block.{i}.rd.bytes", 0),
                           "write_bytes": st.get(f"block.{i}.wr.bytes", 0),
                           "read_requests": st.get(f"block.{i}.rd.reqs", 0),
                           "write_requests": st.get(f"block.{i}.wr.reqs", 0)}
    nics = {}
    for i in range(st.get("net.count", 0)):
        name = st.get(f"net.{i}.name")
        if name:
            nics[name] = {"rx_bytes": st.get(f"net.{i}.rx.bytes", 0), "tx_bytes": st.get(f"net.{i}.tx.bytes", 0),
                          "rx_packets": st.get(f"net.{i}.rx.pkts", 0), "tx_packets": st.get(f"net.{i}.tx.pkts", 0)}
    return GuestStats(cpu_time_ns=st.get("cpu.time", 0), vcpus=st.get("vcpu.current", 0) or 1,
                      memory_mb=current // 1024, memory_used_mb=used, disks=disks, interfaces=nics)


def _msg(e) -> str:
    text = e.get_error_message() if hasattr(e, "get_error_message") else str(e)
    return re.sub(r"\s+", " ", text or str(e)).strip()


# ---------------------------------------------------------------------------------------
# fake


FAKE_IMAGE_GB = 1  # a fake root disk without a flavor size
FAKE_LOAD = 0.1  # fake guests are 10% busy (FakeDriver.set_load changes it)


@dataclass
class _Fake:
    spec: InstanceSpec
    memory_mib: int
    vcpus: int
    disk_gb: int  # the root disk's virtual size
    state: PowerState = PowerState.RUNNING
    managed_save: bool = False
    boots: int = 1
    volumes: dict[str, str] = field(default_factory=dict)
    volume_sizes: dict[str, int] = field(default_factory=dict)  # device -> bytes, set by extend_volume
    interfaces: list[Interface] = field(default_factory=list)
    resized_from: tuple | None = None  # (memory_mib, vcpus, disk_gb, was running)
    rescued: bool = False
    root_volume: str | None = None  # booted from this volume file
    started: float = field(default_factory=time.monotonic)  # the counters of guest_stats grow from here
    load: float = FAKE_LOAD  # share of its vcpus a fake guest keeps busy
    cpu_base_ns: int = 0  # cpu time at ``load_since`` (the load changed then)
    load_since: float = field(default_factory=time.monotonic)


class FakeDriver(VirtDriver):
    """Instances in memory: for API tests and scale simulation (many fake hosts in one
    process), never for real guests. State transitions follow LibvirtDriver's."""

    virt_type = "fake"

    def __init__(
        self,
        host: str = "fake-host",
        console_dir: Path | None = None,
        *,
        vcpus: int = 8,
        memory_mb: int = 16384,
        local_gb: int = 200,
        hypervisor_type: str = "QEMU",
        hypervisor_version: int = 7002000,
        spawn_seconds: float = 0.0,
    ):
        self.host = host
        self.console_dir = console_dir
        self.spawn_seconds = spawn_seconds  # a simulated boot time (compute.fake_spawn_seconds)
        self._resources = {
            "vcpus": vcpus,
            "memory_mb": memory_mb,
            "local_gb": local_gb,
            "hypervisor_type": hypervisor_type,
            "hypervisor_version": hypervisor_version,
        }
        self._lock = threading.Lock()
        self._instances: dict[str, _Fake] = {}

    def _get(self, uuid: str) -> _Fake:
        inst = self._instances.get(uuid)
        if inst is None:
            raise InstanceNotFound(f"instance {uuid} has no domain on {self.host}")
        return inst

    def _need(self, inst: _Fake, *states: PowerState, what: str) -> None:
        if inst.state not in states:
            raise VirtError(f"cannot {what} instance {inst.spec.uuid} in state {inst.state.name}")

    def spawn(self, spec: InstanceSpec) -> InstanceInfo:
        if self.spawn_seconds:
            time.sleep(self.spawn_seconds)
        with self._lock:
            if spec.uuid in self._instances:
                raise VirtError(f"instance {spec.uuid} already has a domain on {self.host}")
            self._instances[spec.uuid] = _Fake(
                spec,
                spec.memory_mib,
                spec.vcpus,
                spec.root_gb or FAKE_IMAGE_GB,
                interfaces=list(spec.interfaces),
                root_volume=str(spec.root_volume) if spec.root_volume is not None else None,
            )
            self._log(spec.uuid)
        return self.get_info(spec.uuid)

    def destroy(self, uuid: str) -> None:
        with self._lock:
            self._instances.pop(uuid, None)
        if self.console_dir is not None:
            (self.console_dir / f"{uuid}.log").unlink(missing_ok=True)

    def reboot(self, uuid: str, hard: bool = False, timeout: float = 60) -> str:
        with self._lock:
            inst = self._get(uuid)
            soft = not hard and inst.state == PowerState.RUNNING
            inst.state, inst.managed_save = PowerState.RUNNING, False
            inst.boots += 1
            self._log(uuid)
        return "soft" if soft else "hard"

    def power_off(self, uuid: str, timeout: float = 0) -> None:
        with self._lock:
            inst = self._get(uuid)
            if inst.state in (PowerState.RUNNING, PowerState.PAUSED):
                inst.state = PowerState.SHUTDOWN

    def power_on(self, uuid: str) -> None:
        with self._lock:
            inst = self._get(uuid)
            if inst.state == PowerState.SHUTDOWN:
                restored = inst.managed_save  # a suspended guest is restored, not booted
                inst.state, inst.managed_save = PowerState.RUNNING, False
                if not restored:
                    inst.boots += 1
                    self._log(uuid)

    def pause(self, uuid: str) -> None:
        with self._lock:
            inst = self._get(uuid)
            self._need(inst, PowerState.RUNNING, what="pause")
            inst.state = PowerState.PAUSED

    def unpause(self, uuid: str) -> None:
        with self._lock:
            inst = self._get(uuid)
            self._need(inst, PowerState.PAUSED, what="unpause")
            inst.state = PowerState.RUNNING

    def suspend(self, uuid: str) -> None:
        with self._lock:
            inst = self._get(uuid)
            self._need(inst, PowerState.RUNNING, PowerState.PAUSED, what="suspend")
            inst.state, inst.managed_save = PowerState.SHUTDOWN, True

    def resume(self, uuid: str) -> None:
        with self._lock:
            inst = self._get(uuid)
            if not inst.managed_save:
                raise VirtError(f"instance {uuid} is not suspended")
            inst.state, inst.managed_save = PowerState.RUNNING, False

    def get_info(self, uuid: str) -> InstanceInfo:
        with self._lock:
            inst = self._get(uuid)
            return InstanceInfo(
                inst.state, inst.memory_mib * 1024, inst.vcpus, 0, inst.managed_save
            )

    def console_log_path(self, uuid: str) -> Path:
        base = self.console_dir or Path("/nonexistent")
        return base / f"{uuid}.log"

    def get_console_output(self, uuid: str, max_bytes: int = 256 * 1024) -> str:
        with self._lock:
            inst = self._get(uuid)
            lines = [self._ready_line(inst) for _ in range(inst.boots)]
        return "".join(lines)[-max_bytes:]

    def _ready_line(self, inst: _Fake) -> str:
        md = inst.spec.config_drive.meta_data if inst.spec.config_drive else {}
        host = md.get("hostname") or md.get("name") or "onestack-tiny"
        return f"onestack-tiny: ready. hostname={host} addresses: none (fake driver)\n"

    def _log(self, uuid: str) -> None:
        if self.console_dir is not None:
            self.console_dir.mkdir(parents=True, exist_ok=True)
            with open(self.console_dir / f"{uuid}.log", "a") as f:
                f.write(self._ready_line(self._instances[uuid]))

    def attach_volume(
        self,
        uuid: str,
        path: Path | NbdSource,
        *,
        device: str | None = None,
        serial: str | None = None,
        disk_format: str = "raw",
    ) -> str:
        with self._lock:
            inst = self._get(uuid)
            if str(path) in inst.volumes.values():
                raise VirtError(f"{path} is already attached to {uuid}")
            target = device or next_virtio_target({"vda", *inst.volumes})
            if target in inst.volumes or target == "vda":
                raise VirtError(f"device {target} is in use on {uuid}")
            inst.volumes[target] = str(path)
            return target

    def detach_volume(self, uuid: str, device: str) -> None:
        with self._lock:
            inst = self._get(uuid)
            for dev, src in list(inst.volumes.items()):
                if device in (dev, src):
                    del inst.volumes[dev]
                    inst.volume_sizes.pop(dev, None)
                    return
            raise DeviceNotFound(f"no disk {device} on {uuid}")

    def extend_volume(self, uuid: str, device: str, new_size_bytes: int) -> None:
        with self._lock:
            inst = self._get(uuid)
            if device not in inst.volumes and not (device == "vda" and inst.root_volume):
                raise VirtError(f"no disk {device} on {uuid}")
            inst.volume_sizes[device] = new_size_bytes

    def volume_sizes(self, uuid: str) -> dict[str, int]:
        """What extend_volume told each disk of a fake guest: device -> bytes."""
        with self._lock:
            return dict(self._get(uuid).volume_sizes)

    def volumes(self, uuid: str) -> dict[str, str]:
        with self._lock:
            return dict(self._get(uuid).volumes)

    def root_volume(self, uuid: str) -> str | None:
        """The volume file a fake guest booted from (None: an image)."""
        with self._lock:
            return self._get(uuid).root_volume

    def list_instances(self) -> list[str]:
        with self._lock:
            return sorted(self._instances)

    def snapshot(self, uuid: str, dest: Path) -> int:
        with self._lock:
            size = self._get(uuid).disk_gb * GiB
        return write_empty_qcow2(Path(dest), size)

    def resize(
        self,
        uuid: str,
        memory_mib: int,
        vcpus: int,
        root_gb: int,
        *,
        shutdown_timeout: float = 0,
    ) -> InstanceInfo:
        with self._lock:
            inst = self._get(uuid)
            if inst.resized_from is not None:
                raise VirtError(f"a resize of {uuid} waits to be confirmed or reverted")
            if inst.rescued:
                raise VirtError(f"instance {uuid} is rescued; unrescue it first")
            if inst.managed_save:
                raise VirtError(f"instance {uuid} is suspended; resume it first")
            size = root_gb or inst.disk_gb
            if size < inst.disk_gb:
                raise VirtError(
                    f"the root disk of {uuid} is {inst.disk_gb:g} GiB and cannot shrink to "
                    f"{root_gb} GiB"
                )
            if memory_mib < 16 or vcpus < 1:
                raise VirtError("memory_mib must be at least 16 and vcpus at least 1")
            running = inst.state in (PowerState.RUNNING, PowerState.PAUSED)
            inst.resized_from = (inst.memory_mib, inst.vcpus, inst.disk_gb, running)
            inst.memory_mib, inst.vcpus, inst.disk_gb = memory_mib, vcpus, size
            if running:
                inst.state = PowerState.RUNNING
                self._boot(inst)
        return self.get_info(uuid)

    def confirm_resize(self, uuid: str) -> None:
        with self._lock:
            self._get(uuid).resized_from = None

    def revert_resize(self, uuid: str) -> InstanceInfo:
        with self._lock:
            inst = self._get(uuid)
            if inst.resized_from is None:
                raise VirtError(f"instance {uuid} has no resize to revert")
            inst.memory_mib, inst.vcpus, inst.disk_gb, running = inst.resized_from
            inst.resized_from = None
            inst.state = PowerState.RUNNING if running else PowerState.SHUTDOWN
            if running:
                self._boot(inst)
        return self.get_info(uuid)

    # moves: the fake hosts of one process are separate drivers, so a guest "moves" by being
    # made on the destination from its spec and forgotten on the source

    def migrate_disk_and_power_off(self, uuid: str, address: str, timeout: float = 0) -> dict:
        with self._lock:
            inst = self._get(uuid)
            if inst.resized_from is not None or inst.rescued or inst.managed_save:
                raise VirtError(f"instance {uuid} is resized, rescued or suspended: it cannot move")
            inst.state = PowerState.SHUTDOWN
            return {"disk_gb": inst.disk_gb, "from": self.host}

    def migration_transfer_done(self, uuid: str) -> None:
        pass  # nothing was offered: the destination made its guest from the spec

    def finish_migration(self, spec: InstanceSpec, disk_info: dict, power_on: bool = True) -> InstanceInfo:
        with self._lock:
            if spec.uuid in self._instances:
                raise VirtError(f"instance {spec.uuid} already has a domain on {self.host}")
            size = max(spec.root_gb, int(disk_info.get("disk_gb") or 0)) or FAKE_IMAGE_GB
            self._instances[spec.uuid] = _Fake(
                spec, spec.memory_mib, spec.vcpus, size, interfaces=list(spec.interfaces),
                root_volume=str(spec.root_volume) if spec.root_volume is not None else None,
                state=PowerState.RUNNING if power_on else PowerState.SHUTDOWN)
            self._log(spec.uuid)
        return self.get_info(spec.uuid)

    def finish_revert_migration(self, uuid: str, power_on: bool = True) -> InstanceInfo:
        if power_on:
            self.power_on(uuid)
        return self.get_info(uuid)

    def live_migration_info(self, uuid: str) -> dict:
        with self._lock:
            inst = self._get(uuid)
            return {"disk_gb": inst.disk_gb, "volumes": dict(inst.volumes)}

    def prepare_incoming(self, spec: InstanceSpec, info: dict) -> dict:
        with self._lock:
            if spec.uuid in self._instances:
                raise VirtError(f"instance {spec.uuid} already has a domain on {self.host}")
            self._instances[spec.uuid] = _Fake(
                spec, spec.memory_mib, spec.vcpus, int(info.get("disk_gb") or spec.root_gb or FAKE_IMAGE_GB),
                state=PowerState.SHUTDOWN, interfaces=list(spec.interfaces),
                volumes=dict(info.get("volumes") or {}),
                root_volume=str(spec.root_volume) if spec.root_volume is not None else None)
        return {"host": self.host}

    def live_migrate(self, uuid: str, dest: dict, progress: Callable[[dict], None] | None = None) -> None:
        with self._lock:
            inst = self._get(uuid)
            self._need(inst, PowerState.RUNNING, PowerState.PAUSED, what="live-migrate")
            if progress is not None:
                total = inst.memory_mib << 20
                progress({"memory_total": total, "memory_processed": total, "memory_remaining": 0})
            del self._instances[uuid]

    def finish_incoming(self, uuid: str, running: bool = True) -> InstanceInfo:
        with self._lock:
            self._get(uuid).state = PowerState.RUNNING if running else PowerState.PAUSED
        return self.get_info(uuid)

    def rollback_incoming(self, uuid: str) -> None:
        with self._lock:
            inst = self._instances.get(uuid)
            if inst is not None and inst.state == PowerState.SHUTDOWN:  # never a guest that runs here
                del self._instances[uuid]

    def live_migration_abort(self, uuid: str) -> None:
        with self._lock:
            self._get(uuid)
        raise VirtError(f"no live migration of {uuid} is in progress on {self.host}")

    def live_migration_force_complete(self, uuid: str) -> None:
        with self._lock:
            self._get(uuid)
        raise VirtError(f"no live migration of {uuid} is in progress on {self.host}")

    def rebuild(self, spec: InstanceSpec, start: bool = True) -> InstanceInfo:
        if spec.uuid not in self._instances:
            self.spawn(spec)
        with self._lock:
            inst = self._get(spec.uuid)
            inst.spec = spec
            inst.memory_mib, inst.vcpus = spec.memory_mib, spec.vcpus
            inst.disk_gb = spec.root_gb or FAKE_IMAGE_GB
            inst.root_volume = str(spec.root_volume) if spec.root_volume is not None else None
            if spec.interfaces:
                inst.interfaces = list(spec.interfaces)
            inst.resized_from, inst.rescued, inst.managed_save = None, False, False
            inst.state = PowerState.SHUTDOWN
            if start:
                inst.state = PowerState.RUNNING
                self._boot(inst)
        return self.get_info(spec.uuid)

    def rescue(self, uuid: str, image: ImageRef) -> InstanceInfo:
        with self._lock:
            inst = self._get(uuid)
            if inst.rescued:
                raise VirtError(f"instance {uuid} is already rescued")
            if inst.managed_save:
                raise VirtError(f"instance {uuid} is suspended; resume it first")
            inst.rescued, inst.state = True, PowerState.RUNNING
            self._boot(inst)
        return self.get_info(uuid)

    def unrescue(self, uuid: str) -> InstanceInfo:
        with self._lock:
            inst = self._get(uuid)
            if not inst.rescued:
                raise VirtError(f"instance {uuid} is not rescued")
            inst.rescued, inst.state = False, PowerState.RUNNING
            self._boot(inst)
        return self.get_info(uuid)

    def rescued(self, uuid: str) -> bool:
        with self._lock:
            return self._get(uuid).rescued

    def interfaces(self, uuid: str) -> list[Interface]:
        with self._lock:
            return list(self._get(uuid).interfaces)

    def attach_interface(self, uuid: str, nic: Interface) -> None:
        with self._lock:
            inst = self._get(uuid)
            if any(n.mac == nic.mac for n in inst.interfaces):
                raise VirtError(f"instance {uuid} already has an interface with MAC {nic.mac}")
            inst.interfaces.append(nic)

    def detach_interface(self, uuid: str, mac: str) -> None:
        with self._lock:
            inst = self._get(uuid)
            keep = [n for n in inst.interfaces if n.mac != mac.lower()]
            if len(keep) == len(inst.interfaces):
                raise DeviceNotFound(f"no interface with MAC {mac.lower()} on {uuid}")
            inst.interfaces = keep

    def _running(self, uuid: str, what: str) -> _Fake:
        inst = self._get(uuid)
        if inst.state not in (PowerState.RUNNING, PowerState.PAUSED):
            raise ConsoleUnavailable(f"instance {uuid} is not running: no {what}")
        return inst

    def vnc_address(self, uuid: str) -> tuple[str, int]:
        # port 0: nobody can be reached there (a made-up 59xx port might be a real
        # guest's VNC server on this machine)
        with self._lock:
            self._running(uuid, "VNC console")
        return ("127.0.0.1", 0)

    def serial_pty(self, uuid: str) -> str:
        with self._lock:
            self._running(uuid, "serial console")
        return "/dev/null"  # opens, reads as end of file: a console session ends at once

    def diagnostics(self, uuid: str) -> dict:
        with self._lock:
            inst = self._get(uuid)
            active = inst.state in (PowerState.RUNNING, PowerState.PAUSED)
            return _diagnostics(
                inst.state,
                driver="fake",
                hypervisor="fake",
                uptime=0,
                config_drive=inst.spec.config_drive is not None,
                num_cpus=inst.vcpus,
                num_disks=1 + len(inst.volumes) + (inst.spec.config_drive is not None),
                num_nics=len(inst.interfaces),
                cpu_details=[{"id": i, "time": 0, "utilisation": None} for i in range(inst.vcpus)],
                disk_details=[
                    {
                        "read_bytes": 0,
                        "read_requests": 0,
                        "write_bytes": 0,
                        "write_requests": 0,
                        "errors_count": 0,
                    }
                    for _ in range(1 + len(inst.volumes) + (inst.spec.config_drive is not None))
                ],
                nic_details=[_nic_detail(n.mac, (0,) * 8) for n in inst.interfaces],
                memory=(inst.memory_mib, inst.memory_mib if active else 0),
            )

    def set_load(self, uuid: str, load: float) -> None:
        """Make a fake guest this busy (0..1 of its vcpus) from now on (tests of alarms)."""
        with self._lock:
            inst = self._get(uuid)
            now = time.monotonic()
            inst.cpu_base_ns, inst.load_since, inst.load = self._cpu_ns(inst, now), now, load

    @staticmethod
    def _cpu_ns(inst: _Fake, now: float) -> int:
        return inst.cpu_base_ns + int((now - inst.load_since) * inst.load * inst.vcpus * 1e9)

    def guest_stats(self) -> dict[str, GuestStats]:
        """Counters that grow with time as a guest's would: cpu at the guest's load, a little
        disk and network traffic per second."""
        now = time.monotonic()
        out = {}
        with self._lock:
            for uuid, inst in self._instances.items():
                if inst.state != PowerState.RUNNING:
                    continue
                t = now - inst.started
                disks = {"vda": {"read_bytes": int(t * 4096), "write_bytes": int(t * 2048),
                                 "read_requests": int(t), "write_requests": int(t / 2)}}
                for dev in inst.volumes:
                    disks[dev] = {"read_bytes": int(t * 512), "write_bytes": int(t * 512),
                                  "read_requests": int(t / 8), "write_requests": int(t / 8)}
                nics = {n.target: {"rx_bytes": int(t * 1500), "tx_bytes": int(t * 1000),
                                   "rx_packets": int(t), "tx_packets": int(t)} for n in inst.interfaces if n.target}
                out[uuid] = GuestStats(cpu_time_ns=self._cpu_ns(inst, now), vcpus=inst.vcpus,
                                       memory_mb=inst.memory_mib, memory_used_mb=inst.memory_mib / 2,
                                       disks=disks, interfaces=nics)
        return out

    def host_resources(self) -> dict:
        return {
            **self._resources,
            "cpu_info": {
                "arch": "x86_64",
                "model": "qemu64",
                "vendor": "fake",
                "topology": {
                    "cells": 1,
                    "sockets": 1,
                    "cores": self._resources["vcpus"],
                    "threads": 1,
                },
                "features": [],
            },
        }

    def _boot(self, inst: _Fake) -> None:
        """A (re)boot of a fake guest: one more ready line. Under self._lock."""
        inst.boots += 1
        self._log(inst.spec.uuid)


__all__ = [
    "ConfigDrive",
    "FakeDriver",
    "GuestStats",
    "ImageRef",
    "InstanceInfo",
    "InstanceSpec",
    "Interface",
    "LibvirtDriver",
    "PowerState",
    "VirtDriver",
    "make_reachable",
]


def purge_guests(state_dir: Path, uri: str = "qemu:///system") -> list[str]:
    """Stop and undefine every onestack domain whose disks live under ``state_dir``
    (``onestack down --purge``): a cloud's guests go with its state, other clouds'
    guests and anything not named ``onestack-*`` are left alone. Returns their uuids."""
    try:
        libvirt = _libvirt()
        conn = libvirt.open(uri)
    except Exception:
        return []  # no libvirt here: no guests either
    root = str(Path(state_dir).resolve()) + "/"
    gone = []
    try:
        for dom in conn.listAllDomains():
            uuid = uuid_of(dom.name())
            if not uuid:
                continue
            try:
                sources = [s.get("file") or "" for s in ET.fromstring(dom.XMLDesc(0)).iter("source")]
            except libvirt.libvirtError:
                continue
            if not any(src.startswith(root) for src in sources):
                continue
            try:
                if dom.isActive():
                    dom.destroy()
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                                  | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                                  | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
                gone.append(uuid)
            except libvirt.libvirtError as e:
                log.warning("could not remove guest %s: %s", uuid, _msg(e))
    finally:
        conn.close()
    return gone
