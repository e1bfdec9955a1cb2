"""Tiny guest image: time from starting QEMU (TCG) to the guest's ready line.

Boots a throw-away overlay of the cached tiny image (built first if needed)
under plain QEMU with user-mode networking (restrict=on: the guest reaches
nothing but QEMU's own DHCP), several times, and prints the median time to
"onestack-tiny: ready." on the serial console and the guest's own uptime then.
Target: under 5 s. Never fails on time.

    .venv/bin/python bench/tiny_boot.py [--runs 5] [--kvm]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from guest import ensure_tiny  # noqa: E402

READY = re.compile(r"onestack-tiny: ready\..*uptime=([\d.]+)s")


def boot_once(image: Path, tmp: Path, accel: str, timeout: float = 120) -> tuple[float, float]:
    overlay = tmp / "overlay.qcow2"
    overlay.unlink(missing_ok=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(image), str(overlay)],
                   check=True)
    start = time.monotonic()
    proc = subprocess.Popen(
        ["qemu-system-x86_64", "-machine", f"accel={accel}", "-m", "256", "-nographic", "-nodefaults",
         "-serial", "stdio", "-drive", f"file={overlay},if=virtio",
         "-netdev", "user,id=n0,restrict=on", "-device", "virtio-net-pci,netdev=n0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    try:
        deadline = start + timeout
        for raw in proc.stdout:
            match = READY.search(raw.decode(errors="replace"))
            if match:
                return time.monotonic() - start, float(match.group(1))
            if time.monotonic() > deadline:
                break
        raise RuntimeError("the guest printed no ready line")
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--kvm", action="store_true", help="use KVM (only where it really works)")
    args = parser.parse_args()
    image = ensure_tiny()
    accel = "kvm" if args.kvm else "tcg"
    print(f"tiny image boot to ready, QEMU {accel}, {args.runs} runs: {image}")
    walls, uptimes = [], []
    with tempfile.TemporaryDirectory(prefix="bench-tiny-") as tmp:
        for _ in range(args.runs):
            wall, uptime = boot_once(image, Path(tmp), accel)
            walls.append(wall)
            uptimes.append(uptime)
    walls.sort()
    uptimes.sort()
    print(f"ready after {walls[len(walls) // 2]:.2f} s median from QEMU start (min {walls[0]:.2f}, "
          f"max {walls[-1]:.2f}); guest uptime at ready {uptimes[len(uptimes) // 2]:.2f} s; target < 5 s")


if __name__ == "__main__":
    main()
