"""Tables of the identity service (and only of it)."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from onestack.common.db import make_base

Base = make_base()

# Domains are projects with is_domain=True, as in Keystone; their own
# domain_id is this sentinel so (domain_id, name) stays unique for all rows.
ROOT_DOMAIN = "<<keystone.domain.root>>"
# Global roles have no domain; a sentinel keeps (name, domain_id) unique.
NULL_DOMAIN = "<<null>>"

ID = sa.String(64)
NAME = sa.String(255)


class Project(Base):
    __tablename__ = "identity_project"
    __table_args__ = (sa.UniqueConstraint("domain_id", "name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(NAME)
    domain_id: Mapped[str] = mapped_column(ID, index=True)
    parent_id: Mapped[str | None] = mapped_column(ID, index=True)
    is_domain: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    extra: Mapped[dict] = mapped_column(sa.JSON, default=dict)


class ProjectTag(Base):
    __tablename__ = "identity_project_tag"
    project_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("identity_project.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(NAME, primary_key=True)


class User(Base):
    __tablename__ = "identity_user"
    __table_args__ = (sa.UniqueConstraint("domain_id", "name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(NAME)
    domain_id: Mapped[str] = mapped_column(ID, index=True)
    enabled: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    default_project_id: Mapped[str | None] = mapped_column(ID)
    extra: Mapped[dict] = mapped_column(sa.JSON, default=dict)  # email, description, ...
    password_hash: Mapped[str | None] = mapped_column(sa.String(128))
    password_created_at: Mapped[datetime | None] = mapped_column(sa.DateTime)
    password_expires_at: Mapped[datetime | None] = mapped_column(sa.DateTime)
    failed_auth_count: Mapped[int] = mapped_column(sa.Integer, default=0)
    failed_auth_at: Mapped[datetime | None] = mapped_column(sa.DateTime)
    created_at: Mapped[datetime | None] = mapped_column(sa.DateTime)
    # Keystone's user options (ignore_password_expiry, ...): name -> value
    options: Mapped[dict | None] = mapped_column(sa.JSON)
    # the day of the last authentication (Keystone records days, not times)
    last_active_at: Mapped[date | None] = mapped_column(sa.Date)
    # whether the user set the current password itself (minimum_password_age applies)
    password_self_service: Mapped[bool] = mapped_column(
        sa.Boolean, default=False, server_default=sa.false()
    )


class PasswordHistory(Base):
    """Hashes of a user's earlier passwords (unique_last_password_count)."""

    __tablename__ = "identity_password_history"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("identity_user.id", ondelete="CASCADE"), index=True
    )
    password_hash: Mapped[str] = mapped_column(sa.String(128))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime)


class Group(Base):
    __tablename__ = "identity_group"
    __table_args__ = (sa.UniqueConstraint("domain_id", "name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(NAME)
    domain_id: Mapped[str] = mapped_column(ID, index=True)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    extra: Mapped[dict] = mapped_column(sa.JSON, default=dict)


class Membership(Base):
    __tablename__ = "identity_membership"
    user_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("identity_user.id", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("identity_group.id", ondelete="CASCADE"), primary_key=True
    )


class Role(Base):
    __tablename__ = "identity_role"
    __table_args__ = (sa.UniqueConstraint("name", "domain_id"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(NAME)
    domain_id: Mapped[str] = mapped_column(ID, default=NULL_DOMAIN)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    extra: Mapped[dict] = mapped_column(sa.JSON, default=dict)


class ImpliedRole(Base):
    __tablename__ = "identity_implied_role"
    prior_role_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("identity_role.id", ondelete="CASCADE"), primary_key=True
    )
    implied_role_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("identity_role.id", ondelete="CASCADE"), primary_key=True
    )


class Assignment(Base):
    """A role of an actor (user/group) on a target (project/domain/system)."""

    __tablename__ = "identity_assignment"
    # type: UserProject GroupProject UserDomain GroupDomain UserSystem GroupSystem
    type: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    actor_id: Mapped[str] = mapped_column(ID, primary_key=True)
    target_id: Mapped[str] = mapped_column(ID, primary_key=True)  # "system" for system
    role_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("identity_role.id", ondelete="CASCADE"), primary_key=True
    )
    inherited: Mapped[bool] = mapped_column(sa.Boolean, primary_key=True, default=False)


class Region(Base):
    __tablename__ = "identity_region"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    parent_region_id: Mapped[str | None] = mapped_column(ID)
    extra: Mapped[dict] = mapped_column(sa.JSON, default=dict)


class Service(Base):
    __tablename__ = "identity_service"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    type: Mapped[str] = mapped_column(NAME)
    name: Mapped[str] = mapped_column(NAME, default="")
    description: Mapped[str] = mapped_column(sa.Text, default="")
    enabled: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    extra: Mapped[dict] = mapped_column(sa.JSON, default=dict)


class Endpoint(Base):
    __tablename__ = "identity_endpoint"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    service_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("identity_service.id", ondelete="CASCADE"), index=True
    )
    interface: Mapped[str] = mapped_column(sa.String(8))
    region_id: Mapped[str | None] = mapped_column(ID)
    url: Mapped[str] = mapped_column(sa.Text)
    enabled: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    extra: Mapped[dict] = mapped_column(sa.JSON, default=dict)


class AppCredential(Base):
    __tablename__ = "identity_app_credential"
    __table_args__ = (sa.UniqueConstraint("user_id", "name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(NAME)
    user_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("identity_user.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[str | None] = mapped_column(ID)
    secret_hash: Mapped[str] = mapped_column(sa.String(128))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    expires_at: Mapped[datetime | None] = mapped_column(sa.DateTime)
    unrestricted: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    system: Mapped[str | None] = mapped_column(sa.String(16))
    created_at: Mapped[datetime | None] = mapped_column(sa.DateTime)


class AppCredentialRole(Base):
    __tablename__ = "identity_app_credential_role"
    app_cred_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("identity_app_credential.id", ondelete="CASCADE"), primary_key=True
    )
    role_id: Mapped[str] = mapped_column(ID, primary_key=True)


class Credential(Base):
    """EC2-style and other credentials; the blob is stored encrypted."""

    __tablename__ = "identity_credential"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("identity_user.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[str | None] = mapped_column(ID)
    type: Mapped[str] = mapped_column(NAME)
    encrypted_blob: Mapped[str] = mapped_column(sa.Text)
    extra: Mapped[dict] = mapped_column(sa.JSON, default=dict)


class Trust(Base):
    """A trustor's delegation of roles on a project to a trustee (OS-TRUST). Rows are
    deleted with the trust; tokens made from it stop validating at once."""

    __tablename__ = "identity_trust"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    trustor_user_id: Mapped[str] = mapped_column(ID, index=True)
    trustee_user_id: Mapped[str] = mapped_column(ID, index=True)
    project_id: Mapped[str | None] = mapped_column(ID, index=True)
    impersonation: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    expires_at: Mapped[datetime | None] = mapped_column(sa.DateTime)
    remaining_uses: Mapped[int | None] = mapped_column(sa.Integer)
    redelegated_trust_id: Mapped[str | None] = mapped_column(ID, index=True)
    redelegation_count: Mapped[int] = mapped_column(sa.Integer, default=0)
    created_at: Mapped[datetime | None] = mapped_column(sa.DateTime)


class TrustRole(Base):
    """A role a trust delegates. No foreign key to the role: a deleted role stays
    listed here, so the trust becomes invalid (the trustor no longer holds it), as
    in Keystone, instead of quietly delegating less."""

    __tablename__ = "identity_trust_role"
    trust_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("identity_trust.id", ondelete="CASCADE"), primary_key=True
    )
    role_id: Mapped[str] = mapped_column(ID, primary_key=True)


class RegisteredLimit(Base):
    """The default limit of a resource of a service (in a region or in all of them).
    (service_id, region_id, resource_name) is unique; region_id may be NULL, so the
    domain layer checks it rather than a database constraint."""

    __tablename__ = "identity_registered_limit"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    service_id: Mapped[str] = mapped_column(ID, index=True)
    region_id: Mapped[str | None] = mapped_column(ID)
    resource_name: Mapped[str] = mapped_column(NAME)
    default_limit: Mapped[int] = mapped_column(sa.Integer)
    description: Mapped[str | None] = mapped_column(sa.Text)


class Limit(Base):
    """A project's (or a domain's) override of a registered limit; it names its
    service, region and resource through the registered limit, as in Keystone."""

    __tablename__ = "identity_limit"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    registered_limit_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("identity_registered_limit.id"), index=True
    )
    project_id: Mapped[str | None] = mapped_column(ID, index=True)
    domain_id: Mapped[str | None] = mapped_column(ID, index=True)
    resource_limit: Mapped[int] = mapped_column(sa.Integer)
    description: Mapped[str | None] = mapped_column(sa.Text)


class RevocationEvent(Base):
    """Tokens matching every non-null field and issued before issued_before are revoked."""

    __tablename__ = "identity_revocation_event"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str | None] = mapped_column(ID)
    project_id: Mapped[str | None] = mapped_column(ID)
    domain_id: Mapped[str | None] = mapped_column(ID)
    audit_id: Mapped[str | None] = mapped_column(ID)
    audit_chain_id: Mapped[str | None] = mapped_column(ID)
    app_cred_id: Mapped[str | None] = mapped_column(ID)  # the credential was deleted
    issued_before: Mapped[datetime] = mapped_column(sa.DateTime)
    revoked_at: Mapped[datetime] = mapped_column(sa.DateTime, index=True)


class Revision(Base):
    """One row: a counter bumped by every identity change. Each process keys its caches
    of validated tokens on it, so a change made by any process (an API worker, a
    revocation) drops them in all processes at once."""

    __tablename__ = "identity_revision"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    value: Mapped[int] = mapped_column(sa.BigInteger, default=0)
