"""Policy engine: the rule language OpenStack operators know (oslo.policy style).

A rule is an expression of checks joined by ``and``, ``or``, ``not`` and
parentheses. Checks:

* ``role:admin``            the token carries the role (implied roles included)
* ``rule:admin_required``   another named rule
* ``system_scope:all``      any credential compared with a literal ...
* ``project_id:%(target.project.id)s``  ... or with a value from the target
* ``@`` always, ``!`` never; an empty rule means always.

Each service registers default rules; an operator overrides any of them in
``<policy dir>/<service>.yaml`` (``"identity:list_users": "role:admin"``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from onestack.common import errors

log = logging.getLogger(__name__)

Check = Callable[[dict, dict, "Enforcer"], bool]


class PolicySyntaxError(ValueError):
    pass


def _tokens(rule: str) -> list[str]:
    out: list[str] = []
    for tok in rule.split():
        stripped = tok.lstrip("(")
        out.extend("(" * (len(tok) - len(stripped)))
        core = stripped.rstrip(")")
        # A trailing ")" belongs to the check only inside "%(...)s" (which ends in "s").
        if core:
            out.append(core)
        out.extend(")" * (len(stripped) - len(core)))
    return out


def _lookup(data: dict, dotted: str) -> Any:
    if dotted in data:
        return data[dotted]
    cur: Any = data
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


_TARGET = re.compile(r"^%\((?P<key>[^)]+)\)s$")


def _literal(text: str) -> Any:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return {"True": True, "False": False}.get(text, text)


def _make_check(tok: str) -> Check:
    if tok == "@":
        return lambda creds, target, enf: True
    if tok == "!":
        return lambda creds, target, enf: False
    kind, sep, match = tok.partition(":")
    if not sep:
        raise PolicySyntaxError(f"not a check: {tok!r}")
    if kind == "role":
        want = match.lower()
        return lambda creds, target, enf: want in creds.get("roles_lower", ())
    if kind == "rule":
        return lambda creds, target, enf: enf.check_rule(match, creds, target)
    m = _TARGET.match(match)
    if m:
        key = m.group("key")

        def compare_target(creds, target, enf):
            want = _lookup(target, key)
            have = _lookup(creds, kind)
            return want is not None and have is not None and str(want) == str(have)

        return compare_target
    lit = _literal(match)

    def compare_literal(creds, target, enf):
        have = _lookup(creds, kind)
        if isinstance(lit, bool):
            return bool(have) is lit and have is not None
        return have is not None and str(have) == str(lit)

    return compare_literal


def parse(rule: str) -> Check:
    """Compile a rule string into a callable ``check(creds, target, enforcer)``."""
    toks = _tokens(rule)
    if not toks:
        return lambda creds, target, enf: True
    pos = 0

    def peek():
        return toks[pos] if pos < len(toks) else None

    def take():
        nonlocal pos
        pos += 1
        return toks[pos - 1]

    def expr() -> Check:
        parts = [conj()]
        while peek() == "or":
            take()
            parts.append(conj())
        return parts[0] if len(parts) == 1 else (lambda c, t, e: any(p(c, t, e) for p in parts))

    def conj() -> Check:
        parts = [neg()]
        while peek() == "and":
            take()
            parts.append(neg())
        return parts[0] if len(parts) == 1 else (lambda c, t, e: all(p(c, t, e) for p in parts))

    def neg() -> Check:
        if peek() == "not":
            take()
            inner = neg()
            return lambda c, t, e: not inner(c, t, e)
        return atom()

    def atom() -> Check:
        tok = peek()
        if tok is None:
            raise PolicySyntaxError(f"rule ends too early: {rule!r}")
        take()
        if tok == "(":
            inner = expr()
            if peek() != ")":
                raise PolicySyntaxError(f"missing ')' in {rule!r}")
            take()
            return inner
        if tok in (")", "and", "or"):
            raise PolicySyntaxError(f"unexpected {tok!r} in {rule!r}")
        return _make_check(tok)

    check = expr()
    if pos != len(toks):
        raise PolicySyntaxError(f"unexpected {toks[pos]!r} in {rule!r}")
    return check


class Enforcer:
    """The rules of one service: defaults, overridden by the operator's file."""

    def __init__(self, service: str, defaults: dict[str, str], policy_dir: Path | None = None):
        self.service = service
        self.rules: dict[str, str] = dict(defaults)
        self.path = (policy_dir / f"{service}.yaml") if policy_dir else None
        if self.path and self.path.exists():
            overrides = yaml.safe_load(self.path.read_text()) or {}
            if not isinstance(overrides, dict):
                raise PolicySyntaxError(f"{self.path} must map rule names to rule strings")
            self.rules.update({str(k): str(v) for k, v in overrides.items()})
        self._compiled: dict[str, Check] = {}
        for name, text in self.rules.items():
            try:
                self._compiled[name] = parse(text)
            except PolicySyntaxError as e:
                raise PolicySyntaxError(f"policy rule {name!r} of {service}: {e}") from None

    def check_rule(self, name: str, creds: dict, target: dict) -> bool:
        check = self._compiled.get(name)
        if check is None:
            log.warning("policy rule %r of %s is not defined: denying", name, self.service)
            return False
        return check(creds, target, self)

    def authorize(self, name: str, ctx, target: dict | None = None) -> None:
        """Raise Forbidden unless the caller's credentials satisfy rule ``name``."""
        if name not in self._compiled:
            raise RuntimeError(f"no policy rule {name!r} registered for {self.service}")
        # Rules name target values as %(target.<key>)s, as Keystone's do.
        if not self.check_rule(name, ctx.policy_creds(), {"target": target or {}}):
            raise errors.Forbidden(f"You are not authorized to perform the requested action: {name}.")

    def allowed(self, name: str, ctx, target: dict | None = None) -> bool:
        return self.check_rule(name, ctx.policy_creds(), {"target": target or {}})
