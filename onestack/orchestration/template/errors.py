"""Errors of the template language, worded as Heat words them.

Each is an ``onestack.common.errors`` API error (so the API renders it as a 400/404/413
without a traceback) and carries ``heat_type``: the class name Heat puts in its fault
body's ``error.type``.
"""

from __future__ import annotations

from collections.abc import Iterable

from onestack.common import errors


def format_path(path: Iterable[str | int]) -> str:
    """``["resources", "server", "properties", "networks", 0]`` ->
    ``resources.server.properties.networks[0]``, as Heat shows a path."""
    out = ""
    for item in path:
        if isinstance(item, int) or str(item).isdigit():
            out += f"[{item}]"
        elif out:
            out += f".{item}"
        else:
            out = str(item)
    return out


class TemplateError(errors.BadRequest):
    heat_type = "StackValidationFailed"


class StackValidationFailed(TemplateError):
    """``"[<error>: ][<path>: ]<message>"``, as Heat composes it. ``error_message`` is
    the bare message (what an output's ``output_error`` shows)."""

    def __init__(self, message: str, path: Iterable[str | int] | str = (),
                 error: str | None = None):
        self.path = [path] if isinstance(path, str) else list(path)
        self.error = error or ""
        self.error_message = message
        where = format_path(self.path)
        text = (f"{self.error}: " if self.error else "") + (f"{where}: " if where else "")
        super().__init__(text + message)

    def prefixed(self, *outer: str | int) -> StackValidationFailed:
        """The same error under a longer path (an outer caller adds where it was)."""
        return StackValidationFailed(self.error_message, [*outer, *self.path], self.error)


class InvalidTemplateVersion(TemplateError):
    heat_type = "InvalidTemplateVersion"

    def __init__(self, explanation: str):
        super().__init__(f"The template version is invalid: {explanation}")


class TemplateTooLarge(TemplateError):
    heat_type = "RequestLimitExceeded"

    def __init__(self, actual: int, limit: int):
        super().__init__(f"Request limit exceeded: Template size ({actual} bytes) exceeds "
                         f"maximum allowed size ({limit} bytes).")


class UserParameterMissing(TemplateError):
    heat_type = "UserParameterMissing"

    def __init__(self, key: str):
        self.key = key
        super().__init__(f"The Parameter ({key}) was not provided.")


class InvalidTemplateReference(TemplateError):
    heat_type = "InvalidTemplateReference"

    def __init__(self, resource: str, key: str):
        super().__init__(f'The specified reference "{resource}" (in {key}) is incorrect.')


class CircularDependency(TemplateError):
    heat_type = "CircularDependencyException"

    def __init__(self, cycle: str):
        super().__init__(f"Circular Dependency Found: {cycle}")


class InvalidEnvironment(TemplateError):
    heat_type = "InvalidEnvironment"


class InvalidSchemaError(TemplateError):
    heat_type = "InvalidSchemaError"


class UnknownUserParameter(TemplateError):
    heat_type = "UnknownUserParameter"

    def __init__(self, key: str):
        self.key = key
        super().__init__(f"The Parameter ({key}) was not defined in template.")


class InvalidTemplateSection(TemplateError):
    heat_type = "InvalidTemplateSection"

    def __init__(self, section: str):
        super().__init__(f"The template section is invalid: {section}")


class InvalidTemplateAttribute(TemplateError):
    heat_type = "InvalidTemplateAttribute"

    def __init__(self, resource: str, key: str):
        super().__init__(f"The Referenced Attribute ({resource} {key}) is incorrect.")


class ImmutableParameterModified(TemplateError):
    heat_type = "ImmutableParameterModified"

    def __init__(self, keys: Iterable[str]):
        super().__init__("The following parameters are immutable and may not be updated: "
                         + ", ".join(keys))


class NotFound(errors.NotFound):
    heat_type = "NotFound"
