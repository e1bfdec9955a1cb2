"""``/v1/aggregates``: Gnocchi's operations language over series of metrics.

``(aggregate mean (metric (ID1 mean) (ID2 mean)))``, ``(metric cpu_util mean)`` with a
resource search, ``(rolling mean 3 ...)``, ``(resample max 3600 ...)``, arithmetic
``(* 100 (/ (metric a mean) (metric b mean)))`` and ``(abs ...)``-style functions.

A value of the language is a list of labelled series, each ``{granularity: (t, v)}``; a
``metric`` node makes one per reference, ``aggregate`` folds them into one labelled
``aggregated`` (given ``needed_overlap`` without ``fill``, only over the timestamps all
share and only when they overlap by that percent; by default, as Gnocchi, ``fill=dropna``).
"""

from __future__ import annotations

import fnmatch
import re
import warnings

import numpy as np

from onestack.common import errors
from onestack.metric import indexer, measures, query
from onestack.metric.timeutil import to_epoch, to_timespan

Series = dict[float, tuple[np.ndarray, np.ndarray]]
Labelled = list[tuple[tuple, Series]]

_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+)")
BINARY = {"+": np.add, "add": np.add, "-": np.subtract, "sub": np.subtract, "*": np.multiply,
          "mul": np.multiply, "/": np.true_divide, "truediv": np.true_divide, "div": np.true_divide,
          "**": np.power, "pow": np.power, "%": np.mod, "mod": np.mod, "<": np.less, "lt": np.less,
          ">": np.greater, "gt": np.greater, "<=": np.less_equal, "le": np.less_equal,
          ">=": np.greater_equal, "ge": np.greater_equal, "==": np.equal, "eq": np.equal,
          "!=": np.not_equal, "ne": np.not_equal}
UNARY = {"abs": np.abs, "absolute": np.abs, "neg": np.negative, "negative": np.negative, "cos": np.cos,
         "sin": np.sin, "tan": np.tan, "floor": np.floor, "ceil": np.ceil, "round": np.round,
         "sqrt": np.sqrt, "log": np.log, "exp": np.exp, "isnan": np.isnan}
FILLS = ("null", "dropna", "ffill", "bfill", "full_ffill", "full_bfill")
AGGREGATES = ("mean", "sum", "count", "min", "max", "first", "last", "std", "median")


def parse(text) -> list:
    """The string form to nested lists (a JSON list is taken as it is)."""
    if isinstance(text, list):
        return text
    if not isinstance(text, str) or not text.strip():
        raise errors.BadRequest("Invalid input: operations must be a string or a list")
    tokens = _TOKEN.findall(text)
    stack: list[list] = [[]]
    for tok in tokens:
        if tok == "(":
            stack.append([])
        elif tok == ")":
            if len(stack) < 2:
                raise errors.BadRequest(f"Invalid operations: unbalanced ')' in {text!r}")
            done = stack.pop()
            stack[-1].append(done)
        else:
            try:
                stack[-1].append(float(tok) if re.fullmatch(r"-?\d+(\.\d+)?", tok) else tok)
            except ValueError:
                stack[-1].append(tok)
    if len(stack) != 1 or len(stack[0]) != 1 or not isinstance(stack[0][0], list):
        raise errors.BadRequest(f"Invalid operations: {text!r} is not one expression")
    return stack[0][0]


def references(ops: list) -> list[tuple[str, str]]:
    """Every (metric, aggregation) the expression reads."""
    if not isinstance(ops, list) or not ops:
        return []
    if ops[0] == "metric":
        args = ops[1:]
        if len(args) == 2 and all(isinstance(a, str) for a in args):
            return [(args[0], args[1])]
        refs = []
        for a in args:
            if not (isinstance(a, list) and len(a) == 2 and all(isinstance(x, str) for x in a)):
                raise errors.BadRequest(f"Invalid operations: bad metric reference {a!r}")
            refs.append((a[0], a[1]))
        return refs
    return [r for sub in ops[1:] for r in references(sub)]


class Evaluator:
    def __init__(self, fetch, granularity, start, stop, fill, needed_overlap):
        self.fetch = fetch  # (name_or_id, aggregation) -> Labelled
        self.granularity, self.start, self.stop = granularity, start, stop
        self.fill, self.needed_overlap = fill, needed_overlap
        self.checked: set = set()  # (policy, method, granularity) known to exist

    def run(self, ops) -> Labelled:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # x/0: no point, dropped
            return self._run(ops)

    def _run(self, ops) -> Labelled:
        if not isinstance(ops, list) or not ops or not isinstance(ops[0], str):
            raise errors.BadRequest(f"Invalid operations: {ops!r}")
        op, args = ops[0], ops[1:]
        if op == "metric":
            return [item for ref in references(ops) for item in self.fetch(*ref)]
        if op == "aggregate":
            method, sub = self._args(op, args, 2)
            return [(("aggregated",), self._aggregate(str(method), self.run(sub)))]
        if op == "resample":
            method, g, sub = self._args(op, args, 3)
            g = to_timespan(g, "resample granularity")
            out = []
            for label, s in self.run(sub):  # from the finest granularity the series has
                finest = [k for k in sorted(s) if k <= g][:1]
                out.append((label, {g: measures.resample_series(*s[finest[0]], g, str(method))}
                            if finest else {}))
            return out
        if op == "rolling":
            method, window, sub = self._args(op, args, 3)
            return [(label, {g: _rolling(str(method), int(window), t, v) for g, (t, v) in s.items()})
                    for label, s in self.run(sub)]
        if op in UNARY:
            (sub,) = self._args(op, args, 1)
            return [(label, {g: (t, UNARY[op](v).astype(float)) for g, (t, v) in s.items()})
                    for label, s in self._value(sub)]
        if op in BINARY:
            a, b = self._args(op, args, 2)
            return self._binary(BINARY[op], self._value(a), self._value(b))
        raise errors.BadRequest(f"Invalid operations: unknown operation '{op}'")

    @staticmethod
    def _args(op, args, n):
        if len(args) != n:
            raise errors.BadRequest(f"Invalid operations: '{op}' takes {n} arguments")
        return args

    def _value(self, x):
        return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else self.run(x)

    def _binary(self, fn, a, b) -> Labelled:
        if isinstance(a, float) and isinstance(b, float):
            raise errors.BadRequest("Invalid operations: an operation needs at least one series")
        if isinstance(a, float) or isinstance(b, float):
            series, const, left = (b, a, False) if isinstance(a, float) else (a, b, True)
            return [(label, {g: (t, (fn(v, const) if left else fn(const, v)).astype(float))
                             for g, (t, v) in s.items()}) for label, s in series]
        if len(b) == 1 and len(a) > 1:
            b = b * len(a)
        if len(a) == 1 and len(b) > 1:
            a = a * len(b)
        if len(a) != len(b):
            raise errors.BadRequest("Invalid operations: the two sides have different numbers of series")
        out = []
        for (la, sa_), (_, sb) in zip(a, b, strict=True):
            res = {}
            for g in set(sa_) & set(sb):
                (ta, va), (tb, vb) = sa_[g], sb[g]
                common, ia, ib = np.intersect1d(ta, tb, return_indices=True)
                res[g] = (common, fn(va[ia], vb[ib]).astype(float))
            out.append((la, res))
        return out

    def _fill(self, grid: np.ndarray, union: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gnocchi's rules for the timestamps some series lack (NaN in ``grid``): without
        ``fill``, the span is trimmed to where all overlap (at an open end only) and must
        overlap by ``needed_overlap`` percent, gaps left out of the aggregate; ``fill``:
        a number, ``null`` (gaps ignored), ``dropna``, ``ffill``, ``bfill``,
        ``full_ffill``, ``full_bfill``."""
        missing = np.isnan(grid)
        if not missing.any():
            return grid, union
        fill = self.fill
        if fill is None:
            full = np.flatnonzero(~missing.any(axis=0))
            if not len(full) and self.needed_overlap > 0:
                raise errors.BadRequest("Metrics can't being aggregated: No overlap", gnocchi={
                    "cause": "Metrics can't being aggregated", "reason": "No overlap", "detail": []})
            if len(full):
                last = full[-1] + 1 if self.stop is None else grid.shape[1]
                first = full[0] if self.start is None else 0
                grid, union = grid[:, first:last], union[first:last]
            percent = 100.0 * len(full) / len(union) if len(union) else 100.0
            if percent < self.needed_overlap:
                raise errors.BadRequest(
                    f"Metrics can't being aggregated: Less than {self.needed_overlap}% of datapoints "
                    f"overlap in this timespan ({percent:.2f}%)",
                    gnocchi={"cause": "Metrics can't being aggregated", "detail": []})
            return grid, union
        if fill in ("null", "dropna"):
            return grid, union
        if fill in ("ffill", "full_ffill", "full_bfill", "bfill"):
            order = {"ffill": ("f",), "bfill": ("b",), "full_ffill": ("f", "b"), "full_bfill": ("b", "f")}[fill]
            for way in order:
                grid = _forward_fill(grid) if way == "f" else _forward_fill(grid[:, ::-1])[:, ::-1]
            return grid, union
        return np.where(missing, float(fill), grid), union

    def _aggregate(self, method: str, items: Labelled) -> Series:
        if method not in AGGREGATES and not method.startswith("rate:"):
            raise errors.BadRequest(f"Invalid operations: unknown aggregation method '{method}'")
        if not items:
            return {}
        grans = set.intersection(*(set(s) for _, s in items))
        out: Series = {}
        for g in sorted(grans, reverse=True):
            parts = [s[g] for _, s in items if len(s[g][0])]
            if not parts:
                out[g] = (np.empty(0), np.empty(0))
                continue
            grid, union = _grid(parts, g)
            grid, union = self._fill(grid, union)
            rate = method.startswith("rate:")
            base = method[5:] if rate else method
            vals = _reduce_columns(base, grid)
            t = union
            if rate:
                t, vals = t[1:], np.diff(vals)
            keep = ~np.isnan(vals)
            out[g] = (t[keep], vals[keep])
        return out


def _forward_fill(grid: np.ndarray) -> np.ndarray:
    """Each row's gaps take the row's previous value (leading gaps stay)."""
    idx = np.where(np.isnan(grid), 0, np.arange(grid.shape[1]))
    np.maximum.accumulate(idx, axis=1, out=idx)
    return grid[np.arange(grid.shape[0])[:, None], idx]


def _grid(parts: list[tuple[np.ndarray, np.ndarray]], g: float) -> tuple[np.ndarray, np.ndarray]:
    """The series as rows of one matrix over the timestamps any of them has (NaN: none)."""
    t0 = parts[0][0]
    if all(t is t0 for t, _ in parts) or (all(len(t) == len(t0) for t, _ in parts)
                                         and (np.vstack([t for t, _ in parts]) == t0).all()):
        return np.vstack([v for _, v in parts]), t0  # the usual case: the same timestamps
    lo = min(float(t[0]) for t, _ in parts)
    hi = max(float(t[-1]) for t, _ in parts)
    width = int(round((hi - lo) / g)) + 1
    if width <= 4 * max(len(t) for t, _ in parts) + 1024:  # bucket times are lo + k * g: index directly
        grid = np.full((len(parts), width), np.nan)
        for i, (t, v) in enumerate(parts):
            grid[i, np.rint((t - lo) / g).astype(np.int64)] = v
        filled = ~np.isnan(grid).all(axis=0)
        return grid[:, filled], (lo + np.arange(width) * g)[filled]
    union = np.unique(np.concatenate([t for t, _ in parts]))
    grid = np.full((len(parts), len(union)), np.nan)
    for i, (t, v) in enumerate(parts):
        grid[i, np.searchsorted(union, t)] = v
    return grid, union


# the usual grid has no gap: plain reductions, several times cheaper than numpy's nan* ones
_DENSE = {"mean": lambda g: g.mean(axis=0), "sum": lambda g: g.sum(axis=0),
          "count": lambda g: np.full(g.shape[1], float(g.shape[0])), "min": lambda g: g.min(axis=0),
          "max": lambda g: g.max(axis=0), "median": lambda g: np.median(g, axis=0),
          "std": lambda g: g.std(axis=0, ddof=1), "first": lambda g: g[0].copy(), "last": lambda g: g[-1].copy()}


def _reduce_columns(method: str, grid: np.ndarray) -> np.ndarray:
    # numpy warns on an all-NaN column (or a std of one series): such a column has no value
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if not np.isnan(grid).any():
            return _DENSE[method](grid)
        if method == "mean":
            return np.nanmean(grid, axis=0)
        if method == "sum":
            return np.nansum(grid, axis=0)
        if method == "count":
            return (~np.isnan(grid)).sum(axis=0).astype(float)
        if method == "min":
            return np.nanmin(grid, axis=0)
        if method == "max":
            return np.nanmax(grid, axis=0)
        if method == "median":
            return np.nanmedian(grid, axis=0)
        if method == "std":
            return np.nanstd(grid, axis=0, ddof=1)
        has = ~np.isnan(grid)  # first/last: of the series that have a value there
        cols = np.arange(grid.shape[1])
        if method == "first":
            return grid[has.argmax(axis=0), cols]
        return grid[grid.shape[0] - 1 - has[::-1].argmax(axis=0), cols]  # last


def _rolling(method: str, window: int, t: np.ndarray, v: np.ndarray):
    if window < 1:
        raise errors.BadRequest("Invalid operations: rolling window must be at least 1")
    if len(v) < window:
        return np.empty(0), np.empty(0)
    windows = np.lib.stride_tricks.sliding_window_view(v, window)
    fn = {"mean": np.mean, "sum": np.sum, "min": np.min, "max": np.max, "median": np.median,
          "std": lambda a, axis: np.std(a, axis=axis, ddof=1)}.get(method)
    if fn is None:
        raise errors.BadRequest(f"Invalid operations: rolling {method} is not supported")
    return t[window - 1:], fn(windows, axis=1).astype(float)


def _series_of(metric_id: str, policy, method, ev: Evaluator) -> Series:
    try:
        out = measures.read(metric_id, policy, method, ev.granularity, ev.start, ev.stop, ev.checked)
    except errors.NotFound:
        if ev.granularity is not None:
            return {}
        raise
    return {g: (t, v) for g, t, v in out}


def render(items: Labelled) -> dict:
    """Labels (metric id, agg) / (resource id, name, agg) / ("aggregated",) -> Gnocchi's nesting."""
    out: dict = {}
    for label, s in items:
        rows = measures.render([(g, *s[g]) for g in sorted(s, reverse=True)])
        if len(s) > 1:  # each granularity's points are in time order already
            rows.sort(key=lambda r: (r[0], -r[1]))
        if label == ("aggregated",):
            out["aggregated"] = rows
            continue
        node = out
        for part in label[:-1]:
            node = node.setdefault(part, {})
        node[label[-1]] = rows
    return out


def _options(params: dict) -> dict:
    fill = params.get("fill")
    if fill is None and "needed_overlap" not in params:
        fill = "dropna"  # Gnocchi's /v1/aggregates default: aggregate what points there are
    if fill is not None and fill not in FILLS:
        try:
            fill = float(fill)
        except ValueError:
            raise errors.BadRequest(f"Invalid input: fill must be a number or one of {', '.join(FILLS)}, "
                                    f"not {fill!r}") from None
    try:
        overlap = float(params.get("needed_overlap", 100))
    except ValueError:
        raise errors.BadRequest("Invalid input: needed_overlap must be a number") from None
    g = params.get("granularity")
    return {"granularity": to_timespan(g, "granularity") if g is not None else None,
            "start": to_epoch(params["start"], "start") if params.get("start") is not None else None,
            "stop": to_epoch(params["stop"], "stop") if params.get("stop") is not None else None,
            "fill": fill, "needed_overlap": overlap}


def aggregates(ctx, body: dict, params: dict, groupby: list[str], details: bool):
    if not isinstance(body, dict) or "operations" not in body:
        raise errors.BadRequest("Invalid input: required key not provided @ data['operations']")
    ops = parse(body["operations"])
    opts = _options(params)
    refs = references(ops)
    if not refs:
        raise errors.BadRequest("Invalid operations: no metric referenced")
    if "resource_type" not in body:
        if groupby:
            raise errors.BadRequest("Invalid input: groupby needs a resource search")
        return _by_metric_ids(ctx, ops, refs, opts, details)
    rtype = body["resource_type"]
    search = body.get("search")
    q = query.parse_filter(search) if isinstance(search, str) else search
    resources = indexer.search_resources(ctx, rtype, q, details=True)
    if not groupby:
        result = _by_resources(ctx, ops, refs, opts, details, resources)
        result.pop("_used")
        return result
    groups: dict[tuple, list[dict]] = {}
    for r in resources:
        groups.setdefault(tuple(r.get(k) for k in groupby), []).append(r)
    answer = []
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        part = _by_resources(ctx, ops, refs, opts, details, groups[key])
        if part.pop("_used"):  # a group none of whose resources has the metrics is left out
            answer.append({"group": dict(zip(groupby, key, strict=True)), "measures": part})
    return answer


def _by_metric_ids(ctx, ops, refs, opts, details):
    found, unknown = indexer.metrics_by_ids(ctx, [m for m, _ in refs])
    if unknown:
        raise errors.NotFound(f"Metric {unknown[0]} does not exist")
    ev = Evaluator(None, **opts)

    def fetch(mid, agg):
        m, p = found[mid]
        return [((mid, agg), _series_of(m.id, p, agg, ev))]

    ev.fetch = fetch
    result = {"measures": render(ev.run(ops))}
    if details:
        result["references"] = [indexer.metric_doc(m, p) for m, p in found.values()]
    return result


def _by_resources(ctx, ops, refs, opts, details, resources):
    ev = Evaluator(None, **opts)
    used: dict[str, dict] = {}
    wanted = [r["metrics"][n] for r in resources for n in r["metrics"]
              if any(fnmatch.fnmatchcase(n, name) for name, _ in refs)]
    policy_of = indexer.metric_policies(wanted)  # one query for all of them

    def fetch(name, agg):
        items = []
        for r in resources:
            names = [n for n in r["metrics"] if fnmatch.fnmatchcase(n, name)] if any(
                c in name for c in "*?[") else [name]
            for n in names:
                if r["metrics"].get(n) not in policy_of:  # (or deleted since the search)
                    items.append(((r["id"], n, agg), {}))
                    continue
                mid = r["metrics"][n]
                used[r["id"]] = r
                items.append(((r["id"], n, agg), _series_of(mid, policy_of[mid], agg, ev)))
        return items

    ev.fetch = fetch
    items = ev.run(ops)
    if ops[0] == "aggregate" or any(label == ("aggregated",) for label, _ in items):
        items = [(label, s) for label, s in items if s or label == ("aggregated",)]
    result = {"measures": render(items), "_used": bool(used)}
    if details:
        result["references"] = list(used.values())
    return result
