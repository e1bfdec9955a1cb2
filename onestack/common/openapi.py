"""Each service's OpenAPI 3.1 description, generated from its ``Api`` route table.

Paths, methods, path parameters and whether a route needs a token come from the routes
themselves, read when the document is first asked for (every module has registered its
routes by then). Request bodies are the very schema objects the handlers validate with: the
service names which route reads which (``bodies``); a body named for no route is an error,
and tests/api/test_fuzz.py checks that what a published schema refuses, the service refuses.
The schemas are the JSON Schema draft 4 the validators use (``jsonSchemaDialect`` says so);
formats of our own (``name``, ``cidr`` ...) are checked by onestack.common.validation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from starlette.routing import Route

from onestack.common.http import Api, Req, json_response

DIALECT = "http://json-schema.org/draft-04/schema#"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")  # OpenAPI 3.1's
PATH = "/openapi.json"
_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")  # "{name}" or "{name:path}"


def member(key: str, spec: Any) -> dict:
    """A ``{key: {...}}`` body whose inner object a handler validates with ``spec`` (what
    body_schema reads): Neutron's ``{"network": {...}}``, Keystone's ``{"region": {...}}``."""
    return {"type": "object", "properties": {key: body_schema(spec)}, "required": [key]}


def _is_schema(value: Any) -> bool:
    return isinstance(value, Mapping) and any(k in value for k in ("type", "properties", "anyOf", "oneOf"))


def body_schema(spec: Any) -> dict:
    """One schema of what a route reads: a schema, or ``[(since, schema), ...]`` variants by
    microversion, or a mapping of alternatives (any of them is read)."""
    if _is_schema(spec):
        return dict(spec)
    alternatives = [s for _, s in spec] if isinstance(spec, list) else list(spec.values())
    unique = list({id(s): s for s in alternatives}.values())
    return unique[0] if len(unique) == 1 else {"anyOf": unique}


def document(api: Api, title: str, version: str, prefix: str = "", bodies: Mapping[str, Any] | None = None) -> dict:
    """The OpenAPI 3.1 document of ``api``'s routes; ``bodies`` maps ``"POST /path"`` (the
    route's path as registered) to what body_schema reads."""
    bodies = dict(bodies or {})
    paths: dict[str, dict] = {}
    op_ids: set[str] = set()
    for route in api.routes:
        if not isinstance(route, Route):
            continue
        methods = set(route.methods or ())
        if "GET" in methods:
            methods.discard("HEAD")  # Starlette answers HEAD for every GET
        path = _PARAM.sub(r"{\1}", route.path)
        item = paths.setdefault(path, {})
        for method in sorted(methods):
            # a method OpenAPI 3.1 has no field for (Swift's COPY) goes under an extension
            ops = item if method.lower() in METHODS else item.setdefault("x-methods", {})
            key = method.lower() if ops is item else method
            if key in ops:  # an earlier route answers it, as Starlette routes
                continue
            ops[key] = _operation(route, method, path, bodies.pop(f"{method} {route.path}", None), op_ids)
    if bodies:  # a body named for no route: the service's table is out of date
        raise ValueError(f"{title}: no route for the request bodies of {', '.join(sorted(bodies))}")
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": DIALECT,
        "info": {"title": title, "version": version},
        "servers": [{"url": prefix}],
        "components": {"securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"}}},
        "paths": paths,
    }


def _operation(route: Route, method: str, path: str, body: Any, op_ids: set[str]) -> dict:
    name = getattr(route.endpoint, "__name__", "operation")
    op_id = f"{method.lower()}_{name}"
    n = 2
    while op_id in op_ids:
        op_id, n = f"{method.lower()}_{name}_{n}", n + 1
    op_ids.add(op_id)
    op: dict = {"operationId": op_id,
                "responses": {"default": {"description": "The result, or the service's error body."}}}
    summary = (getattr(route.endpoint, "__doc__", None) or "").strip().splitlines()
    if summary:
        op["summary"] = summary[0]
    params = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
              for p in _PARAM.findall(path)]
    if params:
        op["parameters"] = params
    op["security"] = [{"token": []}] if getattr(route.endpoint, "authenticated", True) else []
    if body is not None:
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": body_schema(body)}}}
    return op


def serve(api: Api, title: str, version: str, bodies: Mapping[str, Any] | None = None) -> None:
    """Register ``GET /openapi.json`` on ``api`` (no token: it describes the API, no data),
    ahead of the service's catch-all routes. Called again (the app built twice), it does nothing."""
    if any(isinstance(r, Route) and r.path == PATH for r in api.routes):
        return
    built: list[dict] = []

    @api.route(PATH, ["GET"], auth=False)
    def openapi(req: Req):
        if not built:  # at the first request every module has registered its routes
            # the service's mount point (onestack.app) is where its paths start
            built.append(document(api, title, version, req.request.scope.get("root_path", ""), bodies))
        return json_response(built[0])

    api.routes.insert(0, api.routes.pop())
