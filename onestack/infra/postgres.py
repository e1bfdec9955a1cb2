"""A PostgreSQL server run by onestack: Debian's PostgreSQL binaries on a cluster of
its own under one directory (``<state>/postgres``), not Debian's clusters.

- ``data/``: the cluster (PGDATA); its ``postmaster.pid`` is the pid file;
- ``run/``: the unix socket and ``postgresql.log``;
- ``password``: the generated password (0600) of the role ``onestack``, owner of the
  database ``onestack``; ``listen``: where the running server listens.

It listens on ``host:port``. Every TCP connection authenticates with that password
(SCRAM); trust is given on the unix socket only, whose directory only the server's
user can reach. PostgreSQL refuses to run as root: as root it runs as the Debian user
``postgres`` (through runuser), which gets a search-only ACL entry on the directories
above. The data stays from one start to the next until the directory is removed.
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from onestack.infra import daemon
from onestack.infra.daemon import InfraError

USER = DATABASE = "onestack"
SYSTEM_USER = "postgres"  # who runs the server when onestack runs as root
MAX_CONNECTIONS = 256  # each onestack process pools up to 30

HBA = """\
# Written by onestack (onestack/infra/postgres.py): trust on the unix socket only (its
# directory is the server's own); every TCP connection gives the password (SCRAM).
local all all trust
host all all 0.0.0.0/0 scram-sha-256
host all all ::/0 scram-sha-256
"""

# At every start: the role and database exist, the role's password is the stored one.
BOOTSTRAP = """\
SELECT 'CREATE ROLE {user} LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{user}')\\gexec
ALTER ROLE {user} PASSWORD '{password}';
SELECT 'CREATE DATABASE {db} OWNER {user}'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{db}')\\gexec
"""


def bin_dir() -> Path:
    """The newest installed PostgreSQL's bin directory."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise FileNotFoundError("PostgreSQL is not installed (Debian package postgresql)")
    return Path(found[-1]).parent


def installed() -> bool:
    return bool(glob.glob("/usr/lib/postgresql/*/bin/initdb"))


class Postgres:
    name = "postgres"

    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int = 5432, durable: bool = True):
        """``durable=False``: no fsync (a throw-away server for tests)."""
        self.dir = Path(directory).absolute()
        self.host, self.port, self.durable = host, port, durable
        self.data, self.run_dir = self.dir / "data", self.dir / "run"

    @property
    def address(self) -> str:
        return f"{daemon.url_host(self.host)}:{self.port}"

    @property
    def password(self) -> str:
        return daemon.secret(self.dir / "password")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{USER}:{self.password}@{self.address}/{DATABASE}"

    def _as_server_user(self) -> bool:
        return os.geteuid() == 0

    def _run(self, *args: str, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [str(bin_dir() / args[0]), *args[1:]]
        if self._as_server_user():
            cmd = ["runuser", "-u", SYSTEM_USER, "--", *cmd]
        done = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, cwd="/")
        if done.returncode != 0:
            out = (done.stderr or done.stdout).strip().replace("\n", " | ")
            raise InfraError(f"PostgreSQL {args[0]} failed: {out}")
        return done

    def pid(self) -> int | None:
        """The postmaster's pid, if one runs on this data directory."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        return pid if daemon.alive(pid) and str(self.data).encode() in cmdline else None

    def running(self) -> bool:
        return self.pid() is not None

    def running_address(self) -> str:
        try:
            return (self.dir / "listen").read_text().strip()
        except OSError:
            return ""

    def _own_dir(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self._as_server_user():
            shutil.chown(path, SYSTEM_USER, SYSTEM_USER)
        path.chmod(0o700)

    def _init(self) -> None:
        """A new cluster (a half-made one from an interrupted first start is made again)."""
        shutil.rmtree(self.data, ignore_errors=True)
        self._own_dir(self.data)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth-local=trust",
                  "--auth-host=scram-sha-256", "--no-locale", "-E", "UTF8")
        hba = self.data / "pg_hba.conf"
        hba.write_text(HBA)
        if self._as_server_user():
            shutil.chown(hba, SYSTEM_USER, SYSTEM_USER)

    def start(self, timeout: float = 120) -> Postgres:
        """Start the server (a running one is reused): initialise the cluster on the first
        start, then make sure the role and database exist."""
        bin_dir()  # (FileNotFoundError when not installed)
        if self.running():
            if self.running_address() not in ("", self.address):
                raise InfraError(f"the PostgreSQL of {self.dir} runs at {self.running_address()}, not "
                                 f"{self.address}: stop it first (onestack down)")
            return self
        if daemon.answers(self.host, self.port):
            raise InfraError(f"port {self.port} on {daemon.loopback(self.host)} is already in use "
                             "(database.port): stop what uses it or choose another port")
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        password = self.password
        if self._as_server_user():
            daemon.let_pass(self.dir, SYSTEM_USER)
        self._own_dir(self.run_dir)
        if not (self.data / "PG_VERSION").exists():
            self._init()
        opts = [f"-p {self.port}", f"-k {shlex.quote(str(self.run_dir))}",
                f"-c listen_addresses={shlex.quote(self.host)}", f"-c max_connections={MAX_CONNECTIONS}"]
        if not self.durable:
            opts += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        log = self.run_dir / "postgresql.log"
        try:
            self._run("pg_ctl", "-D", str(self.data), "-l", str(log), "-w", "-t", str(int(timeout)),
                      "-o", " ".join(opts), "start", timeout=timeout + 10)
        except InfraError as e:
            raise InfraError(f"{e} ({daemon.log_tail(log)})") from None
        (self.dir / "listen").write_text(self.address + "\n")
        self._run("psql", "-h", str(self.run_dir), "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                  "-q", "-v", "ON_ERROR_STOP=1",
                  input=BOOTSTRAP.format(user=USER, db=DATABASE, password=password))
        return self

    def stop(self, timeout: float = 60) -> bool:
        """Stop the server (the data stays). True if it was running."""
        if not self.running():
            (self.dir / "listen").unlink(missing_ok=True)
            return False
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", str(int(timeout)), "stop",
                      timeout=timeout + 10)
        except InfraError:  # (sessions that do not end): what PostgreSQL's immediate mode is for
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        (self.dir / "listen").unlink(missing_ok=True)
        return True

    def purge(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
