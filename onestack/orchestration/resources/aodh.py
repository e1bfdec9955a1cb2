"""OS::Aodh::* alarms, made, changed and deleted through the alarming service's Aodh v2
API (catalog type ``alarming``): GnocchiResourcesAlarm, GnocchiAggregationByMetricsAlarm,
GnocchiAggregationByResourcesAlarm, CompositeAlarm and EventAlarm.

As Heat does it: the type's own properties become the ``<type>_rule`` of the alarm, the
common ones (actions, severity, enabled, ...) its top-level fields; an action that names
a resource of the stack is that resource's ``AlarmUrl`` (a scaling policy's alarm_url);
queues become ``trust+zaqar://`` URLs. An update reads the alarm, merges the change into
it and PUTs it whole (as aodhclient does); suspend and resume disable and enable it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from onestack.orchestration.resources.base import (
    BOOLEAN,
    INTEGER,
    LIST,
    MAP,
    NUMBER,
    STRING,
    Constraint,
    Property,
    Resource,
    register,
)
from onestack.orchestration.resources.heat import physical_name

OPERATORS = Constraint("allowed_values", ["le", "ge", "eq", "lt", "gt", "ne"])
QUERY_TYPES = Constraint("allowed_values", ["integer", "float", "string", "boolean", "datetime"])

COMMON = {
    "description": Property(STRING, "Description for the alarm.", update_allowed=True),
    "enabled": Property(BOOLEAN, "True if alarm evaluation/actioning is enabled.", default=True,
                        update_allowed=True),
    "alarm_actions": Property(LIST, "A list of URLs (webhooks) to invoke when state transitions to alarm.",
                              update_allowed=True),
    "ok_actions": Property(LIST, "A list of URLs (webhooks) to invoke when state transitions to ok.",
                           update_allowed=True),
    "insufficient_data_actions": Property(LIST, "A list of URLs (webhooks) to invoke when state transitions "
                                                "to insufficient-data.", update_allowed=True),
    "alarm_queues": Property(LIST, "A list of Zaqar queues to post to when state transitions to alarm.",
                             default=[], update_allowed=True, schema=Property(STRING)),
    "ok_queues": Property(LIST, "A list of Zaqar queues to post to when state transitions to ok.", default=[],
                          update_allowed=True, schema=Property(STRING)),
    "insufficient_data_queues": Property(LIST, "A list of Zaqar queues to post to when state transitions to "
                                               "insufficient-data.", default=[], update_allowed=True,
                                         schema=Property(STRING)),
    "repeat_actions": Property(BOOLEAN, "False to trigger actions when the threshold is reached AND the alarm's "
                                        "state has changed. By default, actions are called each time the "
                                        "threshold is reached.", default=True, update_allowed=True),
    "severity": Property(STRING, "Severity of the alarm.", default="low", update_allowed=True,
                         constraints=[Constraint("allowed_values", ["low", "moderate", "critical"])]),
    "time_constraints": Property(LIST, "Describe time constraints for the alarm. Only evaluate the alarm if the "
                                       "time at evaluation is within this time constraint. Start point(s) of the "
                                       "constraint are specified with a cron expression, whereas its duration is "
                                       "given in seconds.", default=[], schema={
                                           "name": Property(STRING, "Name for the time constraint.", required=True),
                                           "start": Property(STRING, "Start time for the time constraint. A CRON "
                                                                     "expression property.", required=True),
                                           "description": Property(STRING, "Description for the time constraint."),
                                           "duration": Property(INTEGER, "Duration for the time constraint.",
                                                                required=True,
                                                                constraints=[Constraint("range", {"min": 0})]),
                                           "timezone": Property(STRING, "Timezone for the time constraint (eg. "
                                                                        "'Asia/Taipei', 'Europe/Amsterdam').")}),
}
ACTIONS = (("alarm_actions", "alarm_queues"), ("ok_actions", "ok_queues"),
           ("insufficient_data_actions", "insufficient_data_queues"))

GNOCCHI = {
    "comparison_operator": Property(STRING, "Operator used to compare specified statistic with threshold.",
                                    update_allowed=True, constraints=[OPERATORS]),
    "evaluation_periods": Property(INTEGER, "Number of periods to evaluate over.", update_allowed=True),
    "aggregation_method": Property(STRING, "The aggregation method to compare to the threshold.",
                                   update_allowed=True),
    "granularity": Property(INTEGER, "The time range in seconds.", update_allowed=True),
    "threshold": Property(NUMBER, "Threshold to evaluate against.", required=True, update_allowed=True),
}

QUERY_ITEM = {
    "field": Property(STRING, "Name of attribute to compare."),
    "type": Property(STRING, "The type of the attribute.", default="string", constraints=[QUERY_TYPES]),
    "op": Property(STRING, "Comparison operator.", constraints=[OPERATORS]),
    "value": Property(STRING, "String value with which to compare."),
}


def _clean(value: Any) -> Any:
    """Without the unset (None) fields: Aodh applies its defaults to them."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


class _Alarm(Resource):
    """An Aodh alarm: ``ALARM_TYPE``, its rule from the type's own properties."""

    REQUIRES_SERVICE = "alarming"
    ALARM_TYPE = ""
    RULE: tuple[str, ...] = ()  # the properties that make the rule

    def _api(self):
        return self.client("alarming")

    def _action_urls(self, actions: list | None, queues: list | None) -> list[str]:
        urls = []
        find = getattr(self.ctx, "peer", None)
        for act in actions or []:
            peer = find(act) if find and isinstance(act, str) else None
            if peer is not None and peer.name == act:  # a resource of the stack: its alarm URL
                urls.append(peer.attribute("AlarmUrl"))
            elif act:
                urls.append(act)
        return urls + ["trust+zaqar://?" + urlencode({"queue_name": q}) for q in queues or []]

    def rule(self, props: dict[str, Any]) -> dict[str, Any]:
        return {k: props.get(k) for k in self.RULE}

    def body(self, props: dict[str, Any]) -> dict[str, Any]:
        """The alarm as Aodh's API takes it."""
        out = {k: props.get(k) for k in ("description", "enabled", "repeat_actions", "severity",
                                         "time_constraints")}
        for actions, queues in ACTIONS:
            out[actions] = self._action_urls(props.get(actions), props.get(queues))
        out["type"] = self.ALARM_TYPE
        out[f"{self.ALARM_TYPE}_rule"] = self.rule(props)
        return _clean(out)

    def handle_create(self) -> None:
        body = {**self.body(self.properties), "name": physical_name(self)}
        self.resource_id = self._api().post("/v2/alarms", body)["alarm_id"]

    def _put(self, change: dict[str, Any]) -> None:
        alarm = self._api().get(f"/v2/alarms/{self.resource_id}")
        key = f"{self.ALARM_TYPE}_rule"
        if isinstance(alarm.get(key), dict) and isinstance(change.get(key), dict):
            change = {**change, key: {**alarm[key], **change[key]}}
        self._api().put(f"/v2/alarms/{self.resource_id}", {**alarm, **change})

    def handle_update(self, new_properties: dict[str, Any], changed: set[str]) -> None:
        if self.resource_id is not None:
            self._put(self.body(new_properties))

    def handle_delete(self) -> None:
        if self.resource_id is not None:
            self._api().delete(f"/v2/alarms/{self.resource_id}")

    def handle_suspend(self) -> None:
        if self.resource_id is not None:
            self._put({"enabled": False})

    def handle_resume(self) -> None:
        if self.resource_id is not None:
            self._put({"enabled": True})

    def handle_check(self) -> None:
        self._api().get(f"/v2/alarms/{self.resource_id}")

    def attribute(self, name: str) -> Any:
        if name != "show":
            raise KeyError(name)
        return self._api().get(f"/v2/alarms/{self.resource_id}") if self.resource_id else None


@register("OS::Aodh::GnocchiResourcesAlarm")
class GnocchiResourcesAlarm(_Alarm):
    """A resource allowing for the watch of some specified resource: an alarm that
    evaluates threshold based on some metric for the specified resource."""

    ALARM_TYPE = "gnocchi_resources_threshold"
    PROPERTIES = {
        "metric": Property(STRING, "Metric name watched by the alarm.", required=True, update_allowed=True),
        "resource_id": Property(STRING, "Id of a resource.", required=True, update_allowed=True),
        "resource_type": Property(STRING, "Resource type.", required=True, update_allowed=True),
        **GNOCCHI, **COMMON,
    }
    RULE = ("metric", "resource_id", "resource_type", *GNOCCHI)


@register("OS::Aodh::GnocchiAggregationByMetricsAlarm")
class GnocchiAggregationByMetricsAlarm(_Alarm):
    """A resource that implements alarm with specified metrics (a list of metric ids)."""

    ALARM_TYPE = "gnocchi_aggregation_by_metrics_threshold"
    PROPERTIES = {
        "metrics": Property(LIST, "A list of metric ids.", required=True, update_allowed=True),
        **GNOCCHI, **COMMON,
    }
    RULE = ("metrics", *GNOCCHI)


@register("OS::Aodh::GnocchiAggregationByResourcesAlarm")
class GnocchiAggregationByResourcesAlarm(_Alarm):
    """A resource that implements alarm as an aggregation of resources alarms: a metric
    of the resources a query finds."""

    ALARM_TYPE = "gnocchi_aggregation_by_resources_threshold"
    PROPERTIES = {
        "metric": Property(STRING, "Metric name watched by the alarm.", required=True, update_allowed=True),
        "query": Property(STRING, "The query to filter the metrics.", required=True, update_allowed=True),
        "resource_type": Property(STRING, "Resource type.", required=True, update_allowed=True),
        **GNOCCHI, **COMMON,
    }
    RULE = ("metric", "query", "resource_type", *GNOCCHI)


@register("OS::Aodh::CompositeAlarm")
class CompositeAlarm(_Alarm):
    """A resource that implements Aodh composite alarm: rules combined with ``and``/``or``."""

    ALARM_TYPE = "composite"
    PROPERTIES = {
        "composite_rule": Property(MAP, "Composite threshold rules in JSON format.", required=True,
                                   update_allowed=True, schema={
                                       "operator": Property(STRING, "The operator indicates how to combine the "
                                                                    "rules.", required=True, update_allowed=True,
                                                            constraints=[Constraint("allowed_values",
                                                                                    ["or", "and"])]),
                                       "rules": Property(LIST, "Rules list. Basic threshold/gnocchi rules and "
                                                               "nested dict which combine threshold/gnocchi rules "
                                                               "by \"and\" or \"or\" are allowed. For example, the "
                                                               "form is like: [RULE1, RULE2, {\"and\": [RULE3, "
                                                               "RULE4]}], the basic threshold/gnocchi rules must "
                                                               "include a \"type\" field.", required=True,
                                                         update_allowed=True,
                                                         constraints=[Constraint("length", {"min": 2})])}),
        **COMMON,
    }

    def rule(self, props: dict[str, Any]) -> dict[str, Any]:
        composite = props.get("composite_rule") or {}
        return {composite.get("operator"): composite.get("rules")}

    def _put(self, change: dict[str, Any]) -> None:
        # a composite rule is replaced whole, never merged
        alarm = self._api().get(f"/v2/alarms/{self.resource_id}")
        self._api().put(f"/v2/alarms/{self.resource_id}", {**alarm, **change})


@register("OS::Aodh::EventAlarm")
class EventAlarm(_Alarm):
    """A resource that implements event alarms: evaluated on the events other services
    emit (``compute.instance.create.end`` ...), filtered by a query."""

    ALARM_TYPE = "event"
    PROPERTIES = {
        "event_type": Property(STRING, "Event type to evaluate against. If not specified will match all events.",
                               default="*", update_allowed=True),
        "query": Property(LIST, "A list for filtering events. Query conditions used to filter specific events "
                                "when evaluating the alarm.", update_allowed=True,
                          schema=Property(MAP, schema=QUERY_ITEM)),
        **COMMON,
    }

    def rule(self, props: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if props.get("query"):
            out["query"] = props["query"]
        if props.get("event_type"):
            out["event_type"] = props["event_type"]
        return out
