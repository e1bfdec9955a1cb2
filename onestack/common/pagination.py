"""Pagination, written once: ``limit``/``offset``/``marker`` as the OpenStack APIs read them,
and the ``next`` link they give back."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from onestack.common import errors

T = TypeVar("T")


def parse_int(raw: str | None, name: str) -> int | None:
    """A non-negative integer query value (None when absent), in the words Nova, Cinder and
    Glance use: "<name> param must be an integer" / "... must be positive"."""
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise errors.BadRequest(f"{name} param must be an integer") from None
    if value < 0:
        raise errors.BadRequest(f"{name} param must be positive")
    return value


def parse_limit(raw: str | None, maximum: int = 0) -> int | None:
    """``limit`` query value -> int (None when absent), at most ``maximum`` (0: no cap)."""
    limit = parse_int(raw, "limit")
    if limit is None:
        return None
    return min(limit, maximum) if maximum else limit


def parse_offset(raw: str | None) -> int:
    return parse_int(raw, "offset") or 0


def _marker_not_found(marker: str) -> errors.ApiError:
    return errors.BadRequest(f"marker {marker!r} not found.")


def page(items: Sequence[T], limit: int | None, marker: str | None, key: Callable[[T], str], *,
         missing: Callable[[str], errors.ApiError] = _marker_not_found) -> tuple[list[T], bool]:
    """Items after ``marker`` (by key), at most ``limit``; and whether more remain.

    A marker that names no item is ``missing(marker)``: a 400 in Nova and Glance, a 404 in
    Cinder and Neutron, each in its own words.
    """
    start = 0
    if marker:
        for i, item in enumerate(items):
            if key(item) == marker:
                start = i + 1
                break
        else:
            raise missing(marker)
    rest = list(items[start:])
    if limit is None or len(rest) <= limit:
        return rest, False
    return rest[:limit], True


def next_link(base_url: str, query: Mapping[str, Any] | Iterable[tuple[str, Any]], last_id: str,
              limit: int | None = None) -> str:
    """The ``next`` link: the same query (repeated parameters kept), moved past ``last_id``;
    with ``limit`` that limit, else the request's own."""
    if hasattr(query, "multi_items"):  # a request's query string (Starlette's QueryParams)
        pairs = query.multi_items()
    else:
        pairs = query.items() if isinstance(query, Mapping) else query
    drop = {"marker"} if limit is None else {"marker", "limit"}
    q = [(k, v) for k, v in pairs if k not in drop]
    if limit is not None:
        q.append(("limit", limit))
    q.append(("marker", last_id))
    return f"{base_url}?{urlencode(q)}"
