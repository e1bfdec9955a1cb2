"""AWS::* (CloudFormation) types mapped onto the OpenStack ones: AWS::EC2::Instance is a
compute server (OS::Nova::Server under CFN property names); the CFN wait condition and
its handle are OS::Heat's under CFN names. (AWS::CloudFormation::Stack, a nested stack,
is the engine's.)"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from onestack.common import errors
from onestack.orchestration.resources import constraints as c
from onestack.orchestration.resources import heat
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
    register,
)
from onestack.orchestration.resources.nova import Server


def _custom(name: str) -> list[Constraint]:
    return [Constraint("custom_constraint", name)]


KEY_VALUE = Property(MAP, schema={"Key": Property(STRING, required=True), "Value": Property(STRING, required=True)})

# CFN property -> the server property it changes (for updates)
_SERVER_PROPERTY = {"InstanceType": "flavor", "Tags": "metadata", "NetworkInterfaces": "networks",
                    "SubnetId": "networks", "ImageId": "image", "UserData": "user_data"}


@register("AWS::EC2::Instance")
class Instance(Server):
    """An EC2 instance as a compute server: InstanceType resizes in place, Tags become
    metadata, SubnetId/NetworkInterfaces its ports, Volumes attached once it is ACTIVE."""

    PROPERTIES = {
        "ImageId": Property(STRING, required=True, constraints=_custom("glance.image"),
                            description="Glance image ID or name."),
        "InstanceType": Property(STRING, required=True, update_allowed=True, constraints=_custom("nova.flavor"),
                                 description="Nova instance type (flavor)."),
        "KeyName": Property(STRING, constraints=_custom("nova.keypair"), description="Optional Nova keypair "
                                                                                     "name."),
        "AvailabilityZone": Property(STRING, description="Availability zone to launch the instance in."),
        "DisableApiTermination": Property(STRING, description="Not Implemented."),
        "KernelId": Property(STRING, description="Not Implemented."),
        "Monitoring": Property(BOOLEAN, description="Not Implemented."),
        "PlacementGroupName": Property(STRING, description="Not Implemented."),
        "PrivateIpAddress": Property(STRING, description="Not Implemented."),
        "RamDiskId": Property(STRING, description="Not Implemented."),
        "SecurityGroups": Property(LIST, description="Security group names to assign."),
        "SecurityGroupIds": Property(LIST, description="Security group IDs to assign."),
        "NetworkInterfaces": Property(LIST, update_allowed=True, description="Network interfaces to associate "
                                                                             "with instance."),
        "SourceDestCheck": Property(BOOLEAN, description="Not Implemented."),
        "SubnetId": Property(STRING, update_allowed=True, description="Subnet ID to launch instance in."),
        "Tags": Property(LIST, update_allowed=True, schema=KEY_VALUE, description="Tags to attach to instance."),
        "NovaSchedulerHints": Property(LIST, schema=KEY_VALUE, description="Scheduler hints to pass to Nova "
                                                                           "(Heat extension)."),
        "Tenancy": Property(STRING, constraints=[Constraint("allowed_values", ["dedicated", "default"])],
                            description="Not Implemented."),
        "UserData": Property(STRING, description="User data to pass to instance."),
        "Volumes": Property(LIST, default=[], schema=Property(MAP, schema={
            "Device": Property(STRING, required=True, description="The device where the volume is exposed on "
                                                                  "the instance."),
            "VolumeId": Property(STRING, required=True, constraints=_custom("cinder.volume"),
                                 description="The ID of the volume to be attached.")}),
            description="Volumes to attach to instance."),
        "BlockDeviceMappings": Property(LIST, schema=Property(MAP, schema={
            "DeviceName": Property(STRING, required=True),
            "Ebs": Property(MAP, schema={
                "DeleteOnTermination": Property(BOOLEAN, default=True),
                "Iops": Property(NUMBER),
                "SnapshotId": Property(STRING, constraints=_custom("cinder.snapshot")),
                "VolumeSize": Property(STRING),
                "VolumeType": Property(LIST)}),
            "NoDevice": Property(MAP),
            "VirtualName": Property(STRING)}),
            description="Block device mappings to attach to instance."),
    }
    ATTRIBUTES = {
        "AvailabilityZone": Attribute("The Availability Zone where the specified instance is launched.", STRING),
        "PrivateDnsName": Attribute("Private DNS name of the specified instance.", STRING),
        "PublicDnsName": Attribute("Public DNS name of the specified instance.", STRING),
        "PrivateIp": Attribute("Private IP address of the specified instance.", STRING),
        "PublicIp": Attribute("Public IP address of the specified instance.", STRING),
    }

    # the engine gives (and after an update, sets) CFN properties; Server's code reads
    # the server properties they stand for
    @property
    def properties(self) -> dict[str, Any]:
        return self._server_properties

    @properties.setter
    def properties(self, value: dict[str, Any]) -> None:
        self.cfn_properties = value
        self._server_properties = self.server_properties(value)

    @staticmethod
    def server_properties(p: dict[str, Any]) -> dict[str, Any]:
        groups = [*(p.get("SecurityGroups") or []), *(p.get("SecurityGroupIds") or [])]
        out: dict[str, Any] = {
            "image": p.get("ImageId"), "flavor": p.get("InstanceType"), "key_name": p.get("KeyName"),
            "availability_zone": p.get("AvailabilityZone"), "user_data": p.get("UserData") or "",
            "user_data_format": "HEAT_CFNTOOLS", "flavor_update_policy": "RESIZE",
            "image_update_policy": "REPLACE", "user_data_update_policy": "REPLACE",
            "metadata": {t["Key"]: t["Value"] for t in p.get("Tags") or []},
            "scheduler_hints": {h["Key"]: h["Value"] for h in p.get("NovaSchedulerHints") or []} or None,
            "security_groups": [], "networks": None,
        }
        interfaces = p.get("NetworkInterfaces") or []
        if interfaces:
            ordered = sorted(interfaces, key=lambda i: int(i.get("DeviceIndex", 0)) if isinstance(i, dict) else 0)
            out["networks"] = [{"port": i["NetworkInterfaceId"] if isinstance(i, dict) else i} for i in ordered]
        elif p.get("SubnetId"):
            net: dict[str, Any] = {"subnet": p["SubnetId"], "fixed_ip": p.get("PrivateIpAddress")}
            if groups:
                net["port_extra_properties"] = {"security_groups": groups}
            out["networks"] = [net]
        else:
            out["security_groups"] = groups
        bdms = []
        for m in p.get("BlockDeviceMappings") or []:
            ebs = m.get("Ebs") or {}
            if ebs.get("SnapshotId"):
                bdms.append({"device_name": m["DeviceName"], "snapshot_id": ebs["SnapshotId"],
                             "volume_size": int(ebs["VolumeSize"]) if ebs.get("VolumeSize") else None,
                             "delete_on_termination": ebs.get("DeleteOnTermination", True)})
        out["block_device_mapping"] = bdms or None
        return out

    def validate(self) -> None:
        p = self.cfn_properties
        if p.get("NetworkInterfaces") and p.get("SubnetId"):
            raise errors.BadRequest("Cannot define the following properties at the same time: NetworkInterfaces, "
                                    "SubnetId")

    def check_create_complete(self) -> bool:
        if not self.data.get("active"):
            if not super().check_create_complete():
                return False
            self.data["active"] = True
        return self._attach_volumes()

    def _attach_volumes(self) -> bool:
        """Attach the Volumes one at a time; True once all are in-use."""
        done = self.data.setdefault("volumes_attached", [])
        for vol in self.cfn_properties.get("Volumes") or []:
            vid = c.resolve(c.find_volume, self.ctx, vol["VolumeId"])
            if vid in done:
                continue
            status = c.volume(self.ctx).get(f"/volumes/{vid}")["volume"]["status"]
            if status == "in-use":
                done.append(vid)
                continue
            if status.startswith("error"):
                raise errors.Conflict(f"Failed to attach volume {vid} to instance {self.resource_id} "
                                      f"(volume status {status})")
            if status == "available":
                c.compute(self.ctx).post(f"/servers/{self.resource_id}/os-volume_attachments",
                                         {"volumeAttachment": {"volumeId": vid, "device": vol["Device"]}})
            return False
        return True

    def handle_update(self, new_properties: dict[str, Any], changed: set[str]) -> None:
        server_changed = {_SERVER_PROPERTY[k] for k in changed if k in _SERVER_PROPERTY}
        super().handle_update(self.server_properties(new_properties), server_changed)

    def attribute(self, name: str) -> Any:
        if name not in self.ATTRIBUTES:
            raise KeyError(name)
        if not self.resource_id:
            return None
        server = self._server()
        if name == "AvailabilityZone":
            return server.get("OS-EXT-AZ:availability_zone")
        # the first IPv4 address (Server's first_address, not an attribute of this type)
        for addrs in (server.get("addresses") or {}).values():
            for a in addrs:
                if a.get("version") == 4:
                    return a["addr"]
        return ""


@register("AWS::CloudFormation::WaitConditionHandle")
class CfnWaitConditionHandle(heat.WaitConditionHandle):
    """OS::Heat::WaitConditionHandle under its CFN name: its reference (Ref) is the URL a
    guest signals, with CFN's body ``{"Status", "Reason", "UniqueId", "Data"}``."""

    ATTRIBUTES = {}

    def reference_id(self) -> str | None:
        return self.ctx.signal_url(self.name)

    def handle_signal(self, details: dict[str, Any] | None) -> None:
        if isinstance(details, dict) and "Status" in details:
            details = {"status": details.get("Status"), "reason": details.get("Reason"),
                       "id": details.get("UniqueId"), "data": details.get("Data")}
        super().handle_signal(details)


def _handle_name(url: str) -> str:
    """The handle resource's name in its signal URL (``.../signal/<stack>/<name>?sig=``)."""
    return unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])


@register("AWS::CloudFormation::WaitCondition")
class CfnWaitCondition(heat.WaitCondition):
    """OS::Heat::WaitCondition under CFN property names (Handle is the handle's URL)."""

    PROPERTIES = {
        "Handle": Property(STRING, required=True, description="A reference to the wait condition handle used to "
                                                              "signal this wait condition."),
        "Timeout": Property(INTEGER, required=True, constraints=[Constraint("range", {"min": 1, "max": 43200})],
                            description="The number of seconds to wait for the correct number of signals to "
                                        "arrive."),
        "Count": Property(INTEGER, default=1, update_allowed=True, constraints=[Constraint("range", {"min": 1})],
                          description="The number of success signals that must be received before the stack "
                                      "creation process continues."),
    }
    ATTRIBUTES = {"Data": Attribute("JSON string containing data associated with wait condition signals sent to "
                                    "the handle.", STRING)}

    @property
    def properties(self) -> dict[str, Any]:
        return self._heat_properties

    @properties.setter
    def properties(self, value: dict[str, Any]) -> None:
        self.cfn_properties = value
        self._heat_properties = {"handle": _handle_name(value.get("Handle") or ""), "timeout": value.get("Timeout"),
                                 "count": value.get("Count") or 1}

    def attribute(self, name: str) -> Any:
        if name == "Data":
            return super().attribute("data")
        return super().attribute(name)
