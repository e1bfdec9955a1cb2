"""Bad input gets a clear Keystone-style 4xx and changes nothing; nothing is a 500."""

import json
import uuid

import httpx
import pytest


@pytest.fixture(scope="module")
def http(cloud):
    env = cloud.openrc("admin")
    with httpx.Client(base_url=cloud.url + "/identity/v3", timeout=30) as client:
        r = client.post("/auth/tokens", json={"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"name": "Default"}, "password": env["OS_PASSWORD"]}}},
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}})
        assert r.status_code == 201
        client.headers["X-Auth-Token"] = r.headers["X-Subject-Token"]
        yield client


def project_count(http):
    return len(http.get("/projects").json()["projects"])


def assert_error(r, status, *words):
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert body["code"] == status and body["title"] and body["message"]
    for w in words:
        assert w.lower() in body["message"].lower(), body["message"]
    assert r.headers["x-openstack-request-id"].startswith("req-")


def test_malformed_json(http):
    before = project_count(http)
    r = http.post("/projects", content=b'{"project": {"name": ', headers={"Content-Type": "application/json"})
    assert_error(r, 400, "json")
    assert project_count(http) == before


@pytest.mark.parametrize("body,words", [
    ({}, ["project"]),
    ({"project": "x"}, ["project"]),
    ({"project": {}}, ["name"]),
    ({"project": {"name": 42}}, ["name"]),
    ({"project": {"name": "ok", "enabled": "yes"}}, ["enabled"]),
    ({"project": {"name": "x" * 300}}, ["name", "longer"]),
    ({"project": {"name": "   "}}, ["name"]),
    ({"project": {"name": "ok", "tags": "a"}}, ["tags"]),
])
def test_bad_project_bodies(http, body, words):
    before = project_count(http)
    assert_error(http.post("/projects", json=body), 400, *words)
    assert project_count(http) == before


def test_unknown_domain_and_duplicates(http):
    assert_error(http.post("/projects", json={"project": {"name": "p", "domain_id": "nope"}}), 404, "domain")
    r = http.post("/projects", json={"project": {"name": "dup-test"}})
    assert r.status_code == 201
    assert_error(http.post("/projects", json={"project": {"name": "dup-test"}}), 409, "dup-test")
    assert http.delete(f"/projects/{r.json()['project']['id']}").status_code == 204


def test_token_in_wrong_header(cloud, http):
    token = http.headers["X-Auth-Token"]
    r = httpx.get(cloud.url + "/identity/v3/projects", headers={"Authorization": f"Bearer {token}"})
    assert_error(r, 401, "authentication")
    assert "WWW-Authenticate" in r.headers
    r = httpx.get(cloud.url + "/identity/v3/projects", headers={"X-Auth-Token": "garbage"})
    assert_error(r, 401)


@pytest.mark.parametrize("auth,status", [
    ({}, 400),
    ({"auth": {}}, 400),
    ({"auth": {"identity": {"methods": "password"}}}, 400),
    ({"auth": {"identity": {"methods": ["kerberos"]}}}, 401),
    ({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin"}}}}}, 400),
    ({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "nobody", "domain": {"id": "default"}, "password": "x"}}}}}, 401),
    ({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": "wrong"}}}}}, 401),
    ({"auth": {"identity": {"methods": ["token"], "token": {"id": "bogus"}}}}, 401),
])
def test_bad_authentication(cloud, auth, status):
    r = httpx.post(cloud.url + "/identity/v3/auth/tokens", json=auth)
    assert_error(r, status)


def test_unknown_user_and_wrong_password_look_alike(cloud):
    def attempt(name):
        return httpx.post(cloud.url + "/identity/v3/auth/tokens", json={"auth": {"identity": {
            "methods": ["password"], "password": {"user": {
                "name": name, "domain": {"id": "default"}, "password": "wrong"}}}}})
    a, b = attempt("admin"), attempt("no-such-user")
    assert a.status_code == b.status_code == 401
    assert a.json()["error"]["message"] == b.json()["error"]["message"]


@pytest.mark.parametrize("method,path,body", [
    ("GET", "/projects/does-not-exist", None),
    ("PATCH", "/projects/does-not-exist", {"project": {"name": "x"}}),
    ("DELETE", "/projects/does-not-exist", None),
    ("GET", "/users/nope", None),
    ("GET", "/roles/nope", None),
    ("GET", "/domains/nope", None),
    ("GET", "/no/such/path", None),
])
def test_not_found(http, method, path, body):
    assert_error(http.request(method, path, json=body), 404)


def test_no_500_on_odd_requests(http):
    odd = [
        ("POST", "/projects", b"[]"), ("POST", "/projects", b"null"), ("POST", "/projects", b"\xff\xfe"),
        ("PATCH", "/projects/x", b"{}"), ("POST", "/users", b'{"user": {"name": null}}'),
        ("POST", "/roles", b'{"role": []}'), ("PUT", "/projects", b"{}"),
        ("POST", "/auth/tokens", b'{"auth": {"identity": {"methods": ["password"], "password": []}}}'),
        ("POST", "/auth/tokens", b'{"auth": {"identity": {"methods": ["password"], "password": {"user": {"id": 5, "password": 5}}}}}'),
        ("POST", "/auth/tokens", json.dumps({"auth": {"identity": {"methods": ["token"], "token": {"id": "x" * 5000}}}}).encode()),
        ("GET", "/auth/tokens", None),
    ]
    for method, path, content in odd:
        r = http.request(method, path, content=content, headers={"Content-Type": "application/json"})
        assert r.status_code < 500, (method, path, r.status_code, r.text)
        assert 400 <= r.status_code < 500, (method, path, r.status_code)


def test_concurrent_duplicate_creates_are_409_not_500(any_cloud):
    """Racing creates of the same names: one wins, the others get 409; nothing half-made."""
    import threading

    env = any_cloud.openrc("admin")
    base = any_cloud.url + "/identity/v3"
    token = httpx.post(base + "/auth/tokens", json={"auth": {"identity": {
        "methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": env["OS_PASSWORD"]}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}).headers["X-Subject-Token"]
    tag = uuid.uuid4().hex[:6]
    statuses: list[int] = []

    def worker():
        with httpx.Client(base_url=base, headers={"X-Auth-Token": token}, timeout=60) as h:
            for j in range(6):
                for kind in ("project", "user", "group"):
                    r = h.post(f"/{kind}s", json={kind: {"name": f"race-{tag}-{j}"}})
                    statuses.append(r.status_code)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(statuses) <= {201, 409}, statuses
    assert statuses.count(201) == 18  # exactly one of each name and kind
    with httpx.Client(base_url=base, headers={"X-Auth-Token": token}) as h:
        for kind in ("project", "user", "group"):
            rows = [x for x in h.get(f"/{kind}s").json()[f"{kind}s"] if x["name"].startswith(f"race-{tag}")]
            assert len(rows) == 6
            for x in rows:
                assert h.delete(f"/{kind}s/{x['id']}").status_code == 204
