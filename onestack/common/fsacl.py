"""Letting a daemon that runs as its own user (QEMU as libvirt-qemu, dnsmasq as nobody,
PostgreSQL as postgres) reach its files under onestack's 0700 state directories."""

from __future__ import annotations

import grp
import pwd
import shutil
import stat
import subprocess
from pathlib import Path


class PassError(RuntimeError):
    """A directory the user cannot pass and that could not be opened to it."""


def let_pass(path: str | Path, user: str) -> list[Path]:
    """Let ``user`` traverse every directory down to ``path``: a search-only POSIX ACL
    entry ``u:<user>:x`` on each one it cannot pass (it can list none of them, and
    reaches only the files whose own modes allow it). The directories changed; none
    when there is no such user."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return []
    groups = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    target = Path(path).resolve()
    changed = []
    for d in [*reversed(target.parents), target]:
        st = d.stat()
        if st.st_mode & stat.S_IXOTH:
            continue
        if st.st_uid == pw.pw_uid and st.st_mode & stat.S_IXUSR:
            continue
        if st.st_gid in groups and st.st_mode & stat.S_IXGRP:
            continue
        if shutil.which("setfacl") is None:
            raise PassError(f"{user} cannot pass {d} and setfacl is missing (Debian package acl)")
        if _passes_by_acl(d, user):
            continue
        done = subprocess.run(["setfacl", "-m", f"u:{user}:x", str(d)], capture_output=True, text=True)
        if done.returncode != 0:
            raise PassError(f"cannot let {user} pass {d}: {done.stderr.strip()}")
        changed.append(d)
    return changed


def _passes_by_acl(d: Path, user: str) -> bool:
    """Whether an ACL entry of ``d`` lets ``user`` search it, as the mask leaves it (a chmod
    after the entry was set can mask it out: ``user:U:--x<tab>#effective:---``)."""
    acl = subprocess.run(["getfacl", "-cp", str(d)], capture_output=True, text=True).stdout
    for line in acl.splitlines():
        if line.startswith(f"user:{user}:"):
            perms = line.split("#effective:")[-1] if "#effective:" in line else line.split(":")[2]
            return "x" in perms
    return False
