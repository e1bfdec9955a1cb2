"""Block Storage: time to `available` and time until a guest sees a hot-plugged volume.

Against a cloud it starts (file backend, raw sparse volumes):
- 1 GiB volumes created empty, from the tiny image and as clones of a volume (the
  source holds the image): time from the create request to `available`, median of
  `--runs` (3), polled every 50 ms over the Block Storage API;
- with libvirt (root, QEMU TCG): a tiny guest (no network, config drive) whose
  `user_data` watches for /dev/vdb; time from the attach request
  (`os-volume_attachments`) to the guest's line on the serial console (polled every
  200 ms through `os-getConsoleOutput`), median of `--runs` attach/detach rounds;
- backups into the object store of a 1 GiB volume holding `--backup-mib` (256) MiB of
  random data: full backup, an incremental one after 8 MiB changed, and a restore of
  each into a new volume (time to `available`);
- and, on the first round, sequential direct-I/O write and read inside the guest
  (busybox dd, 1 MiB blocks, `--mib` MiB, default 256) to the volume and to the root disk (at an
  offset past the guest's boot partition), with the ratio.

Prints figures; never fails on time.

    .venv/bin/python bench/volume.py [--runs 3] [--mib 64] [--backup-mib 256] [--no-guest]
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import statistics
import time

import httpx
from _cloud import Cloud, running, stop_on_sigterm

IMAGE = "onestack-tiny-x86_64"
GUEST = """#!/bin/sh
nap() {{ sleep 0.1 2>/dev/null || sleep 1; }}
up() {{ cut -d' ' -f1 /proc/uptime; }}
ddt() {{ t0=$(up); dd "$@" bs=1M count={mib} 2>/dev/null || {{ echo failed; return; }}; t1=$(up); awk -v a=$t0 -v b=$t1 'BEGIN{{print b-a}}'; }}
(
n=0
while [ $n -lt {rounds} ]; do
  i=0
  while [ ! -b /dev/vdb ]; do i=$((i+1)); [ $i -gt 6000 ] && exit 0; nap; done
  n=$((n+1))
  echo "volbench: seen $n"
  if [ $n -eq 1 ]; then
    echo "volbench: io vdb write $(ddt if=/dev/zero of=/dev/vdb oflag=direct conv=notrunc)"
    echo "volbench: io vdb read $(ddt if=/dev/vdb of=/dev/null iflag=direct)"
    echo "volbench: io vda write $(ddt if=/dev/zero of=/dev/vda oflag=direct conv=notrunc seek=256)"
    echo "volbench: io vda read $(ddt if=/dev/vda of=/dev/null iflag=direct skip=256)"
  fi
  echo "volbench: done $n"
  i=0
  while [ -b /dev/vdb ]; do i=$((i+1)); [ $i -gt 6000 ] && exit 0; nap; done
done
) </dev/null &
"""


class Api:
    def __init__(self, cloud: Cloud):
        token = cloud.openstack("token", "issue", "-f", "value", "-c", "id").stdout.strip()
        self.http = httpx.Client(base_url=cloud.url, timeout=60, headers={"X-Auth-Token": token})

    def volume(self, method: str, path: str, body=None) -> dict:
        r = self.http.request(method, f"/volume/v3{path}", json=body,
                              headers={"OpenStack-API-Version": "volume 3.44"})
        r.raise_for_status()
        return r.json() if r.content else {}

    def compute(self, method: str, path: str, body=None) -> dict:
        r = self.http.request(method, f"/compute/v2.1{path}", json=body,
                              headers={"OpenStack-API-Version": "compute 2.79"})
        r.raise_for_status()
        return r.json() if r.content else {}

    def wait_volume(self, vid: str, status: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while True:
            now = self.volume("GET", f"/volumes/{vid}")["volume"]["status"]
            if now == status:
                return
            if now.startswith("error") or time.monotonic() > deadline:
                raise RuntimeError(f"volume {vid} is {now}, not {status}")
            time.sleep(0.05)

    def wait_backup(self, bid: str, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while True:
            now = self.volume("GET", f"/backups/{bid}")["backup"]["status"]
            if now == "available":
                return
            if now.startswith("error") or time.monotonic() > deadline:
                raise RuntimeError(f"backup {bid} is {now}")
            time.sleep(0.05)

    def timed_create(self, body: dict) -> tuple[str, float]:
        start = time.monotonic()
        vid = self.volume("POST", "/volumes", {"volume": body})["volume"]["id"]
        self.wait_volume(vid, "available")
        return vid, time.monotonic() - start

    def console(self, sid: str) -> str:
        r = self.http.post(f"/compute/v2.1/servers/{sid}/action", json={"os-getConsoleOutput": {}})
        if r.status_code == 409:  # still building
            return ""
        r.raise_for_status()
        return r.json()["output"]

    def wait_console(self, sid: str, pattern: str, timeout: float = 240, step: float = 0.2) -> re.Match:
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.console(sid))
            if m:
                return m
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {pattern!r} on the console of {sid}")
            time.sleep(step)


def med(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s (runs: {', '.join(f'{v:.2f}' for v in values)})"


def backup_figures(api: Api, cloud: Cloud, vid: str, mib: int) -> None:
    """Full and incremental backup of a volume with ``mib`` MiB of random data, and restores."""
    path = cloud.state / "volumes" / f"volume-{vid}"
    with open(path, "r+b") as f:
        for i in range(mib):
            f.seek((i % 256) * 4 * 1024 * 1024 + (i // 256) * 1024 * 1024)  # 1 MiB in each 4 MiB chunk
            f.write(os.urandom(1024 * 1024))
    figures = {}
    backups = []
    for kind in ("full", "incremental"):
        if kind == "incremental":
            with open(path, "r+b") as f:
                for i in range(8):
                    f.seek(i * 64 * 1024 * 1024)
                    f.write(os.urandom(1024 * 1024))
        start = time.monotonic()
        bid = api.volume("POST", "/backups", {"backup": {"volume_id": vid, "incremental": kind == "incremental"}}
                         )["backup"]["id"]
        api.wait_backup(bid)
        figures[kind] = time.monotonic() - start
        backups.append(bid)
        api.wait_volume(vid, "available")
        shown = api.volume("GET", f"/backups/{bid}")["backup"]
        figures[kind + " objects"] = shown["object_count"]
        start = time.monotonic()
        new = api.volume("POST", f"/backups/{bid}/restore", {"restore": {}})["restore"]["volume_id"]
        api.wait_volume(new, "available", timeout=600)
        figures[kind + " restore"] = time.monotonic() - start
        api.volume("DELETE", f"/volumes/{new}")
    print(f"backup to the object store, 1 GiB volume with {mib} MiB of random data (4 MiB chunks, zlib):")
    for kind in ("full", "incremental"):
        print(f"  {kind:12} backup {figures[kind]:6.2f} s ({figures[kind + ' objects']} objects)"
              f"   restore to a new volume {figures[kind + ' restore']:6.2f} s")
    print(f"  incremental/full backup time: {figures['incremental'] / figures['full']:.2f}")
    for bid in reversed(backups):
        api.volume("DELETE", f"/backups/{bid}")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            r = api.http.get(f"/volume/v3/backups/{bid}", headers={"OpenStack-API-Version": "volume 3.44"})
            if r.status_code == 404:
                break
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mib", type=int, default=256, help="MiB per dd in the guest")
    parser.add_argument("--no-guest", action="store_true", help="skip the figures that need a real guest")
    parser.add_argument("--backup-mib", type=int, default=256, choices=range(1, 1025), metavar="1..1024",
                        help="MiB of data in the backed-up volume")
    args = parser.parse_args()
    stop_on_sigterm()
    guests = (not args.no_guest and os.geteuid() == 0 and shutil.which("virsh")
              and shutil.which("qemu-system-x86_64"))
    cloud = Cloud("benchvol", extra_env={"ONESTACK_COMPUTE_DRIVER": "libvirt" if guests else "fake"})
    with running(cloud):
        cloud.onestack("image", "register", "tiny", timeout=600)
        image = cloud.os_json("image", "show", IMAGE)["id"]
        api = Api(cloud)
        made: list[str] = []
        empty, from_image, clones = [], [], []
        for _ in range(args.runs):
            vid, t = api.timed_create({"size": 1})
            made.append(vid)
            empty.append(t)
        for _ in range(args.runs):
            vid, t = api.timed_create({"size": 1, "imageRef": image})
            made.append(vid)
            from_image.append(t)
        source = made[-1]
        for _ in range(args.runs):
            vid, t = api.timed_create({"size": 1, "source_volid": source})
            made.append(vid)
            clones.append(t)
        print("volume create -> available (1 GiB, file backend, raw):")
        print(f"  empty            {med(empty)}")
        print(f"  from tiny image  {med(from_image)}")
        print(f"  clone            {med(clones)}")
        backup_figures(api, cloud, made[0], args.backup_mib)
        if not guests:
            print("attach to a guest: skipped (--no-guest, or no root and libvirt)")
            return
        script = GUEST.format(mib=args.mib, rounds=args.runs)
        sid = api.compute("POST", "/servers", {"server": {
            "name": "volbench", "flavorRef": "42", "imageRef": image, "networks": "none", "config_drive": True,
            "user_data": base64.b64encode(script.encode()).decode()}})["server"]["id"]
        api.wait_console(sid, r"onestack-tiny: ready\.")
        vol = made[0]
        seen, io = [], {}
        for n in range(1, args.runs + 1):
            start = time.monotonic()
            api.compute("POST", f"/servers/{sid}/os-volume_attachments", {"volumeAttachment": {"volumeId": vol}})
            api.wait_console(sid, rf"volbench: seen {n}\b", timeout=120, step=0.05)
            seen.append(time.monotonic() - start)
            text = api.wait_console(sid, rf"volbench: done {n}\b", timeout=600).string
            if n == 1:
                for m in re.finditer(r"volbench: io (vd[ab]) (write|read) ([\d.]+)", text):
                    io[(m.group(1), m.group(2))] = float(m.group(3))
            api.wait_volume(vol, "in-use")
            api.compute("DELETE", f"/servers/{sid}/os-volume_attachments/{vol}")
            api.wait_volume(vol, "available", timeout=120)
        print("attach request -> the guest sees /dev/vdb (TCG, user_data polling every 0.1 s):")
        print(f"  {med(seen)}")
        if io:
            print(f"sequential direct I/O in the guest, {args.mib} MiB in 1 MiB blocks (busybox dd; TCG):")
            for what in ("write", "read"):
                vdb, vda = io.get(("vdb", what)), io.get(("vda", what))
                if not vdb or not vda:
                    print(f"  {what}: not measured")
                    continue
                print(f"  {what:5}  volume {args.mib / vdb:7.1f} MiB/s   root disk {args.mib / vda:7.1f} MiB/s"
                      f"   volume/root {vda / vdb:.2f}")
        else:
            print("sequential I/O: the guest printed no figures")
        api.compute("DELETE", f"/servers/{sid}")


if __name__ == "__main__":
    main()
