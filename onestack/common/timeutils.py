"""Times as the OpenStack APIs write them (UTC, ISO 8601)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Naive UTC 'now', as stored in the database."""
    return datetime.now(UTC).replace(tzinfo=None)


def iso(dt: datetime | None, micro: bool = False) -> str | None:
    """``2026-11-21T10:00:00Z`` (or with ``.000000`` microseconds, as Keystone's tokens)."""
    if dt is None:
        return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    # (isoformat: the same text as strftime, at half the cost; lists render thousands)
    return dt.isoformat(timespec="microseconds" if micro else "seconds") + "Z"


def iso_plain(dt: datetime | None) -> str | None:
    """``2026-11-21T10:00:00.000000``: a stored time as oslo's jsonutils writes it, with
    no zone. Keystone shows app credential and password expiry times so; Tempest
    compares them with what it sent."""
    if dt is None:
        return None
    return iso(dt, micro=True)[:-1]


def parse_iso(text: str) -> datetime:
    """Parse an ISO 8601 time (``Z`` or offset); naive UTC result. ValueError if bad."""
    t = text.strip()
    if t.endswith("Z") or t.endswith("z"):
        t = t[:-1] + "+00:00"
    dt = datetime.fromisoformat(t)
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt
