"""Remote consoles through the real clients.

On simulated (fake-driver) hosts: `openstack console url show --novnc/--serial`, the
2.6 ``remote-consoles`` API and the legacy actions, their refusals, noVNC's page,
and the proxies refusing unknown tokens. With a real guest (marker e2e, libvirt):
the URL the CLI prints leads, through onestack's websocket proxy, to the RFB banner
of the guest's VNC server, and the serial URL to the guest's login prompt.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
import urllib.parse
import uuid

import httpx
import pytest

from tests.cloud import Cloud
from tests.requirements import missing

websockets = pytest.importorskip("websockets")
from websockets.asyncio.client import connect  # noqa: E402


def wait_status(cloud: Cloud, name: str, status: str, timeout: float = 60, **kw) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        s = cloud.os_json("server", "show", name, **kw)
        if s["status"] == status and not s.get("OS-EXT-STS:task_state"):
            return s
        if s["status"] == "ERROR" or time.monotonic() > deadline:
            raise AssertionError(f"{name}: {s['status']} (wanted {status}): {s.get('fault')}")
        time.sleep(0.3)


def token_of(cloud: Cloud, user: str = "admin") -> str:
    return cloud.openstack("token", "issue", "-f", "value", "-c", "id", user=user).stdout.strip()


def ws_url(url: str) -> str:
    """The websocket noVNC opens for a console URL (its path= is relative to the host)."""
    parts = urllib.parse.urlsplit(url)
    path = urllib.parse.parse_qs(parts.query)["path"][0]
    return f"ws://{parts.netloc}/{path}"


def refused(url: str) -> int:
    async def go():
        with pytest.raises(websockets.exceptions.InvalidStatus) as e:
            async with connect(url, open_timeout=10):
                pass
        return e.value.response.status_code

    return asyncio.run(go())


@pytest.fixture(scope="module")
def server(cloud, tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "small.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    img = cloud.os_json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                        "--public", "--file", str(path), f"con-{uuid.uuid4().hex[:6]}")  # fmt: skip
    name = f"con-{uuid.uuid4().hex[:6]}"
    cloud.openstack("server", "create", "--flavor", "m1.nano", "--image", img["id"],
                    "--nic", "none", "--wait", name)  # fmt: skip
    s = wait_status(cloud, name, "ACTIVE")
    yield s
    cloud.openstack("server", "delete", "--wait", s["id"], check=False)
    cloud.openstack("image", "delete", img["id"], check=False)


def test_novnc_url_from_the_cli(cloud, server):
    out = cloud.os_json("console", "url", "show", "--novnc", server["id"])
    assert out["type"] == "novnc"
    url = out["url"]
    assert url.startswith(f"{cloud.url}/novnc/vnc_lite.html?path=novnc%2Fwebsockify%3Ftoken%3D")
    assert re.match(r"^ws://127\.0\.0\.1:\d+/novnc/websockify\?token=[\w-]{40,}$", ws_url(url))
    from onestack.compute.consoles import NOVNC_DIR

    if not NOVNC_DIR.is_dir():
        missing("noVNC is not installed (Debian package novnc)")
    page = httpx.get(url, timeout=10)
    assert page.status_code == 200 and "noVNC" in page.text
    assert httpx.get(f"{cloud.url}/novnc/core/rfb.js", timeout=10).status_code == 200


def test_serial_url_from_the_cli(cloud, server):
    out = cloud.os_json("console", "url", "show", "--serial", server["id"])
    assert out["type"] == "serial"
    port = urllib.parse.urlsplit(cloud.url).port
    assert re.match(rf"^ws://127\.0\.0\.1:{port}/serial\?token=[\w-]{{40,}}$", out["url"])


def test_remote_consoles_api(cloud, server):
    headers = {"X-Auth-Token": token_of(cloud), "OpenStack-API-Version": "compute 2.6"}
    base = f"{cloud.url}/compute/v2.1/servers/{server['id']}"

    def post(body, version="2.6", path="remote-consoles"):
        h = {**headers, "OpenStack-API-Version": f"compute {version}"}
        return httpx.post(f"{base}/{path}", json=body, headers=h, timeout=30)

    r = post({"remote_console": {"protocol": "vnc", "type": "novnc"}})
    assert r.status_code == 200, r.text
    rc = r.json()["remote_console"]
    assert (rc["protocol"], rc["type"]) == ("vnc", "novnc") and "/novnc/vnc_lite.html?" in rc["url"]
    r = post({"remote_console": {"protocol": "serial", "type": "serial"}})
    assert r.status_code == 200 and r.json()["remote_console"]["url"].startswith("ws://")
    # before 2.6 there is no such resource
    assert post({"remote_console": {"protocol": "vnc", "type": "novnc"}}, "2.5").status_code == 404
    for body in (
        {"remote_console": {"protocol": "vnc", "type": "bogus"}},
        {"remote_console": {"protocol": "telnet", "type": "novnc"}},
        {"remote_console": {"protocol": "vnc"}},
        {"console": {}},
        {"remote_console": {"protocol": "spice", "type": "spice-html5"}},  # not offered
        {"remote_console": {"protocol": "vnc", "type": "serial"}},
        {"remote_console": {"protocol": "vnc", "type": "novnc", "x": 1}},
    ):
        r = post(body)
        assert r.status_code == 400, (body, r.text)
        assert "badRequest" in r.json()
    # the legacy actions
    r = post({"os-getVNCConsole": {"type": "novnc"}}, "2.1", "action")
    assert r.status_code == 200 and r.json()["console"]["type"] == "novnc"
    r = post({"os-getSerialConsole": {"type": "serial"}}, "2.1", "action")
    assert r.status_code == 200 and r.json()["console"]["url"].startswith("ws://")
    r = post({"os-getVNCConsole": {"type": "xvpvnc"}}, "2.1", "action")
    assert r.status_code == 400


def test_consoles_of_others_and_of_stopped_servers(cloud, server):
    r = cloud.openstack("console", "url", "show", "--novnc", server["id"], user="demo",
                        check=False)  # fmt: skip
    assert r.returncode != 0 and ("404" in r.stderr or "no server" in r.stderr.lower()), r.stderr
    cloud.openstack("server", "stop", server["id"])
    wait_status(cloud, server["id"], "SHUTOFF")
    try:
        r = cloud.openstack("console", "url", "show", "--novnc", server["id"], check=False)
        assert r.returncode != 0 and "409" in r.stderr, r.stderr
    finally:
        cloud.openstack("server", "start", server["id"])
        wait_status(cloud, server["id"], "ACTIVE")


def test_proxies_refuse_unknown_tokens(cloud, server):
    host = urllib.parse.urlsplit(cloud.url).netloc
    assert refused(f"ws://{host}/novnc/websockify?token=forged") == 403
    assert refused(f"ws://{host}/novnc/websockify") == 403
    assert refused(f"ws://{host}/serial?token=forged") == 403
    # a VNC token does not open the serial console (nor the other way round)
    vnc = ws_url(cloud.os_json("console", "url", "show", "--novnc", server["id"])["url"])
    token = vnc.split("token=")[1]
    assert refused(f"ws://{host}/serial?token={token}") == 403


# -- a real guest


@pytest.fixture(scope="module")
def libvirt_cloud():
    c = Cloud("consoles-e2e", extra_env={"ONESTACK_COMPUTE_DRIVER": "libvirt"})
    c.start()
    try:
        yield c
    finally:
        c.stop()


@pytest.mark.e2e
@pytest.mark.root
@pytest.mark.libvirt
def test_real_guest_consoles(libvirt_cloud):
    import guest

    cloud = libvirt_cloud
    try:
        tiny = guest.ensure_tiny()
    except guest.BuildError as e:
        missing(f"cannot build the tiny image: {e}")
    img = cloud.os_json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                        "--file", str(tiny), "tiny-consoles")  # fmt: skip
    name = f"con-real-{uuid.uuid4().hex[:6]}"
    try:
        cloud.openstack("server", "create", "--flavor", "m1.nano", "--image", img["id"],
                        "--nic", "none", name)  # fmt: skip
        wait_status(cloud, name, "ACTIVE", timeout=120)
        deadline = time.monotonic() + 120
        while "onestack-tiny: ready." not in cloud.openstack("console", "log", "show", name).stdout:
            assert time.monotonic() < deadline, "the guest did not print its ready line"
            time.sleep(1)
        vnc = cloud.os_json("console", "url", "show", "--novnc", name)["url"]
        serial = cloud.os_json("console", "url", "show", "--serial", name)["url"]

        async def talk():
            async with connect(ws_url(vnc), subprotocols=["binary"], open_timeout=10) as ws:
                banner = await asyncio.wait_for(ws.recv(), 10)
            async with connect(serial, open_timeout=10) as ws:
                await ws.send(b"\r")
                out = b""
                while b"login:" not in out:
                    out += await asyncio.wait_for(ws.recv(), 20)
            return banner, out

        banner, out = asyncio.run(talk())
        assert re.match(rb"^RFB 003\.00\d\n$", banner), banner
        assert b"login:" in out
        host = urllib.parse.urlsplit(cloud.url).netloc
        assert refused(f"ws://{host}/novnc/websockify?token=forged") == 403
    finally:
        cloud.openstack("server", "delete", "--wait", name, check=False)
        cloud.openstack("image", "delete", img["id"], check=False)
