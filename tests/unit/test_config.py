import re
from pathlib import Path

import pytest

from onestack.config import SCHEMA, ConfigError, load

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_defaults_without_file(tmp_path):
    conf = load(None, env={})
    assert conf.server.port == 8800
    assert conf.identity.bcrypt_rounds == 12


def test_file_and_env_override(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[server]\nport = 9001\n[identity]\ntoken_expiration = 60\n')
    conf = load(f, env={"ONESTACK_SERVER_PORT": "9002"})
    assert conf.server.port == 9002
    assert conf.identity.token_expiration == 60


def test_unknown_key_names_key_and_file(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[identity]\ntoken_expiry = 5\n")
    with pytest.raises(ConfigError, match=r"identity.token_expiry.*c.toml.*token_expiration"):
        load(f, env={})


def test_wrong_type_and_bad_toml(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[server]\nport = "high"\n')
    with pytest.raises(ConfigError, match="server.port"):
        load(f, env={})
    f.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(f, env={})


def test_unknown_env_var():
    with pytest.raises(ConfigError, match="ONESTACK_SERVER_PROT.*ONESTACK_SERVER_PORT"):
        load(None, env={"ONESTACK_SERVER_PROT": "1"})


def test_every_key_is_documented():
    text = DOC.read_text()
    for section, keys in SCHEMA.items():
        for key in keys:
            assert re.search(rf"`{section}\.{key}`", text), f"{section}.{key} missing from {DOC}"
