"""Fuzzed request bodies on each service's create operations, checked against the service's
own published description (``/<service>/openapi.json``): hypothesis makes bodies from
nothing and from a valid body with parts changed. Never a 5xx; never a 2xx for a body the
published schema refuses; every refusal in the service's error shape, a body's refusal
naming the field; and a refused request makes nothing (list counts before and after).

A few examples per operation and a fixed seed (derandomize): reproducible, and cheap
enough for the suite's budget. No client sends such bodies, so httpx sends them."""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import jsonschema
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

# per operation; FUZZ_EXAMPLES=500 (say) fuzzes deeper by hand
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))


@dataclass
class Op:
    service: str  # the mount point: /<service>/openapi.json
    path: str  # under the mount point, as sent
    spec_path: str  # as the description names it
    listing: str  # where the made things are listed (counted before and after)
    key: str  # the list's key in the list body
    seed: Any  # a body the service takes
    shape: str  # the service's error body shape
    wrapper: str | None = None  # the body's {key: {...}}, whose properties are fuzzed


OPS = [
    Op("identity", "/v3/regions", "/v3/regions", "/v3/regions", "regions",
       {"region": {"description": "fuzz"}}, "keystone", "region"),
    Op("identity", "/v3/projects", "/v3/projects", "/v3/projects", "projects",
       {"project": {"name": "fuzz-p", "domain_id": "default"}}, "keystone", "project"),
    Op("compute", "/v2.1/os-keypairs", "/v2.1/os-keypairs", "/v2.1/os-keypairs", "keypairs",
       {"keypair": {"name": "fuzz-kp"}}, "nova", "keypair"),
    Op("compute", "/v2.1/servers", "/v2.1/servers", "/v2.1/servers", "servers",
       {"server": {"name": "fuzz", "flavorRef": "1", "imageRef": "00000000-0000-0000-0000-000000000000"}},
       "nova", "server"),
    Op("networking", "/v2.0/networks", "/v2.0/{collection}", "/v2.0/networks", "networks",
       {"network": {"name": "fuzz-net"}}, "neutron", "network"),
    Op("volume", "/v3/volumes", "/v3/volumes", "/v3/volumes", "volumes",
       {"volume": {"size": 1, "name": "fuzz-vol"}}, "nova", "volume"),
    Op("image", "/v2/images", "/v2/images", "/v2/images", "images",
       {"name": "fuzz-img", "disk_format": "raw", "container_format": "bare"}, "glance"),
    Op("orchestration", "/v1/{project_id}/stacks", "/v1/{tenant_id}/stacks", "/v1/{project_id}/stacks",
       "stacks", {"stack_name": "fuzz", "template": {"heat_template_version": "2018-08-31"}}, "heat"),
]

# JSON of every kind, small: what the properties of a body get instead of their values; text
# of any code point, NUL and half surrogate pairs too (JSON escapes them: no UTF-8 can)
text = st.text(st.characters(exclude_categories=()), max_size=12)
# strings known to have broken services, sent first as each seed's name: a NUL, half a
# surrogate pair, too long, a right-to-left override, none
NASTY = ["a\x00b", "a\ud800b", "n" * 300, " lead", "\u202e", ""]
scalars = (st.none() | st.booleans() | st.integers(-(2**40), 2**40)
           | st.floats(allow_nan=False, allow_infinity=False) | text)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(text, inner, max_size=3), max_leaves=5)


def _properties(schema: dict) -> list[str]:
    names: list[str] = []
    for part in [schema, *schema.get("anyOf", []), *schema.get("oneOf", [])]:
        names += [n for n in part.get("properties", {}) if n not in names]
    return names


def bodies(op: Op, schema: dict | None):
    """Any JSON, or the seed with some of its (wrapped) object's properties replaced, dropped
    or added: the schema's property names, and names it does not know."""
    inner = schema or {}
    if op.wrapper and schema:
        inner = _first(schema.get("anyOf", [schema]), op.wrapper)["properties"][op.wrapper]
    names = _properties(inner) or list((op.seed.get(op.wrapper) if op.wrapper else op.seed) or {})
    changes = st.dictionaries(st.sampled_from([*names, "fuzz_extra"]), values | st.just(_DROP), max_size=3)

    def mutate(change: dict) -> Any:
        body = json.loads(json.dumps(op.seed))
        target = body[op.wrapper] if op.wrapper else body
        for name, value in change.items():
            if value is _DROP:
                target.pop(name, None)
            else:
                target[name] = value
        return body

    return st.one_of(values, changes.map(mutate))


_DROP = object()


def nasty(op: Op):
    """The seed with its first text property (its name) set to each NASTY string."""
    for value in NASTY:
        body = json.loads(json.dumps(op.seed))
        target = body[op.wrapper] if op.wrapper else body
        target[next(k for k, v in target.items() if isinstance(v, str))] = value
        yield body


def _first(alternatives: list[dict], key: str) -> dict:
    return next(a for a in alternatives if key in a.get("required", []))


@pytest.fixture(scope="module")
def session(cloud):
    env = cloud.openrc("admin")
    scope = {"project": {"name": env["OS_PROJECT_NAME"], "domain": {"name": "Default"}}}
    auth = {"identity": {"methods": ["password"], "password": {"user": {
        "name": env["OS_USERNAME"], "domain": {"name": "Default"}, "password": env["OS_PASSWORD"]}}}}
    r = httpx.post(f"{cloud.url}/identity/v3/auth/tokens", json={"auth": {**auth, "scope": scope}})
    assert r.status_code == 201, r.text
    with httpx.Client(base_url=cloud.url, headers={"X-Auth-Token": r.headers["X-Subject-Token"]},
                      timeout=60) as c:
        c.project_id = r.json()["token"]["project"]["id"]
        yield c


@pytest.fixture(scope="module")
def described(session):
    docs = {}
    for service in {op.service for op in OPS}:
        r = httpx.get(f"{session.base_url}/{service}/openapi.json")  # no token needed
        assert r.status_code == 200, (service, r.text)
        docs[service] = r.json()
    return docs


def _schema(doc: dict, op: Op) -> dict | None:
    post = doc["paths"][op.spec_path]["post"]
    body = post.get("requestBody")
    return body["content"]["application/json"]["schema"] if body else None


def _oracle(op: Op, schema: dict | None):
    """What the published schema says of a body: None when it takes it, else its errors."""
    if schema is None:
        return lambda body: None
    if op.service == "networking":  # the one route creates every kind: these are the networks'
        alts = schema["anyOf"]
        schema = {"anyOf": [_first(alts, "network"), _first(alts, "networks")]}
    validator = jsonschema.Draft4Validator(schema)
    return lambda body: list(validator.iter_errors(body)) or None


def _listed(session, op: Op) -> dict[str, dict]:
    """What the operation's list shows, by id (a keypair's name)."""
    r = session.get(f"/{op.service}{op.listing}".format(project_id=session.project_id), params={"limit": 1000})
    assert r.status_code == 200, r.text
    entries = [e.get("keypair", e) for e in r.json()[op.key]]
    return {e.get("id") or e["name"]: e for e in entries}


def _error_message(op: Op, r: httpx.Response) -> str:
    """The message of ``r`` after checking it has the service's error shape."""
    if op.shape == "glance":  # webob's HTML page, as Glance's is
        assert r.headers["content-type"].startswith("text/html"), r.text
        assert f"<h1>{r.status_code} " in r.text, r.text
        return html.unescape(r.text)
    body = r.json()
    if op.shape == "keystone":
        err = body["error"]
        assert err["code"] == r.status_code and err["title"] and err["message"], body
        return err["message"]
    if op.shape == "neutron":
        err = body["NeutronError"]
        assert set(err) >= {"type", "message", "detail"}, body
        return err["message"]
    if op.shape == "heat":
        assert body["code"] == r.status_code and body["title"], body
        return body["error"]["message"]
    (fault,) = body.values()  # Nova's and Cinder's {"badRequest": {"code", "message"}}
    assert fault["code"] == r.status_code and fault["message"], body
    return fault["message"]


def _names(errs: list) -> set[str]:
    """The fields the schema's errors are about: any of them may be the one a service names."""
    out = set()
    for e in errs:
        for err in [e, *(e.context or [])]:
            out |= {str(p) for p in err.absolute_path}
            if err.validator in ("required", "additionalProperties"):
                out |= {w for w in err.message.split("'")[1::2]}
    return out


def _remove(session, op: Op, made: dict[str, dict]) -> None:
    for ident, entry in made.items():
        if op.service == "orchestration":
            ident = f"{entry['stack_name']}/{ident}"
        url = f"/{op.service}{op.listing}/".format(project_id=session.project_id) + quote(ident, safe="/")
        session.delete(url)


@pytest.mark.parametrize("op", OPS, ids=lambda op: f"{op.service}{op.path}")
def test_fuzzed_create_bodies(session, described, op):
    schema = _schema(described[op.service], op)
    oracle = _oracle(op, schema)
    path = f"/{op.service}{op.path}".format(project_id=session.project_id)
    before = _listed(session, op)
    taken = []

    def attempt(body):
        # json.dumps escapes every non-ASCII character, so half a surrogate pair goes as JSON has it
        r = session.post(path, content=json.dumps(body), headers={"Content-Type": "application/json"})
        if os.environ.get("FUZZ_LOG"):
            print("FUZZ", op.path, r.status_code, json.dumps(body)[:150], r.text[:200].replace("\n", " "))
        assert r.status_code < 500, (body, r.status_code, r.text)
        errs = oracle(body)
        if r.status_code < 300:
            assert errs is None, (body, r.status_code, "taken though the schema refuses it", errs)
            taken.append(body)
            return
        message = _error_message(op, r)
        if errs and r.status_code == 400 and not ("NUL" in message or "surrogate" in message):
            names = _names(errs)
            if names:  # a refusal of the whole body (not an object) names no field
                assert any(n in message for n in names), (body, message, names)

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(bodies(op, schema))
    def check(body):
        attempt(body)

    try:
        for body in nasty(op):
            attempt(body)
        check()
    finally:
        after = _listed(session, op)
        _remove(session, op, {k: v for k, v in after.items() if k not in before})
    assert len(after) == len(before) + len(taken), "a refused request made something"
