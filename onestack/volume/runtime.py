"""Starting the volume service's moving parts in this process: scheduler,
conductor, the agent of this host's backend, and the heartbeat thread that
reports each service (cinder-scheduler, cinder-volume host@backend with its
capacity, cinder-backup)."""

from __future__ import annotations

import logging
import threading

from onestack.common import bus
from onestack.common.clients import RestClient, ServiceAuth
from onestack.volume import backends, backups, clients, settings
from onestack.volume.agent import VolumeAgent
from onestack.volume.conductor import Conductor
from onestack.volume.scheduler import Scheduler

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self):
        self.conductor: Conductor | None = None
        self.scheduler: Scheduler | None = None
        self.agent: VolumeAgent | None = None
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None  # the agent's reporter
        self.control_thread: threading.Thread | None = None
        self.images: RestClient | None = None
        self.compute: RestClient | None = None  # os-server-external-events (volume-extended, 2.51)


current = Runtime()


def start(conf) -> Runtime:
    """The controller's part: conductor and scheduler on the bus, cinder-scheduler's heartbeat."""
    rt = current
    rt.conductor = Conductor()
    rt.scheduler = Scheduler()
    b = bus.get()
    b.serve("volume.conductor", rt.conductor)
    b.serve("volume.scheduler", rt.scheduler)
    clients.configure(conf)  # (the API's clients: image, compute)
    rt.control_thread = threading.Thread(target=_loop, args=(rt, report_control), name="volume-control",
                                         daemon=True)
    rt.control_thread.start()
    return rt


def start_agent(conf) -> Runtime:
    """A storage node's part: the agent of this host's backend, which reports to the
    conductor over the bus only (cinder-volume host@backend, cinder-backup)."""
    rt = current
    st = settings.current
    made = clients.current or clients.configure(conf)
    rt.images, rt.compute = made.image, made.compute
    backend = backends.by_name(st.backend, st)
    store = make_backup_store(made.auth, st)
    rt.agent = VolumeAgent(st.service_host, backend, st.backend_name, zone=st.availability_zone,
                           over_subscription=st.max_over_subscription_ratio, images=rt.images, backups=store,
                           compute=rt.compute)
    rt.agent.serve()
    rt.thread = threading.Thread(target=_loop, args=(rt, report_agent), name="volume-reporter", daemon=True)
    rt.thread.start()
    return rt


def make_backup_store(auth: ServiceAuth, st: settings.Settings) -> backups.ChunkedStore:
    if st.backup_driver == "object":
        target = backups.SwiftTarget(RestClient(auth, "/object-store"))
    elif st.backup_driver == "directory":
        target = backups.DirectoryTarget(st.backup_dir)
    else:
        raise RuntimeError(f"volume.backup_driver must be object or directory, not {st.backup_driver!r}")
    return backups.ChunkedStore(target, st.backup_container, st.backup_chunk_mb * backups.MiB,
                                work_dir=st.volumes_dir)


class _Conductor:
    """The agent's view of the conductor: bus calls only."""

    def __getattr__(self, method):
        def call(**kwargs):
            return bus.get().call_sync("volume.conductor", method, **kwargs)
        return call


_conductor = _Conductor()


def report_control(rt: Runtime) -> None:
    st = settings.current
    rt.conductor.service_report(host=st.host, binary="cinder-scheduler", zone=st.availability_zone)


def report_agent(rt: Runtime) -> None:
    st = settings.current
    _conductor.service_report(host=st.service_host, binary="cinder-volume", zone=st.availability_zone,
                              capabilities=rt.agent.capabilities())
    if rt.agent.backups is not None:
        _conductor.service_report(host=st.host, binary="cinder-backup", zone=st.availability_zone)


def _loop(rt: Runtime, report) -> None:
    """Report at once (retrying until the conductor answers), then every report_interval."""
    delay = 0.2
    while not rt.stopping.is_set():
        try:
            report(rt)
            break
        except Exception as e:  # noqa: BLE001 (on a node the controller may start after us)
            log.info("volume: first report: %s; retrying", e)
            rt.stopping.wait(delay)
            delay = min(delay * 2, 2)
    while not rt.stopping.wait(settings.current.report_interval):
        try:
            report(rt)
        except Exception:
            log.exception("volume: heartbeat failed")
