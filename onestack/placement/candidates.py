"""Allocation candidates: which sets of providers can satisfy a request.

A request is one or more *groups*. The unsuffixed group's resources may each
come from any provider of one tree (each class whole from one provider), or
from a *sharing* provider (trait MISC_SHARES_VIA_AGGREGATE) in an aggregate with
a provider of that tree; its required traits must be found, together, on the
providers that serve it. A suffixed group (``resources1``, ``resources_NET``)
is served whole by one provider; a suffixed group without resources (1.36,
for ``same_subtree``) names a provider of the tree with those traits.

The search reads the database in a handful of set-based queries (inventories
with usage for the requested classes, the few traits and aggregates the
request names, the sharing providers' aggregates), then works in memory:
per group the providers that fit, indexed by the tree (root) they can serve;
the roots every group can serve; per root the product of the options, checked
for merged capacity, group policy, traits and subtrees. With ``limit`` the
search stops as soon as it has enough. Provider summaries are read afterwards
for the chosen providers only. The usual scheduling request (one group of
resources only, in a cloud of single-provider trees with no sharing providers)
skips all that: one query picks the providers that fit, the first ``limit``.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session

from onestack.placement import capacity, core, standard
from onestack.placement.capacity import Inventory
from onestack.placement.core import ALLOC, INV, RC, RP, RP_AGG, RP_TRAIT, TRAIT

CHUNK = 500  # ids per IN (...) list


@dataclass
class Group:
    suffix: str = ""  # "" is the unsuffixed group
    resources: dict[int, int] = field(default_factory=dict)  # resource class id -> amount
    required: list[frozenset[int]] = field(default_factory=list)  # each: any of these trait ids
    forbidden: frozenset[int] = frozenset()
    member_of: list[frozenset[str]] = field(default_factory=list)  # each: any of these aggregates
    forbidden_aggs: frozenset[str] = frozenset()
    in_tree: str | None = None  # provider uuid


@dataclass
class Query:
    groups: list[Group]
    group_policy: str | None = None  # "none" | "isolate"
    limit: int | None = None
    root_required: list[frozenset[int]] = field(default_factory=list)
    root_forbidden: frozenset[int] = frozenset()
    same_subtree: list[list[str]] = field(default_factory=list)
    nested: bool = True  # 1.29+: providers below a root may take part
    all_classes: bool = True  # 1.27+: summaries show every class of a provider
    with_traits: bool = True  # 1.17+: summaries show traits
    whole_trees: bool = True  # 1.29+: summaries cover every provider of the trees used


@dataclass
class Candidate:
    allocations: dict[int, dict[int, int]]  # provider id -> class id -> amount
    mappings: dict[str, list[int]]  # group suffix -> provider ids


@dataclass
class Summary:
    uuid: str
    parent_uuid: str | None
    root_uuid: str
    resources: dict[str, tuple[int, int]]  # class name -> (capacity, used)
    traits: list[str]


@dataclass
class Result:
    candidates: list[Candidate]
    summaries: dict[int, Summary]
    uuids: dict[int, str]
    rc_names: dict[int, str]


@dataclass
class _Slot:
    """One choice to make: a provider for a suffixed group, or for one class of the
    unsuffixed group (or, resourceless, a provider of the tree for a suffixed group)."""
    group: Group
    resources: dict[int, int]
    options: dict[int, list[int]]  # root id -> providers


def _chunks(ids: Iterable[int]) -> Iterable[list[int]]:
    ids = sorted(ids)
    for i in range(0, len(ids), CHUNK):
        yield ids[i:i + CHUNK]


class _World:
    """What the search knows of the providers, read in a few queries."""

    def __init__(self, s: Session, q: Query):
        self.s = s
        rcs = sorted({rc for g in q.groups for rc in g.resources})
        self.inv: dict[tuple[int, int], tuple[Inventory, int]] = {}
        self.parent: dict[int, int | None] = {}
        self.root: dict[int, int] = {}
        self.by_rc: dict[int, list[int]] = defaultdict(list)
        self.uuid: dict[int, str] = {}
        shares = core.trait_ids(s, [standard.SHARES_TRAIT]).get(standard.SHARES_TRAIT)
        self.plain = self._load_plain(s, q, shares)
        if not self.plain:
            u = core.usage_subquery(rcs)
            rows = s.execute(
                sa.select(INV.c.resource_provider_id, INV.c.resource_class_id, RP.c.uuid, INV.c.total,
                          INV.c.reserved, INV.c.min_unit, INV.c.max_unit, INV.c.step_size, INV.c.allocation_ratio,
                          sa.func.coalesce(u.c.used, 0), RP.c.parent_provider_id, RP.c.root_provider_id)
                .select_from(INV.join(RP, RP.c.id == INV.c.resource_provider_id)
                             .outerjoin(u, sa.and_(u.c.rp == INV.c.resource_provider_id,
                                                   u.c.rc == INV.c.resource_class_id)))
                .where(INV.c.resource_class_id.in_(rcs))).all()
            for rp, rc, uuid, total, reserved, mn, mx, step, ratio, used, parent, root in rows:
                self.inv[(rp, rc)] = (Inventory(total, reserved, mn, mx, step, ratio), int(used))
                self.parent[rp] = parent
                self.root[rp] = root or rp
                self.uuid[rp] = uuid
                self.by_rc[rc].append(rp)
            for rps in self.by_rc.values():
                rps.sort()
        # the few traits the request names, and the sharing trait
        wanted = {t for g in q.groups for ts in g.required for t in ts} | \
            {t for g in q.groups for t in g.forbidden} | {t for ts in q.root_required for t in ts} | \
            set(q.root_forbidden) | ({shares} if shares is not None else set())
        self.traits: dict[int, set[int]] = defaultdict(set)
        if wanted:
            for rp, t in s.execute(sa.select(RP_TRAIT.c.resource_provider_id, RP_TRAIT.c.trait_id)
                                   .where(RP_TRAIT.c.trait_id.in_(sorted(wanted)))).all():
                self.traits[rp].add(t)
        self.sharing = {rp for rp in self.parent if shares in self.traits.get(rp, ())}
        # the aggregates the request names
        aggs = {a for g in q.groups for ms in g.member_of for a in ms} | \
            {a for g in q.groups for a in g.forbidden_aggs}
        self.aggs: dict[int, set[str]] = defaultdict(set)
        if aggs:
            for rp, a in s.execute(sa.select(RP_AGG.c.resource_provider_id, RP_AGG.c.aggregate_uuid)
                                   .where(RP_AGG.c.aggregate_uuid.in_(sorted(aggs)))):
                self.aggs[rp].add(a)
        # the trees a sharing provider serves: its own and those of its aggregates' members
        self.anchors: dict[int, set[int]] = {}
        if self.sharing:
            share_aggs: dict[int, set[str]] = defaultdict(set)
            for chunk in _chunks(self.sharing):
                for rp, a in s.execute(sa.select(RP_AGG.c.resource_provider_id, RP_AGG.c.aggregate_uuid)
                                       .where(RP_AGG.c.resource_provider_id.in_(chunk))):
                    share_aggs[rp].add(a)
            all_aggs = sorted({a for v in share_aggs.values() for a in v})
            roots_of_agg: dict[str, set[int]] = defaultdict(set)
            for i in range(0, len(all_aggs), CHUNK):
                for a, root, rp in s.execute(
                        sa.select(RP_AGG.c.aggregate_uuid, RP.c.root_provider_id, RP.c.id)
                        .join(RP, RP.c.id == RP_AGG.c.resource_provider_id)
                        .where(RP_AGG.c.aggregate_uuid.in_(all_aggs[i:i + CHUNK]))):
                    roots_of_agg[a].add(root or rp)
            for rp in self.sharing:
                self.anchors[rp] = {self.root[rp]} | {r for a in share_aggs[rp] for r in roots_of_agg[a]}
        self.tree_loaded: set[int] = set()

    def _load_plain(self, s: Session, q: Query, shares: int | None) -> bool:
        """The usual scheduling request: one group, of resources only, in a cloud of
        single-provider trees without sharing providers. A candidate is then one provider
        with room for it all, so SQL picks those that fit, in id order (the order of the
        answer) and only the first ``limit``, in one query of a row a provider. False (and
        nothing read) for any other request."""
        g = q.groups[0] if len(q.groups) == 1 else None
        if (g is None or g.suffix or not g.resources or g.required or g.forbidden or g.member_of
                or g.forbidden_aggs or g.in_tree or q.root_required or q.root_forbidden or q.same_subtree):
            return False
        if s.scalar(sa.select(RP.c.id).where(RP.c.parent_provider_id.is_not(None)).limit(1)) is not None:
            return False
        if shares is not None and s.scalar(sa.select(RP_TRAIT.c.resource_provider_id)
                                           .where(RP_TRAIT.c.trait_id == shares).limit(1)) is not None:
            return False
        rcs = sorted(g.resources)
        cols: list = [RP.c.id, RP.c.uuid]
        joined, fits = RP, []
        for rc in rcs:
            amount = g.resources[rc]
            inv = INV.alias(f"inv_{rc}")
            # the provider's usage, summed for the rows looked at only (an index lookup each)
            used = sa.select(sa.func.coalesce(sa.func.sum(ALLOC.c.used), 0)).where(
                ALLOC.c.resource_provider_id == RP.c.id, ALLOC.c.resource_class_id == rc).scalar_subquery()
            joined = joined.join(inv, sa.and_(inv.c.resource_provider_id == RP.c.id, inv.c.resource_class_id == rc))
            # capacity.fits, in SQL
            fits += [inv.c.min_unit <= amount, inv.c.max_unit >= amount, sa.literal(amount) % inv.c.step_size == 0,
                     used + amount <= (inv.c.total - inv.c.reserved) * inv.c.allocation_ratio]
            cols += [inv.c.total, inv.c.reserved, inv.c.min_unit, inv.c.max_unit, inv.c.step_size,
                     inv.c.allocation_ratio, used]
        stmt = sa.select(*cols).select_from(joined).where(*fits).order_by(RP.c.id)
        for row in s.execute(stmt.limit(q.limit) if q.limit else stmt).all():
            rp = row[0]
            self.parent[rp], self.root[rp], self.uuid[rp] = None, rp, row[1]
            for n, rc in enumerate(rcs):
                total, reserved, mn, mx, step, ratio, used = row[2 + 7 * n:9 + 7 * n]
                self.inv[(rp, rc)] = (Inventory(total, reserved, mn, mx, step, ratio), int(used))
                self.by_rc[rc].append(rp)
        return True

    def anchors_of(self, rp: int) -> Iterable[int]:
        return self.anchors.get(rp) or (self.root[rp],)

    def load_trees(self, roots: Iterable[int]) -> None:
        """Parents and roots of every provider in these trees (for subtrees and
        resourceless groups)."""
        todo = set(roots) - self.tree_loaded
        for chunk in _chunks(todo):
            for rp, parent, root in self.s.execute(
                    sa.select(RP.c.id, RP.c.parent_provider_id, RP.c.root_provider_id)
                    .where(RP.c.root_provider_id.in_(chunk))):
                self.parent[rp] = parent
                self.root[rp] = root or rp
        self.tree_loaded |= todo

    def tree_root_of(self, uuid: str) -> int:
        row = self.s.execute(sa.select(RP.c.id, RP.c.root_provider_id).where(
            RP.c.uuid == (core.norm_uuid(uuid) or uuid))).first()
        return -1 if row is None else (row[1] or row[0])

    def is_ancestor(self, a: int, b: int) -> bool:
        while b is not None:
            if a == b:
                return True
            b = self.parent.get(b)
        return False


def _direct_ok(w: _World, g: Group, rp: int, tree: int | None) -> bool:
    traits = w.traits.get(rp, set())
    if g.forbidden & traits or any(not (ts & traits) for ts in g.required):
        return False
    aggs = w.aggs.get(rp, set())
    if g.forbidden_aggs & aggs or any(not (ms & aggs) for ms in g.member_of):
        return False
    return tree is None or w.root[rp] == tree


def _unsuffixed_ok(w: _World, g: Group, rp: int, tree: int | None) -> bool:
    if g.forbidden & w.traits.get(rp, set()):
        return False
    if g.member_of or g.forbidden_aggs:
        aggs = w.aggs.get(rp, set()) | w.aggs.get(w.root[rp], set())
        if g.forbidden_aggs & aggs or any(not (ms & aggs) for ms in g.member_of):
            return False
    return tree is None or w.root[rp] == tree


def _fitting(w: _World, rc: int, amount: int) -> list[int]:
    out = []
    for rp in w.by_rc.get(rc, ()):
        inv, used = w.inv[(rp, rc)]
        if capacity.fits(inv, used, amount):
            out.append(rp)
    return out


def _index(w: _World, providers: Iterable[int], q: Query) -> dict[int, list[int]]:
    by_root: dict[int, list[int]] = defaultdict(list)
    for rp in providers:
        if not q.nested and w.parent.get(rp) is not None:
            continue
        for root in w.anchors_of(rp):
            by_root[root].append(rp)
    return by_root


def _slots(w: _World, q: Query) -> list[_Slot] | None:
    slots: list[_Slot] = []
    resourceless: list[Group] = []
    for g in q.groups:
        tree = w.tree_root_of(g.in_tree) if g.in_tree else None
        if tree == -1:
            return None
        if not g.resources:
            resourceless.append(g)
            continue
        if g.suffix:
            fit: set[int] | None = None
            for rc, amount in g.resources.items():
                these = set(_fitting(w, rc, amount))
                fit = these if fit is None else fit & these
            providers = [rp for rp in sorted(fit or ()) if _direct_ok(w, g, rp, tree)]
            slots.append(_Slot(g, dict(g.resources), _index(w, providers, q)))
        else:
            for rc, amount in g.resources.items():
                providers = [rp for rp in _fitting(w, rc, amount) if _unsuffixed_ok(w, g, rp, tree)]
                slots.append(_Slot(g, {rc: amount}, _index(w, providers, q)))
    if resourceless:
        roots = set.intersection(*(set(sl.options) for sl in slots)) if slots else set()
        w.load_trees(roots)
        members: dict[int, list[int]] = defaultdict(list)
        for rp, root in w.root.items():
            if root in roots:
                members[root].append(rp)
        for g in resourceless:
            tree = w.tree_root_of(g.in_tree) if g.in_tree else None
            options = {root: [rp for rp in sorted(rps) if _direct_ok(w, g, rp, tree)
                              and (q.nested or w.parent.get(rp) is None)]
                       for root, rps in members.items()}
            slots.append(_Slot(g, {}, {r: o for r, o in options.items() if o}))
    return slots


def _root_ok(w: _World, q: Query, root: int) -> bool:
    traits = w.traits.get(root, set())
    return not (q.root_forbidden & traits) and all(ts & traits for ts in q.root_required)


def search(s: Session, q: Query) -> Result:
    w = _World(s, q)
    if w.plain:  # each provider read (in id order) is a candidate: SQL has checked that it fits
        res = q.groups[0].resources
        return _result(s, w, q, [Candidate({rp: dict(res)}, {"": [rp]}) for rp in w.uuid])
    slots = _slots(w, q)
    found: list[Candidate] = []
    if slots:
        roots = set.intersection(*(set(sl.options) for sl in slots))
        if q.same_subtree:
            w.load_trees(roots)
        found = _enumerate(w, q, slots, sorted(r for r in roots if _root_ok(w, q, r)))
    return _result(s, w, q, found)


def _enumerate(w: _World, q: Query, slots: list[_Slot], roots: list[int]) -> list[Candidate]:
    found: list[Candidate] = []
    seen: set = set()
    dedup = bool(w.sharing)  # only a sharing provider serves several trees: the same answer twice
    unsuffixed = [i for i, sl in enumerate(slots) if not sl.group.suffix]
    isolate = [i for i, sl in enumerate(slots) if sl.group.suffix and sl.resources] \
        if q.group_policy == "isolate" else []
    u_required = slots[unsuffixed[0]].group.required if unsuffixed else []
    items = [(sl.group.suffix, list(sl.resources.items())) for sl in slots]
    for root in roots:
        for combo in itertools.product(*(sl.options[root] for sl in slots)):
            if isolate and len({combo[i] for i in isolate}) < len(isolate):
                continue
            alloc: dict[int, dict[int, int]] = {}
            mappings: dict[str, list[int]] = {}
            merged = False
            for (suffix, res), rp in zip(items, combo, strict=True):
                got = mappings.get(suffix)
                if got is None:
                    mappings[suffix] = [rp]
                elif rp not in got:
                    got.append(rp)
                if not res:
                    continue
                mine = alloc.get(rp)
                if mine is None:
                    alloc[rp] = dict(res)
                    continue
                for rc, amount in res:
                    if rc in mine:
                        merged = True
                        mine[rc] += amount
                    else:
                        mine[rc] = amount
            if merged and not _merged_fit(w, alloc):
                continue
            if u_required:
                have = set().union(*(w.traits.get(combo[i], ()) for i in unsuffixed))
                if any(not (ts & have) for ts in u_required):
                    continue
            if q.same_subtree and not all(_same_subtree(w, mappings, sfx) for sfx in q.same_subtree):
                continue
            if dedup:
                key = (frozenset((rp, rc, n) for rp, r in alloc.items() for rc, n in r.items()),
                       frozenset((k, tuple(v)) for k, v in mappings.items()))
                if key in seen:
                    continue
                seen.add(key)
            found.append(Candidate(alloc, mappings))
            if q.limit and len(found) >= q.limit:
                return found
    return found


def _merged_fit(w: _World, alloc: dict[int, dict[int, int]]) -> bool:
    for rp, res in alloc.items():
        for rc, amount in res.items():
            inv, used = w.inv[(rp, rc)]
            if amount > inv.max_unit or used + amount > inv.capacity:
                return False
    return True


def _same_subtree(w: _World, mappings: dict[str, list[int]], suffixes: list[str]) -> bool:
    group = {rp for sfx in suffixes for rp in mappings.get(sfx, ())}
    return any(all(w.is_ancestor(top, rp) for rp in group) for top in group)


def _result(s: Session, w: _World, q: Query, found: list[Candidate]) -> Result:
    used = {rp for c in found for rp in c.allocations} | \
        {rp for c in found for rps in c.mappings.values() for rp in rps}
    # id -> (uuid, parent id, root id) of every provider to summarise
    info: dict[int, tuple[str, int | None, int]] = {
        rp: (w.uuid[rp], w.parent[rp], w.root[rp]) for rp in used if rp in w.uuid}
    missing = used - set(info)
    if q.whole_trees and not w.plain:  # (a plain request's trees are single providers)
        roots = {w.root[rp] for rp in used}
        missing |= {r for r in roots if r not in info}
        # the rest of those trees: the providers below a root (none in a flat cloud)
        for chunk in _chunks(roots):
            for rp, uuid, parent, root in s.execute(
                    sa.select(RP.c.id, RP.c.uuid, RP.c.parent_provider_id, RP.c.root_provider_id)
                    .where(RP.c.root_provider_id.in_(chunk), RP.c.parent_provider_id.is_not(None))).all():
                info[rp] = (uuid, parent, root or rp)
    for chunk in _chunks(missing - set(info)):
        for rp, uuid, parent, root in s.execute(
                sa.select(RP.c.id, RP.c.uuid, RP.c.parent_provider_id, RP.c.root_provider_id)
                .where(RP.c.id.in_(chunk))).all():
            info[rp] = (uuid, parent, root or rp)
    # inventories: the requested classes are known already; read the others if shown
    resources: dict[int, dict[int, tuple[int, int]]] = defaultdict(dict)
    for (rp, rc), (inv, n) in w.inv.items():
        if rp in info:
            resources[rp][rc] = (capacity.shown_capacity(inv), n)
    requested = sorted({rc for g in q.groups for rc in g.resources})
    if q.all_classes and info:
        others = INV.c.resource_class_id.not_in(requested)
        u = sa.select(ALLOC.c.resource_provider_id.label("rp"), ALLOC.c.resource_class_id.label("rc"),
                      sa.func.sum(ALLOC.c.used).label("used")).where(
            ALLOC.c.resource_class_id.not_in(requested)).group_by(
            ALLOC.c.resource_provider_id, ALLOC.c.resource_class_id).subquery()
        for rp, rc, total, reserved, ratio, n in s.execute(
                sa.select(INV.c.resource_provider_id, INV.c.resource_class_id, INV.c.total,
                          INV.c.reserved, INV.c.allocation_ratio, sa.func.coalesce(u.c.used, 0))
                .select_from(INV.outerjoin(u, sa.and_(u.c.rp == INV.c.resource_provider_id,
                                                      u.c.rc == INV.c.resource_class_id)))
                .where(others)).all():
            if rp in info:
                resources[rp][rc] = (int((total - reserved) * ratio), int(n))
    traits: dict[int, list[str]] = defaultdict(list)
    if q.with_traits and info:
        tnames = dict(s.execute(sa.select(TRAIT.c.id, TRAIT.c.name)).all()) if len(info) > CHUNK else None
        for chunk in _chunks(info):
            if tnames is not None:
                rows = s.execute(sa.select(RP_TRAIT.c.resource_provider_id, RP_TRAIT.c.trait_id)
                                 .where(RP_TRAIT.c.resource_provider_id.in_(chunk))).all()
                rows = [(rp, tnames[t]) for rp, t in rows]
            else:
                rows = s.execute(sa.select(RP_TRAIT.c.resource_provider_id, TRAIT.c.name)
                                 .join(TRAIT, TRAIT.c.id == RP_TRAIT.c.trait_id)
                                 .where(RP_TRAIT.c.resource_provider_id.in_(chunk))).all()
            for rp, name in rows:
                traits[rp].append(name)
    names = dict(s.execute(sa.select(RC.c.id, RC.c.name)).all())
    summaries = {}
    for rp, (uuid, parent, root) in info.items():
        summaries[rp] = Summary(
            uuid=uuid,
            parent_uuid=info[parent][0] if parent in info else None,
            root_uuid=info[root][0] if root in info else uuid,
            resources={names[rc]: v for rc, v in resources.get(rp, {}).items()},
            traits=sorted(traits.get(rp, ())),
        )
    return Result(found, summaries, {rp: i[0] for rp, i in info.items()}, names)
