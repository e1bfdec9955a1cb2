"""Where the aggregated time series live: files under the state dir, or Swift objects.

A driver stores opaque splits by (metric id, key) and lists a metric's keys; the
``Store`` on top merges measures into splits (onestack/metric/carbonara.py), enforces
each granularity's retention and reads series back.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import threading
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np

from onestack.common import errors
from onestack.common.clients import RestClient
from onestack.metric import carbonara

log = logging.getLogger(__name__)


class FileDriver:
    """One directory per metric, one file per split (written whole, then renamed)."""

    def __init__(self, root: Path):
        self.root = str(root)
        os.makedirs(self.root, exist_ok=True)

    def _dir(self, metric_id: str) -> str:
        return f"{self.root}/{metric_id[:2]}/{metric_id}"

    def keys(self, metric_id: str) -> list[str]:
        try:
            return [k for k in os.listdir(self._dir(metric_id)) if not k.endswith(".tmp") and k != ".lock"]
        except FileNotFoundError:
            return []

    def get(self, metric_id: str, key: str) -> bytes | None:
        try:  # os-level calls: an aggregate reads a thousand of these small files
            fd = os.open(f"{self._dir(metric_id)}/{key}", os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:  # exactly the file's size (it never changes: splits are written whole, then renamed);
            # a larger buffer per read costs more than the read itself
            size = os.fstat(fd).st_size
            blob = os.read(fd, size)
            while len(blob) < size and (chunk := os.read(fd, size - len(blob))):
                blob += chunk
            return blob
        finally:
            os.close(fd)

    def put(self, metric_id: str, key: str, blob: bytes) -> None:
        d = self._dir(metric_id)
        os.makedirs(d, exist_ok=True)
        tmp = f"{d}/{key}.{threading.get_ident()}.tmp"
        with open(tmp, "wb") as f:
            f.write(blob)
        os.replace(tmp, f"{d}/{key}")

    def delete(self, metric_id: str, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{self._dir(metric_id)}/{key}")

    @contextlib.contextmanager
    def locked(self, metric_id: str):
        """One writer per metric across processes too (API workers share the directory)."""
        d = self._dir(metric_id)
        os.makedirs(d, exist_ok=True)
        fd = os.open(f"{d}/.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def delete_metric(self, metric_id: str) -> None:
        for k in [*self.keys(metric_id), ".lock"]:
            self.delete(metric_id, k)
        with contextlib.suppress(OSError):
            os.rmdir(self._dir(metric_id))


class SwiftDriver:
    """Objects ``<metric id>/<key>`` in one container of the service user's account,
    through the object store's API (as Gnocchi's swift driver, one container for all)."""

    def __init__(self, client_factory, container: str):
        self._factory = client_factory  # made on first use: the service user exists after bootstrap
        self._client: RestClient | None = None
        self.container = container
        self._container_ready = False
        self._lock = threading.Lock()

    def _c(self) -> RestClient:
        with self._lock:
            if self._client is None:
                self._client = self._factory()
            return self._client

    def _url(self, name: str = "") -> str:
        c = self._c()
        c.auth.token()  # the project id is known once a token was issued
        url = f"{c.url}/v1/AUTH_{c.auth.project_id}/{quote(self.container)}"
        return f"{url}/{quote(name)}" if name else url

    def _send(self, method: str, url: str, ok: tuple[int, ...], **kw) -> httpx.Response:
        c = self._c()
        try:
            r = c.http.request(method, url, headers={"X-Auth-Token": c.auth.token(), **kw.pop("headers", {})},
                               **kw)
        except httpx.HTTPError as e:
            raise errors.ServiceUnavailable(f"the object store did not answer: {e}") from None
        if r.status_code not in ok:
            raise errors.ServiceUnavailable(f"object store: {method} {url.rsplit('/v1/', 1)[-1]} "
                                            f"answered {r.status_code}")
        return r

    def _ensure_container(self) -> None:
        if not self._container_ready:
            self._send("PUT", self._url(), (201, 202))
            self._container_ready = True

    def keys(self, metric_id: str) -> list[str]:
        self._ensure_container()
        prefix = f"{metric_id}/"
        names: list[str] = []
        marker = ""
        while True:
            r = self._send("GET", self._url(), (200, 204),
                           params={"prefix": prefix, "format": "json", "marker": marker})
            page = r.json() if r.status_code == 200 and r.content else []
            if not page:
                return names
            names += [o["name"][len(prefix):] for o in page]
            marker = page[-1]["name"]

    def get(self, metric_id: str, key: str) -> bytes | None:
        self._ensure_container()
        r = self._send("GET", self._url(f"{metric_id}/{key}"), (200, 404))
        return r.content if r.status_code == 200 else None

    def put(self, metric_id: str, key: str, blob: bytes) -> None:
        self._ensure_container()
        self._send("PUT", self._url(f"{metric_id}/{key}"), (201,), content=blob)

    def delete(self, metric_id: str, key: str) -> None:
        self._send("DELETE", self._url(f"{metric_id}/{key}"), (204, 404))

    def delete_metric(self, metric_id: str) -> None:
        for k in self.keys(metric_id):
            self.delete(metric_id, k)


class Store:
    """Measures in, aggregated series out, for metrics kept by an archive policy
    (``definition``: [{"granularity": seconds, "points": n}])."""

    def __init__(self, driver):
        self.driver = driver
        # one writer per metric at a time: a split is read, merged and written back
        self._locks = [threading.Lock() for _ in range(64)]

    def _lock(self, metric_id: str) -> threading.Lock:
        return self._locks[hash(metric_id) % len(self._locks)]

    def add(self, metric_id: str, definition: list[dict], ts: np.ndarray, values: np.ndarray) -> None:
        """Merge measures (epoch seconds, floats) into every granularity."""
        keep = ~np.isnan(values)
        ts, values = ts[keep], values[keep]
        if not len(ts):
            return
        order = np.argsort(ts, kind="stable")
        ts, values = ts[order], values[order]
        locked = getattr(self.driver, "locked", None)
        with self._lock(metric_id), (locked(metric_id) if locked else contextlib.nullcontext()):
            existing = self.driver.keys(metric_id)
            for item in definition:
                self._add_granularity(metric_id, existing, float(item["granularity"]), item.get("points"),
                                      ts, values)

    def _add_granularity(self, metric_id, existing, g, points, ts, values) -> None:
        mine = sorted(carbonara.parse_key(k)[1] for k in existing if carbonara.parse_key(k)[0] == g)
        starts = carbonara.split_start(ts, g)
        newest = None
        if mine:  # the newest bucket kept so far, to drop what is already out of retention
            blob = self.driver.get(metric_id, carbonara.split_key(g, mine[-1]))
            if blob:
                idx, _ = carbonara.read_columns(blob, ())
                newest = mine[-1] + float(idx.max()) * g if len(idx) else None
        last_bucket = float(np.floor_divide(ts[-1], g) * g)
        newest = last_bucket if newest is None else max(newest, last_bucket)
        cutoff = carbonara.retention_cutoff(newest, g, points)
        keep = ts >= cutoff
        ts, values, starts = ts[keep], values[keep], starts[keep]
        bounds = np.flatnonzero(np.diff(starts)) + 1
        for part_ts, part_v, start in zip(np.split(ts, bounds), np.split(values, bounds),
                                          starts[np.r_[0, bounds]] if len(ts) else [], strict=False):
            key = carbonara.split_key(g, float(start))
            blob = self.driver.get(metric_id, key) if float(start) in mine else None
            split = carbonara.Split.decode(g, float(start), blob) if blob else carbonara.Split(g, float(start))
            split.merge(part_ts, part_v)
            self.driver.put(metric_id, key, split.encode())
        span = g * carbonara.SPLIT_POINTS
        for start in mine:  # whole splits older than the retention
            if start + span <= cutoff:
                self.driver.delete(metric_id, carbonara.split_key(g, start))

    def series(self, metric_id: str, definition: list[dict], method: str, granularity: float | None = None,
               start: float | None = None, stop: float | None = None) -> list[tuple[float, np.ndarray, np.ndarray]]:
        """[(granularity, timestamps, values)] of one aggregation method, coarsest first;
        from the bucket holding ``start`` to before ``stop`` (epoch seconds)."""
        splits: dict[float, list[float]] | None = None
        if start is None or stop is None:
            splits = {}
            for k in self.driver.keys(metric_id):
                g, s0 = carbonara.parse_key(k)
                splits.setdefault(g, []).append(s0)
        rate = method.startswith("rate:")
        base = method[5:] if rate else method
        cols = carbonara.columns_for(method)
        out = []
        for item in sorted(definition, key=lambda d: -float(d["granularity"])):
            g = float(item["granularity"])
            if granularity is not None and abs(g - granularity) > 1e-9:
                continue
            span = g * carbonara.SPLIT_POINTS
            lo = None if start is None else math.floor(start / g) * g  # Gnocchi rounds start down
            times, vals = [], []
            if splits is None:  # a bounded read names its splits: no listing (a missing one reads as None)
                first = math.floor((lo - (g if rate else 0)) / span) * span
                count = math.ceil((stop - first) / span)
                starts = [first + i * span for i in range(count)] if count <= 64 else sorted(
                    carbonara.parse_key(k)[1] for k in self.driver.keys(metric_id)
                    if carbonara.parse_key(k)[0] == g)
            else:
                starts = sorted(splits.get(g, ()))
            for s0 in starts:
                if (lo is not None and s0 + span <= lo - (g if rate else 0)) or (stop is not None and s0 >= stop):
                    continue
                blob = self.driver.get(metric_id, carbonara.split_key(g, s0))
                if blob:
                    idx, c = carbonara.read_columns(blob, cols)
                    times.append(carbonara.bucket_times(s0, g, idx))
                    vals.append(carbonara.method_values(base, c))
            t = np.concatenate(times) if len(times) > 1 else times[0] if times else np.empty(0)
            v = np.concatenate(vals) if len(vals) > 1 else vals[0] if vals else np.empty(0)
            if len(t):  # buckets past the retention that the newest split still holds
                cutoff = carbonara.retention_cutoff(float(t[-1]), g, item.get("points"))
                if t[0] < cutoff:
                    t, v = t[t >= cutoff], v[t >= cutoff]
            if rate:
                t, v = t[1:], np.diff(v)
            if len(t) and (lo is not None and t[0] < lo or stop is not None and t[-1] >= stop):
                inside = (t >= (lo if lo is not None else -math.inf)) & (t < (stop if stop is not None else math.inf))
                t, v = t[inside], v[inside]
            if base == "std" or rate:  # only these can make NaN (a lone measure has no std)
                t, v = t[~np.isnan(v)], v[~np.isnan(v)]
            out.append((g, t, v))
        return out

    def delete(self, metric_id: str) -> None:
        with self._lock(metric_id):
            self.driver.delete_metric(metric_id)
