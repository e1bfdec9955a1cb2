"""Autoscaling: OS::Heat::AutoScalingGroup (members of any resource definition, in a
child stack as Heat keeps them) and OS::Heat::ScalingPolicy (signalled through its
pre-signed ``alarm_url``, a plain POST without a token, or its ``signal_url`` / `openstack
stack resource signal` with one), plus AWS::AutoScaling::AutoScalingGroup,
LaunchConfiguration and ScalingPolicy, the CFN shapes of the same.

A policy's signal resizes its group within min/max, as Heat does: the alarm's state must
be ``alarm`` (an Aodh webhook body says so in ``current``; no state means alarm); the group
must be COMPLETE and not resizing already; its cooldown must be over. The cooldown, kept in
the group's metadata as Heat keeps it (``cooldown_end``: {time: reason}), starts when a
create, an update or a resize starts (Heat: when it ends). A signal that changes nothing
still leaves an event on the policy saying why. Shrinking removes the oldest (failed ones
first), growing adds members with fresh names.
"""

from __future__ import annotations

import base64
import math
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from onestack.common import errors
from onestack.orchestration import settings
from onestack.orchestration import template as tpl
from onestack.orchestration.resources.base import (
    INTEGER,
    LIST,
    MAP,
    NUMBER,
    STRING,
    Attribute,
    Constraint,
    NoActionRequired,
    Property,
    Resource,
    register,
)
from onestack.orchestration.resources.heat import NestedStack, physical_name

CHANGE, EXACT, PERCENT = "change_in_capacity", "exact_capacity", "percent_change_in_capacity"
CFN_TYPES = {"ChangeInCapacity": CHANGE, "ExactCapacity": EXACT, "PercentChangeInCapacity": PERCENT}


def new_capacity(current: int, adjustment: float, kind: str, min_step: int | None, lower: int,
                 upper: int) -> int:
    """Heat's arithmetic (heat.scaling.scalingutil): the size after an adjustment, within bounds."""
    kind = CFN_TYPES.get(kind, kind)
    if kind == CHANGE:
        size = current + adjustment
    elif kind == EXACT:
        size = adjustment
    else:  # a percentage rounds away from zero under one, towards zero above
        delta = current * adjustment / 100.0
        step = (math.ceil(delta) if delta > 0 else math.floor(delta)) if abs(delta) < 1.0 else int(delta)
        if min_step and min_step > abs(step):
            step = min_step if adjustment > 0 else -min_step
        size = current + step
    return int(max(lower, min(upper, size)))


def alarm_state(details: Any) -> str:
    """The alarm state a signal carries (Aodh's ``current``, CFN's ``state``); none: alarm."""
    if not isinstance(details, dict):
        return "alarm"
    return str(details.get("current", details.get("state", "alarm"))).lower()


def signal_summary(details: Any) -> str:
    """What arrived, worded as Heat words a signal in its events."""
    if details is None or details in ({}, {"data": None}):
        return "No signal details provided"
    if isinstance(details, dict) and {"previous", "current", "reason"} <= set(details):
        return "alarm state changed from {previous} to {current} ({reason})".format(**details)
    if isinstance(details, dict) and "state" in details:
        return f"alarm state changed to {details['state']}"
    return "Unknown"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def member_name() -> str:
    """A fresh member name: 12 lowercase letters and digits, like Heat's short ids."""
    return base64.b32encode(secrets.token_bytes(10)).decode().lower()[:12]


class _Group(NestedStack):
    """What both group shapes share: members in a child stack, resized by policies and updates."""

    SIZE_NAMES = ("min_size", "max_size", "desired_capacity")  # as validation errors name them

    # ------------------------------------------------------ to override
    def bounds(self, props: dict[str, Any]) -> tuple[int, int, int | None]:
        """(min, max, desired) of these properties."""
        raise NotImplementedError

    def cooldown(self, props: dict[str, Any]) -> float | None:
        raise NotImplementedError

    def member_definition(self, props: dict[str, Any]) -> dict[str, Any]:
        """One member's HOT resource definition."""
        raise NotImplementedError

    # ------------------------------------------------------ members
    def validate(self) -> None:
        lower, upper, desired = self.bounds(self.properties)
        if lower is None or upper is None:
            return
        if upper < lower:
            raise errors.BadRequest(f"{self.SIZE_NAMES[0]} can not be greater than {self.SIZE_NAMES[1]}")
        if lower < 0:
            raise errors.BadRequest("The size of AutoScalingGroup can not be less than zero")
        if desired is not None and not lower <= desired <= upper:
            raise errors.BadRequest(f"{self.SIZE_NAMES[2]} must be between {self.SIZE_NAMES[0]} and "
                                    f"{self.SIZE_NAMES[1]}")

    def members(self) -> list[str]:
        return list(self.data.get("members") or [])

    def _failed(self) -> set[str]:
        child = self._child()
        if not child or self.ctx is None:
            return set()
        return {r["name"] for r in self.ctx.nested_resources(child) if r["status"] == "FAILED"}

    def _resized(self, size: int) -> list[str]:
        """The member names after a resize: the oldest (failed ones first) go, new ones come last."""
        members = self.members()
        if size < len(members):
            failed = self._failed()
            order = [m for m in members if m in failed] + [m for m in members if m not in failed]
            gone = set(order[:len(members) - size])
            members = [m for m in members if m not in gone]
        return members + [member_name() for _ in range(size - len(members))]

    def rolling(self, props: dict[str, Any]) -> tuple[int, float]:
        """(batch size, pause in seconds) of a rolling update of the members' definition."""
        return 0, 0.0  # 0: every member at once

    def nested_template(self, properties: dict[str, Any]) -> tuple[dict, dict]:
        names = self.data.get("members")
        if names is None:  # preview, validation: the first members
            lower, _, desired = self.bounds(properties)
            names = [member_name() for _ in range(desired if desired is not None else lower or 0)]
        definition = self.member_definition(properties)
        stale = self.data.get("stale") or {}  # members a rolling update has not reached yet
        return {"heat_template_version": "2015-04-30",
                "resources": {n: stale.get(n, definition) for n in names}}, {}

    def _cooldown_from_now(self, seconds: float | None, reason: str) -> None:
        end = (_now() + timedelta(seconds=max(0.0, float(seconds or 0)))).isoformat()
        before = next(iter((self.metadata.get("cooldown_end") or {}).keys()), "")
        self.metadata = {**self.metadata, "cooldown_end": {max(end, before): reason},
                         "scaling_in_progress": False}

    # ------------------------------------------------------ lifecycle
    def handle_create(self) -> None:
        lower, _, desired = self.bounds(self.properties)
        size = desired if desired is not None else lower
        self.data["members"] = [member_name() for _ in range(size)]
        super().handle_create()
        self._cooldown_from_now(self.cooldown(self.properties), f"exact_capacity : {size}")

    def handle_update(self, new_properties: dict[str, Any], changed: set[str]) -> None:
        # as Heat: the desired capacity if set, else the size now, within the new bounds
        lower, upper, desired = self.bounds(new_properties)
        size = max(lower, min(upper, desired if desired is not None else len(self.members())))
        before = set(self.members())
        self.data["members"] = self._resized(size)
        new = self.member_definition(new_properties)
        batch, _ = self.rolling(new_properties)
        try:
            old = self.member_definition(self.properties) if batch else None
        except errors.ApiError:  # (what defined the members is gone: all at once)
            old = None
        kept = [m for m in self.data["members"] if m in before]
        # a new definition reaches the members in batches, oldest first (new members have it)
        self.data["stale"] = {m: old for m in kept[batch:]} if old is not None and old != new else {}
        self.data.pop("next_batch_at", None)
        self._new_properties = new_properties
        super().handle_update(new_properties, changed)
        self._cooldown_from_now(self.cooldown(new_properties), f"exact_capacity : {size}")

    def check_update_complete(self) -> bool:
        if not super().check_update_complete():
            return False
        stale = self.data.get("stale") or {}
        if not stale:
            return True
        props = getattr(self, "_new_properties", self.properties)
        batch, pause = self.rolling(props)
        now = _now().timestamp()
        if self.data.get("next_batch_at") is None:
            self.data["next_batch_at"] = now + pause
        if now < self.data["next_batch_at"]:
            return False
        for m in [m for m in self.members() if m in stale][:batch]:
            del stale[m]
        self.data["stale"] = stale
        self.data.pop("next_batch_at", None)
        template, params = self.nested_template(props)
        self.ctx.update_nested(self._child(), template, params, getattr(self.ctx, "files", {}))
        return False

    # ------------------------------------------------------ scaling
    def adjust(self, adjustment: float, kind: str, min_step: int | None, cooldown: float | None) -> str:
        """Resize by a policy's adjustment (raises NoActionRequired); what was done."""
        state = getattr(self, "state", None)
        if state is not None and state[1] != "COMPLETE":
            raise NoActionRequired(f"group {self.name} is {state[0]}_{state[1]}")
        child = self._child()
        if child is None:
            raise NoActionRequired(f"group {self.name} has no members' stack")
        if self.ctx.nested_state(child)[1] == "IN_PROGRESS":
            raise NoActionRequired(f"group {self.name} is already scaling")
        lower, upper, _ = self.bounds(self.properties)
        current = len(self.members())
        size = new_capacity(current, adjustment, kind, min_step, lower, upper)
        if size == current:
            raise NoActionRequired(f"group {self.name} stays at {current} (bounds {lower}..{upper})")
        end = next(iter((self.metadata.get("cooldown_end") or {}).keys()), None)
        if end and _now().isoformat() < end:
            raise NoActionRequired(f"group {self.name} is in cooldown until {end}Z")
        if cooldown is None:
            cooldown = self.cooldown(self.properties)
        self.data["members"] = self._resized(size)
        template, params = self.nested_template(self.properties)
        self.ctx.update_nested(child, template, params, getattr(self.ctx, "files", {}))
        done = f"group {self.name} resized from {current} to {size} ({kind} : {adjustment:g})"
        self._cooldown_from_now(cooldown, f"{kind} : {adjustment:g}")
        event = getattr(self.ctx, "event", None)
        if event is not None:
            event(self.name, f"Start resizing the group {self.name}: {done}")
        return done

    # ------------------------------------------------------ attributes
    def _member_refs(self) -> dict[str, Any]:
        child = self._child()
        made = {r["name"] for r in self.ctx.nested_resources(child)} if child else set()
        return {n: self.ctx.nested_member(child, n) for n in self.members() if n in made}

    def current_size(self) -> int:
        child = self._child()
        if child is None:
            return 0
        return sum(1 for r in self.ctx.nested_resources(child) if r["status"] != "FAILED")


@register("OS::Heat::AutoScalingGroup")
class AutoScalingGroup(_Group):
    """An autoscaling group that can scale arbitrary resources: ``resource`` is one
    member's definition in HOT (a type, commonly a template or OS::Nova::Server, with its
    properties and metadata); min_size..max_size members, desired_capacity at first."""

    PROPERTIES = {
        "resource": Property(MAP, "Resource definition for the resources in the group, in HOT format. The value "
                                  "of this property is the definition of a resource just as if it had been "
                                  "declared in the template itself.", required=True, update_allowed=True),
        "max_size": Property(INTEGER, "Maximum number of resources in the group.", required=True,
                             update_allowed=True, constraints=[Constraint("range", {"min": 0})]),
        "min_size": Property(INTEGER, "Minimum number of resources in the group.", required=True,
                             update_allowed=True, constraints=[Constraint("range", {"min": 0})]),
        "cooldown": Property(INTEGER, "Cooldown period, in seconds.", update_allowed=True),
        "desired_capacity": Property(INTEGER, "Desired initial number of resources.", update_allowed=True),
        "rolling_updates": Property(MAP, "Policy for rolling updates for this scaling group.", update_allowed=True,
                                    default={"min_in_service": 0, "max_batch_size": 1, "pause_time": 0}, schema={
                                        "min_in_service": Property(INTEGER, "The minimum number of resources in "
                                                                            "service while rolling updates are "
                                                                            "being executed.", default=0,
                                                                   constraints=[Constraint("range", {"min": 0})]),
                                        "max_batch_size": Property(INTEGER, "The maximum number of resources to "
                                                                            "replace at once.", default=1,
                                                                   constraints=[Constraint("range", {"min": 1})]),
                                        "pause_time": Property(NUMBER, "The number of seconds to wait between "
                                                                       "batches of updates.", default=0,
                                                               constraints=[Constraint("range", {"min": 0})])}),
    }
    ATTRIBUTES = {
        "outputs": Attribute("A map of resource names to the specified attribute of each individual resource "
                             "that is part of the AutoScalingGroup.", MAP),
        "outputs_list": Attribute("A list of the specified attribute of each individual resource that is part "
                                  "of the AutoScalingGroup.", LIST),
        "current_size": Attribute("The current size of AutoscalingResourceGroup.", INTEGER),
        "refs": Attribute("A list of resource IDs for the resources in the group.", LIST),
        "refs_map": Attribute("A map of resource names to IDs for the resources in the group.", MAP),
    }

    def bounds(self, props: dict[str, Any]) -> tuple[int, int, int | None]:
        return props.get("min_size"), props.get("max_size"), props.get("desired_capacity")

    def cooldown(self, props: dict[str, Any]) -> float | None:
        return props.get("cooldown")

    def rolling(self, props: dict[str, Any]) -> tuple[int, float]:
        policy = props.get("rolling_updates") or {}
        return int(policy.get("max_batch_size") or 1), float(policy.get("pause_time") or 0)

    def member_definition(self, props: dict[str, Any]) -> dict[str, Any]:
        rdef = props.get("resource") or {}
        if not isinstance(rdef, dict) or not rdef.get("type"):
            raise errors.BadRequest(f"Property error: resources.{self.name}.properties.resource: the member's "
                                    "definition needs a type.")
        return rdef

    def validate(self) -> None:
        super().validate()
        self.member_definition(self.properties)

    def attribute(self, name: str) -> Any:
        return self.path_attribute(name, [])

    def path_attribute(self, name: str, path: list) -> Any:
        """``get_attr`` with its path: ``outputs``/``outputs_list`` apply it to each member,
        as Heat does (``[group, outputs, first_address]``)."""
        child = self._child()
        if name == "current_size":
            return self.current_size()
        if name in ("refs", "refs_map"):
            refs = self._member_refs()
            return tpl.select_path(list(refs.values()) if name == "refs" else refs, path)
        if name in ("outputs", "outputs_list"):
            if child is None or not path:
                return None if child is None else ({} if name == "outputs" else [])
            values = {n: self.ctx.nested_member(child, n, str(path[0]), *path[1:]) for n in self._member_refs()}
            return values if name == "outputs" else list(values.values())
        if name.startswith("resource."):  # resource.<index>[.<attribute>]
            parts = name.split(".", 2)
            refs = list(self._member_refs())
            if not parts[1].isdigit() or int(parts[1]) >= len(refs):
                raise errors.NotFound(f"Member '{parts[1]}' not found in group resource '{self.name}'.")
            member = refs[int(parts[1])]
            if len(parts) == 2 and not path:
                return self.ctx.nested_member(child, member)
            attr_path = ([parts[2]] if len(parts) > 2 else []) + list(path)
            return self.ctx.nested_member(child, member, str(attr_path[0]), *attr_path[1:])
        if name == "show":
            return {"current_size": self.current_size(), "refs": list(self._member_refs().values())}
        raise KeyError(name)


@register("OS::Heat::ScalingPolicy")
class ScalingPolicy(Resource):
    """A resource to manage scaling of OS::Heat::AutoScalingGroup: a signal to its
    ``alarm_url`` (pre-signed: a plain POST, no token) or ``signal_url`` (with a token)
    adjusts the group by ``scaling_adjustment`` of ``adjustment_type``."""

    PROPERTIES = {
        "auto_scaling_group_id": Property(STRING, "AutoScaling group ID to apply policy to.", required=True),
        "scaling_adjustment": Property(NUMBER, "Size of adjustment.", required=True, update_allowed=True),
        "adjustment_type": Property(STRING, "Type of adjustment (absolute or percentage).", required=True,
                                    update_allowed=True,
                                    constraints=[Constraint("allowed_values", [CHANGE, EXACT, PERCENT])]),
        "cooldown": Property(NUMBER, "Cooldown period, in seconds.", update_allowed=True),
        "min_adjustment_step": Property(INTEGER, "Minimum number of resources that are added or removed when the "
                                                 "AutoScaling group scales up or down. This can be used only when "
                                                 "specifying percent_change_in_capacity for the adjustment_type "
                                                 "property.", update_allowed=True,
                                        constraints=[Constraint("range", {"min": 0})]),
    }
    ATTRIBUTES = {
        "alarm_url": Attribute("A signed url to handle the alarm.", STRING),
        "signal_url": Attribute("A url to handle the alarm using native API.", STRING),
    }
    GROUP, ADJUSTMENT, KIND, COOLDOWN, MIN_STEP = ("auto_scaling_group_id", "scaling_adjustment",
                                                   "adjustment_type", "cooldown", "min_adjustment_step")
    PERCENT_KIND = PERCENT

    def validate(self) -> None:
        if (self.properties.get(self.MIN_STEP) is not None
                and CFN_TYPES.get(self.properties.get(self.KIND), self.properties.get(self.KIND)) != PERCENT):
            raise errors.BadRequest(f"{self.MIN_STEP} property should only be specified for {self.KIND} with "
                                    f"value {self.PERCENT_KIND}.")

    def handle_create(self) -> None:
        self.resource_id = physical_name(self)

    def handle_update(self, new_properties: dict[str, Any], changed: set[str]) -> None:
        """Nothing to change outside: the next signal reads the new properties."""

    def handle_signal(self, details: dict[str, Any] | None) -> str:
        state = getattr(self, "state", None)
        if state is not None and state[0] in ("SUSPEND", "DELETE"):
            raise errors.BadRequest(f"Cannot signal resource during {state[0]}")
        what = signal_summary(details)
        group_ref = self.properties[self.GROUP]
        find = getattr(self.ctx, "peer", None)
        group = find(group_ref) if find else None
        if not isinstance(group, _Group):
            raise errors.NotFound(f'Alarm {self.name} could not find scaling group named "{group_ref}"')
        try:
            if alarm_state(details) != "alarm":
                raise NoActionRequired("the alarm state is not alarm")
            done = group.adjust(self.properties[self.ADJUSTMENT], self.properties[self.KIND],
                                self.properties.get(self.MIN_STEP), self.properties.get(self.COOLDOWN))
        except NoActionRequired as e:
            # an event says why, once: an alarm that repeats its actions every evaluation
            # would otherwise fill the stack's events with the same refusal
            if self.data.get("ignored") == str(e):
                raise
            self.data["ignored"] = str(e)
            return f"{what}: no scaling action, {e}"
        self.data.pop("ignored", None)
        return f"{what}: {done}"

    def attribute(self, name: str) -> Any:
        if name not in ("alarm_url", "signal_url", "AlarmUrl", "show"):
            raise KeyError(name)
        if self.resource_id is None:
            return None
        if name in ("alarm_url", "AlarmUrl"):
            return self.ctx.signal_url(self.name)
        url = (f"{settings.current.public_url}/orchestration/v1/{self.ctx.project_id}/stacks/"
               f"{self.ctx.stack_name}/{self.ctx.stack_id}/resources/{self.name}/signal")
        return url if name == "signal_url" else {"alarm_url": self.ctx.signal_url(self.name), "signal_url": url}


# ------------------------------------------------------------------ the CFN shapes
KEY_VALUE = Property(MAP, schema={"Key": Property(STRING, required=True), "Value": Property(STRING, required=True)})
LAUNCH_PROPERTIES = ("ImageId", "InstanceType", "KeyName", "UserData", "SecurityGroups", "KernelId", "RamDiskId",
                     "BlockDeviceMappings", "NovaSchedulerHints")


@register("AWS::AutoScaling::LaunchConfiguration")
class LaunchConfiguration(Resource):
    """The definition of the AWS::EC2::Instance members of an AWS::AutoScaling::AutoScalingGroup
    (makes nothing itself)."""

    PROPERTIES = {
        "ImageId": Property(STRING, "Glance image ID or name.",
                            constraints=[Constraint("custom_constraint", "glance.image")]),
        "InstanceType": Property(STRING, "Nova instance type (flavor).",
                                 constraints=[Constraint("custom_constraint", "nova.flavor")]),
        "KeyName": Property(STRING, "Optional Nova keypair name.",
                            constraints=[Constraint("custom_constraint", "nova.keypair")]),
        "UserData": Property(STRING, "User data to pass to instance."),
        "SecurityGroups": Property(LIST, "Security group names to assign."),
        "KernelId": Property(STRING, "Not Implemented."),
        "RamDiskId": Property(STRING, "Not Implemented."),
        "BlockDeviceMappings": Property(LIST, "Block device mappings to attach to instance."),
        "NovaSchedulerHints": Property(LIST, "Scheduler hints to pass to Nova (Heat extension).", schema=KEY_VALUE),
        "InstanceId": Property(STRING, "The ID of an existing instance you want to use to create the launch "
                                       "configuration (not supported here: give ImageId and InstanceType)."),
    }

    def validate(self) -> None:
        if self.properties.get("InstanceId"):
            raise errors.BadRequest("InstanceId is not supported: give ImageId and InstanceType.")
        missing = [k for k in ("ImageId", "InstanceType") if not self.properties.get(k)]
        if missing:
            raise errors.BadRequest(f"Property {missing[0]} not assigned")

    def handle_create(self) -> None:
        self.resource_id = physical_name(self)

    def reference_id(self) -> str | None:
        return self.resource_id or self.name


@register("AWS::AutoScaling::AutoScalingGroup")
class CfnAutoScalingGroup(_Group):
    """An AWS::EC2::Instance group sized MinSize..MaxSize, its members defined by a
    LaunchConfiguration; scaled by AWS::AutoScaling::ScalingPolicy."""

    SIZE_NAMES = ("MinSize", "MaxSize", "DesiredCapacity")
    PROPERTIES = {
        "AvailabilityZones": Property(LIST, "Not Implemented.", required=True),
        "LaunchConfigurationName": Property(STRING, "The reference to a LaunchConfiguration resource.",
                                            update_allowed=True),
        "InstanceId": Property(STRING, "The ID of an existing instance to use to create the Auto Scaling group "
                                       "(not supported here: give LaunchConfigurationName)."),
        "MaxSize": Property(INTEGER, "Maximum number of instances in the group.", required=True,
                            update_allowed=True),
        "MinSize": Property(INTEGER, "Minimum number of instances in the group.", required=True,
                            update_allowed=True),
        "Cooldown": Property(INTEGER, "Cooldown period, in seconds.", update_allowed=True),
        "DesiredCapacity": Property(INTEGER, "Desired initial number of instances.", update_allowed=True),
        "HealthCheckGracePeriod": Property(INTEGER, "Not Implemented."),
        "HealthCheckType": Property(STRING, "Not Implemented.",
                                    constraints=[Constraint("allowed_values", ["EC2", "ELB"])]),
        "LoadBalancerNames": Property(LIST, "List of LoadBalancer resources (not supported here)."),
        "VPCZoneIdentifier": Property(LIST, "Use only with Neutron, to list the internal subnet to which the "
                                            "instance will be attached; needed only if multiple exist; list "
                                            "length must be exactly 1.", schema=Property(STRING)),
        "Tags": Property(LIST, "Tags to attach to this group.", schema=KEY_VALUE),
    }
    ATTRIBUTES = {"InstanceList": Attribute("A comma-delimited list of server ip addresses. (Heat extension).",
                                            STRING)}

    def bounds(self, props: dict[str, Any]) -> tuple[int, int, int | None]:
        return props.get("MinSize"), props.get("MaxSize"), props.get("DesiredCapacity")

    def cooldown(self, props: dict[str, Any]) -> float | None:
        return props.get("Cooldown")

    def validate(self) -> None:
        super().validate()
        if self.properties.get("InstanceId") or not self.properties.get("LaunchConfigurationName"):
            raise errors.BadRequest("Either 'InstanceId' or 'LaunchConfigurationName' must be provided "
                                    "(here: LaunchConfigurationName).")
        if len(self.properties.get("VPCZoneIdentifier") or []) > 1:
            raise errors.BadRequest("Anything other than one VPCZoneIdentifier is not supported")
        if self.properties.get("LoadBalancerNames"):
            raise errors.BadRequest("LoadBalancerNames is not supported.")

    def member_definition(self, props: dict[str, Any]) -> dict[str, Any]:
        find = getattr(self.ctx, "peer", None)
        config = find(props.get("LaunchConfigurationName")) if find else None
        if config is None:
            if self.ctx is None:  # preview: the members' type only
                return {"type": "AWS::EC2::Instance"}
            raise errors.BadRequest(f"LaunchConfiguration {props.get('LaunchConfigurationName')!r} not found")
        member = {k: config.properties[k] for k in LAUNCH_PROPERTIES if config.properties.get(k) is not None}
        group = f"{self.ctx.stack_name}-{self.name}"
        member["Tags"] = [*(props.get("Tags") or []), {"Key": "metering.groupname", "Value": group},
                          {"Key": "metering.AutoScalingGroupName", "Value": group}]
        if props.get("VPCZoneIdentifier"):
            member["SubnetId"] = props["VPCZoneIdentifier"][0]
        return {"type": "AWS::EC2::Instance", "properties": member}

    def attribute(self, name: str) -> Any:
        if name not in ("InstanceList", "show"):
            raise KeyError(name)
        child = self._child()
        ips = [self.ctx.nested_member(child, n, "PublicIp") or "0.0.0.0" for n in self._member_refs()] \
            if child else []
        return ",".join(ips) if name == "InstanceList" else {"InstanceList": ",".join(ips)}


@register("AWS::AutoScaling::ScalingPolicy")
class CfnScalingPolicy(ScalingPolicy):
    """A scaling policy of an AWS::AutoScaling::AutoScalingGroup: its reference (Ref) and
    AlarmUrl are the pre-signed URL an alarm POSTs to."""

    PROPERTIES = {
        "AutoScalingGroupName": Property(STRING, "AutoScaling group name to apply policy to.", required=True),
        "ScalingAdjustment": Property(NUMBER, "Size of adjustment.", required=True, update_allowed=True),
        "AdjustmentType": Property(STRING, "Type of adjustment (absolute or percentage).", required=True,
                                   update_allowed=True, constraints=[Constraint("allowed_values", list(CFN_TYPES))]),
        "Cooldown": Property(NUMBER, "Cooldown period, in seconds.", update_allowed=True),
        "MinAdjustmentStep": Property(INTEGER, "Minimum number of resources that are added or removed when the "
                                               "AutoScaling group scales up or down. This can be used only when "
                                               "specifying PercentChangeInCapacity for the AdjustmentType "
                                               "property.", update_allowed=True,
                                      constraints=[Constraint("range", {"min": 0})]),
    }
    ATTRIBUTES = {"AlarmUrl": Attribute("A signed url to handle the alarm. (Heat extension).", STRING)}
    GROUP, ADJUSTMENT, KIND, COOLDOWN, MIN_STEP = ("AutoScalingGroupName", "ScalingAdjustment", "AdjustmentType",
                                                   "Cooldown", "MinAdjustmentStep")
    PERCENT_KIND = "PercentChangeInCapacity"

    def reference_id(self) -> str | None:
        return self.ctx.signal_url(self.name) if self.resource_id and self.ctx is not None else self.name

    def attribute(self, name: str) -> Any:
        if name not in ("AlarmUrl", "show"):
            raise KeyError(name)
        url = self.ctx.signal_url(self.name) if self.resource_id else None
        return url if name == "AlarmUrl" else {"AlarmUrl": url}
