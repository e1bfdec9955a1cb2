"""Across the nodes of a real multi-node cloud (tests/cluster/conftest.py): services
register from their own nodes, guests on two compute nodes share a tenant network over
VXLAN on the management network, the router and floating IPs on a network node reach
a guest on either node from the external namespace, a volume of the storage node is
attached to a guest of a compute node (a dead compute node: tests/cluster/test_cluster_moves.py).
Every wait is bounded; all traffic stays in the cluster's namespaces."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.cloud import BIN, wait_for
from tests.cluster.conftest import MARKS
from tests.e2e.guests import PROBE, SSH

pytestmark = MARKS

READY = re.compile(r"onestack-tiny: ready\. hostname=(\S+) addresses: eth0=([\d.]+)/")
DEMO = {"user": "demo"}


def _in_public(cluster, *argv: str, timeout: float = 40):
    return cluster.on("public", *argv, timeout=timeout)


def _ssh(cluster, host: str, key: str, cmd: str):
    return _in_public(cluster, sys.executable, "-c", SSH, host, key, cmd)


def _ready(cluster, server: str, timeout: float = 300) -> re.Match:
    def check():  # (409 while the server builds)
        return READY.search(cluster.openstack("console", "log", "show", server, check=False, **DEMO).stdout)
    return wait_for(check, timeout, f"the ready line of {server}", step=1)


def _boot(cluster, name: str, host: str, *extra: str) -> str:
    """As admin in the demo project: a tiny guest forced onto ``host`` (nova:HOST)."""
    env = {**cluster.openrc("admin"), "OS_PROJECT_NAME": "demo"}
    return cluster.os_json("server", "create", "--flavor", "m1.nano", "--image", "onestack-tiny-x86_64",
                           "--network", "private", "--availability-zone", f"nova:{host}", *extra, name,
                           env=env)["id"]


def _host_of(cluster, server: str) -> str:
    return cluster.os_json("server", "show", server)["OS-EXT-SRV-ATTR:host"]


def test_every_service_runs_on_its_node(cluster):
    services = {(r["Binary"], r["Host"]): r["State"] for r in cluster.os_json("compute", "service", "list")}
    assert services.get(("nova-compute", "c1")) == services.get(("nova-compute", "c2")) == "up", services
    assert services.get(("nova-scheduler", "ctl")) == "up", services
    hyps = {h["Hypervisor Hostname"]: h for h in cluster.os_json("hypervisor", "list")}
    assert hyps["c1"]["Host IP"] == "10.250.0.11" and hyps["c2"]["Host IP"] == "10.250.0.12", hyps
    agents = {(a["Agent Type"], a["Host"]) for a in cluster.os_json("network", "agent", "list")}
    assert {("L3 agent", "c1"), ("L3 agent", "c2"), ("DHCP agent", "c1"), ("Linux bridge agent", "c2")} <= agents
    volume = {(r["Binary"], r["Host"]): r["State"] for r in cluster.os_json("volume", "service", "list")}
    assert volume.get(("cinder-volume", "s1@filedriver-1")) == "up", volume
    assert volume.get(("cinder-scheduler", "ctl")) == "up", volume
    # the controller runs no agent; the nodes hold no admin password
    assert not [h for (b, h) in services if b == "nova-compute" and h == "ctl"]
    for node in ("c1", "c2", "s1"):
        creds = (cluster.nodes_dir / node / "state" / "credentials.toml").read_text()
        assert cluster.password("admin") not in creds


def test_guests_on_two_nodes_talk_through_vxlan_and_a_floating_ip(cluster, tmp_path):
    key = tmp_path / "k.pem"
    key.write_text(cluster.openstack("keypair", "create", "cluster-key").stdout)  # (the booting user's)
    key.chmod(0o600)
    for rule in (("--proto", "tcp", "--dst-port", "22"), ("--proto", "icmp")):
        cluster.openstack("security", "group", "rule", "create", *rule, "default", **DEMO)
    a = _boot(cluster, "vx-a", "c1", "--key-name", "cluster-key")
    b = _boot(cluster, "vx-b", "c2", "--key-name", "cluster-key")
    assert (_host_of(cluster, a), _host_of(cluster, b)) == ("c1", "c2")
    ready_a, ready_b = _ready(cluster, a), _ready(cluster, b)  # both leased from one DHCP server
    # the router lives on one network node; a guest on each node is reached through it
    for server, ready in ((a, ready_a), (b, ready_b)):
        fip = cluster.os_json("floating", "ip", "create", "public", **DEMO)["floating_ip_address"]
        cluster.openstack("server", "add", "floating", "ip", server, fip, **DEMO)
        wait_for(lambda f=fip: _in_public(cluster, "ping", "-c", "1", "-W", "1", f).returncode == 0, 30,
                 f"ping to {fip}")
        other = (ready_b if server == a else ready_a).group(2)
        out = wait_for(lambda f=fip, o=other: _ssh(cluster, f, str(key), f"hostname; ping -c 1 -W 2 {o} >/dev/null"
                                                    f" && echo peer-ok").stdout, 60, f"SSH to {fip}")
        assert out.split() == [ready.group(1), "peer-ok"], out
    for server in (a, b):
        cluster.openstack("server", "delete", "--wait", server, **DEMO)
    # their taps are gone from their nodes (veths, with an @, are DHCP and router ports)
    for node in ("c1", "c2"):
        links = [x.split()[0] for x in cluster.on(node, "ip", "-br", "link").stdout.splitlines() if x.strip()]
        assert not [x for x in links if x.startswith("tap") and "@" not in x], (node, links)


def test_volume_of_the_storage_node_in_a_guest_of_a_compute_node(cluster, tmp_path):
    """Attached over NBD with TLS across the management network, written by the guest,
    detached, attached again: the guest reads what it wrote."""
    vol = cluster.os_json("volume", "create", "--size", "1", "cluster-vol", **DEMO)["id"]
    wait_for(lambda: cluster.os_json("volume", "show", vol, **DEMO)["status"] == "available", 60, "volume")
    assert cluster.os_json("volume", "show", vol)["os-vol-host-attr:host"].startswith("s1@")
    probe = tmp_path / "probe.sh"
    probe.write_text(PROBE.format(write="cluster"))
    server = _boot(cluster, "vol-guest", "c2", "--user-data", str(probe))
    _ready(cluster, server)

    def console(pattern: str, timeout: float = 120):
        def check():
            return re.search(pattern, cluster.openstack("console", "log", "show", server, **DEMO).stdout)
        return wait_for(check, timeout, f"{pattern!r} on the console", step=1)

    for n in (1, 2):
        cluster.openstack("server", "add", "volume", server, vol, **DEMO)
        wait_for(lambda: cluster.os_json("volume", "show", vol, **DEMO)["status"] == "in-use", 90, "attached")
        seen = console(rf"volprobe: {n} appeared read=\[([a-z0-9-]*)\]")
        assert seen.group(1) == ("" if n == 1 else "cluster-1"), seen.group(0)
        console(rf"volprobe: {n} wrote cluster-{n}")
        if n == 1:
            _nbd_is_tls(cluster, "c2", server)
        cluster.openstack("server", "remove", "volume", server, vol, **DEMO)
        wait_for(lambda: cluster.os_json("volume", "show", vol, **DEMO)["status"] == "available", 120, "detached")
        console(rf"volprobe: {n} gone")
    cluster.openstack("server", "delete", "--wait", server, **DEMO)
    cluster.openstack("volume", "delete", vol, **DEMO)


def _nbd_is_tls(cluster, node: str, server: str) -> None:
    """The guest's volume comes over NBD with TLS: the live domain on ``node`` says so,
    the export daemon on s1 requires client certificates, a plain NBD client (from c1)
    is refused and one with c1's client certificate is served."""
    xml = cluster.on(node, "virsh", "-c", "qemu:///system", "dumpxml", server)
    assert xml.returncode == 0, xml.stderr
    sources = ET.fromstring(xml.stdout).findall("devices/disk[@type='network']/source[@protocol='nbd']")
    assert len(sources) == 1, xml.stdout
    source, host = sources[0], sources[0].find("host")
    assert source.get("tls") == "yes" and host.get("name") == "10.250.0.13", ET.tostring(source)
    port, name = host.get("port"), source.get("name")
    daemons = [a for a in _argvs("qemu-storage-daemon") if str(cluster.nodes_dir / "s1") in " ".join(a)]
    assert len(daemons) == 1, daemons
    tls_objects = [json.loads(a) for a in daemons[0] if '"tls-creds-x509"' in a]
    assert tls_objects and tls_objects[0]["verify-peer"] is True, daemons[0]
    assert tls_objects[0]["dir"] == str(cluster.nodes_dir / "pki" / "s1")
    assert any('"tls-creds"' in a and f'"{port}"' in a for a in daemons[0]), daemons[0]
    plain = cluster.on("c1", "qemu-img", "info", f"nbd://10.250.0.13:{port}/{name}")
    assert plain.returncode != 0, plain.stdout
    creds = f"tls-creds-x509,id=tls0,endpoint=client,dir={cluster.nodes_dir / 'pki' / 'c1'}"
    ok = cluster.on("c1", "qemu-img", "info", "--object", creds, "--image-opts",
                    f"driver=nbd,host=10.250.0.13,port={port},export={name},tls-creds=tls0")
    assert ok.returncode == 0 and "virtual size: 1 GiB" in ok.stdout, ok.stdout + ok.stderr


def _argvs(binary: str) -> list[list[str]]:
    """The argv of every process of ``binary`` on this machine (nodes share its pids)."""
    out = []
    for proc in Path("/proc").iterdir():
        try:
            argv = [a.decode() for a in (proc / "cmdline").read_bytes().split(b"\0") if a]
        except OSError:
            continue
        if argv and Path(argv[0]).name == binary:
            out.append(argv)
    return out


def _object_files(cluster, node: str) -> list:
    return sorted((cluster.nodes_dir / node / "state" / "object" / "devices").glob("*/objects/**/*.data"))


def test_object_replicas_on_the_storage_node_and_their_repair(cluster, tmp_path):
    """The ring spans the storage node's devices (through its object server): uploaded
    objects have replicas there, and a lost replica there is repaired by a pass."""
    env = {**cluster.env, **cluster.openrc("demo")}
    payloads = []
    for i in range(12):  # (enough objects that some partitions land on s1's devices)
        f = tmp_path / f"obj-{i}"
        f.write_bytes(f"cluster object {i}\n".encode() * 100)
        payloads.append(f)
    up = subprocess.run([str(BIN / "swift"), "upload", "--object-name", "x", "cluster-c", str(payloads[0])],
                        env=env, capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert up.returncode == 0, up.stderr
    for f in payloads[1:]:
        r = subprocess.run([str(BIN / "swift"), "upload", "cluster-c", f.name], env=env, capture_output=True,
                           text=True, cwd=tmp_path, timeout=60)
        assert r.returncode == 0, r.stderr
    on_s1 = _object_files(cluster, "s1")
    assert on_s1, "no replica on the storage node"
    lost = on_s1[0]
    lost.unlink()
    r = cluster.onestack("object", "replicate", timeout=300)
    assert lost.exists(), r.stdout + r.stderr
    listing = subprocess.run([str(BIN / "swift"), "list", "cluster-c"], env=env, capture_output=True, text=True,
                             timeout=60).stdout.split()
    assert len(listing) == 12, listing
    got = subprocess.run([str(BIN / "swift"), "download", "cluster-c", "obj-5", "-o", "-"], env=env,
                         capture_output=True, timeout=60).stdout
    assert got == payloads[5].read_bytes()


def test_vnc_console_of_a_guest_on_a_node(cluster):
    """The controller's noVNC proxy reaches the VNC server of a guest on a compute node."""
    import asyncio
    import urllib.parse

    from websockets.asyncio.client import connect

    server = _boot(cluster, "console", "c2")
    wait_for(lambda: cluster.os_json("server", "show", server)["status"] == "ACTIVE", 240, "ACTIVE", step=1)
    url = cluster.os_json("console", "url", "show", "--novnc", server, **DEMO)["url"]
    parts = urllib.parse.urlsplit(url)
    ws = f"ws://{parts.netloc}/{urllib.parse.parse_qs(parts.query)['path'][0]}"

    async def banner():
        async with connect(ws, subprotocols=["binary"], open_timeout=10) as conn:
            return await asyncio.wait_for(conn.recv(), 10)

    assert re.match(rb"^RFB 003\.00\d\n$", asyncio.run(banner()))
    cluster.openstack("server", "delete", "--wait", server, **DEMO)
