"""The dependency graph of a stack's resources.

A resource requires those it names in ``depends_on`` and those its properties and
metadata refer to (get_resource, get_attr, Ref, Fn::GetAtt). Create goes in
dependency order, delete in reverse; :meth:`Graph.ready` tells which resources can
start once others are done, so the engine can run independent ones at once.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping

from onestack.orchestration.template import functions, references
from onestack.orchestration.template.errors import (
    CircularDependency,
    InvalidTemplateReference,
    StackValidationFailed,
)
from onestack.orchestration.template.model import Template


class Graph:
    """Nodes (resource names, in template order) and their requirements."""

    def __init__(self, edges: Mapping[str, Iterable[str]] | None = None):
        self._requires: dict[str, set[str]] = {}
        self._required_by: dict[str, set[str]] = {}
        for node, required in (edges or {}).items():
            self.add(node, required)

    def add(self, node: str, requires: Iterable[str] = ()) -> None:
        """Add a node (if new) and edges ``node -> each of requires``."""
        for name in (node, *requires):
            self._requires.setdefault(name, set())
            self._required_by.setdefault(name, set())
        for name in requires:
            self._requires[node].add(name)
            self._required_by[name].add(node)

    @classmethod
    def from_template(cls, template: Template, enabled: Iterable[str] | None = None,
                      resolver: functions.Resolver | None = None) -> Graph:
        """The graph of a template's resources. ``enabled``: the resources that exist
        (their conditions true; default: all, or as ``resolver`` evaluates them). References to disabled resources are
        dropped (Heat allows them); to unknown ones, InvalidTemplateReference.
        ``resolver`` lets ``if`` follow its condition (else both branches count)."""
        names = list(template.resources)
        choose = None
        if resolver is not None:
            def choose(condition):
                return functions.evaluate_condition(condition, template, resolver)
            if enabled is None:
                enabled = [n for n in names if functions.resource_enabled(
                    template.resources[n], template, resolver)]
        on = set(names if enabled is None else enabled)
        graph = cls()
        for name in names:
            if name not in on:
                continue
            defn = template.resources[name]
            required: list[str] = []
            if defn.external_id is not None:
                if defn.depends_on:
                    raise StackValidationFailed(
                        f"Invalid dependency with external {defn.type} resource: "
                        f"{defn.external_id}")
                graph.add(name)
                continue  # an external resource depends on nothing
            for section, snippet in (("Properties", defn.properties),
                                     ("Metadata", defn.metadata)):
                for target, where in references.references(
                        snippet, template.version.functions, template.resources, choose,
                        f"{name}.{section}"):
                    if target not in template.resources:
                        raise InvalidTemplateReference(target, where)
                    required.append(target)
            for target in defn.depends_on:
                if target not in template.resources:
                    raise InvalidTemplateReference(target, name)
                required.append(target)
            graph.add(name, [t for t in required if t in on])
        return graph

    # ------------------------------------------------------------ queries
    def __contains__(self, node: str) -> bool:
        return node in self._requires

    def __iter__(self):
        return iter(self._requires)

    def __len__(self) -> int:
        return len(self._requires)

    def requires(self, node: str) -> set[str]:
        """What ``node`` needs first (KeyError for an unknown node)."""
        return set(self._requires[node])

    def required_by(self, node: str) -> set[str]:
        """What needs ``node`` (KeyError for an unknown node)."""
        return set(self._required_by[node])

    def edges(self) -> list[tuple[str, str]]:
        """``(requirer, required)`` pairs."""
        return [(n, r) for n, reqs in self._requires.items() for r in sorted(reqs)]

    # ------------------------------------------------------------ orders
    def create_order(self) -> list[str]:
        """Every node after what it requires (ties in template order, as Heat)."""
        return self._toposort(self._requires, self._required_by)

    def delete_order(self) -> list[str]:
        """Every node before what it requires."""
        return self._toposort(self._required_by, self._requires)

    def check(self) -> None:
        """Raise CircularDependency when the graph has a cycle."""
        self.create_order()

    def _toposort(self, needs: dict[str, set[str]], needed_by: dict[str, set[str]]
                  ) -> list[str]:
        index = {n: i for i, n in enumerate(needs)}
        waiting = {n: len(reqs) for n, reqs in needs.items()}
        ready = [(index[n], n) for n, count in waiting.items() if count == 0]
        heapq.heapify(ready)
        order: list[str] = []
        while ready:
            _, node = heapq.heappop(ready)
            order.append(node)
            for other in needed_by[node]:
                waiting[other] -= 1
                if waiting[other] == 0:
                    heapq.heappush(ready, (index[other], other))
        if len(order) != len(needs):
            done = set(order)
            rest = [n for n in needs if n not in done]
            # Heat prints the graph that is left: {node: {what it still needs}, ...}
            text = ", ".join(
                f"{n}: {{{', '.join(sorted(r for r in needs[n] if r not in done))}}}"
                for n in rest)
            raise CircularDependency(f"{{{text}}}")
        return order

    def ready(self, done: Iterable[str], started: Iterable[str] = ()) -> list[str]:
        """Nodes that can be created now: all they require is done, and they are
        neither done nor started (template order)."""
        done, started = set(done), set(started)
        return [n for n, reqs in self._requires.items()
                if n not in done and n not in started and reqs <= done]

    def ready_to_delete(self, done: Iterable[str], started: Iterable[str] = ()) -> list[str]:
        """Nodes that can be deleted now: everything that requires them is deleted."""
        done, started = set(done), set(started)
        return [n for n, users in self._required_by.items()
                if n not in done and n not in started and users <= done]

    def subgraph(self, nodes: Iterable[str]) -> Graph:
        """The graph restricted to ``nodes`` (edges among them only)."""
        keep = set(nodes)
        return Graph({n: self._requires[n] & keep for n in self._requires if n in keep})
