"""Database access: one engine per process, sessions, and per-service migrations.

Each service declares its tables on its own ``Base`` (its own MetaData) and has
its own Alembic migration folder and version table, so services stay separable
even when they share one database file. SQLite (WAL) is the embedded default;
PostgreSQL works by setting ``database.url``.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from onestack.common import errors

_engine: sa.Engine | None = None
_sessions: sessionmaker | None = None
# SQLite allows one writer; taking this lock for write transactions turns
# "database is locked" races between our own threads into orderly waiting.
_write_lock = threading.RLock()
_is_sqlite = False
_busy_timeout = 30.0  # seconds a writer waits for the lock (database.busy_timeout)


def make_base() -> type[DeclarativeBase]:
    """A declarative base with its own MetaData, one per service."""

    class Base(DeclarativeBase):
        pass

    return Base


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(_busy_timeout * 1000)}")
    cur.close()


def configure(url: str, busy_timeout: float = 30.0) -> sa.Engine:
    """Create the process's engine (idempotent for the same URL)."""
    global _engine, _sessions, _is_sqlite, _busy_timeout
    _busy_timeout = busy_timeout
    if _engine is not None and str(_engine.url) == url:
        return _engine
    _is_sqlite = url.startswith("sqlite")
    if _is_sqlite:
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # the database holds password hashes and keys: owner only (SQLite gives
            # its -wal and -shm files the same mode)
            Path(path).touch(mode=0o600, exist_ok=True)
            Path(path).chmod(0o600)
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": busy_timeout}, pool_size=10
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = sa.create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    _engine = engine
    _sessions = sessionmaker(engine, expire_on_commit=False)
    return engine


def engine() -> sa.Engine:
    if _engine is None:
        raise RuntimeError("database not configured")
    return _engine


@contextmanager
def session():
    """A read session (no commit)."""
    s: Session = _sessions()
    try:
        yield s
    finally:
        s.close()


@contextmanager
def transaction(conflict: str | None = None):
    """A write transaction: committed on success, rolled back on any error.

    With ``conflict``, losing a uniqueness race to a concurrent writer (checks
    made before the insert cannot see uncommitted rows) is that 409 message.
    """
    lock = _write_lock if _is_sqlite else None
    # a writer waits for our other writers no longer than for SQLite's lock: queued behind
    # one that holds it while another process locks the file, each would add its own wait
    if lock and not lock.acquire(timeout=_busy_timeout):
        raise errors.DatabaseUnavailable()
    try:
        s: Session = _sessions()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()
    except sa.exc.IntegrityError:
        if conflict is None:
            raise
        raise errors.Conflict(conflict) from None
    finally:
        if lock:
            lock.release()


def serialize(s: Session, key: str) -> None:
    """Hold ``key`` until ``s``'s transaction ends, so that a count and the insert it
    allows (a quota check) run one at a time per key, across processes too. SQLite:
    ``transaction`` already holds the one writer's lock; PostgreSQL: a
    transaction-scoped advisory lock on the key."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": key})


def upgrade(service: str, url: str | None = None) -> None:
    """Bring one service's tables to the newest migration."""
    # (alembic loads only when a service migrates, not with every module that uses the db)
    from alembic import command  # noqa: PLC0415
    from alembic.config import Config as AlembicConfig  # noqa: PLC0415

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", f"onestack.{service}:migrations")
    cfg.attributes["connection_url"] = url or str(engine().url.render_as_string(False))
    cfg.attributes["version_table"] = f"alembic_version_{service}"
    with engine().begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def run_migrations(target_metadata) -> None:
    """Body of every service's migrations/env.py."""
    from alembic import context  # noqa: PLC0415  (alembic's context exists inside a migration run only)

    cfg = context.config
    conn = cfg.attributes.get("connection")
    version_table = cfg.attributes.get("version_table", "alembic_version")
    if conn is None:  # `alembic revision --autogenerate` run by a developer
        conn_engine = sa.create_engine(cfg.get_main_option("sqlalchemy.url"))
        with conn_engine.connect() as c:
            context.configure(
                connection=c, target_metadata=target_metadata, version_table=version_table,
                render_as_batch=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            c.commit()
        return
    context.configure(
        connection=conn, target_metadata=target_metadata, version_table=version_table,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()
