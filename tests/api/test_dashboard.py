"""The dashboard's backend-for-frontend over HTTP (httpx, as a browser would post its
forms): login and logout, sessions, CSRF, security headers, escaping, policy (member vs
admin), form errors and the panels of the first slice. The real-browser walk-through is
tests/api/test_dashboard_browser.py."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import uuid

import pytest
import yaml

from tests.cloud import BIN, wait_for
from tests.dashboard import Dash, text


@pytest.fixture(scope="module")
def image(cloud, tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "dash.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "16M"], check=True)
    img = cloud.os_json("image", "create", "--disk-format", "qcow2", "--container-format", "bare", "--public",
                        "--file", str(path), f"dash-{uuid.uuid4().hex[:6]}")
    yield img
    cloud.openstack("image", "delete", img["id"], check=False)


@pytest.fixture
def demo(cloud):
    with Dash(cloud) as d:
        assert d.login("demo", cloud.password("demo")).status_code == 303
        yield d


def _db(cloud):
    return sqlite3.connect(cloud.state / "onestack.db")


def test_root_links_the_dashboard(cloud, demo):
    assert demo.get("/").json()["dashboard"] == f"{cloud.url}/dashboard/"
    r = demo.get("/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert r.status_code == 302 and r.headers["location"] == "/dashboard/"


def test_security_headers_and_login_redirect(cloud):
    with Dash(cloud) as d:
        for path in ("/dashboard/login", "/dashboard/project/instances"):
            r = d.get(path)
            assert r.headers["x-frame-options"] == "DENY"
            assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
            assert "script-src 'self'" in r.headers["content-security-policy"]
            assert r.headers["x-content-type-options"] == "nosniff"
        assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/login?next=")


def test_bad_password_shown_in_the_form(cloud):
    with Dash(cloud) as d:
        r = d.login("demo", "not-the-password")
        assert r.status_code == 401
        assert "Invalid credentials" in text(r)
        assert "onestack_session" not in r.headers.get("set-cookie", "")


def test_session_cookie_and_token_kept_server_side(cloud, demo):
    with Dash(cloud) as d:
        page = d.get("/dashboard/login")
        r = d.login("demo", cloud.password("demo"))
    cookie = [c for c in r.headers.get_list("set-cookie") if c.startswith("onestack_session=")][0]
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    assert "secure" not in cookie.lower()  # plain http here (Secure under TLS)
    assert "csrf_token" in page.text
    with _db(cloud) as c:
        tokens = [t for (t,) in c.execute("SELECT token FROM dashboard_session")]
    assert tokens
    pages = [demo.get(p).text for p in ("/dashboard/project/", "/dashboard/project/instances",
                                        "/dashboard/project/api_access", "/dashboard/project/api_access/openrc")]
    log = (cloud.state / "onestack.log").read_text()
    for token in tokens:
        assert all(token not in p for p in pages)
        assert token not in log


def test_form_post_without_csrf_token_refused(cloud, demo):
    name = f"nocsrf-{uuid.uuid4().hex[:6]}"
    for data in ({"name": name, "size": "1"}, {"name": name, "size": "1", "csrf_token": "forged"}):
        r = demo.http.post("/dashboard/project/volumes", data=data)
        assert r.status_code == 403 and "CSRF" in text(r)
    assert name not in cloud.openstack("volume", "list", user="demo").stdout
    with Dash(cloud) as d:  # the login form too
        r = d.http.post("/dashboard/login", data={"domain": "Default", "username": "demo",
                                                  "password": cloud.password("demo")})
        assert r.status_code == 403 and "onestack_session" not in r.headers.get("set-cookie", "")


def test_instance_launched_and_its_name_escaped(cloud, demo, image):
    name = "<script>alert(1)</script>"
    page = demo.get("/dashboard/project/instances")
    assert page.status_code == 200 and image["name"] in page.text
    r = demo.post("/dashboard/project/instances", {"name": name, "image": image["id"], "flavor": "42",
                                                    "network": "", "count": "1"})
    assert r.status_code == 303, text(r)
    server = next(s for s in cloud.os_json("server", "list", user="demo") if s["Name"] == name)
    try:
        rows = wait_for(lambda: (x := demo.get("/dashboard/project/instances/rows")).text.count("ACTIVE") and x,
                        60, "the instance ACTIVE in the list")
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rows.text
        assert "<script>alert" not in rows.text
        assert "<script>alert" not in demo.get("/dashboard/project/instances").text
        detail = demo.get(f"/dashboard/project/instances/{server['ID']}")
        assert detail.status_code == 200 and "<script>alert" not in detail.text
        assert "Instance <script>alert(1)</script>" in text(detail)  # shown as text
        assert "<td>create</td>" in detail.text[detail.text.index('id="action-log"'):]
        console = detail.text[detail.text.index('<section id="console">'):detail.text.index('id="action-log"')]
        assert '<iframe src="' in console or 'id="console-unavailable"' in console
        with Dash(cloud) as admin:
            assert admin.login("admin", cloud.password("admin")).status_code == 303
            everything = admin.get("/dashboard/admin/instances").text
            row = everything[everything.index(f'data-id="{server["ID"]}"'):]
            assert "<td>demo</td>" in row[:row.index("</tr>")]
        assert demo.post(f"/dashboard/project/instances/{server['ID']}", {"action": "lock"}).status_code == 303
        assert "🔒" in demo.get("/dashboard/project/instances/rows").text
        assert demo.post(f"/dashboard/project/instances/{server['ID']}", {"action": "unlock"}).status_code == 303
        assert "🔒" not in demo.get("/dashboard/project/instances/rows").text
        r = demo.post(f"/dashboard/project/instances/{server['ID']}", {"action": "resize", "flavor": "84"})
        assert r.status_code == 303, text(r)
        rows = wait_for(lambda: (x := demo.get("/dashboard/project/instances/rows").text).count("VERIFY_RESIZE")
                        and x, 60, "VERIFY_RESIZE")
        assert 'value="confirm-resize"' in rows and 'value="revert-resize"' in rows
        r = demo.post(f"/dashboard/project/instances/{server['ID']}", {"action": "confirm-resize"})
        assert r.status_code == 303, text(r)
        wait_for(lambda: "m1.micro" in demo.get("/dashboard/project/instances/rows").text, 60, "resized")
        wait_for(lambda: "ACTIVE" in demo.get("/dashboard/project/instances/rows").text, 60, "ACTIVE again")
        r = demo.post(f"/dashboard/project/instances/{server['ID']}", {"action": "stop"})
        assert r.status_code == 303
        wait_for(lambda: "SHUTOFF" in demo.get("/dashboard/project/instances/rows").text, 60, "SHUTOFF")
    finally:
        r = demo.post(f"/dashboard/project/instances/{server['ID']}", {"action": "delete"})
        assert r.status_code == 303
    wait_for(lambda: server["ID"] not in demo.get("/dashboard/project/instances/rows").text, 60, "deleted")


def test_api_error_shown_in_its_form(cloud, demo, image):
    r = demo.post("/dashboard/project/volumes", {"name": "too-big", "size": "0"})
    assert r.status_code == 400
    body = r.text
    form = body[body.index('id="create-volume"'):]
    assert 'class="error"' in form and "size" in text(r).lower()
    r = demo.post("/dashboard/project/instances", {"name": "no-flavor", "image": image["id"],
                                                   "flavor": "no-such-flavor", "count": "1"})
    assert r.status_code in (400, 404)
    launch = r.text[r.text.index('id="launch"'):]
    assert 'class="error"' in launch and "flavor" in launch[:launch.index("</p>")].lower()


def test_keypair_created_once_imported_and_deleted(cloud, demo):
    name = f"dk-{uuid.uuid4().hex[:6]}"
    r = demo.post("/dashboard/project/key_pairs/create", {"name": name})
    assert r.status_code == 200 and "PRIVATE KEY" in r.text
    assert r.headers["content-disposition"] == f'attachment; filename="{name}.pem"'
    assert name in demo.get("/dashboard/project/key_pairs").text
    pub = cloud.os_json("keypair", "show", name, user="demo")
    r = demo.post("/dashboard/project/key_pairs/create", {"name": name})
    assert r.status_code == 409 and 'class="error"' in r.text  # a second time: refused, shown
    demo.post(f"/dashboard/project/key_pairs/{name}/delete")
    assert cloud.openstack("keypair", "show", name, user="demo", check=False).returncode != 0
    assert pub["fingerprint"]


def test_overview_quota_gauges(demo):
    page = text(demo.get("/dashboard/project/"))
    for label in ("Instances", "VCPUs", "RAM (MiB)", "Volumes", "Floating IPs", "Networks"):
        assert label in page, label


def test_lists_networks_images_api_access(cloud, demo, image):
    images = demo.get("/dashboard/project/images").text
    assert image["name"] in images and f"/dashboard/project/instances?image={image['id']}" in images
    launch = demo.get("/dashboard/project/instances", params={"image": image["id"]}).text
    assert f'<option value="{image["id"]}" selected>' in launch  # launched from the image: preselected
    nets = demo.get("/dashboard/project/networks").text
    assert "public" in nets
    api = text(demo.get("/dashboard/project/api_access"))
    assert f"{cloud.url}/compute/v2.1" in api and "identity" in api
    rc = demo.get("/dashboard/project/api_access/openrc")
    assert "attachment" in rc.headers["content-disposition"]
    assert f"export OS_AUTH_URL={cloud.url}/identity/v3" in rc.text
    assert "export OS_USERNAME=demo" in rc.text and "export OS_PROJECT_NAME=demo" in rc.text
    assert cloud.password("demo") not in rc.text
    cy = yaml.safe_load(demo.get("/dashboard/project/api_access/clouds.yaml").text)
    assert cy["clouds"]["onestack"]["auth"]["username"] == "demo"


def test_openrc_works_with_the_cli(cloud, demo, tmp_path):
    """The downloaded openrc, sourced (it asks for the password), drives the real CLI."""
    rc = tmp_path / "demo-openrc.sh"
    rc.write_text(demo.get("/dashboard/project/api_access/openrc").text)
    r = subprocess.run(["bash", "-c", f". {rc} >/dev/null && {BIN}/openstack network list -f value -c Name"],
                       input=cloud.password("demo") + "\n", env=cloud.env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "private" in r.stdout.split()


def test_keypair_imported(cloud, demo):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    name = f"dki-{uuid.uuid4().hex[:6]}"
    public = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    r = demo.post("/dashboard/project/key_pairs/import", {"name": name, "public_key": "not a key"})
    assert r.status_code == 400 and 'class="error"' in r.text[r.text.index('id="import-keypair"'):]
    assert "not a key" in r.text  # what was typed stays in the form
    assert demo.post("/dashboard/project/key_pairs/import", {"name": name, "public_key": public}).status_code == 303
    try:
        assert cloud.os_json("keypair", "show", name, user="demo")["name"] == name
    finally:
        cloud.openstack("keypair", "delete", name, user="demo", check=False)


def test_member_sees_no_admin_panel_and_admin_does(cloud, demo):
    assert "/dashboard/admin/" not in demo.get("/dashboard/project/").text
    for path in ("/dashboard/admin/", "/dashboard/admin/instances", "/dashboard/identity/"):
        r = demo.get(path)
        assert r.status_code == 403 and "administrators" in text(r)
    with Dash(cloud) as admin:
        assert admin.login("admin", cloud.password("admin")).status_code == 303
        assert "/dashboard/admin/" in admin.get("/dashboard/project/").text
        page = admin.get("/dashboard/admin/")
        assert page.status_code == 200 and "nova-compute" in page.text
        assert admin.get("/dashboard/admin/instances").status_code == 200
        assert "demo" in text(admin.get("/dashboard/identity/"))


def test_project_switch_logout_and_timeout(cloud):
    with cloud.new_member("dash") as env, Dash(cloud) as d:
        user, project = env["OS_USERNAME"], env["OS_PROJECT_NAME"]
        cloud.openstack("role", "add", "--project", "demo", "--user", user, "member")
        assert d.login(user, env["OS_PASSWORD"]).status_code == 303
        page = d.get("/dashboard/project/").text
        assert project in page and "demo" in page
        demo_id = cloud.os_json("project", "show", "demo")["id"]
        r = d.post("/dashboard/switch", {"project_id": demo_id})
        assert r.status_code == 303
        assert "Overview of project demo" in text(d.get("/dashboard/project/"))
        assert d.post("/dashboard/logout").status_code == 303
        assert d.get("/dashboard/project/").headers["location"].startswith("/dashboard/login")
        # an idle session ends: its last use moved back past the timeout
        assert d.login(user, env["OS_PASSWORD"]).status_code == 303
        with _db(cloud) as c:
            c.execute("UPDATE dashboard_session SET last_seen = '2000-01-01 00:00:00' WHERE user_name = ?", (user,))
        assert d.get("/dashboard/project/").status_code == 303


def test_unknown_page_is_a_404_page(demo):
    r = demo.get("/dashboard/no/such/page")
    assert r.status_code == 404 and "no page" in text(r).lower()
    assert r.headers["x-frame-options"] == "DENY"


def test_volume_attached_and_floating_ip_associated(cloud, demo, image):
    name = f"dv-{uuid.uuid4().hex[:6]}"
    r = demo.post("/dashboard/project/instances", {"name": name, "image": image["id"], "flavor": "42",
                                                   "network": "", "count": "1", "security_groups": "default",
                                                   "user_data": "#!/bin/sh\necho hi"})
    assert r.status_code == 303, text(r)
    sid = next(s["ID"] for s in cloud.os_json("server", "list", user="demo") if s["Name"] == name)
    fip = None
    try:
        shown = wait_for(lambda: (x := cloud.os_json("server", "show", sid, user="demo"))["status"] == "ACTIVE"
                         and x, 60, "ACTIVE")
        assert "default" in str(shown["security_groups"])
        port = cloud.os_json("port", "list", "--server", sid, user="demo")[0]
        detail = demo.get(f"/dashboard/project/instances/{sid}").text
        assert port["ID"] in detail[detail.index('id="interfaces"'):]  # its interfaces, listed
        # a second interface on the same network, then detached again
        net = cloud.os_json("port", "show", port["ID"], user="demo")["network_id"]
        r = demo.post(f"/dashboard/project/instances/{sid}", {"action": "attach-interface", "network": net})
        assert r.status_code == 303, text(r)
        ports = cloud.os_json("port", "list", "--server", sid, user="demo")
        assert len(ports) == 2
        added = next(p["ID"] for p in ports if p["ID"] != port["ID"])
        assert added in demo.get(f"/dashboard/project/instances/{sid}").text
        r = demo.post(f"/dashboard/project/instances/{sid}", {"action": "detach-interface", "port_id": added})
        assert r.status_code == 303, text(r)
        wait_for(lambda: [p["ID"] for p in cloud.os_json("port", "list", "--server", sid, user="demo")]
                 == [port["ID"]], 60, "the second interface detached")
        r = demo.post(f"/dashboard/project/instances/{sid}", {"action": "detach-interface", "port_id": added})
        assert r.status_code == 404 and 'class="error"' in r.text  # the API's refusal, shown
        assert demo.post("/dashboard/project/volumes", {"name": name, "size": "1"}).status_code == 303
        vid = wait_for(lambda: next((v["ID"] for v in cloud.os_json("volume", "list", user="demo")
                                     if v["Name"] == name and v["Status"] == "available"), None), 60, "available")
        r = demo.post(f"/dashboard/project/volumes/{vid}", {"action": "attach", "server_id": sid})
        assert r.status_code == 303, text(r)
        wait_for(lambda: f"{name} on /dev/" in demo.get("/dashboard/project/volumes").text, 60, "attached")
        public = cloud.os_json("network", "show", "public")["id"]
        assert demo.post("/dashboard/project/floating_ips", {"network_id": public}).status_code == 303
        fip = cloud.os_json("floating ip", "list", user="demo")[0]
        r = demo.post(f"/dashboard/project/floating_ips/{fip['ID']}", {"action": "associate", "server_id": sid})
        assert r.status_code == 303, text(r)
        page = demo.get("/dashboard/project/floating_ips").text
        row = page[page.index(fip["Floating IP Address"]):]
        assert name in row[:row.index("</tr>")]
        r = demo.post(f"/dashboard/project/volumes/{vid}", {"action": "delete"})
        assert r.status_code == 400 and 'class="error"' in r.text  # in use: the API says why
    finally:
        if fip:
            cloud.openstack("floating ip", "delete", fip["ID"], user="demo", check=False)
        cloud.openstack("server", "delete", "--wait", sid, user="demo", check=False)
        cloud.openstack("volume", "delete", name, user="demo", check=False)


def test_admin_makes_project_user_role_and_quota(cloud):
    """The issue's admin scenario: a project, a user with a role on it and a quota, made in
    the Identity panel; the new user logs in and sees only that project, with that quota."""
    name = f"dp-{uuid.uuid4().hex[:6]}"
    with Dash(cloud) as admin:
        assert admin.login("admin", cloud.password("admin")).status_code == 303
        try:
            assert admin.post("/dashboard/identity/project", {"name": name, "domain_id": "default"}).status_code == 303
            project = cloud.os_json("project", "show", name)
            roles = {r["Name"]: r["ID"] for r in cloud.os_json("role", "list")}
            r = admin.post("/dashboard/identity/user", {"name": name, "password": "pw-" + name,
                                                        "project_id": project["id"], "role_id": roles["member"]})
            assert r.status_code == 303, text(r)
            r = admin.post("/dashboard/identity/user", {"name": name, "password": "x"})  # again: refused, shown
            assert r.status_code == 409 and 'class="error"' in r.text[r.text.index('id="create-user"'):]
            r = admin.post("/dashboard/identity/quota", {"project_id": project["id"], "instances": "0"})
            assert r.status_code == 303, text(r)
            with Dash(cloud) as user:
                assert user.login(name, "pw-" + name).status_code == 303
                page = user.get("/dashboard/project/")
                assert f"Overview of project {name}" in text(page)
                switcher = page.text[page.text.index('name="project_id"'):]
                options = switcher[:switcher.index("</select>")].split("<option")[1:]
                assert len(options) == 1 and name in options[0]  # only their project in the switcher
                gauge = text(page)[text(page).index("Instances"):]
                user_id = cloud.os_json("user", "show", name)["id"]
                assert "Used 0 of 0" in gauge
                launch = user.get("/dashboard/project/instances").text  # nothing fits: not offered, and why
                assert 'disabled title="The project' in launch and "has no instances left" in text(user.get(
                    "/dashboard/project/instances"))
            assert admin.post("/dashboard/identity/disable-user", {"id": user_id}).status_code == 303
            with Dash(cloud) as user:
                assert user.login(name, "pw-" + name).status_code == 401  # disabled: no way in
            admin_id = cloud.os_json("user", "show", "admin")["id"]
            r = admin.post("/dashboard/identity/delete-user", {"id": admin_id})
            assert r.status_code == 400 and "logged in as" in text(r)
            assert admin.post("/dashboard/identity/delete-user", {"id": user_id}).status_code == 303
            assert admin.post("/dashboard/identity/delete-project", {"id": project["id"]}).status_code == 303
            assert cloud.openstack("project", "show", name, check=False).returncode != 0
        finally:
            cloud.openstack("user", "delete", name, check=False)
            cloud.openstack("project", "delete", name, check=False)


def test_network_created_with_subnet_and_a_refused_one_left_nowhere(cloud, demo):
    name = f"dn-{uuid.uuid4().hex[:6]}"
    r = demo.post("/dashboard/project/networks", {"name": name + "-bad", "cidr": "10.300.0.0/24"})
    assert r.status_code == 400
    form = r.text[r.text.index('id="create-network"'):]
    assert 'class="error"' in form and "10.300.0.0/24" in form  # what was typed stays, with the API's message
    assert name + "-bad" not in cloud.openstack("network", "list", user="demo").stdout
    r = demo.post("/dashboard/project/networks", {"name": name, "cidr": "192.168.213.0/24"})
    assert r.status_code == 303, text(r)
    try:
        page = text(demo.get("/dashboard/project/networks"))
        assert f"{name}-subnet 192.168.213.0/24" in page and "router1" in page and "default" in page
        assert "instances" in text(demo.get("/dashboard/project/instances")).split("Room left")[1][:200]
        subnet = cloud.os_json("subnet", "show", f"{name}-subnet", user="demo")["id"]
        public = cloud.os_json("network", "show", "public")["id"]
        r = demo.post("/dashboard/project/routers", {"name": name, "external_network_id": public, "subnet_id": subnet})
        assert r.status_code == 303, text(r)
        routers = demo.get("/dashboard/project/networks").text
        row = routers[routers.index(f">{name}</td>", routers.index('id="routers"')):]
        assert "public" in row[:row.index("</tr>")]
        topo = demo.get("/dashboard/project/topology").text
        group = topo[topo.index(f'class="device router" data-name="{name}"'):]
        assert group[:group.index("</g>")].count("<line") == 2  # on public and on its subnet's network
        assert f'class="net" data-name="{name}"' in topo and 'data-name="public"' in topo
        r = demo.post("/dashboard/project/security_group_rules", {"security_group_id": "no-such-group",
                                                                  "protocol": "tcp", "port": "22"})
        assert r.status_code in (400, 404) and 'class="error"' in r.text[r.text.index('id="add-rule"'):]
        r = demo.post("/dashboard/project/security_group_rules", {"security_group_id": "x", "port": "ssh"})
        assert r.status_code == 400 and "Port: a number" in text(r)
    finally:
        if cloud.openstack("router", "show", name, user="demo", check=False).returncode == 0:
            cloud.openstack("router", "remove", "subnet", name, f"{name}-subnet", user="demo", check=False)
            cloud.openstack("router", "delete", name, user="demo", check=False)
        cloud.openstack("network", "delete", name, user="demo", check=False)


def test_containers_folders_upload_download_public(cloud, demo):
    name = f"dc-{uuid.uuid4().hex[:6]}"
    assert demo.post("/dashboard/project/containers", {"name": name}).status_code == 303
    base = f"/dashboard/project/containers/{name}"
    try:
        assert demo.post(base, {"action": "folder", "folder": "docs"}).status_code == 303
        data = bytes(range(256)) * 1000
        r = demo.http.post(f"{base}/upload", params={"object": "docs/a <b>.bin"}, content=data,
                           headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 403  # no CSRF token: refused, nothing stored
        r = demo.http.post(f"{base}/upload", params={"object": "docs/a <b>.bin"}, content=data,
                           headers={"Content-Type": "application/octet-stream", "X-CSRF-Token": demo.csrf})
        assert r.status_code == 201, text(r)
        top = demo.get(base).text
        assert "docs/" in top and "a &lt;b&gt;.bin" not in top  # the folder, not its objects
        inside = demo.get(base, params={"prefix": "docs/"}).text
        assert "a &lt;b&gt;.bin" in inside and "<b>.bin" not in inside
        got = demo.get(f"{base}/objects/docs/a%20%3Cb%3E.bin")
        assert got.status_code == 200 and got.content == data and "attachment" in got.headers["content-disposition"]
        assert "Private" in text(demo.get(base))
        assert demo.post(base, {"action": "public"}).status_code == 303
        assert "Public:" in text(demo.get(base))
        assert cloud.openstack("object", "list", name, user="demo").stdout.count("docs/") == 2
        r = demo.post(base, {"action": "delete-container"})
        assert r.status_code == 409 and 'class="error"' in r.text  # not empty: the store says so
    finally:
        for obj in ("docs/a <b>.bin", "docs/"):
            demo.post(base, {"action": "delete", "object": obj})
        assert demo.post(base, {"action": "delete-container"}).status_code == 303
    assert name not in demo.get("/dashboard/project/containers").text


def test_admin_flavors_and_a_member_refused(cloud, demo):
    name = f"df-{uuid.uuid4().hex[:6]}"
    assert demo.get("/dashboard/admin/flavors").status_code == 403
    assert demo.post("/dashboard/admin/flavors", {"name": name, "vcpus": "1", "ram": "64"}).status_code == 403
    with Dash(cloud) as admin:
        assert admin.login("admin", cloud.password("admin")).status_code == 303
        form = {"name": name, "id": name, "vcpus": "1", "ram": "64", "disk": "0", "action": "create"}
        assert admin.post("/dashboard/admin/flavors", form).status_code == 303
        assert name in admin.get("/dashboard/admin/flavors").text
        r = admin.post("/dashboard/admin/flavors", form)
        assert r.status_code == 409 and 'class="error"' in r.text[r.text.index('id="create-flavor"'):]
        assert admin.post("/dashboard/admin/flavors", {"action": "delete", "id": name}).status_code == 303
    assert cloud.openstack("flavor", "show", name, check=False).returncode != 0


def test_image_created_by_upload_and_deleted(cloud, demo, tmp_path):
    name = f"di-{uuid.uuid4().hex[:6]}"
    path = tmp_path / "up.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "8M"], check=True)
    r = demo.http.post("/dashboard/project/images/upload", params={"name": name, "disk_format": "qcow2"},
                       content=path.read_bytes(), headers={"X-CSRF-Token": demo.csrf,
                                                           "Content-Type": "application/octet-stream"})
    assert r.status_code == 201, text(r)
    image = cloud.os_json("image", "show", name, user="demo")
    assert image["status"] == "active" and image["size"] == path.stat().st_size
    r = demo.http.post("/dashboard/project/images/upload", params={"name": name + "-pub", "visibility": "public"},
                       content=b"x", headers={"X-CSRF-Token": demo.csrf})
    assert r.status_code == 403 and 'class="error"' in r.text  # a member may not publish: the API's answer
    assert name + "-pub" not in cloud.openstack("image", "list", user="demo").stdout
    assert demo.post(f"/dashboard/project/images/{image['id']}", {"action": "delete"}).status_code == 303
    assert cloud.openstack("image", "show", image["id"], user="demo", check=False).returncode != 0


def test_volume_extended_and_snapshotted(cloud, demo):
    name = f"dx-{uuid.uuid4().hex[:6]}"
    assert demo.post("/dashboard/project/volumes", {"name": name, "size": "1"}).status_code == 303
    vid = wait_for(lambda: next((v["ID"] for v in cloud.os_json("volume", "list", user="demo")
                                 if v["Name"] == name and v["Status"] == "available"), None), 60, "available")
    try:
        r = demo.post(f"/dashboard/project/volumes/{vid}", {"action": "extend", "new_size": "1"})
        assert r.status_code == 400 and 'class="error"' in r.text  # not larger: the API's message
        assert demo.post(f"/dashboard/project/volumes/{vid}", {"action": "extend", "new_size": "2"}).status_code == 303
        wait_for(lambda: cloud.os_json("volume", "show", vid, user="demo")["size"] == 2, 60, "extended")
        r = demo.post(f"/dashboard/project/volumes/{vid}", {"action": "snapshot", "snapshot_name": name + "-s"})
        assert r.status_code == 303, text(r)
        page = demo.get("/dashboard/project/volumes").text
        assert f">{name}-s</td><td>{name}</td>" in page
    finally:
        snap = wait_for(lambda: next((x for x in cloud.os_json("volume", "snapshot", "list", user="demo")
                                      if x["Name"] == name + "-s" and x["Status"] != "creating"), None) or
                        not any(x["Name"] == name + "-s" for x in cloud.os_json("volume", "snapshot", "list",
                                                                              user="demo")), 60, "snapshot made")
        if isinstance(snap, dict):
            cloud.openstack("volume", "snapshot", "delete", snap["ID"], user="demo", check=False)
            wait_for(lambda: not any(x["Name"] == name + "-s" for x in cloud.os_json(
                "volume", "snapshot", "list", user="demo")), 60, "snapshot deleted")
        cloud.openstack("volume", "delete", vid, user="demo", check=False)


def test_launch_from_image_on_a_new_volume_with_metadata_and_group(cloud, demo, image):
    name = f"dbv-{uuid.uuid4().hex[:6]}"
    group = cloud.os_json("server", "group", "create", "--policy", "soft-anti-affinity", name, user="demo")
    form = {"name": name, "source": "image-volume", "image": image["id"], "volume_size": "1",
            "delete_on_termination": "1", "flavor": "42", "count": "1", "server_group": group["id"]}
    r = demo.post("/dashboard/project/instances", {**form, "metadata": "no equals sign"})
    assert r.status_code == 400 and "is not key=value" in r.text[r.text.index('id="launch"'):]
    r = demo.post("/dashboard/project/instances", {**form, "metadata": "role=web\nowner = me"})
    assert r.status_code == 303, text(r)
    sid = next(s["ID"] for s in cloud.os_json("server", "list", user="demo") if s["Name"] == name)
    try:
        shown = wait_for(lambda: (x := cloud.os_json("server", "show", sid, user="demo"))["status"] == "ACTIVE"
                         and x, 60, "ACTIVE")
        assert "role='web'" in str(shown["properties"]) or shown["properties"] == {"role": "web", "owner": "me"}
        assert shown["volumes_attached"]  # booted from its new volume
        assert sid in cloud.os_json("server", "group", "show", group["id"], user="demo")["members"]
    finally:
        cloud.openstack("server", "delete", "--wait", sid, user="demo", check=False)
        cloud.openstack("server", "group", "delete", group["id"], user="demo", check=False)


def test_admin_default_quotas(cloud, demo):
    assert demo.get("/dashboard/admin/quotas").status_code == 403
    with Dash(cloud) as admin:
        assert admin.login("admin", cloud.password("admin")).status_code == 303
        page = admin.get("/dashboard/admin/quotas").text
        before = re.search(r'name="key_pairs" type="number" min="-1" value="(-?\d+)"', page).group(1)
        r = admin.post("/dashboard/admin/quotas", {"key_pairs": "abc"})
        assert r.status_code == 400 and "Key pairs: a whole number" in text(r)
        try:
            assert admin.post("/dashboard/admin/quotas", {"key_pairs": "77"}).status_code == 303
            assert 'name="key_pairs" type="number" min="-1" value="77"' in admin.get("/dashboard/admin/quotas").text
        finally:
            admin.post("/dashboard/admin/quotas", {"key_pairs": before})
