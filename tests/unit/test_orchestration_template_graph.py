"""The dependency graph: edges from depends_on and references, conditions, orders for
create and delete, what can start now, and cycles."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onestack.orchestration import template as T
from tests.unit.test_orchestration_template_parse import SERVER_SIGNAL


def test_tempest_server_signal_order():
    t = T.parse(SERVER_SIGNAL)
    g = T.Graph.from_template(t)
    assert g.requires("subnet") == {"network"}
    assert g.requires("server") == {"subnet", "sg", "wait_handle"}
    # a function inside a get_attr path is an edge too
    assert g.requires("server_floating_ip_assoc") == {"floating_ip", "server", "network"}
    assert g.requires("wait_condition") == {"server", "wait_handle"}
    assert g.required_by("network") == {"subnet", "server_floating_ip_assoc"}
    order = g.create_order()
    for node, required in g.edges():
        assert order.index(required) < order.index(node)
    assert order[0] == "sg"  # ties keep template order
    assert g.delete_order()[-1] in {"sg", "floating_ip", "network", "router", "wait_handle"}
    assert g.ready(set()) == ["sg", "floating_ip", "network", "router", "wait_handle"]
    assert g.ready({"sg", "floating_ip", "network", "router", "wait_handle"}) == [
        "subnet"]
    assert g.ready({"network"}, started={"sg"}) == ["floating_ip", "subnet", "router",
                                                    "wait_handle"]
    assert g.ready_to_delete(set()) == ["router_interface", "server_floating_ip_assoc",
                                        "wait_condition"]


def test_conditions_remove_resources_and_edges():
    t = T.parse({"heat_template_version": "2018-08-31",
                 "parameters": {"env": {"type": "string", "default": "test"}},
                 "conditions": {"prod": {"equals": [{"get_param": "env"}, "prod"]}},
                 "resources": {
                     "vol": {"type": "X", "condition": "prod"},
                     "server": {"type": "X", "properties": {
                         "v": {"if": ["prod", {"get_resource": "vol"}, None]}}},
                     "att": {"type": "X", "condition": "prod", "depends_on": ["vol", "server"]}}})
    resolver = T.BaseResolver(t, T.Parameters(t, {}))
    g = T.Graph.from_template(t, resolver=resolver)
    assert list(g) == ["server"]
    assert g.requires("server") == set()
    resolver = T.BaseResolver(t, T.Parameters(t, {"env": "prod"}))
    g = T.Graph.from_template(t, resolver=resolver)
    assert g.create_order() == ["vol", "server", "att"]
    # explicit enabled set, without evaluating
    g = T.Graph.from_template(t, enabled={"server", "att"})
    assert g.requires("att") == {"server"}


def test_unknown_references():
    t = T.parse({"heat_template_version": "2018-08-31", "resources": {
        "a": {"type": "X", "properties": {"p": [{"get_attr": ["b", "x"]}]}}}},
        check_functions=False)
    with pytest.raises(T.InvalidTemplateReference) as exc:
        T.Graph.from_template(t)
    assert exc.value.message == 'The specified reference "b" (in a.Properties.p[0]) is incorrect.'


def test_external_resources_depend_on_nothing():
    t = T.parse({"heat_template_version": "2018-08-31", "resources": {
        "net": {"type": "X"},
        "ext": {"type": "X", "external_id": "abc", "properties": {"n": {"get_resource": "net"}}}}})
    assert T.Graph.from_template(t).requires("ext") == set()
    t.resources["ext"].depends_on = ["net"]
    with pytest.raises(T.StackValidationFailed, match="Invalid dependency with external X "
                                                      "resource: abc"):
        T.Graph.from_template(t)


def test_cycle():
    t = T.parse({"heat_template_version": "2018-08-31", "resources": {
        "a": {"type": "X", "depends_on": "b"},
        "b": {"type": "X", "properties": {"p": {"get_attr": ["c", "x"]}}},
        "c": {"type": "X", "properties": {"p": {"get_resource": "a"}}},
        "d": {"type": "X"}}})
    g = T.Graph.from_template(t)
    with pytest.raises(T.CircularDependency) as exc:
        g.check()
    assert exc.value.message == "Circular Dependency Found: {a: {b}, b: {c}, c: {a}}"
    assert exc.value.heat_type == "CircularDependencyException"
    with pytest.raises(T.CircularDependency):
        g.delete_order()


def test_cfn_graph():
    t = T.parse({"AWSTemplateFormatVersion": "2010-09-09",
                 "Parameters": {"Key": {"Type": "String", "Default": "k"}},
                 "Resources": {
                     "Vol": {"Type": "AWS::EC2::Volume"},
                     "Inst": {"Type": "AWS::EC2::Instance", "Properties": {
                         "KeyName": {"Ref": "Key"},
                         "Volumes": [{"VolumeId": {"Ref": "Vol"}}]}},
                     "Ip": {"Type": "AWS::EC2::EIP", "DependsOn": "Inst",
                            "Properties": {"Addr": {"Fn::GetAtt": ["Vol", "Id"]}}}}})
    g = T.Graph.from_template(t)
    assert g.requires("Inst") == {"Vol"}
    assert g.requires("Ip") == {"Inst", "Vol"}
    assert g.create_order() == ["Vol", "Inst", "Ip"]
    assert g.delete_order() == ["Ip", "Inst", "Vol"]


# ---------------------------------------------------------------- properties
@st.composite
def dags(draw):
    """A random acyclic graph: each node requires only nodes before it."""
    n = draw(st.integers(min_value=1, max_value=12))
    names = [f"r{i}" for i in range(n)]
    order = draw(st.permutations(names))  # template order differs from the hidden order
    edges = {}
    for i, name in enumerate(names):
        edges[name] = draw(st.sets(st.sampled_from(names[:i]), max_size=i)) if i else set()
    return {name: edges[name] for name in order}


@given(dags())
def test_orders_respect_edges(edges):
    g = T.Graph(edges)
    create, delete = g.create_order(), g.delete_order()
    assert sorted(create) == sorted(edges) == sorted(delete)
    for node, required in edges.items():
        for r in required:
            assert create.index(r) < create.index(node)
            assert delete.index(node) < delete.index(r)


@given(dags())
def test_running_ready_sets_creates_everything(edges):
    g = T.Graph(edges)
    done: set[str] = set()
    while len(done) < len(edges):
        batch = g.ready(done)
        assert batch  # never stuck on an acyclic graph
        for node in batch:
            assert g.requires(node) <= done
        done |= set(batch)
    deleted: set[str] = set()
    while len(deleted) < len(edges):
        batch = g.ready_to_delete(deleted)
        assert batch
        for node in batch:
            assert g.required_by(node) <= deleted
        deleted |= set(batch)


@given(dags(), st.data())
def test_a_back_edge_makes_a_cycle(edges, data):
    with_deps = [n for n, reqs in edges.items() if reqs]
    if not with_deps:
        return
    node = data.draw(st.sampled_from(with_deps))
    required = data.draw(st.sampled_from(sorted(edges[node])))
    g = T.Graph(edges)
    g.add(required, [node])
    with pytest.raises(T.CircularDependency):
        g.check()
