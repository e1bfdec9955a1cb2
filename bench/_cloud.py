"""Shared helpers for the bench scripts: the repo on sys.path, the test suite's
Cloud, clean-up on SIGTERM, and latency statistics."""

from __future__ import annotations

import signal
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.cloud import BIN, Cloud, free_port  # noqa: E402

__all__ = ["BIN", "REPO", "Cloud", "free_port", "stop_on_sigterm", "summary", "vs", "clean_env"]


def stop_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so `finally:` blocks stop the cloud."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


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
