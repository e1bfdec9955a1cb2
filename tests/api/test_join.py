"""A controller and a node that joined it, on this machine's loopback: the node runs
its agents in a process of its own, reaches the conductors over RabbitMQ and the APIs
as its own node user (never the admin), and shows in the service lists. Simulated
compute (the fake driver); the real multi-node cloud is tests/cluster/."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.cloud import BIN, Cloud, RabbitMQ, wait_for
from tests.requirements import missing

pytestmark = [pytest.mark.rabbitmq]


@pytest.fixture(scope="module")
def broker():
    try:
        b = RabbitMQ().start()
    except FileNotFoundError as e:
        missing(str(e))
    yield b
    b.close()


@pytest.fixture(scope="module")
def controller(broker):
    c = Cloud("controller", extra_env={"ONESTACK_BUS_BACKEND": "amqp", "ONESTACK_BUS_URL": broker.url,
                                       "ONESTACK_NODE_ROLES": "controller"})
    c.start()
    yield c
    c.stop()


class Node:
    def __init__(self, controller: Cloud, name: str):
        self.controller, self.name = controller, name
        self.state = Path(tempfile.mkdtemp(prefix=f"onestack-test-node-{name}-"))
        self.base = self.state / "base.toml"
        self.base.write_text('[compute]\ndriver = "fake"\n[network]\nagent = false\n')
        self.env = {k: v for k, v in controller.env.items() if not k.startswith("ONESTACK_")}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run([str(BIN / "onestack"), *args], env=self.env, capture_output=True, text=True,
                           timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"onestack {' '.join(args)}: {r.stdout}{r.stderr}")
        return r

    def join(self, token: str, role: str = "compute") -> subprocess.CompletedProcess:
        return self.run("join", self.controller.url, "--token", token, "--role", role, "--state-dir",
                        str(self.state / "state"), "--config", str(self.base), "--detach")

    def down(self) -> None:
        cfg = self.state / "state" / "node.toml"
        if cfg.exists():
            self.run("down", "--config", str(cfg), check=False)
        shutil.rmtree(self.state, ignore_errors=True)


@pytest.fixture(scope="module")
def node(controller):
    token = controller.onestack("node", "add", "n1", "--role", "compute").stdout.strip()
    n = Node(controller, "n1")
    n.join(token)
    yield n
    n.down()


def test_controller_runs_no_agents(controller):
    """A controller without the compute role has schedulers and conductors, no nova-compute."""
    rows = controller.os_json("compute", "service", "list")
    assert {r["Binary"] for r in rows if r["Host"]} >= {"nova-scheduler", "nova-conductor"}
    assert not [r for r in rows if r["Binary"] == "nova-compute"], rows


def test_node_registers_and_runs_servers(controller, node, tmp_path):
    def registered():
        rows = controller.os_json("compute", "service", "list", "--service", "nova-compute")
        return rows if [r for r in rows if r["Host"] == "n1" and r["State"] == "up"] else None

    wait_for(registered, 60, "node n1's nova-compute up")
    hyps = controller.os_json("hypervisor", "list")
    assert [h for h in hyps if h["Hypervisor Hostname"] == "n1"], hyps
    disk = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-f", "qcow2", str(disk), "16M"], check=True, capture_output=True)
    image = controller.os_json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                               "--public", "--file", str(disk), "join-image")["id"]
    made = controller.os_json("server", "create", "--flavor", "m1.nano", "--image", image, "--network", "private",
                              "--wait", "on-n1", user="demo")
    shown = controller.os_json("server", "show", made["id"])
    assert shown["OS-EXT-SRV-ATTR:host"] == "n1" and shown["status"] == "ACTIVE"
    controller.openstack("server", "delete", "--wait", made["id"], user="demo")


def test_node_acts_as_its_own_user(node):
    """The node holds its own user's credentials, never the admin's."""
    creds = (node.state / "state" / "credentials.toml").read_text()
    assert 'user = "node-n1"' in creds and "admin" not in creds.replace("[", "").split("user")[0]
    assert oct((node.state / "state" / "credentials.toml").stat().st_mode & 0o777) == "0o600"
    assert oct((node.state / "state" / "node.toml").stat().st_mode & 0o777) == "0o600"


def test_node_list_and_bad_tokens(controller, node):
    listed = controller.onestack("node", "list", "--json").stdout
    assert '"n1"' in listed
    bad = node.run("join", controller.url, "--token", "nonsense", "--state-dir", str(node.state / "x"),
                   check=False)
    assert bad.returncode != 0 and "not an onestack join token" in bad.stdout + bad.stderr
    r = controller.onestack("node", "add", "Bad_Name", check=False)
    assert r.returncode != 0 and "node name" in r.stdout + r.stderr


def test_removed_node_is_refused(controller, broker):
    """Removing a node deletes its user: a join with its old token is refused."""
    token = controller.onestack("node", "add", "n2", "--role", "compute").stdout.strip()
    controller.onestack("node", "remove", "n2")
    n = Node(controller, "n2")
    try:
        r = n.join(token) if False else n.run("join", controller.url, "--token", token, "--state-dir",
                                             str(n.state / "state"), "--config", str(n.base), check=False)
        assert r.returncode != 0 and "refused the node's credentials" in r.stdout + r.stderr
        assert not (n.state / "state" / "node.toml").exists()
    finally:
        n.down()


def test_a_node_cannot_run_a_controller(controller):
    env = {**controller.env, "ONESTACK_NODE_ROLES": "compute"}
    r = subprocess.run([str(BIN / "onestack"), "up"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "onestack join" in r.stdout + r.stderr
    assert os.path.exists(controller.state / "onestack.pid")  # (the controller is untouched)
