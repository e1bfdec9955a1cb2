"""Image records: create, list, show, JSON-patch update, delete, (de)activate, tags."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa

from onestack.common import booleans, db, errors, pagination, validation
from onestack.common.http import Req, empty, json_response
from onestack.common.timeutils import parse_iso, utcnow
from onestack.image import core
from onestack.image import models as m
from onestack.image.api import IMPORT_METHODS, api, views
from onestack.image.api.schemas import CORE, IMAGE_PROPERTIES, READ_ONLY, RESERVED, STATUSES
from onestack.image.core import notify

# What a client may write: the schema's writable attributes; extra properties are strings.
WRITABLE = {k: v for k, v in IMAGE_PROPERTIES.items() if k not in READ_ONLY}
WRITE_SCHEMA = {
    "type": "object",
    "properties": WRITABLE,
    "additionalProperties": {"type": "string", "maxLength": 65535},
}
# Columns of the image table a client may set (the rest of WRITABLE are properties).
COLUMNS = {"name", "visibility", "protected", "os_hidden", "owner", "min_ram", "min_disk",
           "disk_format", "container_format"}
SORT_KEYS = {"name", "status", "container_format", "disk_format", "size", "virtual_size", "id",
             "created_at", "updated_at", "min_disk", "min_ram", "visibility", "owner"}
PATCH_TYPES = {
    "application/openstack-images-v2.1-json-patch": "2.1",
    "application/openstack-images-v2.0-json-patch": "2.0",
}


# --- create -------------------------------------------------------------------


def _check_writable(keys) -> None:
    for key in keys:
        if key in READ_ONLY:
            raise errors.Forbidden(f"Attribute '{key}' is read-only.")
        if key in RESERVED:
            raise errors.Forbidden(f"Attribute '{key}' is reserved.")
        if key == "locations":
            raise errors.Forbidden("Image locations are not shown or set through this API.")


def _check_counts(props: dict, tags: list) -> None:
    st = core.State.settings
    if len(props) > st.max_properties:
        raise errors.PayloadTooLarge(
            f"An image may have at most {st.max_properties} extra properties; this one would have {len(props)}."
        )
    if len(tags) > st.max_tags:
        raise errors.PayloadTooLarge(f"An image may have at most {st.max_tags} tags; this one would have {len(tags)}.")
    for name in props:
        if not name or len(name) > 255:
            raise errors.BadRequest(f"Property names must be 1 to 255 characters long: {name[:40]!r}.")


def _check_visibility_change(ctx, owner: str | None, visibility: str) -> None:
    target = {"owner": owner or ""}
    if visibility == "public" and not core.allowed("publicize_image", ctx, target):
        raise errors.Forbidden("You are not authorized to make an image public: only an administrator may.")
    if visibility == "community" and not core.allowed("communitize_image", ctx, target):
        raise errors.Forbidden("You are not authorized to make this image community-visible.")


def _unique(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))


@api.route("/v2/images", ["POST"])
def create_image(req: Req):
    body = req.json()
    if not isinstance(body, dict):
        raise errors.BadRequest("The request body must be a JSON object of image attributes.")
    _check_writable(body)
    validation.validate(WRITE_SCHEMA, body)
    ctx = req.ctx
    owner = body.get("owner") or ctx.project_id
    if owner != ctx.project_id:
        core.authorize("set_image_owner", ctx, {"owner": owner})
    core.authorize("add_image", ctx, {"owner": owner})
    visibility = body.get("visibility", "shared")
    _check_visibility_change(ctx, owner, visibility)
    image_id = body.get("id") or str(uuid.uuid4())
    image_id = str(uuid.UUID(image_id))  # the schema checked it; store it in canonical form
    props = {k: v for k, v in body.items() if k not in CORE}
    props = {k: v for k, v in props.items() if v is not None}
    tags = _unique(body.get("tags") or [])
    _check_counts(props, tags)
    now = utcnow()
    if owner is not None:
        core.project_limits(owner)  # (identity is asked before the write transaction)
    with db.transaction(conflict=f"Image with identifier {image_id} already exists!") as s:
        if s.get(m.Image, image_id) is not None:
            raise errors.Conflict(f"Image with identifier {image_id} already exists!")
        core.check_image_count(s, owner)
        img = m.Image(
            id=image_id, name=body.get("name"), status="queued", visibility=visibility, owner=owner,
            protected=body.get("protected", False), os_hidden=body.get("os_hidden", False),
            disk_format=body.get("disk_format"), container_format=body.get("container_format"),
            min_ram=body.get("min_ram", 0), min_disk=body.get("min_disk", 0),
            created_at=now, updated_at=now,
        )
        s.add(img)
        s.flush()
        s.add_all(m.ImageProperty(image_id=image_id, name=k, value=v) for k, v in props.items())
        s.add_all(m.ImageTag(image_id=image_id, value=t) for t in tags)
        out = views.image(img, props, sorted(tags))
    notify("create", out)
    # clients learn from this header that they may stage and import instead of upload
    return json_response(out, 201, {"Location": f"{req.request.base_url}v2/images/{image_id}",
                                    "OpenStack-image-import-methods": ",".join(IMPORT_METHODS)})


# --- list ---------------------------------------------------------------------

_INT_COLUMNS = {"size", "virtual_size", "min_ram", "min_disk"}
_COLUMN_FILTERS = {"owner", "container_format", "disk_format", "checksum", "os_hash_value", *_INT_COLUMNS}
_KNOWN_PARAMS = {"limit", "marker", "sort_key", "sort_dir", "sort", "name", "visibility", "member_status",
                 "status", "tag", "size_min", "size_max", "protected", "os_hidden", "id", "created_at",
                 "updated_at", *_COLUMN_FILTERS}


def _bool(name: str, raw: str) -> bool:
    return booleans.parse_bool(
        raw, name, message="Invalid value '{value}' for '{field}' filter. Valid values are 'true' or 'false'.")


def _int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise errors.BadRequest(f"Invalid value for {name}: {raw!r} is not an integer.") from None


def _in_values(raw: str) -> list[str] | None:
    """``in:a,b,"c,d"`` -> ['a', 'b', 'c,d']; None when the value has no ``in:`` operator."""
    if not raw.startswith("in:"):
        return None
    out, cur, quoted = [], "", False
    for ch in raw[3:]:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


_TIME_OPS = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b,
             "lte": lambda a, b: a <= b, "eq": lambda a, b: a == b, "neq": lambda a, b: a != b}


def _time_filter(name: str, raw: str):
    op, _, value = raw.partition(":")
    if op not in _TIME_OPS or not value:
        raise errors.BadRequest(f"Invalid {name} filter {raw!r}: use <op>:<time> with op in "
                                f"{', '.join(_TIME_OPS)}, e.g. gte:2026-01-01T00:00:00Z.")
    try:
        when = parse_iso(value)
    except ValueError:
        raise errors.BadRequest(f"Invalid time in {name} filter: {value!r}.") from None
    cmp = _TIME_OPS[op]
    return lambda dt: cmp(dt.replace(microsecond=0), when)


def _sort_spec(q) -> list[tuple[str, str]]:
    if q.get("sort") is not None:
        if q.getlist("sort_key") or q.getlist("sort_dir"):
            raise errors.BadRequest("The 'sort' parameter cannot be combined with 'sort_key' or 'sort_dir'.")
        spec = []
        for part in q["sort"].split(","):
            key, _, direction = part.strip().partition(":")
            spec.append((key, direction or "desc"))
    else:
        keys, dirs = q.getlist("sort_key"), q.getlist("sort_dir")
        if len(dirs) > max(len(keys), 1):
            raise errors.BadRequest("There are more sort_dir values than sort_key values.")
        if not keys:
            keys = ["created_at"]
        if len(dirs) == 1:
            dirs = dirs * len(keys)
        spec = [(k, dirs[i] if i < len(dirs) else "desc") for i, k in enumerate(keys)]
    for key, direction in spec:
        if key not in SORT_KEYS:
            raise errors.BadRequest(f"Invalid sort key: {key!r}. It must be one of: {', '.join(sorted(SORT_KEYS))}.")
        if direction not in ("asc", "desc"):
            raise errors.BadRequest(f"Invalid sort direction: {direction!r}. It must be 'asc' or 'desc'.")
    if "created_at" not in dict(spec):
        spec.append(("created_at", "desc"))
    if "id" not in dict(spec):
        spec.append(("id", "desc"))
    return spec


def _sort(items: list[dict], spec: list[tuple[str, str]]) -> list[dict]:
    # stable sorts from the last key to the first; None sorts lowest, as in SQL
    for key, direction in reversed(spec):
        items.sort(key=lambda d: (d.get(key) is not None, d.get(key) if d.get(key) is not None else 0),
                   reverse=direction == "desc")
    return items


@api.route("/v2/images", ["GET"])
def list_images(req: Req):
    ctx, q = req.ctx, req.query
    core.authorize("get_images", ctx, {"owner": ctx.project_id or ""})
    st = core.State.settings
    limit = pagination.parse_limit(q.get("limit"), st.max_list_limit) or st.list_limit
    if q.get("limit") == "0":
        limit = 0
    visibility = q.get("visibility")
    if visibility not in (None, "public", "private", "shared", "community", "all"):
        raise errors.BadRequest(f"Invalid visibility value: {visibility!r}.")
    member_status = q.get("member_status", "accepted")
    if member_status not in ("pending", "accepted", "rejected", "all"):
        raise errors.BadRequest(f"Invalid member_status value: {member_status!r}.")
    status = q.get("status")
    if status is not None and status not in STATUSES:
        raise errors.BadRequest(f"Invalid status value: {status!r}.")
    hidden = _bool("os_hidden", q["os_hidden"]) if "os_hidden" in q else False
    protected = _bool("protected", q["protected"]) if "protected" in q else None
    size_min = _int("size_min", q["size_min"]) if "size_min" in q else None
    size_max = _int("size_max", q["size_max"]) if "size_max" in q else None
    times = {k: _time_filter(k, q[k]) for k in ("created_at", "updated_at") if k in q}
    spec = _sort_spec(q)

    with db.session() as s:
        query = sa.select(m.Image)
        mine = m.Image.owner == ctx.project_id
        shared_with_me = sa.select(m.ImageMember.image_id).where(m.ImageMember.member == ctx.project_id)
        if member_status != "all":
            shared_with_me = shared_with_me.where(m.ImageMember.status == member_status)
        shared = sa.and_(m.Image.visibility == "shared", m.Image.id.in_(shared_with_me))
        if visibility is None:
            if not ctx.is_admin:
                query = query.where(sa.or_(m.Image.visibility == "public", mine, shared))
        elif visibility == "all":
            if not ctx.is_admin:
                query = query.where(sa.or_(m.Image.visibility.in_(["public", "community"]), mine, shared))
        elif visibility in ("public", "community"):
            query = query.where(m.Image.visibility == visibility)
        elif visibility == "private":
            query = query.where(m.Image.visibility == "private")
            if not ctx.is_admin:
                query = query.where(mine)
        else:  # shared: my shared images, and those shared with me
            query = query.where(m.Image.visibility == "shared")
            if not ctx.is_admin or "member_status" in q:
                query = query.where(sa.or_(mine, m.Image.id.in_(shared_with_me)))
        query = query.where(m.Image.os_hidden == hidden)
        if status:
            query = query.where(m.Image.status == status)
        if protected is not None:
            query = query.where(m.Image.protected == protected)
        if size_min is not None:
            query = query.where(m.Image.size >= size_min)
        if size_max is not None:
            query = query.where(m.Image.size <= size_max)
        for col in _COLUMN_FILTERS:  # exact match on any other core attribute
            if col in q:
                attr = getattr(m.Image, col)
                value = _int(col, q[col]) if col in _INT_COLUMNS else q[col]
                query = query.where(attr == value)
        for col in ("name", "id"):
            if col in q:
                values = _in_values(q[col])
                attr = getattr(m.Image, col)
                query = query.where(attr.in_(values) if values is not None else attr == q[col])
        for tag in q.getlist("tag"):
            query = query.where(m.Image.id.in_(sa.select(m.ImageTag.image_id).where(m.ImageTag.value == tag)))
        for key, value in q.multi_items():
            if key not in _KNOWN_PARAMS:  # any other parameter filters on an extra property
                query = query.where(m.Image.id.in_(sa.select(m.ImageProperty.image_id).where(
                    m.ImageProperty.name == key, m.ImageProperty.value == value)))
        rows = list(s.scalars(query))
        rows = [r for r in rows if all(f(getattr(r, k)) for k, f in times.items())]
        props, tags = _bulk_extras(s, [r.id for r in rows])
        items = [views.image(r, props.get(r.id, {}), tags.get(r.id, [])) for r in rows]
    items = _sort(items, spec)
    page, more = pagination.page(items, limit, q.get("marker"), key=lambda d: d["id"])
    query_args = [(k, v) for k, v in q.multi_items() if k != "marker"]
    first = "/v2/images" + (f"?{urlencode(query_args)}" if query_args else "")
    out: dict[str, Any] = {"images": page, "first": first, "schema": "/v2/schemas/images"}
    if more and page:
        args = [(k, v) for k, v in query_args if k != "limit"] + [("limit", limit), ("marker", page[-1]["id"])]
        out["next"] = f"/v2/images?{urlencode(args)}"
    return json_response(out)


def _bulk_extras(s, ids: list[str]) -> tuple[dict, dict]:
    props: dict[str, dict] = {}
    tags: dict[str, list] = {}
    for chunk in (ids[i:i + 500] for i in range(0, len(ids), 500)):
        for p in s.scalars(sa.select(m.ImageProperty).where(m.ImageProperty.image_id.in_(chunk))):
            props.setdefault(p.image_id, {})[p.name] = p.value
        for t in s.scalars(sa.select(m.ImageTag).where(m.ImageTag.image_id.in_(chunk))):
            tags.setdefault(t.image_id, []).append(t.value)
    for v in tags.values():
        v.sort()
    return props, tags


# --- show ---------------------------------------------------------------------


@api.route("/v2/images/{image_id}", ["GET"])
def show_image(req: Req):
    image_id = core.check_uuid(req.path["image_id"])
    with db.session() as s:
        img = core.get_image(s, req.ctx, image_id)
        core.authorize("get_image", req.ctx, core.target(img))
        return json_response(views.load(s, img))


# --- update (JSON patch) ------------------------------------------------------


def _decode_path(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.startswith("/"):
        raise errors.BadRequest(f"Invalid JSON pointer for this resource: {raw!r}; paths look like '/name'.")
    parts = raw[1:].split("/")
    if len(parts) != 1 or not parts[0]:
        raise errors.BadRequest(f"Invalid JSON pointer for this resource: {raw!r}; paths look like '/name'.")
    return parts[0].replace("~1", "/").replace("~0", "~")


def _operations(body: Any, version: str) -> list[tuple[str, str, Any]]:
    if not isinstance(body, list):
        raise errors.BadRequest("The body of a JSON patch must be a list of operations.")
    ops = []
    for change in body:
        if not isinstance(change, dict):
            raise errors.BadRequest("Each JSON patch operation must be an object.")
        if version == "2.1":
            op = change.get("op")
            if op not in ("add", "replace", "remove"):
                raise errors.BadRequest(f"Invalid operation {op!r}: it must be one of add, replace, remove.")
            path = change.get("path")
        else:  # 2.0: {"replace": "/name", "value": ...}
            named = [k for k in ("add", "replace", "remove") if k in change]
            if len(named) != 1:
                raise errors.BadRequest("Each operation must name exactly one of add, replace, remove.")
            op = named[0]
            path = change[op]
        if op != "remove" and "value" not in change:
            raise errors.BadRequest(f"Operation {op!r} on {path!r} needs a 'value'.")
        ops.append((op, _decode_path(path), change.get("value")))
    return ops


@api.route("/v2/images/{image_id}", ["PATCH"])
def update_image(req: Req):
    ctype = req.headers.get("content-type", "").split(";")[0].strip().lower()
    version = PATCH_TYPES.get(ctype)
    if version is None:
        raise errors.UnsupportedMediaType(
            f"Unsupported Content-Type {ctype or '(none)'}: use "
            "application/openstack-images-v2.1-json-patch."
        )
    ops = _operations(req.json(), version)
    image_id = core.check_uuid(req.path["image_id"])
    ctx = req.ctx
    with db.transaction() as s:
        img = core.get_image(s, ctx, image_id, lock=True)
        core.authorize("modify_image", ctx, core.target(img))
        props = core.properties(s, image_id)
        tags = core.tags(s, image_id)
        cols = {c: getattr(img, c) for c in COLUMNS}
        for op, name, value in ops:
            _check_writable([name])
            if name == "id":
                raise errors.Forbidden("Attribute 'id' is read-only.")
            if name in ("disk_format", "container_format") and img.status != "queued":
                raise errors.Forbidden(f"Attribute {name} can be only replaced for a queued image.")
            if name in CORE:
                if op == "remove":
                    raise errors.Forbidden(f"Attribute '{name}' is a core attribute and cannot be removed.")
                if name == "tags":
                    tags = value
                else:
                    cols[name] = value
            elif op == "add":
                if name in props:
                    raise errors.Conflict(f"Property {name} already present.")
                props[name] = value
            elif name not in props:
                raise errors.Conflict(f"Property {name} does not exist.")
            elif op == "replace":
                props[name] = value
            else:
                del props[name]
        validation.validate(WRITE_SCHEMA, {**props, **cols, "tags": tags})
        tags = _unique(tags)
        _check_counts(props, tags)
        if cols["owner"] != img.owner:
            core.authorize("set_image_owner", ctx, {"owner": cols["owner"] or ""})
        if cols["visibility"] != img.visibility:
            _check_visibility_change(ctx, cols["owner"], cols["visibility"])
        for c, v in cols.items():
            setattr(img, c, v)
        img.updated_at = utcnow()
        s.execute(sa.delete(m.ImageProperty).where(m.ImageProperty.image_id == image_id))
        s.execute(sa.delete(m.ImageTag).where(m.ImageTag.image_id == image_id))
        s.flush()
        s.add_all(m.ImageProperty(image_id=image_id, name=k, value=v) for k, v in props.items() if v is not None)
        s.add_all(m.ImageTag(image_id=image_id, value=t) for t in tags)
        out = views.image(img, {k: v for k, v in props.items() if v is not None}, sorted(tags))
    notify("update", out)
    return json_response(out)


# --- delete -------------------------------------------------------------------


@api.route("/v2/images/{image_id}", ["DELETE"])
def delete_image(req: Req):
    image_id = core.check_uuid(req.path["image_id"])
    with db.transaction() as s:
        img = core.get_image(s, req.ctx, image_id, lock=True)
        core.authorize("delete_image", req.ctx, core.target(img))
        if img.protected:
            raise errors.Forbidden(f"Image {image_id} is protected and cannot be deleted.")
        locations = [img.location, f"{image_id}.staging"]
        s.delete(img)
    for loc in locations:  # the record is gone first: nobody is handed a vanishing file
        if loc:
            core.State.store.delete(loc)
    notify("delete", {"id": image_id})
    return empty(204)


# --- deactivate / reactivate ----------------------------------------------------


def _set_active(req: Req, action: str, source: str, dest: str):
    image_id = core.check_uuid(req.path["image_id"])
    with db.transaction() as s:
        img = core.get_image(s, req.ctx, image_id, lock=True)
        core.authorize(action, req.ctx, core.target(img))
        if img.status == dest:
            return empty(204)
        if img.status != source:
            raise errors.Forbidden(f"Not allowed to {action} image in status '{img.status}'.")
        img.status = dest
        img.updated_at = utcnow()
    notify(action, {"id": image_id, "status": dest})
    return empty(204)


@api.route("/v2/images/{image_id}/actions/deactivate", ["POST"])
def deactivate(req: Req):
    return _set_active(req, "deactivate", "active", "deactivated")


@api.route("/v2/images/{image_id}/actions/reactivate", ["POST"])
def reactivate(req: Req):
    return _set_active(req, "reactivate", "deactivated", "active")


# --- tags -----------------------------------------------------------------------


@api.route("/v2/images/{image_id}/tags/{tag}", ["PUT"])
def add_tag(req: Req):
    image_id, tag = core.check_uuid(req.path["image_id"]), req.path["tag"]
    if not tag or len(tag) > 255:
        raise errors.BadRequest("A tag must be 1 to 255 characters long.")
    with db.transaction() as s:
        img = core.get_image(s, req.ctx, image_id, lock=True)
        core.authorize("modify_image", req.ctx, core.target(img))
        tags = core.tags(s, image_id)
        if tag not in tags:
            _check_counts({}, [*tags, tag])
            s.add(m.ImageTag(image_id=image_id, value=tag))
            img.updated_at = utcnow()
    return empty(204)


@api.route("/v2/images/{image_id}/tags/{tag}", ["DELETE"])
def delete_tag(req: Req):
    image_id, tag = core.check_uuid(req.path["image_id"]), req.path["tag"]
    with db.transaction() as s:
        img = core.get_image(s, req.ctx, image_id, lock=True)
        core.authorize("modify_image", req.ctx, core.target(img))
        row = s.get(m.ImageTag, (image_id, tag))
        if row is None:
            raise errors.NotFound(f"Tag {tag} not found.")
        s.delete(row)
        img.updated_at = utcnow()
    return empty(204)
