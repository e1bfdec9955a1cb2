"""The image proxy of Compute (``/images``, deprecated in 2.36): Glance images in Nova's shape."""

from __future__ import annotations

from onestack.common import errors
from onestack.common.http import Req, empty, json_response
from onestack.common.microversion import Version
from onestack.compute import clients, instances
from onestack.compute.api import api, mv
from onestack.compute.api.views import base_url

_STATUS = {"active": "ACTIVE", "saving": "SAVING", "queued": "SAVING", "importing": "SAVING",
           "uploading": "SAVING", "killed": "ERROR", "deleted": "DELETED", "pending_delete": "DELETED",
           "deactivated": "ERROR"}
_CORE = {"id", "name", "status", "visibility", "protected", "checksum", "owner", "size", "min_ram", "min_disk",
         "disk_format", "container_format", "created_at", "updated_at", "tags", "self", "file", "schema",
         "virtual_size", "os_hidden", "os_hash_algo", "os_hash_value", "locations", "direct_url", "stores"}


def _proxy_only(req: Req) -> None:
    if mv(req) >= Version(2, 36):
        raise errors.NotFound(f"The resource could not be found: {req.url.path}")


def _view(img: dict, base: str, detail: bool = True) -> dict:
    links = [{"rel": "self", "href": f"{base}/v2.1/images/{img['id']}"},
             {"rel": "bookmark", "href": f"{base}/images/{img['id']}"},
             {"rel": "alternate", "type": "application/vnd.openstack.image",
              "href": f"{base.rsplit('/compute', 1)[0]}/image/images/{img['id']}"}]
    if not detail:
        return {"id": img["id"], "name": img.get("name"), "links": links}
    status = _STATUS.get(img.get("status"), "UNKNOWN")
    out = {"id": img["id"], "name": img.get("name"), "status": status,
           "progress": {"ACTIVE": 100, "SAVING": 25}.get(status, 0), "minRam": img.get("min_ram") or 0,
           "minDisk": img.get("min_disk") or 0, "created": img.get("created_at"),
           "updated": img.get("updated_at"), "links": links, "OS-EXT-IMG-SIZE:size": img.get("size"),
           "metadata": {k: v for k, v in img.items() if k not in _CORE and isinstance(v, str)}}
    if img.get("instance_uuid"):
        out["server"] = {"id": img["instance_uuid"],
                         "links": [{"rel": "self", "href": f"{base}/v2.1/servers/{img['instance_uuid']}"},
                                   {"rel": "bookmark", "href": f"{base}/servers/{img['instance_uuid']}"}]}
    return out


def _get(req: Req, image_id: str) -> dict:
    if not instances.is_uuid(image_id):
        raise errors.NotFound("Image not found.")
    try:
        return clients.get().image.get(f"/v2/images/{image_id}", token=req.ctx.auth_token)
    except errors.NotFound:
        raise errors.NotFound("Image not found.") from None


def _list(req: Req, detail: bool):
    _proxy_only(req)
    params = {k: req.query[k] for k in ("limit", "marker", "name", "status") if k in req.query}
    if "status" in params:
        params["status"] = params["status"].lower()
    imgs = clients.get().image.get("/v2/images", params=params, token=req.ctx.auth_token)["images"]
    base = base_url(req)
    return json_response({"images": [_view(i, base, detail) for i in imgs]})


@api.route("/v2.1/images", ["GET"])
def list_images(req: Req):
    return _list(req, False)


@api.route("/v2.1/images/detail", ["GET"])
def list_images_detail(req: Req):
    return _list(req, True)


@api.route("/v2.1/images/{image_id}", ["GET"])
def show_image(req: Req):
    _proxy_only(req)
    return json_response({"image": _view(_get(req, req.path["image_id"]), base_url(req))})


@api.route("/v2.1/images/{image_id}", ["DELETE"])
def delete_image(req: Req):
    _proxy_only(req)
    _get(req, req.path["image_id"])
    clients.get().image.delete(f"/v2/images/{req.path['image_id']}", token=req.ctx.auth_token)
    return empty(204)


@api.route("/v2.1/images/{image_id}/metadata", ["GET"])
def image_metadata(req: Req):
    _proxy_only(req)
    return json_response({"metadata": _view(_get(req, req.path["image_id"]), base_url(req))["metadata"]})
