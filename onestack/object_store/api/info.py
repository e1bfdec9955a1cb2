"""``GET /info``: what this object store implements, as swiftclient and Tempest read it."""

from __future__ import annotations

from starlette.responses import Response

from onestack.common.http import Req, json_response
from onestack.object_store.api import SWIFT_VERSION, api
from onestack.object_store.api.common import (
    MAX_ACCOUNT_NAME,
    MAX_CONTAINER_NAME,
    MAX_META_NAME,
    MAX_META_VALUE,
    MAX_OBJECT_NAME,
    Limits,
)


def capabilities() -> dict:
    return {
        "swift": {
            "version": SWIFT_VERSION,
            "max_file_size": Limits.max_file_size,
            "max_object_name_length": MAX_OBJECT_NAME,
            "max_container_name_length": MAX_CONTAINER_NAME,
            "max_account_name_length": MAX_ACCOUNT_NAME,
            "container_listing_limit": Limits.container_listing_limit,
            "account_listing_limit": Limits.container_listing_limit,
            "max_meta_count": Limits.max_meta_count,
            "max_meta_name_length": MAX_META_NAME,
            "max_meta_value_length": MAX_META_VALUE,
            "max_meta_overall_size": Limits.max_meta_overall_size,
            "max_header_size": 8192,
            "extra_header_count": 0,
            "strict_cors_mode": True,
            "valid_api_versions": ["v1", "v1.0"],
            "policies": [{"name": "Policy-0", "aliases": "Policy-0", "default": True}],
        },
        "account_quotas": {},
        "container_quotas": {},
        "versioned_writes": {"allowed_flags": ["x-versions-location", "x-history-location"]},
        "slo": {"max_manifest_segments": 1000, "max_manifest_size": 8388608, "min_segment_size": 1,
                "yield_frequency": 10, "allow_async_delete": False},
        "dlo": {"max_get_time": 86400},
        "tempurl": {"methods": Limits.tempurl_methods,
                    "incoming_remove_headers": ["x-timestamp"],
                    "incoming_allow_headers": [],
                    "outgoing_remove_headers": ["x-object-meta-*"],
                    "outgoing_allow_headers": ["x-object-meta-public-*"],
                    "allowed_digests": ["sha1", "sha256", "sha512"]},
        "bulk_delete": {"max_deletes_per_request": 10000, "max_failed_deletes": 1000},
        "bulk_upload": {"max_containers_per_extraction": 10000, "max_failed_extractions": 1000},
        "formpost": {},
        "keystoneauth": {},
    }


@api.route("/healthcheck", ["GET", "HEAD"], auth=False)
def healthcheck(req: Req):
    # Swift's healthcheck middleware: "OK" while the proxy serves
    return Response(b"OK", 200, media_type="text/plain")


@api.route("/info", ["GET", "HEAD"], auth=False)
def info(req: Req):
    return json_response(capabilities())
