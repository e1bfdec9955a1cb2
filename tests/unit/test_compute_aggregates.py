"""Flavor extra specs against aggregate metadata (Nova's extra_specs_ops), and which
specs the aggregate filter reads."""

from __future__ import annotations

import pytest

from onestack.compute.aggregates import scoped_specs, spec_matches, specs_match


@pytest.mark.parametrize(("value", "req", "ok"), [
    ("ssd", "ssd", True), ("ssd", "hdd", False),
    ("8", "= 4", True), ("2", "= 4", False),  # "=" is at least, on numbers
    ("4", "== 4.0", True), ("4", "!= 4", False), ("5", ">= 4", True), ("3", "<= 2", False),
    ("abc", "s== abc", True), ("abd", "s> abc", True), ("abc", "s!= abc", False),
    ("ssd,nvme", "<in> nvme", True), ("ssd", "<in> nvme", False),
    ("a b c", "<all-in> a c", True), ("a b", "<all-in> a c", False),
    ("x86", "<or> arm <or> x86", True), ("ppc", "<or> arm <or> x86", False),
    ("fast", ">= 4", False),  # text against a number: no match, no error
    ("4", ">=", False),  # an operator with nothing to compare
])
def test_spec_matches(value, req, ok):
    assert spec_matches(value, req) is ok


def test_scoped_specs_and_all_must_match():
    specs = {"aggregate_instance_extra_specs:disk": "ssd", "aggregate_instance_extra_specs:cpus": ">= 4",
             "hw:cpu_policy": "dedicated", "plain": "x"}
    wanted = scoped_specs(specs)
    assert wanted == {"disk": "ssd", "cpus": ">= 4"}
    assert specs_match({"disk": {"hdd", "ssd"}, "cpus": {"8"}}, wanted)  # one aggregate's value suffices
    assert not specs_match({"disk": {"ssd"}}, wanted)  # a key no aggregate gives
    assert not specs_match({"disk": {"ssd"}, "cpus": {"2"}}, wanted)
    assert specs_match({}, scoped_specs(None))
