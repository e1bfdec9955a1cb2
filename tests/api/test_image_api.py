"""Image API contract: discovery, schemas, JSON patch rules, listing, errors.

Through openstacksdk where it can say it; plain HTTP for what it cannot (a
patch touching a read-only attribute, a wrong media type, bad filters).
"""

from __future__ import annotations

import uuid

import httpx
import openstack
import pytest

PATCH = {"Content-Type": "application/openstack-images-v2.1-json-patch"}


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def conn(cloud):
    env = cloud.openrc("admin")
    c = openstack.connect(auth_url=env["OS_AUTH_URL"], username="admin", password=env["OS_PASSWORD"],
                          project_name="admin", user_domain_name="Default", project_domain_name="Default")
    yield c
    c.close()


@pytest.fixture(scope="module")
def http(cloud, conn):
    client = httpx.Client(base_url=f"{cloud.url}/image", headers={"X-Auth-Token": conn.auth_token})
    yield client
    client.close()


def test_version_discovery(cloud, conn):
    r = httpx.get(f"{cloud.url}/image")
    assert r.status_code == 300
    ids = [v["id"] for v in r.json()["versions"]]
    assert ids[0] == "v2.7" and "v2.0" in ids
    assert httpx.get(f"{cloud.url}/image/versions").status_code == 200
    # the sdk discovers the endpoint from the catalog and this document
    assert conn.image.get_endpoint().rstrip("/").endswith("/image/v2") or conn.image.get_endpoint()


def test_schemas(conn, http):
    assert conn.image.get_images_schema().to_dict()["properties"]["images"]
    for name in ("image", "images", "member", "members"):
        body = http.get(f"/v2/schemas/{name}").json()
        assert body["name"] == name
    image = http.get("/v2/schemas/image").json()
    assert image["additionalProperties"] == {"type": "string"}
    assert image["properties"]["status"]["readOnly"] is True


def test_create_with_all_standard_attributes(conn, http):
    image_id = str(uuid.uuid4())
    image = conn.image.create_image(
        id=image_id, name=_name("attrs"), disk_format="iso", container_format="ovf", visibility="community",
        protected=False, min_disk=2, min_ram=256, tags=["a", "b"],
        properties={"hypervisor_type": "qemu", "os_type": "linux", "hw_scsi_model": "virtio-scsi"},
    )
    conn.image.update_image(image, is_hidden=True)  # (the sdk's create sends extra keys as strings)
    got = conn.image.get_image(image_id)
    assert got.id == image_id and got.visibility == "community" and got.is_hidden is True
    assert got.disk_format == "iso" and got.container_format == "ovf" and got.min_ram == 256
    assert sorted(got.tags) == ["a", "b"]
    raw = http.get(f"/v2/images/{image_id}").json()  # extra properties sit beside the core ones
    assert raw["hypervisor_type"] == "qemu" and raw["hw_scsi_model"] == "virtio-scsi" and raw["os_type"] == "linux"
    # hidden images are left out of the default list, and listed with os_hidden=true
    assert image_id not in {i.id for i in conn.image.images()}
    assert image_id in {i.id for i in conn.image.images(is_hidden=True)}
    # the same id again: 409
    with pytest.raises(openstack.exceptions.ConflictException):
        conn.image.create_image(id=image_id, name="again", disk_format="raw", container_format="bare")
    conn.image.delete_image(image)


def test_patch_rules(conn, http):
    image = conn.image.create_image(name=_name("patch"), disk_format="raw", container_format="bare")
    url = f"/v2/images/{image.id}"

    def patch(ops, headers=PATCH):
        return http.patch(url, json=ops, headers=headers)

    r = patch([{"op": "replace", "path": "/name", "value": "renamed"},
               {"op": "add", "path": "/os_distro", "value": "tiny"},
               {"op": "add", "path": "/tags", "value": ["x", "x", "y"]}])
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "renamed" and r.json()["os_distro"] == "tiny" and r.json()["tags"] == ["x", "y"]
    # the 2.0 patch format (Tempest's) too
    r = patch([{"replace": "/min_ram", "value": 512}],
              {"Content-Type": "application/openstack-images-v2.0-json-patch"})
    assert r.status_code == 200 and r.json()["min_ram"] == 512
    cases = [
        ([{"op": "replace", "path": "/status", "value": "active"}], 403, "read-only"),
        ([{"op": "replace", "path": "/size", "value": 1}], 403, "read-only"),
        ([{"op": "add", "path": "/deleted", "value": "x"}], 403, "reserved"),
        ([{"op": "remove", "path": "/name"}], 403, "core attribute"),
        ([{"op": "remove", "path": "/nope"}], 409, "does not exist"),
        ([{"op": "replace", "path": "/nope", "value": "x"}], 409, "does not exist"),
        ([{"op": "add", "path": "/os_distro", "value": "again"}], 409, "already present"),
        ([{"op": "add", "path": "/hw_x", "value": 1}], 400, "hw_x"),  # extra properties are strings
        ([{"op": "replace", "path": "/disk_format", "value": "floppy"}], 400, "disk_format"),
        ([{"op": "replace", "path": "/min_ram", "value": -1}], 400, "min_ram"),
        ([{"op": "move", "path": "/name", "from": "/x"}], 400, "operation"),
        ([{"op": "replace", "path": "/a/b", "value": "x"}], 400, "pointer"),
        ({"op": "replace"}, 400, "list"),
    ]
    for ops, status, text in cases:
        r = patch(ops)
        assert r.status_code == status and text in r.text, (ops, r.status_code, r.text)
    r = patch([{"op": "replace", "path": "/name", "value": "x"}], {"Content-Type": "application/json"})
    assert r.status_code == 415
    # nothing of the refused patches stuck
    got = conn.image.get_image(image.id)
    assert got.name == "renamed" and got.os_distro == "tiny" and got.min_ram == 512
    # via the sdk: set and remove an extra property
    conn.image.update_image(image, os_version="1.0", my_note="hello")
    got = conn.image.get_image(image.id)
    assert got.os_version == "1.0" and got.properties["my_note"] == "hello"
    conn.image.delete_image(image)


def test_create_refuses_bad_input(http):
    cases = [
        ({"name": "x", "status": "active"}, 403),
        ({"name": "x", "checksum": "0" * 32}, 403),
        ({"name": "x", "disk_format": "floppy"}, 400),
        ({"name": "x", "visibility": "everyone"}, 400),
        ({"name": "x", "id": "not-a-uuid"}, 400),
        ({"name": "x", "min_disk": "big"}, 400),
        ({"name": "x", "hw_cpu_cores": 4}, 400),
        ({"name": "x" * 256}, 400),
        ([1, 2], 400),
    ]
    before = len(http.get("/v2/images", params={"limit": 1000}).json()["images"])
    for body, status in cases:
        r = http.post("/v2/images", json=body)
        assert r.status_code == status, (body, r.status_code, r.text)
    r = http.post("/v2/images", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert len(http.get("/v2/images", params={"limit": 1000}).json()["images"]) == before


def test_list_filters_sorting_and_pagination(conn, http):
    tag = _name("tag")
    made = [conn.image.create_image(name=f"{tag}-{i}", disk_format="raw", container_format="bare",
                                    tags=[tag], min_ram=i * 10, visibility="private")
            for i in range(5)]
    ids = {i.id for i in made}
    # the sdk follows `next` links page by page
    assert {i.id for i in conn.image.images(tag=tag, limit=2)} == ids
    page = http.get("/v2/images", params={"tag": tag, "limit": 2, "sort": "name:asc"}).json()
    assert [i["name"] for i in page["images"]] == [f"{tag}-0", f"{tag}-1"]
    assert "marker=" in page["next"] and page["next"].startswith("/v2/images?")
    page2 = http.get(page["next"]).json()
    assert [i["name"] for i in page2["images"]] == [f"{tag}-2", f"{tag}-3"]
    r = http.get("/v2/images", params={"tag": tag, "sort_key": "min_ram", "sort_dir": "desc"}).json()
    assert [i["min_ram"] for i in r["images"]] == [40, 30, 20, 10, 0]
    names = [f"{tag}-1", f"{tag}-3"]
    r = http.get("/v2/images", params={"name": f"in:{','.join(names)}"}).json()
    assert sorted(i["name"] for i in r["images"]) == names
    r = http.get("/v2/images", params={"tag": tag, "created_at": "gte:2000-01-01T00:00:00Z"}).json()
    assert len(r["images"]) == 5
    for params in ({"sort_key": "bogus"}, {"sort_dir": "up"}, {"limit": "x"}, {"marker": str(uuid.uuid4())},
                   {"visibility": "everyone"}, {"size_min": "big"}, {"created_at": "after:yesterday"},
                   {"sort": "name:asc", "sort_key": "name"}):
        assert http.get("/v2/images", params=params).status_code == 400, params
    for image in made:
        conn.image.delete_image(image)


def test_tags_and_errors_for_missing_things(http, conn):
    image = conn.image.create_image(name=_name("tags"), disk_format="raw", container_format="bare")
    conn.image.add_tag(image, "blue")
    assert conn.image.get_image(image.id).tags == ["blue"]
    conn.image.remove_tag(image, "blue")
    assert http.delete(f"/v2/images/{image.id}/tags/blue").status_code == 404
    missing = str(uuid.uuid4())
    assert http.put(f"/v2/images/{missing}/tags/x").status_code == 404
    assert http.get(f"/v2/images/{missing}").status_code == 404
    assert http.get("/v2/images/").status_code == 404
    assert http.get("/v2/images/not-a-uuid").status_code == 404
    r = http.delete(f"/v2/images/{missing}")
    assert r.status_code == 404 and f"No image found with ID {missing}" in r.text
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.image.get_image(missing)
    conn.image.delete_image(image)
    assert http.get(f"/v2/images/{image.id}").status_code == 404
    assert http.delete(f"/v2/images/{image.id}").status_code == 404
    r = http.get("/v2/images", headers={"X-Auth-Token": "bogus"})
    assert r.status_code == 401


def test_image_round_trip_on_both_databases(any_cloud, tmp_path):
    env = any_cloud.openrc("demo")
    c = openstack.connect(auth_url=env["OS_AUTH_URL"], username="demo", password=env["OS_PASSWORD"],
                          project_name="demo", user_domain_name="Default", project_domain_name="Default")
    try:
        path = tmp_path / "data.raw"
        path.write_bytes(b"onestack" * 1000)
        image = c.image.create_image(name=_name("db"), filename=str(path), disk_format="raw",
                                     container_format="bare", tags=["db"], wait=True)
        assert image.id in {i.id for i in c.image.images(tag="db", sort_key="size", sort_dir="asc")}
        c.image.update_image(image, name="renamed-db", os_distro="tiny")
        c.image.add_tag(image, "second")
        got = c.image.get_image(image.id)
        assert got.name == "renamed-db" and got.size == 8000 and sorted(got.tags) == ["db", "second"]
        assert c.image.download_image(got).content == path.read_bytes()
        c.image.delete_image(image)
        assert c.image.find_image(image.id) is None
    finally:
        c.close()
