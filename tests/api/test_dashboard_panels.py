"""The dashboard's second slice over HTTP (as tests/api/test_dashboard.py): the Identity
panels (projects with members and quotas, users, groups, roles, application credentials),
Orchestration (stacks), volume backups and transfers, and the region switcher. Each
panel's forms are posted as a browser posts them and checked with the real CLI."""

from __future__ import annotations

import html
import re
import uuid

import pytest

from tests.cloud import wait_for
from tests.dashboard import Dash, text


@pytest.fixture
def demo(cloud):
    with Dash(cloud) as d:
        assert d.login("demo", cloud.password("demo")).status_code == 303
        yield d


@pytest.fixture
def admin(cloud):
    with Dash(cloud) as d:
        assert d.login("admin", cloud.password("admin")).status_code == 303
        yield d


def _in_form(r, form_id: str) -> str:
    """The text of the form ``form_id`` of the page (where its error is shown)."""
    start = r.text.index(f'id="{form_id}"')
    return html.unescape(re.sub(r"<[^>]+>", " ", r.text[start:r.text.index("</form>", start)]))


def test_member_reaches_no_admin_identity_panel(cloud, demo):
    demo_id = cloud.os_json("project", "show", "demo")["id"]
    for path in (f"/dashboard/identity/projects/{demo_id}", "/dashboard/identity/groups", "/dashboard/identity/roles",
                 f"/dashboard/identity/users/{uuid.uuid4().hex}"):
        r = demo.get(path)
        assert r.status_code == 403 and "administrators" in text(r), path
    assert demo.post("/dashboard/identity/roles", {"action": "create", "name": "nope"}).status_code == 403
    assert cloud.openstack("role", "show", "nope", check=False).returncode != 0
    page = demo.get("/dashboard/project/").text
    assert "/identity/application_credentials" in page and "/identity/roles" not in page


def test_project_edited_disabled_members_and_quotas(cloud, admin):
    name = f"dpe-{uuid.uuid4().hex[:6]}"
    try:
        assert admin.post("/dashboard/identity/project", {"name": name}).status_code == 303
        pid = cloud.os_json("project", "show", name)["id"]
        url = f"/dashboard/identity/projects/{pid}"
        assert f"Project {name}" in text(admin.get(url))
        # edit: a name taken is refused in the edit form; a new description is kept
        r = admin.post(url, {"action": "edit", "name": "demo", "description": ""})
        assert r.status_code == 409 and "demo" in _in_form(r, "edit-project")
        assert admin.post(url, {"action": "edit", "name": name, "description": "edited"}).status_code == 303
        assert cloud.os_json("project", "show", pid)["description"] == "edited"
        # disable, enable
        assert admin.post("/dashboard/identity/disable-project", {"id": pid}).status_code == 303
        assert cloud.os_json("project", "show", pid)["enabled"] is False
        assert admin.post("/dashboard/identity/enable-project", {"id": pid}).status_code == 303
        assert cloud.os_json("project", "show", pid)["enabled"] is True
        own = re.search(r'<option value="([^"]+)" selected>', admin.get("/dashboard/project/").text).group(1)
        r = admin.post("/dashboard/identity/disable-project", {"id": own})
        assert r.status_code == 400 and "working in" in text(r)
        # members: a user with a role, then another role added and removed
        roles = {x["Name"]: x["ID"] for x in cloud.os_json("role", "list")}
        r = admin.post("/dashboard/identity/user", {"name": name, "password": "pw-" + name, "project_id": pid,
                                                    "role_id": roles["member"]})
        assert r.status_code == 303, text(r)
        uid = cloud.os_json("user", "show", name)["id"]
        members = admin.get(url).text
        members = members[members.index('id="members"'):]
        assert name in members and "member" in members
        assert admin.post(url, {"action": "add-member", "user_id": uid, "role_id": roles["reader"]}).status_code == 303
        listed = cloud.os_json("role", "assignment", "list", "--project", pid, "--user", uid, "--names")
        assert {x["Role"] for x in listed} == {"member", "reader"}
        r = admin.post(url, {"action": "add-member", "user_id": uid, "role_id": uuid.uuid4().hex})
        assert r.status_code == 404 and 'class="error"' in r.text[r.text.index('id="add-member"'):]
        r = admin.post(url, {"action": "remove-member", "kind": "user", "id": uid, "role_id": roles["reader"]})
        assert r.status_code == 303, text(r)
        listed = cloud.os_json("role", "assignment", "list", "--project", pid, "--user", uid, "--names")
        assert {x["Role"] for x in listed} == {"member"}
        # quotas, through compute's quota API
        r = admin.post(url, {"action": "quota", "instances": "many"})
        assert r.status_code == 400 and "whole number" in _in_form(r, "project-quota")
        assert admin.post(url, {"action": "quota", "instances": "3", "cores": "6", "ram": "4096"}).status_code == 303
        quota = cloud.os_json("quota", "show", pid)
        if isinstance(quota, list):  # (newer clients: rows of Resource and Limit)
            quota = {row["Resource"]: row["Limit"] for row in quota}
        assert (quota["instances"], quota["cores"], quota["ram"]) == (3, 6, 4096)
        assert 'name="instances" type="number" min="-1" value="3"' in admin.get(url).text
        # the user, edited: email, password, primary project
        user_url = f"/dashboard/identity/users/{uid}"
        assert "member" in text(admin.get(user_url))
        r = admin.post(user_url, {"name": "admin", "email": "", "project_id": pid})
        assert r.status_code == 409 and 'class="error"' in r.text[r.text.index('id="edit-user"'):]
        r = admin.post(user_url, {"name": name, "email": f"{name}@example.com", "project_id": pid,
                                  "password": "new-" + name})
        assert r.status_code == 303, text(r)
        shown = cloud.os_json("user", "show", uid)
        assert shown["email"] == f"{name}@example.com" and shown["default_project_id"] == pid
        with Dash(cloud) as user:
            assert user.login(name, "pw-" + name).status_code == 401
            assert user.login(name, "new-" + name).status_code == 303
            assert f"Overview of project {name}" in text(user.get("/dashboard/project/"))
    finally:
        cloud.openstack("user", "delete", name, check=False)
        cloud.openstack("project", "delete", name, check=False)


def test_groups_and_roles(cloud, admin, demo):
    name = f"dg-{uuid.uuid4().hex[:6]}"
    try:
        assert admin.post("/dashboard/identity/groups", {"action": "create", "name": name}).status_code == 303
        r = admin.post("/dashboard/identity/groups", {"action": "create", "name": name})
        assert r.status_code == 409 and 'class="error"' in r.text[r.text.index('id="create-group"'):]
        gid = cloud.os_json("group", "show", name)["id"]
        demo_id = cloud.os_json("user", "show", "demo")["id"]
        url = f"/dashboard/identity/groups/{gid}"
        assert admin.post(url, {"action": "add", "user_id": demo_id}).status_code == 303
        assert "demo" in {u["Name"] for u in cloud.os_json("user", "list", "--group", gid)}
        page = admin.get(url).text
        assert "demo" in page[page.index('id="group-members"'):page.index("</table>", page.index('id="group-members"'))]
        r = admin.post(url, {"action": "add", "user_id": uuid.uuid4().hex})
        assert r.status_code == 404 and 'class="error"' in r.text
        assert admin.post(url, {"action": "remove", "user_id": demo_id}).status_code == 303
        assert cloud.os_json("user", "list", "--group", gid) == []
        assert admin.post("/dashboard/identity/groups", {"action": "delete", "id": gid}).status_code == 303
        assert cloud.openstack("group", "show", gid, check=False).returncode != 0
        # roles: listed, created (a duplicate refused in its form), deleted
        assert "member" in text(admin.get("/dashboard/identity/roles"))
        assert admin.post("/dashboard/identity/roles", {"action": "create", "name": name}).status_code == 303
        r = admin.post("/dashboard/identity/roles", {"action": "create", "name": name})
        assert r.status_code == 409 and 'class="error"' in r.text[r.text.index('id="create-role"'):]
        rid = cloud.os_json("role", "show", name)["id"]
        assert name in admin.get("/dashboard/identity/roles").text
        assert admin.post("/dashboard/identity/roles", {"action": "delete", "id": rid}).status_code == 303
        assert cloud.openstack("role", "show", name, check=False).returncode != 0
    finally:
        cloud.openstack("group", "delete", name, check=False)
        cloud.openstack("role", "delete", name, check=False)


def test_application_credential_secret_shown_once_and_usable(cloud, demo):
    name = f"dac-{uuid.uuid4().hex[:6]}"
    r = demo.post("/dashboard/identity/application_credentials", {"action": "create", "name": name,
                                                                   "expires_at": "yesterday"})
    assert r.status_code == 400 and 'class="error"' in r.text[r.text.index('id="create-credential"'):]
    r = demo.post("/dashboard/identity/application_credentials", {"action": "create", "name": name,
                                                                   "description": "from the dashboard"})
    assert r.status_code == 201, text(r)
    cred_id = re.search(r"<th>ID</th><td><code>([^<]+)</code>", r.text).group(1)
    secret = re.search(r'<code id="secret">([^<]+)</code>', r.text).group(1)
    listing = demo.get("/dashboard/identity/application_credentials")
    assert name in listing.text and secret not in listing.text  # shown once only
    env = cloud.openrc("demo")
    app_env = {"OS_AUTH_URL": env["OS_AUTH_URL"], "OS_AUTH_TYPE": "v3applicationcredential",
               "OS_APPLICATION_CREDENTIAL_ID": cred_id, "OS_APPLICATION_CREDENTIAL_SECRET": secret,
               "OS_IDENTITY_API_VERSION": "3", "OS_REGION_NAME": env.get("OS_REGION_NAME", "RegionOne")}
    try:
        assert cloud.os_json("token", "issue", env=app_env)["project_id"] == cloud.os_json(
            "project", "show", "demo")["id"]
        r = demo.post("/dashboard/identity/application_credentials", {"action": "delete", "id": cred_id})
        assert r.status_code == 303
        assert cloud.openstack("token", "issue", env=app_env, check=False).returncode != 0
    finally:
        cloud.openstack("application", "credential", "delete", name, env=env, check=False)


TEMPLATE = """heat_template_version: 2018-08-31
description: the dashboard's test stack
parameters:
  length:
    type: number
    default: 8
resources:
  word:
    type: OS::Heat::RandomString
    properties:
      length: {get_param: length}
outputs:
  word:
    description: the random word
    value: {get_attr: [word, value]}
"""


def test_stack_launched_shown_and_deleted(cloud, demo):
    name = f"ds-{uuid.uuid4().hex[:6]}"
    r = demo.post("/dashboard/project/stacks", {"name": name, "template": "heat_template_version: nonsense\n"})
    assert r.status_code == 400 and 'class="error"' in r.text[r.text.index('id="launch-stack"'):]
    assert "heat_template_version: nonsense" in r.text  # what was typed is kept
    r = demo.post("/dashboard/project/stacks", {"name": name, "template": TEMPLATE, "parameters": "length"})
    assert r.status_code == 400 and "is not key=value" in _in_form(r, "launch-stack")
    assert name not in demo.get("/dashboard/project/stacks").text  # nothing half-made
    r = demo.post("/dashboard/project/stacks", {"name": name, "template": TEMPLATE, "parameters": "length=12"})
    assert r.status_code == 303, text(r)
    detail_url = r.headers["location"]
    try:
        wait_for(lambda: "CREATE_COMPLETE" in demo.get("/dashboard/project/stacks").text, 60, "stack complete")
        page = demo.get(detail_url)
        assert page.status_code == 200
        outputs = page.text[page.text.index('id="outputs"'):]
        word = re.search(r"<code>([A-Za-z0-9]{12})</code>", outputs).group(1)  # the output, 12 long
        shown = cloud.os_json("stack", "output", "show", name, "word", user="demo")
        assert word in str(shown)
        body = text(page)
        assert "OS::Heat::RandomString" in body and "CREATE_COMPLETE" in body  # resources, events
        assert "length" in body and "12" in body  # the parameters
        assert "heat_template_version" in body  # the template tab
        stack_id = cloud.os_json("stack", "show", name, user="demo")["id"]
        assert stack_id in detail_url
        r = demo.post(detail_url, {"action": "delete"})
        assert r.status_code == 303
        wait_for(lambda: cloud.openstack("stack", "show", stack_id, user="demo", check=False).returncode != 0
                 or cloud.os_json("stack", "show", stack_id, user="demo")["stack_status"] == "DELETE_COMPLETE",
                 60, "stack deleted")
    finally:
        cloud.openstack("stack", "delete", "-y", name, user="demo", check=False)


def _available_volume(cloud, demo, name: str, user: str = "demo") -> str:
    return wait_for(lambda: next((v["ID"] for v in cloud.os_json("volume", "list", user=user)
                                  if v["Name"] == name and v["Status"] == "available"), None), 60, "available")


def test_volume_backup_restored_and_transferred(cloud, demo):
    name = f"dbk-{uuid.uuid4().hex[:6]}"
    assert demo.post("/dashboard/project/volumes", {"name": name, "size": "1"}).status_code == 303
    vid = _available_volume(cloud, demo, name)
    restored = None
    try:
        r = demo.post(f"/dashboard/project/volumes/{vid}", {"action": "backup", "backup_name": name + "-b"})
        assert r.status_code == 303, text(r)
        backup = wait_for(lambda: next((b for b in cloud.os_json("volume", "backup", "list", user="demo")
                                        if b["Name"] == name + "-b" and b["Status"] == "available"), None),
                          120, "backup available")
        _available_volume(cloud, demo, name)
        assert name + "-b" in demo.get("/dashboard/project/volumes").text
        r = demo.post(f"/dashboard/project/volume_backups/{backup['ID']}", {"action": "restore",
                                                                           "name": name + "-r"})
        assert r.status_code == 303, text(r)
        restored = _available_volume(cloud, demo, name + "-r")
        r = demo.post(f"/dashboard/project/volume_backups/{backup['ID']}", {"action": "explode"})
        assert r.status_code == 400 and 'class="error"' in r.text
        assert demo.post(f"/dashboard/project/volume_backups/{backup['ID']}", {"action": "delete"}).status_code == 303
        wait_for(lambda: not any(b["ID"] == backup["ID"] for b in cloud.os_json("volume", "backup", "list",
                                                                                 user="demo")), 60, "backup gone")
        # a transfer: its key shown once; the other project accepts it in its own dashboard
        r = demo.post(f"/dashboard/project/volumes/{vid}", {"action": "transfer"})
        assert r.status_code == 202, text(r)
        tid = re.search(r'<code id="transfer-id">([^<]+)</code>', r.text).group(1)
        key = re.search(r'<code id="auth-key">([^<]+)</code>', r.text).group(1)
        assert key not in demo.get("/dashboard/project/volumes").text
        with cloud.new_member("dxf") as env, Dash(cloud) as other:
            assert other.login(env["OS_USERNAME"], env["OS_PASSWORD"]).status_code == 303
            r = other.post("/dashboard/project/volume_transfers", {"action": "accept", "id": tid, "auth_key": "x"})
            assert r.status_code >= 400 and 'class="error"' in r.text[r.text.index('id="accept-transfer"'):]
            r = other.post("/dashboard/project/volume_transfers", {"action": "accept", "id": tid, "auth_key": key})
            assert r.status_code == 303, text(r)
            assert name in other.get("/dashboard/project/volumes").text
            assert vid in {v["ID"] for v in cloud.os_json("volume", "list", env=env)}
            cloud.openstack("volume", "delete", vid, env=env, check=False)
            wait_for(lambda: vid not in {v["ID"] for v in cloud.os_json("volume", "list", env=env)}, 60, "deleted")
    finally:
        for v in (vid, restored):
            if v:
                cloud.openstack("volume", "delete", v, user="demo", check=False)


def test_region_switcher_uses_the_regions_endpoints(cloud):
    """A second region whose orchestration endpoint answers nothing (a closed loopback
    port): chosen in the header, the stacks page says so and openrc names the region;
    back in the cloud's own region the page works again."""
    region = f"Dash{uuid.uuid4().hex[:4]}"
    cloud.openstack("region", "create", region)
    endpoint = None
    try:
        endpoint = cloud.os_json("endpoint", "create", "--region", region, "orchestration", "public",
                                 "http://127.0.0.1:1/orchestration/v1/%(project_id)s")["id"]
        with Dash(cloud) as d:
            assert d.login("demo", cloud.password("demo")).status_code == 303
            page = d.get("/dashboard/project/").text
            switcher = page[page.index('id="region-switcher"'):]
            home = re.search(r'<option value="([^"]+)" selected>', switcher).group(1)
            assert f'<option value="{region}"' in switcher
            assert "did not list" not in d.get("/dashboard/project/stacks").text
            assert d.post("/dashboard/region", {"region": "Nowhere"}).status_code == 400
            assert d.post("/dashboard/region", {"region": region}).status_code == 303
            assert f'<option value="{region}" selected>' in d.get("/dashboard/project/").text
            assert "did not list" in d.get("/dashboard/project/stacks").text  # that region's endpoint
            assert f"OS_REGION_NAME={region}" in d.get("/dashboard/project/api_access/openrc").text
            assert d.post("/dashboard/region", {"region": home}).status_code == 303
            assert "did not list" not in d.get("/dashboard/project/stacks").text
    finally:
        if endpoint:
            cloud.openstack("endpoint", "delete", endpoint, check=False)
        cloud.openstack("region", "delete", region, check=False)
