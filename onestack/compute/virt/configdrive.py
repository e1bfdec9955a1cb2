"""Config drives: a small filesystem labelled `config-2` with the instance's metadata.

Layout, as Nova writes it (the parts guests read):

    openstack/latest/meta_data.json      uuid, name, hostname, public_keys, keys, meta, ...
    openstack/latest/user_data           if the server has user_data (raw bytes)
    openstack/latest/network_data.json   links, networks, services
    openstack/latest/vendor_data.json    {} unless given
    ec2/latest/meta-data.json            optional, the EC2 view of the metadata
    ec2/latest/user-data                 with it, when there is user_data

Formats: "vfat" (mkfs.vfat -n config-2 + mcopy, in a file: no loop device, no
mount, no root needed; attached as a virtio disk) and "iso9660" (xorriso or
genisoimage, Rock Ridge + Joliet, volume id config-2; attached as an IDE CD-ROM,
Nova's default on x86). The drive is built under a temporary name beside `path`
and renamed into place; it is mode 0600 (user_data may hold secrets; libvirt
hands it to the QEMU user when the domain starts).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from onestack.compute.virt.errors import VirtError

FORMATS = ("vfat", "iso9660")
LABEL = "config-2"


def nova_meta_data(
    uuid: str,
    name: str,
    *,
    hostname: str | None = None,
    public_keys: dict[str, str] | None = None,
    meta: dict[str, str] | None = None,
    availability_zone: str = "nova",
    project_id: str = "",
    launch_index: int = 0,
    devices: list | None = None,
) -> dict:
    """meta_data.json shaped as Nova writes it."""
    keys = public_keys or {}
    return {
        "uuid": uuid,
        "name": name,
        "hostname": hostname or name,
        "launch_index": launch_index,
        "availability_zone": availability_zone,
        "project_id": project_id,
        "meta": dict(meta or {}),
        "public_keys": dict(keys),
        "keys": [{"name": k, "type": "ssh", "data": v} for k, v in keys.items()],
        "devices": list(devices or []),
        "random_seed": base64.b64encode(os.urandom(512)).decode(),
    }


def files(
    meta_data: dict,
    user_data: bytes | None = None,
    network_data: dict | None = None,
    vendor_data: dict | None = None,
    ec2_meta_data: dict | None = None,
) -> dict[str, bytes]:
    """Relative path -> content of every file on the drive."""
    out = {
        "openstack/latest/meta_data.json": json.dumps(meta_data).encode(),
        "openstack/latest/network_data.json": json.dumps(
            network_data or {"links": [], "networks": [], "services": []}
        ).encode(),
        "openstack/latest/vendor_data.json": json.dumps(vendor_data or {}).encode(),
    }
    if user_data is not None:
        out["openstack/latest/user_data"] = user_data
    if ec2_meta_data is not None:
        out["ec2/latest/meta-data.json"] = json.dumps(ec2_meta_data).encode()
        if user_data is not None:
            out["ec2/latest/user-data"] = user_data
    return out


def _run(cmd: list[str]) -> None:
    try:
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
        )
    except FileNotFoundError as e:
        raise VirtError(f"{cmd[0]} not found (needed for config drives)") from e
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
        raise VirtError(f"{cmd[0]} failed: {lines[-1] if lines else done.returncode}")


def vfat_size_kib(content: dict[str, bytes]) -> int:
    """Room for the files, their clusters and directories, with a margin: at least 1 MiB."""
    data = sum(len(v) + 4096 for v in content.values())  # a cluster's slack per file
    return max(1024, (2 * data + 512 * 1024) // 1024)


def build(path: Path, content: dict[str, bytes], fmt: str = "vfat") -> Path:
    """Write a config drive holding `content` (see files()) at `path`."""
    if fmt not in FORMATS:
        raise VirtError(f"config drive format {fmt!r}: use one of {', '.join(FORMATS)}")
    path = Path(path)
    work = Path(tempfile.mkdtemp(prefix=".configdrive.", dir=path.parent))
    try:
        tree = work / "tree"
        for rel, data in content.items():
            target = tree / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        image = work / "drive"
        if fmt == "vfat":
            _run(["mkfs.vfat", "-n", LABEL, "-C", str(image), str(vfat_size_kib(content))])
            tops = [str(p) for p in sorted(tree.iterdir())]
            _run(["mcopy", "-s", "-i", str(image), *tops, "::/"])
        else:
            tool = shutil.which("xorriso") or shutil.which("genisoimage")
            if tool is None:
                raise VirtError("neither xorriso nor genisoimage found (iso9660 config drive)")
            mkisofs = [tool, "-as", "mkisofs"] if tool.endswith("xorriso") else [tool]
            _run([*mkisofs, "-quiet", "-R", "-J", "-V", LABEL, "-o", str(image), str(tree)])
        image.chmod(0o600)
        os.replace(image, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path
