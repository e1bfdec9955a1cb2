"""Capacity arithmetic of an inventory, kept pure so it is tested on its own.

An inventory of ``total`` units, ``reserved`` of them kept back by the provider,
over-committed by ``allocation_ratio``, can hold ``(total - reserved) *
allocation_ratio`` units of allocations. A single allocation must also lie in
``[min_unit, max_unit]`` and be a multiple of ``step_size``.
"""

from __future__ import annotations

from typing import NamedTuple

MAX_INT = 2147483647  # Placement's limit for every integer field
MAX_RATIO = 3.40282e38  # largest allocation_ratio (a 4-byte float's range, as Placement's schema)

DEFAULTS = {"reserved": 0, "min_unit": 1, "max_unit": MAX_INT, "step_size": 1, "allocation_ratio": 1.0}
FIELDS = ("total", "reserved", "min_unit", "max_unit", "step_size", "allocation_ratio")


class Inventory(NamedTuple):
    """(A named tuple: allocation candidates make thousands of them a request.)"""

    total: int
    reserved: int = 0
    min_unit: int = 1
    max_unit: int = MAX_INT
    step_size: int = 1
    allocation_ratio: float = 1.0

    @property
    def capacity(self) -> float:
        """Units that allocations may use in all."""
        return (self.total - self.reserved) * self.allocation_ratio

    def as_dict(self) -> dict:
        return {"total": self.total, "reserved": self.reserved, "min_unit": self.min_unit,
                "max_unit": self.max_unit, "step_size": self.step_size,
                "allocation_ratio": float(self.allocation_ratio)}


def shown_capacity(inv: Inventory) -> int:
    """The ``capacity`` that allocation candidates' provider summaries show."""
    return int(inv.capacity)


def unit_problem(inv: Inventory, amount: int) -> str | None:
    """Why ``amount`` cannot be one allocation of this inventory (None: it can)."""
    if amount < inv.min_unit:
        return f"the amount {amount} is below min_unit {inv.min_unit}"
    if amount > inv.max_unit:
        return f"the amount {amount} is above max_unit {inv.max_unit}"
    if amount % inv.step_size:
        return f"the amount {amount} is not a multiple of step_size {inv.step_size}"
    return None


def fits(inv: Inventory, used: int, amount: int) -> bool:
    """Can one more allocation of ``amount`` be made where ``used`` is already allocated?"""
    return (inv.min_unit <= amount <= inv.max_unit and amount % inv.step_size == 0
            and used + amount <= inv.capacity)


def problem(inv: Inventory, used: int, amount: int) -> str | None:
    """Like ``fits`` but says why not: unit constraints first, then capacity."""
    why = unit_problem(inv, amount)
    if why:
        return why
    if used + amount > inv.capacity:
        return (f"the requested amount {amount} would exceed the capacity: "
                f"{used} of {shown_capacity(inv)} is used")
    return None


def inventory_problem(inv: Inventory, reserved_may_equal_total: bool = True) -> str | None:
    """Why an inventory record is inconsistent in itself (None: it is fine)."""
    if inv.reserved > inv.total or (inv.reserved == inv.total and not reserved_may_equal_total):
        word = "greater than" if reserved_may_equal_total else "greater than or equal to"
        return f"the reserved value is {word} total"
    if inv.min_unit > inv.max_unit:
        return "min_unit is greater than max_unit"
    if inv.allocation_ratio <= 0:
        return "allocation_ratio must be greater than 0"
    return None
