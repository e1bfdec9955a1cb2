"""Software deployments: OS::Heat::SoftwareDeployment (one config to one server),
StructuredDeployment (a StructuredConfig with ``get_input`` filled in), and their
groups (SoftwareDeploymentGroup/SoftwareDeployments, StructuredDeploymentGroup/
StructuredDeployments: one deployment per server of a map, in a child stack).

As Heat does it: each action in ``actions`` derives a config (the source config's
inputs with their values, plus ``deploy_server_id``, ``deploy_action``,
``deploy_signal_id`` ...), and puts it on a ``/software_deployments`` row IN_PROGRESS;
the service lists it in the server resource's ``deployments`` metadata, which the
server's agent polls. The agent runs it and POSTs its outputs
(``{"deploy_stdout", "deploy_stderr", "deploy_status_code", <outputs>}``) to
``deploy_signal_id``, a URL that takes a POST without a token (CFN_SIGNAL, the
default); the deployment becomes COMPLETE, or FAILED on a non-zero status code or an
``error_output``. NO_SIGNAL completes at once. A stack timeout or cancel makes an
IN_PROGRESS deployment FAILED.
"""

from __future__ import annotations

from typing import Any

from onestack.common import errors
from onestack.orchestration.resources.base import (
    LIST,
    MAP,
    STRING,
    Attribute,
    Constraint,
    Property,
    Resource,
    register,
)
from onestack.orchestration.resources.heat import NestedStack, physical_name

ACTIONS = ["CREATE", "UPDATE", "DELETE", "SUSPEND", "RESUME"]
TRANSPORTS = ["CFN_SIGNAL", "TEMP_URL_SIGNAL", "HEAT_SIGNAL", "NO_SIGNAL", "ZAQAR_SIGNAL"]
OUTPUTS = ("deploy_stdout", "deploy_stderr", "deploy_status_code")

PROPERTIES = {
    "config": Property(STRING, "ID of software configuration resource to execute when applying to the server.",
                       update_allowed=True),
    "server": Property(STRING, "ID of resource to apply configuration to. Normally this should be a Nova "
                               "server ID.", required=True),
    "input_values": Property(MAP, "Input values to apply to the software configuration on this server.",
                             update_allowed=True),
    "actions": Property(LIST, "Which lifecycle actions of the deployment resource will result in this "
                              "deployment being triggered.", default=["CREATE", "UPDATE"], update_allowed=True,
                        schema=Property(STRING, constraints=[Constraint("allowed_values", ACTIONS)])),
    "name": Property(STRING, "Name of the derived config associated with this deployment. This is used to "
                             "apply a sort order to the list of configurations currently deployed to a "
                             "server.", update_allowed=True),
    "signal_transport": Property(STRING, "How the server should signal to heat with the deployment output "
                                         "values. CFN_SIGNAL allows an HTTP POST to a signed URL; NO_SIGNAL "
                                         "completes without waiting for any signal.", default="CFN_SIGNAL",
                                 constraints=[Constraint("allowed_values", TRANSPORTS)]),
}


class DeploymentFailed(errors.BadRequest):
    heat_type = "Error"


@register("OS::Heat::SoftwareDeployment")
class SoftwareDeployment(Resource):
    """Associates a server with a software config; waits for the server to signal the
    outputs of applying it (unless signal_transport is NO_SIGNAL)."""

    PROPERTIES = PROPERTIES
    ATTRIBUTES = {
        "deploy_stdout": Attribute("Captured stdout from the configuration execution.", STRING),
        "deploy_stderr": Attribute("Captured stderr from the configuration execution.", STRING),
        "deploy_status_code": Attribute("Returned status code from the configuration execution.", STRING),
    }
    ANY_ATTRIBUTE = True  # the config's outputs are attributes too

    def _api(self):
        return self.client("orchestration")

    def _source(self) -> dict:
        config_id = self.properties.get("config")
        if not config_id:
            return {"inputs": [], "outputs": [], "options": {}, "config": ""}
        return self._api().get(f"/software_configs/{config_id}")["software_config"]

    def derived_config(self, action: str, source: dict, inputs: list[dict]) -> Any:
        """The config the server runs (StructuredDeployment fills in its inputs)."""
        return source.get("config") or ""

    def _inputs(self, action: str, source: dict) -> list[dict]:
        values = dict(self.properties.get("input_values") or {})
        out = []
        for i in source.get("inputs") or []:
            out.append({**i, "value": values.pop(i.get("name"), i.get("default"))})
        out += [{"name": k, "value": v, "type": "String"} for k, v in values.items()]
        transport = self.properties.get("signal_transport") or "CFN_SIGNAL"
        extra = [("deploy_server_id", self.properties["server"], "ID of the server being deployed to"),
                 ("deploy_action", action, "Name of the current action being deployed"),
                 ("deploy_stack_id", f"{self.ctx.stack_name}/{self.ctx.stack_id}",
                  "ID of the stack this deployment belongs to"),
                 ("deploy_resource_name", self.name, "Name of this deployment resource in the stack"),
                 ("deploy_signal_transport", transport,
                  "How the server should signal to heat with the deployment output values.")]
        if transport != "NO_SIGNAL":
            # every signalling transport is offered as the signed URL (POST, no token)
            extra += [("deploy_signal_id", self.ctx.signal_url(self.name),
                       "ID of signal to use for signaling output values"),
                      ("deploy_signal_verb", "POST", "HTTP verb to use for signaling output values")]
        return out + [{"name": n, "value": v, "type": "String", "description": d} for n, v, d in extra]

    def _trigger(self, action: str) -> bool:
        """Deploy for ``action`` if it is one of ``actions``; whether there is a signal to wait for."""
        if action not in (self.properties.get("actions") or []):
            return False
        source = self._source()
        inputs = self._inputs(action, source)
        derived = self._api().post("/software_configs", {
            "name": self.properties.get("name") or source.get("name") or physical_name(self),
            "group": source.get("group") or "Heat::Ungrouped",
            "config": self.derived_config(action, source, inputs), "options": source.get("options") or {},
            "inputs": inputs, "outputs": source.get("outputs") or []})["software_config"]
        no_signal = self.properties.get("signal_transport") == "NO_SIGNAL"
        body = {"config_id": derived["id"], "action": action,
                "input_values": self.properties.get("input_values") or {},
                "status": "COMPLETE" if no_signal else "IN_PROGRESS",
                "status_reason": "Not waiting for outputs signal" if no_signal else "Deploy data available"}
        previous = self.data.get("derived_config_id")
        if self.resource_id is None:
            sd = self._api().post("/software_deployments", {**body, "server_id": self.properties["server"]})
            self.resource_id = sd["software_deployment"]["id"]
        else:
            self._api().put(f"/software_deployments/{self.resource_id}", body)
        self.data["derived_config_id"] = derived["id"]
        if previous:
            self._drop_config(previous)
        return not no_signal

    def _drop_config(self, config_id: str) -> None:
        try:
            self._api().delete(f"/software_configs/{config_id}")
        except errors.NotFound:
            pass

    def _complete(self) -> bool:
        if not self.data.get("waiting"):
            return True
        sd = self._api().get(f"/software_deployments/{self.resource_id}")["software_deployment"]
        if sd["status"] == "COMPLETE":
            return True
        if sd["status"] == "FAILED":
            raise DeploymentFailed(f"Deployment to server failed: {sd.get('status_reason')}")
        return False

    def _act(self, action: str) -> None:
        self.data["waiting"] = self._trigger(action)

    def handle_create(self) -> None:
        self._act("CREATE")

    def check_create_complete(self) -> bool:
        return self._complete()

    def handle_update(self, new_properties: dict[str, Any], changed: set[str]) -> None:
        self.properties = new_properties
        self._act("UPDATE")

    def check_update_complete(self) -> bool:
        return self._complete()

    def handle_suspend(self) -> None:
        self._act("SUSPEND")

    def check_suspend_complete(self) -> bool:
        return self._complete()

    def handle_resume(self) -> None:
        self._act("RESUME")

    def check_resume_complete(self) -> bool:
        return self._complete()

    def handle_delete(self) -> None:
        self.data["waiting"] = False
        if (self.resource_id is not None and "DELETE" in (self.properties.get("actions") or [])
                and self._server_exists()):
            try:
                self._act("DELETE")
            except errors.NotFound:
                self.data["waiting"] = False

    def _server_exists(self) -> bool:
        try:
            self.client("compute").get(f"/servers/{self.properties['server']}")
        except errors.NotFound:
            return False
        except errors.ApiError:
            return True  # unknown: as if it were there
        return True

    def check_delete_complete(self) -> bool:
        if self.data.get("waiting") and self._server_exists() and not self._complete():
            return False
        if self.resource_id is not None:
            try:
                self._api().delete(f"/software_deployments/{self.resource_id}")
            except errors.NotFound:
                pass
        if self.data.get("derived_config_id"):
            self._drop_config(self.data.pop("derived_config_id"))
        return True

    def handle_cancel(self) -> None:
        if self.resource_id is None or not self.data.get("waiting"):
            return
        sd = self._api().get(f"/software_deployments/{self.resource_id}")["software_deployment"]
        if sd["status"] == "IN_PROGRESS":
            self._api().put(f"/software_deployments/{self.resource_id}",
                            {"status": "FAILED", "status_reason": "Deployment cancelled."})

    def handle_signal(self, details: dict[str, Any] | None) -> None:
        """The server's outputs: COMPLETE, or FAILED on a non-zero deploy_status_code or
        an output flagged ``error_output``. Only an IN_PROGRESS deployment takes them."""
        if self.resource_id is None:
            raise errors.BadRequest(f"Resource {self.name} has no deployment to signal.")
        details = details if isinstance(details, dict) else {}
        sd = self._api().get(f"/software_deployments/{self.resource_id}")["software_deployment"]
        if sd["status"] != "IN_PROGRESS":
            return
        config = self._api().get(f"/software_configs/{sd['config_id']}")["software_config"]
        values = dict(sd.get("output_values") or {})
        reasons = []
        code = details.get("deploy_status_code")
        if code and str(code) != "0":
            reasons.append(f"deploy_status_code : Deployment exited with non-zero status code: {code}")
        for o in config.get("outputs") or []:
            if o.get("name") in details:
                values[o["name"]] = details[o["name"]]
                if o.get("error_output"):
                    reasons.append(f"{o['name']} : {details[o['name']]}")
        for key in OUTPUTS:
            values[key] = details.get(key)
        self._api().put(f"/software_deployments/{self.resource_id}", {
            "output_values": values, "status": "FAILED" if reasons else "COMPLETE",
            "status_reason": ", ".join(reasons) if reasons else "Outputs received"})

    def attribute(self, name: str) -> Any:
        values = {}
        if self.resource_id is not None:
            sd = self._api().get(f"/software_deployments/{self.resource_id}")["software_deployment"]
            values = sd.get("output_values") or {}
        if name == "show":
            return values
        if name in values:
            return values[name]
        if name in self.ATTRIBUTES:
            return None
        outputs = [o.get("name") for o in (self._source().get("outputs") or [])]
        if name not in outputs:
            raise KeyError(name)
        return None


def _fill_inputs(value: Any, inputs: dict[str, Any]) -> Any:
    """A structured config with each ``{get_input: name}`` replaced by that input's value."""
    if isinstance(value, dict):
        if len(value) == 1 and "get_input" in value:
            return inputs.get(value["get_input"])
        return {k: _fill_inputs(v, inputs) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_inputs(v, inputs) for v in value]
    return value


@register("OS::Heat::StructuredDeployment")
class StructuredDeployment(SoftwareDeployment):
    """A deployment of a StructuredConfig: its ``get_input`` calls are replaced by the
    input values before the server gets it."""

    PROPERTIES = {
        **PROPERTIES,
        "input_key": Property(STRING, "Name of key to use for substituting inputs during deployment.",
                              default="get_input"),
        "input_values_validate": Property(STRING, "Perform a check on the input values passed to verify that "
                                                  "each required input has a corresponding value.",
                                          default="LAX", constraints=[Constraint("allowed_values",
                                                                                 ["LAX", "STRICT"])]),
    }

    def derived_config(self, action: str, source: dict, inputs: list[dict]) -> Any:
        config = source.get("config")
        if not isinstance(config, dict):
            return config or {}
        values = {i["name"]: i.get("value") for i in inputs}
        key = self.properties.get("input_key") or "get_input"
        if self.properties.get("input_values_validate") == "STRICT":
            missing = sorted(_wanted(config, key) - set(values))
            if missing:
                raise errors.BadRequest(f"Missing input values: {', '.join(missing)}")
        return _fill_inputs(config, values) if key == "get_input" else _fill_key(config, values, key)


def _wanted(value: Any, key: str) -> set[str]:
    if isinstance(value, dict):
        if len(value) == 1 and key in value:
            return {str(value[key])}
        return set().union(*(_wanted(v, key) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_wanted(v, key) for v in value)) if value else set()
    return set()


def _fill_key(value: Any, inputs: dict[str, Any], key: str) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and key in value:
            return inputs.get(value[key])
        return {k: _fill_key(v, inputs, key) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_key(v, inputs, key) for v in value]
    return value


class _DeploymentGroup(NestedStack):
    """One deployment per entry of ``servers`` (name: server id), in a child stack."""

    MEMBER = "OS::Heat::SoftwareDeployment"
    ANY_ATTRIBUTE = True
    PROPERTIES = {
        "servers": Property(MAP, "A map of names and server IDs to apply configuration to. The name is "
                                 "arbitrary and is used as the Heat resource name for the corresponding "
                                 "deployment.", required=True, update_allowed=True),
        **{k: v for k, v in PROPERTIES.items() if k != "server"},
    }
    ATTRIBUTES = {
        "deploy_stdouts": Attribute("A map of Nova names and captured stdouts from the configuration "
                                    "execution to each server.", MAP),
        "deploy_stderrs": Attribute("A map of Nova names and captured stderrs from the configuration "
                                    "execution to each server.", MAP),
        "deploy_status_codes": Attribute("A map of Nova names and returned status code from the "
                                         "configuration execution.", MAP),
    }

    def nested_template(self, properties: dict[str, Any]) -> tuple[dict, dict]:
        common = {k: v for k, v in properties.items() if k != "servers" and v is not None}
        resources = {str(name): {"type": self.MEMBER, "properties": {**common, "server": server}}
                     for name, server in (properties.get("servers") or {}).items()}
        return {"heat_template_version": "2015-04-30", "resources": resources}, {}

    def attribute(self, name: str) -> Any:
        child = self._child()
        if child is None:
            return None
        member_attr = {"deploy_stdouts": "deploy_stdout", "deploy_stderrs": "deploy_stderr",
                       "deploy_status_codes": "deploy_status_code"}.get(name, name)
        return {str(n): self.ctx.nested_member(child, str(n), member_attr)
                for n in (self.properties.get("servers") or {})}


@register("OS::Heat::SoftwareDeploymentGroup")
class SoftwareDeploymentGroup(_DeploymentGroup):
    """Associates a group of servers with some configuration."""


@register("OS::Heat::SoftwareDeployments")
class SoftwareDeployments(_DeploymentGroup):
    """Deprecated: use OS::Heat::SoftwareDeploymentGroup."""

    SUPPORT_STATUS = "HIDDEN"


@register("OS::Heat::StructuredDeploymentGroup")
class StructuredDeploymentGroup(_DeploymentGroup):
    """Associates a group of servers with a structured configuration."""

    MEMBER = "OS::Heat::StructuredDeployment"
    PROPERTIES = {**_DeploymentGroup.PROPERTIES,
                  **{k: StructuredDeployment.PROPERTIES[k] for k in ("input_key", "input_values_validate")}}


@register("OS::Heat::StructuredDeployments")
class StructuredDeployments(StructuredDeploymentGroup):
    """Deprecated: use OS::Heat::StructuredDeploymentGroup."""

    SUPPORT_STATUS = "HIDDEN"
