"""Test helpers: run a real onestack (and, when asked, a PostgreSQL server for
it) in a private state directory on a free loopback port, and drive it with
the real clients."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from onestack import infra
from onestack.infra import postgres as infra_postgres
from onestack.infra import rabbitmq as infra_rabbitmq
from tests import osc

BIN = Path(sys.executable).parent  # tests run with .venv/bin/python
REPO = Path(__file__).resolve().parent.parent


def wait_for(fn, timeout: float = 30, what: str = "condition", step: float = 0.2):
    """Poll ``fn`` until it returns something true (returned), for at most ``timeout``
    seconds; then fail saying what was awaited. Tests wait on conditions, never sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cloud:
    """One running onestack, started with `onestack up --detach`."""

    def __init__(self, name: str, database_url: str = "", bcrypt_rounds: int = 4, extra_env=None):
        self.name = name
        self.state = Path(tempfile.mkdtemp(prefix=f"onestack-test-{name}-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            # PYTHONDONTWRITEBYTECODE (set in some shells) would have every `onestack` process
            # compile its ~330 modules from source again: ~1 s of CPU per cloud start
            **{k: v for k, v in os.environ.items()
               if not k.startswith(("OS_", "ONESTACK_")) and k != "PYTHONDONTWRITEBYTECODE"},
            "ONESTACK_STATE_DIR": str(self.state),
            "ONESTACK_SERVER_PORT": str(self.port),
            "ONESTACK_IDENTITY_BCRYPT_ROUNDS": str(bcrypt_rounds),
            "ONESTACK_CONFIG": str(self.state / "none.toml"),
            # one network agent per host, and the API tests want none: the tests of the
            # agent start their own cloud with ONESTACK_NETWORK_AGENT=true
            "ONESTACK_NETWORK_AGENT": "false",
            # API tests boot on simulated hosts; the e2e tests ask for libvirt themselves
            "ONESTACK_COMPUTE_DRIVER": "fake",
            **(extra_env or {}),
        }
        (self.state / "none.toml").write_text("")
        if database_url:
            self.env["ONESTACK_DATABASE_URL"] = database_url

    def onestack(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "onestack"), *args], env=self.env, capture_output=True, text=True,
            check=check, timeout=timeout,
        )

    def start(self, *up_args: str) -> Cloud:
        """`onestack up --detach` (and ``up_args``, e.g. ``--tls``)."""
        r = self.onestack("up", "--detach", *up_args, check=False)
        if r.returncode != 0:
            log = (self.state / "onestack.log")
            tail = log.read_text()[-3000:] if log.exists() else ""
            raise RuntimeError(f"onestack up failed: {r.stdout}{r.stderr}\n{tail}")
        return self

    def stop(self) -> None:
        self.onestack("down", "--purge", check=False)
        for server in (infra.RabbitMQ(self.state / "rabbitmq"), infra.Postgres(self.state / "postgres")):
            server.stop()  # managed servers `down` could not stop (it failed?) outlive no test
        shutil.rmtree(self.state, ignore_errors=True)

    def openrc(self, user: str = "admin") -> dict[str, str]:
        """The OS_* variables `onestack openrc USER` prints (asked once per user: the
        bootstrap users' credentials never change during a test run)."""
        cache = self.__dict__.setdefault("_openrc", {})
        if user not in cache:
            cache[user] = self._openrc_of(user)
        return dict(cache[user])

    def _openrc_of(self, user: str) -> dict[str, str]:
        out = self.onestack("openrc", user).stdout
        env = {}
        for line in out.splitlines():
            if line.startswith("export "):
                k, _, v = line[len("export "):].partition("=")
                env[k] = shlex.split(v)[0] if v else ""
        return env

    def password(self, user: str) -> str:
        return self.openrc(user)["OS_PASSWORD"]

    def openstack(self, *args: str, user: str = "admin", env: dict | None = None,
                  check: bool = True) -> subprocess.CompletedProcess:
        """Run the real `openstack` CLI as USER (or with explicit OS_* env)."""
        run_env = {**self.env, **(env if env is not None else self.openrc(user))}
        r = osc.run(list(args), run_env)
        if check and r.returncode != 0:
            raise AssertionError(f"openstack {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
        return r

    @contextmanager
    def new_member(self, prefix: str) -> Iterator[dict[str, str]]:
        """A user with the member role in a project of its own (both named
        ``<prefix>-<random>``, password ``pw-<name>``): its OS_* environment.
        Both are deleted afterwards."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.openstack("project", "create", name)
        try:
            self.openstack("user", "create", "--project", name, "--password", "pw-" + name, name)
            self.openstack("role", "add", "--project", name, "--user", name, "member")
            yield {**self.openrc("demo"), "OS_USERNAME": name, "OS_PASSWORD": "pw-" + name,
                   "OS_PROJECT_NAME": name}
        finally:
            self.openstack("user", "delete", name, check=False)
            self.openstack("project", "delete", name, check=False)

    def sdk(self, user: str = "admin", env: dict | None = None):
        """An openstacksdk connection as USER (or with explicit OS_* env); close it after."""
        import openstack  # the SDK is heavy: only the tests that use it pay for importing it

        rc = env if env is not None else self.openrc(user)
        return openstack.connect(
            auth_url=rc["OS_AUTH_URL"], username=rc["OS_USERNAME"], password=rc["OS_PASSWORD"],
            project_name=rc["OS_PROJECT_NAME"], user_domain_name=rc.get("OS_USER_DOMAIN_NAME", "Default"),
            project_domain_name=rc.get("OS_PROJECT_DOMAIN_NAME", "Default"), region_name=rc.get("OS_REGION_NAME"),
            **({"cacert": rc["OS_CACERT"]} if rc.get("OS_CACERT") else {}),  # a cloud started with --tls
        )

    def os_json(self, *args: str, **kw):
        """`openstack ... -f json`, parsed."""
        return json.loads(self.openstack(*args, "-f", "json", **kw).stdout)


class Postgres:
    """A throw-away PostgreSQL server owned by the test run, on a free port: onestack's
    managed server (onestack/infra/postgres.py) in a temporary directory, without fsync."""

    def __init__(self):
        if not infra_postgres.installed():
            raise FileNotFoundError("PostgreSQL is not installed (make test installs it)")
        self.dir = Path(tempfile.mkdtemp(prefix="onestack-pg-"))
        self.server = infra.Postgres(self.dir, port=free_port(), durable=False)
        self.port = self.server.port

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> Postgres:
        self.server.start()
        return self

    def stop(self) -> None:
        """Stop the server and remove its data."""
        try:
            self.server.purge()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    close = stop


class RabbitMQ:
    """A throw-away RabbitMQ broker owned by the test run: onestack's managed broker
    (onestack/infra/rabbitmq.py: its own node name, epmd, cookie and data) in a temporary
    directory, on a free port. ``stop()`` then ``start()`` restarts it on the same port
    (the clients' reconnect test); ``close()`` removes everything."""

    def __init__(self):
        if not infra_rabbitmq.installed():
            raise FileNotFoundError("RabbitMQ is not installed (make install-test installs it)")
        self.dir = Path(tempfile.mkdtemp(prefix="onestack-rabbitmq-"))
        self.server = infra.RabbitMQ(self.dir, port=free_port())
        self.port = self.server.port

    @property
    def url(self) -> str:
        return self.server.url

    def start(self, timeout: float = 120) -> RabbitMQ:
        try:
            self.server.start(timeout)
        except infra.InfraError:
            self.close()
            raise
        return self

    def stop(self) -> None:
        """Stop the broker; its data stays for start()."""
        self.server.stop()

    def close(self) -> None:
        try:
            self.server.purge()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
