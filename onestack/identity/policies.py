"""Default policy of the identity service.

Follows Keystone's current defaults: ``admin`` (in any scope) is the cloud
administrator, readers in system scope may read everything, readers in a
domain may read that domain, and everyone may read what is their own.
Operators override any rule in ``<policy dir>/identity.yaml``.
"""

_ADMIN_OR_SYSREADER = "rule:admin_required or rule:system_reader"

DEFAULTS: dict[str, str] = {
    # building blocks
    "admin_required": "role:admin",
    "service_role": "role:service",
    "system_reader": "role:reader and system_scope:all",
    "service_admin_or_token_subject": (
        "rule:admin_required or rule:service_role or rule:system_reader"
        " or user_id:%(target.token.user_id)s"
    ),
    # tokens
    "identity:validate_token": "rule:service_admin_or_token_subject",
    "identity:check_token": "rule:service_admin_or_token_subject",
    "identity:revoke_token": "rule:service_admin_or_token_subject",
    "identity:get_auth_catalog": "",
    "identity:get_auth_projects": "",
    "identity:get_auth_domains": "",
    "identity:get_auth_system": "",
    # domains
    "identity:get_domain": (
        _ADMIN_OR_SYSREADER + " or token.domain.id:%(target.domain.id)s"
        " or token.project.domain.id:%(target.domain.id)s"
    ),
    "identity:list_domains": _ADMIN_OR_SYSREADER,
    "identity:create_domain": "rule:admin_required",
    "identity:update_domain": "rule:admin_required",
    "identity:delete_domain": "rule:admin_required",
    # projects
    "identity:get_project": (
        _ADMIN_OR_SYSREADER + " or (role:reader and domain_id:%(target.project.domain_id)s)"
        " or project_id:%(target.project.id)s"
    ),
    "identity:list_projects": (
        _ADMIN_OR_SYSREADER + " or (role:reader and domain_id:%(target.domain_id)s)"
    ),
    "identity:list_user_projects": (
        _ADMIN_OR_SYSREADER + " or (role:reader and domain_id:%(target.user.domain_id)s)"
        " or user_id:%(target.user.id)s"
    ),
    "identity:create_project": "rule:admin_required",
    "identity:update_project": "rule:admin_required",
    "identity:delete_project": "rule:admin_required",
    "identity:list_project_tags": "rule:identity:get_project",
    "identity:get_project_tag": "rule:identity:get_project",
    "identity:update_project_tags": "rule:admin_required",
    "identity:create_project_tag": "rule:admin_required",
    "identity:delete_project_tags": "rule:admin_required",
    "identity:delete_project_tag": "rule:admin_required",
    # users
    "identity:get_user": (
        _ADMIN_OR_SYSREADER + " or (role:reader and domain_id:%(target.user.domain_id)s)"
        " or user_id:%(target.user.id)s"
    ),
    "identity:list_users": (
        _ADMIN_OR_SYSREADER + " or (role:reader and domain_id:%(target.domain_id)s)"
    ),
    "identity:create_user": "rule:admin_required",
    "identity:update_user": "rule:admin_required",
    "identity:delete_user": "rule:admin_required",
    # groups
    "identity:get_group": (
        _ADMIN_OR_SYSREADER + " or (role:reader and domain_id:%(target.group.domain_id)s)"
    ),
    "identity:list_groups": (
        _ADMIN_OR_SYSREADER + " or (role:reader and domain_id:%(target.domain_id)s)"
    ),
    "identity:list_groups_for_user": (
        _ADMIN_OR_SYSREADER + " or (role:reader and domain_id:%(target.user.domain_id)s)"
        " or user_id:%(target.user.id)s"
    ),
    "identity:list_users_in_group": (
        _ADMIN_OR_SYSREADER + " or (role:reader and domain_id:%(target.group.domain_id)s)"
    ),
    "identity:check_user_in_group": "rule:identity:list_users_in_group",
    "identity:create_group": "rule:admin_required",
    "identity:update_group": "rule:admin_required",
    "identity:delete_group": "rule:admin_required",
    "identity:add_user_to_group": "rule:admin_required",
    "identity:remove_user_from_group": "rule:admin_required",
    # roles and implied roles
    "identity:get_role": _ADMIN_OR_SYSREADER,
    "identity:list_roles": _ADMIN_OR_SYSREADER,
    "identity:create_role": "rule:admin_required",
    "identity:update_role": "rule:admin_required",
    "identity:delete_role": "rule:admin_required",
    "identity:get_domain_role": _ADMIN_OR_SYSREADER,
    "identity:list_domain_roles": _ADMIN_OR_SYSREADER,
    "identity:get_implied_role": _ADMIN_OR_SYSREADER,
    "identity:list_implied_roles": _ADMIN_OR_SYSREADER,
    "identity:list_role_inference_rules": _ADMIN_OR_SYSREADER,
    "identity:create_implied_role": "rule:admin_required",
    "identity:delete_implied_role": "rule:admin_required",
    # role assignments (grants)
    "identity:check_grant": (
        _ADMIN_OR_SYSREADER + " or (role:reader and domain_id:%(target.domain_id)s)"
    ),
    "identity:list_grants": (
        _ADMIN_OR_SYSREADER + " or (role:reader and domain_id:%(target.domain_id)s)"
    ),
    "identity:create_grant": "rule:admin_required",
    "identity:revoke_grant": "rule:admin_required",
    "identity:list_system_grants": _ADMIN_OR_SYSREADER,
    "identity:check_system_grant": _ADMIN_OR_SYSREADER,
    "identity:create_system_grant": "rule:admin_required",
    "identity:revoke_system_grant": "rule:admin_required",
    "identity:list_role_assignments": (
        _ADMIN_OR_SYSREADER + " or (role:reader and domain_id:%(target.domain_id)s)"
    ),
    # catalog
    "identity:get_region": "",
    "identity:list_regions": "",
    "identity:create_region": "rule:admin_required",
    "identity:update_region": "rule:admin_required",
    "identity:delete_region": "rule:admin_required",
    "identity:get_service": _ADMIN_OR_SYSREADER,
    "identity:list_services": _ADMIN_OR_SYSREADER,
    "identity:create_service": "rule:admin_required",
    "identity:update_service": "rule:admin_required",
    "identity:delete_service": "rule:admin_required",
    "identity:get_endpoint": _ADMIN_OR_SYSREADER,
    "identity:list_endpoints": _ADMIN_OR_SYSREADER,
    "identity:create_endpoint": "rule:admin_required",
    "identity:update_endpoint": "rule:admin_required",
    "identity:delete_endpoint": "rule:admin_required",
    # application credentials: your own, or anyone's for admins
    "identity:get_application_credential": (
        _ADMIN_OR_SYSREADER + " or user_id:%(target.user.id)s"
    ),
    "identity:list_application_credentials": (
        _ADMIN_OR_SYSREADER + " or user_id:%(target.user.id)s"
    ),
    "identity:create_application_credential": "user_id:%(target.user.id)s",
    "identity:delete_application_credential": (
        "rule:admin_required or user_id:%(target.user.id)s"
    ),
    # credentials (EC2 and friends)
    "identity:get_credential": (
        _ADMIN_OR_SYSREADER + " or user_id:%(target.credential.user_id)s"
    ),
    "identity:list_credentials": (
        _ADMIN_OR_SYSREADER + " or user_id:%(target.credential.user_id)s"
    ),
    "identity:create_credential": (
        "rule:admin_required or user_id:%(target.credential.user_id)s"
    ),
    "identity:update_credential": (
        "rule:admin_required or user_id:%(target.credential.user_id)s"
    ),
    "identity:delete_credential": (
        "rule:admin_required or user_id:%(target.credential.user_id)s"
    ),
    # trusts (OS-TRUST): the trustor makes one; trustor and trustee see it; admins see all
    "trustor": "user_id:%(target.trust.trustor_user_id)s",
    "trustee": "user_id:%(target.trust.trustee_user_id)s",
    "identity:create_trust": "rule:trustor",
    "identity:list_trusts": _ADMIN_OR_SYSREADER,
    "identity:list_trusts_for_trustor": _ADMIN_OR_SYSREADER + " or rule:trustor",
    "identity:list_trusts_for_trustee": _ADMIN_OR_SYSREADER + " or rule:trustee",
    "identity:get_trust": _ADMIN_OR_SYSREADER + " or rule:trustor or rule:trustee",
    "identity:list_roles_for_trust": _ADMIN_OR_SYSREADER + " or rule:trustor or rule:trustee",
    "identity:get_role_for_trust": _ADMIN_OR_SYSREADER + " or rule:trustor or rule:trustee",
    "identity:delete_trust": "rule:admin_required or rule:trustor",
    # unified limits: admins write; everyone reads registered limits and the model, and
    # the limits of their own project (or domain)
    "identity:get_registered_limit": "",
    "identity:list_registered_limits": "",
    "identity:create_registered_limits": "rule:admin_required",
    "identity:update_registered_limit": "rule:admin_required",
    "identity:delete_registered_limit": "rule:admin_required",
    "identity:get_limit_model": "",
    "identity:get_limit": (
        _ADMIN_OR_SYSREADER + " or project_id:%(target.limit.project_id)s"
        " or domain_id:%(target.limit.domain.id)s or domain_id:%(target.limit.project.domain_id)s"
    ),
    "identity:list_limits": "",
    "identity:create_limits": "rule:admin_required",
    "identity:update_limit": "rule:admin_required",
    "identity:delete_limit": "rule:admin_required",
    # revocation events
    "identity:list_revoke_events": "rule:service_or_admin",
    "service_or_admin": "rule:admin_required or rule:service_role",
}
