"""`onestack up --workers N`: the APIs served by N processes that share no memory.

A cloud with two API workers on PostgreSQL and RabbitMQ (both throw-away servers of this
module; fake compute driver). Whatever the workers must agree on lives in the database:
a token revoked through worker 1 is refused by worker 2 at once, and so are the tokens of
a deleted application credential; a console token made through one worker opens the
console through the other; lockout counts failures made through any worker.

Each response names its worker (``X-Onestack-Worker``). To reach one worker on purpose
the tests open connections until that worker has accepted one, then send on it (keep-
alive): no client can choose the process that serves it, so these requests are raw HTTP;
the rest of the cloud is driven by the `openstack` CLI.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests import requirements
from tests.cloud import Cloud, Postgres, RabbitMQ, wait_for

websockets = pytest.importorskip("websockets")
from websockets.asyncio.client import connect  # noqa: E402

HEADER = "x-onestack-worker"


def backed(test):
    """Marks a test of the cloud below: it runs on PostgreSQL and RabbitMQ."""
    return pytest.mark.postgres(pytest.mark.rabbitmq(test))


@pytest.fixture(scope="module")
def servers():
    try:
        pg = Postgres().start()
    except FileNotFoundError as e:
        requirements.missing(str(e))
    try:
        rb = RabbitMQ().start()
    except FileNotFoundError as e:
        pg.stop()
        requirements.missing(str(e))
    yield pg, rb
    rb.close()
    pg.stop()


@pytest.fixture(scope="module")
def cloud(servers):
    pg, rb = servers
    c = Cloud("workers", database_url=pg.url, extra_env={
        "ONESTACK_BUS_BACKEND": "amqp", "ONESTACK_BUS_URL": rb.url, "ONESTACK_SERVER_WORKERS": "2",
        "ONESTACK_IDENTITY_LOCKOUT_FAILURE_ATTEMPTS": "3",
    })
    try:
        c.start()
        yield c
    finally:
        c.stop()


@contextmanager
def on_worker(cloud: Cloud, index: int):
    """An HTTP client whose kept-alive connection worker ``index`` accepted."""

    def connected():
        client = httpx.Client(base_url=cloud.url, timeout=60)
        if client.get("/").headers.get(HEADER) == str(index):
            return client
        client.close()
        return None

    client = wait_for(connected, 60, what=f"a connection accepted by worker {index}", step=0)
    try:
        yield client
    finally:
        client.close()


def by(r: httpx.Response, index: int) -> httpx.Response:
    assert r.headers.get(HEADER) == str(index), f"answered by worker {r.headers.get(HEADER)}, not {index}"
    return r


def token(cloud: Cloud, env: dict | None = None, user: str = "admin") -> str:
    return cloud.openstack("token", "issue", "-f", "value", "-c", "id", user=user, env=env).stdout.strip()


def worker_pids(main: int) -> list[int]:
    """The API workers of the main process ``main`` (its children running onestack.workers)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (d / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == main and b"onestack.workers" in cmdline:
            found.append(int(d.name))
    return sorted(found)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # (a zombie has exited)


# -- refusals (nothing is started) ----------------------------------------------------


def test_workers_need_the_amqp_bus_and_postgresql():
    c = Cloud("workers-refused")
    try:
        r = c.onestack("up", "--workers", "2", check=False)
        assert r.returncode != 0 and 'needs the RabbitMQ bus (bus.backend = "amqp"' in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1  # one line that says why
        c.env.update({"ONESTACK_BUS_BACKEND": "amqp", "ONESTACK_BUS_URL": "amqp://guest:guest@127.0.0.1:1/"})
        r = c.onestack("up", "--workers", "3", check=False)
        assert r.returncode != 0 and "server.workers = 3 needs PostgreSQL" in r.stderr, r.stderr
        r = c.onestack("up", "--workers", "0", check=False)
        assert r.returncode != 0 and "server.workers must be 1 or more (got 0)" in r.stderr, r.stderr
        assert not (c.state / "onestack.pid").exists()
    finally:
        c.stop()


# -- the cloud with two workers --------------------------------------------------------


@backed
@pytest.mark.parametrize("service", ["identity", "compute"])
def test_token_revoked_through_one_worker_is_refused_by_the_other(cloud, service):
    admin = token(cloud)
    victim = token(cloud)
    check = {"identity": ("/identity/v3/auth/tokens", {"X-Auth-Token": admin, "X-Subject-Token": victim}),
             "compute": ("/compute/v2.1/servers", {"X-Auth-Token": victim})}[service]
    with on_worker(cloud, 2) as w2:
        assert by(w2.get(check[0], headers=check[1]), 2).status_code == 200  # validated: cached there
        with on_worker(cloud, 1) as w1:
            r = by(w1.delete("/identity/v3/auth/tokens", headers={"X-Auth-Token": admin,
                                                                  "X-Subject-Token": victim}), 1)
            assert r.status_code == 204, r.text
        r = by(w2.get(check[0], headers=check[1]), 2)
        assert r.status_code == (404 if service == "identity" else 401), r.text


@backed
def test_app_credential_deletion_revokes_its_tokens(cloud, servers):
    name = f"ac-{uuid.uuid4().hex[:6]}"
    cred = cloud.os_json("application", "credential", "create", name, user="demo")
    cred = {k.lower(): v for k, v in cred.items()}  # newer clients capitalise the columns
    rc = cloud.openrc("demo")
    env = {k: v for k, v in rc.items() if k in ("OS_AUTH_URL", "OS_IDENTITY_API_VERSION", "OS_REGION_NAME")}
    env.update({"OS_AUTH_TYPE": "v3applicationcredential", "OS_APPLICATION_CREDENTIAL_ID": cred["id"],
                "OS_APPLICATION_CREDENTIAL_SECRET": cred["secret"]})
    tok = token(cloud, env=env)
    user_id = cloud.os_json("token", "issue", user="demo")["user_id"]
    demo = token(cloud, user="demo")
    with on_worker(cloud, 2) as w2:
        assert by(w2.get("/compute/v2.1/servers", headers={"X-Auth-Token": tok}), 2).status_code == 200
        with on_worker(cloud, 1) as w1:
            r = by(w1.delete(f"/identity/v3/users/{user_id}/application_credentials/{cred['id']}",
                             headers={"X-Auth-Token": demo}), 1)
            assert r.status_code == 204, r.text
        assert by(w2.get("/compute/v2.1/servers", headers={"X-Auth-Token": tok}), 2).status_code == 401
    # a revocation event, as a revoked token's
    engine = sa.create_engine(servers[0].url)
    try:
        with engine.connect() as c:
            found = c.scalar(sa.text("SELECT count(*) FROM identity_revocation_event WHERE app_cred_id = :i"),
                             {"i": cred["id"]})
    finally:
        engine.dispose()
    assert found == 1


@backed
def test_lockout_counts_failures_through_every_worker(cloud):
    name = f"lock-{uuid.uuid4().hex[:6]}"
    cloud.openstack("user", "create", "--password", "right-" + name, name)
    try:
        def auth(client, password):
            return client.post("/identity/v3/auth/tokens", json={"auth": {"identity": {
                "methods": ["password"], "password": {"user": {
                    "name": name, "domain": {"id": "default"}, "password": password}}}}})

        with on_worker(cloud, 1) as w1, on_worker(cloud, 2) as w2:
            for client, index in ((w1, 1), (w2, 2), (w1, 1)):  # three failures, on both workers
                assert by(auth(client, "wrong"), index).status_code == 401
            r = by(auth(w2, "right-" + name), 2)
            assert r.status_code == 401 and "locked" in r.text, r.text
    finally:
        cloud.openstack("user", "delete", name, check=False)


@pytest.fixture(scope="module")
def server(cloud, tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "small.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    img = cloud.os_json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                        "--public", "--file", str(path), f"wk-{uuid.uuid4().hex[:6]}")
    name = f"wk-{uuid.uuid4().hex[:6]}"
    s = cloud.os_json("server", "create", "--flavor", "m1.nano", "--image", img["id"], "--nic", "none",
                      "--wait", name)
    assert s["status"] == "ACTIVE", s
    yield s
    cloud.openstack("server", "delete", "--wait", s["id"], check=False)
    cloud.openstack("image", "delete", img["id"], check=False)


@backed
def test_console_token_made_through_one_worker_works_through_the_other(cloud, server):
    with on_worker(cloud, 1) as w1:
        r = by(w1.post(f"/compute/v2.1/servers/{server['id']}/remote-consoles",
                       json={"remote_console": {"protocol": "serial", "type": "serial"}},
                       headers={"X-Auth-Token": token(cloud), "OpenStack-API-Version": "compute 2.6"}), 1)
        assert r.status_code == 200, r.text
    url = r.json()["remote_console"]["url"]
    assert "/serial?token=" in url

    async def accepted_by(url: str) -> str | None:
        """The worker that accepted a websocket on ``url`` (None: refused)."""
        try:
            async with connect(url, open_timeout=10) as ws:
                return ws.response.headers.get(HEADER)
        except websockets.exceptions.InvalidStatus:
            return None

    seen: set[str | None] = set()

    def on_worker_2() -> bool:
        seen.add(asyncio.run(accepted_by(url)))
        return "2" in seen

    wait_for(on_worker_2, 60, what=f"worker 2 to accept the console token (seen: {seen})", step=0)
    assert None not in seen  # no worker refused it
    # while a made-up token is refused (before the websocket is accepted)
    bad = url.split("token=")[0] + "token=forged"
    assert {asyncio.run(accepted_by(bad)) for _ in range(6)} == {None}


@backed
def test_the_openstack_cli_works_against_the_workers(cloud, server):
    assert {p["Name"] for p in cloud.os_json("project", "list")} >= {"admin", "demo", "service"}
    assert server["id"] in {s["ID"] for s in cloud.os_json("server", "list")}
    cloud.openstack("server", "stop", server["id"])  # API worker -> conductor and agent over RabbitMQ
    wait_for(lambda: cloud.os_json("server", "show", server["id"])["status"] == "SHUTOFF", 60,
             what="the server to stop")
    cloud.openstack("server", "start", server["id"])
    wait_for(lambda: cloud.os_json("server", "show", server["id"])["status"] == "ACTIVE", 60,
             what="the server to start")
    vol = cloud.os_json("volume", "create", "--size", "1", f"wk-{uuid.uuid4().hex[:6]}")
    try:
        wait_for(lambda: cloud.os_json("volume", "show", vol["id"])["status"] == "available", 60,
                 what="the volume to be available")
    finally:
        cloud.openstack("volume", "delete", vol["id"], check=False)
    net = cloud.os_json("network", "create", f"wk-{uuid.uuid4().hex[:6]}")
    cloud.openstack("network", "delete", net["id"])
    services = cloud.os_json("compute", "service", "list")
    assert {s["Binary"] for s in services} >= {"nova-conductor", "nova-scheduler", "nova-compute"}


@backed
def test_a_dead_worker_is_replaced_and_down_leaves_no_worker(cloud):
    main = int((cloud.state / "onestack.pid").read_text())
    pids = worker_pids(main)
    assert len(pids) == 2, pids
    os.kill(pids[0], signal.SIGKILL)
    wait_for(lambda: len(worker_pids(main)) == 2 and pids[0] not in worker_pids(main), 60,
             what="the main process to start a new worker")
    with on_worker(cloud, 1), on_worker(cloud, 2):
        pass  # both answer again
    pids = worker_pids(main)
    cloud.onestack("down")
    wait_for(lambda: not alive(main), 30, what="the main process to exit")
    assert [p for p in pids if alive(p)] == []
