"""The Aodh v2 wire format, written once: alarms, history entries, errors."""

from __future__ import annotations

from starlette.responses import Response

from onestack.alarming import alarms
from onestack.common import errors
from onestack.common.http import json_response
from onestack.common.timeutils import iso_plain

ALARM_KEYS = ("alarm_id", "name", "description", "enabled", "ok_actions", "alarm_actions",
              "insufficient_data_actions", "repeat_actions", "type", "time_constraints", "project_id",
              "user_id", "timestamp", "state", "state_timestamp", "state_reason", "severity",
              "evaluate_timestamp")
TIMES = ("timestamp", "state_timestamp", "evaluate_timestamp")


def alarm(a: dict) -> dict:
    out = {k: a[k] for k in ALARM_KEYS}
    for k in TIMES:
        out[k] = iso_plain(a[k])
    for k in alarms.ACTION_FIELDS:
        out[k] = [alarms.scrub(x) for x in a[k]]
    out[f"{a['type']}_rule"] = a["rule"]
    return out


def change(c: dict) -> dict:
    return {**c, "timestamp": iso_plain(c["timestamp"])}


def error(exc: errors.ApiError) -> Response:
    """WSME's fault, wrapped as Aodh's middleware does: {"error_message": {"faultstring", ...}}."""
    headers = dict(exc.extra.get("headers", {}))
    if exc.status == 401:
        headers.setdefault("WWW-Authenticate", 'Keystone uri="/identity"')
    body = {"error_message": {"faultcode": "Client" if exc.status < 500 else "Server",
                              "faultstring": exc.message, "debuginfo": None}}
    return json_response(body, exc.status, headers)
