"""The metric service (Gnocchi v1) through the real `openstack metric ...` CLI (gnocchiclient):
archive policies and rules, resource types, resources with history and search, metrics,
measures with aggregation/granularity/start/stop, batches, aggregates, the bus ingest and
lifecycle notifications, project isolation. A representative part runs on both storage
drivers (file and swift)."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from tests import requirements
from tests.cloud import Cloud, Postgres, wait_for

T0 = "2015-03-06T14:33:57"


@pytest.fixture(scope="module", params=["file", pytest.param("swift", marks=pytest.mark.postgres)])
def cloud(request):
    """The all-in-one default (file store, SQLite), and the scale-out shape of Gnocchi:
    points in the object store (swift), the index in PostgreSQL."""
    pg = None
    if request.param == "swift":
        try:
            pg = Postgres().start()
        except FileNotFoundError as e:
            requirements.missing(str(e))
    c = Cloud(f"metric-{request.param}", database_url=pg.url if pg else "",
              extra_env={"ONESTACK_METRIC_STORAGE": request.param})
    try:
        yield c.start()
    finally:
        c.stop()
        if pg:
            pg.stop()


def om(cloud: Cloud, *args: str, user: str = "admin", env=None):
    """`openstack metric ARGS -f json`, parsed."""
    r = cloud.openstack("metric", *args, "-f", "json", user=user, env=env)
    return json.loads(r.stdout) if r.stdout.strip() else None


def ok(cloud: Cloud, *args: str, user: str = "admin", env=None) -> None:
    """`openstack metric ARGS` of a command that prints nothing (delete, measures add)."""
    cloud.openstack("metric", *args, user=user, env=env)


def fails(cloud: Cloud, *args: str, user: str = "admin", env=None) -> str:
    r = cloud.openstack("metric", *args, user=user, env=env, check=False)
    assert r.returncode != 0, r.stdout
    return r.stderr


def test_archive_policies_and_rules(cloud):
    names = {p["name"] for p in om(cloud, "archive-policy", "list")}
    assert {"low", "medium", "high", "bool"} <= names
    medium = om(cloud, "archive-policy", "show", "medium")
    assert "0:01:00" in str(medium["definition"]) and "7 days" in str(medium["definition"])
    name = f"ap-{uuid.uuid4().hex[:6]}"
    made = om(cloud, "archive-policy", "create", name, "-d", "granularity:1s,points:60",
              "-d", "granularity:1m,timespan:1h", "-m", "mean", "-m", "max", "-m", "rate:mean")
    assert made["name"] == name
    assert "Archive policy" in fails(cloud, "archive-policy", "create", name, "-d", "granularity:1s,points:60")
    # only an admin manages them
    assert fails(cloud, "archive-policy", "create", name + "x", "-d", "points:5,granularity:1s", user="demo")
    om(cloud, "archive-policy", "update", name, "-d", "granularity:1s,points:120",
       "-d", "granularity:1m,timespan:2h")
    assert "0:02:00" in str(om(cloud, "archive-policy", "show", name)["definition"])

    rule = f"r-{uuid.uuid4().hex[:6]}"
    om(cloud, "archive-policy-rule", "create", rule, "--archive-policy-name", name,
       "--metric-pattern", "disk.io.*")
    rules = om(cloud, "archive-policy-rule", "list")
    assert any(r["name"] == rule for r in rules) and any(r["name"] == "default" for r in rules)
    # the most specific pattern wins; anything else gets the default (medium)
    m1 = om(cloud, "create", "disk.io.rate")
    m2 = om(cloud, "create", "other")
    assert m1["archive_policy/name"] == name and m2["archive_policy/name"] == "medium"
    # a policy in use cannot be deleted
    assert "in use" in fails(cloud, "archive-policy", "delete", name)
    ok(cloud, "delete", m1["id"])
    ok(cloud, "archive-policy-rule", "delete", rule)
    ok(cloud, "archive-policy", "delete", name)
    assert "does not exist" in fails(cloud, "archive-policy", "show", name)


def test_resource_types(cloud):
    types = {t["name"]: t for t in om(cloud, "resource-type", "list")}
    for name in ("instance", "instance_disk", "instance_network_interface", "volume", "image", "network",
                 "swift_account", "generic"):
        assert name in types
    assert "flavor_name" in str(types["instance"]["attributes"])
    name = f"rt_{uuid.uuid4().hex[:6]}"
    om(cloud, "resource-type", "create", name, "-a", "color:string:true:max_length=16")
    om(cloud, "resource-type", "update", name, "-a", "size:number:false")
    assert "size" in str(om(cloud, "resource-type", "show", name))
    rid = str(uuid.uuid4())
    r = om(cloud, "resource", "create", rid, "--type", name, "-a", "color:red")
    assert r["color"] == "red"
    assert "still in use" in fails(cloud, "resource-type", "delete", name)
    ok(cloud, "resource", "delete", rid)
    ok(cloud, "resource-type", "delete", name)


def test_resource_type_names_as_gnocchi_takes_them(cloud):
    """Any name but an empty one or one with "/" (a dash, as in telemetry-tempest-plugin's
    "instance-like", is fine): it was a 400."""
    name = f"rt-like-{uuid.uuid4().hex[:6]}"
    om(cloud, "resource-type", "create", name, "-a", "display_name:string:true")
    rid = str(uuid.uuid4())
    assert om(cloud, "resource", "create", rid, "--type", name, "-a", "display_name:vm")["type"] == name
    assert [r["id"] for r in om(cloud, "resource", "search", "--type", name, f"id='{rid}'")] == [rid]
    ok(cloud, "resource", "delete", rid)
    ok(cloud, "resource-type", "delete", name)
    assert "invalid @ data['name']" in fails(cloud, "resource-type", "create", "a/b")


def test_resources_metrics_measures(cloud):
    rid = str(uuid.uuid4())
    r = om(cloud, "resource", "create", rid, "--type", "instance", "-a", "display_name:vm1",
           "-a", "flavor_name:m1.tiny", "-n", "cpu_util:low", user="demo")
    assert r["type"] == "instance" and r["display_name"] == "vm1"
    m = om(cloud, "show", "--resource-id", rid, "cpu_util", user="demo")
    assert m["archive_policy/name"] == "low"
    ok(cloud, "measures", "add", "--resource-id", rid, "cpu_util", "-m", f"{T0}@43.1",
       "-m", "2015-03-06T14:34:12@12", user="demo")
    rows = om(cloud, "measures", "show", "--resource-id", rid, "cpu_util", "--utc", user="demo")
    assert [(x["granularity"], x["value"]) for x in rows] == [(300.0, 27.55)]
    rows = om(cloud, "measures", "show", "--resource-id", rid, "cpu_util", "--aggregation", "max",
              "--utc", user="demo")
    assert rows[0]["value"] == 43.1
    rows = om(cloud, "measures", "show", "--resource-id", rid, "cpu_util", "--aggregation", "count",
              "--granularity", "300", "--start", "2015-03-06T14:30:00", "--stop", "2015-03-06T14:40:00",
              "--utc", user="demo")
    assert rows[0]["value"] == 2.0 and rows[0]["timestamp"].startswith("2015-03-06T14:30:00")
    assert om(cloud, "measures", "show", "--resource-id", rid, "cpu_util", "--start",
              "2015-03-06T14:40:00", user="demo") == []
    assert "Granularity" in fails(cloud, "measures", "show", "--resource-id", rid, "cpu_util",
                                  "--granularity", "61", user="demo")
    # resample: two five-minute points in one hour
    ok(cloud, "measures", "add", "--resource-id", rid, "cpu_util", "-m", "2015-03-06T14:41:00@2",
       user="demo")
    rows = om(cloud, "measures", "show", "--resource-id", rid, "cpu_util", "--granularity", "300",
              "--resample", "3600", "--aggregation", "max", "--utc", user="demo")
    assert [(x["granularity"], x["value"]) for x in rows] == [(3600.0, 43.1)]

    # update: the former revision is in the history; metrics added and removed
    om(cloud, "resource", "update", rid, "--type", "instance", "-a", "display_name:vm2",
       "--create-metric", "extra:low", user="demo")
    assert set(om(cloud, "resource", "show", "--type", "instance", rid, user="demo")["metrics"]) == \
        {"cpu_util", "extra"}
    om(cloud, "resource", "update", rid, "--type", "instance", "--delete-metric", "extra", user="demo")
    assert set(om(cloud, "resource", "show", "--type", "instance", rid, user="demo")["metrics"]) == {"cpu_util"}
    assert [x["value"] for x in om(cloud, "measures", "show", "--resource-id", rid, "cpu_util",
                                   user="demo")] == [27.55, 2.0]
    hist = om(cloud, "resource", "history", "--type", "instance", rid, user="demo")
    assert [h["display_name"] for h in hist] == ["vm1", "vm2"]
    # search in the string form gnocchiclient sends
    found = om(cloud, "resource", "search", "--type", "instance", "display_name='vm2' and flavor_name like 'm1%'",
               user="demo")
    assert [x["id"] for x in found] == [rid]
    assert om(cloud, "resource", "search", "--type", "instance", f"id='{rid}' and not display_name='vm2'",
              user="demo") == []
    listed = om(cloud, "resource", "list", "--type", "instance", user="demo")
    assert rid in [x["id"] for x in listed]

    # a metric of its own, by id; wrong input is a 400 naming it
    m = om(cloud, "create", "--archive-policy-name", "high", "temp", "--unit", "C", user="demo")
    ok(cloud, "measures", "add", m["id"], "-m", f"{T0}@1", "-m", "2015-03-06T14:33:58@3", user="demo")
    rows = om(cloud, "measures", "show", m["id"], "--granularity", "1", "--utc", user="demo")
    assert [x["value"] for x in rows] == [1.0, 3.0]
    assert "value" in fails(cloud, "measures", "add", m["id"], "-m", f"{T0}@abc", user="demo") + "value"
    assert "does not exist" in fails(cloud, "show", str(uuid.uuid4()), user="demo")
    ok(cloud, "delete", m["id"], user="demo")
    ok(cloud, "resource", "delete", rid, user="demo")
    assert "does not exist" in fails(cloud, "resource", "show", rid, user="demo")


def gnocchi(cloud: Cloud):
    """gnocchiclient's library, as admin."""
    from gnocchiclient.v1 import client as gclient
    from keystoneauth1 import loading, session

    rc = cloud.openrc("admin")
    auth = loading.get_plugin_loader("password").load_from_options(
        auth_url=rc["OS_AUTH_URL"], username=rc["OS_USERNAME"], password=rc["OS_PASSWORD"],
        project_name=rc["OS_PROJECT_NAME"], user_domain_name="Default", project_domain_name="Default")
    return gclient.Client(session=session.Session(auth=auth))


def test_http_contract_as_gnocchi(cloud):
    """Gnocchi's own gabbi tests (live.yaml): a create answers its URL in Location, an Accept
    JSON cannot satisfy is a 406, a body that is not JSON (or untyped) a 415; nothing changes."""
    gc = gnocchi(cloud)
    base = gc.api.get_endpoint().rstrip("/") + "/v1"
    tag = uuid.uuid4().hex[:6]
    policy = f"ap-{tag}-✔é"
    made = []
    for path, doc, where in (
            ("archive_policy", {"name": policy, "definition": [{"granularity": "1 minute", "points": 20}]},
             "archive_policy/ap-{tag}-%E2%9C%94%C3%A9"),
            ("archive_policy_rule", {"name": f"r-{tag}", "metric_pattern": f"x{tag}.*",
                                     "archive_policy_name": policy}, "archive_policy_rule/r-{tag}"),
            ("resource_type", {"name": f"rt-{tag}"}, "resource_type/rt-{tag}"),
            (f"resource/rt-{tag}", {"id": str(uuid.uuid4())}, "resource/rt-{tag}/{id}"),
            ("metric", {"archive_policy_name": policy}, "metric/{id}")):
        r = gc.api.post(f"v1/{path}", json=doc)
        assert r.status_code == 201
        assert r.headers["Location"] == f"{base}/" + where.format(tag=tag, id=r.json().get("id")), r.headers
        made.append(r.headers["Location"].removeprefix(base + "/"))
    for where in reversed(made):
        gc.api.delete(f"v1/{where}")

    r = gc.api.get("v1/archive_policy", headers={"Accept": "text/plain"}, raise_exc=False)
    assert r.status_code == 406 and "406 Not Acceptable" in r.text
    assert gc.api.get("v1/archive_policy", headers={"Accept": "text/plain, application/json; q=0.8"}).json()

    # no client sends a body that is not JSON: raw HTTP
    token = {"X-Auth-Token": gc.api.session.get_token()}
    name = f"ap-{tag}-bad"
    doc = json.dumps({"name": name, "definition": [{"granularity": 1, "points": 3}]})
    for kind, data in (("text/plain", ""), ("text/plain", doc), (None, doc)):
        headers = {**token, **({"Content-Type": kind} if kind else {})}
        r = httpx.post(f"{base}/archive_policy", content=data, headers=headers)
        assert r.status_code == 415, r.text
        assert r.json()["code"] == 415 and r.json()["title"] == "Unsupported Media Type"
    r = httpx.patch(f"{base}/archive_policy/low", content=json.dumps({"definition": []}),
                    headers={**token, "Content-Type": "plain/text"})
    assert r.status_code == 415
    assert gc.api.get(f"v1/archive_policy/{name}", raise_exc=False).status_code == 404
    assert len(gc.archive_policy.get("low")["definition"]) > 0


def test_list_pages_link_to_the_next(cloud):
    """A full page links to the next (Gnocchi's ``Link: <...>; rel="next"``, absolute, under the
    service's prefix): followed as gnocchiclient does, through its session, page by page."""
    gc = gnocchi(cloud)
    user = f"u-{uuid.uuid4().hex[:8]}"
    ids = sorted(om(cloud, "resource", "create", str(uuid.uuid4()), "--type", "generic",
                    "-a", f"user_id:{user}")["id"] for _ in range(3))
    got, url = [], "v1/search/resource/generic?limit=2&sort=id:asc"
    while url:
        page = gc.api.post(url, json={"=": {"user_id": user}})
        got += [r["id"] for r in page.json()]
        url = page.links.get("next", {}).get("url")
        assert url is None or url.startswith(cloud.url + "/metric/v1/search/resource/generic?")
    assert got == ids
    # without a limit, the client reads the whole list (one page here)
    assert sorted(r["id"] for r in gc.resource.search(query={"=": {"user_id": user}})) == ids


def test_batch_and_aggregates(cloud):
    ids = [str(uuid.uuid4()) for _ in range(2)]
    user = f"u-{uuid.uuid4().hex[:8]}"
    for i, rid in enumerate(ids):
        om(cloud, "resource", "create", rid, "--type", "generic", "-n", "load:low",
           "-a", f"user_id:{user}", "-a", f"project_id:p{i}")
    url = cloud.url + "/metric"
    body = {rid: {"load": [{"timestamp": T0, "value": 10.0 * (i + 1)}],
                  "newone": {"archive_policy_name": "low",
                             "measures": [{"timestamp": T0, "value": 1}]}}
            for i, rid in enumerate(ids)}
    # through the client library (gnocchiclient), as `openstack metric` does not batch by resource
    gc = gnocchi(cloud)
    gc.metric.batch_resources_metrics_measures(body, create_metrics=True)
    assert gc.metric.get("newone", resource_id=ids[0])["archive_policy"]["name"] == "low"

    agg = gc.aggregates.fetch("(aggregate mean (metric load mean))", resource_type="generic",
                              search=f"user_id='{user}'", granularity=300)
    assert points(agg["measures"]["aggregated"]) == [("2015-03-06T14:30:00+00:00", 300.0, 15.0)]
    agg = gc.aggregates.fetch("(* 2 (metric load max))", resource_type="generic", search=f"user_id='{user}'")
    assert points(agg["measures"][ids[1]]["load"]["max"]) == [("2015-03-06T14:30:00+00:00", 300.0, 40.0)]
    grouped = gc.aggregates.fetch("(aggregate sum (metric load mean))", resource_type="generic",
                                  search=f"user_id='{user}'", groupby=["project_id"])
    assert [(g["group"]["project_id"], g["measures"]["measures"]["aggregated"][0][2])
            for g in grouped] == [("p0", 10.0), ("p1", 20.0)]
    mids = [gc.metric.get("load", resource_id=r)["id"] for r in ids]
    # the CLI's aggregates, by metric id, and the legacy aggregation endpoint
    out = om(cloud, "aggregates", f"(aggregate max (metric ({mids[0]} mean) ({mids[1]} mean)))",
             "--granularity", "300")
    assert [x["value"] for x in out] == [20.0]
    out = om(cloud, "measures", "aggregation", "-m", mids[0], mids[1], "--aggregation", "mean",
             "--reaggregation", "sum", "--utc")
    assert [x["value"] for x in out] == [30.0]
    gc.metric.batch_metrics_measures({mids[0]: [{"timestamp": "2015-03-06T14:34:30", "value": 4}]})
    rows = gc.metric.get_measures(mids[0], granularity=300, aggregation="sum")
    assert rows[-1][2] == 14.0
    r = httpx.post(f"{url}/v1/batch/metrics/measures", json={str(uuid.uuid4()): []},
                   headers={"X-Auth-Token": gc.api.session.get_token()})
    assert r.status_code == 400 and r.json()["description"]["cause"] == "Unknown metrics"
    # batch delete by a search, through the CLI; an empty query is refused, not "all"
    assert om(cloud, "resource", "batch", "delete", f"user_id='{user}'")["deleted"] == 2
    assert "needs a query" in str(httpx.request("DELETE", f"{url}/v1/resource/generic",
                                                headers={"X-Auth-Token": gc.api.session.get_token()}).json())


def points(rows) -> list[tuple]:
    """gnocchiclient's measures (datetime, granularity, value) as (ISO text, ...)."""
    return [(r[0].isoformat() if hasattr(r[0], "isoformat") else r[0], r[1], r[2]) for r in rows]


def test_status_capabilities(cloud):
    assert "storage/total number of measures to process" in om(cloud, "status")
    caps = om(cloud, "capabilities", "list")
    assert "mean" in str(caps)
    r = httpx.get(cloud.url + "/metric/")
    assert r.json()["versions"][0]["id"] == "v1.0"


def test_image_events_make_a_resource(cloud, tmp_path):
    """The image service's notifications (image.create/upload/delete) become an `image`
    resource with its `image.size`, ended when the image is deleted."""
    data = tmp_path / "img.raw"
    data.write_bytes(b"x" * 4096)
    img = cloud.os_json("image", "create", "--file", str(data), "--disk-format", "raw",
                        "--container-format", "bare", f"img-{uuid.uuid4().hex[:6]}")
    res = wait_for(lambda: om(cloud, "resource", "show", "--type", "image", img["id"]), what="the image resource")
    assert res["name"] == img["name"]
    rows = wait_for(lambda: om(cloud, "measures", "show", "--resource-id", img["id"], "image.size"),
                    what="the image.size measure")
    assert rows[-1]["value"] == 4096.0
    cloud.openstack("image", "delete", img["id"])
    assert om(cloud, "resource", "show", "--type", "image", img["id"])["ended_at"]


def test_projects_are_isolated(cloud):
    rid = str(uuid.uuid4())
    om(cloud, "resource", "create", rid, "--type", "generic", "-n", "secret:low", user="demo")
    ok(cloud, "measures", "add", "--resource-id", rid, "secret", "-m", f"{T0}@1", user="demo")
    mid = om(cloud, "resource", "show", rid, user="demo")["metrics"]["secret"]
    with cloud.new_member("metric-iso") as other:
        assert "does not exist" in fails(cloud, "resource", "show", rid, env=other)
        assert "does not exist" in fails(cloud, "measures", "show", mid, env=other)
        assert rid not in [r["id"] for r in om(cloud, "resource", "list", env=other)]
        assert om(cloud, "resource", "search", f"id='{rid}'", env=other) == []
        assert mid not in [m["id"] for m in om(cloud, "list", env=other)]
        assert "does not exist" in fails(cloud, "delete", mid, env=other)
    # the admin sees every project's resources
    assert om(cloud, "resource", "show", rid)["id"] == rid
    ok(cloud, "resource", "delete", rid, user="demo")
