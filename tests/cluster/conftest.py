"""A real multi-node cloud on this machine for the tests of this folder: `onestack
cluster up` (a controller with RabbitMQ and PostgreSQL, compute+network nodes c1 and
c2, storage node s1, each in namespaces of its own), built once per test run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.cloud import BIN, Cloud, free_port, wait_for
from tests.requirements import missing

MARKS = [pytest.mark.e2e, pytest.mark.root, pytest.mark.netns, pytest.mark.rabbitmq,
         pytest.mark.postgres, pytest.mark.timeout(900)]


class Cluster(Cloud):
    """The cluster, driven like a cloud: its base config names the controller's state dir,
    so `onestack openrc` and the CLI find the cluster's controller."""

    def __init__(self):
        root = Path(tempfile.mkdtemp(prefix="onestack-test-cluster-"))
        self.root = root
        self.name = "cluster"
        self.state = root / "state"
        self.port = free_port()
        self.config = root / "base.toml"
        # short heartbeats so that a dead node is seen in seconds, not minutes
        self.config.write_text(f"""[state]
dir = "{self.state}"
[server]
port = {self.port}
[identity]
bcrypt_rounds = 4
[compute]
heartbeat_interval = 3
service_down_time = 15
build_timeout = 120
[network]
agent_report_interval = 5
""")
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ONESTACK_"))},
                    "ONESTACK_CONFIG": str(self.config)}

    @property
    def nodes_dir(self) -> Path:
        return self.root / "state-cluster"

    def start(self) -> Cluster:
        r = self.onestack("cluster", "up", check=False, timeout=900)
        if r.returncode != 0:
            raise RuntimeError(f"onestack cluster up failed: {r.stdout}{r.stderr}")
        self.url = self.openrc()["OS_AUTH_URL"].rsplit("/identity", 1)[0]
        return self

    def stop(self) -> None:
        self.onestack("cluster", "down", "--purge", check=False, timeout=600)
        shutil.rmtree(self.root, ignore_errors=True)

    def on(self, node: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run argv on a node (its namespaces)."""
        return subprocess.run([str(BIN / "onestack"), "netns", "exec", node, "--", *argv], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def node_pid(self, node: str) -> int:
        return int((self.nodes_dir / node / "state" / "onestack.pid").read_text())

    def kill_node(self, node: str) -> None:
        """The node's agents die at once (a crashed machine, as far as the cloud sees)."""
        pid = self.node_pid(node)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not os.path.exists(f"/proc/{pid}") or "Z" in _state(pid), 15, f"{node} to die")

    def restart_node(self, node: str) -> None:
        cfg = self.nodes_dir / node / "state" / "node.toml"
        r = self.on(node, str(BIN / "onestack"), "node", "run", "--detach", "--config", str(cfg), timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "Z"


@pytest.fixture(scope="package")  # (torn down when tests/cluster is done, not at the session's end)
def cluster():
    if os.geteuid() != 0:
        missing("a cluster's nodes are namespaces: needs root")
    for tool in ("virsh", "libvirtd", "qemu-system-x86_64", "nsenter", "unshare"):
        if not shutil.which(tool):
            missing(f"{tool} missing (scripts/install.sh)")
    c = Cluster()
    try:
        c.start()
        c.onestack("image", "register", "tiny", timeout=600)
        # the admin places demo's guests on chosen nodes (nova:HOST) with the admin role in demo
        c.openstack("role", "add", "--project", "demo", "--user", "admin", "admin")
        yield c
    finally:
        c.stop()
