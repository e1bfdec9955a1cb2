"""A cloud that kept project quotas in each service's own tables (before unified limits)
moves them into identity's limits at its next start, once."""

from __future__ import annotations

import sqlite3

from tests.cloud import Cloud, wait_for


def test_quotas_kept_before_move_to_identity_limits():
    c = Cloud("quota-upgrade").start()
    try:
        pid = c.os_json("project", "show", "demo")["id"]
        c.onestack("down")
        db = sqlite3.connect(c.state / "onestack.db")
        with db:
            db.execute("INSERT INTO network_quota (project_id, resource, hard_limit) VALUES (?, 'port', 42)", (pid,))
            db.execute("INSERT INTO compute_quota (project_id, resource, hard_limit) VALUES (?, 'instances', 6)", (pid,))
            db.execute("INSERT INTO compute_quota (project_id, resource, hard_limit) VALUES (?, 'key_pairs', 5)", (f"{pid}:user:someone",))
            db.execute("INSERT INTO compute_quota (project_id, resource, hard_limit) VALUES ('class:default', 'cores', 33)")
            db.execute("INSERT INTO volume_quota (project_id, resource, hard_limit) VALUES (?, 'volumes', 4)", (pid,))
        db.close()
        c.start()

        def limits():
            rows = c.os_json("limit", "list", "--project", "demo")
            return {r["Resource Name"]: r["Resource Limit"] for r in rows}

        wait_for(lambda: len(limits()) == 3, what="the old quotas moved to identity")
        assert limits() == {"port": 42, "servers": 6, "volumes": 4}
        q = {r["Resource"]: r["Limit"] for r in c.os_json("quota", "show", "--compute", "demo")}
        assert q["instances"] == 6 and q["cores"] == 33
        q = c.os_json("quota", "show", "--network", "demo")
        q = dict(q) if isinstance(q, dict) else {r["Resource"]: r["Limit"] for r in q}
        assert q["ports"] == 42
        db = sqlite3.connect(c.state / "onestack.db")
        left = db.execute("SELECT project_id, resource FROM compute_quota").fetchall()
        assert left == [(f"{pid}:user:someone", "key_pairs")]  # a user's limit stays compute's
        assert db.execute("SELECT count(*) FROM network_quota").fetchone() == (0,)
        db.close()
    finally:
        c.stop()
