import pytest
from hypothesis import given
from hypothesis import strategies as st

from onestack.common import errors
from onestack.common.auth import RequestContext
from onestack.common.policy import Enforcer, PolicySyntaxError, parse


def ctx(**kw):
    return RequestContext(**kw)


def test_role_and_scope_checks():
    enf = Enforcer("t", {
        "admin": "role:admin",
        "sysreader": "role:reader and system_scope:all",
        "own": "project_id:%(target.project.id)s",
        "rule": "rule:admin or rule:sysreader or (rule:own and not role:banned)",
    })
    admin = ctx(roles=["admin"], project_id="p1")
    member = ctx(roles=["member"], project_id="p1")
    sysreader = ctx(roles=["reader"], system_scope="all")
    target = {"project": {"id": "p1"}}
    assert enf.allowed("rule", admin, {"project": {"id": "other"}})
    assert enf.allowed("rule", member, target)
    assert not enf.allowed("rule", member, {"project": {"id": "p2"}})
    assert enf.allowed("rule", sysreader, {"project": {"id": "p2"}})
    assert not enf.allowed("rule", ctx(roles=["member", "banned"], project_id="p1"), target)
    with pytest.raises(errors.Forbidden):
        enf.authorize("admin", member)


def test_literals_and_constants():
    assert parse("@")({}, {}, None)
    assert not parse("!")({}, {}, None)
    assert parse("")({}, {}, None)
    assert parse("is_admin:True")({"is_admin": True}, {}, None)
    assert not parse("is_admin:True")({"is_admin": False}, {}, None)
    assert parse("user_id:'abc'")({"user_id": "abc"}, {}, None)


def test_missing_target_value_denies():
    check = parse("project_id:%(target.project.id)s")
    assert not check({"project_id": None}, {"target": {}}, None)


@pytest.mark.parametrize("bad", ["role:a and", "(role:a", "role:a)", "or role:a", "nonsense"])
def test_syntax_errors(bad):
    with pytest.raises(PolicySyntaxError):
        parse(bad)


def test_override_file(tmp_path):
    (tmp_path / "t.yaml").write_text('"read": "role:reader"\n')
    enf = Enforcer("t", {"read": "role:admin"}, tmp_path)
    assert enf.allowed("read", ctx(roles=["reader"]))


@given(st.lists(st.sampled_from(["admin", "member", "reader", "x"]), max_size=4))
def test_or_is_union(roles):
    c = {"roles_lower": set(roles)}
    both = parse("role:admin or role:member")(c, {}, None)
    assert both == ("admin" in roles or "member" in roles)
