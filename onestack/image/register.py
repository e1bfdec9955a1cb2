"""Register an image file with a running cloud, as the admin, over the Image API.

What `onestack image register` (and so `make up`, for the tiny image) uses. It
talks HTTP like any client, so it works against a cloud started elsewhere, and
it is idempotent: an active image of that name with the same md5 is left as it
is; one with other data is renamed and hidden (servers may still use it) and
the new one takes the name.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

CHUNK = 1024 * 1024


class RegisterError(RuntimeError):
    """Registration failed; the message says why in one line."""


@dataclass
class Registered:
    id: str
    name: str
    created: bool  # False: an identical image was already there


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def _token(base: str, username: str, password: str, project: str) -> str:
    r = httpx.post(f"{base}/identity/v3/auth/tokens?nocatalog", json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": username, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}, timeout=30)
    if r.status_code != 201:
        raise RegisterError(f"the identity service refused the {username} credentials ({r.status_code})")
    return r.headers["X-Subject-Token"]


def _check(r: httpx.Response, what: str) -> httpx.Response:
    if r.status_code >= 400:
        text = " ".join(r.text.replace("<br />", " ").split())
        raise RegisterError(f"{what}: {r.status_code} {text[:300]}")
    return r


def register(
    base: str,
    username: str,
    password: str,
    path: Path,
    name: str,
    *,
    project: str = "admin",
    disk_format: str = "qcow2",
    visibility: str = "public",
    properties: dict[str, str] | None = None,
    min_ram: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Registered:
    size = path.stat().st_size
    checksum = _md5(path)
    headers = {"X-Auth-Token": _token(base, username, password, project)}
    with httpx.Client(base_url=f"{base}/image/v2", headers=headers, timeout=300) as client:
        same_name = _check(client.get("/images", params={"name": name, "limit": 1000}),
                           "listing images").json()["images"]
        for image in same_name:
            if image["checksum"] == checksum and image["status"] == "active":
                return Registered(image["id"], name, created=False)
        body = {"name": name, "disk_format": disk_format, "container_format": "bare",
                "visibility": visibility, "min_ram": min_ram, **(properties or {})}
        image = _check(client.post("/images", json=body), "creating the image").json()

        def pieces():
            sent = 0
            with open(path, "rb") as f:
                while block := f.read(CHUNK):
                    sent += len(block)
                    if progress:
                        progress(sent, size)
                    yield block

        try:
            _check(client.put(f"/images/{image['id']}/file", content=pieces(),
                              headers={"Content-Type": "application/octet-stream",
                                       "Content-Length": str(size)}), "uploading the data")
        except (RegisterError, httpx.HTTPError):
            client.delete(f"/images/{image['id']}")  # leave no half-made image behind
            raise
        # older images of the name step aside, so `--image NAME` means the new one
        stamp = time.strftime("%Y-%m-%d", time.gmtime())
        for old in same_name:
            patch = [{"op": "replace", "path": "/name", "value": f"{name} (superseded {stamp})"},
                     {"op": "replace", "path": "/os_hidden", "value": True}]
            client.patch(f"/images/{old['id']}", json=patch,
                         headers={"Content-Type": "application/openstack-images-v2.1-json-patch"})
        return Registered(image["id"], name, created=True)
