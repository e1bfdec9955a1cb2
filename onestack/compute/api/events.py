"""``POST /os-server-external-events``: other services tell compute about a server.

An admin/service API (Cinder and Neutron call it with their service users).
Each submitted event comes back with a ``code`` and ``status``: 200 completed
(dispatched to the server's host), 404 unknown server, 422 server on no host,
400 an event that needs a ``tag`` and has none. The answer is 200 when every
event was accepted, else 207 (also when none was: Nova's 404 for that case was
a bug, fixed upstream, see the api-ref note on bug 1855752).

What onestack does with each accepted event:
- ``volume-extended`` (2.51, tag = volume id): an ``extend_volume`` instance
  action is recorded and the host's compute agent is cast ``extend_volume``,
  which reads the new size from the volume API and resizes the guest's disk.
- ``network-changed``, ``network-vif-plugged``, ``network-vif-unplugged``,
  ``network-vif-deleted``: accepted and ignored. The compute agent plugs
  bridges and reads ports itself while it builds (no waiting on Neutron's
  vif-plugged), so there is nothing to wake or refresh.
- ``power-update`` (2.76, tag POWER_ON/POWER_OFF): accepted and ignored; it is
  for bare-metal hosts, whose power Ironic changes behind Nova's back, and the
  compute agent's reconcile loop reads libvirt's power states anyway.
``accelerator-request-bound`` (2.82) and ``volume-reimaged`` (2.93) are beyond
this cloud's maximum microversion (2.79) and refused as unknown names.
"""

from __future__ import annotations

import copy
import logging

import jsonschema
import sqlalchemy as sa

from onestack.common import db, errors
from onestack.common.http import Req, json_response
from onestack.common.microversion import Version
from onestack.compute import instances
from onestack.compute import models as m
from onestack.compute.api import api, mv
from onestack.compute.api import helpers as h

log = logging.getLogger(__name__)

V_VOLUME_EXTENDED = Version(2, 51)
V_POWER_UPDATE = Version(2, 76)

NETWORK_EVENTS = ["network-changed", "network-vif-plugged", "network-vif-unplugged", "network-vif-deleted"]
STATUSES = ["failed", "completed", "in-progress"]
TAG_REQUIRED = {"volume-extended", "power-update"}


def _schema(names: list[str]) -> dict:
    event = {"type": "object",
             "properties": {"name": {"type": "string", "enum": names},
                            "server_uuid": {"type": "string"},
                            "status": {"type": "string", "enum": STATUSES},
                            "tag": {"type": "string", "maxLength": 255}},
             "required": ["name", "server_uuid"], "additionalProperties": False}
    return {"type": "object",
            "properties": {"events": {"type": "array", "minItems": 1, "items": event}},
            "required": ["events"], "additionalProperties": False}


# request schemas by microversion (each adds the event name it introduced)
_SCHEMAS = {
    Version(2, 1): _schema(NETWORK_EVENTS),
    V_VOLUME_EXTENDED: _schema([*NETWORK_EVENTS, "volume-extended"]),
    V_POWER_UPDATE: _schema([*NETWORK_EVENTS, "volume-extended", "power-update"]),
}


def _schema_for(v: Version) -> dict:
    return _SCHEMAS[max(k for k in _SCHEMAS if k <= v)]


def _validate(body, v: Version) -> list[dict]:
    """The events of a valid body, else 400 in Nova's words
    ("Invalid input for field/attribute name. Value: x. 'x' is not one of [...]")."""
    validator = jsonschema.Draft4Validator(_schema_for(v))
    err = jsonschema.exceptions.best_match(validator.iter_errors(body))
    if err is not None:
        path = list(err.absolute_path)
        if path:
            raise errors.BadRequest(f"Invalid input for field/attribute {path[-1]}. Value: "
                                    f"{_short(err.instance)}. {_short(err.message)}")
        raise errors.BadRequest(_short(err.message))
    for e in body["events"]:
        if not instances.is_uuid(e["server_uuid"]):
            raise errors.BadRequest(f"Invalid input for field/attribute server_uuid. Value: {e['server_uuid']}. "
                                    f"'{e['server_uuid']}' is not a 'uuid'")
    return body["events"]


def _short(value) -> str:
    text = str(value)
    return text if len(text) <= 300 else text[:300] + "..."


@api.route("/v2.1/os-server-external-events", ["POST"])
def create(req: Req):
    ctx = req.ctx
    h.authorize("os-server-external-events:create", ctx, {})
    events = _validate(req.json(), mv(req))
    wanted = {e["server_uuid"] for e in events}
    with db.session() as s:
        hosts = dict(s.execute(sa.select(m.Instance.uuid, m.Instance.host).where(
            m.Instance.uuid.in_(wanted), m.Instance.deleted.is_(False))).all())
    out, extends, result = [], [], 200
    for submitted in events:
        e = copy.deepcopy(submitted)
        e.setdefault("status", "completed")
        uuid, name = e["server_uuid"], e["name"]
        if uuid not in hosts:
            e["status"], e["code"] = "failed", 404
        elif name in TAG_REQUIRED and e.get("tag") is None:
            e["status"], e["code"] = "failed", 400
        elif not hosts[uuid]:
            e["status"], e["code"] = "failed", 422
        else:
            e["status"], e["code"] = "completed", 200
            if name == "volume-extended":
                extends.append(e)
            # network-* and power-update: nothing to do here (see the module's notes)
            log.info("event %s:%s for server %s on %s", name, e.get("tag"), uuid, hosts[uuid])
        if e["code"] != 200:
            result = 207
        out.append(e)
    if extends:
        _dispatch_extends(ctx, req.request_id, extends, hosts)
    return json_response({"events": out}, result)


def _dispatch_extends(ctx, request_id: str, events: list[dict], hosts: dict) -> None:
    """One ``extend_volume`` action per server, then a cast per volume to its host."""
    with db.transaction() as s:
        for uuid in dict.fromkeys(e["server_uuid"] for e in events):
            inst = s.get(m.Instance, uuid)
            if inst is not None and not inst.deleted:
                instances.record_action(s, inst, ctx, "extend_volume", request_id)
    for e in events:
        try:
            instances.cast_to(hosts[e["server_uuid"]], "extend_volume", instance_uuid=e["server_uuid"],
                              volume_id=e["tag"], request_id=request_id)
        except errors.ApiError as exc:  # the event stays accepted (dispatch is asynchronous, as in Nova)
            log.warning("volume-extended for %s could not be cast to %s: %s", e["server_uuid"],
                        hosts[e["server_uuid"]], exc.message)
