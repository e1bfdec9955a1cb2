"""openstacksdk through the clouds.yaml that `onestack clouds-yaml` writes."""

import uuid

import openstack
import pytest


@pytest.fixture
def conn(cloud, tmp_path, monkeypatch):
    path = tmp_path / "clouds.yaml"
    path.write_text(cloud.onestack("clouds-yaml").stdout)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(path))
    c = openstack.connect(cloud="onestack-admin")
    yield c
    c.close()


def test_sdk_identity(conn):
    assert conn.identity.get_endpoint  # the identity proxy exists
    projects = {p.name for p in conn.identity.projects()}
    assert {"admin", "demo", "service"} <= projects
    name = f"sdk-{uuid.uuid4().hex[:6]}"
    project = conn.identity.create_project(name=name, description="from the sdk", tags=["ci"])
    assert conn.identity.get_project(project.id).tags == ["ci"]
    user = conn.identity.create_user(name=name, password="pw-" + name, default_project_id=project.id)
    member = conn.identity.find_role("member")
    conn.identity.assign_project_role_to_user(project, user, member)
    assert conn.identity.validate_user_has_project_role(project, user, member)
    user_conn = openstack.connect(
        auth_url=conn.auth["auth_url"], username=name, password="pw-" + name,
        project_name=name, user_domain_name="Default", project_domain_name="Default",
    )
    assert user_conn.current_project_id == project.id
    user_conn.close()
    conn.identity.delete_user(user)
    conn.identity.delete_project(project)
    assert conn.identity.find_project(name) is None


def test_sdk_demo_cloud(cloud, tmp_path, monkeypatch):
    path = tmp_path / "clouds.yaml"
    path.write_text(cloud.onestack("clouds-yaml").stdout)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(path))
    demo = openstack.connect(cloud="onestack")
    assert [p.name for p in demo.identity.user_projects(demo.current_user_id)] == ["demo"]
    demo.close()
