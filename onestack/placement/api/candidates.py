"""GET /allocation_candidates: the query string -> candidates.Query -> the answer."""

from __future__ import annotations

import re

from onestack.common import db, errors
from onestack.common.http import Req, json_response
from onestack.placement import candidates, core
from onestack.placement.api import params, route, views
from onestack.placement.api import versions as mv

_PLAIN = [(mv.CANDIDATES, "resources"), (mv.CANDIDATES_LIMIT, "limit"), (mv.CANDIDATES_REQUIRED, "required"),
          (mv.CANDIDATES_MEMBER_OF, "member_of"), (mv.GRANULAR, "group_policy"),
          (mv.CANDIDATES_IN_TREE, "in_tree"), (mv.ROOT_REQUIRED, "root_required"),
          (mv.SAME_SUBTREE, "same_subtree")]
_GRANULAR = [(mv.GRANULAR, "resources"), (mv.GRANULAR, "required"), (mv.GRANULAR, "member_of"),
             (mv.CANDIDATES_IN_TREE, "in_tree")]
_SUFFIXED = re.compile(r"^(resources|required|member_of|in_tree)(.+)$")
_NUMBER = re.compile(r"^[0-9]+$")
_STRING = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _groups(req: Req, v) -> dict[str, set[str]]:
    """suffix ("" for the unsuffixed group) -> the kinds of parameter given for it."""
    plain = {name for since, name in _PLAIN if v >= since}
    granular = {name for since, name in _GRANULAR if v >= since}
    suffix_ok = _STRING if v >= mv.STRING_SUFFIXES else _NUMBER
    groups: dict[str, set[str]] = {"": set()}
    for name in req.query.keys():
        if name in plain:
            if name in ("resources", "required", "member_of", "in_tree"):
                groups[""].add(name)
            continue
        m = _SUFFIXED.match(name)
        if m and m.group(1) in granular and suffix_ok.match(m.group(2)):
            groups.setdefault(m.group(2), set()).add(m.group(1))
            continue
        raise errors.BadRequest(f"Invalid query string parameters: '{name}' was unexpected.")
    return groups


def _group(s, req: Req, v, suffix: str, kinds: set[str]) -> candidates.Group:
    g = candidates.Group(suffix=suffix)
    if "resources" in kinds:
        g.resources = params.resource_ids(s, params.resources(params.single(req, "resources" + suffix),
                                                              "resources" + suffix), "resources" + suffix)
    if "required" in kinds:
        values = params.many(req, "required" + suffix, repeatable=v >= mv.ANY_TRAITS)
        any_sets, forbidden = params.required(values, v, "required" + suffix)
        g.required, g.forbidden = params.trait_ids(s, any_sets, forbidden)
    if "member_of" in kinds:
        values = params.many(req, "member_of" + suffix, repeatable=v >= mv.MULTI_MEMBER_OF)
        any_sets, forbidden = params.member_of(values, v, "member_of" + suffix)
        g.member_of, g.forbidden_aggs = any_sets, frozenset(forbidden)
    if "in_tree" in kinds:
        tree = params.single(req, "in_tree" + suffix)
        if core.norm_uuid(tree) is None:
            raise errors.BadRequest(f"Invalid query string parameters: Expected 'in_tree{suffix}' parameter "
                                    f"to be a UUID. Got: {tree}")
        g.in_tree = core.norm_uuid(tree)
    return g


@route("/allocation_candidates", "GET", "placement:allocation_candidates:list", since=mv.CANDIDATES)
def list_candidates(req: Req, v):
    kinds = _groups(req, v)
    if v < mv.GRANULAR and "resources" not in kinds[""]:
        raise errors.BadRequest("Invalid query string parameters: 'resources' is a required property",
                                code=core.QUERY_MISSING_VALUE)
    same_subtree = []
    for value in params.many(req, "same_subtree", repeatable=True):
        sfxs = value.split(",")
        for sfx in sfxs:
            if not sfx or sfx not in kinds:
                raise errors.BadRequest(f"Real suffixes should be specified in `same_subtree`: {sfx!r} is "
                                        f"not the suffix of a request group.", code=core.QUERY_BAD_VALUE)
        same_subtree.append(sfxs)
    in_subtree = {sfx for group in same_subtree for sfx in group}
    for sfx, k in kinds.items():
        if sfx and "resources" not in k and sfx not in in_subtree:
            raise errors.BadRequest(
                f"Request group '{sfx}' has no resources{sfx} parameter: a suffixed group without "
                "resources is allowed only when same_subtree names it (1.36+).", code=core.QUERY_BAD_VALUE)
    if not any("resources" in k for k in kinds.values()):
        raise errors.BadRequest("There must be at least one resources or resources[$S] parameter.",
                                code=core.QUERY_MISSING_VALUE)
    policy = params.single(req, "group_policy")
    if policy is not None and policy not in ("none", "isolate"):
        raise errors.BadRequest(f"Invalid query string parameters: 'group_policy' must be 'none' or "
                                f"'isolate', not {policy!r}.")
    if policy is None and sum(1 for sfx, k in kinds.items() if sfx and "resources" in k) > 1:
        raise errors.BadRequest('The "group_policy" parameter is required when specifying more than one '
                                '"resources{N}" parameter.', code=core.QUERY_MISSING_VALUE)
    limit = params.single(req, "limit")
    if limit is not None:
        if not limit.isdigit() or int(limit) < 1:
            raise errors.BadRequest(f"Invalid query string parameters: 'limit' must be a positive integer, "
                                    f"not {limit!r}.")
        limit = int(limit)
    with db.session() as s:
        groups = [_group(s, req, v, sfx, k) for sfx, k in kinds.items() if k]
        q = candidates.Query(groups=groups, group_policy=policy, limit=limit, same_subtree=same_subtree,
                             nested=v >= mv.NESTED_CANDIDATES, all_classes=v >= mv.SUMMARIES_ALL_CLASSES,
                             with_traits=v >= mv.CANDIDATES_REQUIRED,
                             whole_trees=v >= mv.NESTED_CANDIDATES)
        values = params.many(req, "root_required", repeatable=False)
        if values:
            any_sets, forbidden = params.required(values, v, "root_required")
            q.root_required, q.root_forbidden = params.trait_ids(s, any_sets, forbidden)
        result = candidates.search(s, q)
    return json_response(views.candidates(result, v))
