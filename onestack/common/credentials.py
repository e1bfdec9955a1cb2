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


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_secret_toml(path: Path, data: dict[str, dict]) -> None:
    """A TOML file of ``[section]`` tables of plain values, written whole (mode 0600):
    credentials, and a joined node's configuration (which holds its credentials too)."""
    lines = []
    for section, keys in data.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in keys.items()]
        lines.append("")
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines))
    tmp.rename(path)


def save_credentials(conf, creds: dict[str, dict[str, str]]) -> None:
    write_secret_toml(credentials_path(conf), creds)
