"""The compute agent's virt layer: guests through libvirt (or a fake), disks, config drives.

Use: `driver = LibvirtDriver(state_dir)` (the domain type comes from accel.detect()),
then `driver.spawn(InstanceSpec(uuid, 256, 1, ImageRef(image_id, path_or_fetch)))`.
"""

from onestack.compute.virt.domain import Interface
from onestack.compute.virt.driver import (
    ConfigDrive,
    FakeDriver,
    ImageRef,
    InstanceInfo,
    InstanceSpec,
    LibvirtDriver,
    PowerState,
    VirtDriver,
)
from onestack.compute.virt.errors import (
    ConsoleUnavailable,
    DeviceDetachFailed,
    DeviceNotFound,
    ImageError,
    InstanceNotFound,
    VirtError,
)

__all__ = [
    "ConfigDrive",
    "ConsoleUnavailable",
    "DeviceDetachFailed",
    "DeviceNotFound",
    "FakeDriver",
    "ImageError",
    "ImageRef",
    "InstanceInfo",
    "InstanceNotFound",
    "InstanceSpec",
    "Interface",
    "LibvirtDriver",
    "PowerState",
    "VirtDriver",
    "VirtError",
]
