"""The HTTP token validator that API processes outside the identity process use."""

import httpx
import pytest

from onestack.common import errors
from onestack.common.auth import HttpValidator, RequestContext


def issue(cloud, user):
    env = cloud.openrc(user)
    r = httpx.post(cloud.url + "/identity/v3/auth/tokens", json={"auth": {"identity": {
        "methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": env["OS_PASSWORD"]}}},
        "scope": {"project": {"name": env["OS_PROJECT_NAME"], "domain": {"id": "default"}}}}})
    return r.headers["X-Subject-Token"]


def test_validates_revokes_and_renews(cloud):
    admin = cloud.openrc("admin")
    v = HttpValidator(admin["OS_AUTH_URL"], "admin", admin["OS_PASSWORD"], "admin")
    demo = issue(cloud, "demo")
    ctx = RequestContext.from_token(demo, v(demo))
    assert ctx.user_name == "demo" and ctx.project_name == "demo" and "member" in ctx.roles
    with pytest.raises(errors.Unauthorized):
        v("not-a-token")
    # revoke the validator's own service token: it renews it and carries on
    httpx.delete(cloud.url + "/identity/v3/auth/tokens",
                 headers={"X-Auth-Token": v._token, "X-Subject-Token": v._token})
    assert v(demo)["token"]["user"]["name"] == "demo"
    # a revoked user token is refused
    httpx.delete(cloud.url + "/identity/v3/auth/tokens",
                 headers={"X-Auth-Token": demo, "X-Subject-Token": demo})
    with pytest.raises(errors.Unauthorized):
        v(demo)
