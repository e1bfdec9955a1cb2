"""Placement's writes: consumer generations, capacity and inventory-in-use
conflicts, provider deletion rules, the reshaper, and concurrent claims on
SQLite and PostgreSQL (no provider is ever over-allocated)."""

from __future__ import annotations

import threading
import uuid

import pytest

from onestack.common import db, errors
from onestack.placement import allocations, core
from onestack.placement.allocations import ConsumerWrite, write
from tests.requirements import missing


def _fresh(url: str) -> None:
    db.configure(url)
    db.upgrade("placement")
    core.configure(None)
    with db.transaction() as s:
        core.sync_standard(s)


@pytest.fixture
def sqlite(tmp_path):
    _fresh(f"sqlite:///{tmp_path / 'placement.db'}")
    yield
    db.engine().dispose()


@pytest.fixture(scope="module")
def postgres():
    from tests.cloud import Postgres

    try:
        pg = Postgres().start()
    except (FileNotFoundError, OSError) as e:
        missing(f"PostgreSQL is not available: {e}")
    try:
        yield pg.url
    finally:
        if db._engine is not None and db._engine.url.get_backend_name() == "postgresql":
            db.engine().dispose()
        pg.stop()


def _provider(name: str, **inv) -> str:
    with db.transaction() as s:
        p = core.create_provider(s, name)
        core.set_inventories(s, p.uuid, 0, {rc: ({"total": v} if isinstance(v, int) else v)
                                            for rc, v in inv.items()}, True)
        return p.uuid


def _claim(consumer: str, rp: str, gen=None, check=True, **res) -> None:
    with db.transaction() as s:
        write(s, [ConsumerWrite(consumer, {rp: res} if res else {}, "proj", "user", gen, check)])


def _new() -> str:
    return str(uuid.uuid4())


def test_consumer_generations(sqlite):
    rp = _provider("cn", VCPU=8)
    c = _new()
    with pytest.raises(errors.Conflict) as e:  # a new consumer has no generation yet
        _claim(c, rp, 3, VCPU=1)
    assert e.value.extra["code"] == core.CONCURRENT_UPDATE
    _claim(c, rp, None, VCPU=1)
    with db.session() as s:
        got = allocations.consumer_allocations(s, c)
    assert got.generation == 1 and got.allocations[rp]["resources"] == {"VCPU": 1}
    with pytest.raises(errors.Conflict):  # it exists now: null is stale
        _claim(c, rp, None, VCPU=2)
    with pytest.raises(errors.Conflict):
        _claim(c, rp, 7, VCPU=2)
    _claim(c, rp, 1, VCPU=2)
    _claim(c, rp, 5, check=False, VCPU=3)  # before 1.28 nothing is compared
    with db.session() as s:
        assert allocations.provider_usages(s, core.get_provider(s, rp).id) == {"VCPU": 3}
    _claim(c, rp, 3)  # empty: the consumer is gone
    with db.session() as s:
        assert allocations.consumer_allocations(s, c).allocations == {}
    with pytest.raises(errors.NotFound), db.transaction() as s:
        allocations.delete_consumer(s, c)


def test_capacity_units_and_replacing_own_allocation(sqlite):
    rp = _provider("cn", VCPU={"total": 4, "max_unit": 2}, MEMORY_MB=1024)
    c = _new()
    _claim(c, rp, VCPU=2, MEMORY_MB=1000)
    with pytest.raises(errors.Conflict) as e:
        _claim(_new(), rp, VCPU=1, MEMORY_MB=100)
    assert "MEMORY_MB" in e.value.message and rp in e.value.message
    with pytest.raises(errors.Conflict) as e:
        _claim(_new(), rp, VCPU=3)
    assert "max_unit" in e.value.message
    with pytest.raises(errors.Conflict) as e:
        _claim(_new(), rp, DISK_GB=1)
    assert "no inventory of class 'DISK_GB'" in e.value.message
    # replacing a consumer's own allocation does not count the old one
    _claim(c, rp, 1, VCPU=2, MEMORY_MB=1024)
    with pytest.raises(errors.BadRequest):
        _claim(_new(), "eeeeeeee-0000-0000-0000-000000000000", VCPU=1)


def test_inventory_in_use_and_provider_deletion(sqlite):
    rp = _provider("cn", VCPU=8, DISK_GB=100)
    _claim(_new(), rp, VCPU=6)  # generation 1 -> 2
    with pytest.raises(errors.Conflict) as e, db.transaction() as s:
        core.set_inventories(s, rp, 2, {"VCPU": {"total": 4}, "DISK_GB": {"total": 100}}, True)
    assert e.value.extra["code"] == core.INVENTORY_INUSE
    with pytest.raises(errors.Conflict) as e, db.transaction() as s:
        core.set_inventories(s, rp, 2, {"DISK_GB": {"total": 100}}, True)
    assert e.value.extra["code"] == core.INVENTORY_INUSE
    with db.transaction() as s:  # unused classes may go, used ones may grow or shrink to fit
        invs, gen = core.set_inventories(s, rp, 2, {"VCPU": {"total": 6}}, True)
    assert set(invs) == {"VCPU"} and gen == 3
    with pytest.raises(errors.Conflict) as e, db.transaction() as s:
        core.set_inventories(s, rp, 2, {"VCPU": {"total": 6}}, True)  # stale generation
    assert e.value.extra["code"] == core.CONCURRENT_UPDATE
    with pytest.raises(errors.Conflict) as e, db.transaction() as s:
        core.delete_provider(s, rp)
    assert e.value.extra["code"] == core.PROVIDER_INUSE
    with db.transaction() as s:
        parent = core.create_provider(s, "parent")
        core.create_provider(s, "child", parent_uuid=parent.uuid)
    with pytest.raises(errors.Conflict) as e, db.transaction() as s:
        core.delete_provider(s, parent.uuid)
    assert e.value.extra["code"] == core.CANNOT_DELETE_PARENT


def test_reparenting_rules(sqlite):
    with db.transaction() as s:
        a = core.create_provider(s, "a")
        b = core.create_provider(s, "b", parent_uuid=a.uuid)
        c = core.create_provider(s, "c", parent_uuid=b.uuid)
        with pytest.raises(errors.BadRequest):
            core.update_provider(s, b.uuid, "b", parent_uuid=None)  # before 1.37
        with pytest.raises(errors.BadRequest):
            core.update_provider(s, a.uuid, "a", parent_uuid=c.uuid, allow_reparent=True)  # a loop
        core.update_provider(s, b.uuid, "b", parent_uuid=None, allow_reparent=True)
        assert core.get_provider(s, c.uuid).root_uuid == b.uuid
        with pytest.raises(errors.Conflict):
            core.update_provider(s, c.uuid, "a")  # names are unique


def test_reshaper_moves_inventory_and_allocations(sqlite):
    root = _provider("cn", VCPU=8)
    c = _new()
    _claim(c, root, VCPU=4)
    with db.transaction() as s:
        child = core.create_provider(s, "numa0", parent_uuid=root).uuid
    with db.transaction() as s:
        gen = core.get_provider(s, root).generation
        allocations.reshape(s, {root: (gen, {}), child: (0, {"VCPU": {"total": 8}})},
                            [ConsumerWrite(c, {child: {"VCPU": 4}}, "proj", "user", 1, True)])
    with db.session() as s:
        assert allocations.consumer_allocations(s, c).allocations[child]["resources"] == {"VCPU": 4}
        assert core.inventories(s, core.get_provider(s, root).id) == {}
    # a reshape that leaves allocations without inventory is refused whole
    with pytest.raises(errors.Conflict), db.transaction() as s:
        gen = core.get_provider(s, child).generation
        allocations.reshape(s, {child: (gen, {})}, [])


def _race(rp: str, n: int) -> tuple[int, int]:
    ok, conflicts = [], []
    barrier = threading.Barrier(n)

    def claim():
        barrier.wait()
        try:
            _claim(_new(), rp, VCPU=1)
            ok.append(1)
        except errors.Conflict:
            conflicts.append(1)

    threads = [threading.Thread(target=claim) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return len(ok), len(conflicts)


def _inventory_race(rp: str, n: int) -> int:
    done = []
    barrier = threading.Barrier(n)

    def update(total):
        barrier.wait()
        try:
            with db.transaction() as s:
                gen = 1  # everyone read generation 1
                core.set_inventories(s, rp, gen, {"VCPU": {"total": total}}, True)
            done.append(total)
        except errors.Conflict as e:
            assert e.extra["code"] == core.CONCURRENT_UPDATE

    threads = [threading.Thread(target=update, args=(100 + i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return len(done)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_concurrent_claims_never_overcommit(backend, tmp_path, request):
    if backend == "sqlite":
        _fresh(f"sqlite:///{tmp_path / 'placement.db'}")
    else:
        _fresh(request.getfixturevalue("postgres"))
    try:
        rp = _provider(f"race-{uuid.uuid4().hex[:6]}", VCPU=10)
        ok, conflicts = _race(rp, 16)
        assert (ok, conflicts) == (10, 6)
        with db.session() as s:
            assert allocations.provider_usages(s, core.get_provider(s, rp).id) == {"VCPU": 10}
        rp2 = _provider(f"inv-{uuid.uuid4().hex[:6]}", VCPU=10)
        assert _inventory_race(rp2, 6) == 1
    finally:
        db.engine().dispose()
