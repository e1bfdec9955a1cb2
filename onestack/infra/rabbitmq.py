"""A RabbitMQ broker run by onestack: Debian's rabbitmq-server, all of it under one
directory (``<state>/rabbitmq``), nothing read from /etc/rabbitmq.

It has its own Erlang node name, cookie (``HOME`` is the directory), Erlang port mapper
(epmd) and distribution port, both on loopback only and chosen at each start; clients
reach only its AMQP port, on ``host:port``. The user ``onestack`` with a generated
password (``password``, 0600) is made at first boot by ``default_user``/``default_pass``:
RabbitMQ's ``guest`` works from loopback only, and is never created. The broker and
its epmd run in process groups of their own, recorded in ``server.pid`` and ``epmd.pid``;
the data (``mnesia/``) stays from one start to the next until the directory is removed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from onestack.infra import daemon
from onestack.infra.daemon import InfraError

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")  # the node itself (/usr/sbin's wrapper su's)
USER = "onestack"


def installed() -> bool:
    return SERVER.exists() and shutil.which("epmd") is not None


class RabbitMQ:
    name = "rabbitmq"

    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int = 5672):
        self.dir = Path(directory)
        self.host, self.port = host, port

    @property
    def address(self) -> str:
        return f"{daemon.url_host(self.host)}:{self.port}"

    @property
    def password(self) -> str:
        return daemon.secret(self.dir / "password")

    @property
    def url(self) -> str:
        return f"amqp://{USER}:{self.password}@{self.address}/"

    def pid(self) -> int | None:
        return daemon.read_pid(self.dir / "server.pid")

    def running(self) -> bool:
        return self.pid() is not None

    def running_address(self) -> str:
        """host:port of the running broker (as it was started)."""
        try:
            return (self.dir / "listen").read_text().strip()
        except OSError:
            return ""

    def _env(self, dist_port: int, epmd_port: int) -> dict[str, str]:
        d = self.dir
        return {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "HOME": str(d),  # (the cookie)
            "LANG": "C.UTF-8",
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),  # absent: none
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"), "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PID_FILE": str(d / "rabbitmq.pid"),
            # one node per epmd: the name needs to be unique there only
            "RABBITMQ_NODENAME": "onestack@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": self.host, "RABBITMQ_NODE_PORT": str(self.port),
            # Erlang distribution on loopback only: nothing outside may talk to the node
            "RABBITMQ_DIST_PORT": str(dist_port), "ERL_EPMD_PORT": str(epmd_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def _write_config(self) -> None:
        d = self.dir
        (d / "rabbitmq-env.conf").write_text("")
        (d / "enabled_plugins").write_text("[].\n")
        conf = d / "rabbitmq.conf"
        conf.touch(mode=0o600)
        conf.write_text(
            "# Written by onestack at each start (onestack/infra/rabbitmq.py).\n"
            "# The user is made at the first boot only; guest is never made.\n"
            f"default_user = {USER}\ndefault_pass = {self.password}\ndefault_vhost = /\n"
            "default_permissions.configure = .*\ndefault_permissions.read = .*\n"
            "default_permissions.write = .*\n"
        )

    def start(self, timeout: float = 120) -> RabbitMQ:
        """Start the broker (a running one is reused) and wait until it takes AMQP connections."""
        if not installed():
            raise FileNotFoundError("RabbitMQ is not installed (Debian package rabbitmq-server)")
        if (pid := self.pid()) is not None:
            if self.running_address() not in ("", self.address):
                raise InfraError(f"the RabbitMQ of {self.dir} runs at {self.running_address()}, not "
                                 f"{self.address}: stop it first (onestack down)")
            daemon.wait_until(lambda: daemon.answers(self.host, self.port), timeout,
                              f"RabbitMQ (pid {pid}) answering at {self.address}")
            return self
        if daemon.answers(self.host, self.port):
            raise InfraError(f"port {self.port} on {daemon.loopback(self.host)} is already in use "
                             "(bus.port): stop what uses it or choose another port")
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._stop_epmd()  # a stale one (its broker died): the new broker gets a new one
        self._write_config()
        epmd_port, dist_port = daemon.free_port(), daemon.free_port()
        env = self._env(dist_port, epmd_port)
        with open(self.dir / "server.log", "ab") as log:
            # our own epmd in the foreground: the node would otherwise start a shared daemon
            epmd = subprocess.Popen(["epmd", "-port", str(epmd_port), "-address", "127.0.0.1"],
                                    env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True, cwd=self.dir)
            daemon.write_pid(self.dir / "epmd.pid", epmd.pid)
            node = subprocess.Popen([str(SERVER)], env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=log, start_new_session=True, cwd=self.dir)
        daemon.write_pid(self.dir / "server.pid", node.pid)
        (self.dir / "listen").write_text(self.address + "\n")

        def died() -> str:
            if node.poll() is None:
                return ""
            return f"rabbitmq-server exited ({daemon.log_tail(self.dir / 'server.log')})"

        try:  # the AMQP listener opens last, when the broker is ready
            daemon.wait_until(lambda: daemon.answers(self.host, self.port), timeout,
                              f"RabbitMQ listening at {self.address}", died)
        except InfraError:
            self.stop()
            raise
        return self

    def _stop_epmd(self) -> None:
        if (pid := daemon.read_pid(self.dir / "epmd.pid")) is not None:
            daemon.stop_group(pid, 10)
        (self.dir / "epmd.pid").unlink(missing_ok=True)

    def stop(self, timeout: float = 60) -> bool:
        """Stop the broker and its epmd (the data stays). True if the broker was running."""
        pid = self.pid()
        if pid is not None:
            daemon.stop_group(pid, timeout)  # RabbitMQ stops cleanly on SIGTERM
        for name in ("server.pid", "listen"):
            (self.dir / name).unlink(missing_ok=True)
        self._stop_epmd()
        return pid is not None

    def purge(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
