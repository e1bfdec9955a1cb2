"""Container versioning (Swift's versioned_writes), both modes.

``X-Versions-Location: <archive>`` (stack): an overwrite first copies the
current object into ``<archive>`` as ``<len(name) as 3 hex digits><name>/<timestamp>``;
a DELETE removes the current object and restores the newest archived copy.
``X-History-Location: <archive>`` (history): overwrites and deletes both copy
the current object into the archive first; a DELETE then really deletes.
"""

from __future__ import annotations

from starlette.responses import Response

from onestack.common import errors
from onestack.common.http import empty
from onestack.object_store import proxy
from onestack.object_store.node import ContainerRow


def _archive(t) -> tuple[str, str] | None:
    """(mode, archive container) when the container versions its objects."""
    meta = t.cmeta
    if meta.get("X-Versions-Location"):
        return "stack", meta["X-Versions-Location"]
    if meta.get("X-History-Location"):
        return "history", meta["X-History-Location"]
    return None


def _prefix(obj: str) -> str:
    return f"{len(obj.encode()):03x}{obj}/"


def internal_copy(account: str, src_container: str, src_obj: str, dst_container: str, dst_obj: str) -> bool:
    """Copy an object within the account, bypassing access checks (the caller
    holds them); False if the source is missing."""
    cluster = proxy.cluster()
    reader = proxy.object_reader(cluster, account, src_container, src_obj)
    if reader is None:
        return False
    ts = proxy.now_timestamp()
    write = proxy.ReplicatedWrite(cluster, account, dst_container, dst_obj, ts)
    try:
        for data in proxy.chunked(reader):
            write.write(data)
        meta = {**reader.info.metadata, "X-Timestamp": ts}
        write.commit(meta, ContainerRow(dst_obj, ts, reader.info.size, meta.get("Content-Type", ""),
                                        meta.get("ETag", "")))
    except BaseException:
        write.abort()
        raise
    return True


def _need_archive(t, container: str) -> None:
    if proxy.container_info(proxy.cluster(), t.account, container) is None:
        raise errors.PreconditionFailed(f"The versions container {container} does not exist.")


def before_write(t) -> None:
    mode = _archive(t)
    if mode is None:
        return
    _, archive = mode
    info = proxy.object_info(proxy.cluster(), t.account, t.container, t.obj)
    if info is None:
        return
    _need_archive(t, archive)
    internal_copy(t.account, t.container, t.obj, archive, _prefix(t.obj) + info.timestamp)


def on_delete(t) -> Response | None:
    """Handle a DELETE in a versioned container (a response), or None to delete as usual."""
    mode = _archive(t)
    if mode is None:
        return None
    kind, archive = mode
    cluster = proxy.cluster()
    if kind == "history":
        info = proxy.object_info(cluster, t.account, t.container, t.obj)
        if info is not None:
            _need_archive(t, archive)
            internal_copy(t.account, t.container, t.obj, archive, _prefix(t.obj) + info.timestamp)
        return None
    existed = proxy.object_delete(cluster, t.account, t.container, t.obj)
    versions = proxy.container_list(cluster, t.account, archive, limit=1, prefix=_prefix(t.obj), reverse=True) \
        if proxy.container_info(cluster, t.account, archive) else []
    if versions:
        newest = versions[0].name
        internal_copy(t.account, archive, newest, t.container, t.obj)
        proxy.object_delete(cluster, t.account, archive, newest)
        return empty(204)
    if not existed:
        raise errors.NotFound(f"Object {t.obj} not found.")
    return empty(204)
