"""The parsed form of a template: what :func:`parse.parse` returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from onestack.orchestration.template.parameters import ParameterSchema
from onestack.orchestration.template.versions import TemplateVersion


@dataclass
class ResourceDefinition:
    name: str
    type: str
    properties: Any = field(default_factory=dict)  # unresolved snippet (map or function)
    metadata: Any = field(default_factory=dict)  # unresolved snippet
    depends_on: list[str] = field(default_factory=list)
    # Delete | Retain | Snapshot (lower-case aliases normalised), or a snippet to resolve
    deletion_policy: Any = "Delete"
    update_policy: Any = field(default_factory=dict)  # unresolved snippet
    description: str = ""
    condition: Any = None  # None | bool | a condition name | an inline condition snippet
    external_id: Any = None  # None | str | snippet

    def snippet(self) -> dict[str, Any]:
        """The fields that hold functions, by their HOT key (for resolve/dependencies)."""
        return {"properties": self.properties, "metadata": self.metadata}


@dataclass
class OutputDefinition:
    name: str
    value: Any  # unresolved snippet
    description: str | None = None
    condition: Any = None


@dataclass
class Template:
    version: TemplateVersion
    description: str
    parameter_groups: list[dict]
    parameters: dict[str, ParameterSchema]
    resources: dict[str, ResourceDefinition]
    outputs: dict[str, OutputDefinition]
    conditions: dict[str, Any]
    mappings: dict[str, Any]
    raw: dict[str, Any]  # the template as given (``GET .../template`` shows it)

    @property
    def is_hot(self) -> bool:
        return self.version.is_hot
