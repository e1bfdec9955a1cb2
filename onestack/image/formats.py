"""Does the uploaded data really have its declared disk format, and is it safe?

Two layers, as Glance's format inspector has them:

* ``check_header`` reads the first bytes (and the last 512, for VHD) while the
  upload streams: data that does not look like its declared format is refused,
  raw data that is really a structured format (a qcow2 declared ``raw`` is the
  classic way to make a hypervisor open a host file) is refused, and a qcow2
  with a backing file or an external data file is refused.
* ``qemu_info`` runs ``qemu-img info`` on the stored file with the format
  forced (never probed) under CPU and memory limits, for the virtual size,
  and checks again that nothing points outside the image.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

from onestack.common import qemu_img

DISK_FORMATS = ["ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"]
CONTAINER_FORMATS = ["ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"]

HEAD_BYTES = 64 * 1024  # enough for every header below (ISO's is at 32 KiB)
# the formats qemu-img knows, under its own names
QEMU_NAMES = {"qcow2": "qcow2", "vmdk": "vmdk", "vhd": "vpc", "vhdx": "vhdx", "vdi": "vdi"}
VMDK_ALLOWED = {"monolithicSparse", "streamOptimized"}  # single-file types only


class FormatError(ValueError):
    """The data is not an acceptable image of its declared format (message says why)."""


def detect(head: bytes, tail: bytes = b"") -> str | None:
    """The structured format ``head`` (and ``tail``) look like, or None."""
    if head[:4] == b"QFI\xfb":
        return "qcow2"
    if head[:4] == b"KDMV" or head[:21] == b"# Disk DescriptorFile":
        return "vmdk"
    if head[:8] == b"vhdxfile":
        return "vhdx"
    if head[:8] == b"conectix" or tail[:8] == b"conectix":
        return "vhd"
    if len(head) >= 0x44 and head[0x40:0x44] == b"\x7f\x10\xda\xbe":
        return "vdi"
    if head[:4] == b"QFI\x00" or head[:4] == b"QED\x00":
        return "qed"
    if head[:6] == b"LUKS\xba\xbe":
        return "luks"
    if len(head) >= 32774 and head[32769:32774] == b"CD001":
        return "iso"
    return None


def check_header(declared: str, head: bytes, tail: bytes = b"") -> None:
    """Raise FormatError if the data cannot be an image of format ``declared``."""
    found = detect(head, tail)
    if declared in ("raw", "ami"):
        # an ISO is raw data too; any other structure would be read as such by QEMU
        if found not in (None, "iso"):
            raise FormatError(
                f"Image data is in {found} format but its disk_format is {declared}: "
                f"set disk_format={found} or upload the data as it is declared."
            )
        return
    if declared in ("qcow2", "vmdk", "vhd", "vhdx", "vdi", "iso"):
        if found != declared:
            what = f"is in {found} format" if found else "has no recognisable header"
            raise FormatError(f"Image data {what}, but its disk_format is {declared}.")
    if declared == "qcow2":
        _check_qcow2(head)
    elif declared == "vmdk":
        _check_vmdk(head)


def _check_qcow2(head: bytes) -> None:
    if len(head) < 72:
        raise FormatError("qcow2 image data is shorter than its header.")
    version = struct.unpack(">I", head[4:8])[0]
    if version not in (2, 3):
        raise FormatError(f"qcow2 version {version} is not supported.")
    backing_offset = struct.unpack(">Q", head[8:16])[0]
    if backing_offset:
        raise FormatError("qcow2 images with a backing file are refused: it could name a file on the host.")
    if version == 3 and len(head) >= 80:
        incompatible = struct.unpack(">Q", head[72:80])[0]
        if incompatible & 0x4:
            raise FormatError("qcow2 images with an external data file are refused: it could name a file on the host.")


def _check_vmdk(head: bytes) -> None:
    if head[:4] != b"KDMV":
        raise FormatError("VMDK descriptor files are refused: their extents name other files. "
                          "Upload a monolithicSparse or streamOptimized VMDK.")
    offset, size = struct.unpack("<QQ", head[28:44])  # embedded descriptor, in sectors
    if not offset or not size:
        raise FormatError("VMDK image has no embedded descriptor.")
    descriptor = head[offset * 512:(offset + size) * 512]
    match = re.search(rb'createType\s*=\s*"([^"]+)"', descriptor)
    if match is None:
        raise FormatError("VMDK descriptor has no createType (it must lie within the first 64 KiB).")
    kind = match.group(1).decode(errors="replace")
    if kind not in VMDK_ALLOWED:
        raise FormatError(f"VMDK createType {kind!r} is refused; allowed: {', '.join(sorted(VMDK_ALLOWED))}.")


def qemu_info(path: Path, declared: str) -> dict | None:
    """``qemu-img info`` of a stored image, format forced, resources limited.

    Returns None for formats qemu-img has no name for (raw data needs none);
    raises FormatError when qemu-img refuses the data or it points outside.
    """
    fmt = QEMU_NAMES.get(declared)
    if fmt is None or not qemu_img.available():
        return None
    try:
        info = qemu_img.info(path, fmt)  # (limited: a crafted header must not eat the machine)
    except qemu_img.QemuImgError as e:
        if e.timed_out:
            raise FormatError(f"Inspecting the {declared} image took too long.") from None
        reason = e.reason.replace(str(path), "<image>")
        raise FormatError(f"Image data is not a valid {declared} image: {reason}") from None
    outside = qemu_img.outside_reference(info, path)
    if outside == "a backing file":
        raise FormatError("Images with a backing file are refused: it could name a file on the host.")
    if outside == "an external data file":
        raise FormatError("Images with an external data file are refused.")
    if outside:
        raise FormatError("VMDK extents must all be in the image itself.")
    return info


def virtual_size(path: Path | None, declared: str, size: int) -> int | None:
    """The disk size a guest sees, checked; raw-like formats: the data size."""
    if declared in ("raw", "iso", "ami", "ari", "aki"):
        return size
    if path is None:
        return None
    info = qemu_info(path, declared)
    return int(info["virtual-size"]) if info and "virtual-size" in info else None
