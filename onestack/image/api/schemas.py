"""``/v2/schemas/*``: the JSON schemas Glance publishes, which clients (glanceclient,
Tempest, Horizon) read; create requests are validated against the same one."""

from __future__ import annotations

import copy

from onestack.common.http import Req, json_response
from onestack.image.api import api
from onestack.image.formats import CONTAINER_FORMATS, DISK_FORMATS

STATUSES = ["queued", "saving", "active", "killed", "deleted", "uploading", "importing",
            "pending_delete", "deactivated"]

_UUID = "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"
_INT32 = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}


def _ro(schema: dict, description: str) -> dict:
    return {**schema, "readOnly": True, "description": description}


IMAGE_PROPERTIES: dict[str, dict] = {
    "id": {"type": "string", "pattern": _UUID, "description": "An identifier for the image"},
    "name": {"type": ["null", "string"], "maxLength": 255,
             "description": "Descriptive name for the image"},
    "status": _ro({"type": "string", "enum": STATUSES}, "Status of the image"),
    "visibility": {"type": "string", "enum": ["community", "public", "private", "shared"],
                   "description": "Scope of image accessibility"},
    "protected": {"type": "boolean", "description": "If true, image will not be deletable."},
    "os_hidden": {"type": "boolean", "description": "If true, image will not appear in default image list response."},
    "checksum": _ro({"type": ["null", "string"], "maxLength": 32}, "md5 hash of image contents."),
    "os_hash_algo": _ro({"type": ["null", "string"], "maxLength": 64},
                        "Algorithm to calculate the os_hash_value"),
    "os_hash_value": _ro({"type": ["null", "string"], "maxLength": 128},
                         "Hexdigest of the image contents using the algorithm in os_hash_algo"),
    "owner": {"type": ["null", "string"], "maxLength": 255, "description": "Owner of the image"},
    "size": _ro({"type": ["null", "integer"]}, "Size of image file in bytes"),
    "virtual_size": _ro({"type": ["null", "integer"]}, "Virtual size of image in bytes"),
    "container_format": {"type": ["null", "string"], "enum": [None, *CONTAINER_FORMATS],
                         "description": "Format of the container"},
    "disk_format": {"type": ["null", "string"], "enum": [None, *DISK_FORMATS],
                    "description": "Format of the disk"},
    "created_at": _ro({"type": "string"}, "Date and time of image registration"),
    "updated_at": _ro({"type": "string"}, "Date and time of the last image modification"),
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 255},
             "description": "List of strings related to the image"},
    "direct_url": _ro({"type": "string"}, "URL to access the image file kept in external store"),
    "min_ram": {**_INT32, "description": "Amount of ram (in MB) required to boot image."},
    "min_disk": {**_INT32, "description": "Amount of disk space (in GB) required to boot image."},
    "self": _ro({"type": "string"}, "An image self url"),
    "file": _ro({"type": "string"}, "An image file url"),
    "schema": _ro({"type": "string"}, "An image schema url"),
    "locations": {"type": "array", "items": {"type": "object"},
                  "description": "A set of URLs to access the image file kept in external store"},
    # well-known extra properties, as Glance's schema-image.json describes them
    "description": {"type": "string", "maxLength": 255, "description": "A human-readable string describing this image."},
    "architecture": {"type": "string", "description": "Operating system architecture, e.g. x86_64"},
    "os_distro": {"type": "string", "description": "Common name of operating system distribution"},
    "os_version": {"type": "string", "description": "Operating system version as specified by the distributor"},
    "kernel_id": {"type": ["null", "string"], "pattern": _UUID,
                  "description": "ID of image stored in Glance that should be used as the kernel"},
    "ramdisk_id": {"type": ["null", "string"], "pattern": _UUID,
                   "description": "ID of image stored in Glance that should be used as the ramdisk"},
    "instance_uuid": {"type": "string", "description": "Metadata which can be used to record which instance this image is associated with."},
}

# Set only by the service; a client sending one gets 403 (Glance's wording).
READ_ONLY = {"checksum", "os_hash_algo", "os_hash_value", "created_at", "updated_at", "size",
             "virtual_size", "status", "direct_url", "self", "file", "schema"}
RESERVED = {"location", "deleted", "deleted_at"}
CORE = set(IMAGE_PROPERTIES) - {"description", "architecture", "os_distro", "os_version",
                                "kernel_id", "ramdisk_id", "instance_uuid"}

IMAGE_LINKS = [
    {"href": "{self}", "rel": "self"},
    {"href": "{file}", "rel": "enclosure"},
    {"href": "{schema}", "rel": "describedby"},
]


def image_schema() -> dict:
    return {
        "name": "image",
        "properties": copy.deepcopy(IMAGE_PROPERTIES),
        "additionalProperties": {"type": "string"},
        "links": IMAGE_LINKS,
    }


def images_schema() -> dict:
    return {
        "name": "images",
        "properties": {
            "images": {"type": "array", "items": image_schema()},
            "schema": {"type": "string"},
            "first": {"type": "string"},
            "next": {"type": "string"},
        },
        "links": [
            {"href": "{first}", "rel": "first"},
            {"href": "{next}", "rel": "next"},
            {"href": "{schema}", "rel": "describedby"},
        ],
    }


MEMBER_PROPERTIES = {
    "member_id": {"type": "string", "description": "An identifier for the image member (tenantId)"},
    "image_id": {"type": "string", "pattern": _UUID, "description": "An identifier for the image"},
    "created_at": {"type": "string", "description": "Date and time of image member creation"},
    "updated_at": {"type": "string", "description": "Date and time of last modification of image member"},
    "status": {"type": "string", "enum": ["pending", "accepted", "rejected"],
               "description": "The status of this image member"},
    "schema": {"type": "string", "readOnly": True},
}


def member_schema() -> dict:
    return {"name": "member", "properties": copy.deepcopy(MEMBER_PROPERTIES)}


def members_schema() -> dict:
    return {
        "name": "members",
        "properties": {
            "members": {"type": "array", "items": member_schema()},
            "schema": {"type": "string"},
        },
        "links": [{"href": "{schema}", "rel": "describedby"}],
    }


@api.route("/v2/schemas/image", ["GET"])
def get_image_schema(req: Req):
    return json_response(image_schema())


@api.route("/v2/schemas/images", ["GET"])
def get_images_schema(req: Req):
    return json_response(images_schema())


@api.route("/v2/schemas/member", ["GET"])
def get_member_schema(req: Req):
    return json_response(member_schema())


@api.route("/v2/schemas/members", ["GET"])
def get_members_schema(req: Req):
    return json_response(members_schema())
