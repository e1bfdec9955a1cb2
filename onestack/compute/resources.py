"""What a server takes from a host, as Placement counts it (the scheduler claims it, for a
new server and for a move)."""

from __future__ import annotations


def volume_backed(bdms: list[dict] | None) -> bool:
    """Whether the server's root disk is a volume (boot index 0 mapped to a volume)."""
    return any(str(b.get("boot_index")) == "0" and b.get("destination_type") == "volume" for b in bdms or [])


def resources_of(flavor: dict, volume_backed: bool = False) -> dict[str, int]:
    """What a server of this flavor takes from a host; as Nova, a volume-backed server's
    root disk is on the volume, not the host's disk."""
    res = {"VCPU": flavor["vcpus"], "MEMORY_MB": flavor["memory_mb"]}
    root = 0 if volume_backed else flavor.get("root_gb", 0)
    disk = root + flavor.get("ephemeral_gb", 0) + (flavor.get("swap", 0) + 1023) // 1024
    if disk:
        res["DISK_GB"] = disk
    return res

