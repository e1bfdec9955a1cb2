"""The alarming service (Aodh v2) through the real `openstack alarm ...` CLI (aodhclient).

The cloud of this module evaluates every second and reaches "the metric service" at a tiny
Gnocchi stub on loopback (``[alarming] metric_url``), whose answers each test sets; a
webhook receiver on loopback records what the alarms' actions POST.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.cloud import Cloud, wait_for


class Recorder(ThreadingHTTPServer):
    """A loopback HTTP server keeping every request; ``answer(method, path, body)`` makes
    the (status, JSON) of each."""

    daemon_threads = True

    def __init__(self, answer=None):
        self.requests: list[dict] = []
        self.answer = answer or (lambda method, path, body: (200, {}))

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                server.requests.append({"method": self.command, "path": self.path,
                                        "headers": dict(self.headers), "body": body})
                status, out = server.answer(self.command, self.path, body)
                data = json.dumps(out).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _any

        server = self
        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def bodies(self, path: str) -> list[dict]:
        return [r["body"] for r in list(self.requests) if r["path"] == path]

    def bodies_prefix(self, prefix: str) -> list[dict]:
        return [r["body"] for r in list(self.requests) if r["path"].startswith(prefix)]


class Gnocchi:
    """The metric API as the evaluator sees it: ``values[key]`` are the points (granularity
    60) answered for a resource id (measures) or for the aggregates of a metric name/id."""

    def __init__(self):
        self.values: dict[str, list[float]] = {}
        self.server = Recorder(self.answer)

    def points(self, key: str) -> list:
        return [[f"2026-12-07T10:0{i}:00+00:00", 60.0, v] for i, v in enumerate(self.values.get(key, []))]

    def answer(self, method, path, body):
        if method == "GET" and path.startswith("/v1/resource/generic/"):
            resource = path.split("/")[4]
            if resource not in self.values:
                return 404, {"description": {"cause": "Resource does not exist"}}
            return 200, self.points(resource)
        if method == "POST" and path.startswith("/v1/aggregates"):
            ops = body["operations"]  # "(aggregate mean (metric X mean) ...)"
            key = ops.split("(metric ")[1].split()[0]
            return 200, {"measures": {"aggregated": self.points(key)}}
        return 404, {"description": "no such path"}


@pytest.fixture(scope="module")
def gnocchi():
    g = Gnocchi()
    yield g
    g.server.shutdown()


@pytest.fixture(scope="module")
def hooks():
    r = Recorder()
    yield r
    r.shutdown()


@pytest.fixture(scope="module")
def acloud(gnocchi):
    c = Cloud("alarming", extra_env={
        "ONESTACK_ALARMING_EVALUATION_INTERVAL": "1",
        "ONESTACK_ALARMING_METRIC_URL": gnocchi.server.url,
        "ONESTACK_ALARMING_NOTIFIER_RETRY_BACKOFF": "0.1",
    }).start()
    yield c
    c.stop()


def alarm(c: Cloud, *args: str, **kw) -> dict:
    return c.os_json("alarm", *args, **kw)


def fails(c: Cloud, *args: str, **kw) -> str:
    r = c.openstack(*args, check=False, **kw)
    assert r.returncode != 0, r.stdout
    return r.stderr


def name() -> str:
    return f"al-{uuid.uuid4().hex[:8]}"


THRESHOLD = ("--type", "gnocchi_resources_threshold", "--metric", "cpu_util", "--resource-type", "instance",
             "--aggregation-method", "mean", "--threshold", "50", "--comparison-operator", "gt")


def test_versions_and_capabilities(acloud):
    r = httpx.get(acloud.url + "/alarming/")
    assert r.json()["versions"]["values"][0]["id"] == "v2"
    caps = acloud.os_json("alarming", "capabilities", "list")
    assert caps["api"]["alarms:query:complex"] is True


def test_alarm_lifecycle_through_the_cli(acloud):
    n = name()
    rid = str(uuid.uuid4())
    a = alarm(acloud, "create", "--name", n, *THRESHOLD, "--resource-id", rid, "--granularity", "300",
              "--evaluation-periods", "3", "--severity", "moderate", "--alarm-action", "http://127.0.0.1:9/a",
              "--time-constraint", "name=night;start=0 23 * * *;duration=10800;timezone=Europe/Ljubljana")
    assert a["state"] == "insufficient data" and a["state_reason"] == "Not evaluated yet"
    assert (a["granularity"], a["evaluation_periods"], a["threshold"]) == (300, 3, 50.0)
    assert a["resource_id"] == rid and a["severity"] == "moderate"
    assert json.loads(a["time_constraints"])[0]["start"] == "0 23 * * *"
    assert alarm(acloud, "show", a["alarm_id"])["name"] == n
    assert alarm(acloud, "show", n)["alarm_id"] == a["alarm_id"]  # by name (a complex query)
    ids = [x["alarm_id"] for x in alarm(acloud, "list")]
    assert a["alarm_id"] in ids

    b = alarm(acloud, "update", a["alarm_id"], "--threshold", "70", "--severity", "critical")
    assert (b["threshold"], b["severity"], b["resource_id"]) == (70.0, "critical", rid)
    assert alarm(acloud, "state", "set", "--state", "ok", a["alarm_id"])["state"] == "ok"
    assert alarm(acloud, "state", "get", a["alarm_id"])["state"] == "ok"
    shown = alarm(acloud, "show", a["alarm_id"])
    assert shown["state_reason"] == "Manually set via API"

    history = acloud.os_json("alarm-history", "show", a["alarm_id"])
    assert [h["type"] for h in history] == ["state transition", "rule change", "creation"]
    assert json.loads(history[0]["detail"]) == {"state": "ok", "state_reason": "Manually set via API"}
    assert json.loads(history[1]["detail"])["severity"] == "critical"

    acloud.openstack("alarm", "delete", a["alarm_id"])
    assert "not found" in fails(acloud, "alarm", "show", a["alarm_id"]).lower()
    # the history outlives the alarm, as in Aodh: searched by alarm id
    found = acloud.os_json("alarm-history", "search", "--query", f"alarm_id={a['alarm_id']}")
    assert "deletion" in [h["type"] for h in found]


def test_every_type_is_created_and_checked(acloud):
    metric_ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    m = alarm(acloud, "create", "--name", name(), "--type", "gnocchi_aggregation_by_metrics_threshold",
              "--metric", metric_ids[0], "--metric", metric_ids[1], "--aggregation-method", "rate:mean",
              "--threshold", "1")
    assert m["metrics"] == metric_ids and m["comparison_operator"] == "eq"
    query = '{"=": {"server_group": "g1"}}'
    r = alarm(acloud, "create", "--name", name(), "--type", "gnocchi_aggregation_by_resources_threshold",
              "--metric", "cpu_util", "--resource-type", "instance", "--query", query,
              "--aggregation-method", "95pct", "--threshold", "80")
    assert json.loads(r["query"]) == json.loads(query)  # the admin's search is kept as it is
    e = alarm(acloud, "create", "--name", name(), "--type", "event", "--event-type", "image.*",
              "--query", "traits.name=string::x")
    assert e["event_type"] == "image.*" and "traits.name = x" in e["query"]
    assert e["description"] == "Alarm when image.* event occurred."
    rule = {"or": [{"type": "gnocchi_resources_threshold", "metric": "cpu_util", "resource_id": "r",
                    "resource_type": "instance", "aggregation_method": "mean", "threshold": 1},
                   {"and": [{"type": "gnocchi_aggregation_by_metrics_threshold", "metrics": ["m1"],
                             "aggregation_method": "max", "threshold": 2},
                            {"type": "gnocchi_aggregation_by_metrics_threshold", "metrics": ["m2"],
                             "aggregation_method": "min", "threshold": 3}]}]}
    comp = alarm(acloud, "create", "--name", name(), "--type", "composite", "--composite-rule", json.dumps(rule))
    stored = json.loads(comp["composite_rule"])
    assert stored["or"][0]["granularity"] == 60 and stored["or"][0]["comparison_operator"] == "eq"
    # the operator's actions, shown as Aodh shows them; a load balancer health alarm is kept
    lb = {"pool_id": "p", "stack_id": "s", "autoscaling_group_id": "g"}
    token = acloud.os_json("token", "issue")["id"]
    r2 = httpx.post(acloud.url + "/alarming/v2/alarms", headers={"X-Auth-Token": token}, json={
        "name": name(), "type": "loadbalancer_member_health", "loadbalancer_member_health_rule": lb,
        "alarm_actions": ["test://", "log://"]})
    assert r2.status_code == 201, r2.text
    assert r2.json()["alarm_actions"] == ["test:", "log:"] and r2.json()["loadbalancer_member_health_rule"] == lb
    for a in (m, r, e, comp, r2.json()):
        acloud.openstack("alarm", "delete", a["alarm_id"])


@pytest.mark.parametrize("args, message", [
    (("--aggregation-method", "bogus"), "aggregation_method should be in"),
    (("--granularity", "0"), "granularity"),
    (("--evaluation-periods", "101"), "evaluation_periods"),
    (("--alarm-action", "ftp://example.invalid/x"), "Unsupported action ftp://example.invalid/x"),
    (("--time-constraint", "name=t;start=61 * * * *;duration=10"), "start"),
    (("--time-constraint", "name=t;start=0 1 * * *;duration=10;timezone=Mars/Olympus"),
     "Timezone Mars/Olympus is not valid"),
])
def test_bad_alarms_are_refused_with_aodh_messages(acloud, args, message):
    base = [a for a in THRESHOLD]
    if "--aggregation-method" in args:
        i = base.index("--aggregation-method")
        del base[i:i + 2]
    err = fails(acloud, "alarm", "create", "--name", name(), *base, "--resource-id", "r1", *args)
    assert message in err and "HTTP 400" in err


def test_bad_bodies_get_aodh_error_shape(acloud):
    token = acloud.os_json("token", "issue")["id"]
    h = {"X-Auth-Token": token, "Content-Type": "application/json"}
    url = acloud.url + "/alarming/v2/alarms"
    r = httpx.post(url, content=b"{not json", headers=h)
    assert r.status_code == 400 and "faultstring" in r.json()["error_message"]
    r = httpx.post(url, json={"name": "x", "type": "threshold", "threshold_rule": {}}, headers=h)
    assert r.status_code == 400 and "type" in r.json()["error_message"]["faultstring"]
    r = httpx.post(url, json={"name": "x", "type": "event", "event_rule": {}, "colour": "red"}, headers=h)
    assert r.status_code == 400 and "colour" in r.json()["error_message"]["faultstring"]
    r = httpx.post(url, json={"name": "x", "type": "composite",
                              "composite_rule": {"xor": [{"type": "event"}]}}, headers=h)
    assert r.status_code == 400
    r = httpx.post(url, json={"name": "x", "type": "event",
                              "event_rule": {"query": [{"field": "traits.a", "value": {"x": 1}}]}}, headers=h)
    assert r.status_code == 400 and "value" in r.json()["error_message"]["faultstring"]
    r = httpx.put(url + f"/{uuid.uuid4()}/state", json="alarm", headers=h)
    assert r.status_code == 404 and "not found" in r.json()["error_message"]["faultstring"]
    r = httpx.post(acloud.url + "/alarming/v2/query/alarms", json={"filter": '{"~~": {"name": "x"}}'},
                   headers=h)
    assert r.status_code == 400 and "Filter expression not valid" in r.json()["error_message"]["faultstring"]
    r = httpx.get(url + "?q.field=colour&q.op=eq&q.value=red", headers=h)
    assert r.status_code == 400 and "only fields" in r.json()["error_message"]["faultstring"]


def test_list_filters_queries_and_quotas(acloud):
    n1, n2 = name(), name()
    a1 = alarm(acloud, "create", "--name", n1, *THRESHOLD, "--resource-id", "r", "--severity", "critical")
    a2 = alarm(acloud, "create", "--name", n2, *THRESHOLD, "--resource-id", "r", "--enabled", "False")
    try:
        names = {a["name"] for a in alarm(acloud, "list", "--filter", "severity=critical")}
        assert n1 in names and n2 not in names
        names = {a["name"] for a in alarm(acloud, "list", "--filter", f"name={n2}")}
        assert names == {n2}
        names = {a["name"] for a in alarm(acloud, "list", "--query", f"name='{n1}' or name='{n2}'")}
        assert names == {n1, n2}
        assert [a["name"] for a in alarm(acloud, "list", "--filter", "enabled=False")] == [n2]
        ours = sorted([(n1, a1["alarm_id"]), (n2, a2["alarm_id"])])
        listed = [(a["name"], a["alarm_id"]) for a in alarm(acloud, "list", "--sort", "name:asc", "--sort",
                                                               "alarm_id:asc") if a["name"] in (n1, n2)]
        assert listed == ours
        after = alarm(acloud, "list", "--sort", "name:asc", "--marker", ours[0][1])
        assert ours[1][1] in [a["alarm_id"] for a in after] and ours[0][1] not in [a["alarm_id"] for a in after]
        assert "HTTP 400" in fails(acloud, "alarm", "list", "--sort", "colour:asc")
    finally:
        for a in (a1, a2):
            acloud.openstack("alarm", "delete", a["alarm_id"])
    with acloud.new_member("aq") as member:
        project = acloud.os_json("token", "issue", env=member)["project_id"]
        acloud.openstack("alarm", "quota", "set", "--alarm", "1", project)
        assert alarm(acloud, "quota", "show", env=member)["alarms"] == 1
        first = alarm(acloud, "create", "--name", name(), *THRESHOLD, "--resource-id", "r", env=member)
        err = fails(acloud, "alarm", "create", "--name", name(), *THRESHOLD, "--resource-id", "r", env=member)
        assert "Alarm quota exceeded" in err
        assert "HTTP 403" in fails(acloud, "alarm", "quota", "set", "--alarm", "9", project, env=member)
        acloud.openstack("alarm", "delete", first["alarm_id"], env=member)


def test_projects_do_not_see_each_others_alarms(acloud):
    with acloud.new_member("aa") as one, acloud.new_member("ab") as two:
        mine = alarm(acloud, "create", "--name", name(), *THRESHOLD, "--resource-id", "r", env=one)
        assert mine["alarm_id"] in [a["alarm_id"] for a in alarm(acloud, "list", env=one)]
        assert mine["alarm_id"] not in [a["alarm_id"] for a in alarm(acloud, "list", env=two)]
        assert "not found" in fails(acloud, "alarm", "show", mine["alarm_id"], env=two).lower()
        assert "not found" in fails(acloud, "alarm", "delete", mine["alarm_id"], env=two).lower()
        fails(acloud, "alarm-history", "show", mine["alarm_id"], env=two)
        assert not acloud.os_json("alarm-history", "search", env=two)
        assert "HTTP 401" in fails(acloud, "alarm", "create", "--name", name(), *THRESHOLD, "--resource-id",
                                   "r", "--project-id", mine["project_id"], env=two)
        # a member may not log (log:// is the operator's), as in Aodh
        assert "not authorized" in fails(acloud, "alarm", "create", "--name", name(), *THRESHOLD,
                                         "--resource-id", "r", "--alarm-action", "log://", env=one).lower()
        # the admin sees every project's alarms when asking for all of them
        assert mine["alarm_id"] not in [a["alarm_id"] for a in alarm(acloud, "list")]
        everyone = alarm(acloud, "list", "--filter", "all_projects=true")
        assert mine["alarm_id"] in [a["alarm_id"] for a in everyone]
        assert "HTTP 403" in fails(acloud, "alarm", "list", "--filter", "all_projects=true", env=two)
        acloud.openstack("alarm", "delete", mine["alarm_id"], env=one)


def _hooked(hooks: Recorder, path: str, current: str):
    return [b for b in hooks.bodies(path) if b and b["current"] == current]


def test_threshold_alarm_fires_webhook_and_recovers(acloud, gnocchi, hooks):
    rid = str(uuid.uuid4())
    gnocchi.values[rid] = [10.0, 90.0, 95.0]
    path = f"/hook-{rid}"
    a = alarm(acloud, "create", "--name", name(), *THRESHOLD, "--resource-id", rid, "--evaluation-periods", "2",
              "--alarm-action", hooks.url + path, "--ok-action", hooks.url + path + "?ok",
              "--severity", "critical")
    got = wait_for(lambda: _hooked(hooks, path, "alarm"), 30, "the alarm webhook")[0]
    assert got == {"alarm_name": a["name"], "alarm_id": a["alarm_id"], "severity": "critical",
                   "previous": "insufficient data", "current": "alarm", "reason": got["reason"],
                   "reason_data": {"type": "threshold", "disposition": "outside", "count": 2,
                                   "most_recent": 95.0}}
    assert got["reason"] == "Transition to alarm due to 2 samples outside threshold, most recent: 95.0"
    # what the evaluator asked: the resource's metric at the rule's granularity, as the aodh user
    asked = [r for r in gnocchi.server.requests if rid in r["path"]][0]
    assert asked["path"].startswith(f"/v1/resource/generic/{rid}/metric/cpu_util/measures?")
    assert "aggregation=mean" in asked["path"] and "granularity=60" in asked["path"]
    assert "start=" in asked["path"] and asked["headers"].get("X-Auth-Token")

    gnocchi.values[rid] = [95.0, 20.0, 30.0]
    wait_for(lambda: _hooked(hooks, path + "?ok", "ok"), 30, "the ok webhook")
    assert alarm(acloud, "state", "get", a["alarm_id"])["state"] == "ok"
    history = acloud.os_json("alarm-history", "show", a["alarm_id"])
    transitions = [json.loads(h["detail"])["state"] for h in history if h["type"] == "state transition"]
    assert transitions[:2] == ["ok", "alarm"]
    actions = [json.loads(h["detail"]) for h in history if h["type"] == "action"]
    assert {d["outcome"] for d in actions} == {"answered 200"}

    del gnocchi.values[rid]  # the resource is gone: insufficient data
    wait_for(lambda: alarm(acloud, "state", "get", a["alarm_id"])["state"] == "insufficient data", 30,
             "insufficient data")
    acloud.openstack("alarm", "delete", a["alarm_id"])


def test_aggregation_and_composite_alarms(acloud, gnocchi, hooks):
    m1, m2 = str(uuid.uuid4()), str(uuid.uuid4())
    gnocchi.values[m1] = [5.0]
    gnocchi.values[m2] = [7.0]
    metric_name = f"load-{m1[:8]}"
    gnocchi.values[metric_name] = [3.0]
    path = f"/agg-{m1}"
    by_res = alarm(acloud, "create", "--name", name(), "--type", "gnocchi_aggregation_by_resources_threshold",
                   "--metric", metric_name, "--resource-type", "instance", "--query",
                   '{"=": {"server_group": "g"}}', "--aggregation-method", "mean", "--threshold", "2",
                   "--comparison-operator", "ge", "--alarm-action", hooks.url + path)
    rule = {"and": [{"type": "gnocchi_aggregation_by_metrics_threshold", "metrics": [m1],
                     "aggregation_method": "max", "threshold": 4, "comparison_operator": "gt"},
                    {"type": "gnocchi_aggregation_by_metrics_threshold", "metrics": [m2],
                     "aggregation_method": "max", "threshold": 10, "comparison_operator": "lt"}]}
    comp = alarm(acloud, "create", "--name", name(), "--type", "composite", "--composite-rule", json.dumps(rule),
                 "--alarm-action", hooks.url + path + "/c")
    got = wait_for(lambda: _hooked(hooks, path, "alarm"), 30, "the aggregation alarm")[0]
    assert got["alarm_id"] == by_res["alarm_id"]
    sent = [b for b in gnocchi.server.bodies_prefix("/v1/aggregates") if metric_name in b["operations"]][0]
    assert sent["operations"] == f"(aggregate mean (metric {metric_name} mean))"
    assert sent["search"] == {"=": {"server_group": "g"}} and sent["resource_type"] == "instance"
    got = wait_for(lambda: _hooked(hooks, path + "/c", "alarm"), 30, "the composite alarm")[0]
    assert got["reason_data"]["type"] == "composite"
    assert got["reason"].startswith("Composite rule alarm with composition form: (rule1 and rule2) transition")
    gnocchi.values[m2] = [12.0]  # one side inside: ok ("or" of the sides' ok)
    wait_for(lambda: alarm(acloud, "state", "get", comp["alarm_id"])["state"] == "ok", 30, "composite ok")
    for a in (by_res, comp):
        acloud.openstack("alarm", "delete", a["alarm_id"])


def test_event_alarm_and_trust_webhook(acloud, hooks):
    """An event alarm of a member fires on its project's image.create, to a trust+http
    action: the webhook gets a token of the alarm's owner (by the trust to aodh)."""
    with acloud.new_member("ae") as member:
        image = name()
        path = f"/trust-{image}"
        target = hooks.url.replace("http://", "trust+http://") + path
        a = alarm(acloud, "create", "--name", name(), "--type", "event", "--event-type", "image.create",
                  "--query", f"traits.name=string::{image}", "--alarm-action", target, env=member)
        assert a["alarm_actions"] == [target]  # the trust id is not shown
        acloud.openstack("image", "create", "--disk-format", "raw", "--container-format", "bare",
                         name(), env=member)  # another name: no match
        acloud.openstack("image", "create", "--disk-format", "raw", "--container-format", "bare",
                         image, env=member)
        got = wait_for(lambda: [r for r in list(hooks.requests) if r["path"] == path], 30, "the event webhook")
        assert len(got) == 1
        body = got[0]["body"]
        assert body["current"] == "alarm" and body["reason_data"]["type"] == "event"
        assert body["reason"].startswith("Event <id=")
        token = got[0]["headers"]["X-Auth-Token"]
        admin = acloud.os_json("token", "issue")["id"]
        r = httpx.get(acloud.url + "/identity/v3/auth/tokens",
                      headers={"X-Auth-Token": admin, "X-Subject-Token": token})
        assert r.status_code == 200
        who = r.json()["token"]
        assert who["user"]["name"] == member["OS_USERNAME"] and who["project"]["name"] == member["OS_PROJECT_NAME"]
        assert who["OS-TRUST:trust"]["impersonation"] is True
        trust_id = who["OS-TRUST:trust"]["id"]
        acloud.openstack("alarm", "delete", a["alarm_id"], env=member)
        # deleting the alarm deleted its trust
        r = httpx.get(acloud.url + f"/identity/v3/OS-TRUST/trusts/{trust_id}", headers={"X-Auth-Token": admin})
        assert r.status_code == 404
        acloud.openstack("image", "delete", image, env=member)


def test_webhook_is_retried_after_a_server_error(acloud):
    """A receiver answering 503 gets the transition again (notifier_max_retries, with
    backoff); the history says how the action ended. log:// (admin) fires too."""
    calls = []

    def answer(method, path, body):
        calls.append(body)
        return (503, {}) if len(calls) == 1 else (200, {})

    flaky = Recorder(answer)
    try:
        image = name()
        a = alarm(acloud, "create", "--name", name(), "--type", "event", "--event-type", "image.create",
                  "--query", f"traits.name=string::{image}", "--alarm-action", flaky.url + "/flaky",
                  "--alarm-action", "log://")
        acloud.openstack("image", "create", "--disk-format", "raw", "--container-format", "bare", image)
        wait_for(lambda: len(calls) >= 2, 30, "the retried webhook")
        assert calls[0] == calls[1] and calls[1]["current"] == "alarm"

        def outcomes():
            history = acloud.os_json("alarm-history", "show", a["alarm_id"])
            return sorted(json.loads(h["detail"])["outcome"] for h in history if h["type"] == "action")

        assert wait_for(lambda: len(outcomes()) == 2 and outcomes(), 30, "both outcomes") == \
            ["answered 200", "logged"]
        acloud.openstack("alarm", "delete", a["alarm_id"])
        acloud.openstack("image", "delete", image)
    finally:
        flaky.shutdown()
