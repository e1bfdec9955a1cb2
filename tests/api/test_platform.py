"""Platform promises every service relies on: request ids and logging, policy overrides."""

import httpx

from tests.cloud import Cloud


def test_request_id_and_one_log_line(cloud):
    env = cloud.openrc("admin")
    r = httpx.post(cloud.url + "/identity/v3/auth/tokens", json={"auth": {"identity": {
        "methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": env["OS_PASSWORD"]}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}})
    token = r.headers["X-Subject-Token"]
    r = httpx.get(cloud.url + "/identity/v3/projects", headers={"X-Auth-Token": token})
    rid = r.headers["x-openstack-request-id"]
    user_id = httpx.get(cloud.url + "/identity/v3/auth/tokens", headers={
        "X-Auth-Token": token, "X-Subject-Token": token}).json()["token"]["user"]["id"]
    lines = [ln for ln in (cloud.state / "onestack.log").read_text().splitlines() if rid in ln]
    assert len(lines) == 1
    assert f"user={user_id}" in lines[0] and "GET /identity/v3/projects -> 200" in lines[0]
    assert env["OS_PASSWORD"] not in (cloud.state / "onestack.log").read_text()
    # every response has an id, the service list and unknown paths too
    for path in ("/", "/nowhere", "/identity"):
        assert httpx.get(cloud.url + path).headers["x-openstack-request-id"].startswith("req-")
    assert httpx.get(cloud.url + "/").json()["services"][0]["name"] == "identity"


def test_policy_override_file(tmp_path):
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "identity.yaml").write_text('"identity:list_users": "role:member"\n')
    c = Cloud("policy", extra_env={"ONESTACK_POLICY_DIR": str(policy)}).start()
    try:
        users = c.os_json("user", "list", user="demo")
        assert "admin" in {u["Name"] for u in users}
        r = c.openstack("project", "create", "still-forbidden", user="demo", check=False)
        assert r.returncode != 0 and "403" in r.stderr
    finally:
        c.stop()
