"""The metric service's pieces in-process: write-time aggregation and retention
(carbonara), the query language, timespans, and the bus ingest (contract 1 of the
telemetry brief) read back through the HTTP API (Starlette's test client)."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from onestack import config
from onestack.common import auth, bus, db, errors
from onestack.metric import aggregates, query, service
from onestack.metric.api import v1
from onestack.metric.storage import FileDriver, Store
from onestack.metric.timeutil import iso, isos, to_timespan
from tests.cloud import wait_for

T0 = 1425652437.0  # 2015-03-06T14:33:57Z


def test_buckets_and_methods(tmp_path):
    store = Store(FileDriver(tmp_path))
    d = [{"granularity": 300.0, "points": 10}, {"granularity": 1.0, "points": 3600}]
    store.add("m", d, np.array([T0 + 15, T0]), np.array([12.0, 43.1]))  # out of order on purpose
    store.add("m", d, np.array([T0 + 20]), np.array([5.0]))  # merges into the same 300 s bucket

    def one(method, g=300.0):
        ((_, t, v),) = store.series("m", d, method, g)
        return list(t), list(v)

    assert one("mean") == ([T0 - 237], [pytest.approx(20.0333, abs=1e-3)])
    assert one("count")[1] == [3.0] and one("sum")[1] == [pytest.approx(60.1)]
    assert one("min")[1] == [5.0] and one("max")[1] == [43.1]
    assert one("first")[1] == [43.1] and one("last")[1] == [5.0]
    assert one("std")[1] == [pytest.approx(np.std([12.0, 43.1, 5.0], ddof=1))]
    assert one("mean", 1.0)[1] == [43.1, 12.0, 5.0]
    assert one("rate:mean", 1.0)[1] == [pytest.approx(-31.1), pytest.approx(-7.0)]


def test_retention_drops_old_points_and_splits(tmp_path):
    store = Store(FileDriver(tmp_path))
    d = [{"granularity": 1.0, "points": 10}]
    store.add("m", d, np.arange(T0, T0 + 5000), np.ones(5000))
    ((_, t, _),) = store.series("m", d, "count")
    assert len(t) == 10 and t[-1] == T0 + 4999
    # the splits wholly older than the retention are gone from the store
    assert len(store.driver.keys("m")) <= 2
    # a measure older than the retention is not kept
    store.add("m", d, np.array([T0]), np.array([1.0]))
    ((_, t, _),) = store.series("m", d, "count")
    assert t[0] == T0 + 4990


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20000), st.floats(-1e6, 1e6)), min_size=1, max_size=200),
       st.integers(1, 5))
def test_any_batching_gives_the_same_series(tmp_path_factory, points, parts):
    """Measures merged in several batches aggregate as if sent at once."""
    d = [{"granularity": 60.0, "points": 1000}]
    ts = np.array([T0 + p[0] for p in points], dtype=float)
    vs = np.array([p[1] for p in points])
    once, split = (Store(FileDriver(tmp_path_factory.mktemp("s"))) for _ in range(2))
    once.add("m", d, ts, vs)
    for chunk in np.array_split(np.arange(len(ts)), parts):
        split.add("m", d, ts[chunk], vs[chunk])
    for method in ("mean", "min", "max", "count", "sum"):
        ((_, t1, v1),) = once.series("m", d, method)
        ((_, t2, v2),) = split.series("m", d, method)
        assert list(t1) == list(t2)
        assert np.allclose(v1, v2)


def test_query_string_form():
    q = query.parse_filter("project_id='p1' and (started_at >= '2015-01-01' or not name like 'web%') "
                           "and id in ['a', 'b']")
    assert q == {"and": [{"=": {"project_id": "p1"}},
                         {"or": [{">=": {"started_at": "2015-01-01"}}, {"not": {"like": {"name": "web%"}}}]},
                         {"in": {"id": ["a", "b"]}}]}
    pred = query.compile_json(q)
    assert pred({"project_id": "p1", "started_at": "2014-01-01T00:00:00+00:00", "name": "db1", "id": "a"})
    assert not pred({"project_id": "p1", "started_at": "2014-01-01T00:00:00+00:00", "name": "web1", "id": "a"})
    assert query.compile_json(query.parse_filter("size > 3"))({"size": 4})
    with pytest.raises(errors.BadRequest):
        query.parse_filter("name ~ 'x'")
    with pytest.raises(errors.BadRequest):
        query.compile_json({"bogus": {"a": 1}})


def test_timespans():
    assert to_timespan("1 minute") == 60 and to_timespan("1h") == 3600 and to_timespan(300) == 300
    assert to_timespan("7 days, 0:00:00") == 7 * 86400 and to_timespan("0:05:00") == 300
    for bad in ("soon", -1, "0", True):
        with pytest.raises(errors.BadRequest):
            to_timespan(bad)


@pytest.fixture
def metric_app(tmp_path):
    """The metric service in this process: SQLite in tmp_path, the in-process bus, and
    tokens ``admin``/``p1``/``p2`` that the (stubbed) identity accepts."""
    (tmp_path / "none.toml").write_text("")
    conf = config.load(tmp_path / "none.toml", env={"ONESTACK_STATE_DIR": str(tmp_path)})
    db.configure(f"sqlite:///{tmp_path / 'metric.db'}")
    b = bus.configure("inprocess")
    service.setup(conf)
    service.start(conf)

    def validator(token: str) -> dict:
        if token not in ("admin", "p1", "p2"):
            raise errors.Unauthorized("bad token")
        roles = [{"id": "r1", "name": "admin" if token == "admin" else "member"}]
        return {"token": {"user": {"id": f"u-{token}", "name": token, "domain": {"id": "default"}},
                          "project": {"id": token, "name": token, "domain": {"id": "default"}},
                          "roles": roles, "expires_at": "2999-01-01T00:00:00Z"}}

    auth.set_validator(validator, cache_seconds=0)
    with TestClient(service.app()) as client:
        yield client, b
    b.close()


def test_bus_ingest_makes_resources_and_measures(metric_app):
    client, b = metric_app
    server = "0b0c3d2e-6f00-4c6a-9e55-0d3a4f3a9f11"
    batch = [
        {"resource_id": server, "resource_type": "instance", "project_id": "p1", "user_id": "u1",
         "attributes": {"display_name": "vm1", "flavor_name": "m1.tiny", "unknown": "dropped"},
         "metrics": {"cpu": {"unit": "ns", "measures": [["2015-03-06T14:33:57Z", 1e9], ["2015-03-06T14:34:57Z", 2e9]]},
                     "memory.usage": {"unit": "MB", "measures": [["2015-03-06T14:33:57+00:00", 100.0]]}}},
        {"resource_id": f"{server}-vda", "resource_type": "instance_disk", "project_id": "p1",
         "attributes": {"name": "vda", "instance_id": server},
         "metrics": {"disk.device.read.bytes": {"unit": "B", "measures": [["2015-03-06T14:33:57Z", 5.0]]}}},
        {"resource_id": "x", "resource_type": "no_such_type", "metrics": {}},  # skipped, logged
        "not an item",
    ]
    b.cast_sync("metric.ingest", "add_measures", batch=batch)
    h = {"X-Auth-Token": "p1"}

    def measures():
        r = client.get(f"/v1/resource/instance/{server}/metric/cpu/measures?granularity=60", headers=h)
        return r.json() if r.status_code == 200 and r.json() else None

    rows = wait_for(measures, what="the ingested cpu measures")
    assert rows == [["2015-03-06T14:33:00+00:00", 60.0, 1e9], ["2015-03-06T14:34:00+00:00", 60.0, 2e9]]
    res = client.get(f"/v1/resource/instance/{server}", headers=h).json()
    assert res["display_name"] == "vm1" and set(res["metrics"]) == {"cpu", "memory.usage"}
    assert "unknown" not in res
    # a non-UUID id becomes Gnocchi's uuid5, the given one kept as original_resource_id
    disk = wait_for(lambda: client.get(f"/v1/resource/instance_disk/{server}-vda/metric/"
                                       "disk.device.read.bytes/measures", headers=h).json() and
                    client.get(f"/v1/resource/instance_disk/{server}-vda", headers=h).json(),
                    what="the ingested disk (the batch's second item)")
    assert disk["original_resource_id"] == f"{server}-vda" and disk["id"] != f"{server}-vda"
    metric = client.get(f"/v1/metric/{res['metrics']['cpu']}", headers=h).json()
    assert metric["archive_policy"]["name"] == "medium" and metric["unit"] == "ns"

    # a changed attribute is a new revision; the old one is in the history
    b.cast_sync("metric.ingest", "add_measures", batch=[
        {"resource_id": server, "resource_type": "instance", "project_id": "p1",
         "attributes": {"display_name": "vm1-renamed"}, "metrics": {}}])
    wait_for(lambda: len(client.get(f"/v1/resource/instance/{server}/history", headers=h).json()) == 2,
             what="the history of the renamed instance")

    # another project sees nothing of it; the admin does
    other = {"X-Auth-Token": "p2"}
    assert client.get(f"/v1/resource/instance/{server}", headers=other).status_code == 404
    assert client.get(f"/v1/metric/{res['metrics']['cpu']}/measures", headers=other).status_code == 404
    assert client.get("/v1/resource/generic", headers=other).json() == []
    assert client.post("/v1/search/resource/instance", headers=other, json={"=": {"id": server}}).json() == []
    assert len(client.get("/v1/resource/generic", headers={"X-Auth-Token": "admin"}).json()) == 2


def test_notifications_make_and_end_resources(metric_app):
    client, b = metric_app
    vm = "7a7a3d2e-6f00-4c6a-9e55-0d3a4f3a9f22"
    payload = {"instance_id": vm, "project_id": "p1", "user_id": "u1", "display_name": "web",
               "flavor_id": "1", "flavor_name": "m1.tiny", "vcpus": 1, "memory_mb": 512, "image_ref": "img",
               "host": "h1", "state": "active", "created_at": "2026-01-01T00:00:00Z", "deleted_at": None}
    b.notify("compute.instance.create.end", payload, publisher="compute")
    h = {"X-Auth-Token": "p1"}
    res = client.get(f"/v1/resource/instance/{vm}", headers=h).json()
    assert res["host"] == "h1" and {"vcpus", "memory"} <= set(res["metrics"])
    b.notify("compute.instance.update", {**payload, "host": "h2"}, publisher="compute")
    assert client.get(f"/v1/resource/instance/{vm}", headers=h).json()["host"] == "h2"
    b.notify("compute.instance.delete.end", payload, publisher="compute")
    assert client.get(f"/v1/resource/instance/{vm}", headers=h).json()["ended_at"] is not None

    vol = "8b8b3d2e-6f00-4c6a-9e55-0d3a4f3a9f33"
    b.notify("volume.create.end", {"volume_id": vol, "project_id": "p1", "user_id": "u1", "display_name": "v",
                                   "size": 2, "volume_type": "lvm", "created_at": None}, publisher="volume")
    r = client.get(f"/v1/resource/volume/{vol}/metric/volume.size/measures", headers=h).json()
    assert r and r[-1][2] == 2.0
    b.notify("network.floatingip.create", {"id": "9c9c3d2e-6f00-4c6a-9e55-0d3a4f3a9f44", "kind": "floatingip",
                                            "action": "create"}, publisher="network")
    fip = client.get("/v1/resource/generic/9c9c3d2e-6f00-4c6a-9e55-0d3a4f3a9f44",
                     headers={"X-Auth-Token": "admin"}).json()
    assert "ip.floating" in fip["metrics"]
    # a payload missing what it needs is logged, not raised
    b.notify("volume.create.end", {"project_id": "p1"}, publisher="volume")


@pytest.mark.parametrize("method, path, kw, status, words", [
    ("POST", "/v1/resource/generic", {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
     400, "Malformed JSON"),
    ("POST", "/v1/resource/generic", {"content": b"<x/>", "headers": {"Content-Type": "application/xml"}},
     415, "Content-Type"),
    ("POST", "/v1/resource/generic", {"json": ["a list"]}, 400, "must be an object"),
    ("POST", "/v1/resource/generic", {"json": {"id": 5}}, 400, "invalid resource id"),
    ("POST", "/v1/resource/generic", {"json": {"id": "x", "started_at": "yesterday-ish"}}, 400, "started_at"),
    ("POST", "/v1/resource/generic", {"json": {"id": "x", "color": "red"}}, 400, "extra keys"),
    ("POST", "/v1/resource/nosuchtype", {"json": {"id": "x"}}, 404, "Resource type nosuchtype"),
    ("POST", "/v1/search/resource/generic", {"json": {"~": {"id": "x"}}}, 400, "unknown query operator"),
    ("POST", "/v1/search/resource/generic?filter=id%20~%20'x'", {}, 400, "Invalid filter"),
    ("POST", "/v1/metric", {"json": {"archive_policy_name": "nope"}}, 400, "nope does not exist"),
    ("POST", "/v1/archive_policy", {"json": {"name": "x", "definition": []}}, 400, "at least 1"),
    ("POST", "/v1/archive_policy", {"json": {"name": "x", "definition": [{"granularity": "soon",
                                                                           "points": 3}]}}, 400, "granularity"),
    ("POST", "/v1/archive_policy", {"json": {"name": "x", "definition": [{"points": 3}]}}, 400, "at least two"),
    ("POST", "/v1/archive_policy", {"json": {"name": "x", "definition": [{"granularity": 1, "points": 3}],
                                              "aggregation_methods": ["95pct"]}}, 400, "not supported"),
    ("POST", "/v1/aggregates", {"json": {"operations": "(aggregate mean"}}, 400, "Invalid operations"),
    ("POST", "/v1/aggregates", {"json": {"operations": "(metric)"}}, 400, "no metric"),
    ("POST", "/v1/aggregates", {"json": {"operations": "(frobnicate 1 (metric a mean))",
                                         "resource_type": "generic"}}, 400, "unknown operation"),
    ("POST", "/v1/aggregates", {"json": {}}, 400, "operations"),
    ("POST", "/v1/batch/metrics/measures", {"json": [1, 2]}, 400, "metric id"),
    ("GET", "/v1/resource/generic?limit=-1", {}, 400, "limit"),
    ("GET", "/v1/resource/generic?details=perhaps", {}, 400, "details"),
    ("GET", "/v1/metric/not-a-uuid/measures", {}, 404, "does not exist"),
    ("DELETE", "/v1/resource/generic", {}, 400, "needs a query"),
])
def test_bad_input_is_a_gnocchi_error(metric_app, method, path, kw, status, words):
    client, _ = metric_app
    before = client.get("/v1/resource/generic", headers={"X-Auth-Token": "admin"}).json()
    r = client.request(method, path, headers={"X-Auth-Token": "admin", **kw.pop("headers", {})}, **kw)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == status and body["title"]
    assert words.lower() in json.dumps(body["description"]).lower(), body
    assert client.get("/v1/resource/generic", headers={"X-Auth-Token": "admin"}).json() == before


def test_measures_must_be_finite_numbers(metric_app):
    client, _ = metric_app
    h = {"X-Auth-Token": "p1"}
    m = client.post("/v1/metric", headers=h, json={"archive_policy_name": "low"}).json()
    for bad in ([{"timestamp": "2015-01-01", "value": "1"}], [{"timestamp": "2015-01-01"}],
                [{"timestamp": "not a time", "value": 1}], {"timestamp": "2015-01-01", "value": 1}):
        r = client.post(f"/v1/metric/{m['id']}/measures", headers=h, json=bad)
        assert r.status_code == 400, (bad, r.text)
    r = client.post(f"/v1/metric/{m['id']}/measures", headers={**h, "Content-Type": "application/json"},
                    content=b'[{"timestamp": "2015-01-01", "value": NaN}]')
    assert r.status_code == 400 and "finite" in r.json()["description"]
    assert client.get(f"/v1/metric/{m['id']}/measures", headers=h).json() == []
    # and a division by zero in an aggregate is no point, never "Infinity" on the wire
    client.post(f"/v1/metric/{m['id']}/measures", headers=h,
                json=[{"timestamp": "2015-01-01T00:00:00", "value": 0}])
    r = client.post("/v1/aggregates", headers=h, json={"operations": f"(/ 1 (metric {m['id']} mean))"})
    assert r.status_code == 200 and r.json()["measures"][m["id"]]["mean"] == []


def test_aggregate_overlap_and_fill(metric_app):
    """Gnocchi's rules: without fill the span is trimmed to the overlap at open ends and
    must overlap by needed_overlap percent; fill= fills the gaps (a number, ffill, ...)."""
    client, _ = metric_app
    h = {"X-Auth-Token": "p1"}
    a, b = (client.post("/v1/metric", headers=h, json={"archive_policy_name": "high"}).json()["id"]
            for _ in range(2))
    for mid, secs, base in ((a, (0, 1, 2), 10.0), (b, (1, 2, 3), 20.0)):
        client.post(f"/v1/metric/{mid}/measures", headers=h,
                    json=[{"timestamp": f"2015-03-06T14:00:0{s}", "value": base + s} for s in secs])
    ops = {"operations": f"(aggregate mean (metric ({a} mean) ({b} mean)))"}

    def agg(**params):
        r = client.post("/v1/aggregates", headers=h, json=ops, params={"granularity": 1, **params})
        return r.status_code, r.json()

    # neither fill nor needed_overlap: Gnocchi's fill=dropna, what points there are, never "No overlap"
    bounds = {"start": "2015-03-06T14:00:00", "stop": "2015-03-06T14:00:10"}
    for params in ({}, bounds):
        status, body = agg(**params)
        assert status == 200
        assert [p[2] for p in body["measures"]["aggregated"]] == [10.0, 16.0, 17.0, 23.0]
    status, body = agg(needed_overlap=100)
    assert [p[2] for p in body["measures"]["aggregated"]] == [(11 + 21) / 2, (12 + 22) / 2]
    status, body = agg(**bounds, needed_overlap=100)
    assert status == 400 and "overlap" in json.dumps(body)
    status, body = agg(**bounds, needed_overlap=0)
    assert [p[2] for p in body["measures"]["aggregated"]] == [10.0, 16.0, 17.0, 23.0]
    status, body = agg(**bounds, fill=0)
    assert [p[2] for p in body["measures"]["aggregated"]] == [5.0, 16.0, 17.0, 11.5]
    status, body = agg(**bounds, fill="ffill")
    assert [p[2] for p in body["measures"]["aggregated"]] == [10.0, 16.0, 17.0, 17.5]
    status, body = agg(fill="bogus")
    assert status == 400 and "fill" in body["description"]


def test_many_times_render_as_one_by_one():
    """The answer's points are formatted at once (``isos``), exactly as ``iso`` one by one,
    whole seconds or not."""
    for ts in (T0 + np.arange(0, 86400 * 3, 60.0), np.array([T0, T0 + 0.25, T0 + 1.5]), np.array([]),
               np.array([0.0, -86400.0])):
        assert isos(ts) == [iso(float(t)) for t in ts]
    assert isos(np.array([T0]))[0] == "2015-03-06T14:33:57+00:00"


@pytest.mark.parametrize("method", ["mean", "sum", "count", "min", "max", "median", "std", "first", "last"])
def test_aggregate_of_a_full_grid_as_with_gaps(method):
    """A grid without gaps takes the plain reductions: the same values as the NaN-aware
    ones (a std of one series is no value either way)."""
    rng = np.random.default_rng(3)
    for grid in (rng.random((50, 30)) * 100, rng.random((1, 30))):
        gapped = np.vstack([grid, np.full(grid.shape[1], np.nan)])  # the NaN path, same values
        dense, nan_aware = aggregates._reduce_columns(method, grid), aggregates._reduce_columns(method, gapped)
        np.testing.assert_allclose(dense, nan_aware, rtol=1e-12, equal_nan=True)


def test_full_splits_share_their_times(tmp_path):
    """Every full split of a granularity has the same bucket times: one read-only array."""
    store = Store(FileDriver(tmp_path))
    d = [{"granularity": 60.0, "points": 1440}]
    day = T0 - T0 % 86400
    for m in ("a", "b"):
        store.add(m, d, day + np.arange(1440) * 60.0, np.arange(1440.0))
    (_, ta, va), (_, tb, _) = (store.series(m, d, "mean", 60.0, day, day + 86400)[0] for m in ("a", "b"))
    assert ta is tb and not ta.flags.writeable
    assert list(ta) == list(day + np.arange(1440) * 60.0) and list(va) == list(np.arange(1440.0))


def test_lists_page_with_link_headers(metric_app, monkeypatch):
    """As Gnocchi: a list answers at most max_limit items (``limit`` is clamped to it), and a
    full page has ``Link: <...marker=<last id>>; rel="next"``, which gnocchiclient follows
    (here as it does, through the response's links) to read the whole list."""
    client, _ = metric_app
    monkeypatch.setattr(v1, "MAX_LIMIT", 2)
    h = {"X-Auth-Token": "p1"}
    ids = sorted(client.post("/v1/resource/generic", headers=h, json={
        "id": str(uuid.uuid4()), "user_id": "pager", "metrics": {"m": {"archive_policy_name": "low"}}}).json()["id"]
        for _ in range(5))

    def read_all(method, url, **kw):
        got, pages = [], 0
        while url:
            r = client.request(method, url, headers=h, **kw)
            assert r.status_code == 200, r.text
            got += r.json()
            pages += 1
            url = r.links.get("next", {}).get("url")
        return got, pages

    got, pages = read_all("GET", "/v1/resource/generic?sort=id:asc")
    assert [r["id"] for r in got] == ids and pages == 3
    r = client.get("/v1/resource/generic", headers=h, params={"sort": "id:asc", "limit": 50})
    assert len(r.json()) == 2 and "marker=" + ids[1] in r.headers["link"] and "limit=2" in r.headers["link"]
    got, _ = read_all("POST", "/v1/search/resource/generic?sort=id:asc", json={"=": {"user_id": "pager"}})
    assert [r["id"] for r in got] == ids
    got, _ = read_all("GET", "/v1/metric")
    assert len({m["id"] for m in got}) == 5
    # the last page (not full) and a history list (revisions share an id: no marker) link nowhere
    assert "link" not in client.get("/v1/resource/generic", headers=h,
                                        params={"sort": "id:asc", "marker": ids[3]}).headers
    r = client.get("/v1/resource/generic", headers=h, params={"history": "true"})
    assert len(r.json()) == 5 and "link" not in r.headers
