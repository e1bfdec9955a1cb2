"""The `onestack` command's promises: idempotent up, clear one-line errors, credentials."""

import http.client
import socket
import subprocess
import time

from tests.cloud import BIN, Cloud


def run(env, *args):
    return subprocess.run([str(BIN / "onestack"), *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_second_up_changes_nothing(cloud):
    before = sorted(p.name for p in cloud.state.iterdir())
    pid = (cloud.state / "onestack.pid").read_text()
    r = cloud.onestack("up", "--detach")
    assert "already running" in r.stdout
    assert (cloud.state / "onestack.pid").read_text() == pid
    assert sorted(p.name for p in cloud.state.iterdir()) == before


def test_status_and_openrc(cloud):
    r = cloud.onestack("status")
    assert "identity" in r.stdout and "up" in r.stdout and str(cloud.port) in r.stdout
    rc = cloud.onestack("openrc", "demo").stdout
    assert "export OS_USERNAME=demo" in rc and f"{cloud.url}/identity/v3" in rc
    assert cloud.onestack("openrc", "nobody", check=False).returncode == 1


def test_simulated_compute_is_said_loudly(cloud):
    """The test cloud runs the fake driver by configuration: up and status say so."""
    assert "simulated compute" in cloud.onestack("status").stdout
    assert "not real guests" in cloud.onestack("up", "--detach").stdout


def test_auto_driver_without_libvirt_refuses_to_start(tmp_path):
    """compute.driver = auto never falls back to simulated servers: up fails, saying why."""
    # a libvirt that cannot be reached: a unix socket path that does not exist
    c = Cloud("nolibvirt", extra_env={
        "ONESTACK_COMPUTE_DRIVER": "auto",
        "ONESTACK_COMPUTE_LIBVIRT_URI": "qemu:///system?socket=/nonexistent/libvirt-sock"})
    try:
        r = c.onestack("up", "--detach", check=False)
        assert r.returncode != 0
        assert "libvirt is not usable" in r.stderr + r.stdout
        assert 'compute.driver = "fake"' in r.stderr + r.stdout
    finally:
        c.stop()


def test_port_in_use():
    c = Cloud("busy")
    with socket.socket() as s:
        s.bind(("127.0.0.1", c.port))
        s.listen()
        r = c.onestack("up", "--detach", check=False)
    assert r.returncode == 1
    assert f"port {c.port}" in r.stderr and "already in use" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    c.stop()


def test_state_dir_not_writable(tmp_path):
    c = Cloud("nowrite")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    c.env["ONESTACK_STATE_DIR"] = str(blocker / "state")
    r = c.onestack("up", "--detach", check=False)
    assert r.returncode == 1 and "not writable" in r.stderr and str(blocker) in r.stderr
    c.stop()


def test_unknown_config_key(tmp_path):
    c = Cloud("badconf")
    conf = tmp_path / "onestack.toml"
    conf.write_text("[identity]\ntoken_expiry = 10\n")
    c.env["ONESTACK_CONFIG"] = str(conf)
    r = c.onestack("up", "--detach", check=False)
    assert r.returncode == 1
    assert "identity.token_expiry" in r.stderr and str(conf) in r.stderr and "token_expiration" in r.stderr
    (tmp_path / "none.toml").write_text("")
    c.env["ONESTACK_CONFIG"] = str(tmp_path / "none.toml")
    c.env["ONESTACK_IDENTITY_TOKEN_EXPIRY"] = "5"
    r = c.onestack("status", check=False)
    assert r.returncode == 1 and "ONESTACK_IDENTITY_TOKEN_EXPIRY" in r.stderr
    c.stop()


def test_down_purge_and_restart_keeps_state():
    c = Cloud("restart").start()
    try:
        pw = c.password("admin")
        demo = c.openrc("demo")
        c.openstack("user", "password", "set", "--password", "changed-by-demo",
                    f"--original-password={demo['OS_PASSWORD']}", env=demo)
        c.onestack("down")
        c.start()
        assert c.password("admin") == pw
        assert c.os_json("token", "issue")["id"]
        # a password changed through the API survives a restart
        demo["OS_PASSWORD"] = "changed-by-demo"
        assert c.os_json("token", "issue", env=demo)["id"]
    finally:
        c.stop()
    assert not c.state.exists()


def test_an_idle_keep_alive_connection_outlives_a_client_poll(cloud):
    """A client polling every 5 s (heatclient's --wait) reuses its connection: the
    server must not be closing it at that moment (uvicorn's default keep-alive is 5 s)."""
    conn = http.client.HTTPConnection("127.0.0.1", cloud.port, timeout=10)
    conn.request("GET", "/identity/v3")
    first = conn.getresponse()
    first.read()
    sock = conn.sock
    time.sleep(6)
    conn.request("GET", "/identity/v3")  # raises if the server closed the connection
    second = conn.getresponse()
    second.read()
    assert second.status == 200 and conn.sock is sock
    conn.close()
