"""The volume agent of one backend (bus topic ``volume.<host>@<backend>``): cinder-volume.

It makes the API's requests real on its backend: creates volumes (empty, from
an image, a snapshot or another volume), deletes, extends, snapshots, uploads
to the image service, backs up and restores, and hands out connection
information for attachments. It never opens the database: it reads and reports
through the conductor over the bus. Images are reached over the image API
with the ``cinder`` service user's token.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

from onestack.common import bus, errors
from onestack.common.timeutils import iso, utcnow
from onestack.volume import settings
from onestack.volume.backends.file import BackendError, FileBackend
from onestack.volume.exports import ExportError, ExportManager, use_nbd

log = logging.getLogger(__name__)

_IMAGE_META = ("checksum", "container_format", "disk_format", "min_disk", "min_ram", "size")
_IMAGE_CORE = {"id", "name", "status", "visibility", "protected", "owner", "created_at", "updated_at", "tags",
               "file", "schema", "self", "direct_url", "locations", "os_hash_algo", "os_hash_value",
               "virtual_size", "os_hidden", "checksum", "container_format", "disk_format", "min_disk", "min_ram",
               "size", "stores"}


class Conductor:
    """The agent's view of the conductor: bus calls only."""

    def __getattr__(self, method):
        def call(**kwargs):
            return bus.get().call_sync("volume.conductor", method, **kwargs)
        return call


class VolumeAgent:
    def __init__(self, host: str, backend: FileBackend, backend_name: str, zone: str = "nova",
                 over_subscription: float = 20.0, images=None, backups=None, compute=None, exports=None):
        self.host = host  # host@backend
        self.backend = backend
        self.backend_name = backend_name
        self.zone = zone
        self.over_subscription = over_subscription
        self.images = images  # RestClient of the image API (None: no image service)
        self.backups = backups  # a backup store
        self.compute = compute  # RestClient of the compute API (None: no compute to tell of extends)
        self.conductor = Conductor()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        if exports is None:  # NBD exports for guests on other nodes; live ones re-adopted from the ledger
            st = settings.current
            exports = ExportManager(st.volumes_dir / "exports", st.export_address, st.export_tls_dir or None)
        self.exports = exports

    def serve(self) -> None:
        bus.get().serve(f"volume.{self.host}", self)

    def _lock(self, ident: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(ident, threading.Lock())

    def capabilities(self) -> dict:
        cap = self.backend.capacity()
        return {"volume_backend_name": self.backend_name, "pool_name": self.backend_name,
                "driver_version": "1.0", "storage_protocol": "file", "vendor_name": "onestack",
                "thin_provisioning_support": True, "max_over_subscription_ratio": self.over_subscription,
                "multiattach": True, **cap}

    # -- volumes

    def create_volume(self, volume_id: str) -> None:
        with self._lock(volume_id):
            v = self.conductor.volume_get(volume_id=volume_id)
            if v is None or v["deleted"] or v["status"] != "creating":
                return
            changes: dict = {}
            expected = "creating"
            try:
                src = v.get("source")
                if v["snapshot_id"] or v["source_volid"]:
                    if not src or not src.get("provider_location"):
                        raise BackendError("the source of the volume has no data")
                    made = self.backend.copy(src["provider_location"], self.backend.format, volume_id, v["size"])
                    changes["bootable"] = bool(src.get("bootable", False))
                    changes["image_metadata"] = src.get("image_metadata") or {}
                elif v["image_id"]:
                    # as Cinder: "downloading" while the image is copied into the volume
                    if self.conductor.volume_update(volume_id=volume_id, expected_status="creating",
                                                    status="downloading") != "downloading":
                        return  # deleted meanwhile
                    expected = "downloading"
                    made, meta = self._from_image(v)
                    changes.update(bootable=True, image_metadata=meta)
                else:
                    made = self.backend.create(volume_id, v["size"])
            except Exception as e:
                log.exception("creating volume %s failed", volume_id)
                self.conductor.volume_update(volume_id=volume_id, status="error")
                self._fault(volume_id, str(e))
                return
            after = self.conductor.volume_update(volume_id=volume_id, expected_status=expected, status="available",
                                                 provider_location=made["path"], disk_format=made["format"],
                                                 **changes)
            if after != "available":  # deleted (or force-deleted) while it was made: the report was not applied
                self.backend.delete(made["path"])

    def _fault(self, volume_id: str, message: str) -> None:
        log.warning("volume %s: %s", volume_id, message)

    def _from_image(self, v: dict) -> tuple[dict, dict]:
        if self.images is None:
            raise BackendError("there is no image service")
        image = self.images.get(f"/v2/images/{v['image_id']}")
        if image.get("status") != "active":
            raise BackendError(f"image {v['image_id']} is not active")
        tmp = Path(tempfile.mkdtemp(prefix="image-", dir=self.backend.dir))
        try:
            data = tmp / "data"
            with self.images.stream(f"/v2/images/{v['image_id']}/file") as r:
                if r.status_code != 200:
                    raise BackendError(f"image {v['image_id']} could not be downloaded ({r.status_code})")
                with open(data, "wb") as f:
                    for chunk in r.iter_bytes(1024 * 1024):
                        f.write(chunk)
            made = self.backend.from_image(data, image.get("disk_format") or "raw", v["id"], v["size"])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        meta = {"image_id": image["id"], "image_name": image.get("name") or ""}
        for k in _IMAGE_META:
            if image.get(k) is not None:
                meta[k] = str(image[k])
        for k, val in image.items():
            if k not in _IMAGE_CORE and isinstance(val, str):
                meta[k] = val
        return made, meta

    def delete_volume(self, volume_id: str, cascade: bool = False) -> None:
        with self._lock(volume_id):
            v = self.conductor.volume_get(volume_id=volume_id)
            if v is None or v["deleted"]:
                return
            try:
                self.exports.stop_volume(volume_id)  # a forced delete: no daemon keeps the data alive
                self.backend.delete(v.get("provider_location"))
            except Exception:
                log.exception("deleting volume %s failed", volume_id)
                self.conductor.volume_update(volume_id=volume_id, status="error_deleting")
                return
            self.conductor.volume_destroyed(volume_id=volume_id)

    def extend_volume(self, volume_id: str, new_size: int, status_after: str = "available") -> None:
        with self._lock(volume_id):
            v = self.conductor.volume_get(volume_id=volume_id)
            if v is None or v["deleted"]:
                return
            online = status_after == "in-use"
            try:
                try:
                    self.backend.extend(v["provider_location"], v["disk_format"], new_size)
                except BackendError:
                    if not online:
                        raise
                    # the guest's QEMU holds the file's write lock, so qemu-img may not resize it:
                    # a raw file grows by truncation; a qcow2 image is grown by that QEMU itself
                    # when compute resizes the disk (blockResize) on the volume-extended event
                    if v["disk_format"] == "raw":
                        path = Path(v["provider_location"])
                        if path.stat().st_size < new_size * 1024**3:
                            os.truncate(path, new_size * 1024**3)
                    else:
                        log.info("volume %s is in use: its %s image is grown by the guest's hypervisor",
                                 volume_id, v["disk_format"])
            except Exception:
                log.exception("extending volume %s failed", volume_id)
                self.conductor.volume_update(volume_id=volume_id, status="error_extending")
                return
            self.conductor.volume_update(volume_id=volume_id, status=status_after, size=new_size)
            if online:  # Cinder's volume-extended event: compute makes the guest see the new size
                servers = list(dict.fromkeys(a["instance_uuid"] for a in v.get("attachments") or []))
                events = [{"name": "volume-extended", "server_uuid": s, "tag": volume_id} for s in servers]
                if events and self.compute is not None:
                    try:
                        r = self.compute.post("/os-server-external-events", json={"events": events},
                                              ok=(200, 207))
                        for e in (r or {}).get("events", []):
                            if e.get("code") != 200:
                                log.warning("volume-extended of %s for server %s: %s", volume_id,
                                            e.get("server_uuid"), e.get("code"))
                    except errors.ApiError as e:
                        log.warning("compute was not told that volume %s grew: %s", volume_id, e.message)

    def upload_to_image(self, volume_id: str, image_id: str, disk_format: str, status_after: str) -> None:
        with self._lock(volume_id):
            v = self.conductor.volume_get(volume_id=volume_id)
            if v is None or v["deleted"]:
                return
            tmp = Path(tempfile.mkdtemp(prefix="upload-", dir=self.backend.dir))
            try:
                dest = tmp / "image"
                self.backend.to_image(v["provider_location"], v["disk_format"], dest, disk_format)
                c = self.images
                with open(dest, "rb") as f:
                    r = c.http.put(f"{c.url}/v2/images/{image_id}/file", content=f,
                                   headers={"X-Auth-Token": c.auth.token(),
                                            "Content-Type": "application/octet-stream"}, timeout=1800)
                if r.status_code != 204:
                    raise BackendError(f"upload to the image service failed ({r.status_code}): {r.text[:200]}")
            except Exception:
                log.exception("uploading volume %s to image %s failed", volume_id, image_id)
                try:
                    self.images.delete(f"/v2/images/{image_id}", ok=(204, 404))
                except errors.ApiError:
                    pass
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
                self.conductor.volume_update(volume_id=volume_id, status=status_after)

    def retype(self, volume_id: str, status_after: str) -> None:
        # one backend, files of one format: a new type changes nothing on disk
        self.conductor.volume_update(volume_id=volume_id, status=status_after)

    # -- attachments

    def initialize_connection(self, volume_id: str, connector: dict | None = None) -> dict:
        v = self.conductor.volume_get(volume_id=volume_id)
        if v is None or v["deleted"] or not v.get("provider_location"):
            raise errors.NotFound(f"Volume {volume_id} could not be found.")
        if not Path(v["provider_location"]).exists():
            raise errors.ServiceUnavailable(f"the data of volume {volume_id} is missing on {self.host}")
        if use_nbd(settings.current.attach_protocol, self.host, connector):
            # another node's guest (or nbd asked for): an NBD export of the file, raw to the client
            try:
                e = self.exports.export(volume_id, v["provider_location"], v["disk_format"], connector,
                                        readonly=(connector or {}).get("mode") == "ro",
                                        shared=bool(v.get("multiattach")))
            except ExportError as err:
                raise errors.ServiceUnavailable(str(err)) from None
            return {"driver_volume_type": "nbd", "data": e.connection_data()}
        return {"driver_volume_type": "file",
                "data": {"device_path": v["provider_location"], "path": v["provider_location"],
                         "format": v["disk_format"], "volume_id": volume_id, "host": self.host,
                         "access_mode": (connector or {}).get("mode", "rw")}}

    def terminate_connection(self, volume_id: str, connector: dict | None = None) -> None:
        self.exports.unexport(volume_id, connector)  # the NBD export of this attachment, if it has one

    # -- snapshots

    def create_snapshot(self, snapshot_id: str) -> None:
        snap = self.conductor.snapshot_get(snapshot_id=snapshot_id)
        if snap is None or snap["deleted"] or snap["status"] != "creating":
            return
        vol = snap.get("volume") or {}
        try:
            made = self.backend.snapshot(vol["provider_location"], vol["disk_format"], snapshot_id)
        except Exception:
            log.exception("snapshot %s failed", snapshot_id)
            self.conductor.snapshot_update(snapshot_id=snapshot_id, status="error")
            return
        after = self.conductor.snapshot_update(snapshot_id=snapshot_id, expected_status="creating",
                                               status="available", progress="100%",
                                               provider_location=made["path"])
        if after is None:
            self.backend.delete(made["path"])

    def delete_snapshot(self, snapshot_id: str) -> None:
        snap = self.conductor.snapshot_get(snapshot_id=snapshot_id)
        if snap is None or snap["deleted"]:
            return
        try:
            self.backend.delete(snap.get("provider_location"))
        except Exception:
            log.exception("deleting snapshot %s failed", snapshot_id)
            self.conductor.snapshot_update(snapshot_id=snapshot_id, status="error_deleting")
            return
        self.conductor.snapshot_destroyed(snapshot_id=snapshot_id)

    def delete_volume_cascade(self, volume_id: str, snapshot_ids: list[str]) -> None:
        for sid in snapshot_ids:
            self.delete_snapshot(sid)
        self.delete_volume(volume_id)

    # -- backups

    def create_backup(self, backup_id: str, status_after: str = "available") -> None:
        b = self.conductor.backup_get(backup_id=backup_id)
        if b is None or b["deleted"]:
            return
        v = self.conductor.volume_get(volume_id=b["volume_id"]) or {}
        src, fmt = v.get("provider_location"), v.get("disk_format", "raw")
        if b.get("snapshot_id"):
            snap = self.conductor.snapshot_get(snapshot_id=b["snapshot_id"]) or {}
            src, fmt = snap.get("provider_location"), self.backend.format
        try:
            if self.backups is None:
                raise BackendError("no backup store is configured")
            if not src:
                raise BackendError("the volume has no data to back up")
            if b.get("parent_id") and not b.get("parent"):
                raise BackendError(f"the parent backup {b['parent_id']} is gone")
            done = self.backups.write(backup_id, b["volume_id"], Path(src), fmt, b.get("container"),
                                      parent=b.get("parent"))
        except Exception as e:
            log.exception("backup %s failed", backup_id)
            self.conductor.backup_update(backup_id=backup_id, status="error", fail_reason=str(e)[:255])
        else:
            self.conductor.backup_update(backup_id=backup_id, status="available", object_count=done["object_count"],
                                         container=done["container"], data_timestamp=iso(utcnow()))
        self.conductor.volume_update(volume_id=b["volume_id"], status=status_after)

    def restore_backup(self, backup_id: str, volume_id: str) -> None:
        b = self.conductor.backup_get(backup_id=backup_id)
        v = self.conductor.volume_get(volume_id=volume_id)
        if b is None or v is None:
            return
        with self._lock(volume_id):
            try:
                if self.backups is None:
                    raise BackendError("no backup store is configured")
                if not v.get("provider_location"):
                    made = self.backend.create(volume_id, v["size"])
                    self.conductor.volume_update(volume_id=volume_id, provider_location=made["path"],
                                                 disk_format=made["format"])
                    v["provider_location"], v["disk_format"] = made["path"], made["format"]
                self.backups.read(backup_id, b["volume_id"], b.get("container"), Path(v["provider_location"]),
                                  v["disk_format"])
            except Exception as e:
                log.exception("restore of backup %s failed", backup_id)
                self.conductor.volume_update(volume_id=volume_id, status="error_restoring")
                self.conductor.backup_update(backup_id=backup_id, status="available",
                                             fail_reason=f"restore failed: {e}"[:255])
                return
            self.conductor.volume_update(volume_id=volume_id, status="available")
            self.conductor.backup_update(backup_id=backup_id, status="available")

    def delete_backup(self, backup_id: str) -> None:
        b = self.conductor.backup_get(backup_id=backup_id)
        if b is None:
            return
        try:
            if self.backups is not None:
                self.backups.delete(backup_id, b["volume_id"], b.get("container"))
        except Exception:
            log.exception("deleting backup %s failed", backup_id)
            self.conductor.backup_update(backup_id=backup_id, status="error_deleting")
            return
        self.conductor.backup_destroyed(backup_id=backup_id)
