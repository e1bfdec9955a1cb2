"""Image members: the owner shares a ``shared`` image with a project, which
then accepts or rejects it (accepted images appear in its default list)."""

from __future__ import annotations

import sqlalchemy as sa

from onestack.common import db, errors, validation
from onestack.common.http import Req, empty, json_response
from onestack.common.timeutils import utcnow
from onestack.image import core
from onestack.image import models as m
from onestack.image.api import api, views
from onestack.image.core import notify

CREATE = {"type": "object", "properties": {"member": {"type": "string", "minLength": 1, "maxLength": 255}},
          "required": ["member"], "additionalProperties": False}
UPDATE = {"type": "object", "properties": {"status": {"type": "string", "enum": ["pending", "accepted", "rejected"]}},
          "required": ["status"]}  # clients may send the whole member back; only status changes


def _shared_image(s, req: Req, image_id: str) -> m.Image:
    img = core.get_image(s, req.ctx, core.check_uuid(image_id))
    if img.visibility != "shared":
        raise errors.Forbidden(f"Only shared images have members; image {image_id} is {img.visibility}.")
    return img


def _is_owner(ctx, img: m.Image) -> bool:
    return ctx.is_admin or (img.owner is not None and img.owner == ctx.project_id)


@api.route("/v2/images/{image_id}/members", ["POST"])
def add_member(req: Req):
    body = validation.validate(CREATE, req.json())
    member = body["member"]
    now = utcnow()
    with db.transaction(conflict=f"The target member {member} is already associated with image "
                                 f"{req.path['image_id']}.") as s:
        img = _shared_image(s, req, req.path["image_id"])
        core.authorize("add_member", req.ctx, core.target(img))
        if s.get(m.ImageMember, (img.id, member)) is not None:
            raise errors.Conflict(f"The target member {member} is already associated with image {img.id}.")
        limit = core.State.settings.max_members
        count = s.scalar(sa.select(sa.func.count()).select_from(m.ImageMember).where(m.ImageMember.image_id == img.id))
        if limit >= 0 and count >= limit:
            raise errors.PayloadTooLarge(f"Image {img.id} is already shared with {count} projects, its limit "
                                         f"(image.max_members).")
        row = m.ImageMember(image_id=img.id, member=member, status="pending", created_at=now, updated_at=now)
        s.add(row)
        out = views.member(row)
    notify("member.create", out)
    return json_response(out)


@api.route("/v2/images/{image_id}/members", ["GET"])
def list_members(req: Req):
    ctx = req.ctx
    with db.session() as s:
        img = _shared_image(s, req, req.path["image_id"])
        core.authorize("get_members", ctx, core.target(img))
        query = sa.select(m.ImageMember).where(m.ImageMember.image_id == img.id)
        if not _is_owner(ctx, img):  # a member sees only its own membership
            query = query.where(m.ImageMember.member == ctx.project_id)
        rows = s.scalars(query.order_by(m.ImageMember.created_at, m.ImageMember.member))
        return json_response({"members": [views.member(r) for r in rows], "schema": "/v2/schemas/members"})


def _get_member(s, req: Req) -> tuple[m.Image, m.ImageMember]:
    img = _shared_image(s, req, req.path["image_id"])
    member = req.path["member_id"]
    row = s.get(m.ImageMember, (img.id, member))
    if row is None or not (_is_owner(req.ctx, img) or member == req.ctx.project_id):
        raise errors.NotFound(f"Project {member} is not a member of image {img.id}.")
    return img, row


@api.route("/v2/images/{image_id}/members/{member_id}", ["GET"])
def show_member(req: Req):
    with db.session() as s:
        img, row = _get_member(s, req)
        core.authorize("get_member", req.ctx, core.target(img))
        return json_response(views.member(row))


@api.route("/v2/images/{image_id}/members/{member_id}", ["PUT"])
def update_member(req: Req):
    body = validation.validate(UPDATE, req.json())
    with db.transaction() as s:
        img, row = _get_member(s, req)
        if not core.allowed("modify_member", req.ctx, {"member_id": row.member, "owner": img.owner or ""}):
            raise errors.Forbidden("Only the member project itself may accept or reject a shared image.")
        row.status = body["status"]
        row.updated_at = utcnow()
        out = views.member(row)
    notify("member.update", out)
    return json_response(out)


@api.route("/v2/images/{image_id}/members/{member_id}", ["DELETE"])
def delete_member(req: Req):
    with db.transaction() as s:
        img, row = _get_member(s, req)
        if not core.allowed("delete_member", req.ctx, core.target(img)):
            raise errors.Forbidden("Only the image owner may remove a member.")
        s.delete(row)
    notify("member.delete", {"image_id": img.id, "member_id": req.path["member_id"]})
    return empty(204)
