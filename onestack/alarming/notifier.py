"""Alarm actions (Aodh's notifiers): ``http(s)://`` webhooks, ``trust+http(s)://`` webhooks
with a trust-scoped token of ``aodh`` in X-Auth-Token, ``log://`` and ``test://``.

A webhook gets Aodh's body (alarm_name, alarm_id, severity, previous, current, reason,
reason_data) as JSON. Deliveries run on a small pool, never in the evaluator's loop; one
that gets no answer or a 5xx is tried again ``notifier_max_retries`` times, waiting
``notifier_retry_backoff`` seconds, then twice as long each time. Each outcome is
written to the alarm's history.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import SplitResult, urlsplit

import httpx

from onestack.alarming import alarms, credentials, settings
from onestack.common import errors

log = logging.getLogger(__name__)

_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="alarm-notifier")
_stop = threading.Event()


def actions_for(alarm: dict, state: str) -> list[str]:
    return alarm[state.replace(" ", "_") + "_actions"]


def notify(alarm: dict, previous: str, reason: str, reason_data: dict) -> None:
    """Fire the actions of the alarm's (new) state, in the background."""
    body = {"alarm_name": alarm["name"], "alarm_id": alarm["alarm_id"], "severity": alarm["severity"],
            "previous": previous, "current": alarm["state"], "reason": reason, "reason_data": reason_data}
    for action in actions_for(alarm, alarm["state"]):
        _pool.submit(_run, dict(alarm), action, body)


def _run(alarm: dict, action: str, body: dict) -> None:
    try:
        outcome = deliver(action, body)
    except Exception as e:  # an action's failure never stops the others, nor the evaluator
        log.exception("alarm %s: action %s failed", alarm["alarm_id"], alarms.scrub(action))
        outcome = f"failed: {e}"
    try:
        alarms.record_action(alarm, action, outcome)
    except Exception:
        log.exception("alarm %s: the outcome of an action was not recorded", alarm["alarm_id"])


def deliver(action: str, body: dict) -> str:
    """Carry out one action; its outcome in words."""
    url = urlsplit(action)
    if url.scheme == "log":
        log.info("Notifying alarm %s %s of %s priority from %s to %s with action %s because %s.",
                 body["alarm_name"], body["alarm_id"], body["severity"], body["previous"], body["current"],
                 action, body["reason"])
        return "logged"
    if url.scheme == "test":  # Aodh's test notifier: nothing leaves the cloud
        return "tested"
    headers = {"Content-Type": "application/json", "x-openstack-request-id": f"req-{uuid.uuid4()}"}
    if url.scheme.startswith("trust+"):
        trust_id = url.username
        if not trust_id:
            return "failed: the trust action has no trust"
        try:
            headers["X-Auth-Token"] = credentials.trust_token(trust_id)
        except errors.ApiError as e:
            return f"failed: no token for the trust: {e.message}"
        url = SplitResult(url.scheme.removeprefix("trust+"), url.netloc.rsplit("@", 1)[-1], url.path,
                          url.query, url.fragment)
    return _post(url.geturl(), json.dumps(body), headers)


def _post(target: str, data: str, headers: dict) -> str:
    s = settings.current
    wait = s.notifier_retry_backoff
    outcome = ""
    for attempt in range(s.notifier_max_retries + 1):
        if attempt:
            if _stop.wait(wait):
                break
            wait *= 2
        try:
            r = httpx.post(target, content=data, headers=headers, timeout=s.notifier_timeout)
        except httpx.HTTPError as e:
            outcome = f"failed: {type(e).__name__}: {e}"
            log.info("webhook %s: %s (attempt %d)", target, outcome, attempt + 1)
            continue
        outcome = f"answered {r.status_code}"
        if r.status_code < 500:
            log.info("webhook %s %s", target, outcome)
            return outcome
        log.info("webhook %s %s (attempt %d)", target, outcome, attempt + 1)
    return outcome


def stop() -> None:
    _stop.set()
