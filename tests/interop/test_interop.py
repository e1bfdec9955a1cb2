"""`make test` runs the interop guideline's Tempest tests of the services this build has."""

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

HARNESS = Path(__file__).with_name("run.py")

# capabilities of the guideline, by the catalog type of the service they test
CAPS_BY_SERVICE = {
    "identity": "identity-v3-*",
    "image": "images-v2-*",
    "compute": "compute-*",
    "network": "networks-*",
    "block-storage": "volumes-*",
    "object-store": "objectstore-*",
}


def _public_image(cloud, tmp_path) -> None:
    """Tempest boots servers of a public image: make a small one if the cloud has none."""
    listed = json.loads(cloud.openstack("image", "list", "--public", "--status", "active", "-f", "json").stdout)
    if listed:
        return
    path = tmp_path / "interop.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    cloud.openstack("image", "create", "--public", "--disk-format", "qcow2", "--container-format", "bare",
                    "--file", str(path), "interop-image")


def test_interop_guideline_for_implemented_services(cloud, tmp_path):
    with urllib.request.urlopen(cloud.url + "/") as resp:
        types = [s["type"] for s in json.load(resp)["services"]]
    if "compute" in types:
        _public_image(cloud, tmp_path)
    caps = ",".join(CAPS_BY_SERVICE[t] for t in types if t in CAPS_BY_SERVICE)
    env = {**cloud.env, **cloud.openrc("admin")}
    r = subprocess.run(
        [sys.executable, str(HARNESS), "--use-env", "--caps", caps, "--timeout", "1500"],
        env=env, capture_output=True, text=True, timeout=1800,
    )
    print(r.stdout[-5000:], r.stderr[-3000:])
    last = r.stdout.strip().splitlines()[-1]
    assert r.returncode == 0, f"interop failures:\n{r.stdout[-5000:]}"
    assert last.endswith("0 failed") or ", 0 failed" in last, last
