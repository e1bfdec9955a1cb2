"""``qemu-img``, run one way everywhere (image service, compute hosts, volume backends).

The format is always named (``-f``), never probed; ``info`` answers in JSON. What reads
data a user gave (``info`` and ``convert`` of an upload or an image) runs under resource
limits (``prlimit``), as Nova limits it: a crafted header must not make qemu-img eat the
machine. Every call blocks; callers run it off the event loop.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

GiB = 1 << 30
# Nova's QEMU_IMG_LIMITS for `info` of untrusted data
INFO_ADDRESS_SPACE, INFO_CPU_SECONDS = 1 * GiB, 30
# `convert` runs worker threads, each reserving a malloc arena: more room, fewer arenas
CONVERT_ADDRESS_SPACE = 2 * GiB


class QemuImgError(Exception):
    """qemu-img failed (``reason``: its last error line) or took longer than allowed."""

    def __init__(self, operation: str, reason: str, timed_out: bool = False):
        super().__init__(f"qemu-img {operation} {'took longer than allowed' if timed_out else 'failed'}: "
                         f"{reason}")
        self.operation, self.reason, self.timed_out = operation, reason, timed_out


def run(*args: str, address_space: int | None = None, cpu_seconds: int | None = None,
        timeout: float = 600) -> str:
    """Run ``qemu-img ARGS`` (limited where asked and prlimit exists); its stdout."""
    cmd = ["qemu-img", *args]
    limits = [f"--as={address_space}"] if address_space else []
    limits += [f"--cpu={cpu_seconds}"] if cpu_seconds else []
    if limits and shutil.which("prlimit"):
        cmd = ["prlimit", *limits, "--", *cmd]
    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except FileNotFoundError:
        raise QemuImgError(args[0], "qemu-img not found (Debian package qemu-utils)") from None
    except subprocess.TimeoutExpired:
        raise QemuImgError(args[0], f"more than {timeout:.0f} s", timed_out=True) from None
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
        raise QemuImgError(args[0], lines[-1] if lines else f"exit status {done.returncode}")
    return done.stdout


def available() -> bool:
    return shutil.which("qemu-img") is not None


def info(path: Path | str, fmt: str, *, trusted: bool = False, force_share: bool = False,
         timeout: float = 60) -> dict:
    """``qemu-img info`` of ``path`` read as ``fmt``, as a dict. ``force_share`` (-U): also
    while a guest has the file open."""
    args = ["info", "-f", fmt, "--output=json", *(["-U"] if force_share else []), str(path)]
    limits = {} if trusted else {"address_space": INFO_ADDRESS_SPACE, "cpu_seconds": INFO_CPU_SECONDS}
    return json.loads(run(*args, **limits, timeout=timeout))


def convert(src: Path | str, dest: Path | str, src_fmt: str, dest_fmt: str, *, trusted: bool = False,
            force_share: bool = False, existing: bool = False, timeout: float = 1800) -> None:
    """``src`` (read as ``src_fmt``) written to ``dest`` as ``dest_fmt``; ``existing`` (-n):
    into a target that already exists (its size kept)."""
    args = ["convert", "-q", *(["-U"] if force_share else []), *(["-n"] if existing else []),
            "-f", src_fmt, "-O", dest_fmt, str(src), str(dest)]
    run(*args, address_space=None if trusted else CONVERT_ADDRESS_SPACE, timeout=timeout)


def create(path: Path | str, fmt: str, size: int | str, *, backing: Path | str | None = None,
           backing_fmt: str | None = None, timeout: float = 600) -> None:
    """A new image of ``size`` (bytes, or qemu-img's "10G"), optionally over a backing file."""
    over = ["-F", backing_fmt or fmt, "-b", str(backing)] if backing is not None else []
    run("create", "-q", "-f", fmt, *over, str(path), str(size), timeout=timeout)


def resize(path: Path | str, fmt: str, size: int | str, *, timeout: float = 600) -> None:
    run("resize", "-q", "-f", fmt, str(path), str(size), timeout=timeout)


def outside_reference(data: dict, path: Path | str | None = None) -> str | None:
    """What in ``info`` output would make QEMU read other files than the one given (a backing
    file, an external data file, a VMDK extent elsewhere), or None."""
    if data.get("backing-filename") or data.get("full-backing-filename"):
        return "a backing file"
    spec = (data.get("format-specific") or {}).get("data") or {}
    if spec.get("data-file"):
        return "an external data file"
    for extent in spec.get("extents") or [] if path is not None else []:
        if extent.get("filename") not in (None, str(path)):
            return "an extent in another file"
    return None
