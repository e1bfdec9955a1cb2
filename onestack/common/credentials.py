"""The service users' credentials file (``credentials.toml`` in the state directory).

Identity's bootstrap writes it (mode 0600); services read their own user's
password from it to get a token (``clients.ServiceAuth``), and the CLI reads
the admin's. It lives in common so no service imports identity to read it.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

CREDENTIALS_FILE = "credentials.toml"


def credentials_path(conf) -> Path:
    return conf.state_dir / CREDENTIALS_FILE


def load_credentials(conf) -> dict[str, dict[str, str]]:
    """user name -> {"password", "project"} of the users bootstrap made."""
    path = credentials_path(conf)
    if not path.exists():
        return {}
    return tomllib.loads(path.read_text())


def save_credentials(conf, creds: dict[str, dict[str, str]]) -> None:
    path = credentials_path(conf)
    lines = []
    for user, data in creds.items():
        lines.append(f"[{user}]")
        lines += [f'{k} = "{v}"' for k, v in data.items()]
        lines.append("")
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines))
    path.with_suffix(".tmp").rename(path)
