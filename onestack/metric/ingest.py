"""Measures and resources from the rest of the cloud, over the bus.

* ``metric.ingest`` / ``add_measures(batch)``: what the collectors send (telemetry brief,
  contract 1): each item names a resource (made if absent, its changed attributes
  updated with history) and measures per metric (metrics made by the archive policy
  rules). A bad item is logged and skipped; the handler never fails the batch.
* Lifecycle notifications (contract 3): instances, volumes, images, networks and
  floating IPs become resources on create, change on update, end on delete.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from onestack.common import bus, db, errors
from onestack.metric import indexer, measures
from onestack.metric.models import ArchivePolicy, Metric, Resource, ResourceType
from onestack.metric.timeutil import epochs

log = logging.getLogger(__name__)
TOPIC = "metric.ingest"


class IngestEndpoint:
    """Served on ``metric.ingest`` by the controller."""

    def add_measures(self, batch: list) -> None:
        if not isinstance(batch, list):
            log.warning("metric.ingest: add_measures got %s, not a list; ignored", type(batch).__name__)
            return
        for item in batch:
            try:
                ingest_item(item)
            except errors.ApiError as e:
                log.warning("metric.ingest: item for %s skipped: %s",
                            item.get("resource_id") if isinstance(item, dict) else item, e.message)
            except Exception:
                log.exception("metric.ingest: item skipped")


def ensure_resource(rtype: str, original_id: str, project_id=None, user_id=None, attributes=None,
                    ended: bool = False) -> str:
    """The resource (made if absent; changed attributes updated); returns its UUID."""
    with db.session() as s:
        t = s.get(ResourceType, rtype)
        if t is None:
            raise errors.BadRequest(f"unknown resource type {rtype!r}")
        rid = indexer.resource_uuid(original_id)
        r = s.get(Resource, rid)
    attrs = {k: v for k, v in (attributes or {}).items() if k in t.attributes and v is not None}
    if r is None:
        body = {"id": original_id, "project_id": project_id, "user_id": user_id, **attrs}
        if ended:
            body["ended_at"] = indexer.now().isoformat()
        try:
            indexer.create_resource(None, rtype, body, created_by=(None, None))
        except errors.Conflict:  # made meanwhile by another item
            pass
        return rid
    change = {k: v for k, v in attrs.items() if (r.attributes or {}).get(k) != v}
    if project_id and r.project_id != project_id:
        change["project_id"] = project_id
    if user_id and r.user_id != user_id:
        change["user_id"] = user_id
    if ended and r.ended_at is None:
        change["ended_at"] = indexer.now().isoformat()
    if change:
        indexer.update_resource(None, r.type, rid, change)
    return rid


def ingest_item(item: dict) -> None:
    if not isinstance(item, dict) or not isinstance(item.get("resource_id"), str):
        raise errors.BadRequest("an item needs a resource_id")
    rid = ensure_resource(item.get("resource_type") or "generic", item["resource_id"], item.get("project_id"),
                          item.get("user_id"), item.get("attributes"))
    metrics = item.get("metrics") or {}
    if not isinstance(metrics, dict):
        raise errors.BadRequest("metrics must be an object")
    for name, spec in metrics.items():
        spec = spec if isinstance(spec, dict) else {"measures": spec}
        points = spec.get("measures") or []
        if not isinstance(points, list):
            raise errors.BadRequest(f"measures of {name} must be a list")
        metric, policy = _metric(rid, name, spec.get("unit"))
        ts = epochs([p[0] for p in points]) if points else np.empty(0)
        values = np.array([float(p[1]) for p in points], dtype=float)
        measures.write(metric, policy, ts, values)


def _metric(rid: str, name: str, unit) -> tuple[Metric, ArchivePolicy]:
    try:
        return indexer.load_named_metric(None, "generic", rid, name)
    except errors.NotFound:
        pass
    try:
        indexer.add_resource_metrics(None, "generic", rid, {name: {"unit": unit}})
    except errors.Conflict:  # made meanwhile
        pass
    return indexer.load_named_metric(None, "generic", rid, name)


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())


# -- lifecycle notifications


def on_instance(event: str, p: dict) -> None:
    attrs = {k: p.get(k) for k in ("display_name", "flavor_id", "flavor_name", "image_ref", "host", "created_at")}
    rid = ensure_resource("instance", p["instance_id"], p.get("project_id"), p.get("user_id"), attrs,
                          ended=event.endswith("delete.end"))
    if not event.endswith("delete.end"):
        stamp = _now_iso()
        metrics = {name: {"unit": unit, "measures": [[stamp, float(p[key])]]}
                   for name, key, unit in (("vcpus", "vcpus", "vcpu"), ("memory", "memory_mb", "MB"))
                   if isinstance(p.get(key), int | float)}
        if metrics:
            ingest_item({"resource_id": rid, "resource_type": "instance", "metrics": metrics})


def on_volume(event: str, p: dict) -> None:
    attrs = {"display_name": p.get("display_name"), "volume_type": p.get("volume_type")}
    ended = event.endswith("delete.end")
    ensure_resource("volume", p["volume_id"], p.get("project_id"), p.get("user_id"), attrs, ended=ended)
    if not ended and isinstance(p.get("size"), int | float):
        ingest_item({"resource_id": p["volume_id"], "resource_type": "volume",
                     "metrics": {"volume.size": {"unit": "GB", "measures": [[_now_iso(), float(p["size"])]]}}})


def on_image(event: str, p: dict) -> None:
    if event.startswith("image.member") or not p.get("id"):
        return
    ended = event == "image.delete"
    attrs = {k: p.get(k) for k in ("name", "container_format", "disk_format")}
    ensure_resource("image", p["id"], p.get("owner"), None, attrs, ended=ended)
    if not ended and isinstance(p.get("size"), int | float):
        ingest_item({"resource_id": p["id"], "resource_type": "image",
                     "metrics": {"image.size": {"unit": "B", "measures": [[_now_iso(), float(p["size"])]]}}})


def on_network(event: str, p: dict) -> None:
    kind, action = p.get("kind"), p.get("action")
    if not p.get("id") or kind not in ("network", "floatingip") or action not in ("create", "update", "delete"):
        return
    ended = action == "delete"
    if kind == "network":
        ensure_resource("network", p["id"], p.get("project_id") or p.get("tenant_id"), None,
                        {"name": p.get("name")}, ended=ended)
        return
    ensure_resource("generic", p["id"], p.get("project_id") or p.get("tenant_id"), None, ended=ended)
    if action == "create":
        ingest_item({"resource_id": p["id"], "resource_type": "generic",
                     "metrics": {"ip.floating": {"unit": "ip", "measures": [[_now_iso(), 1.0]]}}})


def _safe(handler):
    def run(event: str, payload: dict) -> None:
        try:
            handler(event, payload)
        except errors.ApiError as e:
            log.warning("metric: %s not recorded: %s", event, e.message)
        except Exception:
            log.exception("metric: %s not recorded", event)

    return run


SUBSCRIPTIONS = {
    "compute.instance.create.end": on_instance, "compute.instance.update": on_instance,
    "compute.instance.delete.end": on_instance,
    "volume.create.end": on_volume, "volume.resize.end": on_volume, "volume.delete.end": on_volume,
    "image.create": on_image, "image.update": on_image, "image.upload": on_image, "image.delete": on_image,
    "network.network.*": on_network, "network.floatingip.*": on_network,
}


def start() -> None:
    b = bus.get()
    b.serve(TOPIC, IngestEndpoint())
    for pattern, handler in SUBSCRIPTIONS.items():
        b.subscribe(pattern, _safe(handler))
