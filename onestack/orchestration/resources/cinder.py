"""OS::Cinder::* types: Volume, VolumeAttachment, VolumeType, on the block storage API
(attachments through the compute API, as Heat makes them)."""

from __future__ import annotations

import json
from typing import Any

from onestack.common import errors
from onestack.orchestration.resources import constraints as c
from onestack.orchestration.resources.base import (
    BOOLEAN,
    INTEGER,
    LIST,
    MAP,
    STRING,
    Attribute,
    Constraint,
    Property,
    Resource,
    register,
)

SHOW = Attribute("Detailed information about resource.", MAP)


def _custom(name: str) -> list[Constraint]:
    return [Constraint("custom_constraint", name)]


def _failed(volume: dict, doing: str) -> errors.ApiError:
    return errors.Conflict(f"Went to status {volume['status']} due to \"{doing} failed\"")


@register("OS::Cinder::Volume")
class Volume(Resource):
    """A volume: made empty, from an image, a volume or a snapshot; ready when available.
    A bigger size extends it in place (Cinder cannot shrink one)."""

    REQUIRES_SERVICE = c.VOLUME_SERVICE
    PROPERTIES = {
        "availability_zone": Property(STRING, description="The availability zone in which the volume will be "
                                                          "created."),
        "size": Property(INTEGER, update_allowed=True, constraints=[Constraint("range", {"min": 1})],
                         description="The size of the volume in GB. On update only increase in size is "
                                     "supported."),
        "snapshot_id": Property(STRING, constraints=_custom("cinder.snapshot"),
                                description="If specified, the snapshot to create the volume from."),
        "backup_id": Property(STRING, update_allowed=True, constraints=_custom("cinder.backup"),
                              description="If specified, the backup to create the volume from."),
        "name": Property(STRING, update_allowed=True, description="A name used to distinguish the volume."),
        "description": Property(STRING, update_allowed=True, description="A description of the volume."),
        "volume_type": Property(STRING, update_allowed=True, constraints=_custom("cinder.vtype"),
                                description="If specified, the type of volume to use, mapping to a specific "
                                            "backend."),
        "metadata": Property(MAP, default={}, update_allowed=True, description="Key/value pairs to associate "
                                                                               "with the volume."),
        "imageRef": Property(STRING, description="The ID of the image to create the volume from."),
        "image": Property(STRING, constraints=_custom("glance.image"),
                          description="If specified, the name or ID of the image to create the volume from."),
        "source_volid": Property(STRING, constraints=_custom("cinder.volume"),
                                 description="If specified, the volume to use as source."),
        "scheduler_hints": Property(MAP, description="Arbitrary key-value pairs for the scheduler."),
        "read_only": Property(BOOLEAN, update_allowed=True, description="Enables or disables read-only access "
                                                                        "mode of volume."),
        "multiattach": Property(BOOLEAN, default=False),
    }
    ATTRIBUTES = {
        "availability_zone": Attribute("The availability zone in which the volume is located.", STRING),
        "size": Attribute("The size of the volume in GB.", STRING),
        "snapshot_id": Attribute("The snapshot the volume was created from, if any.", STRING),
        "display_name": Attribute("Name of the volume.", STRING),
        "display_description": Attribute("Description of the volume.", STRING),
        "volume_type": Attribute("The type of the volume mapping to a backend, if any.", STRING),
        "metadata": Attribute("Key/value pairs associated with the volume.", STRING),
        "source_volid": Attribute("The volume used as source, if any.", STRING),
        "status": Attribute("The current status of the volume.", STRING),
        "created_at": Attribute("The timestamp indicating volume creation.", STRING),
        "bootable": Attribute("Boolean indicating if the volume can be booted or not.", STRING),
        "metadata_values": Attribute("Key/value pairs associated with the volume in raw dict form.", MAP),
        "encrypted": Attribute("Boolean indicating if the volume is encrypted or not.", STRING),
        "attachments": Attribute("A string representation of the list of attachments of the volume.", STRING),
        "attachments_list": Attribute("The list of attachments of the volume.", LIST),
        "multiattach": Attribute("Boolean indicating whether allow the volume to be attached more than once.",
                                 BOOLEAN),
        "show": SHOW,
    }

    @property
    def cinder(self) -> c.Versioned:
        return c.volume(self.ctx)

    def validate(self) -> None:
        p = self.properties
        if not p.get("size") and not any(p.get(k) for k in ("snapshot_id", "source_volid", "backup_id",
                                                            "image", "imageRef")):
            raise errors.BadRequest("Property size not assigned: a volume needs a size unless it is made "
                                    "from a snapshot, a volume, a backup or an image.")

    def handle_create(self) -> None:
        p = self.properties
        body: dict[str, Any] = {"name": p.get("name") or c.physical_name(self),
                                "metadata": {k: str(v) for k, v in (p.get("metadata") or {}).items()}}
        for key in ("size", "description", "availability_zone", "snapshot_id", "backup_id", "multiattach"):
            if p.get(key) is not None:
                body[key] = p[key]
        if p.get("volume_type"):
            body["volume_type"] = c.find_volume_type(self.ctx, p["volume_type"])["name"]
        if p.get("image") or p.get("imageRef"):
            body["imageRef"] = c.resolve(c.find_image, self.ctx, p.get("image") or p.get("imageRef"))
        if p.get("source_volid"):
            body["source_volid"] = c.resolve(c.find_volume, self.ctx, p["source_volid"])
        request: dict[str, Any] = {"volume": body}
        if p.get("scheduler_hints"):
            request["OS-SCH-HNT:scheduler_hints"] = p["scheduler_hints"]
        vol = self.cinder.post("/volumes", request)["volume"]
        self.resource_id = vol["id"]
        c.remember(self.ctx, "volume", vol)  # a server or attachment naming it need not ask
        self.data["after_create"] = bool(p.get("read_only"))

    def _volume(self) -> dict:
        return self.cinder.get(f"/volumes/{self.resource_id}")["volume"]

    def check_create_complete(self) -> bool:
        vol = self._volume()
        if vol["status"] in ("error", "error_restoring"):
            raise _failed(vol, "Volume create")
        if vol["status"] != "available":
            return False
        if self.data.pop("after_create", False):
            self.cinder.post(f"/volumes/{self.resource_id}/action", {"os-update_readonly_flag": {"readonly": True}})
        return True

    def handle_update(self, new_properties: dict[str, Any], changed: set[str]) -> None:
        old, new = self.properties, new_properties
        vid = self.resource_id
        update = {k: new.get(k) for k in ("name", "description") if k in changed}
        if "name" in update and not update["name"]:
            update["name"] = c.physical_name(self)
        if update:
            self.cinder.put(f"/volumes/{vid}", {"volume": update})
        if "metadata" in changed:
            meta = {k: str(v) for k, v in (new.get("metadata") or {}).items()}
            self.cinder.put(f"/volumes/{vid}/metadata", {"metadata": meta})
        if "read_only" in changed:
            self.cinder.post(f"/volumes/{vid}/action",
                             {"os-update_readonly_flag": {"readonly": bool(new.get("read_only"))}})
        steps: list[dict] = []
        if "volume_type" in changed and new.get("volume_type"):
            vtype = c.find_volume_type(self.ctx, new["volume_type"])["name"]
            steps.append({"os-retype": {"new_type": vtype, "migration_policy": "never"}})
        if "size" in changed and new.get("size"):
            if old.get("size") and new["size"] < old["size"]:
                raise errors.BadRequest(f"Shrinking volume is not supported: {new['size']} < {old['size']}.")
            if new["size"] != self._volume()["size"]:
                steps.append({"os-extend": {"new_size": new["size"]}})
        self.data["steps"] = steps
        self.data["step_started"] = False

    def check_update_complete(self) -> bool:
        steps = self.data.get("steps") or []
        if not steps:
            return True
        vol = self._volume()
        if vol["status"].startswith("error"):
            raise _failed(vol, "Volume update")
        if vol["status"] not in ("available", "in-use"):
            return False
        step = steps[0]
        if not self.data.get("step_started"):
            self.cinder.post(f"/volumes/{self.resource_id}/action", step)
            self.data["step_started"] = True
            return False
        if "os-extend" in step and vol["size"] < step["os-extend"]["new_size"]:
            return False
        if "os-retype" in step and vol.get("volume_type") != step["os-retype"]["new_type"]:
            return False
        self.data["steps"] = steps[1:]
        self.data["step_started"] = False
        return not self.data["steps"]

    def handle_delete(self) -> None:
        if not self.resource_id:
            return
        try:  # (asked first, its state read only when the service refuses: one call, not two)
            self.cinder.delete(f"/volumes/{self.resource_id}")
            return
        except errors.NotFound:
            return
        except errors.BadRequest:
            try:
                vol = self._volume()
            except errors.NotFound:
                return
            if vol["status"] == "in-use":
                raise errors.Conflict(f"Volume {self.resource_id} is still attached; it cannot be deleted.") \
                    from None
            if vol["status"] != "deleting":
                raise

    def check_delete_complete(self) -> bool:
        if not self.resource_id:
            return True
        try:
            vol = self._volume()
        except errors.NotFound:
            return True
        if vol["status"] == "error_deleting":
            raise _failed(vol, "Volume delete")
        return False

    def handle_check(self) -> None:
        vol = self._volume()
        if vol["status"] not in ("available", "in-use"):
            raise errors.Conflict(f"Volume {self.resource_id} is {vol['status']}")

    def attribute(self, name: str) -> Any:
        if name not in self.ATTRIBUTES:
            raise KeyError(name)
        if not self.resource_id:
            return None
        vol = self._volume()
        if name == "show":
            return vol
        if name == "display_name":
            return vol.get("name")
        if name == "display_description":
            return vol.get("description")
        if name == "metadata":
            return json.dumps(vol.get("metadata") or {})
        if name == "metadata_values":
            return vol.get("metadata") or {}
        if name == "attachments":
            return json.dumps(vol.get("attachments") or [])
        if name == "attachments_list":
            return vol.get("attachments") or []
        if name == "size":
            return str(vol.get("size"))
        return vol.get(name)

    def live_state(self) -> dict[str, Any] | None:
        vol = self._volume()
        return {"name": vol.get("name"), "description": vol.get("description"), "size": vol.get("size"),
                "metadata": vol.get("metadata") or {}, "volume_type": vol.get("volume_type")}


@register("OS::Cinder::VolumeAttachment")
class VolumeAttachment(Resource):
    """A volume attached to a server (through the compute API); done when the volume is
    in-use, gone when it is available again."""

    REQUIRES_SERVICE = c.VOLUME_SERVICE
    PROPERTIES = {
        "instance_uuid": Property(STRING, required=True, update_allowed=True,
                                  description="The ID of the server to which the volume attaches."),
        "volume_id": Property(STRING, required=True, update_allowed=True, constraints=_custom("cinder.volume"),
                              description="The ID of the volume to be attached."),
        "mountpoint": Property(STRING, update_allowed=True,
                               description="The location where the volume is exposed on the instance. This "
                                           "assignment may not be honored and it is advised that the path "
                                           "/dev/disk/by-id/virtio-<VolumeId> be used instead."),
    }
    ATTRIBUTES = {"show": SHOW}

    def _attach(self, props: dict[str, Any]) -> None:
        volume = c.resolve(c.find_volume, self.ctx, props["volume_id"])
        body: dict[str, Any] = {"volumeId": volume}
        if props.get("mountpoint"):
            body["device"] = props["mountpoint"]
        server = props["instance_uuid"]
        c.compute(self.ctx).post(f"/servers/{server}/os-volume_attachments", {"volumeAttachment": body})
        self.resource_id = f"{server}:{volume}"  # (only now: a failed attach left nothing to detach)

    def _ids(self) -> tuple[str, str]:
        server, _, volume = (self.resource_id or ":").partition(":")
        return server, volume

    def _status(self) -> str | None:
        try:
            return c.volume(self.ctx).get(f"/volumes/{self._ids()[1]}")["volume"]["status"]
        except errors.NotFound:
            return None

    def handle_create(self) -> None:
        self._attach(self.properties)

    def check_create_complete(self) -> bool:
        status = self._status()
        if status in ("error", "error_attaching"):
            raise errors.Conflict(f"Failed to attach volume {self._ids()[1]} to server {self._ids()[0]} "
                                  f"(volume status {status})")
        return status == "in-use"

    def handle_update(self, new_properties: dict[str, Any], changed: set[str]) -> None:
        self.handle_delete()
        self.data["reattach"] = new_properties

    def check_update_complete(self) -> bool:
        if not self.check_delete_complete():
            return False
        if self.data.get("reattach"):
            self._attach(self.data.pop("reattach"))
        return self.check_create_complete()

    def handle_delete(self) -> None:
        if not self.resource_id:
            return
        server, volume = self._ids()
        try:
            c.compute(self.ctx).delete(f"/servers/{server}/os-volume_attachments/{volume}")
        except errors.NotFound:
            self.data["detached"] = True  # server or attachment gone already

    def check_delete_complete(self) -> bool:
        if not self.resource_id:
            return True
        status = self._status()
        if status == "error_detaching":
            raise errors.Conflict(f"Failed to detach volume {self._ids()[1]} from server {self._ids()[0]}")
        return status in (None, "available", "error") or (status == "in-use" and self._not_attached_to_us())

    def _not_attached_to_us(self) -> bool:
        """A multiattach volume stays in-use while another server holds it."""
        server, volume = self._ids()
        try:
            vol = c.volume(self.ctx).get(f"/volumes/{volume}")["volume"]
        except errors.NotFound:
            return True
        return not any(a.get("server_id") == server for a in vol.get("attachments") or [])

    def handle_check(self) -> None:
        server, volume = self._ids()
        c.compute(self.ctx).get(f"/servers/{server}/os-volume_attachments/{volume}")

    def attribute(self, name: str) -> Any:
        if name == "show":
            server, volume = self._ids()
            return c.compute(self.ctx).get(f"/servers/{server}/os-volume_attachments/{volume}")["volumeAttachment"]
        raise KeyError(name)


@register("OS::Cinder::VolumeType")
class VolumeType(Resource):
    """A volume type (admin): its extra specs (``metadata``) and project access change in place."""

    REQUIRES_SERVICE = c.VOLUME_SERVICE
    PROPERTIES = {
        "name": Property(STRING, required=True, update_allowed=True, description="Name of the volume type."),
        "metadata": Property(MAP, update_allowed=True, description="The extra specs key and value pairs of the "
                                                                   "volume type."),
        "is_public": Property(BOOLEAN, default=True, update_allowed=True,
                              description="Whether the volume type is accessible to the public."),
        "description": Property(STRING, update_allowed=True, description="Description of the volume type."),
        "projects": Property(LIST, default=[], update_allowed=True,
                             schema=Property(STRING, constraints=_custom("keystone.project")),
                             description="Projects to add volume type access to (a private type)."),
    }
    ATTRIBUTES = {"show": SHOW}

    def handle_create(self) -> None:
        p = self.properties
        body: dict[str, Any] = {"name": p["name"], "os-volume-type-access:is_public": p.get("is_public", True)}
        if p.get("description") is not None:
            body["description"] = p["description"]
        if p.get("metadata"):
            body["extra_specs"] = {k: str(v) for k, v in p["metadata"].items()}
        self.resource_id = c.volume(self.ctx).post("/types", {"volume_type": body})["volume_type"]["id"]
        for project in p.get("projects") or []:
            self._access("addProjectAccess", project)

    def _access(self, action: str, project: str) -> None:
        pid = c.resolve(c.find_project, self.ctx, project)
        c.volume(self.ctx).post(f"/types/{self.resource_id}/action", {action: {"project": pid}})

    def handle_update(self, new_properties: dict[str, Any], changed: set[str]) -> None:
        cinder = c.volume(self.ctx)
        update = {}
        for prop, key in (("name", "name"), ("description", "description"),
                          ("is_public", "is_public")):
            if prop in changed:
                update[key] = new_properties.get(prop)
        if update:
            cinder.put(f"/types/{self.resource_id}", {"volume_type": update})
        if "metadata" in changed:
            old, new = self.properties.get("metadata") or {}, new_properties.get("metadata") or {}
            for key in set(old) - set(new):
                c.ignore_missing(lambda key=key: cinder.delete(f"/types/{self.resource_id}/extra_specs/{key}"))
            if new:
                cinder.post(f"/types/{self.resource_id}/extra_specs",
                            {"extra_specs": {k: str(v) for k, v in new.items()}})
        if "projects" in changed:
            old, new = set(self.properties.get("projects") or []), set(new_properties.get("projects") or [])
            for project in old - new:
                self._access("removeProjectAccess", project)
            for project in new - old:
                self._access("addProjectAccess", project)

    def handle_delete(self) -> None:
        if self.resource_id:
            c.volume(self.ctx).delete(f"/types/{self.resource_id}")

    def handle_check(self) -> None:
        c.volume(self.ctx).get(f"/types/{self.resource_id}")

    def attribute(self, name: str) -> Any:
        if name == "show":
            return c.volume(self.ctx).get(f"/types/{self.resource_id}")["volume_type"]
        raise KeyError(name)
