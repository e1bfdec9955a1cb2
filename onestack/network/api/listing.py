"""The generic list query of every Networking collection: filters by attribute and tags,
``fields``, sorting (``sort_key``/``sort_dir``) and pages (``limit``, ``marker``,
``page_reverse``) with Neutron's ``<collection>_links``."""

from __future__ import annotations

from onestack.common import booleans, errors, pagination
from onestack.common.http import Req
from onestack.network import core

CONTROL = {"fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse", "tags", "tags-any", "not-tags",
           "not-tags-any"}


def fields(req: Req) -> list[str] | None:
    fields = [f for v in req.query.getlist("fields") for f in v.split(",") if f]
    return fields or None


def _match(value, wanted: list[str]) -> bool:
    for w in wanted:
        if isinstance(value, bool):
            if w.lower() == str(value).lower():
                return True
        elif value is None:
            if w in ("", "None", "null"):
                return True
        elif isinstance(value, list):
            if any(str(x) == w for x in value):
                return True
        elif str(value) == w:
            return True
    return False


def _fixed_ip_filter(doc: dict, wanted: list[str]) -> bool:
    for w in wanted:
        k, _, v = w.partition("=")
        for f in doc.get("fixed_ips", []):
            if k == "ip_address_substr" and v in f["ip_address"]:
                return True
            if k in ("ip_address", "subnet_id") and f.get(k) == v:
                return True
    return False


def filter_docs(req: Req, docs: list[dict]) -> list[dict]:
    q = req.query
    for key in set(q.keys()) - CONTROL:
        wanted = q.getlist(key)
        attr = "project_id" if key == "tenant_id" else key
        if attr == "fixed_ips":
            docs = [d for d in docs if _fixed_ip_filter(d, wanted)]
        elif attr in ("fields",):
            continue
        else:
            docs = [d for d in docs if attr in d and _match(d.get(attr), wanted)]
    tagsets = {k: {t for v in q.getlist(k) for t in v.split(",") if t} for k in
               ("tags", "tags-any", "not-tags", "not-tags-any") if k in q}
    if tagsets:
        def keep(d):
            tags = set(d.get("tags") or [])
            return (("tags" not in tagsets or tagsets["tags"] <= tags)
                    and ("tags-any" not in tagsets or tagsets["tags-any"] & tags)
                    and ("not-tags" not in tagsets or not tagsets["not-tags"] <= tags)
                    and ("not-tags-any" not in tagsets or not tagsets["not-tags-any"] & tags))
        docs = [d for d in docs if keep(d)]
    return docs


def sort_docs(req: Req, docs: list[dict]) -> list[dict]:
    keys = req.query.getlist("sort_key")
    dirs = req.query.getlist("sort_dir")
    for d in dirs:
        if d not in ("asc", "desc"):
            raise errors.BadRequest(f"{d} is an invalid value for sort_dir; valid values are asc and desc.")
    if not keys:
        return docs
    for i in reversed(range(len(keys))):
        k = keys[i]
        if docs and k not in docs[0]:
            raise errors.BadRequest(f"{k} is an invalid attribute for sort_keys.")
        rev = (dirs[i] if i < len(dirs) else "asc") == "desc"
        docs = sorted(docs, key=lambda d, k=k: (d.get(k) is None, str(d.get(k)) if not isinstance(d.get(k), (int, float))
                                               or isinstance(d.get(k), bool) else f"{d.get(k):020}"), reverse=rev)
    return docs


def _marker_not_found(marker: str) -> errors.NotFound:
    return errors.NotFound(f"Marker {marker} could not be found.")


def page(req: Req, docs: list[dict]) -> tuple[list[dict], list[dict]]:
    limit = pagination.parse_limit(req.query.get("limit"), core.State.settings.list_max) or None
    marker = req.query.get("marker")
    # Neutron's page_reverse: only "true" (any case) turns the walk around
    reverse = booleans.to_bool(req.query.get("page_reverse", ""), true=("true",))
    if reverse:
        docs = list(reversed(docs))
    page, more = pagination.page(docs, limit, marker, key=lambda d: d["id"], missing=_marker_not_found)
    links = []
    if limit and page:
        base = str(req.url).split("?")[0]
        query = [(k, v) for k, v in req.query.multi_items() if k != "page_reverse"]
        if more:
            links.append({"rel": "next", "href": pagination.next_link(base, query, page[-1]["id"], limit)})
        if marker:
            href = pagination.next_link(base, query, page[0]["id"], limit) + "&page_reverse=True"
            links.append({"rel": "previous", "href": href})
    return (list(reversed(page)) if reverse else page), links
