"""Infrastructure servers onestack runs itself: RabbitMQ (``bus.managed``) and
PostgreSQL (``database.managed``), the real Debian servers, under the state directory.

They live as long as the cloud: ``onestack up`` starts them (or finds them running)
before the cloud, ``onestack down`` stops them after it, ``down --purge`` removes their
data with the state directory. They listen on ``server.host`` (the controller's
management address in a cluster), ports ``bus.port`` and ``database.port``.
"""

from __future__ import annotations

from dataclasses import dataclass

from onestack.config import Config
from onestack.infra.daemon import InfraError
from onestack.infra.postgres import Postgres
from onestack.infra.rabbitmq import RabbitMQ

__all__ = ["InfraError", "Postgres", "RabbitMQ", "ServerStatus", "broker", "database",
           "check", "urls", "bus_url", "start_managed", "stop_managed", "status"]


def broker(conf: Config) -> RabbitMQ:
    """The managed broker of this state directory."""
    return RabbitMQ(conf.state_dir / "rabbitmq", conf.server.host, conf.bus.port)


def database(conf: Config) -> Postgres:
    """The managed database server of this state directory."""
    return Postgres(conf.state_dir / "postgres", conf.server.host, conf.database.port)


def check(conf: Config) -> None:
    """Refuse settings that contradict each other (a managed server and a URL)."""
    if conf.bus.managed:
        if conf.bus.backend != "amqp":
            raise InfraError('bus.managed = true runs RabbitMQ for bus.backend = "amqp", '
                             f'but bus.backend is "{conf.bus.backend}"')
        if conf.bus.url:
            raise InfraError("bus.url and bus.managed = true are both set: give a broker's URL "
                             "or let onestack run one, not both")
    if conf.database.managed and conf.database.url:
        raise InfraError("database.url and database.managed = true are both set: give a "
                         "database URL or let onestack run PostgreSQL, not both")


def urls(conf: Config) -> dict[str, str]:
    """{"bus": URL, "database": URL} of the managed servers ``conf`` asks for (started or not)."""
    check(conf)
    found = {}
    if conf.bus.managed:
        found["bus"] = broker(conf).url
    if conf.database.managed:
        found["database"] = database(conf).url
    return found


def bus_url(conf: Config) -> str:
    """The managed broker's URL ("" when bus.managed is off): what nodes are given."""
    return urls(conf).get("bus", "")


def start_managed(conf: Config) -> dict[str, str]:
    """Start the managed servers ``conf`` asks for (ones already running are reused) and
    point ``conf.bus.url`` / ``conf.database.url`` at them; returns those URLs, as urls()."""
    check(conf)
    found = {}
    if conf.bus.managed:
        conf.bus.url = found["bus"] = broker(conf).start().url
    if conf.database.managed:
        conf.database.url = found["database"] = database(conf).start().url
    return found


def _present(conf: Config) -> list[RabbitMQ | Postgres]:
    """The managed servers this state directory has (or its config asks for)."""
    servers: list[RabbitMQ | Postgres] = []
    for server, wanted in ((broker(conf), conf.bus.managed), (database(conf), conf.database.managed)):
        if wanted or server.dir.exists():
            servers.append(server)
    return servers


def stop_managed(conf: Config) -> list[str]:
    """Stop every managed server of this state directory, whatever the config says now
    (their data stays). Returns the names of those that were running."""
    return [server.name for server in _present(conf) if server.stop()]


@dataclass
class ServerStatus:
    name: str
    running: bool
    address: str


def status(conf: Config) -> list[ServerStatus]:
    """One line per managed server: running or not, and where it listens."""
    return [ServerStatus(s.name, s.running(), s.running_address() or s.address) for s in _present(conf)]
