"""The engine's per-action lookup cache (resources.constraints.Lookups): a flavor, image or
network that many resources name is asked of its service once per action; what a resource
made is found without asking; a miss is asked again; a deleted thing is forgotten. And the
delete steps that ask a service no more than they need (cinder, neutron)."""

from __future__ import annotations

import pytest

from onestack.common import errors
from onestack.orchestration.resources import cinder, neutron
from onestack.orchestration.resources import constraints as c


class FakeClient:
    """A service client answering from ``routes`` ((method, path) -> body or exception)."""

    def __init__(self, routes: dict):
        self.routes, self.calls = routes, []

    def request(self, method: str, path: str, **kw):
        self.calls.append((method, path))
        if (method, path) not in self.routes:
            raise errors.NotFound(f"{path} not found")
        answer = self.routes[(method, path)]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json=None, **kw):
        return self.request("POST", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


class Ctx:
    stack_id, stack_name, project_id, user_id, region = "s", "stack", "p", "u", "RegionOne"

    def __init__(self, clients: dict, lookups: bool = True):
        self.clients = clients
        if lookups:
            self.lookups = c.Lookups()

    def client(self, service_type):
        return self.clients[service_type]


FLAVOR = {"id": "42", "name": "m1.nano"}


def test_a_lookup_is_asked_once_per_action():
    nova = FakeClient({("GET", "/flavors/m1.nano"): errors.NotFound("no"),
                       ("GET", "/flavors/detail"): {"flavors": [FLAVOR]}, ("GET", "/flavors/42"): {"flavor": FLAVOR}})
    ctx = Ctx({"compute": nova})
    assert c.find_flavor(ctx, "m1.nano") == FLAVOR
    assert c.find_flavor(ctx, "m1.nano") == FLAVOR and c.find_flavor(ctx, "42") == FLAVOR
    assert nova.calls == [("GET", "/flavors/m1.nano"), ("GET", "/flavors/detail")]  # by id too: found
    assert c.CONSTRAINTS["nova.flavor"](ctx, "m1.nano") is None and len(nova.calls) == 2
    # a context without the cache asks each time
    bare = Ctx({"compute": nova}, lookups=False)
    c.find_flavor(bare, "42")
    c.find_flavor(bare, "42")
    assert nova.calls[2:] == [("GET", "/flavors/42")] * 2


def test_a_miss_is_asked_again_and_what_a_resource_made_is_known():
    net = FakeClient({("GET", "/v2.0/ports"): {"ports": []}})
    ctx = Ctx({"network": net})
    for _ in range(2):
        with pytest.raises(errors.NotFound, match="Unable to find port with name or id 'p1'"):
            c.find_port(ctx, "p1")
    assert len(net.calls) == 4  # (the id, then the list by name) twice
    c.remember(ctx, "port", {"id": "p1", "network_id": "n1"})
    assert c.find_port(ctx, "p1")["network_id"] == "n1" and len(net.calls) == 4
    assert c.CONSTRAINTS["neutron.port"](ctx, "p1") is None and len(net.calls) == 4
    ctx.lookups.forget("p1")  # deleted by the stack: asked again
    with pytest.raises(errors.NotFound):
        c.find_port(ctx, "p1")
    assert len(net.calls) == 6


def test_a_volume_is_deleted_with_one_call_and_refused_as_before():
    path = "/volumes/v1"
    vol = cinder.Volume("vol", {}, Ctx({}), resource_id="v1")
    api = FakeClient({("DELETE", path): None})
    vol.ctx.clients[c.VOLUME_SERVICE] = api
    vol.handle_delete()
    assert api.calls == [("DELETE", path)]
    refused = errors.BadRequest("Invalid volume: Volume v1 status must be available")
    api = FakeClient({("DELETE", path): refused, ("GET", path): {"volume": {"id": "v1", "status": "in-use"}}})
    vol.ctx.clients[c.VOLUME_SERVICE] = api
    with pytest.raises(errors.Conflict, match="Volume v1 is still attached; it cannot be deleted."):
        vol.handle_delete()
    api.routes[("GET", path)] = {"volume": {"id": "v1", "status": "deleting"}}
    vol.handle_delete()  # already going: nothing to do
    api.routes[("GET", path)] = {"volume": {"id": "v1", "status": "creating"}}
    with pytest.raises(errors.BadRequest, match="status must be available"):
        vol.handle_delete()
    api.routes[("DELETE", path)] = errors.NotFound("gone")
    vol.handle_delete()


def test_a_network_deleted_is_not_looked_up_again():
    api = FakeClient({("DELETE", "/v2.0/networks/n1"): None})
    net = neutron.Net("net", {}, Ctx({"network": api}), resource_id="n1")
    net.handle_delete()
    assert net.check_delete_complete() and api.calls == [("DELETE", "/v2.0/networks/n1")]
    # an instance that did not delete it (the engine restarted) looks
    again = neutron.Net("net", {}, Ctx({"network": api}), resource_id="n1")
    assert again.check_delete_complete() and api.calls[-1] == ("GET", "/v2.0/networks/n1")
