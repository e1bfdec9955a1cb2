"""The machines of a multi-node cloud, made on this one: each node is a network
namespace (its own interfaces, routes, nftables, its guests' taps) with a mount
namespace of its own (its own /run/netns for its routers and DHCP namespaces, its own
libvirtd's run, state and config directories, and a /sys that shows its interfaces).

Two bridges in the host join them, attached to no host NIC:
- the management network (``osc-mgmt``): every node's ``mgmt0``, the APIs, RabbitMQ,
  PostgreSQL, VXLAN between nodes, NBD exports; the host has an address there so the
  standard clients on this machine reach the controller as an operator's desk would;
- the external network (``osc-ext``): the network nodes' ``ext0`` (their provider
  interface for ``public``) and the ``osc-public`` namespace, which plays the world
  outside the cloud (it holds the public subnet's gateway address).

Nothing is routed between these and the host's own networks.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from onestack.network.linux import ip as iplib

log = logging.getLogger(__name__)

MGMT_BRIDGE = "osc-mgmt"
EXT_BRIDGE = "osc-ext"
PUBLIC_NS = "osc-public"
NS_PREFIX = "osn-"

# A node's private directories, bound over the host's (host path -> name under the node's dir)
PRIVATE_DIRS = {
    "/run/libvirt": "run-libvirt",
    "/var/lib/libvirt": "lib-libvirt",
    "/var/log/libvirt": "log-libvirt",
    "/var/cache/libvirt": "cache-libvirt",
    "/etc/libvirt": "etc-libvirt",
    "/run/onestack": "run-onestack",
}


class FabricError(RuntimeError):
    pass


@dataclass
class Node:
    name: str
    roles: list[str]
    address: str  # on the management network, with no prefix length

    @property
    def netns(self) -> str:
        return NS_PREFIX + self.name


def _run(argv: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise FabricError(f"{' '.join(argv)}: {(r.stderr or r.stdout).strip()}")
    return r


class Fabric:
    def __init__(self, root: Path, mgmt_cidr: str = "10.250.0.0/24", public_cidr: str = "172.24.4.0/24"):
        self.root = Path(root)
        self.mgmt = ipaddress.ip_network(mgmt_cidr)
        self.public = ipaddress.ip_network(public_cidr)

    # -- addresses ----------------------------------------------------------------

    @property
    def host_address(self) -> str:
        return str(self.mgmt.network_address + 1)

    def address(self, index: int) -> str:
        return str(self.mgmt.network_address + 10 + index)

    # -- paths --------------------------------------------------------------------

    def node_dir(self, name: str) -> Path:
        return self.root / name

    def mount_ns(self, name: str) -> Path:
        return self.root / "ns" / name

    def enter(self, node: Node) -> list[str]:
        """The argv prefix that runs a command on ``node`` (its network and mount namespaces)."""
        return ["nsenter", f"--mount={self.mount_ns(node.name)}", f"--net=/run/netns/{node.netns}", "--"]

    # -- building -----------------------------------------------------------------

    def check_free(self) -> None:
        """Refuse address ranges the host already routes (ours excepted)."""
        for net in (self.mgmt, self.public):
            for route in iplib.ip_json("-4", "route", "show"):
                dst = route.get("dst")
                if dst in (None, "default") or route.get("dev") in (MGMT_BRIDGE, EXT_BRIDGE):
                    continue
                if ipaddress.ip_network(dst, strict=False).overlaps(net):
                    raise FabricError(f"{net} overlaps the host's route {dst} dev {route.get('dev')}: "
                                      "choose other cluster addresses")

    def create(self, nodes: list[Node]) -> None:
        self.check_free()
        (self.root / "ns").mkdir(parents=True, exist_ok=True)
        self._private_mount(self.root / "ns")
        iplib.ensure_bridge(MGMT_BRIDGE)
        iplib.ensure_address(MGMT_BRIDGE, f"{self.host_address}/{self.mgmt.prefixlen}")
        iplib.ensure_bridge(EXT_BRIDGE)
        iplib.ensure_netns(PUBLIC_NS)
        gateway = f"{self.public.network_address + 1}/{self.public.prefixlen}"
        iplib.ensure_veth("osc-pub", "eth0", peer_netns=PUBLIC_NS, master=EXT_BRIDGE)
        iplib.ensure_address("eth0", gateway, PUBLIC_NS)
        for node in nodes:
            self._make_node(node)

    def _private_mount(self, path: Path) -> None:
        """Persistent mount namespaces are files on a mount that does not propagate."""
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
        if not any(line.split()[4] == str(path) for line in mounts):
            _run(["mount", "--bind", str(path), str(path)])
        _run(["mount", "--make-private", str(path)])

    def _make_node(self, node: Node) -> None:
        iplib.ensure_netns(node.netns)
        host_end = iplib.check_name(f"osc-{node.name}"[:15])
        iplib.ensure_veth(host_end, "mgmt0", peer_netns=node.netns, master=MGMT_BRIDGE)
        iplib.ensure_address("mgmt0", f"{node.address}/{self.mgmt.prefixlen}", node.netns)
        if "network" in node.roles:
            iplib.ensure_veth(iplib.check_name(f"oxe-{node.name}"[:15]), "ext0", peer_netns=node.netns,
                              master=EXT_BRIDGE)
        d = self.node_dir(node.name)
        sysdirs = d / "sys"
        for name in PRIVATE_DIRS.values():
            (sysdirs / name).mkdir(parents=True, exist_ok=True)
        if not any((sysdirs / "etc-libvirt").iterdir()) and Path("/etc/libvirt").is_dir():
            shutil.copytree("/etc/libvirt", sysdirs / "etc-libvirt", dirs_exist_ok=True, symlinks=True)
        for sub in ("qemu", "images"):
            (sysdirs / "lib-libvirt" / sub).mkdir(exist_ok=True)
        (sysdirs / "log-libvirt" / "qemu").mkdir(exist_ok=True)
        (sysdirs / "cache-libvirt" / "qemu").mkdir(exist_ok=True)
        mnt = self.mount_ns(node.name)
        if not self._is_mount_ns(mnt):
            mnt.touch()
            _run(["unshare", f"--mount={mnt}", "--propagation", "private", "true"])
            script = self._mount_script(node, sysdirs)
            _run(["nsenter", f"--mount={mnt}", f"--net=/run/netns/{node.netns}", "--", "sh", "-ec", script])

    def _mount_script(self, node: Node, sysdirs: Path) -> str:
        save = sysdirs / "cgroup-save"
        lines = [
            # a /sys that shows the node's interfaces, the host's cgroups kept under it
            f"mkdir -p {save}",
            f"mount --rbind /sys/fs/cgroup {save}",
            "mount -t sysfs sysfs /sys",
            f"mount --move {save} /sys/fs/cgroup",
            # its own named namespaces (routers, DHCP)
            "mkdir -p /run/netns",
            "mount -t tmpfs -o mode=0755 tmpfs /run/netns",
        ]
        for host_path, name in PRIVATE_DIRS.items():
            lines += [f"mkdir -p {host_path}", f"mount --bind {sysdirs / name} {host_path}"]
        return "\n".join(lines)

    @staticmethod
    def _is_mount_ns(path: Path) -> bool:
        if not path.exists():
            return False
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
        return any(line.split()[4] == str(path) for line in mounts)

    # -- processes ----------------------------------------------------------------

    def spawn(self, node: Node, argv: list[str], log_file: Path, env: dict | None = None) -> int:
        """Start a daemon on ``node``; its pid."""
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "ab") as out:
            p = subprocess.Popen(self.enter(node) + argv, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
                                 env=env)
        return p.pid

    def run(self, node: Node, argv: list[str], check: bool = True, timeout: float = 300,
            env: dict | None = None) -> subprocess.CompletedProcess:
        return _run(self.enter(node) + argv, check=check, timeout=timeout, env=env)

    def start_libvirt(self, node: Node) -> None:
        """virtlogd and libvirtd of the node (they find its private directories)."""
        sock = self.node_dir(node.name) / "sys" / "run-libvirt" / "libvirt-sock"
        if self.run(node, ["virsh", "-c", "qemu:///system", "version"], check=False, timeout=30).returncode == 0:
            return
        run_dir = self.node_dir(node.name) / "sys" / "run-libvirt"  # (pid files default to the shared /run)
        self._libvirtd_listens(node)
        self.run(node, ["virtlogd", "-d", "--pid-file", str(run_dir / "virtlogd.pid")])
        self.run(node, ["libvirtd", "-d", "--listen", "--pid-file", str(run_dir / "libvirtd.pid")])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if sock.exists() and self.run(node, ["virsh", "-c", "qemu:///system", "version"], check=False,
                                          timeout=30).returncode == 0:
                return
            time.sleep(0.2)
        raise FabricError(f"libvirtd on node {node.name} did not answer within 60 s")

    def _libvirtd_listens(self, node: Node) -> None:
        """Live migration is libvirtd to libvirtd (peer to peer): each compute node's listens
        on its management address. Unauthenticated TCP, as on DevStack's multi-node labs: the
        management network is the cluster's own (a real deployment uses TLS: deployment.md)."""
        conf = self.node_dir(node.name) / "sys" / "etc-libvirt" / "libvirtd.conf"
        keep = [line for line in (conf.read_text().splitlines() if conf.exists() else [])
                if not line.startswith(("listen_tls", "listen_tcp", "listen_addr", "auth_tcp", "# onestack"))]
        keep += ["# onestack cluster: libvirtd of node " + node.name, "listen_tls = 0", "listen_tcp = 1",
                 f'listen_addr = "{node.address}"', 'auth_tcp = "none"']
        conf.write_text("\n".join(keep) + "\n")

    # -- tearing down -------------------------------------------------------------

    def _net_inodes(self, node: Node) -> set[int]:
        """The node's network namespace and those it made (routers, DHCP), by inode."""
        out = set()
        try:
            out.add(os.stat(f"/run/netns/{node.netns}").st_ino)
        except FileNotFoundError:
            pass
        if self._is_mount_ns(self.mount_ns(node.name)):
            r = _run(["nsenter", f"--mount={self.mount_ns(node.name)}", "--", "sh", "-c",
                      "for n in /run/netns/*; do [ -e \"$n\" ] && stat -L -c %i \"$n\"; done; true"], check=False)
            out.update(int(x) for x in r.stdout.split() if x.isdigit())
        return out

    def node_pids(self, node: Node) -> list[int]:
        """Every process of the node: in its mount namespace (its daemons) or in one of its
        network namespaces (its guests, and dnsmasq, which `ip netns exec` gives a mount
        namespace of its own)."""
        try:
            mnt = os.stat(self.mount_ns(node.name)).st_ino if self._is_mount_ns(self.mount_ns(node.name)) else None
        except FileNotFoundError:
            mnt = None
        nets = self._net_inodes(node)
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                in_mnt = mnt is not None and os.stat(f"/proc/{entry}/ns/mnt").st_ino == mnt
                in_net = os.stat(f"/proc/{entry}/ns/net").st_ino in nets
            except OSError:
                continue
            if in_mnt or in_net:
                pids.append(int(entry))
        return pids

    def destroy(self, nodes: list[Node]) -> None:
        """Stop every process of the nodes, then remove their namespaces, links and bridges."""
        for node in nodes:
            pids = self.node_pids(node)
            for sig in (15, 9):
                for pid in set(pids):
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
                deadline = time.monotonic() + (10 if sig == 15 else 3)
                while time.monotonic() < deadline and any(_alive(p) for p in pids):
                    time.sleep(0.1)
            # the node's own named namespaces (routers, DHCP) go with its mount namespace
            mnt = self.mount_ns(node.name)
            if self._is_mount_ns(mnt):
                _run(["nsenter", f"--mount={mnt}", "--", "sh", "-c",
                      "for n in /run/netns/*; do [ -e \"$n\" ] && ip netns delete \"$(basename $n)\"; done; true"],
                     check=False)
                _run(["umount", str(mnt)], check=False)
            mnt.unlink(missing_ok=True)
            iplib.delete_netns(node.netns)
            for dev in (f"osc-{node.name}"[:15], f"oxe-{node.name}"[:15]):
                iplib.delete_link(dev)
        iplib.delete_link("osc-pub")
        iplib.delete_netns(PUBLIC_NS)
        for br in (MGMT_BRIDGE, EXT_BRIDGE):
            iplib.delete_link(br)
        ns_dir = self.root / "ns"
        if self._is_mount_ns(ns_dir):
            _run(["umount", str(ns_dir)], check=False)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
