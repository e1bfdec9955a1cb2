"""Start-up time and memory of the all-in-one process.

Runs `<venv>/bin/onestack up` in the foreground (so Python's own start-up is
counted) with a private state dir, free loopback port and an empty config
file, and times it until GET / and every service path listed there answer
(polled every 20 ms). Three fresh starts (bootstrap included) and three
restarts on the existing state dir; medians are printed. Then the resident
memory (VmRSS) of the running process when idle and after 200 token
validations. Never fails on time.

    .venv/bin/python bench/startup.py
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import httpx
from _cloud import BIN, clean_env, free_port, stop_on_sigterm

RUNS = 3
POLL = 0.02
TARGET_START_S = 3.0
TARGET_RSS_MB = 150.0
VALIDATIONS = 200


class Server:
    """One foreground `onestack up` on STATE."""

    def __init__(self, state: Path, config: Path, log: Path):
        self.state, self.log = state, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**clean_env(os.environ), "ONESTACK_STATE_DIR": str(state),
                    "ONESTACK_SERVER_PORT": str(self.port), "ONESTACK_CONFIG": str(config)}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> float:
        """Seconds from spawning the process until all APIs answer."""
        with open(self.log, "ab") as log, httpx.Client(timeout=2) as client:
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(
                [str(BIN / "onestack"), "up"], env=self.env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            while True:
                if self._answering(client):
                    return time.perf_counter() - t0
                if self.proc.poll() is not None:
                    raise RuntimeError(f"onestack up exited with {self.proc.returncode}:\n"
                                       + self.log.read_text(errors="replace")[-3000:])
                if time.perf_counter() - t0 > timeout:
                    raise RuntimeError(f"no answer within {timeout:.0f}s:\n"
                                       + self.log.read_text(errors="replace")[-3000:])
                time.sleep(POLL)

    def _answering(self, client: httpx.Client) -> bool:
        try:
            r = client.get(self.url + "/")
            if r.status_code != 200:
                return False
            for svc in r.json().get("services", []):
                if client.get(self.url + svc["path"]).status_code >= 500:
                    return False
            return True
        except (httpx.HTTPError, ValueError):
            return False

    def stop(self) -> float:
        """SIGTERM and wait; seconds until it exited."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        t0 = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            print(f"  pid {self.proc.pid} ignored SIGTERM for 20 s; killing it", flush=True)
            self.proc.kill()
            self.proc.wait()
        return time.perf_counter() - t0

    def rss_mb(self, key: str = "VmRSS") -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # kB
        raise RuntimeError(f"no {key} in /proc/{self.proc.pid}/status")


def wall(cmd: list[str], n: int = 3) -> float:
    """Median seconds to run CMD to completion."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=clean_env(os.environ))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def validate_tokens(server: Server, n: int) -> float:
    """Issue admin and demo tokens, validate the demo token N times; median ms."""
    creds = tomllib.loads((server.state / "credentials.toml").read_text())

    def auth(user: str) -> dict:
        return {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"name": "Default"}, "password": creds[user]["password"]}}},
            "scope": {"project": {"name": creds[user]["project"], "domain": {"name": "Default"}}},
        }}

    with httpx.Client(base_url=server.url + "/identity/v3", timeout=30) as c:
        tokens = {}
        for user in ("admin", "demo"):
            r = c.post("/auth/tokens", json=auth(user))
            if r.status_code != 201:
                raise RuntimeError(f"{user} token: {r.status_code} {r.text[:300]}")
            tokens[user] = r.headers["X-Subject-Token"]
        headers = {"X-Auth-Token": tokens["admin"], "X-Subject-Token": tokens["demo"]}
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            r = c.get("/auth/tokens", headers=headers)
            times.append(time.perf_counter() - t0)
            if r.status_code != 200:
                raise RuntimeError(f"validation: {r.status_code} {r.text[:300]}")
    return statistics.median(times) * 1000


def main() -> int:
    stop_on_sigterm()
    root = Path(tempfile.mkdtemp(prefix="onestack-bench-startup-"))
    config = root / "empty.toml"
    config.write_text("")
    servers: list[Server] = []
    py = str(BIN / "python")
    try:
        print(f"{BIN / 'onestack'} up (foreground, default config), state under {root}",
              flush=True)
        bare = wall([py, "-c", "pass"])
        cli = wall([str(BIN / "onestack"), "version"])
        imp = wall([py, "-c", "import onestack.app, onestack.services as s; s.load()"])
        print(f"for reference: python start-up {bare * 1000:.0f} ms, `onestack version` "
              f"{cli * 1000:.0f} ms, importing the app {imp * 1000:.0f} ms (each a whole process)",
              flush=True)
        fresh, restart, stops = [], [], []
        for i in range(RUNS):
            state = root / f"state-{i}"
            s = Server(state, config, root / f"log-{i}.txt")
            servers.append(s)
            fresh.append(s.start())
            stops.append(s.stop())
            s = Server(state, config, root / f"log-{i}.txt")
            servers.append(s)
            restart.append(s.start())
            print(f"  run {i + 1}: fresh start {fresh[-1]:.2f} s, restart {restart[-1]:.2f} s",
                  flush=True)
            if i < RUNS - 1:
                stops.append(s.stop())

        # memory: the last restarted process, still running
        time.sleep(2)
        idle = s.rss_mb()
        val_ms = validate_tokens(s, VALIDATIONS)
        busy = s.rss_mb()
        peak = s.rss_mb("VmHWM")
        stops.append(s.stop())

        med_fresh, med_restart = statistics.median(fresh), statistics.median(restart)
        print()
        print(f"start-up, fresh state dir (bootstrap): median {med_fresh:.2f} s "
              f"(min {min(fresh):.2f}, max {max(fresh):.2f}, n={RUNS})")
        print(f"start-up, existing state dir (restart): median {med_restart:.2f} s "
              f"(min {min(restart):.2f}, max {max(restart):.2f}, n={RUNS})")
        print(f"shutdown after SIGTERM: median {statistics.median(stops):.2f} s")
        print(f"memory (VmRSS): idle {idle:.0f} MB; after {VALIDATIONS} token validations "
              f"{busy:.0f} MB (median validation {val_ms:.1f} ms); peak (VmHWM) {peak:.0f} MB")
        print()
        print("targets:")
        for name, v in (("fresh start", med_fresh), ("restart", med_restart)):
            ok = "met" if v < TARGET_START_S else "NOT met"
            print(f"  {name} under {TARGET_START_S:.0f} s: {v:.2f} s ({ok})")
        ok = "met" if max(idle, busy) < TARGET_RSS_MB else "NOT met"
        print(f"  RSS under {TARGET_RSS_MB:.0f} MB: {max(idle, busy):.0f} MB ({ok})", flush=True)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        for srv in servers:
            srv.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
