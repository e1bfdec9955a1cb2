"""Which resources a snippet refers to: the edges of the dependency graph."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from onestack.orchestration.template.versions import call_of

# the function kinds whose first argument names a resource
REF_KINDS = ("get_resource", "get_attr_then_select", "get_attr", "get_attr_all",
             "Fn::GetAtt", "Ref")
IF_KINDS = ("if", "if_nullable")

# with no template at hand: the reference functions of every version
ANY_VERSION_TABLE = {"get_resource": "get_resource", "get_attr": "get_attr", "Ref": "Ref",
                     "Fn::GetAtt": "Fn::GetAtt", "if": "if", "Fn::If": "if"}


def references(snippet: Any, table: Mapping[str, str], resources: Collection[str] | None = None,
               choose: Callable[[Any], bool] | None = None, base: str = ""
               ) -> list[tuple[str, str]]:
    """``(resource name, path)`` of each reference in ``snippet``, the path as Heat
    words it in InvalidTemplateReference (``server.Properties.image``, the function's
    own name left out). ``resources``: the template's resource names, so that a CFN
    ``Ref`` of a parameter is not taken for one. ``choose(condition) -> bool`` makes
    an ``if`` follow its condition; without it both branches count."""
    found: list[tuple[str, str]] = []
    _walk(snippet, table, resources, choose, base, found)
    return found


def _walk(snippet, table, resources, choose, path, found) -> None:
    call = call_of(snippet, table)
    if call is not None:
        name, kind, args = call
        here = f"{path}.{name}"
        if kind in IF_KINDS and isinstance(args, list) and args:
            branches = args[1:]
            if choose is not None:
                branches = branches[:1] if choose(args[0]) else branches[1:]
            for branch in branches:
                _walk(branch, table, resources, choose, here, found)
            return
        _walk(args, table, resources, choose, here, found)
        if kind in REF_KINDS:
            target = args if kind in ("get_resource", "Ref") else \
                (args[0] if isinstance(args, list) and args else None)
            if not isinstance(target, str):
                return  # a computed name: known only when resolved
            if kind == "Ref" and resources is not None and target not in resources:
                return  # a parameter
            found.append((target, path))
        return
    if isinstance(snippet, Mapping):
        for key, item in snippet.items():
            _walk(item, table, resources, choose, f"{path}.{key}", found)
    elif isinstance(snippet, list | tuple):
        for i, item in enumerate(snippet):
            _walk(item, table, resources, choose, f"{path}[{i}]", found)
