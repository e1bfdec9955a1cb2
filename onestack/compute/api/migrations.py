"""Migrations: ``GET /os-migrations`` (every move), and a server's live migrations in
progress (``/servers/{id}/migrations``: list, show, force_complete, abort). Views here."""

from __future__ import annotations

from onestack.common import booleans, db, errors, validation
from onestack.common.http import Req, empty, json_response
from onestack.common.microversion import Version
from onestack.common.timeutils import iso_plain, parse_iso
from onestack.compute import models as m
from onestack.compute import moves
from onestack.compute.api import api, mv, views
from onestack.compute.api import helpers as h
from onestack.compute.schemas import moves as move_schemas

V_FORCE_COMPLETE = Version(2, 22)
V_TYPES = Version(2, 23)  # migration_type and links; the server migrations API
V_ABORT = Version(2, 24)
V_PAGES = Version(2, 59)  # uuid, newest first, limit/marker, changes-since
V_ABORT_QUEUED = Version(2, 65)
V_CHANGES_BEFORE = Version(2, 66)

_FILTERS = {"hidden", "host", "instance_uuid", "source_compute", "status", "migration_type"}


# ---------------------------------------------------------------- views

def migration_view(req: Req, mig: m.Migration, v: Version) -> dict:
    """One migration of ``os-migrations``."""
    out = {"id": mig.id, "instance_uuid": mig.instance_uuid, "status": mig.status,
           "source_compute": mig.source_compute, "source_node": mig.source_node,
           "dest_compute": mig.dest_compute, "dest_node": mig.dest_node, "dest_host": mig.dest_host,
           "old_instance_type_id": mig.old_instance_type_id, "new_instance_type_id": mig.new_instance_type_id,
           "created_at": iso_plain(mig.created_at), "updated_at": iso_plain(mig.updated_at)}
    if v >= V_TYPES:
        out["migration_type"] = mig.migration_type
        # links only for a live migration in progress: what /servers/{id}/migrations shows
        if mig.migration_type == moves.LIVE_MIGRATION and mig.status in moves.LIVE_IN_PROGRESS:
            out["links"] = views.links(views.base_url(req), f"servers/{mig.instance_uuid}/migrations", str(mig.id))
    if v >= V_PAGES:
        out["uuid"] = mig.uuid
    return out


def server_migration_view(mig: m.Migration, v: Version) -> dict:
    """One live migration of a server (``/servers/{id}/migrations``), with its progress."""
    out = {"id": mig.id, "server_uuid": mig.instance_uuid, "status": mig.status,
           "source_compute": mig.source_compute, "source_node": mig.source_node,
           "dest_compute": mig.dest_compute, "dest_node": mig.dest_node, "dest_host": mig.dest_host,
           "memory_total_bytes": mig.memory_total, "memory_processed_bytes": mig.memory_processed,
           "memory_remaining_bytes": mig.memory_remaining, "disk_total_bytes": mig.disk_total,
           "disk_processed_bytes": mig.disk_processed, "disk_remaining_bytes": mig.disk_remaining,
           "created_at": iso_plain(mig.created_at), "updated_at": iso_plain(mig.updated_at)}
    if v >= V_PAGES:
        out["uuid"] = mig.uuid
    return out


# ---------------------------------------------------------------- os-migrations

def _time(req: Req, key: str):
    raw = req.query.get(key)
    if raw is None:
        return None
    try:
        return parse_iso(raw)
    except ValueError:
        raise errors.BadRequest(f"Invalid input for query parameters {key}. Value: {raw}. "
                                f"'{raw}' is not a 'date-time'") from None


@api.route("/v2.1/os-migrations", ["GET"])
def list_migrations(req: Req):
    v = mv(req)
    paged = v >= V_PAGES
    if paged:  # from 2.59 the query is checked (unknown parameters are refused)
        allowed = _FILTERS | {"limit", "marker", "changes-since"}
        h.strict_query(req, allowed | ({"changes-before"} if v >= V_CHANGES_BEFORE else set()), since=V_PAGES)
    filters = {k: req.query.getlist(k) if k == "status" else req.query.get(k) for k in _FILTERS if k in req.query}
    if "hidden" in filters:
        if booleans.to_bool(filters.pop("hidden")):
            return json_response({"migrations": []})  # hidden migrations are never shown
    since = _time(req, "changes-since") if paged else None
    before = _time(req, "changes-before") if v >= V_CHANGES_BEFORE else None
    if since is not None and before is not None and before < since:
        raise errors.BadRequest("The value of changes-since must be less than or equal to changes-before.")
    limit, marker = h.limit_marker(req) if paged else (None, None)
    with db.session() as s:
        rows, _more = moves.list_migrations(s, req.ctx, filters, newest_first=paged, limit=limit, marker=marker,
                                            since=since, before=before)
        out = {"migrations": [migration_view(req, r, v) for r in rows]}
    if paged:
        links = h.next_links(req, "os-migrations", rows, rows[-1].uuid if rows else None, limit)
        if links:
            out["migrations_links"] = links
    return json_response(out)


# ---------------------------------------------------------------- /servers/{id}/migrations

def _since(req: Req, version: Version) -> Version:
    v = mv(req)
    if v < version:
        raise errors.NotFound("The resource could not be found.")
    return v


@api.route("/v2.1/servers/{server_id}/migrations", ["GET"])
def list_server_migrations(req: Req):
    v = _since(req, V_TYPES)
    with db.session() as s:
        rows = moves.in_progress_live(s, req.ctx, req.path["server_id"])
        return json_response({"migrations": [server_migration_view(r, v) for r in rows]})


@api.route("/v2.1/servers/{server_id}/migrations/{migration_id}", ["GET"])
def show_server_migration(req: Req):
    v = _since(req, V_TYPES)
    with db.session() as s:
        mig = moves.in_progress_live_one(s, req.ctx, req.path["server_id"], req.path["migration_id"])
        return json_response({"migration": server_migration_view(mig, v)})


@api.route("/v2.1/servers/{server_id}/migrations/{migration_id}/action", ["POST"])
def server_migration_action(req: Req):
    _since(req, V_FORCE_COMPLETE)
    validation.validate(move_schemas.FORCE_COMPLETE, req.json(), style=validation.NOVA)
    moves.live_migration_force_complete(req.ctx, req.path["server_id"], req.path["migration_id"], req.request_id)
    return empty(202)


@api.route("/v2.1/servers/{server_id}/migrations/{migration_id}", ["DELETE"])
def abort_server_migration(req: Req):
    v = _since(req, V_ABORT)
    moves.live_migration_abort(req.ctx, req.path["server_id"], req.path["migration_id"], req.request_id,
                               queued_too=v >= V_ABORT_QUEUED)
    return empty(202)
