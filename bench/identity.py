"""Identity API latency: token issue, token validation, project list.

Starts its own cloud (bcrypt at the default 12 rounds) unless --url is given,
drives it with plain HTTP (one persistent httpx client, sequential requests)
and prints median / p90 latency, sequential throughput and the ratio against
real Keystone measured on the same machine class. Never fails on time.

    .venv/bin/python bench/identity.py            # own cloud
    .venv/bin/python bench/identity.py -n 0.2     # quicker (counts x 0.2)
    .venv/bin/python bench/identity.py --url http://127.0.0.1:8774 \\
        --admin-password ... --demo-password ...
"""

from __future__ import annotations

import argparse
import sys
import time

import bcrypt
import httpx
from _cloud import Cloud, running, stop_on_sigterm, summary, vs

# Keystone on this machine class (from the issue), median ms
KEYSTONE = {"issue": 329.0, "validation": 63.0, "project list": 51.0}
TARGET_MS = {"validation": 5.0, "project list": 5.0}
ROUNDS = 12


def password_auth(user: str, password: str, project: str) -> dict:
    return {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"name": "Default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"name": "Default"}}},
    }}


def check(r: httpx.Response, expected: int, what: str) -> httpx.Response:
    if r.status_code != expected:
        raise RuntimeError(f"{what}: {r.request.method} {r.request.url} answered "
                           f"{r.status_code} (expected {expected}): {r.text[:500]}")
    return r


def timed(client: httpx.Client, n: int, warmup: int, what: str, expected: int,
          method: str, path: str, **kw) -> tuple[list[float], float]:
    """Latencies of N sequential requests (after WARMUP), and the wall time of the N."""
    for _ in range(warmup):
        check(client.request(method, path, **kw), expected, what)
    times = []
    wall0 = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.request(method, path, **kw)
        times.append(time.perf_counter() - t0)
        check(r, expected, what)
    return times, time.perf_counter() - wall0


def report(name: str, times: list[float], wall: float) -> float:
    med, p90 = summary(times)
    rps = len(times) / wall if wall > 0 else float("inf")
    ref = KEYSTONE[name]
    print(f"{name}: median {med:.1f} ms, p90 {p90:.1f} ms, {rps:.0f} req/s "
          f"(n={len(times)}) — {vs(med, ref)} than Keystone ({ref:.0f} ms)", flush=True)
    return med


def bcrypt_check_ms(rounds: int = ROUNDS, n: int = 3) -> float:
    hashed = bcrypt.hashpw(b"bench-password", bcrypt.gensalt(rounds))
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        bcrypt.checkpw(b"bench-password", hashed)
        times.append(time.perf_counter() - t0)
    return summary(times)[0]


def run(url: str, admin_pw: str, demo_pw: str, scale: float) -> None:
    n_issue = max(1, round(30 * scale))
    n_read = max(1, round(500 * scale))
    warmup = max(1, round(20 * min(scale, 1)))
    base = url.rstrip("/")
    for suffix in ("/identity/v3", "/identity"):
        base = base.removesuffix(suffix)
    ident = f"{base}/identity/v3"
    with httpx.Client(base_url=ident, timeout=30,
                      headers={"Accept": "application/json"}) as client:
        tokens = "/auth/tokens"
        admin_body = password_auth("admin", admin_pw, "admin")
        admin = check(client.post(tokens, json=admin_body), 201, "admin token").headers[
            "X-Subject-Token"]
        demo = check(client.post(tokens, json=password_auth("demo", demo_pw, "demo")), 201,
                     "demo token").headers["X-Subject-Token"]

        print(f"onestack identity at {ident}; sequential requests, one keep-alive client",
              flush=True)
        times, wall = timed(client, n_issue, 1, "token issue", 201, "POST", tokens,
                            json=admin_body)
        issue_ms = report("issue", times, wall)
        times, wall = timed(client, n_read, warmup, "token validation", 200, "GET", tokens,
                            headers={"X-Auth-Token": admin, "X-Subject-Token": demo})
        val_ms = report("validation", times, wall)
        times, wall = timed(client, n_read, warmup, "project list", 200, "GET", "/projects",
                            headers={"X-Auth-Token": admin})
        list_ms = report("project list", times, wall)

    bc = bcrypt_check_ms()
    print()
    print("targets:")
    for name, ours in (("validation", val_ms), ("project list", list_ms)):
        ok = "met" if ours < TARGET_MS[name] else "NOT met"
        print(f"  {name} median < {TARGET_MS[name]:.0f} ms: {ours:.1f} ms ({ok})")
    line = (f"  issue dominated by bcrypt: one bcrypt check at {ROUNDS} rounds here takes "
            f"{bc:.1f} ms; issue median {issue_ms:.1f} ms")
    if issue_ms >= bc:
        line += f", i.e. {issue_ms - bc:.1f} ms ({(issue_ms - bc) / issue_ms:.0%}) besides bcrypt"
    else:
        line += f" (faster than one check: this cloud hashes with fewer than {ROUNDS} rounds)"
    print(line, flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", help="Base URL of a running onestack (default: start one).")
    p.add_argument("--admin-password", help="admin's password (with --url).")
    p.add_argument("--demo-password", help="demo's password (with --url).")
    p.add_argument("-n", type=float, default=1.0, metavar="SCALE",
                   help="Multiply the request counts (30 issues, 500 reads) by SCALE.")
    args = p.parse_args()
    stop_on_sigterm()
    if args.url:
        if not (args.admin_password and args.demo_password):
            p.error("--url needs --admin-password and --demo-password")
        run(args.url, args.admin_password, args.demo_password, args.n)
        return 0
    cloud = Cloud("bench-identity", bcrypt_rounds=ROUNDS)
    print(f"starting onestack (bcrypt {ROUNDS} rounds) in {cloud.state} ...", flush=True)
    try:
        with running(cloud):
            run(cloud.url, cloud.password("admin"), cloud.password("demo"), args.n)
    except KeyboardInterrupt:
        print("interrupted; cloud stopped and purged", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
