"""fsacl.let_pass: a daemon's user may pass down to its files through 0700 directories,
also after a chmod masked the ACL entry it had been given."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from onestack.common import fsacl

pytestmark = [pytest.mark.root, pytest.mark.tools("setfacl", "getfacl", "runuser")]
USER = "nobody"


def _can_read(path: Path) -> bool:
    return subprocess.run(["runuser", "-u", USER, "--", "cat", str(path)], capture_output=True,
                          timeout=30).returncode == 0


def test_let_pass_and_again_after_a_chmod(tmp_path):
    top = tmp_path / "top"
    (top / "sub").mkdir(parents=True, mode=0o700)
    top.chmod(0o700)
    f = top / "sub" / "file"
    f.write_text("x")
    f.chmod(0o644)
    fsacl.let_pass(top / "sub", USER)
    assert _can_read(f)
    assert fsacl.let_pass(top / "sub", USER) == []  # already passes: nothing to change
    top.chmod(0o700)  # the mask goes to ---: the entry is still there, no longer effective
    assert not _can_read(f)
    assert fsacl.let_pass(top / "sub", USER) == [top]
    assert _can_read(f)
