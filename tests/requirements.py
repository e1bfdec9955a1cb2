"""What a test needs from the machine, by marker, checked in one place.

A test marked ``root``, ``netns``, ``libvirt``, ``postgres`` or ``rabbitmq`` is skipped where the
machine lacks it, with the reason. Under ``CI=true`` the same lack fails the test
instead: CI installs everything (scripts/install.sh), so a missing piece there is a
broken install, and a skip would hide it.
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import subprocess

import pytest

# marker -> (what it means, for `pytest --markers`)
MARKERS = {
    "e2e": "needs root and the real data plane (guests, namespaces)",
    "root": "needs to run as root",
    "netns": "needs network namespaces and the data plane tools (ip, bridge, nft, dnsmasq)",
    "libvirt": "needs libvirtd and QEMU (real guests)",
    "postgres": "runs against a PostgreSQL server the test run starts",
    "rabbitmq": "runs against a RabbitMQ broker the test run starts",
    "tools": "tools(NAME, ...): needs these programs on PATH (scripts/install.sh installs them)",
}

NET_TOOLS = ("ip", "bridge", "nft", "dnsmasq", "sysctl")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def missing(reason: str) -> None:
    """Skip the calling test for a missing prerequisite, or fail it under CI."""
    if in_ci():
        pytest.fail(f"CI=true and a prerequisite is missing (broken install?): {reason}",
                    pytrace=False)
    pytest.skip(reason)


def fail_skip_in_ci(report) -> None:
    """Under CI, turn a skipped test or module report into a failure that says why."""
    if not (in_ci() and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"CI=true and this was skipped (a broken install?): {reason}"


@functools.cache
def _lack(marker: str) -> str:
    """Why the machine cannot run tests with ``marker`` ("" when it can)."""
    if marker in ("root", "netns", "libvirt") and os.geteuid() != 0:
        return "needs root"
    if marker == "netns":
        absent = [t for t in NET_TOOLS if shutil.which(t) is None]
        if absent:
            return f"missing {', '.join(absent)} (scripts/install.sh)"
        r = subprocess.run(["unshare", "--net", "true"], capture_output=True, text=True)
        if r.returncode != 0:
            return f"cannot make network namespaces: {r.stderr.strip()}"
    if marker == "libvirt":
        if not shutil.which("virsh") or not shutil.which("qemu-system-x86_64"):
            return "libvirt/QEMU missing (scripts/install.sh)"
        r = subprocess.run(["virsh", "-c", "qemu:///system", "version"], capture_output=True,
                           text=True, timeout=30)
        if r.returncode != 0:
            return f"libvirtd does not answer (scripts/libvirt-up.sh): {r.stderr.strip()}"
    if marker == "postgres" and not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        return "PostgreSQL is not installed (make test installs it)"
    if marker == "rabbitmq" and not (os.path.exists("/usr/lib/rabbitmq/bin/rabbitmq-server")
                                     and shutil.which("epmd")):
        return "RabbitMQ is not installed (make test installs it)"
    return ""


def check(item: pytest.Item) -> None:
    for marker in ("root", "netns", "libvirt", "postgres", "rabbitmq"):
        if item.get_closest_marker(marker) and (why := _lack(marker)):
            missing(f"{marker}: {why}")
    for mark in item.iter_markers("tools"):
        absent = [t for t in mark.args if shutil.which(t) is None]
        if absent:
            missing(f"missing {', '.join(absent)} (scripts/install.sh)")
