"""How the metric service plugs into onestack: set-up, the bus ingest and the ASGI app.

The API (any worker) reads and writes the index and the store itself: measures are
aggregated as they are written, so there is no metricd to run. The controller
(``start``) serves ``metric.ingest`` on the bus and turns the other services'
lifecycle notifications into resources.
"""

from __future__ import annotations

from pathlib import Path

from onestack.common import db
from onestack.common.clients import RestClient, ServiceAuth
from onestack.config import Config
from onestack.metric import indexer, ingest, measures, policies
from onestack.metric.storage import FileDriver, Store, SwiftDriver

NAME = "metric"
PREFIX = "/metric"
# gnocchiclient appends /v1/... to the endpoint
CATALOG = {"type": "metric", "name": "gnocchi", "description": "Metric (Gnocchi v1)", "path": ""}
SERVICE_USER = "gnocchi"


def version() -> str:
    return "v1"


def make_store(conf: Config) -> Store:
    kind = conf.metric.storage
    if kind == "file":
        return Store(FileDriver(Path(conf.metric.storage_dir) if conf.metric.storage_dir
                                else conf.state_dir / "metric"))
    if kind == "swift":
        return Store(SwiftDriver(lambda: RestClient(ServiceAuth.for_service(conf, SERVICE_USER), "/object-store"),
                                 conf.metric.swift_container))
    raise RuntimeError(f"metric.storage must be 'file' or 'swift', not {kind!r}")


def setup(conf: Config) -> None:
    db.upgrade("metric")
    policies.ensure_defaults(conf.metric.default_archive_policy)
    indexer.ensure_types()
    measures.configure(make_store(conf))


def start(conf: Config) -> None:
    """The controller's part: the bus ingest endpoint and the notification subscriptions."""
    ingest.start()


def app():
    from onestack.metric.api import build

    return build()
