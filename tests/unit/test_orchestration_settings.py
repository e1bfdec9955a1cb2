"""settings.configure: the `[orchestration]` section reaches the engine's settings; values
that cannot work are a ConfigError naming the key. WebImage downloads keep to the allowed hosts."""

from __future__ import annotations

import http.server
import threading

import pytest

from onestack.config import ConfigError, load
from onestack.orchestration import settings
from onestack.orchestration.resources import glance


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    monkeypatch.setattr(settings, "current", settings.Settings())


def test_defaults_and_overrides(tmp_path):
    s = settings.configure(load(None, env={}))
    assert (s.max_template_size, s.max_resources_per_stack, s.max_nested_stack_depth,
            s.max_stacks_per_tenant, s.stack_action_timeout_mins) == (524288, 1000, 5, 100, 60)
    assert s.hidden_stack_tags == ["hidden"] and s.web_image_fetch and s.web_image_hosts == []
    f = tmp_path / "c.toml"
    f.write_text('[orchestration]\nmax_stacks_per_tenant = 7\npoll_max = 2.5\nhidden_stack_tags = ""\n'
                 'web_image_hosts = "Images.Example, [::1]"\n')
    s = settings.configure(load(f, env={"ONESTACK_ORCHESTRATION_WEB_IMAGE_FETCH": "false"}))
    assert s.max_stacks_per_tenant == 7 and s.poll_max == 2.5 and s.hidden_stack_tags == []
    assert s.web_image_hosts == ["images.example", "::1"] and s.web_image_fetch is False
    assert settings.current is s


@pytest.mark.parametrize("env, key", [
    ({"ONESTACK_ORCHESTRATION_MAX_RESOURCES_PER_STACK": "0"}, "orchestration.max_resources_per_stack"),
    ({"ONESTACK_ORCHESTRATION_STACK_ACTION_TIMEOUT_MINS": "-1"}, "orchestration.stack_action_timeout_mins"),
    ({"ONESTACK_ORCHESTRATION_POLL_MIN": "3"}, "orchestration.poll_min"),
    ({"ONESTACK_ORCHESTRATION_POLL_MIN": "0"}, "orchestration.poll_min"),
])
def test_impossible_values(env, key):
    with pytest.raises(ConfigError, match=key):
        settings.configure(load(None, env=env))


class _Redirect(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        port = self.server.server_address[1]
        if self.path == "/here":
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{port}/there")
            self.end_headers()
        else:
            self.send_response(200)
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"data")

    def log_message(self, *args):
        pass


class _Glance:
    def __init__(self):
        self.put = None

    def response(self, method, path, content, headers):
        self.put = (method, path, b"".join(content))


def test_web_image_hosts_bound_redirects():
    """A WebImage download follows a redirect only to a host web_image_hosts allows."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/here"
    try:
        glance_client = _Glance()
        settings.current.web_image_hosts = ["127.0.0.1", "localhost"]
        glance._upload(glance_client, "img-1", url)
        assert glance._uploads.pop("img-1") == "" and glance_client.put == ("PUT", "/v2/images/img-1/file", b"data")
        glance_client = _Glance()
        settings.current.web_image_hosts = ["127.0.0.1"]
        glance._upload(glance_client, "img-2", url)
        assert "localhost is not among the hosts" in glance._uploads.pop("img-2") and glance_client.put is None
    finally:
        server.shutdown()
