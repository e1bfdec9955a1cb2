"""Resource classes (1.2+) and traits (1.6+)."""

from __future__ import annotations

from onestack.common import booleans, db, errors
from onestack.common.http import Req, empty, json_response
from onestack.placement import core
from onestack.placement.api import body, location, params, prefix, route, views
from onestack.placement.api import schemas as sch
from onestack.placement.api import versions as mv

# --- resource classes ------------------------------------------------------------------------


@route("/resource_classes", "GET", "placement:resource_classes:list", since=mv.RESOURCE_CLASSES)
def list_classes(req: Req, v):
    with db.session() as s:
        names = core.list_resource_classes(s)
    return json_response(views.resource_classes(prefix(req), names))


@route("/resource_classes", "POST", "placement:resource_classes:create", since=mv.RESOURCE_CLASSES)
def create_class(req: Req, v):
    name = body(req, sch.RESOURCE_CLASS)["name"]
    with db.transaction(conflict=f"Conflicting resource class already exists: {name}") as s:
        core.create_resource_class(s, name)
    return empty(201, {"Location": location(req, f"/resource_classes/{name}")})


@route("/resource_classes/{name}", "GET", "placement:resource_classes:show", since=mv.RESOURCE_CLASSES)
def show_class(req: Req, v):
    with db.session() as s:
        name = core.get_resource_class(s, req.path["name"])
    return json_response(views.resource_class(prefix(req), name))


@route("/resource_classes/{name}", "PUT", "placement:resource_classes:update", since=mv.RESOURCE_CLASSES,
       until=mv.V("1.6"))
def rename_class(req: Req, v):
    new = body(req, sch.RESOURCE_CLASS)["name"]
    with db.transaction(conflict=f"Resource class already exists: {new}") as s:
        core.rename_resource_class(s, req.path["name"], new)
    return json_response(views.resource_class(prefix(req), new))


@route("/resource_classes/{name}", "PUT", "placement:resource_classes:update", since=mv.RC_PUT_ENSURES)
def ensure_class(req: Req, v):
    name = req.path["name"]
    with db.transaction() as s:
        created = core.ensure_resource_class(s, name)
    headers = {"Location": location(req, f"/resource_classes/{name}")}
    return empty(201 if created else 204, headers)


@route("/resource_classes/{name}", "DELETE", "placement:resource_classes:delete", since=mv.RESOURCE_CLASSES)
def delete_class(req: Req, v):
    with db.transaction() as s:
        core.delete_resource_class(s, req.path["name"])
    return empty()


# --- traits --------------------------------------------------------------------------------------


@route("/traits", "GET", "placement:traits:list", since=mv.TRAITS)
def list_traits(req: Req, v):
    params.check_names(req, {"name", "associated"})
    name = params.single(req, "name")
    startswith = within = associated = None
    if name is not None:
        if name.startswith("startswith:"):
            startswith = name[len("startswith:"):]
        elif name.startswith("in:"):
            within = [n for n in name[3:].split(",") if n]
        else:
            raise errors.BadRequest(
                "Badly formatted name parameter. Expected name query string parameter in form: "
                f"?name=[in|startswith]:[name1,name2|prefix]. Got: \"{name}\"")
    flag = params.single(req, "associated")
    if flag is not None:
        associated = booleans.parse_bool(flag, "associated", true=("true",), false=("false",),
                                           message='The query parameter "associated" only accepts "true" or "false"')
    with db.session() as s:
        names = core.list_traits(s, startswith, within, associated)
    return json_response(views.traits(names))


@route("/traits/{name}", "GET", "placement:traits:show", since=mv.TRAITS)
def show_trait(req: Req, v):
    with db.session() as s:
        core.trait_exists(s, req.path["name"])
    return empty()


@route("/traits/{name}", "PUT", "placement:traits:update", since=mv.TRAITS)
def put_trait(req: Req, v):
    name = req.path["name"]
    with db.transaction() as s:
        created = core.ensure_trait(s, name)
    return empty(201 if created else 204, {"Location": location(req, f"/traits/{name}")})


@route("/traits/{name}", "DELETE", "placement:traits:delete", since=mv.TRAITS)
def delete_trait(req: Req, v):
    with db.transaction() as s:
        core.delete_trait(s, req.path["name"])
    return empty()
