"""The orchestration domain: stacks, their resources, events and outputs, and the
resource type registry, for the API. Functions of (context, plain arguments).

Writes that start work store the stack row, then cast the action to the engine over
the bus (``orchestration.engine``), which runs in the controller. A stack of another
project is absent (404), as in Heat; an admin may reach any by id and list all with
``global_tenant``.
"""

from __future__ import annotations

import re
import secrets
import uuid
from typing import Any

import sqlalchemy as sa

from onestack.common import bus, db, errors
from onestack.common.timeutils import utcnow
from onestack.orchestration import events, policies, settings, snapshots
from onestack.orchestration import models as m
from onestack.orchestration import template as tpl
from onestack.orchestration.engine import actions, credentials, properties, store
from onestack.orchestration.engine.context import signature
from onestack.orchestration.engine.runtime import TOPIC
from onestack.orchestration.engine.stack import StackRun
from onestack.orchestration.engine.stack import parse as parse_template
from onestack.orchestration.resources import base

NAME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_.-]{0,254}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class StackNotFound(errors.NotFound):
    heat_type = "StackNotFound"

    def __init__(self, name: str):
        super().__init__(f"The Stack ({name}) could not be found.")


class ResourceNotFound(errors.NotFound):
    heat_type = "ResourceNotFound"


class StackExists(errors.Conflict):
    heat_type = "StackExists"


class ActionInProgress(errors.Conflict):
    heat_type = "ActionInProgress"


def configure(conf) -> None:
    credentials.configure(conf)


def _cast(stack_id: str, action: str, ctx) -> None:
    bus.get().cast_sync(TOPIC, "stack_action", stack_id=stack_id, action=action, token=ctx.auth_token)


# ---------------------------------------------------------------- lookup
def find(ctx, name_or_id: str, show_deleted: bool = False) -> m.Stack:
    """The caller's stack by name or id (an admin's: any, by id)."""
    with db.session() as s:
        row = s.get(m.Stack, name_or_id) if UUID_RE.match(name_or_id) else None
        if row is not None and row.project_id != ctx.project_id and not ctx.is_admin:
            row = None
        if row is None:
            q = sa.select(m.Stack).where(m.Stack.name == name_or_id, m.Stack.project_id == ctx.project_id,
                                         m.Stack.deleted_at.is_(None))
            row = s.scalars(q.order_by(m.Stack.created_at.desc())).first()
        if row is None or (row.deleted_at is not None and not show_deleted):
            raise StackNotFound(name_or_id)
        return row


def get(ctx, name: str, stack_id: str, rule: str = "stacks:show") -> m.Stack:
    """The stack of ``/stacks/{name}/{id}`` (both must match)."""
    row = find(ctx, stack_id, show_deleted=True)
    if row.name != name and row.id != name:
        raise StackNotFound(f"{name}/{stack_id}")
    policies.authorize(rule, ctx, row.project_id)
    return row


# ---------------------------------------------------------------- create
def _doc(value: Any, kind: str) -> dict:
    if value is None:
        return {}
    if isinstance(value, str | bytes):
        value = tpl.load(value, kind, max_size=settings.current.max_template_size)
    if not isinstance(value, dict):
        raise errors.BadRequest(f"The {kind.lower()} must be a map.")
    return value


def _template_of(body: dict) -> dict:
    if "template" in body and body["template"] not in (None, ""):
        t = body["template"]
        if isinstance(t, str) and len(t.encode()) > settings.current.max_template_size:
            raise tpl.TemplateTooLarge(len(t.encode()), settings.current.max_template_size)
        return _doc(t, "Template")
    if body.get("template_url"):
        raise errors.BadRequest("template_url is not supported by this cloud: send the template itself.")
    raise errors.BadRequest("No template specified")


def _tags(value: Any) -> list[str] | None:
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    if isinstance(value, list) and all(isinstance(t, str) for t in value):
        return value
    raise errors.BadRequest("tags must be a comma separated string or a list of strings.")


def _timeout(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        t = int(value)
    except (TypeError, ValueError):
        raise errors.BadRequest(f"Only integer is acceptable by 'timeout_mins'; got {value!r}.") from None
    if t <= 0:
        raise errors.BadRequest("timeout_mins must be a positive integer.")
    return t


def _bool(value: Any, name: str, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise errors.BadRequest(f'Unrecognized value "{value}" for "{name}", acceptable values are: true, false')


def _files(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise errors.BadRequest("files must map file names to their contents (strings).")
    return value


def _params(value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise errors.BadRequest("parameters must be a map.")
    return value


def _stub(ctx, name: str, stack_id: str | None = None) -> dict:
    return {"id": stack_id, "name": name, "project_id": ctx.project_id}


def parse_request(ctx, body: dict) -> dict:
    if not isinstance(body, dict):
        raise errors.BadRequest("The request body must be a JSON object.")
    name = body.get("stack_name")
    if not isinstance(name, str) or not name:
        raise errors.BadRequest("No stack name specified")
    if not NAME_RE.match(name):
        raise errors.BadRequest(f'Invalid stack name {name} must contain only alphanumeric or "_-." '
                                'characters, must start with alpha and must be 255 characters or less.')
    return {"name": name, "template": _template_of(body), "environment": _doc(body.get("environment"),
                                                                                 "Environment"),
            "files": _files(body.get("files")), "parameters": _params(body.get("parameters")),
            "tags": _tags(body.get("tags")), "timeout_mins": _timeout(body.get("timeout_mins")),
            "disable_rollback": _bool(body.get("disable_rollback"), "disable_rollback", True)}


def create(ctx, body: dict) -> m.Stack:
    policies.authorize("stacks:create", ctx)
    adopt = snapshots.adopt_data(body) if isinstance(body, dict) else None
    if adopt is not None:  # the template is the adopted stack's
        body = {**body, "template": adopt["template"],
                "environment": body.get("environment") or adopt.get("environment") or {}}
    action = "CREATE" if adopt is None else "ADOPT"
    req = parse_request(ctx, body)
    actions.validate(_stub(ctx, req["name"]), req["template"], req["environment"], req["parameters"],
                     req["files"], token=ctx.auth_token)
    with db.session() as s:
        exists = s.scalar(sa.select(m.Stack.id).where(m.Stack.name == req["name"],
                                                      m.Stack.project_id == ctx.project_id,
                                                      m.Stack.deleted_at.is_(None)))
        count = s.scalar(sa.select(sa.func.count()).select_from(m.Stack).where(
            m.Stack.project_id == ctx.project_id, m.Stack.deleted_at.is_(None), m.Stack.parent_id.is_(None)))
    if exists:
        raise StackExists(f"The Stack ({req['name']}) already exists.")
    if count >= settings.current.max_stacks_per_tenant:
        raise errors.BadRequest(f"You have reached the maximum stacks per tenant, "
                                f"{settings.current.max_stacks_per_tenant}. Please delete some stacks.")
    trust_id = credentials.create_trust(ctx)
    row = m.Stack(id=str(uuid.uuid4()), name=req["name"], project_id=ctx.project_id, user_id=ctx.user_id,
                  username=ctx.user_name, action=action, status="IN_PROGRESS",
                  status_reason=f"Stack {action} started", template=req["template"],
                  environment=req["environment"], files=req["files"], parameters=req["parameters"],
                  tags=req["tags"], timeout_mins=req["timeout_mins"], disable_rollback=req["disable_rollback"],
                  nested_depth=0, trust_id=trust_id, secret=secrets.token_hex(32), outputs={},
                  cancel_requested=None, created_at=utcnow())
    with db.transaction(conflict=f"The Stack ({req['name']}) already exists.") as s:
        s.add(row)
    if adopt is not None:
        snapshots.seed_resources(row.id, adopt)
    _cast(row.id, action, ctx)
    return row


def preview(ctx, body: dict) -> dict:
    policies.authorize("stacks:preview", ctx)
    req = parse_request(ctx, body)
    stub = {**_stub(ctx, req["name"]), "id": "None"}
    actions.validate(stub, req["template"], req["environment"], req["parameters"], req["files"],
                     token=ctx.auth_token)
    run_resources = actions.preview(stub, req["template"], req["environment"], req["parameters"],
                                    req["files"])
    t = parse_template(req["template"])
    now = utcnow()
    return {"id": "None", "stack_name": req["name"], "description": t.description or "No description",
            "template_description": t.description or "No description", "disable_rollback": req["disable_rollback"],
            "timeout_mins": req["timeout_mins"], "parameters": _shown_params(stub, req), "resources": run_resources,
            "creation_time": now, "updated_time": None, "deletion_time": None, "capabilities": [],
            "notification_topics": [], "stack_owner": ctx.user_name, "parent": None, "tags": req["tags"],
            "project": ctx.project_id, "links": []}


def _shown_params(stack: dict, req: dict) -> dict:
    t = parse_template(req["template"])
    env = tpl.parse_environment(req["environment"] or {})
    p = tpl.Parameters(t, {**(env.parameters or {}), **req["parameters"]}, env.parameter_defaults or {},
                       stack_name=stack["name"], stack_id=stack.get("id"), project_id=stack["project_id"],
                       region=settings.current.region, validate=False)
    return p.show()


def parameters_view(row: m.Stack) -> dict:
    try:
        return _shown_params({"name": row.name, "id": row.id, "project_id": row.project_id},
                             {"template": row.template, "environment": row.environment,
                              "parameters": row.parameters})
    except errors.ApiError:
        return {}


# ---------------------------------------------------------------- update, delete, actions
def _busy(row: m.Stack) -> None:
    if row.status == "IN_PROGRESS":
        raise ActionInProgress(f"Stack {row.name} already has an action ({row.action}) in progress.")


def update(ctx, row: m.Stack, body: dict, patch: bool) -> None:
    policies.authorize("stacks:update", ctx, row.project_id)
    if not isinstance(body, dict):
        raise errors.BadRequest("The request body must be a JSON object.")
    _busy(row)
    if row.action == "DELETE" or row.deleted_at is not None:
        raise errors.BadRequest(f"Stack {row.name} is being deleted; it cannot be updated.")
    has_template = body.get("template") not in (None, "") or body.get("template_url")
    template = _template_of(body) if (has_template or not patch) else row.template
    env = _doc(body.get("environment"), "Environment") if "environment" in body else (
        row.environment if patch else {})
    if patch and "environment" in body:
        env = {**row.environment, **env, "parameters": {**(row.environment.get("parameters") or {}),
                                                         **(env.get("parameters") or {})}}
    params = _params(body.get("parameters"))
    if patch:
        params = {**row.parameters, **params}
        for key in body.get("clear_parameters") or []:
            params.pop(key, None)
    files = {**(row.files if patch else {}), **_files(body.get("files"))}
    timeout = _timeout(body.get("timeout_mins")) if "timeout_mins" in body else (
        row.timeout_mins if patch else None)
    rollback = _bool(body.get("disable_rollback"), "disable_rollback", row.disable_rollback)
    tags = _tags(body.get("tags")) if ("tags" in body or not patch) else row.tags
    stub = {"id": row.id, "name": row.name, "project_id": row.project_id}
    actions.validate(stub, template, env, params, files, token=ctx.auth_token)
    with db.transaction() as s:
        r = s.get(m.Stack, row.id)
        if r.status == "IN_PROGRESS":
            raise ActionInProgress(f"Stack {row.name} already has an action ({r.action}) in progress.")
        r.previous = {"template": r.template, "environment": r.environment, "parameters": r.parameters,
                      "files": r.files}
        r.template, r.environment, r.parameters, r.files = template, env, params, files
        r.timeout_mins, r.disable_rollback, r.tags = timeout, rollback, tags
        r.action, r.status, r.status_reason = "UPDATE", "IN_PROGRESS", "Stack UPDATE started"
        r.updated_at = utcnow()
    _cast(row.id, "UPDATE", ctx)


def preview_update(ctx, row: m.Stack, body: dict, patch: bool) -> dict:
    """What an update would do to each resource: added, deleted, replaced, updated, unchanged."""
    policies.authorize("stacks:update", ctx, row.project_id)
    template = _template_of(body) if (body.get("template") or not patch) else row.template
    env = _doc(body.get("environment"), "Environment") if "environment" in body else row.environment
    params = {**(row.parameters if patch else {}), **_params(body.get("parameters"))}
    files = {**(row.files if patch else {}), **_files(body.get("files"))}
    stub = {"id": row.id, "name": row.name, "project_id": row.project_id}
    run = actions.validate(stub, template, env, params, files)
    old = {r["name"]: r for r in store.resources(row.id)}
    out: dict[str, list] = {"added": [], "deleted": [], "replaced": [], "updated": [], "unchanged": []}
    for name in run.defs:
        item = {"resource_name": name, "resource_type": run.defs[name].type, "resource_action": "INIT",
                "resource_status": "COMPLETE", "physical_resource_id": "", "resource_identity": {}}
        if name not in old:
            out["added"].append(item)
            continue
        item.update(physical_resource_id=old[name]["physical_id"] or "", resource_action=old[name]["action"],
                    resource_status=old[name]["status"])
        cls = run.class_of(name)
        new_props = run.properties_of(name)
        diff = properties.changed(cls.PROPERTIES, old[name]["properties"] or {}, new_props)
        diff = {k for k in diff if not properties.contains_unknown(new_props.get(k))}
        if old[name]["type"] != run.effective_type(name):
            out["replaced"].append(item)
        elif not diff:
            out["unchanged"].append(item)
        elif all(cls.PROPERTIES[k].update_allowed for k in diff) and not (
                cls.PROPERTIES.get("update_replace") and new_props.get("update_replace")):
            out["updated"].append(item)
        else:
            out["replaced"].append(item)
    for name, r in old.items():
        if name not in run.defs:
            out["deleted"].append({"resource_name": name, "resource_type": r["type"],
                                   "physical_resource_id": r["physical_id"] or ""})
    return out


def delete(ctx, row: m.Stack) -> None:
    policies.authorize("stacks:delete", ctx, row.project_id)
    if row.deleted_at is not None:
        raise StackNotFound(row.name)
    with db.transaction() as s:
        r = s.get(m.Stack, row.id)
        if r.action == "DELETE" and r.status == "IN_PROGRESS":
            return
        r.action, r.status, r.status_reason = "DELETE", "IN_PROGRESS", "Stack DELETE started"
    _cast(row.id, "DELETE", ctx)


def stack_action(ctx, row: m.Stack, body: Any) -> None:
    policies.authorize("stacks:action", ctx, row.project_id)
    if not isinstance(body, dict) or len(body) != 1:
        raise errors.BadRequest("Exactly one action must be given, one of suspend, resume, check, "
                                "cancel_update, cancel_without_rollback.")
    action = next(iter(body))
    if action in ("cancel_update", "cancel_without_rollback"):
        allowed = ("UPDATE",) if action == "cancel_update" else ("CREATE", "UPDATE")
        if not (row.action in allowed and row.status == "IN_PROGRESS"):
            raise errors.BadRequest(f"Cancelling update when stack is {row.action}_{row.status}")
        store.update_stack(row.id, cancel_requested="rollback" if action == "cancel_update" else "no_rollback")
        return
    if action not in ("suspend", "resume", "check"):
        raise errors.BadRequest(f"Invalid action {action} specified")
    _busy(row)
    store.update_stack(row.id, action=action.upper(), status="IN_PROGRESS",
                       status_reason=f"Stack {action.upper()} started")
    _cast(row.id, action.upper(), ctx)


# ---------------------------------------------------------------- listing
SORT_KEYS = {"stack_name": m.Stack.name, "stack_status": m.Stack.status, "creation_time": m.Stack.created_at,
             "updated_time": m.Stack.updated_at, "name": m.Stack.name, "status": m.Stack.status,
             "created_at": m.Stack.created_at, "updated_at": m.Stack.updated_at}


def list_stacks(ctx, query) -> tuple[list[m.Stack], int | None]:
    policies.authorize("stacks:index", ctx)
    q = sa.select(m.Stack)
    if _bool(query.get("global_tenant"), "global_tenant", False):
        policies.authorize("stacks:global_index", ctx)
    else:
        q = q.where(m.Stack.project_id == ctx.project_id)
    if not _bool(query.get("show_deleted"), "show_deleted", False):
        q = q.where(m.Stack.deleted_at.is_(None))
    if not _bool(query.get("show_nested"), "show_nested", False):
        q = q.where(m.Stack.parent_id.is_(None))
    for key, col in (("name", m.Stack.name), ("id", m.Stack.id), ("tenant", m.Stack.project_id),
                     ("username", m.Stack.username), ("owner_id", m.Stack.parent_id)):
        values = query.getlist(key) if hasattr(query, "getlist") else []
        if values:
            q = q.where(col.in_(values))
    statuses = query.getlist("status") if hasattr(query, "getlist") else []
    for st in statuses:
        action, _, status = st.rpartition("_")
        q = q.where(m.Stack.status == status, *([m.Stack.action == action] if action else []))
    acts = query.getlist("action") if hasattr(query, "getlist") else []
    if acts:
        q = q.where(m.Stack.action.in_(acts))
    sort_keys = query.getlist("sort_keys") if hasattr(query, "getlist") else []
    direction = (query.get("sort_dir") or "desc").lower()
    if direction not in ("asc", "desc"):
        raise errors.BadRequest(f"Invalid sort direction: {direction}; use asc or desc.")
    cols = []
    for k in sort_keys or ["creation_time"]:
        for part in k.split(","):
            if part not in SORT_KEYS:
                raise errors.BadRequest(f"Invalid sort key: {part}")
            cols.append(SORT_KEYS[part])
    q = q.order_by(*[c.asc() if direction == "asc" else c.desc() for c in cols], m.Stack.id)
    with db.session() as s:
        rows = list(s.scalars(q))
    rows = _tag_filter(rows, query)
    hidden = set(settings.current.hidden_stack_tags)
    if hidden and not _bool(query.get("show_hidden"), "show_hidden", False):
        rows = [r for r in rows if not hidden & set(r.tags or [])]
    total = len(rows)
    marker, limit = query.get("marker"), query.get("limit")
    if marker:
        ids = [r.id for r in rows]
        if marker not in ids:
            raise StackNotFound(marker)
        rows = rows[ids.index(marker) + 1:]
    if limit not in (None, ""):
        try:
            n = int(limit)
            if n < 0:
                raise ValueError
        except ValueError:
            raise errors.BadRequest(f"Only integer is acceptable by 'limit'; got {limit!r}.") from None
        rows = rows[:n]
    with_count = _bool(query.get("with_count"), "with_count", False)
    return rows, (total if with_count else None)


def _tag_filter(rows: list[m.Stack], query) -> list[m.Stack]:
    def tags(key):
        v = query.get(key)
        return {t.strip() for t in v.split(",") if t.strip()} if v else None

    want_all, want_any, not_all, not_any = tags("tags"), tags("tags_any"), tags("not_tags"), tags("not_tags_any")
    out = []
    for r in rows:
        have = set(r.tags or [])
        if want_all and not want_all <= have:
            continue
        if want_any and not want_any & have:
            continue
        if not_all and not_all <= have:
            continue
        if not_any and not_any & have:
            continue
        out.append(r)
    return out


# ---------------------------------------------------------------- resources
def _stack_tree(stack_id: str, depth: int) -> list[str]:
    ids, frontier = [stack_id], [stack_id]
    for _ in range(depth):
        with db.session() as s:
            frontier = list(s.scalars(sa.select(m.Stack.id).where(m.Stack.parent_id.in_(frontier),
                                                                 m.Stack.deleted_at.is_(None))))
        if not frontier:
            break
        ids += frontier
    return ids


def _depth(value: Any) -> int:
    if value in (None, ""):
        return 0
    try:
        d = int(value)
        if d < 0:
            raise ValueError
    except ValueError:
        raise errors.BadRequest(f"Only integer is acceptable by 'nested_depth'; got {value!r}.") from None
    return min(d, settings.current.max_nested_stack_depth)


def resources(ctx, row: m.Stack, query) -> list[tuple[m.Stack, m.Resource, list[str]]]:
    """The current resources (with their required_by), of the nested stacks to ``nested_depth``."""
    policies.authorize("resource:index", ctx, row.project_id)
    ids = _stack_tree(row.id, _depth(query.get("nested_depth")))
    with db.session() as s:
        stacks = {st.id: st for st in s.scalars(sa.select(m.Stack).where(m.Stack.id.in_(ids)))}
        rows = list(s.scalars(sa.select(m.Resource).where(m.Resource.stack_id.in_(ids),
                                                          m.Resource.current.is_(True))
                              .order_by(m.Resource.created_at)))
    filters = {k: set(query.getlist(k)) for k in ("name", "type", "status", "action", "id", "physical_resource_id")
               if hasattr(query, "getlist") and query.getlist(k)}
    out = []
    for r in rows:
        if "name" in filters and r.name not in filters["name"]:
            continue
        if "type" in filters and r.type not in filters["type"]:
            continue
        if "status" in filters and r.status not in filters["status"] and \
                f"{r.action}_{r.status}" not in filters["status"]:
            continue
        if "action" in filters and r.action not in filters["action"]:
            continue
        if "id" in filters and r.id not in filters["id"]:
            continue
        if "physical_resource_id" in filters and r.physical_id not in filters["physical_resource_id"]:
            continue
        required_by = sorted(o.name for o in rows if o.stack_id == r.stack_id and r.name in (o.requires or []))
        out.append((stacks[r.stack_id], r, required_by))
    return out


def resource(ctx, row: m.Stack, name: str, rule: str = "resource:show") -> tuple[m.Resource, list[str]]:
    policies.authorize(rule, ctx, row.project_id)
    with db.session() as s:
        rows = list(s.scalars(sa.select(m.Resource).where(m.Resource.stack_id == row.id,
                                                          m.Resource.current.is_(True))))
    for r in rows:
        if r.name == name:
            return r, sorted(o.name for o in rows if name in (o.requires or []))
    raise ResourceNotFound(f"The Resource ({name}) could not be found in Stack {row.name}.")


def nested_stack(row: m.Resource) -> tuple[str, str] | None:
    """(name, id) of the child stack a resource is (template resource, group, OS::Heat::Stack)."""
    child_id = (row.data or {}).get("nested_stack_id")
    if not child_id:
        return None
    with db.session() as s:
        child = s.get(m.Stack, child_id)
        return (child.name, child.id) if child is not None else None


def resource_attributes(ctx, stack: m.Stack, r: m.Resource, with_attr: list[str] | None = None) -> dict:
    """Every declared attribute of a made resource, read now (None where it cannot be)."""
    if not r.physical_id and r.action == "INIT":
        return {}
    try:
        inst = actions.live_instance(stack.id, store.resource_dict(r), ctx.auth_token)
    except errors.ApiError:
        return {}
    out = {}
    for a in [*type(inst).ATTRIBUTES, *(with_attr or [])]:
        try:
            out[a] = inst.attribute(a)
        except (KeyError, errors.ApiError):
            out[a] = None
    return out


def mark_unhealthy(ctx, stack: m.Stack, name: str, body: Any) -> None:
    r, _ = resource(ctx, stack, name, "resource:mark_unhealthy")
    if not isinstance(body, dict) or "mark_unhealthy" not in body:
        raise errors.BadRequest("Missing mandatory (mark_unhealthy) key from mark unhealthy request")
    unknown = set(body) - {"mark_unhealthy", "resource_status_reason"}
    if unknown:
        raise errors.BadRequest(f"Invalid keys in resource mark unhealthy {', '.join(sorted(unknown))}")
    mark = _bool(body["mark_unhealthy"], "mark_unhealthy", False)
    reason = str(body.get("resource_status_reason") or "")
    if r.status == "IN_PROGRESS":
        raise errors.BadRequest(f"Resource {name} is in progress ({r.action}); it cannot be marked.")
    if mark:
        store.save_resource(r.id, action="CHECK", status="FAILED", status_reason=reason)
        events.record(stack.id, name, r.type, r.physical_id, "CHECK", "FAILED", reason)
    elif r.action == "CHECK" and r.status == "FAILED":
        store.save_resource(r.id, action="CHECK", status="COMPLETE", status_reason=reason)
        events.record(stack.id, name, r.type, r.physical_id, "CHECK", "COMPLETE", reason)


def signal(ctx, stack: m.Stack, name: str, details: Any) -> None:
    r, _ = resource(ctx, stack, name, "resource:signal")
    _signal(stack, r, details, ctx.auth_token)


def _signal(stack: m.Stack, r: m.Resource, details: Any, token: str | None) -> None:
    if isinstance(details, dict) and "unset_hook" in details:
        hook = details["unset_hook"]
        if hook not in ("pre-create", "pre-update", "pre-delete"):
            raise errors.BadRequest(f"Invalid hook type {hook!r}: use pre-create, pre-update or pre-delete.")
        data = r.data or {}
        if data.get("hook_paused") != hook:
            raise errors.BadRequest(f"The \"{hook}\" hook is not defined on {r.type} \"{r.name}\"")
        with db.transaction() as s:
            row = s.get(m.Resource, r.id)
            row.data = {**row.data, "hooks_cleared": [*row.data.get("hooks_cleared", []), hook]}
        events.record(stack.id, r.name, r.type, r.physical_id, r.action, r.status, f"Hook {hook} is cleared")
        return
    bus.get().call_sync(TOPIC, "signal", stack_id=stack.id, resource_name=r.name,
                        details=details if isinstance(details, dict) else {"data": details}, token=token)


def signal_by_url(stack_id: str, name: str, sig: str, details: Any) -> None:
    """A guest's signal to a URL of ``EngineContext.signal_url`` (no token: the signature)."""
    with db.session() as s:
        stack = s.get(m.Stack, stack_id) if UUID_RE.match(stack_id) else None
        if stack is None or stack.deleted_at is not None or not stack.secret:
            raise errors.NotFound("No such signal URL.")
        if not secrets.compare_digest(signature(stack.secret, stack_id, name), sig or ""):
            raise errors.Forbidden("The signal URL's signature does not match.")
        r = s.scalars(sa.select(m.Resource).where(m.Resource.stack_id == stack_id, m.Resource.name == name,
                                                  m.Resource.current.is_(True))).first()
    if r is None:
        raise errors.NotFound("No such signal URL.")
    _signal(stack, r, details, None)


# ---------------------------------------------------------------- events, outputs
def list_events(ctx, stack: m.Stack, resource_name: str | None, query) -> list[m.Event]:
    policies.authorize("events:index", ctx, stack.project_id)
    ids = _stack_tree(stack.id, _depth(query.get("nested_depth")))
    with db.session() as s:
        rows = events.query(s, ids, resource_name)
    for key, attr in (("resource_name", "resource_name"), ("resource_type", "resource_type"),
                      ("resource_action", "action"), ("resource_status", "status")):
        values = query.getlist(key) if hasattr(query, "getlist") else []
        if values:
            rows = [e for e in rows if getattr(e, attr) in values]
    if (query.get("sort_dir") or "asc").lower() == "desc":
        rows.reverse()
    marker, limit = query.get("marker"), query.get("limit")
    if marker:
        ids_ = [e.id for e in rows]
        if marker not in ids_:
            raise errors.NotFound(f"The Event ({marker}) could not be found.")
        rows = rows[ids_.index(marker) + 1:]
    if limit not in (None, ""):
        try:
            rows = rows[:max(int(limit), 0)]
        except ValueError:
            raise errors.BadRequest(f"Only integer is acceptable by 'limit'; got {limit!r}.") from None
    return rows


def event(ctx, stack: m.Stack, resource_name: str, event_id: str) -> m.Event:
    policies.authorize("events:index", ctx, stack.project_id)
    with db.session() as s:
        for e in events.query(s, [stack.id], resource_name):
            if e.id == event_id:
                return e
    raise errors.NotFound(f"The Event ({event_id}) could not be found.")


def outputs(ctx, stack: m.Stack) -> list[dict]:
    policies.authorize("stacks:show", ctx, stack.project_id)
    if stack.deleted_at is None and not (stack.action == "DELETE" and stack.status != "FAILED"):
        try:
            return actions.live_outputs(stack.id, ctx.auth_token)
        except errors.ApiError:
            pass
    items = (stack.outputs or {}).get("items")
    if items is not None:
        return items
    try:
        t = parse_template(stack.template)
    except errors.ApiError:
        return []
    return [{"output_key": k, "description": o.description or "No description given", "output_value": None}
            for k, o in t.outputs.items()]


def output(ctx, stack: m.Stack, key: str) -> dict:
    for o in outputs(ctx, stack):
        if o["output_key"] == key:
            return o
    raise errors.NotFound(f"Specified output key {key} not found.")


# ---------------------------------------------------------------- validate, types
def validate_template(ctx, body: Any, show_nested: bool = False, ignore_errors: str = "") -> dict:
    policies.authorize("stacks:validate_template", ctx)
    if not isinstance(body, dict):
        raise errors.BadRequest("The request body must be a JSON object.")
    template = _template_of(body)
    env = _doc(body.get("environment"), "Environment")
    files = _files(body.get("files"))
    params = _params(body.get("parameters"))
    run = actions.validate({"id": None, "name": "validate", "project_id": ctx.project_id}, template, env,
                           params, files, check_params=False, token=ctx.auth_token)
    env_obj = run.env
    desc = tpl.describe_parameters(run.template, env_obj.parameter_defaults or {},
                                   {**(env_obj.parameters or {}), **params})
    out = {**desc, "Description": run.template.description or "No description"}
    if show_nested:
        nested = _nested_parameters(run, files)
        if nested:
            out["NestedParameters"] = nested
    out["Environment"] = env_obj.to_dict()
    return out


def _nested_parameters(run, files: dict) -> dict:
    """``show_nested``: each template resource's parameters, recursively."""
    out = {}
    for name in run.defs:
        cls = run.class_of(name)
        raw = getattr(cls, "TEMPLATE", None)
        if raw is None:
            continue
        child = StackRun({"id": None, "name": name, "project_id": run.stack["project_id"]}, raw,
                                 run.env.child(name, None, run.defs[name].type).to_dict(), {}, files,
                                 validating=True, check_params=False)
        try:  # the values the parent gives (shown as each parameter's Value)
            given = run.given_properties(name)
        except errors.ApiError:
            given = {}
        given = {k: v for k, v in given.items() if not properties.contains_unknown(v)} \
            if isinstance(given, dict) else {}
        item = {**tpl.describe_parameters(child.template, values=given), "Type": run.defs[name].type}
        item["Description"] = child.template.description or "No description"
        deeper = _nested_parameters(child, files)
        if deeper:
            item["NestedParameters"] = deeper
        out[name] = item
    return out


def _type_visible(name: str, cls: type[base.Resource], ctx) -> bool:
    if cls.SUPPORT_STATUS == "HIDDEN":
        return False
    if name.startswith("OS::Heat::TestResource") or name in ("OS::Heat::None",):
        return True
    return True


def resource_types(ctx, query) -> list:
    policies.authorize("resource_types:index", ctx)
    names = sorted(n for n, c in base.REGISTRY.items() if _type_visible(n, c, ctx))
    want = query.get("name")
    if want:
        pattern = re.compile(want)
        names = [n for n in names if pattern.search(n)]
    status = query.get("support_status")
    if status:
        names = [n for n in names if base.REGISTRY[n].SUPPORT_STATUS == status.upper()]
    version = query.get("version")
    if version:
        names = [n for n in names if getattr(base.REGISTRY[n], "VERSION", "") == version]
    if _bool(query.get("with_description"), "with_description", False):
        return [{"resource_type": n, "description": (base.REGISTRY[n].__doc__ or "").strip().split("\n")[0]}
                for n in names]
    return names


def resource_type(ctx, name: str) -> type[base.Resource]:
    policies.authorize("resource_types:show", ctx)
    cls = base.REGISTRY.get(name)
    if cls is None or cls.SUPPORT_STATUS == "HIDDEN":
        raise errors.NotFound(f"The Resource Type ({name}) could not be found.")
    return cls


def resource_type_schema(ctx, name: str) -> dict:
    cls = resource_type(ctx, name)
    attrs = {k: {"description": a.description, **({"type": a.type} if a.type else {})}
             for k, a in cls.ATTRIBUTES.items()}
    attrs.setdefault("show", {"description": "Detailed information about resource.", "type": "map"})
    return {"resource_type": name, "properties": {k: properties.schema_view(p) for k, p in cls.PROPERTIES.items()},
            "attributes": attrs, "support_status": {"status": cls.SUPPORT_STATUS, "version": None,
                                                    "message": None, "previous_status": None},
            "description": (cls.__doc__ or "").strip()}


def resource_type_template(ctx, name: str, kind: str) -> dict:
    cls = resource_type(ctx, name)
    kind = (kind or "cfn").lower()
    if kind not in ("hot", "cfn"):
        raise errors.BadRequest(f"Template type is not supported: Invalid template type \"{kind}\", "
                                "valid types are: cfn, hot.")
    short = name.split("::")[-1]
    params = {}
    for k, p in cls.PROPERTIES.items():
        ptype = {"string": "string", "integer": "number", "number": "number", "boolean": "boolean",
                 "map": "json", "list": "comma_delimited_list"}.get(p.type, "string")
        item: dict[str, Any] = {"type": ptype, "description": p.description}
        if p.default is not None:
            item["default"] = p.default
        params[k] = item
    if kind == "hot":
        return {"heat_template_version": "2016-10-14", "description": f"Initial template of {short}",
                "parameters": params,
                "resources": {short: {"type": name, "properties": {k: {"get_param": k} for k in params}}},
                "outputs": {a: {"description": v.description, "value": {"get_attr": [short, a]}}
                            for a, v in cls.ATTRIBUTES.items()}}
    return {"HeatTemplateFormatVersion": "2012-12-12", "Description": f"Initial template of {short}",
            "Parameters": {k: {**{kk.capitalize() if kk != "description" else "Description": vv
                                  for kk, vv in v.items()}, "Type": {"string": "String", "number": "Number",
                                                                     "boolean": "Boolean", "json": "Json",
                                                                     "comma_delimited_list":
                                                                         "CommaDelimitedList"}[v["type"]]}
                           for k, v in params.items()},
            "Resources": {short: {"Type": name, "Properties": {k: {"Ref": k} for k in params}}},
            "Outputs": {a: {"Description": v.description, "Value": {"Fn::GetAtt": [short, a]}}
                        for a, v in cls.ATTRIBUTES.items()}}


def template_versions(ctx) -> list[dict]:
    return tpl.list_versions()


def template_functions(ctx, version: str, with_condition: bool) -> list[dict]:
    return tpl.list_functions(version, with_condition)
