"""Query string parsing shared by the provider list and allocation candidates:
``resources``, ``required`` (forbidden ``!T`` from 1.22, ``in:`` from 1.39),
``member_of`` (``in:``, repeated from 1.24, forbidden from 1.32)."""

from __future__ import annotations

import re

from onestack.common import errors
from onestack.common.http import Req
from onestack.common.microversion import Version
from onestack.placement import core, standard
from onestack.placement.api import versions as mv


def check_names(req: Req, allowed: set[str], pattern: re.Pattern | None = None) -> None:
    for name in req.query.keys():
        if name not in allowed and not (pattern and pattern.match(name)):
            raise errors.BadRequest(f"Invalid query string parameters: '{name}' was unexpected.")


def single(req: Req, name: str) -> str | None:
    values = req.query.getlist(name)
    if len(values) > 1:
        raise errors.BadRequest(f"Query parameter {name!r} may be given only once.",
                                code=core.QUERY_DUPLICATE_KEY)
    return values[0] if values else None


def many(req: Req, name: str, repeatable: bool) -> list[str]:
    values = req.query.getlist(name)
    if len(values) > 1 and not repeatable:
        raise errors.BadRequest(f"Query parameter {name!r} may be given only once at this microversion.",
                                code=core.QUERY_DUPLICATE_KEY)
    return values


def resources(text: str, name: str = "resources") -> dict[str, int]:
    """``VCPU:2,MEMORY_MB:1024`` -> {"VCPU": 2, "MEMORY_MB": 1024}."""
    out: dict[str, int] = {}
    for part in text.split(","):
        rc, sep, amount = part.strip().partition(":")
        if not sep or not rc or not amount:
            raise errors.BadRequest(
                f"Badly formed {name} parameter. Expected {name} query string parameter in form: "
                f"?{name}=VCPU:2,MEMORY_MB:1024. Got: {text}.")
        try:
            n = int(amount)
        except ValueError:
            raise errors.BadRequest(f"Requested resource {rc} expected positive integer amount. "
                                    f"Got: {amount}.") from None
        if n < 1:
            raise errors.BadRequest(f"Requested resource {rc} requires amount >= 1. Got: {n}.")
        if rc in out:
            raise errors.BadRequest(f"Resource class {rc} appears more than once in {name}.")
        out[rc] = n
    return out


def resource_ids(s, wanted: dict[str, int], name: str = "resources") -> dict[int, int]:
    ids = core.rc_ids(s, wanted)
    for rc in wanted:
        if rc not in ids:
            raise errors.BadRequest(f"Invalid resource class in {name} parameter: No such resource class {rc}.")
    return {ids[rc]: n for rc, n in wanted.items()}


def required(values: list[str], v: Version, name: str = "required"
             ) -> tuple[list[frozenset[str]], set[str]]:
    """Trait expressions -> (list of any-of sets, all of which must hold; forbidden)."""
    any_sets: list[frozenset[str]] = []
    forbidden: set[str] = set()
    for value in values:
        if v >= mv.ANY_TRAITS and value.startswith("in:"):
            names = value[3:].split(",")
            if not all(names) or any(n.startswith("!") for n in names):
                raise errors.BadRequest(
                    f"Invalid query string parameters: Expected '{name}' parameter value of the form: "
                    f"in:HW_CPU_X86_VMX,CUSTOM_MAGIC (forbidden traits are not allowed in an in: list). "
                    f"Got: {value}")
            for n in names:
                _trait_name(n, name, value)
            any_sets.append(frozenset(names))
            continue
        for n in value.split(","):
            if v >= mv.FORBIDDEN_TRAITS and n.startswith("!"):
                _trait_name(n[1:], name, value)
                forbidden.add(n[1:])
            else:
                _trait_name(n, name, value)
                any_sets.append(frozenset([n]))
    both = {n for s in any_sets if len(s) == 1 for n in s} & forbidden
    if both:
        raise errors.BadRequest(f"Conflicting required and forbidden traits found in the following "
                                f"traits keys: {name}: ({', '.join(sorted(both))})")
    return any_sets, forbidden


def _trait_name(n: str, name: str, value: str) -> None:
    if not n or not standard.ANY_NAME.match(n):
        raise errors.BadRequest(f"Invalid query string parameters: Expected '{name}' parameter value of the "
                                f"form: HW_CPU_X86_VMX,CUSTOM_MAGIC. Got: {value}")


def trait_ids(s, any_sets: list[frozenset[str]], forbidden: set[str]
              ) -> tuple[list[frozenset[int]], frozenset[int]]:
    names = {n for ts in any_sets for n in ts} | forbidden
    ids = core.require_traits(s, names)
    return [frozenset(ids[n] for n in ts) for ts in any_sets], frozenset(ids[n] for n in forbidden)


def member_of(values: list[str], v: Version, name: str = "member_of"
              ) -> tuple[list[frozenset[str]], set[str]]:
    """Aggregate expressions -> (list of any-of sets, all of which must hold; forbidden aggregates)."""
    any_sets: list[frozenset[str]] = []
    forbidden: set[str] = set()
    for value in values:
        negate = False
        text = value
        if v >= mv.FORBIDDEN_AGGREGATES and text.startswith("!"):
            negate, text = True, text[1:]
        if text.startswith("in:"):
            text = text[3:]
        aggs = text.split(",")
        if any(a.startswith("!") for a in aggs):
            raise errors.BadRequest(f"Invalid query string parameters: Forbidden aggregates must be given "
                                    f"as !<uuid> or !in:<uuid>,<uuid>, not inside an in: list. Got: {value}")
        norm = [core.norm_uuid(a) for a in aggs]
        if not aggs or None in norm:
            raise errors.BadRequest(f"Invalid query string parameters: Expected '{name}' parameter to "
                                    f"contain valid UUID(s). Got: {value}")
        if negate:
            forbidden |= set(norm)
        else:
            any_sets.append(frozenset(norm))
    return any_sets, forbidden


def member_of_filter(any_sets: list[frozenset[str]], forbidden: set[str]) -> list[tuple[frozenset[str], bool]]:
    return [(s, False) for s in any_sets] + [(frozenset([a]), True) for a in sorted(forbidden)]
