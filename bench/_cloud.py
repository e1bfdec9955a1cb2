"""Shared helpers for the bench scripts: the repo on sys.path, the test suite's
Cloud, clean-up on SIGTERM, and latency statistics."""

from __future__ import annotations

import contextlib
import importlib
import signal
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

_tests_cloud = importlib.import_module("tests.cloud")  # the test suite's helper
BIN = _tests_cloud.BIN
Cloud = _tests_cloud.Cloud
free_port = _tests_cloud.free_port

__all__ = ["BIN", "REPO", "Cloud", "clean_env", "free_port", "running", "stop_on_sigterm",
           "summary", "vs"]


def stop_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so `finally:` blocks stop the cloud."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


@contextlib.contextmanager
def running(cloud):
    """Start CLOUD; always stop and purge it, also when interrupted while starting."""
    try:
        try:
            cloud.start()
        except KeyboardInterrupt:
            # `onestack up --detach` was cut short, but the server it spawned runs in its
            # own session and writes its pid file only once set up: wait for it, so that
            # `onestack down` finds and stops it.
            pid, log = cloud.state / "onestack.pid", cloud.state / "onestack.log"
            deadline = time.monotonic() + 15
            while log.exists() and not pid.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            raise
        yield cloud
    finally:
        cloud.stop()


def clean_env(environ: dict) -> dict:
    """The environment without OS_* and ONESTACK_* variables."""
    return {k: v for k, v in environ.items() if not k.startswith(("OS_", "ONESTACK_"))}


def summary(seconds: list[float]) -> tuple[float, float]:
    """(median, p90) in milliseconds."""
    ms = sorted(s * 1000 for s in seconds)
    if len(ms) < 2:
        return ms[0], ms[0]
    return statistics.median(ms), statistics.quantiles(ms, n=10, method="inclusive")[8]


def vs(ours_ms: float, reference_ms: float) -> str:
    """'33x faster' / '1.2x slower' than the reference."""
    if ours_ms <= 0:
        return "n/a"
    ratio = reference_ms / ours_ms
    if ratio >= 1:
        return f"{ratio:.0f}x faster" if ratio >= 10 else f"{ratio:.1f}x faster"
    return f"{1 / ratio:.1f}x slower"
