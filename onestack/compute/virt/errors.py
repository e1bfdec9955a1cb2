"""The virt layer's errors: each carries a one-line message the compute service can show."""


class VirtError(Exception):
    """A virt operation failed; the message says what and why, in one line."""


class InstanceNotFound(VirtError):
    """No domain for this instance on this host."""


class ImageError(VirtError):
    """The image cannot be used: bad format, a backing file, too big for the disk, ..."""


class ConsoleUnavailable(VirtError):
    """The guest has no console of that kind right now (not running, no VNC, no pty)."""


class DeviceNotFound(VirtError):
    """The guest has no such disk or interface (in its live state nor its definition)."""


class DeviceDetachFailed(VirtError):
    """The guest did not let go of a device however often it was asked; it is still attached,
    in the definition too."""
