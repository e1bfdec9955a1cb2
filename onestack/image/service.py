"""How the image service plugs into onestack: set-up and ASGI app."""

from __future__ import annotations

from pathlib import Path

from onestack.common import db
from onestack.common.clients import ServiceAuth
from onestack.common.limits import Limits
from onestack.config import Config
from onestack.image import core

NAME = "image"
PREFIX = "/image"
CATALOG = {"type": "image", "name": "glance", "description": "Image Service (Glance v2)"}
SERVICE_USER = "glance"


def version() -> str:
    from onestack.image.api import VERSIONS

    return f"v{VERSIONS[0]}"


def setup(conf: Config) -> None:
    db.upgrade("image")
    i = conf.image
    settings = core.Settings(
        quota_images=i.quota_images,
        quota_bytes=i.quota_bytes,
        size_cap=i.size_cap,
        max_properties=i.max_properties,
        max_tags=i.max_tags,
        max_members=i.max_members,
        list_limit=i.list_limit,
        max_list_limit=i.max_list_limit,
        hash_algorithm=_hash_algorithm(i.hash_algorithm),
    )
    limits = Limits(lambda: ServiceAuth.for_service(conf, SERVICE_USER), "image", core.LIMIT_NAMES,
                    core.limit_defaults(settings))
    core.configure(settings, Path(i.store_dir) if i.store_dir else conf.state_dir / "images", conf.policy_dir,
                   limits)


def start(conf: Config) -> None:
    """After bootstrap: the quota defaults, as registered limits."""
    core.State.limits.register_in_background()


def _hash_algorithm(name: str) -> str:
    """The configured ``os_hash_algo``, refused at start-up if hashlib lacks it."""
    import hashlib

    from onestack.config import ConfigError

    if name not in ("sha256", "sha384", "sha512", "sha3_256", "sha3_512", "blake2b"):
        raise ConfigError(f"config key 'image.hash_algorithm' must be one of sha256, sha384, sha512, "
                          f"sha3_256, sha3_512, blake2b; got {name!r}")
    hashlib.new(name)
    return name


def app():
    from onestack.image.api import build

    return build()
