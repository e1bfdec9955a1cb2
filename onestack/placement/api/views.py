"""The wire format of the Placement API: every response body is built here."""

from __future__ import annotations

from onestack.common.microversion import Version
from onestack.placement import candidates as cands
from onestack.placement.allocations import ConsumerAllocations
from onestack.placement.api import versions as mv
from onestack.placement.capacity import Inventory
from onestack.placement.core import Provider


def provider(prefix: str, p: Provider, v: Version) -> dict:
    base = f"{prefix}/resource_providers/{p.uuid}"
    links = [{"rel": "self", "href": base}]
    if v >= mv.AGGREGATES:
        links.append({"rel": "aggregates", "href": f"{base}/aggregates"})
    links += [{"rel": "inventories", "href": f"{base}/inventories"},
              {"rel": "usages", "href": f"{base}/usages"}]
    if v >= mv.TRAITS:
        links.append({"rel": "traits", "href": f"{base}/traits"})
    if v >= mv.ALLOCATIONS_LINK:
        links.append({"rel": "allocations", "href": f"{base}/allocations"})
    out = {"generation": p.generation, "uuid": p.uuid, "links": links, "name": p.name}
    if v >= mv.NESTED:
        out["parent_provider_uuid"] = p.parent_uuid
        out["root_provider_uuid"] = p.root_uuid
    return out


def providers(prefix: str, ps: list[Provider], v: Version) -> dict:
    return {"resource_providers": [provider(prefix, p, v) for p in ps]}


def inventory(inv: Inventory, generation: int) -> dict:
    return {**inv.as_dict(), "resource_provider_generation": generation}


def inventories(invs: dict[str, Inventory], generation: int) -> dict:
    return {"inventories": {rc: inv.as_dict() for rc, inv in invs.items()},
            "resource_provider_generation": generation}


def resource_class(prefix: str, name: str) -> dict:
    return {"name": name, "links": [{"rel": "self", "href": f"{prefix}/resource_classes/{name}"}]}


def resource_classes(prefix: str, names: list[str]) -> dict:
    return {"resource_classes": [resource_class(prefix, n) for n in names]}


def traits(names: list[str], generation: int | None = None) -> dict:
    out: dict = {"traits": names}
    if generation is not None:
        out["resource_provider_generation"] = generation
    return out


def aggregates(aggs: list[str], generation: int, v: Version) -> dict:
    out: dict = {"aggregates": aggs}
    if v >= mv.AGGREGATES_GENERATION:
        out["resource_provider_generation"] = generation
    return out


def consumer_allocations(c: ConsumerAllocations, v: Version) -> dict:
    out: dict = {"allocations": c.allocations}
    if not c.allocations:
        return out
    if v >= mv.ALLOCATIONS_DICT:
        out["project_id"] = c.project_id
        out["user_id"] = c.user_id
    if v >= mv.CONSUMER_GENERATION:
        out["consumer_generation"] = c.generation
    if v >= mv.CONSUMER_TYPES:
        out["consumer_type"] = c.consumer_type or "unknown"
    return out


def provider_allocations(allocs: dict[str, dict[str, int]], generation: int) -> dict:
    return {"allocations": {c: {"resources": res} for c, res in allocs.items()},
            "resource_provider_generation": generation}


def provider_usages(usages: dict[str, int], generation: int) -> dict:
    return {"resource_provider_generation": generation, "usages": usages}


def usages(data: dict) -> dict:
    return {"usages": data}


def candidates(result: cands.Result, v: Version) -> dict:
    uuid, rc = result.uuids, result.rc_names
    as_dict, mappings = v >= mv.ALLOCATIONS_DICT, v >= mv.MAPPINGS  # (asked once: 1,000s of candidates)
    with_traits, nested = v >= mv.CANDIDATES_REQUIRED, v >= mv.NESTED_CANDIDATES
    requests = []
    for c in result.candidates:
        if as_dict:
            req: dict = {"allocations": {uuid[rp]: {"resources": {rc[k]: n for k, n in res.items()}}
                                         for rp, res in c.allocations.items()}}
        else:
            req = {"allocations": [{"resource_provider": {"uuid": uuid[rp]},
                                    "resources": {rc[k]: n for k, n in res.items()}}
                                   for rp, res in c.allocations.items()]}
        if mappings:
            req["mappings"] = {sfx: [uuid[rp] for rp in rps] for sfx, rps in c.mappings.items()}
        requests.append(req)
    summaries = {}
    for s in result.summaries.values():
        entry: dict = {"resources": {name: {"capacity": cap, "used": used}
                                     for name, (cap, used) in s.resources.items()}}
        if with_traits:
            entry["traits"] = s.traits
        if nested:
            entry["parent_provider_uuid"] = s.parent_uuid
            entry["root_provider_uuid"] = s.root_uuid
        summaries[s.uuid] = entry
    return {"allocation_requests": requests, "provider_summaries": summaries}


def root(base: str) -> dict:
    return {"versions": [{"id": "v1.0", "max_version": str(mv.MAX), "min_version": str(mv.MIN),
                          "status": "CURRENT", "links": [{"rel": "self", "href": base}]}]}
