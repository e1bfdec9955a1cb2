"""OS::Keystone::* types: Project, User, Role, Group, and role assignments (the ``roles``
property of User and Group, and UserRoleAssignment / GroupRoleAssignment), on the
identity API. Most need an admin's token, as in Heat."""

from __future__ import annotations

from typing import Any

from onestack.common import errors
from onestack.orchestration.resources import constraints as c
from onestack.orchestration.resources.base import (
    BOOLEAN,
    LIST,
    MAP,
    STRING,
    Attribute,
    Constraint,
    Property,
    Resource,
    register,
)

SHOW = Attribute("Detailed information about resource.", MAP)


def _custom(name: str) -> list[Constraint]:
    return [Constraint("custom_constraint", name)]


ROLES = Property(LIST, update_allowed=True, schema=Property(MAP, schema={
    "role": Property(STRING, required=True, constraints=_custom("keystone.role"),
                     description="Keystone role."),
    "project": Property(STRING, constraints=_custom("keystone.project"), description="Keystone project."),
    "domain": Property(STRING, constraints=_custom("keystone.domain"), description="Keystone domain."),
}), description="List of role assignments.")


class KeystoneResource(Resource):
    """One identity object at ``/v3/{COLLECTION}/{id}``."""

    REQUIRES_SERVICE = "identity"
    COLLECTION = ""

    @property
    def keystone(self) -> Any:
        return self.client("identity")

    def show(self) -> dict[str, Any]:
        return self.keystone.get(f"/v3/{self.COLLECTION}/{self.resource_id}")[self.COLLECTION[:-1]]

    def body(self, props: dict[str, Any], create: bool) -> dict[str, Any]:
        raise NotImplementedError

    def handle_create(self) -> None:
        obj = self.keystone.post(f"/v3/{self.COLLECTION}", {self.COLLECTION[:-1]: self.body(self.properties, True)})
        self.resource_id = obj[self.COLLECTION[:-1]]["id"]

    def handle_update(self, new_properties: dict[str, Any], changed: set[str]) -> None:
        body = self.body(new_properties, False)
        body = {k: v for k, v in body.items() if k in changed or f"{k.removesuffix('_id')}" in changed}
        if body:
            self.keystone.request("PATCH", f"/v3/{self.COLLECTION}/{self.resource_id}",
                                  json={self.COLLECTION[:-1]: body})

    def handle_delete(self) -> None:
        if self.resource_id:
            self.keystone.delete(f"/v3/{self.COLLECTION}/{self.resource_id}")

    def handle_check(self) -> None:
        self.show()

    def attribute(self, name: str) -> Any:
        if name not in self.ATTRIBUTES:
            raise KeyError(name)
        if not self.resource_id:
            return None
        obj = self.show()
        return obj if name == "show" else obj.get(name)


class RoleAssignments:
    """The ``roles`` property: [{role, project | domain}] granted to ``_actor()``."""

    def _actor(self) -> str:  # "users/<id>" or "groups/<id>"
        raise NotImplementedError

    def _grants(self, roles: list[dict] | None) -> set[str]:
        out = set()
        for r in roles or []:
            if bool(r.get("project")) == bool(r.get("domain")):
                raise errors.BadRequest("Either project or domain must be specified for role "
                                        f"{r.get('role')}.")
            target = (f"projects/{c.resolve(c.find_project, self.ctx, r['project'])}" if r.get("project")
                      else f"domains/{c.resolve(c.find_domain, self.ctx, r['domain'])}")
            out.add(f"/v3/{target}/{self._actor()}/roles/{c.resolve(c.find_role, self.ctx, r['role'])}")
        return out

    def grant(self, roles: list[dict] | None) -> None:
        for path in sorted(self._grants(roles)):
            self.client("identity").put(path)

    def revoke(self, roles: list[dict] | None) -> None:
        for path in sorted(self._grants(roles)):
            c.ignore_missing(lambda path=path: self.client("identity").delete(path))

    def update_roles(self, old: list[dict] | None, new: list[dict] | None) -> None:
        old_grants, new_grants = self._grants(old), self._grants(new)
        for path in sorted(old_grants - new_grants):
            c.ignore_missing(lambda path=path: self.client("identity").delete(path))
        for path in sorted(new_grants - old_grants):
            self.client("identity").put(path)


@register("OS::Keystone::Project")
class Project(KeystoneResource):
    """A project."""

    COLLECTION = "projects"
    PROPERTIES = {
        "name": Property(STRING, update_allowed=True, description="Name of keystone project."),
        "domain": Property(STRING, default="default", update_allowed=True, constraints=_custom("keystone.domain"),
                           description="Name or id of keystone domain."),
        "description": Property(STRING, default="", update_allowed=True,
                                description="Description of keystone project."),
        "enabled": Property(BOOLEAN, default=True, update_allowed=True,
                            description="This project is enabled or disabled."),
        "parent": Property(STRING, constraints=_custom("keystone.project"),
                           description="The name or ID of parent of this keystone project in hierarchy."),
        "tags": Property(LIST, default=[], update_allowed=True, description="A list of tags for labeling and "
                                                                            "sorting projects."),
    }
    ATTRIBUTES = {
        "name": Attribute("Project name.", STRING),
        "parent_id": Attribute("Parent project id.", STRING),
        "domain_id": Attribute("Domain id for project.", STRING),
        "enabled": Attribute("Flag of enable project.", BOOLEAN),
        "is_domain": Attribute("Indicates whether the project also acts as a domain.", BOOLEAN),
        "show": SHOW,
    }

    def body(self, props: dict[str, Any], create: bool) -> dict[str, Any]:
        out = {"name": props.get("name") or c.physical_name(self, 64),
               "domain_id": c.resolve(c.find_domain, self.ctx, props.get("domain") or "default"),
               "description": props.get("description") or "", "enabled": props.get("enabled", True),
               "tags": props.get("tags") or []}
        if create and props.get("parent"):
            out["parent_id"] = c.resolve(c.find_project, self.ctx, props["parent"])
        return out


@register("OS::Keystone::User")
class User(RoleAssignments, KeystoneResource):
    """A user, its groups and its role assignments."""

    COLLECTION = "users"
    PROPERTIES = {
        "name": Property(STRING, update_allowed=True, description="Name of keystone user."),
        "domain": Property(STRING, default="default", update_allowed=True, constraints=_custom("keystone.domain"),
                           description="Name or ID of keystone domain."),
        "description": Property(STRING, default="", update_allowed=True,
                                description="Description of keystone user."),
        "enabled": Property(BOOLEAN, default=True, update_allowed=True,
                            description="Keystone user is enabled or disabled."),
        "email": Property(STRING, update_allowed=True, description="Email address of keystone user."),
        "password": Property(STRING, update_allowed=True, description="Password of keystone user."),
        "default_project": Property(STRING, update_allowed=True, constraints=_custom("keystone.project"),
                                    description="Name or ID of default project of keystone user."),
        "groups": Property(LIST, update_allowed=True, schema=Property(STRING, constraints=_custom("keystone.group")),
                           description="Keystone user groups."),
        "roles": ROLES,
    }
    ATTRIBUTES = {
        "name": Attribute("User name.", STRING),
        "default_project_id": Attribute("Default project id for user.", STRING),
        "domain_id": Attribute("Domain id for user.", STRING),
        "enabled": Attribute("Flag of enable user.", BOOLEAN),
        "password_expires_at": Attribute("Show user password expiration time.", STRING),
        "show": SHOW,
    }

    def _actor(self) -> str:
        return f"users/{self.resource_id}"

    def body(self, props: dict[str, Any], create: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"name": props.get("name") or c.physical_name(self, 64),
                               "domain_id": c.resolve(c.find_domain, self.ctx, props.get("domain") or "default"),
                               "description": props.get("description") or "", "enabled": props.get("enabled", True)}
        for key in ("email", "password"):
            if props.get(key) is not None or not create:
                out[key] = props.get(key)
        out["default_project_id"] = c.resolve(c.find_project, self.ctx, props.get("default_project"))
        if create and out["default_project_id"] is None:
            del out["default_project_id"]
        return out

    def _groups(self, groups: list[str] | None) -> set[str]:
        return {c.resolve(c.find_group, self.ctx, g) for g in groups or []}

    def handle_create(self) -> None:
        super().handle_create()
        for group in sorted(self._groups(self.properties.get("groups"))):
            self.keystone.put(f"/v3/groups/{group}/users/{self.resource_id}")
        self.grant(self.properties.get("roles"))

    def handle_update(self, new_properties: dict[str, Any], changed: set[str]) -> None:
        super().handle_update(new_properties, changed - {"groups", "roles"})
        if "groups" in changed:
            old, new = self._groups(self.properties.get("groups")), self._groups(new_properties.get("groups"))
            for group in sorted(old - new):
                c.ignore_missing(lambda g=group: self.keystone.delete(f"/v3/groups/{g}/users/{self.resource_id}"))
            for group in sorted(new - old):
                self.keystone.put(f"/v3/groups/{group}/users/{self.resource_id}")
        if "roles" in changed:
            self.update_roles(self.properties.get("roles"), new_properties.get("roles"))

    def handle_delete(self) -> None:
        if self.resource_id:  # (deleting the user drops its memberships and grants)
            self.keystone.delete(f"/v3/users/{self.resource_id}")


@register("OS::Keystone::Group")
class Group(RoleAssignments, KeystoneResource):
    """A group and its role assignments."""

    COLLECTION = "groups"
    PROPERTIES = {
        "name": Property(STRING, update_allowed=True, description="Name of keystone group."),
        "domain": Property(STRING, default="default", update_allowed=True, constraints=_custom("keystone.domain"),
                           description="Name or id of keystone domain."),
        "description": Property(STRING, default="", update_allowed=True,
                                description="Description of keystone group."),
        "roles": ROLES,
    }
    ATTRIBUTES = {"show": SHOW}

    def _actor(self) -> str:
        return f"groups/{self.resource_id}"

    def body(self, props: dict[str, Any], create: bool) -> dict[str, Any]:
        return {"name": props.get("name") or c.physical_name(self, 64),
                "domain_id": c.resolve(c.find_domain, self.ctx, props.get("domain") or "default"),
                "description": props.get("description") or ""}

    def handle_create(self) -> None:
        super().handle_create()
        self.grant(self.properties.get("roles"))

    def handle_update(self, new_properties: dict[str, Any], changed: set[str]) -> None:
        super().handle_update(new_properties, changed - {"roles"})
        if "roles" in changed:
            self.update_roles(self.properties.get("roles"), new_properties.get("roles"))


@register("OS::Keystone::Role")
class Role(KeystoneResource):
    """A role."""

    COLLECTION = "roles"
    PROPERTIES = {
        "name": Property(STRING, update_allowed=True, description="Name of keystone role."),
        "domain": Property(STRING, constraints=_custom("keystone.domain"),
                           description="Name or id of keystone domain."),
    }
    ATTRIBUTES = {"show": SHOW}

    def body(self, props: dict[str, Any], create: bool) -> dict[str, Any]:
        out = {"name": props.get("name") or c.physical_name(self, 64)}
        if create and props.get("domain"):
            out["domain_id"] = c.resolve(c.find_domain, self.ctx, props["domain"])
        return out


class _Assignment(RoleAssignments, Resource):
    """Roles of an existing user or group (the resource id is the user's or group's)."""

    REQUIRES_SERVICE = "identity"
    WHO = ""  # "user" | "group"

    def _actor(self) -> str:
        return f"{self.WHO}s/{self.resource_id}"

    def handle_create(self) -> None:
        finder = c.find_user if self.WHO == "user" else c.find_group
        self.resource_id = c.resolve(finder, self.ctx, self.properties[self.WHO])
        self.grant(self.properties.get("roles"))

    def handle_update(self, new_properties: dict[str, Any], changed: set[str]) -> None:
        self.update_roles(self.properties.get("roles"), new_properties.get("roles"))

    def handle_delete(self) -> None:
        if self.resource_id:
            self.revoke(self.properties.get("roles"))


@register("OS::Keystone::UserRoleAssignment")
class UserRoleAssignment(_Assignment):
    WHO = "user"
    PROPERTIES = {"user": Property(STRING, required=True, constraints=_custom("keystone.user"),
                                   description="Name or id of keystone user."),
                  "roles": ROLES}


@register("OS::Keystone::GroupRoleAssignment")
class GroupRoleAssignment(_Assignment):
    WHO = "group"
    PROPERTIES = {"group": Property(STRING, required=True, constraints=_custom("keystone.group"),
                                    description="Name or id of keystone group."),
                  "roles": ROLES}
