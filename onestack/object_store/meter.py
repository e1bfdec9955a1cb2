"""Telemetry of the object store: each project's account, every ``telemetry.interval`` seconds.

Ceilometer's swift pollsters, on ``swift_account`` resources (id = project id):
``storage.objects``, ``storage.objects.size`` (B) and ``storage.objects.containers``.
The projects come from the identity API (as the swift service user); the figures from
the store's own account databases (what a HEAD of the account answers), so no other
service's data is read and no request goes to ourselves. Accounts never used (no
database yet) are left out. The measures go to the metric service over the bus
(``metric.ingest``/``add_measures``); a poll that fails is logged and the next comes on time.
"""

from __future__ import annotations

import logging
import threading

from onestack.common import bus, errors
from onestack.common.clients import RestClient, ServiceAuth
from onestack.common.timeutils import iso, utcnow
from onestack.object_store import proxy

log = logging.getLogger(__name__)

TOPIC, METHOD = "metric.ingest", "add_measures"
MIN_INTERVAL = 5
BATCH = 500
RESELLER_PREFIX = "AUTH_"  # a project's account is AUTH_<project id>


def account_items(project_ids: list[str], cluster: proxy.Cluster) -> list[dict]:
    at = iso(utcnow(), micro=True)
    out = []
    for pid in project_ids:
        info = proxy.account_info(cluster, RESELLER_PREFIX + pid)
        if info is None or info.deleted:
            continue
        out.append({"resource_id": pid, "resource_type": "swift_account", "project_id": pid, "user_id": None,
                    "attributes": {},
                    "metrics": {"storage.objects": {"unit": "object", "measures": [[at, float(info.object_count)]]},
                                "storage.objects.size": {"unit": "B", "measures": [[at, float(info.bytes_used)]]},
                                "storage.objects.containers": {
                                    "unit": "container", "measures": [[at, float(info.container_count)]]}}})
    return out


class AccountMeter:
    def __init__(self, conf, interval: int):
        self.conf = conf
        self.interval = interval
        self.stopping = threading.Event()
        self._identity: RestClient | None = None
        self._unserved = False

    def projects(self) -> list[str]:
        if self._identity is None:  # (made at the first poll: bootstrap wrote the credentials by then)
            self._identity = RestClient(ServiceAuth.for_service(self.conf, "swift"), "/identity")
        return [p["id"] for p in self._identity.get("/v3/projects")["projects"]]

    def poll_once(self) -> list[dict]:
        items = account_items(self.projects(), proxy.cluster())
        b = bus.get()
        try:
            for i in range(0, len(items), BATCH):
                b.cast_sync(TOPIC, METHOD, batch=items[i:i + BATCH])
            self._unserved = False
        except bus.Undeliverable:
            if not self._unserved:
                log.info("object telemetry: no metric service serves %s: measures dropped until one does", TOPIC)
            self._unserved = True
        return items

    def _loop(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                self.poll_once()
            except errors.ApiError as e:
                log.warning("object telemetry: poll failed: %s", e.message)
            except Exception:  # noqa: BLE001 (a failed poll must not end the meter)
                log.exception("object telemetry: poll failed")


_running: AccountMeter | None = None


def start(conf) -> AccountMeter | None:
    global _running
    stop()
    if not conf.telemetry.enabled:
        return None
    _running = AccountMeter(conf, max(conf.telemetry.interval, MIN_INTERVAL))
    threading.Thread(target=_running._loop, name="object-telemetry", daemon=True).start()
    return _running


def stop() -> None:
    global _running
    if _running is not None:
        _running.stopping.set()
        _running = None
