from datetime import timedelta

import pytest

from onestack.common.timeutils import utcnow
from onestack.identity import tokens


def payload(**kw):
    now = utcnow()
    base = dict(user_id="u1", methods=["password"], expires_at=now + timedelta(hours=1),
                issued_at=now, audit_ids=[tokens.new_audit_id()], project_id="p1")
    base.update(kw)
    return tokens.TokenPayload(**base)


def test_round_trip(tmp_path):
    repo = tokens.KeyRepository(tmp_path / "keys")
    repo.setup()
    p = payload()
    tok = tokens.encode(repo, p)
    assert "=" not in tok and len(tok) < 400
    back = tokens.decode(repo, tok)
    assert back.user_id == "u1" and back.project_id == "p1" and back.scope == "project"
    assert abs((back.issued_at - p.issued_at).total_seconds()) < 1e-3


def test_rotation_keeps_old_tokens_until_pruned(tmp_path):
    repo = tokens.KeyRepository(tmp_path / "keys", max_active_keys=3)
    repo.setup()
    tok = tokens.encode(repo, payload())
    repo.rotate()
    assert tokens.decode(repo, tok).user_id == "u1"  # old primary is still a secondary
    repo.rotate()
    repo.rotate()
    with pytest.raises(ValueError):
        tokens.decode(repo, tok)  # its key was pruned


@pytest.mark.parametrize("bad", ["", "x" * 2000, "gAAAAA", "not a token", "é"])
def test_garbage_is_rejected(tmp_path, bad):
    repo = tokens.KeyRepository(tmp_path / "keys")
    repo.setup()
    with pytest.raises(ValueError):
        tokens.decode(repo, bad)
