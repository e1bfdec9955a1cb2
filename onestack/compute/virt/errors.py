"""The virt layer's errors: each carries a one-line message the compute service can show."""


class VirtError(Exception):
    """A virt operation failed; the message says what and why, in one line."""


class InstanceNotFound(VirtError):
    """No domain for this instance on this host."""


class ImageError(VirtError):
    """The image cannot be used: bad format, a backing file, too big for the disk, ..."""


class ConsoleUnavailable(VirtError):
    """The guest has no console of that kind right now (not running, no VNC, no pty)."""
