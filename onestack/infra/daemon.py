"""What the managed servers share: pid files that survive pid reuse, password files,
ports, and letting a server's own user through the private state directory."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import time
from pathlib import Path

from onestack.common import fsacl


class InfraError(Exception):
    """A managed server could not be started or stopped, phrased for a one-line CLI error."""


def secret(path: Path) -> str:
    """The password stored at ``path`` (mode 0600), made on first use. Hex: it goes
    unquoted into URLs and config files."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = secrets.token_hex(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value


def _proc_stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name: [state, ppid, ...] (None: no such process)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def _start_time(pid: int) -> str:
    fields = _proc_stat(pid)
    return fields[19] if fields else ""  # field 22 of stat(5): start time since boot


def write_pid(path: Path, pid: int) -> None:
    """Record ``pid`` with its start time, so a later reader never mistakes an unrelated
    process that reused the number for ours."""
    path.write_text(f"{pid} {_start_time(pid)}\n")


def alive(pid: int) -> bool:
    fields = _proc_stat(pid)
    return bool(fields) and fields[0] not in ("Z", "X")  # a zombie has exited


def read_pid(path: Path) -> int | None:
    """The pid recorded at ``path`` if that very process still runs, else None."""
    try:
        pid_text, _, started = path.read_text().strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    if not alive(pid) or _start_time(pid) != started:
        return None
    return pid


def group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is left in process group ``pgid``."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := _proc_stat(int(entry.name))):
            if fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
                return True
    return False


def stop_group(pid: int, timeout: float = 60) -> None:
    """SIGTERM the process group ``pid`` leads and wait until all of it is gone (a shell
    leader goes at once, the server it started takes its time); SIGKILL after ``timeout``."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while group_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not group_alive(pid):
            break
    try:  # reap it if it was our child (the foreground `onestack up` started it)
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def loopback(host: str) -> str:
    """Where this machine reaches a server listening on ``host``."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    return "::1" if host == "::" else host


def url_host(host: str) -> str:
    host = loopback(host)
    return f"[{host}]" if ":" in host else host


def answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((loopback(host), port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port free on loopback now (for a server's private, loopback-only ports)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float, what: str, died=None) -> None:
    """Poll ``check`` until true (bounded); ``died()`` returns a reason to give up early."""
    deadline = time.monotonic() + timeout
    while not check():
        if died is not None and (why := died()):
            raise InfraError(why)
        if time.monotonic() > deadline:
            raise InfraError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.2)


def log_tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def let_pass(path: Path, user: str) -> None:
    """Let ``user`` (a server that runs as its own user, e.g. postgres) traverse every
    directory down to ``path`` (search-only ACL entries: it can list none of them)."""
    try:
        fsacl.let_pass(path, user)
    except fsacl.PassError as e:
        raise InfraError(str(e)) from None
