"""Version discovery (what keystoneauth reads first) and the JSON-home document."""

from __future__ import annotations

from onestack.common.http import Req, json_response
from onestack.identity.api import MEDIA_TYPE, VERSION, api

UPDATED = "2020-04-07T00:00:00Z"
REL = "https://docs.openstack.org/api/openstack-identity/3/rel/"

# JSON-home: the resources this build serves (relation -> href or href-template).
_HOME = {
    "auth_tokens": "/auth/tokens",
    "auth_catalog": "/auth/catalog",
    "auth_projects": "/auth/projects",
    "auth_domains": "/auth/domains",
    "auth_system": "/auth/system",
    "domains": "/domains",
    "domain": ("/domains/{domain_id}", {"domain_id": "domain_id"}),
    "projects": "/projects",
    "project": ("/projects/{project_id}", {"project_id": "project_id"}),
    "project_tags": ("/projects/{project_id}/tags", {"project_id": "project_id"}),
    "users": "/users",
    "user": ("/users/{user_id}", {"user_id": "user_id"}),
    "user_change_password": ("/users/{user_id}/password", {"user_id": "user_id"}),
    "user_projects": ("/users/{user_id}/projects", {"user_id": "user_id"}),
    "user_groups": ("/users/{user_id}/groups", {"user_id": "user_id"}),
    "groups": "/groups",
    "group": ("/groups/{group_id}", {"group_id": "group_id"}),
    "group_users": ("/groups/{group_id}/users", {"group_id": "group_id"}),
    "roles": "/roles",
    "role": ("/roles/{role_id}", {"role_id": "role_id"}),
    "role_inferences": "/role_inferences",
    "role_assignments": "/role_assignments",
    "regions": "/regions",
    "region": ("/regions/{region_id}", {"region_id": "region_id"}),
    "services": "/services",
    "service": ("/services/{service_id}", {"service_id": "service_id"}),
    "endpoints": "/endpoints",
    "endpoint": ("/endpoints/{endpoint_id}", {"endpoint_id": "endpoint_id"}),
    "application_credentials": (
        "/users/{user_id}/application_credentials", {"user_id": "user_id"}),
    "credentials": "/credentials",
    "credential": ("/credentials/{credential_id}", {"credential_id": "credential_id"}),
    "registered_limits": "/registered_limits",
    "registered_limit": ("/registered_limits/{registered_limit_id}",
                         {"registered_limit_id": "registered_limit_id"}),
    "limits": "/limits",
    "limit": ("/limits/{limit_id}", {"limit_id": "limit_id"}),
    "limit_model": "/limits/model",
}


# OS-TRUST relations live under the extension's own prefix.
_TRUST_REL = "https://docs.openstack.org/api/openstack-identity/3/ext/OS-TRUST/1.0/rel/"
_TRUST_HOME = {
    "trusts": "/OS-TRUST/trusts",
    "trust": ("/OS-TRUST/trusts/{trust_id}", {"trust_id": "trust_id"}),
    "trust_roles": ("/OS-TRUST/trusts/{trust_id}/roles", {"trust_id": "trust_id"}),
    "trust_role": ("/OS-TRUST/trusts/{trust_id}/roles/{role_id}",
                   {"trust_id": "trust_id", "role_id": "role_id"}),
}


def _version(req: Req) -> dict:
    href = str(req.request.base_url).rstrip("/") + "/v3/"
    return {
        "id": f"v{VERSION}",
        "status": "stable",
        "updated": UPDATED,
        "links": [{"rel": "self", "href": href}],
        "media-types": [{"base": "application/json", "type": MEDIA_TYPE}],
    }


def _json_home() -> dict:
    resources = {}
    for prefix, home in ((REL, _HOME), (_TRUST_REL, _TRUST_HOME)):
        for rel, spec in home.items():
            if isinstance(spec, tuple):
                tmpl, params = spec
                resources[prefix + rel] = {
                    "href-template": "/v3" + tmpl,
                    "href-vars": {k: prefix.replace("/rel/", "/param/") + v for k, v in params.items()},
                }
            else:
                resources[prefix + rel] = {"href": "/v3" + spec}
    return {"resources": resources}


def _wants_json_home(req: Req) -> bool:
    return "application/json-home" in req.headers.get("accept", "")


@api.route("/", methods=["GET"], auth=False)
def versions(req: Req):
    if _wants_json_home(req):
        return json_response(_json_home(), headers={"Content-Type": "application/json-home"})
    return json_response({"versions": {"values": [_version(req)]}}, status=300)


@api.route("/v3", methods=["GET"], auth=False)
@api.route("/v3/", methods=["GET"], auth=False)
def version(req: Req):
    if _wants_json_home(req):
        resp = json_response(_json_home())
        resp.headers["content-type"] = "application/json-home"
        return resp
    return json_response({"version": _version(req)})
