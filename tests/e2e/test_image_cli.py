"""`onestack image build tiny`: builds once, then reuses the cached image (no boot)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

TOOLS = ["qemu-img", "apt-get", "dpkg-deb", "mkfs.vfat", "mcopy", "syslinux", "sfdisk"]


def onestack(*args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "onestack.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    return proc, time.monotonic() - start


@pytest.fixture
def cache(tmp_path) -> Path:
    """A cache of our own, seeded with the machine's .debs so no download is needed."""
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        pytest.skip(f"host tools missing (see guest/README.md): {' '.join(missing)}")
    from guest import default_cache

    cache = tmp_path / "cache"
    cache.mkdir()
    shared = default_cache()
    for deb in shared.glob("*.deb") if shared.is_dir() else []:
        shutil.copy2(deb, cache / deb.name)
    return cache


def test_build_then_reuse(cache, tmp_path):
    out = tmp_path / "out" / "tiny.qcow2"
    args = ["image", "build", "tiny", "--output", str(out), "--cache", str(cache)]

    first, t_build = onestack(*args)
    assert first.returncode == 0, first.stderr
    assert "built onestack-tiny-x86_64.qcow2" in first.stdout, first.stdout
    assert out.stat().st_size == (cache / "onestack-tiny-x86_64.qcow2").stat().st_size
    stamp = json.loads((cache / "onestack-tiny-x86_64.stamp.json").read_text())
    assert stamp["packages"]["busybox-static"] and len(stamp["recipe_sha256"]) == 64

    out.unlink()
    second, t_hit = onestack(*args)
    assert second.returncode == 0, second.stderr
    assert "reused the cached onestack-tiny-x86_64.qcow2" in second.stdout, second.stdout
    assert f"copied to {out}" in second.stdout and out.exists()

    # a changed input (here: the stamp says another guest/ recipe) rebuilds
    stamp["recipe_sha256"] = "0" * 64
    (cache / "onestack-tiny-x86_64.stamp.json").write_text(json.dumps(stamp))
    third, _ = onestack(*args)
    assert third.returncode == 0, third.stderr
    assert "built onestack-tiny-x86_64.qcow2" in third.stdout, third.stdout
    print(f"\nCLI: build {t_build:.1f}s, cache hit {t_hit:.2f}s", file=sys.stderr)


def test_missing_tool_is_one_line(cache, tmp_path):
    # only the Python interpreter on PATH: no apt, dpkg-deb, mkfs.vfat, ...
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bindir)}
    proc, _ = onestack("image", "build", "tiny", "--cache", str(cache), env=env)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "missing host tools" in lines[0] and "apt-get install" in lines[0], lines[0]
