"""The secret the metadata proxies and the compute metadata API share.

The proxy signs each request's instance id (``X-Instance-ID-Signature``, HMAC-SHA256,
see ``network.linux.metadata.sign``); the compute metadata API checks it with the same
secret, so a guest cannot ask for another instance's metadata by forging headers.
It is ``network.metadata_secret`` when set, else generated once and kept in
``<state>/network/metadata_secret`` (mode 0600). Compute calls :func:`get` too.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def path(conf) -> Path:
    return Path(conf.state_dir) / "network" / "metadata_secret"


def get(conf) -> str:
    if conf.network.metadata_secret:
        return conf.network.metadata_secret
    p = path(conf)
    try:
        value = p.read_text().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = secrets.token_hex(32)
    tmp = p.with_name(f".{p.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    try:
        os.link(tmp, p)  # first writer wins; a racing process reads the winner's secret
    except FileExistsError:
        value = p.read_text().strip()
    finally:
        tmp.unlink(missing_ok=True)
    return value
