"""nftables tables replaced whole and atomically, read back through ``nft -j``.

A table is the unit onestack owns: each user (the router's NAT, the security groups
of a host) generates its complete table as text and :func:`replace_table` loads it in
one ``nft -f`` transaction that also removes the previous version, so the kernel never
holds half a ruleset and anything not in the new text is gone (reconciliation).
"""

from __future__ import annotations

import json

from onestack.network.linux import ip as iplib

FAMILIES = ("ip", "ip6", "inet", "arp", "bridge", "netdev")


def _check(family: str, name: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown nftables family {family!r}")
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(f"invalid nftables table name {name!r}")


def replace_table(family: str, name: str, body: str, netns: str | None = None) -> None:
    """Load ``table <family> <name> { <body> }`` atomically in place of the old table."""
    _check(family, name)
    text = (f"table {family} {name} {{}}\n"  # so that the delete below always finds one
            f"delete table {family} {name}\n"
            f"table {family} {name} {{\n{body}\n}}\n")
    load(text, netns)


def load(text: str, netns: str | None = None) -> None:
    """``nft -f -``: the whole text is one transaction (all of it or nothing)."""
    iplib.netns_exec(netns, ["nft", "-f", "-"], input=text)


def delete_table(family: str, name: str, netns: str | None = None) -> bool:
    """Remove the table if it exists; True if there was one."""
    _check(family, name)
    if (family, name) not in list_tables(netns):
        return False
    iplib.netns_exec(netns, ["nft", "delete", "table", family, name])
    return True


def list_tables(netns: str | None = None) -> list[tuple[str, str]]:
    out = iplib.netns_exec(netns, ["nft", "-j", "list", "tables"]).stdout
    items = json.loads(out or "{}").get("nftables", [])
    return [(i["table"]["family"], i["table"]["name"]) for i in items if "table" in i]


def table_json(family: str, name: str, netns: str | None = None) -> list[dict]:
    """The table's objects as ``nft -j`` gives them (sets, chains, rules with counters)."""
    _check(family, name)
    out = iplib.netns_exec(netns, ["nft", "-j", "list", "table", family, name]).stdout
    return [i for i in json.loads(out or "{}").get("nftables", []) if "metainfo" not in i]


def counter(family: str, table: str, comment: str, netns: str | None = None, *,
            chain: str | None = None) -> int:
    """Packets counted by the rule carrying ``comment`` (in ``chain`` if given)."""
    for item in table_json(family, table, netns):
        rule = item.get("rule")
        if rule and rule.get("comment") == comment and chain in (None, rule.get("chain")):
            for expr in rule.get("expr", []):
                if "counter" in expr:
                    return int(expr["counter"]["packets"])
    raise KeyError(f"no counted rule {comment!r} in table {family} {table}")


def quote(s: str) -> str:
    """A string literal for nft (device names, comments)."""
    if '"' in s or "\\" in s or "\n" in s:
        raise ValueError(f"cannot quote {s!r} for nft")
    return f'"{s}"'
