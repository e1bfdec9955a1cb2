"""Server lists page in SQL: limit, marker and sort keys over many rows give the same
servers, in the same order, as sorting them all would; a deleted marker still
places the page (as in Nova); an unknown one is a 400."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from starlette.datastructures import QueryParams

from onestack.common import db, errors
from onestack.common.auth import RequestContext
from onestack.common.microversion import Version
from onestack.compute import instances
from onestack.compute import models as m
from tests import requirements
from tests.cloud import Postgres

PROJECT = "p1"
V = Version(2, 79)


@pytest.fixture(scope="module")
def pg_url():
    try:
        pg = Postgres().start()
    except FileNotFoundError as e:
        requirements.missing(str(e))
    yield pg.url
    pg.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def rows(request, tmp_path):
    """300 servers (every 7th deleted, every 10th another project's), on each database: the
    JSON filters and NULL ordering are each database's own SQL."""
    db.configure(f"sqlite:///{tmp_path / 'compute.db'}" if request.param == "sqlite"
                 else request.getfixturevalue("pg_url"))
    db.upgrade("compute")
    with db.transaction() as s:
        s.execute(sa.delete(m.Instance))
    rnd = random.Random(13)
    start = datetime(2026, 1, 1)
    out = []
    with db.transaction() as s:
        for i in range(300):
            created = start + timedelta(seconds=rnd.randrange(40))  # many ties
            inst = m.Instance(
                uuid=str(uuid.UUID(int=rnd.getrandbits(128))), project_id=PROJECT if i % 10 else "p2",
                user_id="u", name=f"s{rnd.randrange(50):02d}", hostname="h", image_ref="img",
                flavor={"id": rnd.choice(["1", "42"])}, vm_state=rnd.choice(["active", "stopped"]),
                task_state=None, power_state=1, host=rnd.choice([None, "a", "b", "c"]),
                tags=rnd.sample(["red", "blue", "green"], rnd.randrange(3)), reservation_id="r",
                created_at=created, updated_at=created, deleted=i % 7 == 0)
            s.add(inst)
            out.append(inst)
    yield out
    db.engine().dispose()


def _list(ctx, **params) -> tuple[list[str], bool]:
    q = QueryParams([(k, x) for k, v in params.items() for x in (v if isinstance(v, list) else [v])])
    with db.session() as s:
        got, more, _ = instances.list_servers(s, ctx, q, V)
        return [r.uuid for r in got], more


def _walk(ctx, limit: int, **params) -> list[str]:
    """Every page, each from the last one's last server."""
    seen, marker = [], None
    for _ in range(1000):
        page, more = _list(ctx, limit=str(limit), **({"marker": marker} if marker else {}), **params)
        seen += page
        if not more:
            return seen
        assert len(page) == limit
        marker = page[-1]
    raise AssertionError("the pages never ended")


def _expected(rows, keys: list[tuple[str, str]], keep=lambda r: True) -> list[str]:
    """Python's answer: NULL before every value, then the uuid (desc) breaks ties."""
    out = [r for r in rows if r.project_id == PROJECT and not r.deleted and keep(r)]
    for attr, d in reversed([*keys, ("uuid", "desc")]):
        out.sort(key=lambda r, a=attr: (getattr(r, a) is not None, getattr(r, a) or ""), reverse=d == "desc")
    return [r.uuid for r in out]


def test_pages_follow_the_sort_keys(rows):
    ctx = RequestContext(project_id=PROJECT, user_id="u", roles=["admin"])
    assert _walk(ctx, 7) == _expected(rows, [("created_at", "desc")])
    for keys in ([("display_name", "asc")], [("host", "asc"), ("created_at", "desc")],
                 [("host", "desc"), ("display_name", "asc")], [("vm_state", "asc"), ("host", "asc")]):
        got = _walk(ctx, 11, sort_key=[k for k, _ in keys], sort_dir=[d for _, d in keys])
        attrs = [("name" if k == "display_name" else k, d) for k, d in keys]
        assert got == _expected(rows, attrs), keys


def test_filters_in_sql_and_regex_page_alike(rows):
    ctx = RequestContext(project_id=PROJECT, user_id="u", roles=["member"])
    assert _walk(ctx, 5, flavor="42") == _expected(rows, [("created_at", "desc")],
                                                    lambda r: r.flavor["id"] == "42")
    assert _walk(ctx, 5, tags="red,blue") == _expected(rows, [("created_at", "desc")],
                                                       lambda r: {"red", "blue"} <= set(r.tags))
    assert _walk(ctx, 5, **{"not-tags-any": "red"}) == _expected(rows, [("created_at", "desc")],
                                                                 lambda r: "red" not in r.tags)
    # the one filter left to Python (a regular expression) still fills whole pages
    assert _walk(ctx, 4, name="^s[0-2]") == _expected(rows, [("created_at", "desc")],
                                                      lambda r: r.name[:2] in ("s0", "s1", "s2"))


def test_markers(rows):
    ctx = RequestContext(project_id=PROJECT, user_id="u", roles=["member"])
    order = _expected(rows, [("created_at", "desc")])
    everyone = sorted(rows, key=lambda r: (r.created_at, r.uuid), reverse=True)
    gone = next(r for r in everyone if r.deleted and r.project_id == PROJECT and r.created_at < everyone[0].created_at)
    # a deleted server as the marker: the page starts where it would stand (Nova reads deleted markers)
    after = [r.uuid for r in everyone if (r.created_at, r.uuid) < (gone.created_at, gone.uuid)
             and r.project_id == PROJECT and not r.deleted]
    page, _ = _list(ctx, limit="5", marker=gone.uuid)
    assert page == after[:5] == order[order.index(after[0]):][:5]
    missing = str(uuid.uuid4())
    with pytest.raises(errors.BadRequest, match=rf"marker \[{missing}\] not found"):
        _list(ctx, marker=missing)
    with pytest.raises(errors.BadRequest):
        _list(ctx, marker="not-a-uuid")
    # no limit: Nova's largest page; limit=0: nothing
    assert _list(ctx)[0] == order and _list(ctx, limit="0") == ([], False)
    assert _list(ctx, limit="5000")[0] == order  # (capped at 1000, more than there are)


def test_pages_carry_the_servers_documents(rows):
    """The JSON documents of a page (read as text, each distinct one decoded once) are
    what the servers hold, on each database; equal ones may be one object."""
    ctx = RequestContext(project_id=PROJECT, user_id="u", roles=["member"])
    mine = [r for r in rows if r.project_id == PROJECT and not r.deleted]
    with db.transaction() as s:
        a, b = s.get(m.Instance, mine[0].uuid), s.get(m.Instance, mine[1].uuid)
        a.metadata_, a.security_groups = {"k": "v", "n": "ü"}, ["default", "web"]
        a.network_info = [{"network_id": "n1", "mac": "fa:16:3e:00:00:01",
                           "fixed_ips": [{"ip_address": "10.0.0.5", "version": 4}]}]
        a.fault = {"code": 500, "message": "boom"}
        b.block_device_mapping, b.fault = [{"volume_id": "v1", "destination_type": "volume"}], None
    keys = sorted(instances._JSON_KEYS - {"system_metadata", "requested_networks"})
    with db.session() as s:
        page, _, _ = instances.list_servers(s, ctx, QueryParams({"limit": "1000"}), V)
        want = {i.uuid: i for i in s.scalars(sa.select(m.Instance).where(m.Instance.uuid.in_([r.uuid for r in page])))}
        assert len(page) == len(mine) and keys
        for r in page:
            for k in keys:
                assert getattr(r, k) == getattr(want[r.uuid], k), (r.uuid, k)
    assert len({id(r.flavor) for r in page if r.flavor == {"id": "42"}}) == 1  # decoded once
