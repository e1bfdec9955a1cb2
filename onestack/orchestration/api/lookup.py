"""The last route: ``/stacks/{name}/<word>/...`` (resources, events, outputs, ...) looked
up by the stack's name answers 302 to the same path under the stack's id. Registered
after every other route, which it would otherwise shadow."""

from __future__ import annotations

from onestack.common import errors
from onestack.common.http import Req
from onestack.orchestration.api import route
from onestack.orchestration.api.stacks import LOOKUP_WORDS, redirect_to


@route("/stacks/{name}/{rest:path}", ["GET", "DELETE", "POST", "PUT", "PATCH"])
def lookup(req: Req):
    rest = req.path["rest"]
    if rest.split("/", 1)[0] not in LOOKUP_WORDS:
        raise errors.NotFound(f"The resource could not be found: {req.url.path}")
    raise redirect_to(req, req.path["name"], rest)
