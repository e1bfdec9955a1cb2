"""Request bodies of the Block Storage v3 API as data, one variant per microversion that
changes them (Cinder's ``api/schemas``), checked by onestack.common.validation with Cinder's
messages (its validator is Nova's)."""

from __future__ import annotations

import copy

from onestack.common.microversion import Version

# Cinder's boolean also takes the one-letter spellings oslo reads
BOOLEAN = {"type": ["boolean", "string"],
           "enum": [True, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes", "y", "t",
                    False, "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no", "n", "f"]}
OPTIONAL_BOOLEAN = {"oneOf": [{"type": "null"}, BOOLEAN]}
OPTIONAL_UUID = {"oneOf": [{"type": "null"}, {"type": "string", "format": "uuid"}]}
TEXT = {"type": ["string", "null"], "maxLength": 255}  # a name or a description
METADATA = {"type": ["object", "null"],
            "patternProperties": {"^[a-zA-Z0-9-_:. /]{1,255}$": {"type": "string", "maxLength": 255}},
            "additionalProperties": False}
SIZE = {"type": ["integer", "string", "null"], "pattern": "^[0-9]+$", "minimum": 1, "maximum": 0x7FFFFFFF}

CREATE_3_0 = {
    "type": "object",
    "properties": {
        "volume": {
            "type": "object",
            "properties": {
                "name": TEXT, "description": TEXT, "display_name": TEXT, "display_description": TEXT,
                "volume_type": {"type": ["string", "null"], "minLength": 0, "maxLength": 255},  # a name or an id
                "metadata": METADATA,
                "snapshot_id": OPTIONAL_UUID,
                "source_volid": OPTIONAL_UUID,
                "consistencygroup_id": OPTIONAL_UUID,
                "size": SIZE,
                "availability_zone": {"type": ["string", "null"], "minLength": 1, "maxLength": 255},
                "multiattach": OPTIONAL_BOOLEAN,
                "image_id": {"type": ["string", "null"], "minLength": 0, "maxLength": 255},
                "imageRef": {"type": ["string", "null"], "minLength": 0, "maxLength": 255},
            },
            "additionalProperties": True,  # until 3.53
        },
        "OS-SCH-HNT:scheduler_hints": {"type": ["object", "null"]},
    },
    "required": ["volume"],
    "additionalProperties": False,
}


def _volume(base: dict, *, add: dict | None = None, closed: bool = False, any_of: list | None = None) -> dict:
    """A copy of ``base`` whose volume object gains the properties ``add``; ``closed``: and
    refuses any other; ``any_of``: and must satisfy one of these."""
    out = copy.deepcopy(base)
    volume = out["properties"]["volume"]
    volume["properties"].update(add or {})
    if closed:
        volume["additionalProperties"] = False
    if any_of:
        volume["anyOf"] = any_of
    return out


CREATE_3_13 = _volume(CREATE_3_0, add={"group_id": {"type": ["string", "null"], "minLength": 0, "maxLength": 255}})
CREATE_3_47 = _volume(CREATE_3_13, add={"backup_id": OPTIONAL_UUID})
CREATE_3_53 = _volume(CREATE_3_47, closed=True)  # from 3.53 unknown attributes are refused
CREATE = [(Version(3, 0), CREATE_3_0), (Version(3, 13), CREATE_3_13), (Version(3, 47), CREATE_3_47),
          (Version(3, 53), CREATE_3_53)]

UPDATE_3_0 = {
    "type": "object",
    "properties": {"volume": {
        "type": "object",
        "properties": {"name": TEXT, "description": TEXT, "display_name": TEXT, "display_description": TEXT,
                       "metadata": {**METADATA, "type": "object"}},
        "additionalProperties": False}},
    "required": ["volume"],
    "additionalProperties": False,
}
# 3.53: an update must change something
UPDATE_3_53 = _volume(UPDATE_3_0, any_of=[{"required": [k]} for k in (
    "name", "description", "display_name", "display_description", "metadata")])
UPDATE = [(Version(3, 0), UPDATE_3_0), (Version(3, 53), UPDATE_3_53)]
