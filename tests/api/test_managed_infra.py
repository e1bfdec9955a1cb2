"""A cloud on the RabbitMQ and PostgreSQL that onestack runs itself (``bus.managed``,
``database.managed``; onestack/infra): it boots, the real clients work on it, it rides out
a restart of either server without being restarted itself, `onestack down` leaves nothing
of them running, and the next `up` finds their data again."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import aio_pika
import psycopg2
import pytest

from onestack import config, infra
from onestack.infra import daemon
from tests.cloud import Cloud, free_port, wait_for


def needs_servers(test):
    return pytest.mark.postgres(pytest.mark.rabbitmq(test))


def managed_env() -> dict[str, str]:
    return {"ONESTACK_BUS_BACKEND": "amqp", "ONESTACK_BUS_MANAGED": "true",
            "ONESTACK_BUS_PORT": str(free_port()), "ONESTACK_DATABASE_MANAGED": "true",
            "ONESTACK_DATABASE_PORT": str(free_port())}


@pytest.fixture(scope="module")
def cloud():
    c = Cloud("managed", extra_env=managed_env())
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def conf(cloud):
    return config.load(env=cloud.env)


@pytest.fixture(scope="module")
def image(cloud, tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "small.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    img = cloud.os_json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                        "--file", str(path), f"img-{uuid.uuid4().hex[:6]}")
    yield img["id"]
    cloud.openstack("image", "delete", img["id"], check=False)


@pytest.fixture(scope="module")
def net(cloud):
    name = f"n-{uuid.uuid4().hex[:6]}"
    cloud.openstack("network", "create", name)
    cloud.openstack("subnet", "create", "--network", name, "--subnet-range", "192.168.78.0/24", name + "-sn")
    return name


def boot(cloud: Cloud, image: str, net: str) -> str:
    """A server on the fake driver, waited for ACTIVE (the bus, the conductor, the database)."""
    name = f"vm-{uuid.uuid4().hex[:6]}"
    cloud.openstack("server", "create", "--flavor", "m1.nano", "--image", image, "--network", net, name)

    def active():
        s = cloud.os_json("server", "show", name)
        assert s["status"] != "ERROR", s.get("fault")
        return s["status"] == "ACTIVE" and not s.get("OS-EXT-STS:task_state")

    wait_for(active, 60, f"{name} ACTIVE")
    return name


def processes_of(state: Path) -> list[str]:
    """Processes whose command line names the state directory (RabbitMQ's Erlang VM has
    -home <dir>, PostgreSQL -D <dir>)."""
    found = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(state) in cmd:
                found.append(f"{p.name}: {cmd}")
    return found


def amqp_connects(url: str) -> str:
    async def connect():
        conn = await aio_pika.connect(url, timeout=30)
        async with conn:
            ch = await conn.channel()
            # passive: there only if the cloud's bus declared it on this broker
            await ch.get_exchange("onestack.notifications", ensure=True)
        return "ok"

    try:
        return asyncio.run(connect())
    except Exception as e:  # noqa: BLE001 (the refusal is the answer)
        return type(e).__name__


@needs_servers
def test_the_cloud_runs_on_the_managed_servers(cloud, conf, image, net):
    status = cloud.onestack("status", check=False).stdout  # (its managed servers' lines come first)
    broker, database = infra.broker(conf), infra.database(conf)
    assert f"rabbitmq (managed): running at {broker.address}" in status
    assert f"postgres (managed): running at {database.address}" in status
    assert not (cloud.state / "onestack.db").exists()
    # the cloud's tables are in the managed PostgreSQL, its bus on the managed RabbitMQ
    with psycopg2.connect(host="127.0.0.1", port=database.port, user="onestack", dbname="onestack",
                          password=database.password) as pg, pg.cursor() as cur:
        cur.execute("SELECT count(*) FROM identity_user")
        assert cur.fetchone()[0] >= 2
    assert amqp_connects(broker.url) == "ok"
    # generated passwords, the owner's alone; nothing answers without them
    for server in (broker, database):
        assert (server.dir / "password").stat().st_mode & 0o777 == 0o600
    assert amqp_connects(f"amqp://guest:guest@127.0.0.1:{broker.port}/") == "ProbableAuthenticationError"
    with pytest.raises(psycopg2.OperationalError, match="password"):
        psycopg2.connect(host="127.0.0.1", port=database.port, user="onestack", dbname="onestack")

    assert cloud.os_json("token", "issue")["id"]
    name = boot(cloud, image, net)
    assert cloud.openstack("console", "log", "show", name).stdout.strip()  # a call to the agent
    cloud.openstack("server", "delete", "--wait", name)


@needs_servers
def test_the_apis_ride_out_a_postgres_restart(cloud, conf, image, net):
    database = infra.database(conf)
    database.stop()
    try:
        down = cloud.openstack("network", "list", check=False)
        assert down.returncode != 0
        assert "HTTP 503" in down.stderr and "database is not available" in down.stderr, down.stderr
    finally:
        database.start()
    # no restart of onestack: the pool reconnects, the agents and conductors carry on
    wait_for(lambda: cloud.openstack("network", "list", check=False).returncode == 0, 60,
             "the network API to answer again")
    assert net in cloud.openstack("network", "list", "-f", "value", "-c", "Name").stdout
    name = boot(cloud, image, net)
    cloud.openstack("server", "delete", "--wait", name)


@needs_servers
def test_the_bus_rides_out_a_rabbitmq_restart(cloud, conf, image, net):
    first = boot(cloud, image, net)
    broker = infra.broker(conf)
    broker.stop()
    broker.start()
    # bounded poll: the cloud's bus reconnects and declares its queues again
    wait_for(lambda: cloud.openstack("console", "log", "show", first, check=False).returncode == 0, 60,
             "a call to the compute agent over the restarted broker")
    second = boot(cloud, image, net)
    cloud.openstack("server", "delete", "--wait", first, second)


@needs_servers
def test_down_stops_them_and_up_finds_their_data(cloud, conf, net):
    broker, database = infra.broker(conf), infra.database(conf)
    pids = [broker.pid(), daemon.read_pid(broker.dir / "epmd.pid"), database.pid()]
    assert all(pids) and processes_of(cloud.state)
    out = cloud.onestack("down").stdout
    assert "rabbitmq stopped." in out and "postgres stopped." in out
    assert not [p for p in pids if daemon.alive(p)] and processes_of(cloud.state) == []
    status = cloud.onestack("status", check=False).stdout
    assert "rabbitmq (managed): stopped" in status and "postgres (managed): stopped" in status

    cloud.start()
    # the same data: the network made before, and the admin's password (a token)
    assert net in cloud.openstack("network", "list", "-f", "value", "-c", "Name").stdout
    assert cloud.os_json("token", "issue")["id"]

    cloud.onestack("down", "--purge")
    assert not cloud.state.exists() and processes_of(cloud.state) == []


def test_contradicting_settings_are_refused(tmp_path):
    """A managed broker needs the amqp backend; a managed server and a URL are one too many."""
    for env, message in (({"ONESTACK_BUS_MANAGED": "true"}, 'bus.backend is "inprocess"'),
                         ({"ONESTACK_DATABASE_MANAGED": "true",
                           "ONESTACK_DATABASE_URL": "postgresql+psycopg2://x@127.0.0.1:1/x"},
                          "database.url and database.managed = true are both set")):
        c = Cloud("refused", extra_env=env)
        try:
            r = c.onestack("up", "--detach", check=False)
            assert r.returncode == 1 and message in r.stderr, r.stderr
            assert not (c.state / "rabbitmq").exists() and not (c.state / "postgres").exists()
        finally:
            c.stop()
