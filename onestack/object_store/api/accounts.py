"""Accounts: ``/v1/AUTH_<project_id>`` (listing, stats, metadata, quotas)."""

from __future__ import annotations

from starlette.responses import Response

from onestack.common import errors
from onestack.common.http import Req, empty
from onestack.object_store import proxy
from onestack.object_store.api import access, api, bulk
from onestack.object_store.api.common import (
    check_account,
    db_metadata_from,
    listing_params,
    listing_response,
    live_metadata,
)

QUOTA = "X-Account-Meta-Quota-Bytes"  # the original form, bytes only
QUOTAS = ("X-Account-Quota-Bytes", "X-Account-Quota-Count")  # Swift 2.34's, with a count
QUOTA_HEADERS = tuple(h.lower() for h in QUOTAS)


def account_headers(account: str, info, owner: str | None) -> dict[str, str]:
    headers = {
        "X-Account-Container-Count": str(info.container_count if info else 0),
        "X-Account-Object-Count": str(info.object_count if info else 0),
        "X-Account-Bytes-Used": str(info.bytes_used if info else 0),
        "X-Timestamp": info.created_at if info else proxy.now_timestamp(),
        "X-Account-Storage-Policy-Policy-0-Object-Count": str(info.object_count if info else 0),
        "X-Account-Storage-Policy-Policy-0-Bytes-Used": str(info.bytes_used if info else 0),
        "X-Account-Storage-Policy-Policy-0-Container-Count": str(info.container_count if info else 0),
    }
    if info:
        for k, v in live_metadata(info.metadata).items():
            if k.lower().startswith("x-account-meta-temp-url-key") and owner != "write":
                continue  # the signing keys are for the owner's eyes only
            headers[k] = v
    return headers


def _authorize(req: Req, account: str, write: bool = False) -> str:
    check_account(account)
    level = access.owner_level(req.ctx, account)
    if level is None or (write and level != "write"):
        raise access.deny(req.ctx, f"account {account}")
    return level


@api.route("/v1/{account}", ["GET", "HEAD"])
@api.route("/v1/{account}/", ["GET", "HEAD"])
def get_account(req: Req) -> Response:
    account = req.path["account"]
    level = _authorize(req, account)
    cluster = proxy.cluster()
    info = proxy.account_info(cluster, account)  # None: not used yet (created on first write)
    headers = account_headers(account, info, level)
    if req.method == "HEAD":
        return empty(204, headers)
    items = proxy.account_list(cluster, account, **listing_params(req)) if info else []
    return listing_response(req, "account", account, items, headers)


# stream=True: a bulk-delete body may be large (bulk.py); metadata POSTs have no body
@api.route("/v1/{account}", ["POST"], stream=True)
@api.route("/v1/{account}/", ["POST"], stream=True)
def post_account(req: Req) -> Response:
    account = req.path["account"]
    if "bulk-delete" in req.query:  # rights are checked per deleted item (bulk.py)
        return bulk.bulk_delete(req)
    _authorize(req, account, write=True)
    ts = proxy.now_timestamp()
    meta = db_metadata_from(req, "account", ts, QUOTA_HEADERS)
    for header in (QUOTA, *QUOTAS):
        if header not in meta:
            continue
        if not access.is_reseller(req.ctx):
            raise errors.Forbidden("Only a reseller admin may set the account quota.")
        value = meta[header][0]
        if value and not value.isdigit():
            raise errors.BadRequest(f"Invalid {header}: {value!r} is not a non-negative integer.")
    if meta:
        proxy.account_post(proxy.cluster(), account, meta)
    return empty(204)


# stream=True: archive uploads and bulk-delete bodies are streamed (bulk.py)
@api.route("/v1/{account}", ["PUT", "DELETE"], stream=True)
@api.route("/v1/{account}/", ["PUT", "DELETE"], stream=True)
def manage_account(req: Req) -> Response:
    check_account(req.path["account"])
    if req.method == "PUT" and "extract-archive" in req.query:  # tar upload at the account level
        return bulk.extract(req)
    if req.method == "DELETE" and "bulk-delete" in req.query:
        return bulk.bulk_delete(req)
    raise errors.MethodNotAllowed("Accounts are created on first use and are not deleted through this API.")
