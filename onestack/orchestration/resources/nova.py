"""OS::Nova::* types: Server, KeyPair, Flavor, ServerGroup, on the compute API."""

from __future__ import annotations

import base64
import json
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any

from onestack.common import errors
from onestack.orchestration.resources import constraints as c
from onestack.orchestration.resources.base import (
    BOOLEAN,
    INTEGER,
    LIST,
    MAP,
    NUMBER,
    STRING,
    Attribute,
    Constraint,
    Property,
    Resource,
    register,
)


def _allowed(*values) -> list[Constraint]:
    return [Constraint("allowed_values", list(values))]


def _custom(name: str) -> list[Constraint]:
    return [Constraint("custom_constraint", name)]


def _failed(server: dict) -> errors.ApiError:
    fault = server.get("fault") or {}
    return errors.Conflict(f'Went to status {server["status"]} due to "Message: '
                           f'{fault.get("message", "Unknown")}, Code: {fault.get("code", "Unknown")}"')


def user_data(props: dict[str, Any]) -> str | None:
    """The user data as Nova gets it (base64): RAW as given; the other formats in a
    multipart MIME message, as cloud-init reads Heat's."""
    data = props.get("user_data") or ""
    fmt = props.get("user_data_format") or "HEAT_CFNTOOLS"
    if fmt != "RAW" and data:
        msg = MIMEMultipart()
        subtype = ("x-shellscript" if data.startswith("#!") else "cloud-config"
                   if data.startswith("#cloud-config") else "plain")
        part = MIMEText(data, subtype, "utf-8")
        part.add_header("Content-Disposition", "attachment", filename="userdata")
        msg.attach(part)
        data = msg.as_string()
    if not data:
        return None
    return base64.b64encode(data.encode()).decode()


NETWORK_SCHEMA = {
    "network": Property(STRING, constraints=_custom("neutron.network")),
    "uuid": Property(STRING, constraints=_custom("neutron.network")),
    "allocate_network": Property(STRING, constraints=_allowed("none", "auto"), update_allowed=True),
    "fixed_ip": Property(STRING, constraints=_custom("ip_addr")),
    "port": Property(STRING, constraints=_custom("neutron.port")),
    "port_extra_properties": Property(MAP, update_allowed=True),
    "subnet": Property(STRING),
    "floating_ip": Property(STRING),
    "tag": Property(STRING),
}

BDM_V2_SCHEMA = {
    "device_name": Property(STRING),
    "volume_id": Property(STRING, constraints=_custom("cinder.volume")),
    "image": Property(STRING, constraints=_custom("glance.image")),
    "image_id": Property(STRING, constraints=_custom("glance.image")),
    "snapshot_id": Property(STRING, constraints=_custom("cinder.snapshot")),
    "swap_size": Property(INTEGER),
    "ephemeral_size": Property(INTEGER, constraints=[Constraint("range", {"min": 1})]),
    "ephemeral_format": Property(STRING, constraints=_allowed("ext2", "ext3", "ext4", "xfs", "ntfs")),
    "device_type": Property(STRING, constraints=_allowed("cdrom", "disk")),
    "disk_bus": Property(STRING, constraints=_allowed("ide", "lame_bus", "sata", "scsi", "usb", "virtio")),
    "boot_index": Property(INTEGER),
    "volume_size": Property(INTEGER),
    "delete_on_termination": Property(BOOLEAN),
    "volume_type": Property(STRING, constraints=_custom("cinder.vtype")),
}

BDM_SCHEMA = {
    "device_name": Property(STRING, required=True),
    "volume_id": Property(STRING, constraints=_custom("cinder.volume")),
    "snapshot_id": Property(STRING, constraints=_custom("cinder.snapshot")),
    "volume_size": Property(INTEGER),
    "delete_on_termination": Property(BOOLEAN),
}


@register("OS::Nova::Server")
class Server(Resource):
    """A virtual machine. Changes of name, metadata, tags and admin_pass are made in
    place, a flavor change resizes (and confirms), an image change rebuilds, as Heat
    does; the other properties replace the server."""

    REQUIRES_SERVICE = "compute"
    PROPERTIES = {
        "name": Property(STRING, update_allowed=True, description="Server name."),
        "image": Property(STRING, update_allowed=True, constraints=_custom("glance.image"),
                          description="The ID or name of the image to boot with."),
        "block_device_mapping": Property(LIST, schema=Property(MAP, schema=BDM_SCHEMA)),
        "block_device_mapping_v2": Property(LIST, schema=Property(MAP, schema=BDM_V2_SCHEMA)),
        "flavor": Property(STRING, required=True, update_allowed=True, constraints=_custom("nova.flavor"),
                           description="The ID or name of the flavor to boot onto."),
        "flavor_update_policy": Property(STRING, default="RESIZE", update_allowed=True,
                                         constraints=_allowed("RESIZE", "REPLACE")),
        "image_update_policy": Property(STRING, default="REBUILD", update_allowed=True,
                                        constraints=_allowed("REBUILD", "REPLACE", "REBUILD_PRESERVE_EPHEMERAL")),
        "key_name": Property(STRING, constraints=_custom("nova.keypair")),
        "availability_zone": Property(STRING),
        "security_groups": Property(LIST, default=[]),
        "networks": Property(LIST, update_allowed=True, schema=Property(MAP, schema=NETWORK_SCHEMA)),
        "scheduler_hints": Property(MAP),
        "metadata": Property(MAP, default={}, update_allowed=True),
        "user_data_format": Property(STRING, default="HEAT_CFNTOOLS",
                                     constraints=_allowed("HEAT_CFNTOOLS", "RAW", "SOFTWARE_CONFIG")),
        "software_config_transport": Property(STRING, default="POLL_SERVER_CFN", update_allowed=True,
                                              constraints=_allowed("POLL_SERVER_CFN", "POLL_SERVER_HEAT",
                                                                   "POLL_TEMP_URL", "ZAQAR_MESSAGE")),
        "user_data_update_policy": Property(STRING, default="REPLACE", update_allowed=True,
                                            constraints=_allowed("REPLACE", "IGNORE", "REBUILD")),
        "user_data": Property(STRING, default="", update_allowed=True),
        "reservation_id": Property(STRING),
        "config_drive": Property(BOOLEAN),
        "diskConfig": Property(STRING, constraints=_allowed("AUTO", "MANUAL")),
        "personality": Property(MAP, default={}),
        "admin_pass": Property(STRING, update_allowed=True),
        "tags": Property(LIST, update_allowed=True, schema=Property(STRING)),
        "deployment_swift_data": Property(MAP, default={}, update_allowed=True),
    }
    ATTRIBUTES = {
        "name": Attribute("Name of the server.", STRING),
        "addresses": Attribute("A dict of all network addresses with corresponding port_id and subnets.", MAP),
        "networks": Attribute("A dict of assigned network addresses of the form {net name: [ips], "
                              "net id: [ips]}.", MAP),
        "first_address": Attribute("Convenience attribute to fetch the first assigned network address."),
        "instance_name": Attribute("AWS compatible instance name.", STRING),
        "accessIPv4": Attribute("The manually assigned alternative public IPv4 address of the server.", STRING),
        "accessIPv6": Attribute("The manually assigned alternative public IPv6 address of the server.", STRING),
        "console_urls": Attribute("URLs of server's consoles.", MAP),
        "tags": Attribute("Tags from the server.", LIST),
        "os_collect_config": Attribute("The os-collect-config configuration for the server.", MAP),
        "show": Attribute("Detailed information about resource.", MAP),
    }

    @property
    def nova(self) -> c.Versioned:
        return c.compute(self.ctx)

    # ----------------------------------------------------------------- create
    def _nics(self, networks: list[dict] | None) -> list[dict] | str:
        """Nova's ``networks`` for the property; a subnet (without a port) gets a port of
        ours, made here and deleted with the server, as Heat's internal ports."""
        if not networks:
            return "auto"
        nics: list[dict] = []
        for net in networks:
            if net.get("allocate_network"):
                return net["allocate_network"]
            nic: dict[str, Any] = {}
            if net.get("tag"):
                nic["tag"] = net["tag"]
            network = net.get("network") or net.get("uuid")
            if net.get("port"):
                nic["port"] = c.resolve(c.find_port, self.ctx, net["port"])
            elif net.get("subnet"):
                nic["port"] = self._internal_port(network, net)
            else:
                nic["uuid"] = c.resolve(c.find_network, self.ctx, network)
                if net.get("fixed_ip"):
                    nic["fixed_ip"] = net["fixed_ip"]
            nics.append(nic)
        return nics

    def _internal_port(self, network: str | None, net: dict) -> str:
        subnet = c.find_subnet(self.ctx, net["subnet"])
        fixed = {"subnet_id": subnet["id"]}
        if net.get("fixed_ip"):
            fixed["ip_address"] = net["fixed_ip"]
        body = {"network_id": c.resolve(c.find_network, self.ctx, network) if network else subnet["network_id"],
                "fixed_ips": [fixed], "name": f"{c.physical_name(self)}-port-{len(self.data.get('ports', []))}",
                **(net.get("port_extra_properties") or {})}
        if body.get("security_groups"):
            body["security_groups"] = [c.resolve(c.find_security_group, self.ctx, g) for g in body["security_groups"]]
        port = self.client("network").post("/v2.0/ports", {"port": body})["port"]
        self.data.setdefault("ports", []).append(port["id"])
        return port["id"]

    def _block_devices(self) -> list[dict] | None:
        props = self.properties
        bdms: list[dict] = []
        for b in props.get("block_device_mapping") or []:  # the legacy form: volumes and snapshots
            bdm = {"device_name": b["device_name"], "boot_index": -1, "destination_type": "volume",
                   "delete_on_termination": bool(b.get("delete_on_termination"))}
            if b.get("volume_id"):
                bdm.update(source_type="volume", uuid=c.resolve(c.find_volume, self.ctx, b["volume_id"]))
            else:
                bdm.update(source_type="snapshot", uuid=b.get("snapshot_id"))
            if b.get("volume_size"):
                bdm["volume_size"] = b["volume_size"]
            bdms.append(bdm)
        for b in props.get("block_device_mapping_v2") or []:
            bdm: dict[str, Any] = {}
            image = b.get("image") or b.get("image_id")
            if b.get("volume_id"):
                bdm.update(source_type="volume", uuid=c.resolve(c.find_volume, self.ctx, b["volume_id"]),
                           destination_type="volume")
            elif b.get("snapshot_id"):
                bdm.update(source_type="snapshot", uuid=b["snapshot_id"], destination_type="volume")
            elif image:
                bdm.update(source_type="image", uuid=c.resolve(c.find_image, self.ctx, image),
                           destination_type="volume")
            elif b.get("swap_size"):
                bdm.update(source_type="blank", destination_type="local", guest_format="swap",
                           volume_size=b["swap_size"], boot_index=-1)
            elif b.get("ephemeral_size"):
                bdm.update(source_type="blank", destination_type="local", volume_size=b["ephemeral_size"],
                           boot_index=-1, guest_format=b.get("ephemeral_format"))
            else:
                bdm.update(source_type="blank", destination_type="volume")
            for key in ("device_name", "device_type", "disk_bus", "boot_index", "volume_size",
                        "delete_on_termination", "volume_type"):
                if b.get(key) is not None:
                    bdm[key] = b[key]
            if "boot_index" not in bdm:
                bdm["boot_index"] = 0 if bdm["source_type"] in ("volume", "snapshot", "image") else -1
            bdms.append({k: v for k, v in bdm.items() if v is not None})
        return bdms or None

    def _server_body(self, props: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": props.get("name") or c.physical_name(self, 53),
            "flavorRef": c.resolve(c.find_flavor, self.ctx, props["flavor"]),
            "networks": self._nics(props.get("networks")),
            "metadata": {k: v if isinstance(v, str) else json.dumps(v)
                         for k, v in (props.get("metadata") or {}).items()},
        }
        if props.get("image"):
            body["imageRef"] = c.resolve(c.find_image, self.ctx, props["image"])
        bdms = self._block_devices()
        if bdms:
            body["block_device_mapping_v2"] = bdms
            body.setdefault("imageRef", "")
        for prop, key in (("key_name", "key_name"), ("availability_zone", "availability_zone"),
                          ("config_drive", "config_drive"), ("diskConfig", "OS-DCF:diskConfig"),
                          ("admin_pass", "adminPass"), ("tags", "tags")):
            if props.get(prop) is not None:
                body[key] = props[prop]
        if props.get("security_groups"):
            body["security_groups"] = [{"name": g} for g in props["security_groups"]]
        ud = user_data(props)
        if ud:
            body["user_data"] = ud
        return body

    def handle_create(self) -> None:
        request: dict[str, Any] = {"server": self._server_body(self.properties)}
        if self.properties.get("scheduler_hints"):
            request["os:scheduler_hints"] = self.properties["scheduler_hints"]
        if self.properties.get("user_data_format") == "SOFTWARE_CONFIG":
            # what its agent polls: the configs deployed to it (resources.software adds them)
            self.metadata.setdefault("deployments", [])
        server = self.nova.post("/servers", request)["server"]
        self.resource_id = server["id"]

    def _server(self) -> dict:
        return self.nova.get(f"/servers/{self.resource_id}")["server"]

    def check_create_complete(self) -> bool:
        server = self._server()
        if server["status"] == "ERROR":
            raise _failed(server)
        if server["status"] != "ACTIVE":
            return False
        self._associate_floating_ips(server)
        return True

    def _associate_floating_ips(self, server: dict) -> None:
        neutron = self.client("network")
        for i, net in enumerate(self.properties.get("networks") or []):
            if not net.get("floating_ip"):
                continue
            ports = neutron.get("/v2.0/ports", params={"device_id": server["id"]})["ports"]
            want = net.get("port") and c.resolve(c.find_port, self.ctx, net["port"])
            want_net = (net.get("network") or net.get("uuid"))
            want_net = want_net and c.resolve(c.find_network, self.ctx, want_net)
            port = next((p for p in ports if p["id"] == want or (not want and p["network_id"] == want_net)),
                        ports[i] if i < len(ports) else None)
            if port:
                neutron.put(f"/v2.0/floatingips/{net['floating_ip']}", {"floatingip": {"port_id": port["id"]}})

    # ----------------------------------------------------------------- update
    def handle_update(self, new_properties: dict[str, Any], changed: set[str]) -> None:
        old, new = self.properties, new_properties
        server_id = self.resource_id
        if "flavor" in changed and new.get("flavor_update_policy") == "REPLACE":
            raise errors.Conflict("flavor_update_policy is REPLACE: the server must be replaced")
        if "image" in changed and new.get("image_update_policy") == "REPLACE":
            raise errors.Conflict("image_update_policy is REPLACE: the server must be replaced")
        update: dict[str, Any] = {}
        if "name" in changed:
            update["name"] = new.get("name") or c.physical_name(self, 53)
        if update:
            self.nova.put(f"/servers/{server_id}", {"server": update})
        if "metadata" in changed:
            meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (new.get("metadata") or {}).items()}
            self.nova.put(f"/servers/{server_id}/metadata", {"metadata": meta})
        if "tags" in changed:
            self.nova.put(f"/servers/{server_id}/tags", {"tags": new.get("tags") or []})
        if "admin_pass" in changed and new.get("admin_pass"):
            self.nova.post(f"/servers/{server_id}/action", {"changePassword": {"adminPass": new["admin_pass"]}})
        if "networks" in changed:
            self._update_networks(old.get("networks") or [], new.get("networks") or [])
        steps: list[dict] = []
        if "image" in changed or ("user_data" in changed and new.get("user_data_update_policy") == "REBUILD"):
            rebuild = {"imageRef": c.resolve(c.find_image, self.ctx, new["image"])}
            if new.get("image_update_policy") == "REBUILD_PRESERVE_EPHEMERAL":
                rebuild["preserve_ephemeral"] = True
            ud = user_data(new)
            if ud:
                rebuild["user_data"] = ud
            steps.append({"rebuild": rebuild})
        if "flavor" in changed:
            flavor = c.find_flavor(self.ctx, new["flavor"])
            self.data["flavor_name"] = flavor["name"]
            steps.append({"resize": {"flavorRef": flavor["id"]}})
        self.data["steps"] = steps
        self.data["step_started"] = False

    def _update_networks(self, old: list[dict], new: list[dict]) -> None:
        """Detach the interfaces of entries gone, attach those of entries added."""
        gone = [n for n in old if n not in new]
        added = [n for n in new if n not in old]
        neutron = self.client("network")
        ports = neutron.get("/v2.0/ports", params={"device_id": self.resource_id})["ports"]
        for net in gone:
            port_id = net.get("port") and c.resolve(c.find_port, self.ctx, net["port"])
            net_id = (net.get("network") or net.get("uuid"))
            net_id = net_id and c.resolve(c.find_network, self.ctx, net_id)
            for p in ports:
                if p["id"] == port_id or (not port_id and p["network_id"] == net_id):
                    self.nova.delete(f"/servers/{self.resource_id}/os-interface/{p['id']}")
                    if p["id"] in self.data.get("ports", []):
                        c.ignore_missing(lambda p=p: neutron.delete(f"/v2.0/ports/{p['id']}"))
                        self.data["ports"].remove(p["id"])
                    break
        nics = self._nics(added) if added else []
        for nic in nics if isinstance(nics, list) else []:
            body = {"port_id": nic["port"]} if "port" in nic else {"net_id": nic["uuid"]}
            if nic.get("fixed_ip"):
                body["fixed_ips"] = [{"ip_address": nic["fixed_ip"]}]
            self.nova.post(f"/servers/{self.resource_id}/os-interface", {"interfaceAttachment": body})

    def check_update_complete(self) -> bool:
        steps = self.data.get("steps") or []
        if not steps:
            return True
        server = self._server()
        if server["status"] == "ERROR":
            raise _failed(server)
        step = steps[0]
        if not self.data.get("step_started"):
            if server["status"] != "ACTIVE":
                return False
            self.nova.post(f"/servers/{self.resource_id}/action", step)
            self.data["step_started"] = True
            return False
        if "resize" in step and server["status"] == "VERIFY_RESIZE":
            self.nova.post(f"/servers/{self.resource_id}/action", {"confirmResize": None})
            return False
        if server["status"] != "ACTIVE" or server.get("OS-EXT-STS:task_state"):
            return False
        if "resize" in step and server["flavor"].get("original_name") != self.data.get("flavor_name"):
            return False  # (the resize has not begun yet)
        self.data["steps"] = steps[1:]
        self.data["step_started"] = False
        return not self.data["steps"]

    # ----------------------------------------------------------------- delete
    def handle_delete(self) -> None:
        if self.resource_id:
            c.ignore_missing(lambda: self.nova.delete(f"/servers/{self.resource_id}"))

    def check_delete_complete(self) -> bool:
        if self.resource_id:
            try:
                server = self._server()
            except errors.NotFound:
                server = None
            if server and server["status"] not in ("DELETED", "SOFT_DELETED"):
                if server["status"] == "ERROR" and server.get("OS-EXT-STS:task_state") is None \
                        and self.data.get("delete_retried") is None:
                    self.data["delete_retried"] = True  # a failed delete: ask once more, as Heat does
                    c.ignore_missing(lambda: self.nova.delete(f"/servers/{self.resource_id}"))
                return False
        neutron = self.client("network")
        for port in self.data.get("ports", []):
            c.ignore_missing(lambda port=port: neutron.delete(f"/v2.0/ports/{port}"))
        self.data["ports"] = []
        return True

    # ---------------------------------------------- suspend, resume and check
    def handle_suspend(self) -> None:
        self.nova.post(f"/servers/{self.resource_id}/action", {"suspend": None})

    def check_suspend_complete(self) -> bool:
        server = self._server()
        if server["status"] == "ERROR":
            raise _failed(server)
        return server["status"] == "SUSPENDED"

    def handle_resume(self) -> None:
        self.nova.post(f"/servers/{self.resource_id}/action", {"resume": None})

    def check_resume_complete(self) -> bool:
        server = self._server()
        if server["status"] == "ERROR":
            raise _failed(server)
        return server["status"] == "ACTIVE"

    def handle_check(self) -> None:
        server = self._server()
        if server["status"] != "ACTIVE":
            raise errors.Conflict(f"Server {self.resource_id} is {server['status']}, not ACTIVE")

    # ------------------------------------------------------------- attributes
    def _networks(self, server: dict) -> dict[str, list[str]]:
        """{net name: [ips], net id: [ips]} from the server's addresses."""
        names = {n["name"]: n["id"] for n in
                 self.client("network").get("/v2.0/networks", params={"fields": ["id", "name"]})["networks"]}
        out: dict[str, list[str]] = {}
        for name, addrs in (server.get("addresses") or {}).items():
            ips = [a["addr"] for a in addrs]
            out[name] = ips
            if name in names:
                out[names[name]] = ips
        return out

    def _addresses(self, server: dict) -> dict[str, list[dict]]:
        neutron = self.client("network")
        ports = neutron.get("/v2.0/ports", params={"device_id": server["id"]})["ports"]
        by_mac = {p["mac_address"]: p for p in ports}
        out: dict[str, list[dict]] = {}
        for name, addrs in (server.get("addresses") or {}).items():
            out[name] = []
            for a in addrs:
                a = dict(a)
                port = by_mac.get(a.get("OS-EXT-IPS-MAC:mac_addr"))
                if port:
                    a["port"] = port["id"]
                    a["network"] = {"id": port["network_id"], "name": name}
                    a["subnets"] = [{"id": f["subnet_id"]} for f in port.get("fixed_ips", [])]
                out[name].append(a)
        return out

    def attribute(self, name: str) -> Any:
        if name not in self.ATTRIBUTES:
            raise KeyError(name)
        if not self.resource_id:
            return None
        server = self._server()
        if name == "show":
            return server
        if name == "name":
            return server["name"]
        if name == "addresses":
            return self._addresses(server)
        if name == "networks":
            return self._networks(server)
        if name == "first_address":
            for addrs in (server.get("addresses") or {}).values():
                for a in addrs:
                    if a.get("version") == 4:
                        return a["addr"]
            return ""
        if name == "instance_name":
            return server.get("OS-EXT-SRV-ATTR:instance_name")
        if name in ("accessIPv4", "accessIPv6"):
            return server.get(name) or ""
        if name == "tags":
            return server.get("tags")
        if name == "console_urls":
            return self._console_urls()
        return None

    def _console_urls(self) -> dict[str, str]:
        urls = {}
        for kind, protocol in (("novnc", "vnc"), ("serial", "serial")):
            try:
                body = {"remote_console": {"protocol": protocol, "type": kind}}
                urls[kind] = self.nova.post(f"/servers/{self.resource_id}/remote-consoles", body)[
                    "remote_console"]["url"]
            except errors.ApiError as e:
                urls[kind] = e.message
        return urls

    def live_state(self) -> dict[str, Any] | None:
        server = self._server()
        return {"name": server["name"], "metadata": server.get("metadata") or {},
                "flavor": server["flavor"].get("original_name"), "tags": server.get("tags")}


@register("OS::Nova::KeyPair")
class KeyPair(Resource):
    """An SSH key pair: the public key given, or one generated (its private key kept as
    an attribute only when save_private_key is true)."""

    REQUIRES_SERVICE = "compute"
    PROPERTIES = {
        "name": Property(STRING, required=True, constraints=[Constraint("length", {"min": 1, "max": 255})],
                         description="The name of the key pair."),
        "save_private_key": Property(BOOLEAN, default=False,
                                     description="True if the system should remember a generated private key; "
                                                 "False otherwise."),
        "public_key": Property(STRING, description="The optional public key. This allows users to supply the "
                                                   "public key from a pre-existing key pair. If not supplied, a "
                                                   "new key pair will be generated."),
        "type": Property(STRING, constraints=_allowed("ssh", "x509"), description="Keypair type."),
        "user": Property(STRING, constraints=_custom("keystone.user"), description="ID or name of user."),
    }
    ATTRIBUTES = {
        "public_key": Attribute("The public key.", STRING),
        "private_key": Attribute("The private key if it has been saved.", STRING),
        "show": Attribute("Detailed information about resource.", MAP),
    }

    def handle_create(self) -> None:
        body: dict[str, Any] = {"name": self.properties["name"]}
        for key in ("public_key", "type"):
            if self.properties.get(key):
                body[key] = self.properties[key]
        if self.properties.get("user"):
            body["user_id"] = c.resolve(c.find_user, self.ctx, self.properties["user"])
        kp = c.compute(self.ctx).post("/os-keypairs", {"keypair": body})["keypair"]
        self.resource_id = kp["name"]
        self.data["public_key"] = kp["public_key"]
        if self.properties.get("save_private_key") and kp.get("private_key"):
            self.data["private_key"] = kp["private_key"]

    def handle_delete(self) -> None:
        if self.resource_id:
            c.compute(self.ctx).delete(f"/os-keypairs/{self.resource_id}")

    def handle_check(self) -> None:
        c.compute(self.ctx).get(f"/os-keypairs/{self.resource_id}")

    def attribute(self, name: str) -> Any:
        if name == "public_key":
            return self.data.get("public_key")
        if name == "private_key":
            return self.data.get("private_key", "")
        if name == "show":
            return self.resource_id and c.compute(self.ctx).get(f"/os-keypairs/{self.resource_id}")["keypair"]
        raise KeyError(name)


@register("OS::Nova::Flavor")
class Flavor(Resource):
    """A flavor (admin): extra_specs and the projects given access change in place."""

    REQUIRES_SERVICE = "compute"
    PROPERTIES = {
        "tenants": Property(LIST, default=[], update_allowed=True,
                            schema=Property(STRING, constraints=_custom("keystone.project")),
                            description="List of tenants with access to the flavor (a private one)."),
        "flavorid": Property(STRING, description="Unique ID of the flavor; generated if not given."),
        "name": Property(STRING, description="Name of the flavor."),
        "ram": Property(INTEGER, required=True, description="Memory in MB for the flavor."),
        "vcpus": Property(INTEGER, required=True, description="Number of VCPUs for the flavor."),
        "disk": Property(INTEGER, default=0, description="Size of local disk in GB."),
        "swap": Property(INTEGER, default=0, description="Swap space in MB."),
        "ephemeral": Property(INTEGER, default=0, description="Size of a secondary ephemeral data disk in GB."),
        "rxtx_factor": Property(NUMBER, default=1.0, description="RX/TX factor."),
        "extra_specs": Property(MAP, update_allowed=True, description="Key/Value pairs to extend the "
                                                                      "capabilities of the flavor."),
        "is_public": Property(BOOLEAN, default=True, description="Scope of flavor accessibility."),
    }
    ATTRIBUTES = {
        "is_public": Attribute("Whether the flavor is shared across all projects.", BOOLEAN),
        "extra_specs": Attribute("Extra specs of the flavor in key-value pairs.", MAP),
        "show": Attribute("Detailed information about resource.", MAP),
    }

    def handle_create(self) -> None:
        p = self.properties
        body = {"name": p.get("name") or c.physical_name(self), "ram": p["ram"], "vcpus": p["vcpus"],
                "disk": p.get("disk") or 0, "swap": p.get("swap") or 0, "rxtx_factor": p.get("rxtx_factor", 1.0),
                "OS-FLV-EXT-DATA:ephemeral": p.get("ephemeral") or 0,
                "os-flavor-access:is_public": p.get("is_public", True)}
        if p.get("flavorid"):
            body["id"] = p["flavorid"]
        nova = c.compute(self.ctx)
        self.resource_id = nova.post("/flavors", {"flavor": body})["flavor"]["id"]
        if p.get("extra_specs"):
            nova.post(f"/flavors/{self.resource_id}/os-extra_specs", {"extra_specs": p["extra_specs"]})
        for tenant in p.get("tenants") or []:
            self._access("addTenantAccess", tenant)

    def _access(self, action: str, tenant: str) -> None:
        project = c.resolve(c.find_project, self.ctx, tenant)
        c.compute(self.ctx).post(f"/flavors/{self.resource_id}/action", {action: {"tenant": project}})

    def handle_update(self, new_properties: dict[str, Any], changed: set[str]) -> None:
        nova = c.compute(self.ctx)
        if "extra_specs" in changed:
            old = self.properties.get("extra_specs") or {}
            for key in old:
                c.ignore_missing(lambda key=key: nova.delete(f"/flavors/{self.resource_id}/os-extra_specs/{key}"))
            if new_properties.get("extra_specs"):
                nova.post(f"/flavors/{self.resource_id}/os-extra_specs",
                          {"extra_specs": new_properties["extra_specs"]})
        if "tenants" in changed:
            old, new = set(self.properties.get("tenants") or []), set(new_properties.get("tenants") or [])
            for t in old - new:
                self._access("removeTenantAccess", t)
            for t in new - old:
                self._access("addTenantAccess", t)

    def handle_delete(self) -> None:
        if self.resource_id:
            c.compute(self.ctx).delete(f"/flavors/{self.resource_id}")

    def handle_check(self) -> None:
        c.compute(self.ctx).get(f"/flavors/{self.resource_id}")

    def attribute(self, name: str) -> Any:
        if name not in self.ATTRIBUTES:
            raise KeyError(name)
        flavor = c.compute(self.ctx).get(f"/flavors/{self.resource_id}")["flavor"]
        if name == "is_public":
            return flavor.get("os-flavor-access:is_public")
        if name == "extra_specs":
            return flavor.get("extra_specs") or {}
        return flavor


@register("OS::Nova::ServerGroup")
class ServerGroup(Resource):
    """A server group: its policy is what the scheduler keeps to for its members."""

    REQUIRES_SERVICE = "compute"
    PROPERTIES = {
        "name": Property(STRING, description="Server Group name."),
        "policies": Property(LIST, default=["anti-affinity"], schema=Property(STRING),
                             constraints=_allowed("anti-affinity", "affinity", "soft-anti-affinity",
                                                  "soft-affinity"),
                             description="A list of exactly one policy to apply."),
        "rules": Property(MAP, schema={"max_server_per_host": Property(NUMBER)},
                          description="Rules for the policy (max_server_per_host for anti-affinity)."),
    }
    ATTRIBUTES = {"show": Attribute("Detailed information about resource.", MAP)}

    def handle_create(self) -> None:
        policies = self.properties.get("policies") or ["anti-affinity"]
        body: dict[str, Any] = {"name": self.properties.get("name") or c.physical_name(self),
                                "policy": policies[0]}
        if self.properties.get("rules"):
            body["rules"] = {k: int(v) for k, v in self.properties["rules"].items() if v is not None}
        group = c.compute(self.ctx).post("/os-server-groups", {"server_group": body})["server_group"]
        self.resource_id = group["id"]

    def handle_delete(self) -> None:
        if self.resource_id:
            c.compute(self.ctx).delete(f"/os-server-groups/{self.resource_id}")

    def handle_check(self) -> None:
        c.compute(self.ctx).get(f"/os-server-groups/{self.resource_id}")

    def attribute(self, name: str) -> Any:
        if name == "show":
            return c.compute(self.ctx).get(f"/os-server-groups/{self.resource_id}")["server_group"]
        raise KeyError(name)
