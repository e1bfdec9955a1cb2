"""Servers booted from a volume (the root disk vda is a volume): what differs for them.

- createImage: no disk data is copied. Each attached volume is snapshotted through
  the volume API (``force``: it is in use) and the image is a zero-byte bucket of
  properties whose ``block_device_mapping`` (with ``bdm_v2``) points at those
  snapshots; booting a server from that image makes its volumes from them.
- rebuild (before compute 2.93): only with the image already in the root volume,
  whose data is kept; the guest is defined again around the same volume.
- resize ignores the flavor's root disk; shelve offloads at once and keeps the
  volumes attached; rescue is refused (allowed from 2.87, beyond this cloud).

No module-level database access: the compute agent and the scheduler import it too.
"""

from __future__ import annotations

import json
import logging
import time

from onestack.common import booleans, errors
from onestack.compute import clients

log = logging.getLogger(__name__)

ROOT_DEVICE = "/dev/vda"


def root_bdm(bdms) -> dict | None:
    """The boot mapping of a volume-backed server (its root volume), else None."""
    return next((b for b in bdms or [] if b.get("boot_index") == 0 and b.get("destination_type") == "volume"),
                None)


def volume_backed(bdms: list[dict] | None) -> bool:
    """Whether the server's root disk is a volume (boot index 0 mapped to a volume)."""
    return any(str(b.get("boot_index")) == "0" and b.get("destination_type") == "volume" for b in bdms or [])


# ---------------------------------------------------------------- createImage

def snapshot_to_image(ctx, inst, name: str, metadata: dict) -> dict:
    """Snapshot every volume of ``inst`` and create the image that maps them, as the
    user; on any failure what was made is removed again and the error raised."""
    vc, ic = clients.get().volume, clients.get().image
    volumes = [b for b in inst.block_device_mapping or []
               if b.get("destination_type") == "volume" and b.get("volume_id")]
    if volumes:
        _check_snapshot_quota(ctx, len(volumes))
    made: list[str] = []
    image_id = None
    try:
        mapping = []
        for b in volumes:
            vol = vc.get(f"/volumes/{b['volume_id']}", token=ctx.auth_token)["volume"]
            try:
                snap = vc.post("/snapshots", token=ctx.auth_token, json={"snapshot": {
                    "volume_id": vol["id"], "name": f"snapshot for {name}"[:255],
                    "description": vol.get("description"), "force": True}})["snapshot"]
            except errors.PayloadTooLarge as e:  # the volume service's overLimit: Nova's 403
                raise errors.Forbidden(f"Quota exceeded for resources: ['snapshots']. {e.message}") from None
            made.append(snap["id"])
            mapping.append({
                "source_type": "snapshot", "destination_type": "volume", "snapshot_id": snap["id"],
                "volume_id": None, "image_id": None, "boot_index": b.get("boot_index"),
                "volume_size": vol["size"], "delete_on_termination": bool(b.get("delete_on_termination")),
                "device_name": b.get("device"), "device_type": "disk", "disk_bus": None, "guest_format": None,
                "no_device": None, "volume_type": None, "tag": b.get("tag")})
        meta = (inst.system_metadata or {}).get("image") or {}
        props = {k: str(v) for k, v in meta.items() if k in ("os_type", "hw_disk_bus", "hw_vif_model") and v}
        body = {"name": name, "disk_format": "raw", "container_format": "bare", **snapshot_minimums(inst),
                "image_type": "snapshot", "instance_uuid": inst.uuid, "user_id": inst.user_id,
                "base_image_ref": inst.image_ref or "", **props, **metadata,
                "root_device_name": ROOT_DEVICE}
        if mapping:
            body.update(block_device_mapping=json.dumps(mapping), bdm_v2="True")
        image = ic.post("/v2/images", json=body, token=ctx.auth_token)
        image_id = image["id"]
        # no data: a zero-byte upload makes the image active (what Nova does for Glance v2)
        r = ic.http.put(f"{ic.url}/v2/images/{image_id}/file", content=b"", timeout=60,
                        headers={"X-Auth-Token": ctx.auth_token, "Content-Type": "application/octet-stream"})
        if r.status_code != 204:
            raise errors.ServiceUnavailable(f"the image service did not take the snapshot image ({r.status_code}).")
        return image
    except BaseException:
        if image_id:
            try:
                ic.delete(f"/v2/images/{image_id}", ok=(204, 404))
            except errors.ApiError as e:
                log.warning("snapshot image %s not removed: %s", image_id, e.message)
        drop_snapshots(made)
        raise


def snapshot_minimums(inst) -> dict:
    """``min_ram`` and ``min_disk`` of a snapshot of ``inst`` (image- or volume-backed), as
    Nova's: inherited from the image the server was built from (its system metadata), the
    disk at least the flavor's root disk (Nova records max(min_disk, root_gb) at boot; the
    current flavor here, so a grown root disk counts)."""
    meta = (inst.system_metadata or {}).get("image") or {}
    return {"min_ram": _int(meta.get("min_ram")),
            "min_disk": max(_int(meta.get("min_disk")), _int((inst.flavor or {}).get("root_gb")))}


def _int(value) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def _check_snapshot_quota(ctx, count: int) -> None:
    """Best effort before any snapshot is made, as Nova does (403 when it would not fit)."""
    try:
        absolute = clients.get().volume.get("/limits", token=ctx.auth_token)["limits"]["absolute"]
    except (errors.ApiError, KeyError, TypeError):
        return  # the volume service still checks each snapshot
    limit, used = absolute.get("maxTotalSnapshots", -1), absolute.get("totalSnapshotsUsed", 0)
    if limit is not None and limit > -1 and used + count > limit:
        raise errors.Forbidden(f"Quota exceeded for resources: ['snapshots']. Requested {count} snapshots, "
                               f"{used} of {limit} are used.")


def drop_snapshots(ids: list[str], wait: float = 30) -> None:
    """Remove snapshots made for an image that is not going to be (service token: a
    snapshot still being made is force-deleted once the wait is over)."""
    vc = clients.get().volume
    for sid in ids:
        try:
            deadline = time.monotonic() + wait
            while True:
                status = vc.get(f"/snapshots/{sid}")["snapshot"]["status"]
                if status != "creating" or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            if status == "creating":
                vc.post(f"/snapshots/{sid}/action", json={"os-force_delete": {}}, ok=(202, 404))
            elif status != "deleting":
                vc.delete(f"/snapshots/{sid}", ok=(202, 204, 404))
        except errors.NotFound:
            pass
        except errors.ApiError as e:
            log.warning("snapshot %s not removed: %s", sid, e.message)


# ---------------------------------------------------------------- booting from such an image

def image_mappings(img: dict) -> list[dict] | None:
    """The block device mappings an image defines (``block_device_mapping`` with
    ``bdm_v2``), as block_device_mapping_v2 request items; None if it defines none."""
    raw = img.get("block_device_mapping")
    if raw in (None, "", "[]", []):
        return None
    try:
        items = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        items = None
    if not isinstance(items, list) or not all(isinstance(b, dict) for b in items):
        raise errors.BadRequest(f"Block Device Mapping is Invalid: the block_device_mapping property of image "
                                f"{img.get('id')} is not a list of mappings.")
    if not booleans.to_bool(img.get("bdm_v2")):
        raise errors.BadRequest(f"Block Device Mapping is Invalid: image {img.get('id')} has legacy (not bdm_v2) "
                                f"block device mappings, which this cloud does not read.")
    out = []
    for b in items:
        src = b.get("source_type")
        ref = {"snapshot": b.get("snapshot_id"), "volume": b.get("volume_id"), "image": b.get("image_id")}.get(src)
        item = {"source_type": src, "destination_type": b.get("destination_type") or "volume", "uuid": ref,
                "boot_index": b.get("boot_index"), "delete_on_termination": b.get("delete_on_termination"),
                "device_name": b.get("device_name"), "tag": b.get("tag")}
        if b.get("volume_size"):
            item["volume_size"] = b["volume_size"]
        out.append(item)
    return out


def _dev(name) -> str:
    return str(name or "").removeprefix("/dev/")


def merge_mappings(from_image: list[dict], requested: list) -> list:
    """The image's mappings, overridden by requested ones of the same device name; a
    requested image root (boot_index 0, source image) gives way to the image's root."""
    image_root = any(str(b.get("boot_index")) == "0" for b in from_image)
    requested = [b for b in requested if not (isinstance(b, dict) and image_root and
                                              str(b.get("boot_index")) == "0" and b.get("source_type") == "image")]
    names = {_dev(b.get("device_name")) for b in requested if isinstance(b, dict) and b.get("device_name")}
    return [b for b in from_image if not b.get("device_name") or _dev(b["device_name"]) not in names] + requested


def image_root_volume(ctx, root: dict) -> str | None:
    """The image in a root volume (its volume_image_metadata), with the user's token."""
    try:
        vol = clients.get().volume.get(f"/volumes/{root['volume_id']}", token=ctx.auth_token)["volume"]
    except errors.NotFound:
        return None
    return (vol.get("volume_image_metadata") or {}).get("image_id")
