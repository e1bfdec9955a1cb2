"""``POST /v2.1/servers/{id}/remote-consoles`` (2.6+): a console URL for a server.

The legacy actions (``os-getVNCConsole``, ``os-getSerialConsole``) are dispatched by
the server actions module to the same functions in ``onestack.compute.consoles``.
"""

from __future__ import annotations

from onestack.common import db, errors
from onestack.common.http import Req, json_response
from onestack.common.microversion import Version
from onestack.compute import consoles, instances
from onestack.compute.api import api, body_of, mv
from onestack.compute.api.helpers import authorize

# Nova's request schema (2.6; "mks"/"webmks" from 2.8): anything else is a 400
PROTOCOLS = ("vnc", "spice", "rdp", "serial")
TYPES = ("novnc", "xvpvnc", "rdp-html5", "spice-html5", "serial")
PROTOCOLS_28, TYPES_28 = (*PROTOCOLS, "mks"), (*TYPES, "webmks")


@api.route("/v2.1/servers/{server_id}/remote-consoles", ["POST"])
def create_remote_console(req: Req):
    v = mv(req)
    if v < Version(2, 6):
        raise errors.NotFound(f"The resource could not be found: {req.url.path}")
    body = body_of(req, "remote_console")
    protocols, types = (PROTOCOLS_28, TYPES_28) if v >= Version(2, 8) else (PROTOCOLS, TYPES)
    for key, allowed in (("protocol", protocols), ("type", types)):
        value = body.get(key)
        if value not in allowed:
            raise errors.BadRequest(
                f"Invalid input for field/attribute {key}. Value: {value}. "
                f"{value!r} is not one of {list(allowed)}"
            )
    extra = sorted(set(body) - {"protocol", "type"})
    if extra:
        raise errors.BadRequest(
            "Invalid input for field/attribute remote_console. Additional properties are not "
            f"allowed ('{extra[0]}' was unexpected)"
        )
    with db.session() as s:
        inst = instances.get(s, req.ctx, req.path["server_id"])
        authorize(
            "os-remote-consoles",
            req.ctx,
            {"project_id": inst.project_id},
            fallback="os_compute_api:servers:action",
        )
    out = consoles.get_remote_console(req.ctx, inst, body["protocol"], body["type"])
    return json_response({"remote_console": out})
