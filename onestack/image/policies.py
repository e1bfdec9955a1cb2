"""Default policy of the image service.

Follows Glance's secure-RBAC defaults: ``admin`` may do anything; members of
the owning project manage its images; readers read. Who may *see* an image
(visibility, membership) is decided by ``core.visible`` before any rule runs.
Operators override any rule in ``<policy dir>/image.yaml``.
"""

_ADMIN = "role:admin"
_OWNER_MEMBER = "role:member and project_id:%(target.owner)s"

DEFAULTS: dict[str, str] = {
    "admin_required": _ADMIN,
    # images
    "add_image": f"{_ADMIN} or (role:member and project_id:%(target.owner)s)",
    "get_images": "role:reader or " + _ADMIN,
    "get_image": "role:reader or " + _ADMIN,
    "modify_image": f"{_ADMIN} or ({_OWNER_MEMBER})",
    "delete_image": f"{_ADMIN} or ({_OWNER_MEMBER})",
    "publicize_image": _ADMIN,
    "communitize_image": f"{_ADMIN} or ({_OWNER_MEMBER})",
    "set_image_owner": _ADMIN,
    "deactivate": f"{_ADMIN} or ({_OWNER_MEMBER})",
    "reactivate": f"{_ADMIN} or ({_OWNER_MEMBER})",
    "upload_image": f"{_ADMIN} or ({_OWNER_MEMBER})",
    "download_image": "role:reader or " + _ADMIN,
    "download_deactivated": f"{_ADMIN}",
    "import_image": f"{_ADMIN} or ({_OWNER_MEMBER})",
    # members: the owner shares, the member answers
    "add_member": f"{_ADMIN} or ({_OWNER_MEMBER})",
    "delete_member": f"{_ADMIN} or ({_OWNER_MEMBER})",
    "get_members": f"{_ADMIN} or role:reader",
    "get_member": f"{_ADMIN} or role:reader",
    "modify_member": f"{_ADMIN} or (role:member and project_id:%(target.member_id)s)",
}
