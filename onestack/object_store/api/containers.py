"""Containers: create, list, stats, metadata, ACLs, quotas, versioning, delete."""

from __future__ import annotations

from starlette.responses import Response

from onestack.common import errors
from onestack.common.http import Req, empty
from onestack.object_store import proxy
from onestack.object_store.api import access, api, bulk, formpost
from onestack.object_store.api.common import (
    check_account,
    check_container,
    db_metadata_from,
    listing_params,
    listing_response,
    live_metadata,
)
from onestack.object_store.node import NotEmpty

READ, WRITE = "X-Container-Read", "X-Container-Write"
VERSIONS, HISTORY = "X-Versions-Location", "X-History-Location"
QUOTA_BYTES, QUOTA_COUNT = "X-Container-Meta-Quota-Bytes", "X-Container-Meta-Quota-Count"
SYSTEM = ("x-container-read", "x-container-write", "x-versions-location", "x-history-location")
OWNER_ONLY = {READ.lower(), WRITE.lower(), VERSIONS.lower(), HISTORY.lower()}


def container_headers(info, owner: bool) -> dict[str, str]:
    headers = {
        "X-Container-Object-Count": str(info.object_count),
        "X-Container-Bytes-Used": str(info.bytes_used),
        "X-Timestamp": info.created_at,
        "X-Put-Timestamp": info.put_timestamp,
        "X-Storage-Policy": "Policy-0",
    }
    for k, v in live_metadata(info.metadata).items():
        if k.lower() in OWNER_ONLY and not owner:
            continue
        headers[k] = v
    return headers


def metadata_from(req: Req, ts: str) -> dict[str, tuple[str, str]]:
    meta = db_metadata_from(req, "container", ts, SYSTEM)
    for header in (READ, WRITE):
        if header in meta:
            access.check_acl_syntax(header, meta[header][0])
    for header in (QUOTA_BYTES, QUOTA_COUNT):
        value = meta.get(header, ("", ""))[0]
        if value and not value.isdigit():
            raise errors.BadRequest(f"Invalid {header}: {value!r} is not a non-negative integer.")
    if meta.get(VERSIONS, ("",))[0] and meta.get(HISTORY, ("",))[0]:
        raise errors.BadRequest(f"Only one of {VERSIONS} or {HISTORY} may be specified")
    for header in (VERSIONS, HISTORY):
        value = meta.get(header, ("",))[0]
        if value:
            check_container(value.split("/")[-1] if "/" in value else value)
            meta[header] = (value, ts)
            other = HISTORY if header == VERSIONS else VERSIONS
            meta[other] = ("", ts)  # one mode at a time
    return meta


def _owner(req: Req, account: str, container: str) -> None:
    check_account(account)
    check_container(container)
    if access.owner_level(req.ctx, account) != "write":
        raise access.deny(req.ctx, f"container {container}")


def get_container_info(account: str, container: str):
    info = proxy.container_info(proxy.cluster(), account, container)
    if info is None:
        raise errors.NotFound(f"Container {container} not found.")
    return info


@api.route("/v1/{account}/{container}", ["GET", "HEAD"])
def get_container(req: Req) -> Response:
    account, container = req.path["account"], req.path["container"]
    return show_container(req, account, container)


def show_container(req: Req, account: str, container: str) -> Response:
    check_account(account)
    check_container(container)
    info = get_container_info(account, container) if access.owner_level(req.ctx, account) else None
    if info is None:  # not the owner: the container's read ACL decides
        acl_info = proxy.container_info(proxy.cluster(), account, container)
        acl = live_metadata(acl_info.metadata).get(READ) if acl_info else None
        if not access.may_list(req.ctx, account, acl, req.headers.get("referer")):
            raise access.deny(req.ctx, f"container {container}")
        if acl_info is None:
            raise errors.NotFound(f"Container {container} not found.")
        info = acl_info
    owner = access.owner_level(req.ctx, account) == "write"
    headers = container_headers(info, owner)
    if req.method == "HEAD":
        return empty(204, headers)
    params = listing_params(req)
    path = req.query.get("path")
    if path is not None:
        params["path"] = path
    items = proxy.container_list(proxy.cluster(), account, container, **params)
    return listing_response(req, "container", container, items, headers)


# stream=True: only an archive upload (?extract-archive, bulk.py) has a body to read
@api.route("/v1/{account}/{container}", ["PUT"], stream=True)
def put_container(req: Req) -> Response:
    account, container = req.path["account"], req.path["container"]
    if "extract-archive" in req.query:  # rights are checked per extracted file (bulk.py)
        check_account(account)
        check_container(container)
        return bulk.extract(req)
    _owner(req, account, container)
    policy = req.headers.get("x-storage-policy")
    if policy and policy.lower() != "policy-0":
        raise errors.BadRequest(f"Invalid X-Storage-Policy {policy!r}: the only policy is Policy-0.")
    meta = metadata_from(req, proxy.now_timestamp())
    created = proxy.container_put(proxy.cluster(), account, container, meta)
    return empty(201 if created else 202)


# stream=True: a FormPost upload streams its files (formpost.py); metadata POSTs have no body
@api.route("/v1/{account}/{container}", ["POST"], stream=True)
def post_container(req: Req) -> Response:
    account, container = req.path["account"], req.path["container"]
    if formpost.is_form(req):  # an HTML form upload into the container (formpost.py)
        check_account(account)
        check_container(container)
        return formpost.handle(req, account, container, "")
    _owner(req, account, container)
    get_container_info(account, container)
    meta = metadata_from(req, proxy.now_timestamp())
    if meta:
        proxy.container_post(proxy.cluster(), account, container, meta)
    return empty(204)


@api.route("/v1/{account}/{container}", ["DELETE"])
def delete_container(req: Req) -> Response:
    account, container = req.path["account"], req.path["container"]
    _owner(req, account, container)
    get_container_info(account, container)
    try:
        proxy.container_delete(proxy.cluster(), account, container)
    except NotEmpty:
        # Swift's exact sentence: clients (and Tempest) look for it
        raise errors.Conflict("There was a conflict when trying to complete your request.") from None
    return empty(204)
