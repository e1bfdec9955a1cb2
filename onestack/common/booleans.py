"""The one boolean parser of every API (and the config file): the spellings oslo.utils'
``bool_from_string`` reads, or a service's own narrower set."""

from __future__ import annotations

from typing import Any

from onestack.common import errors

# oslo.utils strutils.bool_from_string's spellings, compared case-insensitively
TRUE_STRINGS = ("1", "t", "true", "on", "y", "yes")
FALSE_STRINGS = ("0", "f", "false", "off", "n", "no")


def to_bool(value: Any, *, strict: bool = False, default: bool = False,
            true: tuple[str, ...] = TRUE_STRINGS, false: tuple[str, ...] = FALSE_STRINGS) -> bool:
    """``value`` read as a boolean, as oslo's ``bool_from_string`` reads it: a bool is
    itself, anything else is compared (stripped, lower-cased) with ``true`` and
    ``false``. Not one of them: ``default``, or ValueError when ``strict``."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in true:
        return True
    if text in false:
        return False
    if strict:
        raise ValueError(f"{value!r} is not a boolean")
    return default


def parse_bool(value: Any, field: str, *, true: tuple[str, ...] = TRUE_STRINGS,
               false: tuple[str, ...] = FALSE_STRINGS,
               message: str = "Invalid value '{value}' for {field}: it must be a boolean.", **extra) -> bool:
    """A strict boolean of a request (query value, header or body field); anything else is a
    400 naming the field. ``message`` and ``extra`` (e.g. ``type=`` of a Neutron error) give
    the service's own wording."""
    try:
        return to_bool(value, strict=True, true=true, false=false)
    except ValueError:
        raise errors.BadRequest(message.format(value=value, field=field), **extra) from None
