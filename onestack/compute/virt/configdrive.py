"""Config drives: a small filesystem labelled `config-2` with the instance's metadata.

Layout, as Nova writes it (the parts guests read):

    openstack/latest/meta_data.json      uuid, name, hostname, public_keys, keys, meta, ...
    openstack/latest/user_data           if the server has user_data (raw bytes)
    openstack/latest/network_data.json   links, networks, services
    openstack/latest/vendor_data.json    {} unless given
    openstack/latest/vendor_data2.json   {} (Nova's dynamic vendor data: none here)
    ec2/latest/meta-data.json            optional, the EC2 view of the metadata
    ec2/latest/user-data                 with it, when there is user_data

The documents are built from the instance by `instance_content()` (and its parts
`nova_meta_data`, `network_data`, `ec2_meta_data`), which the metadata service
(onestack/compute/metadata.py) uses too: config drive and metadata service say the
same thing.

Formats: "vfat" (mkfs.vfat -n config-2 + mcopy, in a file: no loop device, no
mount, no root needed; attached as a virtio disk) and "iso9660" (xorriso or
genisoimage, Rock Ridge + Joliet, volume id config-2; attached as an IDE CD-ROM,
Nova's default on x86). The drive is built under a temporary name beside `path`
and renamed into place; it is mode 0600 (user_data may hold secrets; libvirt
hands it to the QEMU user when the domain starts).
"""

from __future__ import annotations

import base64
import ipaddress
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
        "openstack/latest/vendor_data2.json": b"{}",
    }
    if user_data is not None:
        out["openstack/latest/user_data"] = user_data
    if ec2_meta_data is not None:
        out["ec2/latest/meta-data.json"] = json.dumps(ec2_meta_data).encode()
        if user_data is not None:
            out["ec2/latest/user-data"] = user_data
    return out


# -- the documents of one instance (config drive and metadata service)

OPENSTACK_VERSIONS = (
    "2012-08-10",
    "2013-04-04",
    "2013-10-17",
    "2015-10-15",
    "2016-06-30",
    "2016-10-06",
    "2017-02-22",
    "2018-08-27",
)
EC2_VERSIONS = (
    "1.0",
    "2007-01-19",
    "2007-03-01",
    "2007-08-29",
    "2007-10-10",
    "2007-12-15",
    "2008-02-01",
    "2008-09-01",
    "2009-04-04",
)


def _hex_id(prefix: str, value: str | None) -> str:
    """EC2-style ids (i-0123abcd, ami-...) made from a uuid's first 32 bits."""
    digits = "".join(c for c in (value or "") if c in "0123456789abcdefABCDEF")[:8]
    return f"{prefix}-{(digits or '0').lower().rjust(8, '0')}"


def ec2_instance_id(uuid: str) -> str:
    return _hex_id("i", uuid)


def _keys(inst: dict, keypairs: list[dict] | None) -> dict[str, str]:
    if keypairs:
        return {k["name"]: k["public_key"] for k in keypairs}
    if inst.get("key_name") and inst.get("key_data"):
        return {inst["key_name"]: inst["key_data"]}
    return {}


def _fixed_ips(inst: dict, version: int) -> list[dict]:
    return [
        ip
        for vif in inst.get("network_info") or []
        for ip in vif.get("fixed_ips") or []
        if ip.get("version", 4) == version
    ]


def instance_meta_data(
    inst: dict, keypairs: list[dict] | None = None, version: str = "latest"
) -> dict:
    """meta_data.json of an instance (a dict with the Instance row's fields; `metadata`
    or `metadata_` holds its metadata), as Nova writes it for `version`."""
    keys = _keys(inst, keypairs)
    md = nova_meta_data(
        inst["uuid"],
        inst.get("name") or "",
        hostname=inst.get("hostname") or None,
        public_keys=keys,
        meta=inst.get("metadata") or inst.get("metadata_") or {},
        availability_zone=inst.get("availability_zone") or "nova",
        project_id=inst.get("project_id") or "",
        launch_index=inst.get("launch_index") or 0,
    )
    types = {k["name"]: k.get("type", "ssh") for k in keypairs or []}
    md["keys"] = [{"name": n, "type": types.get(n, "ssh"), "data": d} for n, d in keys.items()]
    if version != "latest":
        if version < "2013-04-04":
            md.pop("random_seed")
        if version < "2015-10-15":
            md.pop("project_id")
        if version < "2016-06-30":
            md.pop("devices")
    return md


def _netmask(cidr: str | None, version: int) -> str | None:
    if not cidr:
        return None
    return str(ipaddress.ip_network(cidr, strict=False).netmask)


def network_data(vifs: list[dict]) -> dict:
    """network_data.json from network_info (Nova's links/networks/services)."""
    links, networks, services = [], [], []
    for vif in vifs or []:
        port = vif.get("port_id") or ""
        link = vif.get("tap") or ("tap" + port[:11])
        links.append(
            {
                "id": link,
                "vif_id": port,
                "type": vif.get("vif_type") or "bridge",
                "mtu": vif.get("mtu"),
                "ethernet_mac_address": vif.get("mac"),
            }
        )
        for ip in vif.get("fixed_ips") or []:
            v = ip.get("version", 4)
            net = {
                "id": f"network{len(networks)}",
                "link": link,
                "network_id": vif.get("network_id"),
            }
            if v == 4 and ip.get("enable_dhcp", True):
                net["type"] = "ipv4_dhcp"
            else:
                net["type"] = f"ipv{v}"
                net["ip_address"] = ip.get("ip_address")
                net["netmask"] = _netmask(ip.get("cidr"), v)
                routes = []
                if ip.get("gateway"):
                    any_ = "0.0.0.0" if v == 4 else "::"
                    routes.append({"network": any_, "netmask": any_, "gateway": ip["gateway"]})
                for r in ip.get("routes") or []:
                    dest = r.get("destination")
                    if dest:
                        routes.append(
                            {
                                "network": dest.split("/")[0],
                                "netmask": _netmask(dest, v),
                                "gateway": r.get("nexthop"),
                            }
                        )
                net["routes"] = routes
                net["services"] = [{"type": "dns", "address": d} for d in ip.get("dns") or []]
            networks.append(net)
            for d in ip.get("dns") or []:
                if {"type": "dns", "address": d} not in services:
                    services.append({"type": "dns", "address": d})
    return {"links": links, "networks": networks, "services": services}


def ec2_meta_data(inst: dict, keypairs: list[dict] | None = None) -> dict:
    """The EC2 meta-data tree (nested dicts; leaves are strings or lists)."""
    keys = _keys(inst, keypairs)
    v4 = _fixed_ips(inst, 4)
    floating = [f for ip in v4 for f in ip.get("floating_ips") or []]
    hostname = inst.get("hostname") or inst.get("name") or ""
    flavor = inst.get("flavor") or {}
    out = {
        "ami-id": _hex_id("ami", inst.get("image_ref")),
        "ami-launch-index": inst.get("launch_index") or 0,
        "ami-manifest-path": "FIXME",
        "block-device-mapping": {"ami": "vda", "root": "/dev/vda"},
        "hostname": hostname,
        "instance-action": "none",
        "instance-id": ec2_instance_id(inst["uuid"]),
        "instance-type": flavor.get("name", ""),
        "local-hostname": hostname,
        "local-ipv4": v4[0]["ip_address"] if v4 else "",
        "placement": {"availability-zone": inst.get("availability_zone") or "nova"},
        "public-hostname": hostname,
        "public-ipv4": floating[0] if floating else "",
        "reservation-id": inst.get("reservation_id") or "",
        "security-groups": list(inst.get("security_groups") or ["default"]),
    }
    if keys:
        # "_name" is what a listing of public-keys/ shows for the entry ("0=mykey")
        out["public-keys"] = {
            str(i): {"_name": f"{i}={name}", "openssh-key": data}
            for i, (name, data) in enumerate(keys.items())
        }
    return out


def user_data_of(inst: dict) -> bytes | None:
    """The instance's user_data (stored base64) as bytes, or None."""
    text = inst.get("user_data")
    if not text:
        return None
    try:
        return base64.b64decode(text)
    except (ValueError, TypeError):
        return None


def instance_content(inst: dict, keypairs: list[dict] | None = None) -> dict:
    """Everything a config drive holds for `inst`, as keyword arguments of the virt
    driver's ConfigDrive (meta_data, user_data, network_data, vendor_data, ec2_meta_data)."""
    return {
        "meta_data": instance_meta_data(inst, keypairs),
        "user_data": user_data_of(inst),
        "network_data": network_data(inst.get("network_info") or []),
        "vendor_data": {},
        "ec2_meta_data": ec2_meta_data(inst, keypairs),
    }


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
