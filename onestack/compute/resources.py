"""What a server takes from a host, as Placement counts it (the scheduler claims it, the
compute agent re-claims it on resize, the API on a resize request)."""

from __future__ import annotations

from onestack.compute import clients


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


def claim_in_place(instance_uuid: str, flavor: dict, bdms: list[dict] | None, project_id: str,
                   user_id: str) -> bool:
    """Make the server's claim what ``flavor`` takes, on the provider it holds room on now (a
    resize on the same host); False when that host has no room for it. A server that holds
    nothing in Placement is left so."""
    p = clients.get().placement
    held = p.allocations(instance_uuid)
    rp = next(iter(held.get("allocations") or {}), None)
    if rp is None:
        return True
    return p.claim(instance_uuid, {rp: resources_of(flavor, volume_backed(bdms))}, project_id, user_id,
                   consumer_generation=held.get("consumer_generation"))
