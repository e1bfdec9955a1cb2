"""The dashboard at scale (issue 14): server time of its pages and their API calls.

Starts a cloud on simulated hosts, boots one server as admin and seeds --servers - 1 more
(a DIRECT DATABASE SEED of copies of its row, as bench/scale.py does), logs in to the
dashboard as admin and prints, for the instance list and the overview:
  - server time (median and p90 of --rounds requests: the dashboard's own time, its calls
    to the APIs included); target for the instances page at 1,000 servers: < 300 ms;
  - how many API calls one page makes (counted in the cloud's request log), against the
    panels it shows: a page's calls do not grow with the number of servers (no N+1).
With --browser, also the overview's time to interactive in headless chromium (Playwright):
navigation start to DOMContentLoaded, median of --rounds loads.

    .venv/bin/python bench/dashboard.py [--servers 1000] [--rounds 20] [--browser]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from _cloud import Cloud, running, stop_on_sigterm, summary
from scale import all_servers, boot, seed, token, wait_settled

from tests.dashboard import Dash


def api_calls(cloud, user_id: str, fetch) -> int:
    """The API requests (not the dashboard's own) the user's token made while ``fetch`` ran."""
    log = cloud.state / "onestack.log"
    before = log.stat().st_size
    fetch()
    time.sleep(0.5)  # (the log line of the last call is written as it ends)
    with log.open() as f:
        f.seek(before)
        lines = [ln for ln in f if f"user={user_id}" in ln and " -> " in ln]
    return sum(1 for ln in lines if not re.search(r" (GET|POST) /dashboard", ln))


def timed(fetch, rounds: int) -> tuple[float, float]:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        r = fetch()
        times.append(time.perf_counter() - t)
        assert r.status_code == 200, r.status_code
    return summary(times)


def browser_tti(cloud, rounds: int) -> tuple[float, float]:
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        page = b.new_page()
        page.goto(cloud.url + "/dashboard/login")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", cloud.password("admin"))
        page.click("button:text('Log in')")
        page.wait_for_selector(".gauge")
        for _ in range(rounds):
            page.goto(cloud.url + "/dashboard/project/")
            t = page.evaluate("() => { const n = performance.getEntriesByType('navigation')[0];"
                              " return n.domContentLoadedEventEnd - n.startTime; }")
            times.append(t / 1000)
        b.close()
    return summary(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--servers", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--browser", action="store_true", help="also the overview's time to interactive in chromium")
    args = ap.parse_args()
    stop_on_sigterm()
    cloud = Cloud("bench-dashboard")
    with running(cloud):
        tok, project = token(cloud)
        cloud.openstack("quota", "set", "--instances", "-1", "--cores", "-1", "--ram", "-1", project)
        img = Path(tempfile.mkdtemp()) / "d.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "16M"], check=True)
        image = cloud.os_json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                              "--public", "--file", str(img), "bench-dashboard")["id"]
        api = cloud.url + "/compute/v2.1"
        with httpx.Client(headers={"X-Auth-Token": tok, "OpenStack-API-Version": "compute 2.79"}, timeout=120) as c:
            boot(c, api, image, 1, "booted")
            servers = wait_settled(c, api, 1, 120)
            if args.servers > 1:
                hosts = sorted({s.get("OS-EXT-SRV-ATTR:host") or "" for s in servers})
                seed(cloud, servers[0]["id"], args.servers - 1, hosts)
            n = len(all_servers(c, api, detail=False))
        print(f"{n} servers in the admin project ({args.servers - 1} seeded directly in the database)")
        admin_id = cloud.os_json("user", "show", "admin")["id"]
        with Dash(cloud) as d:
            d.login("admin", cloud.password("admin"))
            for name, path, panels in (("instances", "/dashboard/project/instances", 1),
                                       ("instance rows (refresh)", "/dashboard/project/instances/rows", 1),
                                       ("overview", "/dashboard/project/", 1)):
                calls = api_calls(cloud, admin_id, lambda p=path: d.get(p))
                med, p90 = timed(lambda p=path: d.get(p), args.rounds)
                print(f"{name:26s} server time median {med:6.1f} ms, p90 {p90:6.1f} ms; "
                      f"{calls} API calls for {panels} panel(s)")
        if args.browser:
            med, p90 = browser_tti(cloud, args.rounds)
            print(f"overview time to interactive (chromium) median {med:6.1f} ms, p90 {p90:6.1f} ms")


if __name__ == "__main__":
    main()
