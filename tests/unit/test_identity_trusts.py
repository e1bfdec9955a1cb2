"""Trust-scoped tokens at the unit level: the payload carries the trust id (and tokens
of other kinds keep their layout), and the RequestContext other services build from a
validated trust-scoped token says who delegated to whom."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from onestack.common.auth import RequestContext
from onestack.common.timeutils import utcnow
from onestack.identity import tokens


@pytest.fixture
def repo(tmp_path):
    r = tokens.KeyRepository(tmp_path / "keys")
    r.setup()
    return r


def payload(**kw):
    now = utcnow()
    return tokens.TokenPayload(user_id="trustee", methods=["password"],
                               expires_at=now + timedelta(hours=1), issued_at=now,
                               audit_ids=[tokens.new_audit_id()], project_id="p1", **kw)


def test_trust_id_round_trips_and_other_tokens_keep_their_layout(repo):
    back = tokens.decode(repo, tokens.encode(repo, payload(trust_id="t1")))
    assert back.trust_id == "t1" and back.user_id == "trustee" and back.scope == "project"
    plain = tokens.encode(repo, payload())
    assert len(json.loads(repo.fernet().decrypt((plain + "==").encode()))) == 9
    assert tokens.decode(repo, plain).trust_id is None


@pytest.mark.parametrize("size", [8, 11])
def test_payloads_of_another_layout_are_refused(repo, size):
    now = utcnow().timestamp()
    data = [1, "u", ["password"], "p", "p1", now + 3600, now, ["a"], None, "t", "x"][:size]
    token = repo.fernet().encrypt(json.dumps(data).encode()).decode().rstrip("=")
    with pytest.raises(ValueError):
        tokens.decode(repo, token)


def test_request_context_of_a_trust_scoped_token():
    body = {"token": {
        "user": {"id": "trustor", "name": "alice", "domain": {"id": "default"}},
        "project": {"id": "p1", "name": "proj", "domain": {"id": "default"}},
        "roles": [{"id": "r1", "name": "member"}],
        "OS-TRUST:trust": {"id": "t1", "impersonation": True,
                           "trustor_user": {"id": "trustor"}, "trustee_user": {"id": "heat"}},
    }}
    ctx = RequestContext.from_token("tok", body)
    assert (ctx.user_id, ctx.project_id, ctx.roles) == ("trustor", "p1", ["member"])
    assert (ctx.trust_id, ctx.trustor_id, ctx.trustee_id) == ("t1", "trustor", "heat")
    assert ctx.policy_creds()["trust_id"] == "t1"
    plain = RequestContext.from_token("tok", {"token": {"user": {"id": "u"}}})
    assert plain.trust_id is None and plain.trustor_id is None
