"""Pagination helpers: ``limit``/``marker`` as the OpenStack APIs use them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from onestack.common import errors

T = TypeVar("T")


def parse_limit(raw: str | None, maximum: int = 0) -> int | None:
    """``limit`` query value -> int (None when absent); 400 when not a non-negative int."""
    if raw is None or raw == "":
        return None
    try:
        limit = int(raw)
    except ValueError:
        raise errors.BadRequest(f"limit must be an integer, got {raw!r}.") from None
    if limit < 0:
        raise errors.BadRequest("limit must be a non-negative integer.")
    return min(limit, maximum) if maximum else limit


def page(
    items: Sequence[T], limit: int | None, marker: str | None, key: Callable[[T], str]
) -> tuple[list[T], bool]:
    """Items after ``marker`` (by key), at most ``limit``; and whether more remain.

    A marker that names no item is a 400, as in Nova, Glance and Neutron.
    """
    start = 0
    if marker:
        for i, item in enumerate(items):
            if key(item) == marker:
                start = i + 1
                break
        else:
            raise errors.BadRequest(f"marker {marker!r} not found.")
    rest = list(items[start:])
    if limit is None or len(rest) <= limit:
        return rest, False
    return rest[:limit], True


def next_link(base_url: str, query: dict[str, Any], last_id: str, limit: int) -> str:
    """The ``next`` link: the same query, moved past ``last_id``."""
    q = {k: v for k, v in query.items() if k not in ("marker", "limit")}
    q.update(limit=limit, marker=last_id)
    return f"{base_url}?{urlencode(q)}"
