"""Stacks as resources: OS::Heat::Stack (a template given inline, with parameters and a
timeout; its ``outputs`` and ``stack_name`` attributes) and AWS::CloudFormation::Stack
(a template at ``TemplateURL``; ``Outputs.<key>`` attributes).

Both are child stacks run by this engine (:class:`heat.NestedStack`). OS::Heat::Stack
is Heat's "remote" stack: its ``context.region_name`` may only name this cloud's region
(onestack has one orchestration endpoint).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from onestack.common import errors
from onestack.orchestration import settings
from onestack.orchestration import template as tpl
from onestack.orchestration.resources.base import (
    BOOLEAN,
    INTEGER,
    MAP,
    STRING,
    Attribute,
    Property,
    register,
)
from onestack.orchestration.resources.heat import NestedStack


def _template(text: Any, what: str) -> dict:
    if isinstance(text, dict):
        return text
    if not isinstance(text, str):
        raise errors.BadRequest(f"The template of {what} is not a template.")
    return tpl.load(text, max_size=settings.current.max_template_size)


@register("OS::Heat::Stack")
class HeatStack(NestedStack):
    """A resource representing a stack: its template inline (typically
    ``{get_file: child.yaml}``), parameters and timeout."""

    PROPERTIES = {
        "context": Property(MAP, "Context for this stack.", update_allowed=True, schema={
            "region_name": Property(STRING, "Region name in which this stack will be created."),
            "credential_secret_id": Property(STRING, "A Barbican secret ID with a credential for a remote "
                                                     "cloud (not supported here).", update_allowed=True),
            "ca_cert": Property(STRING, "CA Cert for SSL.", update_allowed=True),
            "insecure": Property(BOOLEAN, "If set, then the server's certificate will not be verified.",
                                 default=False, update_allowed=True)}),
        "template": Property(STRING, "Template that specifies the stack to be created as a resource.",
                             required=True, update_allowed=True),
        "timeout": Property(INTEGER, "Number of minutes to wait for this stack creation.", update_allowed=True),
        "parameters": Property(MAP, "Set of parameters passed to this stack.", default={}, update_allowed=True),
    }
    ATTRIBUTES = {
        "stack_name": Attribute("Name of the stack.", STRING),
        "outputs": Attribute("A dict of key-value pairs output from the stack.", MAP),
    }

    def validate(self) -> None:
        ctx = self.properties.get("context") or {}
        region = ctx.get("region_name")
        if region and region != settings.current.region:
            raise errors.BadRequest(f'Cannot establish connection to Heat endpoint at region "{region}": '
                                    f"this cloud's only region is {settings.current.region}.")
        if ctx.get("credential_secret_id"):
            raise errors.BadRequest("context.credential_secret_id (a remote cloud's credential) is not "
                                    "supported.")
        _template(self.properties.get("template"), self.name)

    def nested_template(self, properties: dict[str, Any]) -> tuple[dict, dict]:
        return _template(properties.get("template"), self.name), dict(properties.get("parameters") or {})

    def nested_timeout(self, properties: dict[str, Any]) -> int | None:
        return properties.get("timeout")

    def needs_replace(self, new_properties: dict[str, Any], changed: set[str]) -> bool:
        old = (self.properties.get("context") or {}).get("region_name")
        return "context" in changed and (new_properties.get("context") or {}).get("region_name") != old

    def attribute(self, name: str) -> Any:
        child = self._child()
        if name == "stack_name":
            return self.ctx.nested_name(child) if child else None
        if name in ("outputs", "show"):
            return {k: o.get("output_value") for k, o in self.outputs().items()} if child else None
        raise KeyError(name)


@register("AWS::CloudFormation::Stack")
class CfnStack(NestedStack):
    """Represents a child stack to allow composition of templates (the template at
    TemplateURL, an http(s) URL or a name in the stack's files)."""

    ANY_ATTRIBUTE = True  # Outputs.<key>
    PROPERTIES = {
        "TemplateURL": Property(STRING, "The URL of a template that specifies the stack to be created as a "
                                        "resource.", required=True, update_allowed=True),
        "TimeoutInMinutes": Property(INTEGER, "The length of time, in minutes, to wait for the nested stack "
                                              "creation.", update_allowed=True),
        "Parameters": Property(MAP, "The set of parameters passed to this nested stack.", update_allowed=True),
    }

    def _fetch(self, url: str) -> dict:
        files = getattr(self.ctx, "files", None) or {}
        if url in files:
            return _template(files[url], self.name)
        if urlsplit(url).scheme not in ("http", "https"):
            raise errors.BadRequest(f"Could not fetch remote template '{url}': only http and https URLs "
                                    "(or the names of the stack's files) can be read.")
        limit = settings.current.max_template_size
        try:
            with httpx.stream("GET", url, timeout=30, follow_redirects=True) as r:
                r.raise_for_status()
                body = b""
                for chunk in r.iter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise errors.BadRequest(f"Could not fetch remote template '{url}': larger than "
                                                f"{limit} bytes.")
        except httpx.HTTPError as e:
            raise errors.BadRequest(f"Could not fetch remote template '{url}': {e}") from None
        return _template(body.decode("utf-8", "replace"), self.name)

    def nested_template(self, properties: dict[str, Any]) -> tuple[dict, dict]:
        return self._fetch(properties["TemplateURL"]), dict(properties.get("Parameters") or {})

    def nested_timeout(self, properties: dict[str, Any]) -> int | None:
        return properties.get("TimeoutInMinutes")

    def reference_id(self) -> str | None:
        child = self._child()
        if child is None:
            return self.name
        return f"arn:openstack:heat::{self.ctx.project_id}:stacks/{self.ctx.nested_name(child)}/{child}"

    def attribute(self, name: str) -> Any:
        if name == "show":
            return {k: o.get("output_value") for k, o in self.outputs().items()} if self._child() else None
        if not name.startswith("Outputs."):
            raise KeyError(name)
        outs = self.outputs() if self._child() else {}
        key = name.partition(".")[2]
        if self._child() and key not in outs:
            raise KeyError(name)
        return (outs.get(key) or {}).get("output_value")
