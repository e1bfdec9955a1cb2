"""Measures: written into the store (aggregated at once), read back per aggregation."""

from __future__ import annotations

import numpy as np

from onestack.common import errors
from onestack.metric import carbonara, indexer
from onestack.metric.models import ArchivePolicy, Metric
from onestack.metric.storage import Store
from onestack.metric.timeutil import epochs, isos, to_epoch, to_timespan

store: Store | None = None


def configure(s: Store) -> None:
    global store
    store = s


def drop(metric_ids: list[str]) -> None:
    """The series of deleted metrics go too."""
    for mid in metric_ids:
        store.delete(mid)


def parse(body, what: str = "measures") -> tuple[np.ndarray, np.ndarray]:
    """``[{"timestamp": ..., "value": ...}]`` (or ``[[ts, value]]``) -> (epoch seconds, values)."""
    if not isinstance(body, list):
        raise errors.BadRequest(f"Invalid input: {what} must be a list of {{timestamp, value}}")
    try:  # the common case at batch speed; anything odd takes the checking loop below
        stamps = [m["timestamp"] for m in body]
        values = [m["value"] for m in body]
        if all(type(v) is float or type(v) is int for v in values):
            return epochs(stamps), _finite(np.array(values, dtype=float), what)
    except (TypeError, KeyError):
        pass
    stamps, values = [], []
    for i, m in enumerate(body):
        if isinstance(m, dict):
            if "timestamp" not in m or "value" not in m:
                raise errors.BadRequest(f"Invalid input: {what}[{i}] needs a timestamp and a value")
            t, v = m["timestamp"], m["value"]
        elif isinstance(m, list | tuple) and len(m) == 2:
            t, v = m
        else:
            raise errors.BadRequest(f"Invalid input: {what}[{i}] must be {{timestamp, value}}")
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise errors.BadRequest(f"Invalid input: {what}[{i}].value must be a number, not {v!r}")
        stamps.append(t)
        values.append(float(v))
    return epochs(stamps), _finite(np.array(values, dtype=float), what)


def _finite(values: np.ndarray, what: str) -> np.ndarray:
    if not np.isfinite(values).all():  # NaN/Infinity: Python's json reads them, no client can
        raise errors.BadRequest(f"Invalid input: {what} must be finite numbers (no NaN or Infinity)")
    return values


def add(metric: Metric, policy: ArchivePolicy, body) -> None:
    ts, values = parse(body)
    write(metric, policy, ts, values)


def write(metric: Metric, policy: ArchivePolicy, ts: np.ndarray, values: np.ndarray) -> None:
    if len(ts):
        store.add(metric.id, policy.definition, ts, values)


def _granularity(policy: ArchivePolicy, granularity) -> float | None:
    if granularity is None:
        return None
    g = to_timespan(granularity, "granularity")
    if not any(abs(float(d["granularity"]) - g) < 1e-9 for d in policy.definition):
        raise errors.NotFound(f"Granularity '{g}' for metric does not exist")
    return g


def check_method(policy: ArchivePolicy, method: str) -> None:
    base = method[5:] if method.startswith("rate:") else method
    if not carbonara.valid_method(method) or (method not in policy.aggregation_methods
                                               and base not in policy.aggregation_methods):
        raise errors.NotFound(f"Aggregation method '{method}' at granularity for metric does not exist")


def series(metric: Metric, policy: ArchivePolicy, method: str = "mean", granularity=None, start=None,
           stop=None, resample=None) -> list[tuple[float, np.ndarray, np.ndarray]]:
    check_method(policy, method)
    g = _granularity(policy, granularity)
    if resample is not None and g is None:
        raise errors.BadRequest("Invalid input: resample requires a granularity")
    lo = to_epoch(start, "start") if start is not None else None
    hi = to_epoch(stop, "stop") if stop is not None else None
    out = store.series(metric.id, policy.definition, method, g, lo, hi)
    if resample is not None:
        r = to_timespan(resample, "resample")
        out = [(r, *resample_series(t, v, r, method)) for _, t, v in out]
    return out


def read(metric_id: str, policy: ArchivePolicy, method: str, granularity: float | None, start: float | None,
         stop: float | None, checked: set) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """``series`` for many metrics of few policies (an aggregate): times already in
    seconds, and each (policy, method, granularity) checked once (``checked`` remembers)."""
    key = (policy.name, method, granularity)
    if key not in checked:
        check_method(policy, method)
        _granularity(policy, granularity)
        checked.add(key)
    return store.series(metric_id, policy.definition, method, granularity, start, stop)


def resample_series(t: np.ndarray, v: np.ndarray, r: float, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Buckets of ``r`` seconds over an already aggregated series, with the same method."""
    if not len(t):
        return t, v
    keys = np.floor_divide(t, r) * r
    uniq, inverse = np.unique(keys, return_inverse=True)
    base = method[5:] if method.startswith("rate:") else method
    return uniq, group_reduce(base, inverse, v, len(uniq))


def group_reduce(method: str, inverse: np.ndarray, v: np.ndarray, n: int) -> np.ndarray:
    count = np.bincount(inverse, minlength=n).astype(float)
    if method in ("sum", "count"):
        return np.bincount(inverse, weights=v, minlength=n)
    if method == "mean":
        return np.bincount(inverse, weights=v, minlength=n) / count
    if method in ("min", "max"):
        out = np.full(n, np.inf if method == "min" else -np.inf)
        (np.minimum if method == "min" else np.maximum).at(out, inverse, v)
        return out
    if method in ("first", "last"):
        out = np.full(n, np.nan)
        order = np.arange(len(v))[::-1] if method == "first" else np.arange(len(v))
        out[inverse[order]] = v[order]
        return out
    if method == "std":
        s = np.bincount(inverse, weights=v, minlength=n)
        sq = np.bincount(inverse, weights=v * v, minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sqrt(np.maximum((sq - s * s / count) / (count - 1), 0))
    if method == "median":
        return np.array([np.median(v[inverse == i]) for i in range(n)])
    raise errors.BadRequest(f"Invalid input: aggregation method '{method}' is not supported")


def render(out: list[tuple[float, np.ndarray, np.ndarray]]) -> list[list]:
    """``[[iso time, granularity, value]]``, the points of each granularity in turn; x/0 is
    no point (JSON has no Infinity)."""
    rows = []
    for g, ts, vs in out:
        finite = np.isfinite(vs)
        if not finite.all():
            ts, vs = ts[finite], vs[finite]
        rows += [[t, g, v] for t, v in zip(isos(ts), vs.astype(float, copy=False).tolist(), strict=True)]
    return rows


# -- batches


def batch_metrics(ctx, body) -> None:
    """``{metric_id: [measures]}``: all known first (400 naming the unknown), then written."""
    if not isinstance(body, dict):
        raise errors.BadRequest("Invalid input: expected an object of metric id -> measures")
    found, unknown = indexer.metrics_by_ids(ctx, list(body))
    if unknown:
        raise errors.BadRequest(f"Unknown metrics: {', '.join(sorted(unknown))}",
                                gnocchi={"cause": "Unknown metrics", "detail": sorted(unknown)})
    parsed = {mid: parse(ms, f"measures of {mid}") for mid, ms in body.items()}
    for mid, (ts, vs) in parsed.items():
        write(*found[mid], ts, vs)


def batch_resources(ctx, body, create_metrics: bool = False) -> None:
    """``{resource_id: {metric_name: [measures] | {"archive_policy_name", "unit", "measures"}}}``."""
    if not isinstance(body, dict):
        raise errors.BadRequest("Invalid input: expected an object of resource id -> metrics")
    work: list[tuple[Metric, ArchivePolicy, np.ndarray, np.ndarray]] = []
    unknown: list[dict] = []
    for rid, metrics in body.items():
        if not isinstance(metrics, dict):
            raise errors.BadRequest(f"Invalid input: resource {rid} must map metric names to measures")
        for name, spec in metrics.items():
            opts = spec if isinstance(spec, dict) else {"measures": spec}
            ts, vs = parse(opts.get("measures"), f"measures of {rid}/{name}")
            try:
                m, p = indexer.load_named_metric(ctx, "generic", rid, name)
            except errors.NotFound as e:
                if not create_metrics or "Resource" in e.message:
                    unknown.append({"resource_id": rid, "name": name})
                    continue
                indexer.add_resource_metrics(ctx, "generic", rid, {name: {
                    "archive_policy_name": opts.get("archive_policy_name"), "unit": opts.get("unit")}})
                m, p = indexer.load_named_metric(ctx, "generic", rid, name)
            work.append((m, p, ts, vs))
    if unknown:
        raise errors.BadRequest("Unknown metrics: " + ", ".join(f"{u['resource_id']}/{u['name']}"
                                                                for u in unknown),
                                gnocchi={"cause": "Unknown metrics", "detail": unknown})
    for m, p, ts, vs in work:
        write(m, p, ts, vs)
