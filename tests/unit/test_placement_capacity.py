"""Placement's capacity arithmetic: (total - reserved) * allocation_ratio, and the
unit constraints of one allocation."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from onestack.placement import capacity
from onestack.placement.capacity import Inventory


def test_capacity_with_overcommit_and_reserved():
    inv = Inventory(total=8, reserved=2, allocation_ratio=16.0)
    assert inv.capacity == 96
    assert capacity.fits(inv, used=90, amount=6)
    assert not capacity.fits(inv, used=91, amount=6)
    assert "exceed the capacity" in capacity.problem(inv, 91, 6)


def test_fractional_ratio_is_not_rounded_up():
    inv = Inventory(total=3, allocation_ratio=1.5)  # 4.5 units
    assert capacity.shown_capacity(inv) == 4
    assert capacity.fits(inv, 0, 4)
    assert not capacity.fits(inv, 0, 5)


def test_unit_constraints():
    inv = Inventory(total=100, min_unit=2, max_unit=10, step_size=2)
    assert capacity.unit_problem(inv, 1) and "min_unit" in capacity.unit_problem(inv, 1)
    assert "max_unit" in capacity.unit_problem(inv, 12)
    assert "step_size" in capacity.unit_problem(inv, 5)
    assert capacity.unit_problem(inv, 6) is None
    assert not capacity.fits(inv, 0, 12)


def test_inventory_consistency_depends_on_microversion():
    full = Inventory(total=4, reserved=4)
    assert capacity.inventory_problem(full, reserved_may_equal_total=True) is None  # 1.26+
    assert "reserved" in capacity.inventory_problem(full, reserved_may_equal_total=False)
    assert "reserved" in capacity.inventory_problem(Inventory(total=4, reserved=5))
    assert "min_unit" in capacity.inventory_problem(Inventory(total=4, min_unit=5, max_unit=4))


@given(total=st.integers(1, 10**6), reserved=st.integers(0, 10**6), ratio=st.floats(0.1, 64),
       used=st.integers(0, 10**7), amount=st.integers(1, 10**6))
def test_fits_agrees_with_the_formula(total, reserved, ratio, used, amount):
    inv = Inventory(total=total, reserved=min(reserved, total), allocation_ratio=ratio)
    expected = used + amount <= (total - min(reserved, total)) * ratio
    assert capacity.fits(inv, used, amount) is expected
    assert (capacity.problem(inv, used, amount) is None) is expected


@given(step=st.integers(1, 16), amount=st.integers(1, 1000))
def test_step_size(step, amount):
    inv = Inventory(total=10**6, step_size=step)
    assert capacity.fits(inv, 0, amount) is (amount % step == 0)
