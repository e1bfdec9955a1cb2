"""The alarm evaluator (Aodh's aodh-evaluator and its event listener), in the controller.

Every ``evaluation_interval`` seconds one thread evaluates the enabled threshold and
composite alarms. A threshold rule asks the metric service, through its HTTP API only
(Gnocchi v1) and as the ``aodh`` service user, for the points of the last
``granularity * (evaluation_periods + 1)`` seconds (plus any ingestion lag), keeps those of
the rule's granularity, and compares the last ``evaluation_periods`` with the threshold,
as Aodh's threshold evaluator does: all outside is ``alarm``, all inside ``ok``, a mix
keeps the state (or follows the trend from ``insufficient data``), too few points are
``insufficient data``. Event alarms fire on the bus's notifications (a queue and a thread
of their own, so no notifier waits for them).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import logging
import operator
import queue
import threading
import uuid
import zoneinfo
from typing import Any

import httpx
from croniter import croniter

from onestack.alarming import alarms, credentials, notifier, rules, settings
from onestack.common import bus, errors
from onestack.common.timeutils import utcnow

log = logging.getLogger(__name__)

UNKNOWN, OK, ALARM = "insufficient data", "ok", "alarm"
COMPARATORS = {"gt": operator.gt, "lt": operator.lt, "ge": operator.ge, "le": operator.le, "eq": operator.eq,
               "ne": operator.ne}
STATE_CHANGE = {ALARM: "outside their threshold.", OK: "inside their threshold.",
                UNKNOWN: "state evaluated to unknown."}


class MetricNotFound(Exception):
    """The metric API answered 404 (no such resource, metric or aggregation)."""


class InsufficientData(Exception):
    def __init__(self, reason: str, statistics: list[float]):
        super().__init__(reason)
        self.reason, self.statistics = reason, statistics


# ------------------------------------------------------------------ the metric API
class Metric:
    """Gnocchi v1 over HTTP with the ``aodh`` token (renewed once when refused)."""

    def __init__(self):
        self.http = httpx.Client(timeout=30)

    def request(self, method: str, path: str, **kw) -> Any:
        r = self.http.request(method, settings.current.metric_url + path,
                              headers={"X-Auth-Token": credentials.service_auth().token()}, **kw)
        if r.status_code == 404:
            raise MetricNotFound(_message(r))
        if r.status_code >= 400:
            raise InsufficientData(f"alarm statistics retrieval failed: {r.status_code} {_message(r)}", [])
        return r.json()


def _message(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:200]
    if isinstance(body, dict):
        desc = body.get("description", body)
        if isinstance(desc, dict):
            return str(desc.get("cause", "")) + (f": {desc.get('detail')}" if desc.get("detail") else "")
        return str(desc)[:300]
    return str(body)[:300]


def _operations(rule: dict, metrics: list[str]) -> str:
    method = rule["aggregation_method"]
    refs = " ".join(f"(metric {mid} {method.removeprefix('rate:')})" for mid in metrics)
    return f"(aggregate {method} {refs})"


def statistics(metric: Metric, rule: dict, start: str, stop: str, kind: str) -> Any:
    params = {"granularity": rule["granularity"], "start": start, "stop": stop}
    try:
        if kind == "gnocchi_resources_threshold":
            return metric.request("GET", f"/v1/resource/generic/{rule['resource_id']}/metric/{rule['metric']}"
                                  "/measures", params={**params, "aggregation": rule["aggregation_method"]})
        params["needed_overlap"] = 0
        if kind == "gnocchi_aggregation_by_metrics_threshold":
            return metric.request("POST", "/v1/aggregates", params=params,
                                  json={"operations": _operations(rule, rule["metrics"])})
        return metric.request("POST", "/v1/aggregates", params=params,
                              json={"operations": _operations(rule, [rule["metric"]]),
                                    "search": json.loads(rule["query"]), "resource_type": rule["resource_type"]})
    except MetricNotFound as e:
        if kind == "gnocchi_resources_threshold":
            what = f"metric {rule['metric']} or resource {rule['resource_id']} does not exist"
        elif kind == "gnocchi_aggregation_by_metrics_threshold":
            what = f"At least one of the metrics in {rule['metrics']} does not exist"
        else:
            what = f"metric {rule['metric']} does not exist for the resources of the query"
        raise InsufficientData(f"{what} ({e})" if str(e) else what, []) from None
    except (httpx.HTTPError, errors.ApiError, ValueError) as e:
        raise InsufficientData(f"alarm statistics retrieval failed: {e}", []) from None


def sanitize(rule: dict, stats: Any) -> list[float]:
    """The values of the rule's granularity, the last ``evaluation_periods`` of them."""
    if isinstance(stats, dict):  # dynamic aggregates: {"measures": {"aggregated": [...]}}
        stats = (stats.get("measures") or {}).get("aggregated") or []
    values = [float(p[2]) for p in stats if isinstance(p, list) and len(p) == 3 and p[1] == rule["granularity"]
              and p[2] is not None]
    if not values:
        raise InsufficientData(f"No datapoint for granularity {rule['granularity']}", [])
    return values[-rule["evaluation_periods"]:]


def evaluate_rule(metric: Metric, rule: dict, kind: str):
    """(state or None, trending state or None, statistics, number outside); InsufficientData."""
    now = utcnow()
    window = rule["granularity"] * (rule["evaluation_periods"] + 1) + settings.current.additional_ingestion_lag
    start = (now - dt.timedelta(seconds=window)).isoformat()
    values = sanitize(rule, statistics(metric, rule, start, now.isoformat(), kind))
    if len(values) < rule["evaluation_periods"]:
        raise InsufficientData(f"{rule['evaluation_periods']} datapoints are unknown", values)
    compare = COMPARATORS[rule["comparison_operator"]]
    compared = [compare(v, rule["threshold"]) for v in values]
    outside = sum(compared)
    if all(compared) or not any(compared):
        return (ALARM if all(compared) else OK), None, values, outside
    return None, (ALARM if compared[-1] else OK), values, outside


# ------------------------------------------------------------------ state changes
def within_time_constraint(alarm: dict, now: dt.datetime | None = None) -> bool:
    if not alarm["time_constraints"]:
        return True
    now_utc = now or dt.datetime.now(dt.UTC)
    for tc in alarm["time_constraints"]:
        local = now_utc.astimezone(zoneinfo.ZoneInfo(tc["timezone"])) if tc.get("timezone") else now_utc
        # the latest start at or before now (a start this very minute counts)
        base = local.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        latest = croniter(tc["start"], base).get_prev(dt.datetime)
        if latest <= local <= latest + dt.timedelta(seconds=tc["duration"]):
            return True
    return False


class Evaluator:
    def __init__(self):
        self.metric = Metric()
        self.stop = threading.Event()
        self.events: queue.Queue = queue.Queue(maxsize=10000)

    # --- the bookkeeping of a state change
    def refresh(self, alarm: dict, state: str, reason: str, reason_data: dict, always_record: bool = False):
        previous = alarm["state"]
        if previous != state or always_record:
            log.info("alarm %s transitioning to %s because %s", alarm["alarm_id"], state, reason)
            auth = credentials.service_auth()
            if not alarms.transition(alarm, state, reason, credentials.service_user_id(), auth.project_id):
                return  # deleted meanwhile
            notifier.notify(alarm, previous, reason, reason_data)
        elif alarm["repeat_actions"]:
            alarm["state_reason"] = reason
            notifier.notify(alarm, previous, reason, reason_data)

    # --- threshold alarms
    @staticmethod
    def _reason(alarm: dict, values: list[float], state: str, count: int) -> tuple[str, dict]:
        if state == OK:
            disposition, count = "inside", len(values) - count
        else:
            disposition = "outside"
        data = {"type": "threshold", "disposition": disposition, "count": count,
                "most_recent": values[-1] if values else None}
        verb = "Transition to" if alarm["state"] != state else "Remaining as"
        return (f"{verb} {state} due to {count} samples {disposition} threshold, most recent: "
                f"{data['most_recent']}", data)

    def evaluate_threshold(self, alarm: dict) -> None:
        try:
            state, trending, values, outside = evaluate_rule(self.metric, alarm["rule"], alarm["type"])
            unknown_reason = None
        except InsufficientData as e:
            state, trending, values, outside, unknown_reason = UNKNOWN, None, e.statistics, 0, e.reason
        unknown = alarm["state"] == UNKNOWN
        continuous = alarm["repeat_actions"]
        if trending:
            if unknown or continuous:
                target = trending if unknown else alarm["state"]
                self.refresh(alarm, target, *self._reason(alarm, values, target, outside))
            return
        if state == UNKNOWN:
            if not unknown:
                data = {"type": "threshold", "disposition": "unknown",
                        "count": alarm["rule"]["evaluation_periods"], "most_recent": values[-1] if values else None}
                self.refresh(alarm, UNKNOWN, unknown_reason, data)
        elif alarm["state"] != state or continuous:
            self.refresh(alarm, state, *self._reason(alarm, values, state, outside))

    # --- composite alarms
    def evaluate_composite(self, alarm: dict) -> None:
        leaves: list[dict] = []  # {"name", "rule", "state", "trending"}

        def leaf_state(leaf: dict) -> None:
            if "state" not in leaf:
                try:
                    leaf["state"], leaf["trending"], _, _ = evaluate_rule(self.metric, leaf["rule"],
                                                                          leaf["rule"]["type"])
                except InsufficientData:
                    leaf["state"], leaf["trending"] = UNKNOWN, None

        def parse(rule: dict):
            if "and" in rule or "or" in rule:
                key = "and" if "and" in rule else "or"
                parts = [parse(r) for r in rule[key]]
                return (key, [p[0] for p in parts]), ("or" if key == "and" else "and", [p[1] for p in parts])
            leaf = {"name": f"rule{len(leaves) + 1}", "rule": rule}
            leaves.append(leaf)
            return ("alarm", leaf), ("ok", leaf)

        def truth(node) -> bool:
            kind, arg = node
            if kind in ("and", "or"):
                results = [truth(n) for n in arg]
                return all(results) if kind == "and" else any(results)
            return arg["state"] == (ALARM if kind == "alarm" else OK)

        def text(node) -> str:
            kind, arg = node
            if kind in ("and", "or"):
                return "(" + f" {kind} ".join(text(n) for n in arg) + ")"
            return arg["name"]

        alarm_node, ok_node = parse(alarm["rule"])
        for leaf in leaves:
            leaf_state(leaf)
            if leaf.get("trending"):
                if alarm["state"] == UNKNOWN:
                    leaf["state"] = leaf["trending"]
                else:
                    leaf["state"] = alarm["state"]
        for target, node in ((ALARM, alarm_node), (OK, ok_node)):
            if truth(node):
                self.refresh(alarm, target, *self._composite_reason(alarm, target, text(alarm_node), leaves))
                return
        if alarm["state"] != UNKNOWN:
            self.refresh(alarm, UNKNOWN, *self._composite_reason(alarm, UNKNOWN, text(alarm_node), leaves))

    @staticmethod
    def _composite_reason(alarm: dict, state: str, expression: str, leaves: list[dict]) -> tuple[str, dict]:
        causes = {leaf["name"]: leaf["rule"] for leaf in leaves if leaf.get("state") == state}
        data = {"type": "composite", "composition_form": expression, "causative_rules": causes}
        verb = "transition to" if alarm["state"] != state else "remaining as"
        return (f"Composite rule alarm with composition form: {expression} {verb} {state}, due to rules: "
                f"{', '.join(sorted(causes))} {STATE_CHANGE[state]}", data)

    # --- the loop
    def evaluate(self, alarm: dict) -> bool:
        """Evaluate one alarm; False when outside its time constraints (not evaluated)."""
        if not within_time_constraint(alarm):
            return False
        if alarm["type"] == "composite":
            self.evaluate_composite(alarm)
        elif alarm["type"] in rules.THRESHOLD_TYPES:
            self.evaluate_threshold(alarm)
        return True

    def cycle(self) -> None:
        try:
            todo = alarms.evaluable()
        except Exception:
            log.exception("alarm evaluation cycle failed")
            return
        done = []
        for alarm in todo:
            if self.stop.is_set():
                break
            try:
                if self.evaluate(alarm):
                    done.append(alarm["alarm_id"])
            except Exception:
                log.exception("failed to evaluate alarm %s", alarm["alarm_id"])
        try:
            alarms.mark_evaluated(done)
        except Exception:
            log.exception("evaluation times of %d alarms not saved", len(done))

    def run(self) -> None:
        while not self.stop.wait(settings.current.evaluation_interval):
            self.cycle()

    # --- event alarms
    def on_notification(self, event_type: str, payload: dict) -> None:
        """The bus's subscriber: queue the event (never block whoever notified)."""
        if event_type.startswith("alarm."):
            return
        try:
            self.events.put_nowait((event_type, payload))
        except queue.Full:
            log.warning("event alarms: queue full, event %s dropped", event_type)

    def run_events(self) -> None:
        while not self.stop.is_set():
            try:
                event_type, payload = self.events.get(timeout=1)
            except queue.Empty:
                continue
            try:
                self.evaluate_event(event_type, payload)
            except Exception:
                log.exception("event alarm evaluation of %s failed", event_type)

    def evaluate_event(self, event_type: str, payload: dict) -> None:
        event = as_event(event_type, payload)
        project = event["project"]
        for alarm in alarms.evaluable(event=True, project_id=project):
            if not alarm["repeat_actions"] and alarm["state"] == ALARM:
                continue
            if not fnmatch.fnmatch(event_type, alarm["rule"].get("event_type") or "*"):
                continue
            if all(_event_matches(event, q) for q in alarm["rule"].get("query", [])):
                reason = (f"Event <id={event['message_id']},event_type={event_type}> hits the query <query="
                          f"{json.dumps(alarm['rule'].get('query', []), sort_keys=True)}>.")
                data = {"type": "event", "event": {k: v for k, v in event.items() if k != "project"}}
                self.refresh(alarm, ALARM, reason, data, always_record=alarm["repeat_actions"])


TRAIT_TYPES = {"string": 1, "integer": 2, "float": 3, "datetime": 4}


def as_event(event_type: str, payload: dict) -> dict:
    """A bus notification as a Ceilometer event: its payload's plain values are its traits."""
    traits = []
    for key, value in (payload or {}).items():
        if isinstance(value, bool) or isinstance(value, str):
            traits.append([key, 1, str(value)])
        elif isinstance(value, int):
            traits.append([key, 2, value])
        elif isinstance(value, float):
            traits.append([key, 3, value])
    project = next((str(payload[k]) for k in ("project_id", "tenant_id", "owner") if payload.get(k)), "")
    return {"message_id": str(uuid.uuid4()), "event_type": event_type, "generated": utcnow().isoformat(),
            "traits": traits, "raw": {}, "project": project}


def _event_matches(event: dict, q: dict) -> bool:
    field = q["field"]
    if field.startswith("traits."):
        name = field.split(".", 1)[1]
        have = next((t[2] for t in event["traits"] if t[0] == name), None)
        try:
            want = rules.convert_value(str(q["value"]), q.get("type") or "string")
        except errors.BadRequest:
            return False
        if have is not None:
            try:
                have = type(want)(have) if not isinstance(want, dt.datetime) else have
            except (TypeError, ValueError):
                return False
    else:
        have = event.get(field)
        want = q["value"]
    if have is None:
        return False
    try:
        return COMPARATORS[q.get("op") or "eq"](have, want)
    except TypeError:
        return False


current: Evaluator | None = None


def start() -> Evaluator:
    global current
    if current is not None:
        return current
    current = Evaluator()
    bus.get().subscribe("*", current.on_notification)
    threading.Thread(target=current.run, daemon=True, name="alarm-evaluator").start()
    threading.Thread(target=current.run_events, daemon=True, name="alarm-events").start()
    return current
