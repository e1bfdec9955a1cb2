"""Volume transfers: ``/os-volume-transfer`` and, from 3.55, ``/volume-transfers``.

Creating one gives its id and an authorization key, once (only a salted hash
is stored); the volume is ``awaiting-transfer`` until the transfer is accepted
(another project takes the volume and, unless ``no_snapshots``, its
snapshots) or deleted.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import sqlalchemy as sa

from onestack.common import db, errors
from onestack.common.booleans import parse_bool
from onestack.common.http import Req, empty, json_response
from onestack.common.microversion import Version
from onestack.common.timeutils import utcnow
from onestack.volume import core, policies
from onestack.volume import models as m
from onestack.volume.api import body_of, mv, route, views
from onestack.volume.api.volumes import check_text, check_uuid, paginate


def _hash(salt: str, key: str) -> str:
    return hashlib.sha256((salt + key).encode()).hexdigest()


def _get(s, req: Req, transfer_id: str) -> m.Transfer:
    tr = s.get(m.Transfer, transfer_id)
    if tr is None or tr.deleted or tr.accepted:
        raise errors.NotFound(f"Transfer {transfer_id} could not be found.")
    if not req.ctx.is_admin and tr.source_project_id != req.ctx.project_id:
        raise errors.NotFound(f"Transfer {transfer_id} could not be found.")
    return tr


def _list(req: Req, detail: bool):
    policies.authorize("volume:get_all_transfers", req.ctx)
    with db.session() as s:
        q = sa.select(m.Transfer).where(m.Transfer.deleted.is_(False), m.Transfer.accepted.is_(False))
        if not (req.ctx.is_admin and req.query.get("all_tenants")):
            q = q.where(m.Transfer.source_project_id == req.ctx.project_id)
        rows = list(s.scalars(q.order_by(m.Transfer.created_at.desc(), m.Transfer.id)))
    page, limit = paginate(req, rows)
    items = [views.transfer(req, tr, mv(req), detail=detail) for tr in page]
    return json_response({"transfers": items, **views.collection_links(req, "transfers", items, limit, False)})


def _create(req: Req):
    ctx = req.ctx
    body = body_of(req, "transfer")
    volume_id = body.get("volume_id")
    if not volume_id:
        raise errors.BadRequest("Invalid input for field/attribute transfer: 'volume_id' is a required property.")
    check_uuid(volume_id, "volume_id")
    name = check_text(body.get("name"), "name")
    no_snapshots = parse_bool(body.get("no_snapshots", False), "no_snapshots") if mv(req) >= Version(3, 55) \
        else False
    key = secrets.token_hex(8)
    salt = secrets.token_hex(8)
    with db.transaction() as s:
        v = core.get_volume(s, ctx, volume_id)
        policies.authorize("volume:create_transfer", ctx, {"project_id": v.project_id})
        if v.status != core.AVAILABLE:
            raise core.invalid_volume(v, "available")
        tr = m.Transfer(id=core.new_id(), volume_id=v.id, name=name, salt=salt, crypt_hash=_hash(salt, key),
                        source_project_id=v.project_id, no_snapshots=no_snapshots, accepted=False, deleted=False,
                        created_at=utcnow())
        s.add(tr)
        v.status = core.AWAITING_TRANSFER
        core.touch(v)
        s.flush()
        return json_response({"transfer": views.transfer(req, tr, mv(req), auth_key=key)}, 202)


def _accept(req: Req):
    ctx = req.ctx
    body = body_of(req, "accept")
    key = body.get("auth_key")
    if not isinstance(key, str) or not key:
        raise errors.BadRequest("Invalid input for field/attribute accept: 'auth_key' is a required property.")
    policies.authorize("volume:accept_transfer", ctx)
    with db.transaction() as s:
        tr = s.get(m.Transfer, req.path["transfer_id"])
        if tr is None or tr.deleted or tr.accepted:
            raise errors.NotFound(f"Transfer {req.path['transfer_id']} could not be found.")
        if not hmac.compare_digest(tr.crypt_hash, _hash(tr.salt, key)):
            raise errors.BadRequest(f"Invalid auth key: Attempt to transfer {tr.id} with invalid auth key.")
        v = s.get(m.Volume, tr.volume_id)
        if v is None or v.deleted or v.status != core.AWAITING_TRANSFER:
            raise errors.BadRequest("Invalid volume: the volume is no longer awaiting this transfer.")
        snaps = list(s.scalars(sa.select(m.Snapshot).where(m.Snapshot.volume_id == v.id,
                                                           m.Snapshot.deleted.is_(False))))
        vt = s.get(m.VolumeType, v.volume_type_id) if v.volume_type_id else None
        extra_gb = 0 if tr.no_snapshots else sum(sn.size for sn in snaps)
        deltas = {"volumes": 1, "gigabytes": v.size + extra_gb}
        if snaps and not tr.no_snapshots:
            deltas["snapshots"] = len(snaps)
        if ctx.project_id != v.project_id:
            core.check_quota(s, ctx.project_id, vt.name if vt else None, **deltas)
        v.project_id, v.user_id, v.status = ctx.project_id, ctx.user_id, core.AVAILABLE
        core.touch(v)
        for sn in snaps:
            if not tr.no_snapshots:
                sn.project_id, sn.user_id = ctx.project_id, ctx.user_id
        tr.accepted, tr.destination_project_id, tr.updated_at = True, ctx.project_id, utcnow()
        return json_response({"transfer": {"id": tr.id, "name": tr.name, "volume_id": v.id,
                                           "links": views.links(req, "os-volume-transfer", tr.id,
                                                                ctx.project_id)}}, 202)


def _show(req: Req):
    policies.authorize("volume:get_transfer", req.ctx)
    with db.session() as s:
        tr = _get(s, req, req.path["transfer_id"])
        return json_response({"transfer": views.transfer(req, tr, mv(req))})


def _delete(req: Req):
    with db.transaction() as s:
        tr = _get(s, req, req.path["transfer_id"])
        policies.authorize("volume:delete_transfer", req.ctx, {"project_id": tr.source_project_id})
        tr.deleted = True
        v = s.get(m.Volume, tr.volume_id)
        if v is not None and v.status == core.AWAITING_TRANSFER:
            v.status = core.AVAILABLE
            core.touch(v)
    return empty(202)


for prefix in ("/os-volume-transfer", "/volume-transfers"):
    route(prefix + "/detail", ["GET"])(lambda req: _list(req, True))
    route(prefix, ["GET"])(lambda req: _list(req, False))
    route(prefix, ["POST"])(_create)
    route(prefix + "/{transfer_id}/accept", ["POST"])(_accept)
    route(prefix + "/{transfer_id}", ["GET"])(_show)
    route(prefix + "/{transfer_id}", ["DELETE"])(_delete)
