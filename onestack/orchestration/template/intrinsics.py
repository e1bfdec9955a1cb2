"""The intrinsic functions that compute a value from their (resolved) arguments.

Each takes the function's name as written (for the error texts) and its arguments
already resolved, and raises ValueError/TypeError/KeyError with Heat's wording; the
evaluator in ``functions`` adds the path. Functions that look things up (get_param,
get_resource, get_attr, get_file, ...) or choose what to resolve (``if``) live there.
"""

from __future__ import annotations

import collections.abc  # yaql reads collections.abc without importing it
import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib import parse as urlparse

import yaql
from yaql.language import exceptions as yaql_exceptions

OMIT = Ellipsis  # what a 2-argument ``if`` gives when false: "as if not written"

# Heat's [yaql] limits (limit_iterators, memory_quota defaults)
_YAQL_OPTIONS = {"yaql.limitIterators": 200, "yaql.memoryQuota": 10000}
_yaql_parser = None
_yaql_context = None


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


# ------------------------------------------------------------------ strings
def join(fn: str, args: Any) -> str:
    """list_join (2013-05-23 .. 2015-04-30) and Fn::Join: [delim, [strings]]."""
    delim, strings = args
    if strings is None:
        strings = []
    if not _is_list(strings):
        raise TypeError(f'"{fn}" must operate on a list')
    if not isinstance(delim, str):
        raise TypeError(f'"{fn}" delimiter must be a string')

    def text(item):
        if item is None:
            return ""
        if not isinstance(item, str):
            raise TypeError(f"Items to join must be strings not {repr(item)[:200]}")
        return item

    return delim.join(text(s) for s in strings)


def join_multiple(fn: str, args: Any) -> str:
    """list_join (2015-10-15+): [delim, list, list, ...]; maps and lists become JSON."""
    delim, lists = args[0], args[1:]
    strings: list = []
    for item in lists:
        if item:
            if not _is_list(item):
                raise TypeError(f'"{fn}" must operate on a list')
            strings += item
    if not isinstance(delim, str):
        raise TypeError(f'"{fn}" delimiter must be a string')

    def text(item):
        if item is None:
            return ""
        if isinstance(item, str):
            return item
        if isinstance(item, (Mapping, Sequence)):
            try:
                return _dumps(item)
            except TypeError:
                raise TypeError("Items to join must be string, map or list. "
                                f"{repr(item)[:200]} failed json serialization") from None
        raise TypeError(f"Items to join must be string, map or list not {repr(item)[:200]}")

    return delim.join(text(s) for s in strings)


def replace(fn: str, template: Any, mapping: Any, *, json_values: bool = False,
            strict: bool = False, allow_empty: bool = True) -> str:
    """str_replace and friends: longer keys first, equal lengths in lexical order."""
    if not isinstance(template, str):
        raise TypeError(f'"{fn}" template must be a string')
    if not isinstance(mapping, Mapping):
        raise TypeError(f'"{fn}" params must be a map')
    unreplaced = set(mapping)

    def empty(param):
        raise ValueError(f"{fn} has an undefined or empty value for param {param}, must be "
                         "a defined non-empty value")

    def as_text(value, param):
        if value is None:
            return "" if allow_empty else empty(param)
        if isinstance(value, (str, int, float, bool)):
            text = str(value)
            if not allow_empty and not text:
                empty(param)
            return text
        if not json_values:
            raise TypeError(f'"{fn}" params must be strings or numbers, param {param} is not '
                            "valid")
        if isinstance(value, (Mapping, Sequence)):
            if not allow_empty and len(value) == 0:
                empty(param)
            return _dumps(value)
        raise TypeError(f'"{fn}" params must be strings, numbers, list or map.')

    def substitute(strings: list[str], keys: list) -> list[str]:
        if not keys:
            return strings
        key, rest = keys[0], keys[1:]
        if not isinstance(key, str):
            raise TypeError(f'"{fn}" param placeholders must be strings')
        value = as_text(mapping[key], key)
        out = []
        for s in strings:
            parts = s.split(key)
            if len(parts) > 1:
                unreplaced.discard(key)
            out.append(value.join(substitute(parts, rest)))
        return out

    keys = sorted(sorted(mapping, key=str), key=lambda k: len(k) if isinstance(k, str) else 0,
                  reverse=True)
    result = substitute([template], keys)[0]
    if strict and unreplaced:
        missing = sorted(sorted(unreplaced), key=len, reverse=True)
        raise ValueError("The following params were not found in the template: "
                         + ",".join(missing))
    return result


def str_split(fn: str, args: Any) -> Any:
    example = f'"{fn}" : [ ",", "apples,pears", <index>]'
    if not isinstance(args, list) or len(args) < 2:
        raise ValueError(f'Incorrect arguments to "{fn}" should be: {example}')
    delim, text, rest = args[0], args[1], args[2:]
    if text is None:
        return None
    if not isinstance(text, str):
        raise TypeError(f"'{type(text).__name__}' object has no attribute 'split'")
    parts = text.split(delim)
    if not rest:
        return parts
    try:
        index = int(rest[0])
    except (ValueError, TypeError):
        raise ValueError(f'Incorrect index to "{fn}" should be: {example}') from None
    try:
        return parts[index]
    except IndexError:
        raise ValueError(f'Incorrect index to "{fn}" should be between 0 and '
                         f"{len(parts) - 1}") from None


def digest(fn: str, args: Any) -> str:
    if not (isinstance(args, list) and all(isinstance(a, str) for a in args)):
        raise TypeError(f'Argument to function "{fn}" must be a list of strings')
    if len(args) != 2:
        raise ValueError(f'Function "{fn}" usage: ["<algorithm>", "<value>"]')
    if args[0].lower() not in hashlib.algorithms_available:
        raise ValueError(f"Algorithm must be one of {hashlib.algorithms_available}")
    algorithm = hashlib.new(args[0])
    algorithm.update(args[1].encode("latin-1"))
    return algorithm.hexdigest()


def make_url(fn: str, args: Any) -> str:
    check_url_args(fn, args)
    scheme = args.get("scheme", "")
    if ":" in scheme:
        raise ValueError("URL \"scheme\" should not contain ':'")

    def netloc():
        username = urlparse.quote(args.get("username", ""), safe="")
        password = urlparse.quote(args.get("password", ""), safe="")
        if username or password:
            yield username
            if password:
                yield ":"
                yield password
            yield "@"
        host = args.get("host", "")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        host = urlparse.quote(host, safe=":")
        if ":" in host:
            host = f"[{host}]"
        yield host
        port = args.get("port", "")
        if port:
            yield ":"
            yield str(port)

    path = urlparse.quote(args.get("path", ""))
    query = urlparse.urlencode(args.get("query", {})).replace("%2F", "/")
    fragment = urlparse.quote(args.get("fragment", ""))
    return urlparse.urlunsplit((scheme, "".join(netloc()), path, query, fragment))


URL_KEYS = ("scheme", "username", "password", "host", "port", "path", "query", "fragment")


def check_url_args(fn: str, args: Mapping, is_function=lambda v: False) -> None:
    """make_url's argument checks (Heat stops at ``query``: keys after it go unchecked)."""
    for key in URL_KEYS:
        if key not in args:
            continue
        value = args[key]
        if is_function(value):
            if key == "query":
                return
            continue
        if key == "query":
            if not isinstance(value, Mapping):
                raise TypeError(f'The "{key}" argument to "{fn}" must be a map')
            return
        if key == "port":
            port = value
            if not isinstance(port, int):
                try:
                    port = int(port)
                except (ValueError, TypeError):
                    raise ValueError(f'Invalid URL port "{value}" for {fn} called with '
                                     f"{dict(args)}") from None
            if not 0 < port <= 65535:
                raise ValueError(f"Invalid URL port {port}, must be in range 1-65535")
        elif not isinstance(value, str):
            raise TypeError(f'The "{key}" argument to "{fn}" must be a string')


# ------------------------------------------------------------------ maps and lists
def map_merge(fn: str, args: Any) -> dict:
    if not isinstance(args, Sequence):
        raise TypeError(f'Incorrect arguments to "{fn}" should be: "{fn}" : '
                        '[ { "key1": "val1" }, { "key2": "val2" } ]')
    result: dict = {}
    for item in args:
        if item is None:
            continue
        if not isinstance(item, Mapping):
            raise TypeError("Incorrect arguments: Items to merge must be maps. "
                            f"{repr(item)[:200]} is type {type(item)} instead of a dict")
        result.update(item)
    return result


def map_replace(fn: str, args: Any) -> dict:
    example = (f'"{fn}" : [ {{ "key1": "val1" }}, '
               '{"keys": {"key1": "key2"}, "values": {"val1": "val2"}}]')

    def as_map(m):
        if m is None:
            return {}
        if isinstance(m, Mapping):
            return m
        raise TypeError(f'Incorrect arguments: to "{fn}", arguments must be a list of maps. '
                        f"Example:  {example}")

    if not isinstance(args, list) or len(args) != 2:
        raise TypeError(f'Incorrect arguments to "{fn}" should be: {example}')
    source, replacements = as_map(args[0]), as_map(args[1])
    for key in replacements:
        if key not in ("keys", "values"):
            raise ValueError(f'Incorrect arguments to "{fn}" should be: {example}')
    new_keys = as_map(replacements.get("keys", {}))
    new_values = as_map(replacements.get("values", {}))
    result: dict = {}
    for key, value in source.items():
        new = new_keys.get(key)
        if new is None:
            new = key
        elif new in source and new != key:
            raise ValueError(f"key replacement {new} collides with a key in the input map")
        elif new in result:
            raise ValueError(f"key replacement {new} collides with a key in the output map")
        try:
            result[new] = new_values.get(value, value)
        except TypeError:  # an unhashable value is kept as it is
            result[new] = value
    return result


def list_concat(fn: str, args: Any, unique: bool = False) -> list:
    if not _is_list(args):
        raise TypeError(f'Incorrect arguments to "{fn}" should be: "{fn}" : '
                        "[ [ <value 1>, <value 2> ], [ <value 3>, <value 4> ] ]")
    result: list = []
    for item in args:
        if item is None:
            continue
        if not _is_list(item):
            raise TypeError("Incorrect arguments: Items to concat must be lists. "
                            f"{json.dumps(args)} contains an item that is not a list: "
                            f"{json.dumps(item)}")
        result.extend(item)
    if not unique:
        return result
    seen: list = []
    for item in result:
        if item not in seen:
            seen.append(item)
    return seen


def filter_list(fn: str, args: Any) -> Any:
    values, sequence = args
    if not sequence:
        return sequence
    if not isinstance(sequence, list):
        raise TypeError(f'"{fn}" only works with lists')
    if not values:
        return sequence
    if not isinstance(values, list):
        raise TypeError(f'"{fn}" filters a list of values')
    return [item for item in sequence if item not in values]


def contains(fn: str, args: Any) -> bool:
    value, sequence = args
    if not isinstance(sequence, Sequence):
        raise TypeError(f'Second argument to "{fn}" should be a sequence.')
    return value in sequence


def repeat(fn: str, for_each: Any, template: Any, kind: str, permutations: bool = True
           ) -> list:
    """repeat: one copy of ``template`` per item (per combination when nested)."""
    if not isinstance(for_each, Mapping) or not for_each:
        raise ValueError("not enough values to unpack (expected 2, got 0)")
    keys = list(for_each)
    nested = permutations if kind == "repeat_nested" else kind != "repeat_nested"
    lists, lengths = [], []
    for value in for_each.values():
        if value is None:
            lists.append([])
            continue
        maps_ok = kind == "repeat_with_map" or (kind == "repeat_nested" and nested)
        if maps_ok:
            if not (isinstance(value, (Sequence, Mapping)) and not isinstance(value, str)):
                raise TypeError(f'The values of the "for_each" argument to "{fn}" must be '
                                "lists or maps")
        elif not _is_list(value):
            raise TypeError(f'The values of the "for_each" argument to "{fn}" must be lists')
        lists.append(list(value))
        lengths.append(len(value))
    if not nested and len(set(lengths)) > 1:
        raise ValueError(f"For {fn}, the length of for_each values should be equal if no "
                         "nested loop.")
    combos = itertools.product(*lists) if nested else zip(*lists, strict=False)
    return [_substitute(keys, values, template) for values in combos]


def _substitute(keys: list, values: Sequence, template: Any) -> Any:
    if isinstance(template, str):
        for key, value in zip(keys, values, strict=True):
            template = template.replace(key, value)
        return template
    if isinstance(template, Sequence):
        return [_substitute(keys, values, item) for item in template]
    if isinstance(template, Mapping):
        return {_substitute(keys, values, k): _substitute(keys, values, v)
                for k, v in template.items()}
    return template


# ------------------------------------------------------------------ yaql
def yaql_parse(fn: str, expression: Any):
    global _yaql_parser, _yaql_context
    if not isinstance(expression, str):
        raise TypeError(f'The "expression" argument to {fn} must contain a string.')
    if _yaql_parser is None:
        _yaql_parser = yaql.YaqlFactory().create(_YAQL_OPTIONS)
        _yaql_context = yaql.create_context()
    try:
        return _yaql_parser(expression)
    except yaql_exceptions.YaqlException as exc:
        raise ValueError(f"Bad expression {exc}.") from None


def yaql_evaluate(fn: str, expression: Any, data: Any) -> Any:
    statement = yaql_parse(fn, expression)
    try:
        return statement.evaluate({"data": data}, _yaql_context.create_child_context())
    except yaql_exceptions.YaqlException as exc:
        raise ValueError(str(exc)) from None


# ------------------------------------------------------------------ CFN
def select(fn: str, args: Any) -> Any:
    index, strings = args
    if strings == "":
        return ""  # a value not available yet
    if isinstance(strings, str):
        try:
            strings = json.loads(strings)
        except ValueError as exc:
            raise ValueError(f'"{fn}": {exc}') from None
    if isinstance(strings, Mapping):
        if not isinstance(index, str):
            raise TypeError(f'Index to "{fn}" must be a string')
        return strings.get(index, "")
    try:
        index = int(index)
    except (ValueError, TypeError):
        pass
    if _is_list(strings):
        if not isinstance(index, int):
            raise TypeError(f'Index to "{fn}" must be an integer')
        try:
            return strings[index]
        except IndexError:
            return ""
    if strings is None:
        return ""
    raise TypeError(f"Arguments to {fn} not fully resolved")


def split(fn: str, args: Any) -> list:
    delim, strings = args
    if not isinstance(delim, str):
        raise TypeError(f"Delimiter for {fn} must be string")
    if not isinstance(strings, str):
        raise TypeError(f"String to split must be string; got {type(strings)}")
    return strings.split(delim)


def base64(fn: str, args: Any) -> str:
    if not isinstance(args, str):
        raise TypeError(f'"{fn}" argument must be a string')
    return args  # Heat passes user data through as it is


def member_list_to_map(fn: str, args: Any) -> dict:
    key_name, value_name, members = args
    if not isinstance(members, collections.abc.Iterable):
        raise TypeError("Member list must be a list")
    pairs = {}
    for item in members:
        if not isinstance(item, str):
            raise TypeError("Member list items must be strings")
        key, _, value = item.partition("=")
        pairs[key] = value
    by_index: dict[int, dict] = {}
    for key, value in pairs.items():
        head, sep, rest = key.partition(".member.")
        number, _, field = rest.partition(".")
        if head == "" and sep and number.isdigit():
            by_index.setdefault(int(number), {})[field] = value
    return {m[key_name]: m[value_name] for _, m in sorted(by_index.items())
            if key_name in m and value_name in m}
