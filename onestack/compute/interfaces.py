"""Hot-plugging a server's ports (``os-interface`` POST and DELETE), as Nova's
attach_interface and detach_interface.

Only a server ACTIVE, PAUSED or STOPPED with no task takes one (409 naming the state
otherwise), and a locked one only from an admin. The port or network asked for is
checked with the user's token; a port asked for by network (or by nothing: the
project's one network) is made here with that token, so the user's rights and port
quota apply, already claimed for the server. Then the action is recorded and the
server's compute agent is called: it binds the port to its host and plugs the NIC
(live and in the guest's definition) the way a boot does, and records the VIF in
``network_info``; the network agent wires the tap. A failure lets the port go again.

A detach is cast: the agent unplugs the NIC and lets go of the port, deleting one made
for the server and unbinding one the user gave (Nova's preserve_on_delete).
"""

from __future__ import annotations

from onestack.common import db, errors
from onestack.compute import clients, instances, network, policies, states
from onestack.compute import models as m

ATTACHABLE = (states.ACTIVE, states.PAUSED, states.STOPPED)
HOTPLUG_TIMEOUT = 180  # a guest under TCG takes its time


def _checked(s, ctx, uuid: str, rule: str, action: str, for_update: bool = False) -> m.Instance:
    """The server, once the caller may ``rule`` it and its lock and state allow ``action``."""
    inst = instances.get(s, ctx, uuid, for_update=for_update)
    policies.authorize(f"os-attach-interfaces:{rule}", ctx, {"project_id": inst.project_id})
    if inst.locked and not ctx.is_admin:
        raise errors.Conflict(f"Instance {inst.uuid} is locked")
    if inst.vm_state not in ATTACHABLE:
        raise errors.Conflict(f"Cannot '{action}' instance {inst.uuid} while it is in vm_state {inst.vm_state}")
    if inst.task_state is not None:
        raise errors.Conflict(f"Cannot '{action}' instance {inst.uuid} while it is in task_state "
                              f"{inst.task_state}")
    if not inst.host:
        raise errors.Conflict(f"Cannot '{action}' instance {inst.uuid}: it is not on any host")
    return inst


def _free_port(ctx, port_id: str) -> dict:
    try:
        port = clients.get().network.get(f"/v2.0/ports/{port_id}", token=ctx.auth_token)["port"]
    except errors.NotFound:
        raise errors.NotFound(f"Port {port_id} could not be found.") from None
    if port.get("device_id"):
        raise errors.Conflict(f"Port {port_id} is still in use.")
    return port


def _network_of(ctx, net_id: str | None) -> str:
    """The network asked for (404 if the user cannot see it), or the project's only one."""
    net = clients.get().network
    if net_id:
        try:
            return net.get(f"/v2.0/networks/{net_id}", token=ctx.auth_token)["network"]["id"]
        except errors.NotFound:
            raise errors.NotFound(f"Network {net_id} could not be found.") from None
    nets = [n for n in net.get("/v2.0/networks", token=ctx.auth_token)["networks"]
            if not n.get("router:external") and n.get("status") == "ACTIVE"]
    candidates = [n for n in nets if n.get("project_id") == ctx.project_id] or [n for n in nets if n.get("shared")]
    if not candidates:
        raise errors.BadRequest(f"No specific network was requested and none are available for project "
                                f"'{ctx.project_id}'.")
    if len(candidates) > 1:
        raise errors.BadRequest("Multiple possible networks found, use a Network ID to be more specific.")
    return candidates[0]["id"]


def _new_port(ctx, inst: m.Instance, network_id: str, fixed_ip: str | None) -> dict:
    """A port for the server on ``network_id``, made with the user's token and claimed for it."""
    body = {"network_id": network_id, "project_id": inst.project_id, "device_id": inst.uuid,
            "device_owner": "compute:" + (inst.availability_zone or "nova")}
    if fixed_ip:
        body["fixed_ips"] = [{"ip_address": fixed_ip}]
    groups = network.security_group_ids(inst.project_id, list(inst.security_groups or []))
    if groups is not None:
        body["security_groups"] = groups
    try:
        return clients.get().network.post("/v2.0/ports", json={"port": body}, token=ctx.auth_token)["port"]
    except errors.Conflict as e:
        if "Quota exceeded" in e.message:  # Nova's PortLimitExceeded
            raise errors.Forbidden("Maximum number of ports exceeded") from None
        raise


def attach(ctx, uuid: str, request_id: str, *, net_id: str | None = None, port_id: str | None = None,
           fixed_ip: str | None = None, tag: str | None = None) -> dict:
    """Plug a port into the server (one given, or one made on a network); the port as the
    user sees it afterwards."""
    if net_id and port_id:
        raise errors.BadRequest("Must not input both network_id and port_id")
    if fixed_ip and not net_id:
        raise errors.BadRequest("Must input network_id when request IP address")
    with db.session() as s:
        inst = _checked(s, ctx, uuid, "create", "attach_interface")
        s.expunge(inst)
    if port_id:
        port, preserve = _free_port(ctx, port_id), True
    else:
        port, preserve = _new_port(ctx, inst, _network_of(ctx, net_id), fixed_ip), False
    try:
        with db.transaction() as s:  # the state once more, now with the action recorded
            inst = _checked(s, ctx, uuid, "create", "attach_interface", for_update=True)
            instances.record_action(s, inst, ctx, "attach_interface", request_id)
            s.flush()
            s.expunge(inst)
        instances.call_host(inst, "attach_interface", timeout=HOTPLUG_TIMEOUT, port_id=port["id"],
                            preserve=preserve, tag=tag, request_id=request_id)
    except Exception:
        if not preserve:  # (the agent let go of what it bound already)
            try:
                clients.get().network.delete(f"/v2.0/ports/{port['id']}", ok=(204, 404))
            except errors.ApiError:
                pass
        raise
    return clients.get().network.get(f"/v2.0/ports/{port['id']}", token=ctx.auth_token)["port"]


def detach(ctx, uuid: str, port_id: str, request_id: str) -> None:
    """Record the detach and cast it to the server's host (the port is the server's)."""
    with db.transaction() as s:
        inst = _checked(s, ctx, uuid, "delete", "detach_interface", for_update=True)
        if not any(v.get("port_id") == port_id for v in inst.network_info or []):
            raise errors.NotFound(f"Port {port_id} is not attached")
        instances.record_action(s, inst, ctx, "detach_interface", request_id)
        host = inst.host
    instances.cast_to(host, "detach_interface", instance_uuid=uuid, port_id=port_id, request_id=request_id)
