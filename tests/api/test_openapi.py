"""Each service's OpenAPI 3.1 description at ``/<service>/openapi.json``: served without a
token, made from the service's own route table and the schemas its handlers validate with
(so it cannot drift from them), every route there, with its path parameters, whether or not
it reads a body."""

from __future__ import annotations

import re

import httpx
import jsonschema
import pytest
from starlette.routing import Route

from onestack.common import openapi
from onestack.compute import api as compute_api
from onestack.compute.api import keypairs
from onestack.compute.schemas import servers as server_schemas
from onestack.volume.api import schemas as volume_schemas

# the mount points of the services that publish one (the catalog's URL paths)
PUBLISHED = ("identity", "compute", "networking", "volume", "image", "orchestration", "metric",
             "alarming", "object-store")


@pytest.fixture(scope="module")
def docs(cloud):
    out = {}
    for service in PUBLISHED:
        r = httpx.get(f"{cloud.url}/{service}/openapi.json")  # no token: it is no data
        assert r.status_code == 200, (service, r.text)
        assert r.headers["content-type"] == "application/json"
        out[service] = r.json()
    return out


def test_every_service_publishes_a_description(cloud, docs):
    listed = {s["path"].strip("/") for s in httpx.get(cloud.url + "/").json()["services"]}
    assert set(PUBLISHED) <= listed
    for service, doc in docs.items():
        assert doc["openapi"] == "3.1.0" and doc["info"]["title"] and doc["info"]["version"], service
        assert doc["jsonSchemaDialect"] == openapi.DIALECT
        assert doc["servers"] == [{"url": f"/{service}"}], service  # paths are under the mount point
        assert doc["paths"], service
        for path, item in doc["paths"].items():
            for method, op in item.items():
                if method == "x-methods":  # Swift's COPY: no OpenAPI 3.1 method
                    continue
                assert method in ("get", "put", "post", "delete", "patch", "head", "options"), (path, method)
                names = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
                assert names == re.findall(r"{([^}]+)}", path), (path, names)
    ids = [op["operationId"] for op in docs["compute"]["paths"]
           for op in docs["compute"]["paths"][op].values()]
    assert len(ids) == len(set(ids))


def test_the_description_is_the_route_table(docs):
    """Every compute route is there with its methods; ones that read no body are there too."""
    compute_api.build()
    paths = docs["compute"]["paths"]
    for route in compute_api.api.routes:
        if isinstance(route, Route):
            methods = {m.lower() for m in route.methods} - ({"head"} if "GET" in route.methods else set())
            assert methods <= set(paths[route.path.replace(":path", "")]), route.path
    delete = paths["/v2.1/servers/{server_id}"]["delete"]
    assert "requestBody" not in delete and delete["parameters"][0]["name"] == "server_id"
    assert delete["security"] == [{"token": []}]
    # asking for a token is a route without one
    assert docs["identity"]["paths"]["/v3/auth/tokens"]["post"]["security"] == []


def test_bodies_are_the_schemas_the_handlers_validate_with(docs):
    def body(service, path, method="post"):
        return docs[service]["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]

    # microversioned bodies: any of the variants
    assert body("compute", "/v2.1/servers") == {"anyOf": [s for _, s in server_schemas.CREATE]}
    assert body("volume", "/v3/volumes") == {"anyOf": [s for _, s in volume_schemas.CREATE]}
    assert body("volume", "/v3/{project_id}/volumes") == body("volume", "/v3/volumes")
    keypair = body("compute", "/v2.1/os-keypairs")
    assert keypair["required"] == ["keypair"]
    assert keypair["properties"]["keypair"]["anyOf"] == list(keypairs._SCHEMAS.values())

    # and they say what the service takes and what it refuses
    check = jsonschema.Draft4Validator(keypair)
    assert check.is_valid({"keypair": {"name": "k1", "type": "ssh"}})
    assert not check.is_valid({"keypair": {"name": 5}}) and not check.is_valid({"keypairs": {}})
    network = jsonschema.Draft4Validator(body("networking", "/v2.0/{collection}"))
    assert network.is_valid({"network": {"name": "n"}}) and network.is_valid({"ports": [{"network_id": "x"}]})
    assert not network.is_valid({"network": {"name": 5}}) and not network.is_valid({"network": []})
    assert body("image", "/v2/images")["properties"]["name"]["maxLength"] == 255


def test_a_body_named_for_no_route_is_an_error():
    """The service's table of bodies is checked against its routes when the document is made."""
    with pytest.raises(ValueError, match="POST /v2.1/nothing"):
        openapi.document(compute_api.api, "Compute", "2.1", "/compute", {"POST /v2.1/nothing": {"type": "object"}})
