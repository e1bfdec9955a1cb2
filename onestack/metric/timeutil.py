"""Times and timespans as Gnocchi reads and writes them."""

from __future__ import annotations

import re
import time
import warnings
from datetime import UTC, datetime, timedelta

import numpy as np

from onestack.common import errors

_UNITS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "mins": 60,
          "minute": 60, "minutes": 60, "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600,
          "d": 86400, "day": 86400, "days": 86400, "w": 604800, "week": 604800, "weeks": 604800}
_SPAN = re.compile(r"^\s*([0-9.]+)\s*([a-z]+)\s*$")
_CLOCK = re.compile(r"^\s*(?:(\d+)\s+days?,\s*)?(\d+):(\d\d):(\d\d(?:\.\d+)?)\s*$")


def to_timespan(value, what: str = "timespan") -> float:
    """Seconds from ``60``, ``"60"``, ``"1 minute"``, ``"1h"``, ``"0:01:00"`` or ``"7 days, 0:00:00"``."""
    if isinstance(value, bool):
        raise errors.BadRequest(f"Invalid {what}: {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            m, c = _SPAN.match(text), _CLOCK.match(text)
            if m and m.group(2) in _UNITS:
                seconds = float(m.group(1)) * _UNITS[m.group(2)]
            elif c:
                seconds = (int(c.group(1) or 0) * 86400 + int(c.group(2)) * 3600 + int(c.group(3)) * 60
                           + float(c.group(4)))
            else:
                raise errors.BadRequest(f"Invalid {what}: {value!r} is not a timespan") from None
    else:
        raise errors.BadRequest(f"Invalid {what}: {value!r} is not a timespan")
    if seconds <= 0 or seconds != seconds:
        raise errors.BadRequest(f"Invalid {what}: {value!r} must be positive")
    return seconds


def span_text(seconds: float | None) -> str | None:
    """``60`` -> ``"0:01:00"`` (Python's timedelta, as Gnocchi renders a timespan)."""
    return None if seconds is None else str(timedelta(seconds=seconds))


def to_epoch(value, what: str = "timestamp") -> float:
    """Epoch seconds from ISO 8601 (naive is UTC), an epoch number, ``now`` or ``-<timespan>``."""
    if isinstance(value, bool):
        raise errors.BadRequest(f"Invalid {what}: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise errors.BadRequest(f"Invalid {what}: {value!r}")
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    if text.lower() == "now":
        return time.time()
    if text.startswith("-"):  # relative to now: "-1 hour"
        return time.time() - to_timespan(text[1:], what)
    try:
        dt = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    except ValueError:
        raise errors.BadRequest(f"Invalid {what}: {value!r} is not an ISO 8601 time") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def to_datetime(value, what: str = "timestamp") -> datetime:
    """A naive UTC datetime (as the index stores them)."""
    return datetime.fromtimestamp(to_epoch(value, what), UTC).replace(tzinfo=None)


def iso(value: datetime | float | None) -> str | None:
    """``2015-03-06T14:33:57+00:00`` (microseconds when there are some), as Gnocchi answers."""
    if value is None:
        return None
    if isinstance(value, datetime):  # the index's naive UTC datetimes
        return value.isoformat() if value.tzinfo else value.isoformat() + "+00:00"
    return datetime.fromtimestamp(float(value), UTC).isoformat()


def isos(values: np.ndarray) -> list[str]:
    """``iso`` of many epoch seconds (an answer's points): numpy formats whole seconds at
    once; a series with fractions of a second takes them one by one."""
    if len(values) and np.array_equal(values, np.floor(values)):
        return [s + "+00:00" for s in np.datetime_as_string(values.astype(np.int64).astype("datetime64[s]"))
                .tolist()]
    return [iso(float(v)) for v in values]


def epochs(values: list, what: str = "timestamp") -> np.ndarray:
    """Many timestamps at once: numpy parses plain ISO strings (UTC, ``Z`` or ``+00:00``);
    anything else (other offsets, epochs, relative times) one by one."""
    if values and all(type(v) is str for v in values):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy only warns on a zone suffix: not for us
            for attempt in (values, [v[:-1] if v.endswith("Z") else v[:-6] if v.endswith("+00:00") else v
                                     for v in values]):
                try:
                    return np.array(attempt, dtype="datetime64[us]").astype(np.int64) / 1e6
                except (ValueError, UserWarning, DeprecationWarning):
                    continue
    return np.array([to_epoch(v, what) for v in values], dtype=float)
