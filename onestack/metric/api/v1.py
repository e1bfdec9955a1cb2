"""Routes of the Metric v1 API: parse, call the domain, render (Gnocchi's documents)."""

from __future__ import annotations

import functools
from urllib.parse import quote, urlencode

from onestack.common import errors
from onestack.common.booleans import to_bool
from onestack.common.http import Req, empty, json_response
from onestack.metric import aggregates, indexer, measures, policies, query
from onestack.metric.api import api, body

VERSION = {"id": "v1.0", "status": "CURRENT", "updated": "2015-03-19"}
# Gnocchi's [api] max_limit default: the most items a list answers (the rest through its Link)
MAX_LIMIT = 1000


# POSTs that only read (searches, aggregations); every other POST, PATCH or DELETE writes
_POST_READS = ("/v1/search/", "/v1/aggregates", "/v1/aggregation/")
# a reader (the reader role alone) reads and writes nothing, as the upstream personas
_WRITERS = {"admin", "member", "service"}


def _writers_only(fn):
    @functools.wraps(fn)
    def guarded(req: Req):
        ctx = req.ctx
        if (req.request.method not in ("GET", "HEAD") and ctx is not None
                and not _WRITERS & {r.lower() for r in ctx.roles}):
            raise errors.Forbidden("Access was denied to this resource: a reader may not write.")
        return fn(req)
    return guarded


def route(path: str, methods: list[str], **kw):
    """``path`` and ``path/`` (gnocchiclient asks for ``v1/archive_policy/``): no redirect."""

    def register(fn):
        handler = fn if path.startswith(_POST_READS) else _writers_only(fn)
        api.route(path, methods, **kw)(handler)
        api.route(path + "/", methods, **kw)(handler)
        return fn

    return register


def _root(req: Req) -> str:
    url = req.url
    return f"{url.scheme}://{url.netloc}{req.request.scope.get('root_path', '')}"


def _created(req: Req, doc: dict, path: str):
    """A 201 with the new thing's URL in Location, as Gnocchi's creates answer."""
    return json_response(doc, 201, {"Location": _root(req) + quote(f"/v1/{path}")})


def _flag(req: Req, name: str) -> bool:
    value = req.query.get(name)
    if value is None:
        return False
    try:
        return to_bool(value, strict=True)
    except ValueError:
        raise errors.BadRequest(f"Invalid input: {name} must be a boolean, not {value!r}") from None


def _limit(req: Req, paged: bool = False) -> int | None:
    """``limit``; a paged list (``_page``) answers at most MAX_LIMIT items, as Gnocchi."""
    value = req.query.get("limit")
    if value is None:
        return MAX_LIMIT if paged else None
    if not value.isdigit() or int(value) < 1:
        raise errors.BadRequest(f"Invalid input: limit must be a positive integer, not {value!r}")
    return min(int(value), MAX_LIMIT) if paged else int(value)


def _page(req: Req, docs: list[dict], limit: int | None):
    """A full page links to the next one as Gnocchi does (``Link: <...?marker=<last id>>;
    rel="next"``, which gnocchiclient follows to read the whole list)."""
    headers = None
    if limit and docs and len(docs) >= limit:
        params = [(k, v) for k, v in req.query.multi_items() if k not in ("limit", "marker")]
        params += [("limit", str(limit)), ("marker", docs[-1]["id"])]
        url = req.url
        headers = {"Link": f'<{url.scheme}://{url.netloc}{url.path}?{urlencode(sorted(params))}>; rel="next"'}
    return json_response(docs, headers=headers)


@api.route("/", ["GET"], auth=False)
def versions(req: Req):
    return json_response({"build": "onestack", "versions": [
        {**VERSION, "links": [{"href": f"{_root(req)}/v1/", "rel": "self"}]}]})


@api.route("/v1", ["GET"], auth=False)
@route("/v1/", ["GET"], auth=False)
def v1_root(req: Req):
    root = f"{_root(req)}/v1"
    names = ("archive_policy", "archive_policy_rule", "resource_type", "resource", "metric", "search",
             "aggregation", "aggregates", "batch", "capabilities", "status")
    return json_response({"version": "1.0", "links": [{"href": f"{root}/{n}", "rel": n} for n in names]})


# -- archive policies and rules


@route("/v1/archive_policy", ["GET", "POST"])
def archive_policies(req: Req):
    if req.method == "POST":
        doc = policies.create(req.ctx, body(req))
        return _created(req, doc, f"archive_policy/{doc['name']}")
    return json_response(policies.list_())


@route("/v1/archive_policy/{name}", ["GET", "PATCH", "DELETE"])
def archive_policy(req: Req):
    name = req.path["name"]
    if req.method == "PATCH":
        return json_response(policies.update(req.ctx, name, body(req)))
    if req.method == "DELETE":
        policies.delete(req.ctx, name)
        return empty()
    return json_response(policies.view(policies.get(name)))


@route("/v1/archive_policy_rule", ["GET", "POST"])
def archive_policy_rules(req: Req):
    if req.method == "POST":
        doc = policies.create_rule(req.ctx, body(req))
        return _created(req, doc, f"archive_policy_rule/{doc['name']}")
    return json_response(policies.list_rules())


@route("/v1/archive_policy_rule/{name}", ["GET", "PATCH", "DELETE"])
def archive_policy_rule(req: Req):
    name = req.path["name"]
    if req.method == "PATCH":
        return json_response(policies.rename_rule(req.ctx, name, body(req)))
    if req.method == "DELETE":
        policies.delete_rule(req.ctx, name)
        return empty()
    return json_response(policies.get_rule(name))


# -- resource types


@route("/v1/resource_type", ["GET", "POST"])
def resource_types(req: Req):
    if req.method == "POST":
        data = body(req)
        if not isinstance(data, dict):
            raise errors.BadRequest("Invalid input: expected an object")
        doc = indexer.create_type(req.ctx, data)
        return _created(req, doc, f"resource_type/{doc['name']}")
    return json_response(indexer.list_types())


@route("/v1/resource_type/{name}", ["GET", "PATCH", "DELETE"])
def resource_type(req: Req):
    name = req.path["name"]
    if req.method == "PATCH":
        return json_response(indexer.patch_type(req.ctx, name, body(req)))
    if req.method == "DELETE":
        indexer.delete_type(req.ctx, name)
        return empty()
    return json_response(indexer.type_view(indexer.get_type(name)))


# -- resources


def _sorts(req: Req) -> list[str] | None:
    return req.query.getlist("sort") or None


def _search_body(req: Req):
    text = req.query.get("filter")
    if text:
        return query.parse_filter(text)
    if not req.body.strip():
        return None
    return body(req)


@route("/v1/resource/{type}", ["GET", "POST", "DELETE"])
def resources(req: Req):
    rtype = req.path["type"]
    if req.method == "POST":
        doc = indexer.create_resource(req.ctx, rtype, body(req))
        return _created(req, doc, f"resource/{rtype}/{doc['id']}")
    if req.method == "DELETE":  # batch delete of the resources a search matches
        q = _search_body(req)
        if not q:  # never "everything" by omission
            raise errors.BadRequest("Invalid input: a batch delete needs a query (a JSON body or filter=)")
        found = indexer.search_resources(req.ctx, rtype, q)
        deleted = 0
        for r in found:
            measures.drop(indexer.delete_resource(req.ctx, "generic", r["id"]))
            deleted += 1
        return json_response({"deleted": deleted})
    return _resource_page(req, rtype, None)


def _resource_page(req: Req, rtype: str, q):
    # with history a resource's revisions share its id, which is then no marker: one whole list
    history = _flag(req, "history")
    limit = _limit(req, paged=not history)
    docs = indexer.search_resources(req.ctx, rtype, q, details=_flag(req, "details"), limit=limit,
                                    marker=req.query.get("marker"), sort=_sorts(req), with_history=history)
    return _page(req, docs, None if history else limit)


@route("/v1/resource/{type}/{id}", ["GET", "PATCH", "DELETE"])
def resource(req: Req):
    rtype, rid = req.path["type"], req.path["id"]
    if req.method == "PATCH":
        return json_response(indexer.update_resource(req.ctx, rtype, rid, body(req)))
    if req.method == "DELETE":
        measures.drop(indexer.delete_resource(req.ctx, rtype, rid))
        return empty()
    return json_response(indexer.get_resource(req.ctx, rtype, rid))


@route("/v1/resource/{type}/{id}/history", ["GET"])
def resource_history(req: Req):
    docs = indexer.history(req.ctx, req.path["type"], req.path["id"])
    return json_response(indexer.paginate(docs, _limit(req), req.query.get("marker"),
                                          _sorts(req) or ["revision_start:asc"]))


@route("/v1/resource/{type}/{id}/metric", ["GET", "POST"])
def resource_metrics(req: Req):
    rtype, rid = req.path["type"], req.path["id"]
    if req.method == "POST":
        return json_response(indexer.add_resource_metrics(req.ctx, rtype, rid, body(req)))
    return json_response(indexer.resource_metrics(req.ctx, rtype, rid))


@route("/v1/resource/{type}/{id}/metric/{name}", ["GET", "DELETE"])
def resource_metric(req: Req):
    m, _ = indexer.load_named_metric(req.ctx, req.path["type"], req.path["id"], req.path["name"])
    if req.method == "DELETE":
        indexer.delete_metric(req.ctx, m.id)
        measures.drop([m.id])
        return empty()
    return json_response(indexer.get_metric(req.ctx, m.id))


@route("/v1/resource/{type}/{id}/metric/{name}/measures", ["GET", "POST"])
def resource_metric_measures(req: Req):
    m, p = indexer.load_named_metric(req.ctx, req.path["type"], req.path["id"], req.path["name"])
    return _measures(req, m, p)


@route("/v1/search/resource/{type}", ["POST"])
def search_resources(req: Req):
    return _resource_page(req, req.path["type"], _search_body(req))


# -- metrics and measures


@route("/v1/metric", ["GET", "POST"])
def metrics(req: Req):
    if req.method == "POST":
        doc = indexer.create_metric(req.ctx, body(req))
        return _created(req, doc, f"metric/{doc['id']}")
    filters = {k: req.query.get(k) for k in ("name", "unit", "archive_policy_name", "resource_id",
                                             "created_by_user_id", "created_by_project_id")}
    limit = _limit(req, paged=True)
    return _page(req, indexer.list_metrics(req.ctx, filters, limit, req.query.get("marker"), _sorts(req)), limit)


@route("/v1/metric/{id}", ["GET", "DELETE"])
def metric(req: Req):
    if req.method == "DELETE":
        indexer.delete_metric(req.ctx, req.path["id"])
        measures.drop([req.path["id"]])
        return empty()
    return json_response(indexer.get_metric(req.ctx, req.path["id"]))


@route("/v1/metric/{id}/measures", ["GET", "POST"])
def metric_measures(req: Req):
    m, p = indexer.load_metric(req.ctx, req.path["id"])
    return _measures(req, m, p)


def _measures(req: Req, m, p):
    if req.method == "POST":
        measures.add(m, p, body(req))
        return empty(202)
    q = req.query
    out = measures.series(m, p, q.get("aggregation", "mean"), q.get("granularity"), q.get("start"),
                          q.get("stop"), q.get("resample"))
    return json_response(measures.render(out))


@route("/v1/batch/metrics/measures", ["POST"])
def batch_metrics(req: Req):
    measures.batch_metrics(req.ctx, body(req))
    return empty(202)


@route("/v1/batch/resources/metrics/measures", ["POST"])
def batch_resources(req: Req):
    measures.batch_resources(req.ctx, body(req), _flag(req, "create_metrics"))
    return empty(202)


# -- aggregation


def _params(req: Req) -> dict:
    return {k: req.query.get(k) for k in ("granularity", "start", "stop", "fill", "needed_overlap")
            if req.query.get(k) is not None}


@route("/v1/aggregates", ["POST"])
def aggregates_(req: Req):
    groupby = req.query.getlist("groupby")
    return json_response(aggregates.aggregates(req.ctx, body(req), _params(req), groupby,
                                               _flag(req, "details")))


def _legacy(req: Req, ops: list, search=None, rtype=None) -> list:
    """The aggregated series of the legacy /v1/aggregation endpoints."""
    q = req.query
    doc = {"operations": ops}
    if rtype is not None:
        doc.update({"resource_type": rtype, "search": search})
    params = {**_params(req), "needed_overlap": q.get("needed_overlap", "100")}
    groupby = q.getlist("groupby")
    out = aggregates.aggregates(req.ctx, doc, params, groupby, False)
    if groupby:
        return [{"group": g["group"], "measures": g["measures"]["measures"].get("aggregated", [])}
                for g in out]
    return out["measures"].get("aggregated", [])


@route("/v1/aggregation/metric", ["GET", "POST"])
def aggregation_metric(req: Req):
    q = req.query
    ids = q.getlist("metric")
    if not ids:
        raise errors.BadRequest("Invalid input: at least one metric is required")
    agg = q.get("aggregation", "mean")
    reagg = q.get("reaggregation") or agg
    return json_response(_legacy(req, ["aggregate", reagg, ["metric", *[[i, agg] for i in ids]]]))


@route("/v1/aggregation/resource/{type}/metric/{name}", ["GET", "POST"])
def aggregation_resource(req: Req):
    q = req.query
    agg = q.get("aggregation", "mean")
    reagg = q.get("reaggregation") or agg
    search = _search_body(req) if req.method == "POST" else None
    return json_response(_legacy(req, ["aggregate", reagg, ["metric", req.path["name"], agg]],
                                 search, req.path["type"]))


# -- status and capabilities


@route("/v1/status", ["GET"])
def status(req: Req):
    # measures are aggregated when they arrive: nothing is ever waiting for a metricd
    doc = {"storage": {"summary": {"metrics": 0, "measures": 0}}, "metricd": {"processors": []}}
    if _flag(req, "details"):
        doc["storage"]["measures_to_process"] = {}
    return json_response(doc)


@route("/v1/capabilities", ["GET"])
def capabilities(req: Req):
    return json_response({"aggregation_methods": sorted(policies.ALL_METHODS),
                          "dynamic_aggregation_methods": sorted(aggregates.AGGREGATES),
                          "resample_methods": sorted(aggregates.AGGREGATES),
                          "operations": sorted({"metric", "aggregate", "resample", "rolling",
                                                *aggregates.BINARY, *aggregates.UNARY})})
