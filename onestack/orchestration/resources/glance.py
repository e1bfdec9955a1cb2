"""OS::Glance::WebImage: an image whose data comes from a URL.

Heat asks Glance's ``web-download`` import for it. onestack's image service offers that
method only where the operator enabled it (``/v2/info/import``); elsewhere the engine
reads the URL itself (http and https only) and uploads the data through
``PUT /v2/images/{id}/file``, in a thread of its own so no engine step waits on it.
``orchestration.web_image_fetch`` turns that reading off; ``orchestration.web_image_hosts``
limits the hosts a location (and each redirect the engine follows) may name.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import urlsplit

import httpx

from onestack.common import errors
from onestack.orchestration import settings
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

log = logging.getLogger(__name__)

DISK_FORMATS = ["ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"]
CONTAINER_FORMATS = ["ami", "ari", "aki", "bare", "ovf", "ova", "docker"]
_ID = r"^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"

# image id -> the error of its upload thread, or None while it runs
_uploads: dict[str, str | None] = {}
_uploads_lock = threading.Lock()


def _allowed(url: str) -> str | None:
    """Why the engine may not read ``url`` (orchestration.web_image_hosts), or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return f"{url} is not an http or https URL"
    hosts = settings.current.web_image_hosts
    if hosts and (parts.hostname or "").lower() not in hosts:
        return f"{parts.hostname} is not among the hosts an image location may name ({', '.join(hosts)})"
    return None


def _check_request(request: httpx.Request) -> None:
    """Every request of a download, redirects included, goes to an allowed host."""
    why = _allowed(str(request.url))
    if why:
        raise errors.BadRequest(why)


def _upload(client: Any, image_id: str, url: str) -> None:
    """Stream ``url`` into the image's data (run in a thread)."""
    error = None
    try:
        with httpx.Client(timeout=60, follow_redirects=True, event_hooks={"request": [_check_request]}) as http, \
                http.stream("GET", url) as r:
            if r.status_code != 200:
                raise errors.BadRequest(f"{url} answered {r.status_code}")
            client.response("PUT", f"/v2/images/{image_id}/file", content=r.iter_bytes(),
                            headers={"Content-Type": "application/octet-stream"})
    except (httpx.HTTPError, errors.ApiError) as e:
        error = f"The image data could not be read from {url}: {e}"
        log.warning("%s", error)
    with _uploads_lock:
        _uploads[image_id] = error or ""


@register("OS::Glance::WebImage")
class WebImage(Resource):
    """An image read from a URL (``location``)."""

    REQUIRES_SERVICE = "image"
    PROPERTIES = {
        "name": Property(STRING, description="Name for the image. The name of an image is not unique to a Image "
                                             "Service node."),
        "id": Property(STRING, description="The image ID. Glance will generate a UUID if not specified."),
        "min_disk": Property(INTEGER, default=0, constraints=[Constraint("range", {"min": 0})],
                             description="Amount of disk space (in GB) required to boot image."),
        "min_ram": Property(INTEGER, default=0, constraints=[Constraint("range", {"min": 0})],
                            description="Amount of ram (in MB) required to boot image."),
        "protected": Property(BOOLEAN, default=False, update_allowed=True,
                              description="Whether the image can be deleted. If the value is True, the image is "
                                          "protected and cannot be deleted."),
        "disk_format": Property(STRING, required=True, constraints=[Constraint("allowed_values", DISK_FORMATS)],
                                description="Disk format of image."),
        "container_format": Property(STRING, required=True,
                                     constraints=[Constraint("allowed_values", CONTAINER_FORMATS)],
                                     description="Container format of image."),
        "location": Property(STRING, required=True, description="URL where the data for this image already "
                                                                "resides."),
        "tags": Property(LIST, update_allowed=True, description="List of image tags."),
        "architecture": Property(STRING, update_allowed=True, description="Operating system architecture."),
        "kernel_id": Property(STRING, update_allowed=True, constraints=[Constraint("allowed_pattern", _ID)],
                              description="ID of image stored in Glance that should be used as the kernel."),
        "os_distro": Property(STRING, update_allowed=True, description="The common name of the operating "
                                                                       "system distribution in lowercase."),
        "os_version": Property(STRING, update_allowed=True, description="Operating system version as specified "
                                                                        "by the distributor."),
        "owner": Property(STRING, update_allowed=True, description="Owner of the image."),
        "extra_properties": Property(MAP, default={}, update_allowed=True,
                                     description="Arbitrary properties to associate with the image."),
        "visibility": Property(STRING, default="private", update_allowed=True,
                               constraints=[Constraint("allowed_values",
                                                       ["public", "private", "community", "shared"])],
                               description="Scope of image accessibility."),
        "ramdisk_id": Property(STRING, update_allowed=True, constraints=[Constraint("allowed_pattern", _ID)],
                               description="ID of image stored in Glance that should be used as the ramdisk."),
        "active": Property(BOOLEAN, default=True, update_allowed=True,
                           description="The image status (active, or deactivated)."),
        "members": Property(LIST, update_allowed=True, description="List of additional project IDs the image is "
                                                                   "shared with."),
    }
    ATTRIBUTES = {"show": Attribute("Detailed information about resource.", MAP)}
    SIMPLE = ("architecture", "kernel_id", "os_distro", "os_version", "owner", "ramdisk_id", "visibility",
              "protected")

    @property
    def glance(self) -> Any:
        return self.client("image")

    def validate(self) -> None:
        location = self.properties.get("location") or ""
        if urlsplit(location).scheme not in ("http", "https"):
            raise errors.BadRequest(f"The location of image {self.name} must be an http or https URL.")
        why = _allowed(location)
        if why:
            raise errors.BadRequest(f"The location of image {self.name} is refused: {why}.")

    def handle_create(self) -> None:
        p = self.properties
        body: dict[str, Any] = {"name": p.get("name") or c.physical_name(self), "disk_format": p["disk_format"],
                                "container_format": p["container_format"], "min_disk": p.get("min_disk") or 0,
                                "min_ram": p.get("min_ram") or 0, "tags": p.get("tags") or []}
        if p.get("id"):
            body["id"] = p["id"]
        for key in self.SIMPLE:
            if p.get(key) is not None and key != "protected":
                body[key] = p[key]
        body.update({k: str(v) for k, v in (p.get("extra_properties") or {}).items()})
        methods = (self.glance.get("/v2/info/import") or {}).get("import-methods", {}).get("value", [])
        if "web-download" not in methods and not settings.current.web_image_fetch:
            raise errors.BadRequest("The image service has no web-download import and this cloud does not read "
                                    "image locations itself (orchestration.web_image_fetch is false).")
        self.resource_id = self.glance.post("/v2/images", body)["id"]
        if "web-download" in methods:
            self.glance.post(f"/v2/images/{self.resource_id}/import",
                             {"method": {"name": "web-download", "uri": p["location"]}})
        else:
            self._start_upload()

    def _start_upload(self) -> None:
        with _uploads_lock:
            _uploads[self.resource_id] = None
        threading.Thread(target=_upload, args=(self.glance, self.resource_id, self.properties["location"]),
                         name=f"webimage-{self.resource_id}", daemon=True).start()

    def check_create_complete(self) -> bool:
        image = self.glance.get(f"/v2/images/{self.resource_id}")
        with _uploads_lock:
            error = _uploads.get(self.resource_id, "")
            if error:
                del _uploads[self.resource_id]
        if error:
            raise errors.Conflict(error)
        if image["status"] == "killed":
            raise errors.Conflict(f"Image {self.resource_id} went to status killed (its data could not be read)")
        if image["status"] == "queued" and self.resource_id not in _uploads:
            self._start_upload()  # the engine restarted while reading the URL: begin again
            return False
        if image["status"] != "active":
            return False
        with _uploads_lock:
            _uploads.pop(self.resource_id, None)
        return self._after_active(self.properties, set(self.PROPERTIES))

    def _after_active(self, props: dict[str, Any], changed: set[str]) -> bool:
        """What only an active image takes: protection, members, deactivation."""
        if props.get("protected") and "protected" in changed:
            self._patch([{"op": "replace", "path": "/protected", "value": True}])
        for member in props.get("members") or [] if "members" in changed else []:
            try:
                self.glance.post(f"/v2/images/{self.resource_id}/members", {"member": member})
            except errors.Conflict:
                pass  # a member already
        if "active" in changed and props.get("active") is False:
            self.glance.post(f"/v2/images/{self.resource_id}/actions/deactivate")
        return True

    def _patch(self, ops: list[dict]) -> None:
        self.glance.request("PATCH", f"/v2/images/{self.resource_id}", json=ops,
                            headers={"Content-Type": "application/openstack-images-v2.1-json-patch"})

    def handle_update(self, new_properties: dict[str, Any], changed: set[str]) -> None:
        image = self.glance.get(f"/v2/images/{self.resource_id}")
        ops = []
        for key in self.SIMPLE:
            if key in changed:
                value = new_properties.get(key)
                if value is None:
                    if key in image:
                        ops.append({"op": "remove", "path": f"/{key}"})
                else:
                    ops.append({"op": "add", "path": f"/{key}", "value": value})
        if "tags" in changed:
            ops.append({"op": "replace", "path": "/tags", "value": new_properties.get("tags") or []})
        if "extra_properties" in changed:
            old, new = self.properties.get("extra_properties") or {}, new_properties.get("extra_properties") or {}
            ops += [{"op": "remove", "path": f"/{k}"} for k in old if k not in new and k in image]
            ops += [{"op": "add", "path": f"/{k}", "value": str(v)} for k, v in new.items()]
        if ops:
            self._patch(ops)
        if "active" in changed and new_properties.get("active") is not False:
            self.glance.post(f"/v2/images/{self.resource_id}/actions/reactivate")
        if "members" in changed:
            old = set(self.properties.get("members") or [])
            for member in old - set(new_properties.get("members") or []):
                c.ignore_missing(lambda m=member: self.glance.delete(f"/v2/images/{self.resource_id}/members/{m}"))
            self._after_active({"members": [m for m in new_properties.get("members") or [] if m not in old]},
                               {"members"})
        if "active" in changed:
            self._after_active(new_properties, {"active"})

    def handle_delete(self) -> None:
        if not self.resource_id:
            return
        with _uploads_lock:
            _uploads.pop(self.resource_id, None)
        try:
            if self.properties.get("protected"):
                self._patch([{"op": "replace", "path": "/protected", "value": False}])
        except errors.NotFound:
            return
        self.glance.delete(f"/v2/images/{self.resource_id}")

    def handle_check(self) -> None:
        image = self.glance.get(f"/v2/images/{self.resource_id}")
        if image["status"] not in ("active", "deactivated"):
            raise errors.Conflict(f"Image {self.resource_id} is {image['status']}")

    def attribute(self, name: str) -> Any:
        if name == "show":
            return self.resource_id and self.glance.get(f"/v2/images/{self.resource_id}")
        raise KeyError(name)
