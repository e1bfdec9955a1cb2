"""Time series aggregated at write time (the role of Gnocchi's carbonara), with numpy.

A metric keeps, for each granularity of its archive policy, buckets of ``granularity``
seconds. A bucket holds the running statistics of the measures that fell in it
(count, sum, sum of squares, min, max, first and last with their times), so every
aggregation method (mean, sum, count, min, max, first, last, std) is read straight
from it and new measures merge into it without the raw points. ``rate:<method>`` is
the difference between consecutive buckets of ``<method>``.

Buckets are stored in *splits* of SPLIT_POINTS buckets (one object each), sparse:
only the buckets that hold measures. A split is ``header (magic, n) + int32 index[n]
+ float64 column[n] x COLUMNS``, so a reader takes only the columns it needs.
Retention: a granularity keeps the ``points`` newest buckets; older splits are deleted
and older buckets never read.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable

import numpy as np

SPLIT_POINTS = 1440
MAGIC = b"OSM1"
HEADER = struct.Struct("<4sI")
COLUMNS = ("count", "sum", "sumsq", "min", "max", "first", "last", "first_t", "last_t")
COL = {name: i for i, name in enumerate(COLUMNS)}
METHODS = ("mean", "sum", "count", "min", "max", "first", "last", "std")
# the columns each method is made from
NEEDS = {"mean": ("count", "sum"), "sum": ("sum",), "count": ("count",), "min": ("min",),
         "max": ("max",), "first": ("first",), "last": ("last",), "std": ("count", "sum", "sumsq")}


def valid_method(name: str) -> bool:
    base = name[5:] if name.startswith("rate:") else name
    return base in METHODS


def split_key(granularity: float, start: float) -> str:
    return f"{granularity:g}_{int(start)}"


def parse_key(key: str) -> tuple[float, float]:
    g, _, start = key.partition("_")
    return float(g), float(start)


def split_start(ts: np.ndarray | float, granularity: float):
    span = granularity * SPLIT_POINTS
    return np.floor_divide(ts, span) * span


class Split:
    """The buckets of one split, dense in memory while they are merged."""

    def __init__(self, granularity: float, start: float):
        self.granularity, self.start = granularity, start
        self.data = np.full((len(COLUMNS), SPLIT_POINTS), np.nan)
        self.data[COL["count"]] = 0
        self.data[COL["sum"]] = 0
        self.data[COL["sumsq"]] = 0

    @classmethod
    def decode(cls, granularity: float, start: float, blob: bytes) -> Split:
        s = cls(granularity, start)
        idx, cols = _unpack(blob)
        s.data[:, idx] = cols
        return s

    def encode(self) -> bytes:
        idx = np.nonzero(self.data[COL["count"]] > 0)[0].astype("<i4")
        return _pack(idx, self.data[:, idx])

    def merge(self, ts: np.ndarray, values: np.ndarray) -> None:
        """Add measures (``ts`` sorted ascending, all inside this split)."""
        idx = ((ts - self.start) // self.granularity).astype(np.int64)
        d = self.data
        np.add.at(d[COL["count"]], idx, 1)
        np.add.at(d[COL["sum"]], idx, values)
        np.add.at(d[COL["sumsq"]], idx, values * values)
        mins = d[COL["min"]]
        maxs = d[COL["max"]]
        np.fmin.at(mins, idx, values)
        np.fmax.at(maxs, idx, values)
        uniq, first_pos = np.unique(idx, return_index=True)
        last_pos = len(idx) - 1 - np.unique(idx[::-1], return_index=True)[1]
        older = ~(d[COL["first_t"], uniq] <= ts[first_pos])  # NaN (empty) compares False
        d[COL["first"], uniq[older]] = values[first_pos][older]
        d[COL["first_t"], uniq[older]] = ts[first_pos][older]
        newer = ~(d[COL["last_t"], uniq] > ts[last_pos])
        d[COL["last"], uniq[newer]] = values[last_pos][newer]
        d[COL["last_t"], uniq[newer]] = ts[last_pos][newer]

    def newest(self) -> float | None:
        filled = np.nonzero(self.data[COL["count"]] > 0)[0]
        return float(self.start + filled[-1] * self.granularity) if len(filled) else None


def _pack(idx: np.ndarray, cols: np.ndarray) -> bytes:
    return HEADER.pack(MAGIC, len(idx)) + idx.astype("<i4").tobytes() + cols.astype("<f8").tobytes()


def _unpack(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    magic, n = HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise ValueError("not a metric split")
    idx = np.frombuffer(blob, "<i4", n, HEADER.size)
    cols = np.frombuffer(blob, "<f8", n * len(COLUMNS), HEADER.size + 4 * n).reshape(len(COLUMNS), n)
    return idx, cols


def read_columns(blob: bytes, names: Iterable[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The filled bucket indexes of a split and the named columns."""
    idx, cols = _unpack(blob)
    return idx, {n: cols[COL[n]] for n in names}


def bucket_times(start: float, granularity: float, idx: np.ndarray) -> np.ndarray:
    """The times of a split's filled buckets. A full split's are the same for every metric:
    one shared read-only array (an aggregate reads a thousand such splits)."""
    if len(idx) == SPLIT_POINTS:
        return _full_times(start, granularity)
    return start + idx * granularity


@functools.lru_cache(maxsize=256)
def _full_times(start: float, granularity: float) -> np.ndarray:
    t = start + np.arange(SPLIT_POINTS) * granularity
    t.flags.writeable = False
    return t


def method_values(method: str, cols: dict[str, np.ndarray]) -> np.ndarray:
    if method == "mean":
        return cols["sum"] / cols["count"]
    if method == "std":
        n = cols["count"]
        with np.errstate(invalid="ignore", divide="ignore"):
            var = (cols["sumsq"] - cols["sum"] ** 2 / n) / (n - 1)
        return np.sqrt(np.maximum(var, 0))
    return cols[NEEDS[method][0]]


def columns_for(method: str) -> tuple[str, ...]:
    base = method[5:] if method.startswith("rate:") else method
    return NEEDS[base]


def retention_cutoff(newest_bucket: float, granularity: float, points: int | None) -> float:
    """The oldest bucket time a granularity still keeps."""
    if not points:
        return -np.inf
    return newest_bucket - (points - 1) * granularity
