"""Gnocchi's resource query language: the JSON form and the string form (``filter=``).

JSON: ``{"and": [{"=": {"project_id": "x"}}, {">=": {"started_at": "2015-01-01"}}]}``,
``{"not": {...}}``, ``{"in": {"id": [..]}}``, ``{"like": {"name": "web%"}}``.
String: ``project_id='x' and (started_at >= '2015-01-01' or not name like 'web%')``.
Both become one predicate over a resource's document (evaluated in Python, the same on
every database).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from onestack.common import errors
from onestack.metric.timeutil import to_epoch

OPS = {"=": "=", "==": "=", "eq": "=", "!=": "!=", "ne": "!=", "<": "<", "lt": "<", ">": ">", "gt": ">",
       "<=": "<=", "le": "<=", "≤": "<=", ">=": ">=", "ge": ">=", "≥": ">=", "in": "in", "like": "like",
       "ilike": "ilike"}
TIME_FIELDS = {"started_at", "ended_at", "revision_start", "revision_end", "created_at"}

Predicate = Callable[[dict], bool]


def _like(pattern: str, flags=0) -> re.Pattern:
    rx = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.compile(rf"^{rx}$", flags | re.S)


def _norm(field: str, value):
    if field in TIME_FIELDS and value is not None:
        return to_epoch(value, field)
    return value


def _compare(op: str, field: str, value) -> Predicate:
    if op == "in":
        if not isinstance(value, list):
            raise errors.BadRequest(f"Invalid input: 'in' on {field} needs a list")
        wanted = [_norm(field, v) for v in value]
        return lambda doc: _norm(field, doc.get(field)) in wanted
    if op in ("like", "ilike"):
        if not isinstance(value, str):
            raise errors.BadRequest(f"Invalid input: '{op}' on {field} needs a string")
        rx = _like(value, re.I if op == "ilike" else 0)
        return lambda doc: isinstance(doc.get(field), str) and rx.match(doc[field]) is not None
    want = _norm(field, value)

    def check(doc: dict) -> bool:
        have = _norm(field, doc.get(field))
        if op == "=":
            return have == want
        if op == "!=":
            return have != want
        if have is None or want is None:
            return False
        try:
            return {"<": have < want, ">": have > want, "<=": have <= want, ">=": have >= want}[op]
        except TypeError:
            return str(have) < str(want) if op == "<" else str(have) > str(want) if op == ">" else \
                str(have) <= str(want) if op == "<=" else str(have) >= str(want)

    return check


def compile_json(q) -> Predicate:
    if q is None or q == {}:
        return lambda doc: True
    if not isinstance(q, dict) or len(q) != 1:
        raise errors.BadRequest(f"Invalid input: a query must be an object of one operator, not {q!r}")
    (op, arg), = q.items()
    op_l = op.lower()
    if op_l in ("and", "or", "∧", "∨"):
        if not isinstance(arg, list) or not arg:
            raise errors.BadRequest(f"Invalid input: '{op}' needs a non-empty list")
        parts = [compile_json(a) for a in arg]
        if op_l in ("and", "∧"):
            return lambda doc: all(p(doc) for p in parts)
        return lambda doc: any(p(doc) for p in parts)
    if op_l in ("not", "¬"):
        inner = compile_json(arg)
        return lambda doc: not inner(doc)
    if op_l not in OPS:
        raise errors.BadRequest(f"Invalid input: unknown query operator '{op}'")
    if not isinstance(arg, dict) or len(arg) != 1:
        raise errors.BadRequest(f"Invalid input: '{op}' needs one attribute and its value")
    (field, value), = arg.items()
    return _compare(OPS[op_l], field, value)


_TOKEN = re.compile(r"""\s*(?:(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")|(?P<op><=|>=|!=|==|=|<|>|≤|≥)
    |(?P<punct>[()\[\],])|(?P<word>[^\s()\[\],'"=<>!]+))""", re.X)


def _tokens(text: str) -> list[tuple[str, object]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise errors.BadRequest(f"Invalid filter: cannot parse {text[pos:]!r}")
        pos = m.end()
        if m.group("str") is not None:
            out.append(("value", re.sub(r"\\(.)", r"\1", m.group("str")[1:-1])))
        elif m.group("op"):
            out.append(("op", m.group("op")))
        elif m.group("punct"):
            out.append((m.group("punct"), m.group("punct")))
        else:
            out.append(("word", m.group("word")))
    return out


def parse_filter(text: str) -> dict:
    """The string form to the JSON form."""
    toks = _tokens(text)
    pos = 0

    def peek():
        return toks[pos] if pos < len(toks) else (None, None)

    def take():
        nonlocal pos
        if pos >= len(toks):
            raise errors.BadRequest(f"Invalid filter: {text!r} ends too early")
        pos += 1
        return toks[pos - 1]

    def value():
        kind, v = take()
        if kind == "value":
            return v
        if kind == "[":
            items = []
            while peek()[0] != "]":
                items.append(value())
                if peek()[0] == ",":
                    take()
            take()
            return items
        if kind == "word":
            low = str(v).lower()
            if low in ("null", "none"):
                return None
            if low in ("true", "false"):
                return low == "true"
            try:
                return int(v) if re.fullmatch(r"-?\d+", str(v)) else float(v)
            except ValueError:
                return v
        raise errors.BadRequest(f"Invalid filter: unexpected {v!r}")

    def atom():
        kind, v = peek()
        if kind == "(":
            take()
            q = expr()
            if take()[0] != ")":
                raise errors.BadRequest(f"Invalid filter: missing ')' in {text!r}")
            return q
        if kind == "word" and str(v).lower() == "not":
            take()
            return {"not": atom()}
        kind, field = take()
        if kind != "word":
            raise errors.BadRequest(f"Invalid filter: expected an attribute name, got {field!r}")
        kind, op = take()
        if kind not in ("op", "word") or str(op).lower() not in OPS:
            raise errors.BadRequest(f"Invalid filter: unknown operator {op!r}")
        return {str(op).lower(): {field: value()}}

    def conj():
        parts = [atom()]
        while peek()[0] == "word" and str(peek()[1]).lower() == "and":
            take()
            parts.append(atom())
        return parts[0] if len(parts) == 1 else {"and": parts}

    def expr():
        parts = [conj()]
        while peek()[0] == "word" and str(peek()[1]).lower() == "or":
            take()
            parts.append(conj())
        return parts[0] if len(parts) == 1 else {"or": parts}

    q = expr()
    if pos != len(toks):
        raise errors.BadRequest(f"Invalid filter: unexpected {toks[pos][1]!r} in {text!r}")
    return q
