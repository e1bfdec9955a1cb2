"""How the identity service plugs into onestack: set-up, bootstrap, ASGI app."""

from __future__ import annotations

from onestack.common import auth, db, errors
from onestack.config import Config
from onestack.identity import authn, core

NAME = "identity"
PREFIX = "/identity"
CATALOG = {"type": "identity", "name": "keystone", "description": "Identity Service (Keystone v3)"}
SERVICE_USER = None  # identity validates tokens itself; it needs no service account


def version() -> str:
    from onestack.identity.api import VERSION

    return f"v{VERSION}"


def _validator(token_id: str) -> dict:
    """What other services' middleware calls: our own validation code path."""
    try:
        return authn.validate(token_id, with_catalog=False)
    except authn.TokenNotValid as e:
        raise errors.Unauthorized(f"The request you have made requires authentication: token {e}.") from None


def setup(conf: Config) -> None:
    """Tables, keys, policy; and make this process validate tokens through us."""
    db.upgrade("identity")
    i = conf.identity
    core.configure(
        core.Settings(
            token_expiration=i.token_expiration,
            bcrypt_rounds=i.bcrypt_rounds,
            lockout_failure_attempts=i.lockout_failure_attempts,
            lockout_duration=i.lockout_duration,
            password_expires_days=i.password_expires_days,
            unique_last_password_count=i.unique_last_password_count,
            minimum_password_age=i.minimum_password_age,
            password_regex=i.password_regex,
            password_regex_description=i.password_regex_description,
            change_password_upon_first_use=i.change_password_upon_first_use,
            disable_user_account_days_inactive=i.disable_user_account_days_inactive,
            max_name_length=i.max_name_length,
            list_limit=i.list_limit,
            region=i.region,
        ),
        conf.state_dir,
        conf.policy_dir,
        i.max_active_keys,
    )
    auth.set_validator(_validator, conf.auth.token_cache_seconds, core.revision)


def app():
    from onestack.identity.api import build

    return build()
