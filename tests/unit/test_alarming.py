"""The alarming logic without a cloud: Aodh's threshold decisions, composite rules, time
constraints, complex queries and rule validation."""

from __future__ import annotations

import datetime as dt

import pytest

from onestack import config
from onestack.alarming import evaluator, query, rules, settings
from onestack.common import errors

RULE = {"comparison_operator": "gt", "threshold": 50.0, "aggregation_method": "mean", "evaluation_periods": 3,
        "granularity": 60, "metric": "cpu_util", "resource_id": "r", "resource_type": "instance"}


class FakeMetric:
    def __init__(self, values: dict[str, list] | None = None):
        self.values = values or {}
        self.asked: list[tuple] = []

    def request(self, method, path, params=None, json=None):
        self.asked.append((method, path, params, json))
        key = path.split("/")[4] if method == "GET" else json["operations"].split("(metric ")[1].split()[0]
        if key not in self.values:
            raise evaluator.MetricNotFound("no such thing")
        points = [["t", 60, v] for v in self.values[key]] + [["t", 3600, 1000.0]]
        return points if method == "GET" else {"measures": {"aggregated": points}}


@pytest.mark.parametrize("values, state, trending", [
    ([60.0, 70.0, 80.0], "alarm", None),
    ([10.0, 20.0, 30.0], "ok", None),
    ([10.0, 70.0, 80.0], None, "alarm"),
    ([70.0, 80.0, 10.0], None, "ok"),
    ([0.0, 10.0, 70.0, 80.0, 90.0], "alarm", None),  # only the last evaluation_periods count
])
def test_threshold_decisions(values, state, trending):
    got = evaluator.evaluate_rule(FakeMetric({"r": values}), RULE, "gnocchi_resources_threshold")
    assert got[0] == state and got[1] == trending and got[2] == values[-3:]


def test_too_few_points_or_no_metric_is_insufficient_data():
    with pytest.raises(evaluator.InsufficientData, match="3 datapoints are unknown"):
        evaluator.evaluate_rule(FakeMetric({"r": [60.0]}), RULE, "gnocchi_resources_threshold")
    with pytest.raises(evaluator.InsufficientData, match="does not exist"):
        evaluator.evaluate_rule(FakeMetric(), RULE, "gnocchi_resources_threshold")


def test_window_and_operations_asked_of_the_metric_api():
    metric = FakeMetric({"m1": [1.0]})
    rule = {**RULE, "evaluation_periods": 1, "granularity": 300, "aggregation_method": "rate:max",
            "metrics": ["m1", "m2"]}
    with pytest.raises(evaluator.InsufficientData, match="No datapoint for granularity 300"):
        evaluator.evaluate_rule(metric, rule, "gnocchi_aggregation_by_metrics_threshold")
    method, path, params, body = metric.asked[0]
    assert (method, path) == ("POST", "/v1/aggregates")
    assert body == {"operations": "(aggregate rate:max (metric m1 max) (metric m2 max))"}
    start, stop = (dt.datetime.fromisoformat(params[k]) for k in ("start", "stop"))
    assert (stop - start).total_seconds() == 600 and params["granularity"] == 300
    assert params["needed_overlap"] == 0


def test_composite_and_or():
    ev = evaluator.Evaluator.__new__(evaluator.Evaluator)
    ev.metric = FakeMetric({"hot": [90.0, 90.0, 90.0], "cold": [1.0, 1.0, 1.0]})
    seen = []
    ev.refresh = lambda alarm, state, reason, data, always_record=False: seen.append((state, reason, data))
    hot = {**RULE, "resource_id": "hot", "type": "gnocchi_resources_threshold"}
    cold = {**RULE, "resource_id": "cold", "type": "gnocchi_resources_threshold"}
    alarm = {"state": "insufficient data", "rule": {"and": [hot, cold]}}
    ev.evaluate_composite(alarm)
    assert seen[-1][0] == "ok" and seen[-1][2]["composition_form"] == "(rule1 and rule2)"
    alarm = {"state": "insufficient data", "rule": {"or": [hot, cold]}}
    ev.evaluate_composite(alarm)
    assert seen[-1][0] == "alarm" and list(seen[-1][2]["causative_rules"]) == ["rule1"]


def test_time_constraints():
    alarm = {"time_constraints": [{"name": "n", "start": "0 23 * * *", "duration": 3600, "timezone": ""}]}
    at = dt.datetime(2026, 12, 7, 23, 30, tzinfo=dt.UTC)
    assert evaluator.within_time_constraint(alarm, at)
    assert evaluator.within_time_constraint(alarm, at.replace(minute=0, second=0))
    assert not evaluator.within_time_constraint(alarm, at.replace(hour=22))
    alarm["time_constraints"][0]["timezone"] = "Europe/Ljubljana"  # 23:00 there is 22:00 UTC
    assert evaluator.within_time_constraint(alarm, at.replace(hour=22))


def test_complex_query():
    rows = [{"name": "a", "severity": "low", "enabled": True, "project_id": "p"},
            {"name": "b", "severity": "critical", "enabled": False, "project_id": "q"}]
    expr, orderby, limit = query.parse('{"or": [{"=": {"severity": "critical"}}, {"=~": {"name": "^a"}}]}',
                                       '[{"name": "desc"}]', 1, {"name", "severity", "enabled", "project_id"})
    assert [r["name"] for r in query.sort_rows([r for r in rows if query.matches(expr, r)], orderby)] == ["b", "a"]
    assert limit == 1
    expr = query.restrict(query.parse('{"not": {"=": {"enabled": true}}}', None, None,
                                      {"enabled", "project_id"})[0], "project_id", "q")
    assert [r["name"] for r in rows if query.matches(expr, r)] == ["b"]
    with pytest.raises(errors.Unauthorized):
        query.restrict(query.parse('{"=": {"project": "p"}}', None, None, {"project_id"})[0], "project_id", "q")
    for bad in ('{"=": {"colour": "x"}}', '{"and": [{"=": {"name": "x"}}]}', '{"~~": {"name": "x"}}', "[1"):
        with pytest.raises(errors.BadRequest, match="Filter expression not valid"):
            query.parse(bad, None, None, {"name"})


def test_rule_validation():
    checked = rules.check_rule("gnocchi_resources_threshold",
                               {**RULE, "granularity": "300", "evaluation_periods": None})
    assert checked["granularity"] == 300 and checked["evaluation_periods"] == 1
    for change, message in (({"threshold": None}, "Mandatory field missing"),
                            ({"comparison_operator": "gte"}, "Value should be one of"),
                            ({"aggregation_method": "avg"}, "aggregation_method should be in"),
                            ({"granularity": 0}, "greater or equal to 1"),
                            ({"colour": 1}, "Unknown attribute")):
        with pytest.raises(errors.BadRequest, match=message):
            rules.check_rule("gnocchi_resources_threshold", {**RULE, **change})
    assert rules.is_aggregation_method("rate:95pct") and not rules.is_aggregation_method("100pct")
    with pytest.raises(errors.BadRequest, match="type must be set"):
        rules.check_composite({"and": [{"threshold": 1}, {"threshold": 2}]})
    with pytest.raises(errors.Unauthorized):
        rules.check_actions("alarm_actions", ["log://"], False, -1)
    assert rules.check_actions("ok_actions", ["http://h/a", "http://h/a"], False, -1) == ["http://h/a"]


def test_settings_check_the_alarming_section():
    conf = config.load(env={})
    assert settings.configure(conf).metric_url == conf.public_url + "/metric"
    bad = config.load(env={"ONESTACK_ALARMING_EVALUATION_INTERVAL": "0"})
    with pytest.raises(config.ConfigError, match="alarming.evaluation_interval"):
        settings.configure(bad)
    settings.configure(conf)


def test_transitions_and_repeat_actions(monkeypatch):
    """A transition is recorded and notified once; with repeat_actions the actions fire at
    every evaluation while the state holds; a mixed window follows the trend only from
    insufficient data."""
    moved, notified = [], []

    def transition(alarm, state, reason, user, project):
        moved.append(state)
        alarm.update(state=state, state_reason=reason)
        return True

    monkeypatch.setattr(evaluator.alarms, "transition", transition)
    monkeypatch.setattr(evaluator.notifier, "notify", lambda alarm, prev, reason, data: notified.append(
        (prev, alarm["state"], data)))
    monkeypatch.setattr(evaluator.credentials, "service_user_id", lambda: "aodh")
    monkeypatch.setattr(evaluator.credentials, "service_auth", lambda: type("A", (), {"project_id": "svc"})())
    ev = evaluator.Evaluator.__new__(evaluator.Evaluator)
    ev.metric = FakeMetric({"r": [60.0, 70.0, 80.0]})
    alarm = {"alarm_id": "a", "type": "gnocchi_resources_threshold", "rule": RULE, "state": "insufficient data",
             "repeat_actions": False, "time_constraints": []}
    ev.evaluate(alarm)
    ev.evaluate(alarm)
    assert moved == ["alarm"] and [n[:2] for n in notified] == [("insufficient data", "alarm")]
    alarm["repeat_actions"] = True
    ev.evaluate(alarm)
    assert moved == ["alarm"] and [n[:2] for n in notified][-1] == ("alarm", "alarm")
    assert notified[-1][2]["disposition"] == "outside"
    alarm["repeat_actions"] = False
    ev.metric.values["r"] = [10.0, 70.0, 20.0]  # mixed, trending ok: stays alarm
    ev.evaluate(alarm)
    assert moved == ["alarm"]
    alarm["state"] = "insufficient data"  # from unknown, the trend decides
    ev.evaluate(alarm)
    assert moved == ["alarm", "ok"]
    del ev.metric.values["r"]
    ev.evaluate(alarm)
    assert moved[-1] == "insufficient data" and notified[-1][2]["disposition"] == "unknown"
