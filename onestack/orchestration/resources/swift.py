"""OS::Swift::Container on the object storage API (the stack owner's account)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from onestack.common import errors
from onestack.orchestration.resources import constraints as c
from onestack.orchestration.resources.base import (
    BOOLEAN,
    INTEGER,
    MAP,
    STRING,
    Attribute,
    Property,
    Resource,
    register,
)


@register("OS::Swift::Container")
class Container(Resource):
    """A container, its ACLs and metadata. Deleting a container that holds objects fails,
    unless PurgeOnDelete says to delete them first."""

    REQUIRES_SERVICE = "object-store"
    PROPERTIES = {
        "name": Property(STRING, description="Name for the container. If not specified, a unique name will be "
                                             "generated."),
        "X-Container-Read": Property(STRING, description="Specify the ACL permissions on who can read objects "
                                                         "in the container."),
        "X-Container-Write": Property(STRING, description="Specify the ACL permissions on who can write objects "
                                                          "to the container."),
        "X-Container-Meta": Property(MAP, default={}, description="A map of user-defined meta data to associate "
                                                                  "with the container. Each key in the map will "
                                                                  "set the header X-Container-Meta-{key} with the "
                                                                  "corresponding value."),
        "X-Account-Meta": Property(MAP, default={}, description="A map of user-defined meta data to associate "
                                                                "with the account. Each key in the map will set "
                                                                "the header X-Account-Meta-{key} with the "
                                                                "corresponding value."),
        "PurgeOnDelete": Property(BOOLEAN, default=False, description="If True, delete any objects in the "
                                                                      "container when the container is deleted. "
                                                                      "Otherwise, deleting a non-empty container "
                                                                      "will result in an error."),
    }
    ATTRIBUTES = {
        "DomainName": Attribute("The host from the container URL.", STRING),
        "WebsiteURL": Attribute("The URL of the container.", STRING),
        "RootURL": Attribute("The parent URL of the container.", STRING),
        "ObjectCount": Attribute("The number of objects stored in the container.", INTEGER),
        "BytesUsed": Attribute("The number of bytes stored in the container.", INTEGER),
        "HeadContainer": Attribute("A map containing all headers for the container.", MAP),
        "show": Attribute("Detailed information about resource.", MAP),
    }

    @property
    def swift(self) -> Any:
        return self.client("object-store")

    def _path(self, obj: str | None = None) -> str:
        path = "/" + quote(self.resource_id or "", safe="")
        return path + "/" + quote(obj, safe="/") if obj else path

    def handle_create(self) -> None:
        p = self.properties
        name = p.get("name") or c.physical_name(self, 255)
        headers = {k: p[k] for k in ("X-Container-Read", "X-Container-Write") if p.get(k)}
        headers.update({f"X-Container-Meta-{k}": str(v) for k, v in (p.get("X-Container-Meta") or {}).items()})
        self.resource_id = name
        self.swift.response("PUT", self._path(), headers=headers)
        if p.get("X-Account-Meta"):
            self.swift.response("POST", "", headers={f"X-Account-Meta-{k}": str(v)
                                                     for k, v in p["X-Account-Meta"].items()})

    def handle_delete(self) -> None:
        if not self.resource_id:
            return
        if self.properties.get("PurgeOnDelete"):
            while True:  # (a listing is at most 10000 names: go on until it is empty)
                objects = self.swift.get(self._path(), params={"format": "json"}) or []
                if not objects:
                    break
                for obj in objects:
                    c.ignore_missing(lambda o=obj: self.swift.response("DELETE", self._path(o["name"])))
        try:
            self.swift.response("DELETE", self._path())
        except errors.Conflict:
            raise errors.Conflict(f"Tried to delete a container that is not empty: the container "
                                  f"{self.resource_id} has objects (set PurgeOnDelete to delete them "
                                  "too).") from None
        if self.properties.get("X-Account-Meta"):
            self.swift.response("POST", "", headers={f"X-Remove-Account-Meta-{k}": "x"
                                                     for k in self.properties["X-Account-Meta"]})

    def handle_check(self) -> None:
        self.swift.response("HEAD", self._path())

    def _head(self) -> dict[str, str]:
        return dict(self.swift.response("HEAD", self._path()).headers)

    def attribute(self, name: str) -> Any:
        if name not in self.ATTRIBUTES:
            raise KeyError(name)
        if not self.resource_id:
            return None
        url = getattr(self.swift, "url", "").rstrip("/")
        if name == "DomainName":
            return urlsplit(url).hostname
        if name == "WebsiteURL":
            return url + self._path()
        if name == "RootURL":
            return url + "/"
        head = self._head()
        lower = {k.lower(): v for k, v in head.items()}
        if name == "ObjectCount":
            return int(lower.get("x-container-object-count", 0))
        if name == "BytesUsed":
            return int(lower.get("x-container-bytes-used", 0))
        return head  # HeadContainer, show

    def reference_id(self) -> str | None:
        return self.resource_id
