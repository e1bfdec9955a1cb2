"""The cached tiny image: `<cache>/onestack-tiny-x86_64.qcow2` and a stamp beside it.

The stamp (`onestack-tiny-x86_64.stamp.json`) records what the image was built
from: a hash of the builder and of every file under guest/rootfs/, and the
version of each Debian package (read from the cached .deb file names).  The
image is reused while all of these are unchanged, which needs no apt and no
network: a changed guest script rebuilds, and so does a newer .deb in the cache.
(Newer Debian packages are only fetched when their .deb is not in the cache:
delete the cache's .debs to pick up a Debian point release.)

The image service's registration calls `ensure_tiny()`; the CLI calls
`prepare_tiny()`, which also says whether it built or reused.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from guest import build as builder

TINY_NAME = "onestack-tiny-x86_64"
SIZE_MIB = 64
STAMP_FORMAT = 1


@dataclass
class TinyImage:
    path: Path
    built: bool  # False: the cached image was reused
    seconds: float  # time this call took
    stamp: dict = field(default_factory=dict)


def recipe_hash() -> str:
    """sha256 over the builder and every guest/rootfs file (path and content)."""
    here = Path(builder.__file__).resolve().parent
    files = [here / "build.py", *sorted(p for p in builder.GUEST_DIR.rglob("*") if p.is_file())]
    h = hashlib.sha256()
    for path in files:
        h.update(str(path.relative_to(here)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _latest_deb(cache: Path, name: str) -> Path | None:
    found = sorted(cache.glob(f"{name}_*.deb"))  # the one build.fetch_deb would use
    return found[-1] if found else None


def package_versions(cache: Path) -> dict[str, str] | None:
    """{package: version} of the cached .debs a build would use; None if one is missing."""
    meta = _latest_deb(cache, builder.KERNEL_META)
    if meta is None:
        return None
    try:
        depends = subprocess.run(
            ["dpkg-deb", "-f", str(meta), "Depends"], capture_output=True, text=True
        ).stdout
    except FileNotFoundError:  # no dpkg-deb: the build says which tools are missing
        return None
    if not depends.strip():
        return None
    kernel = depends.split(",")[0].split()[0]
    versions = {}
    for name in [builder.KERNEL_META, kernel, *builder.USER_PACKAGES]:
        deb = _latest_deb(cache, name)
        if deb is None:
            return None
        # NAME_VERSION_ARCH.deb, with the epoch's ':' written as %3a by apt
        versions[name] = urllib.parse.unquote(deb.name.split("_")[1])
    return versions


def _inputs(cache: Path) -> dict | None:
    packages = package_versions(cache)
    if packages is None:
        return None
    return {
        "format": STAMP_FORMAT,
        "recipe_sha256": recipe_hash(),
        "size_mib": SIZE_MIB,
        "packages": packages,
    }


def _read_stamp(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _is_current(image: Path, stamp: dict, inputs: dict | None) -> bool:
    if inputs is None or not image.exists():
        return False
    if any(stamp.get(k) != v for k, v in inputs.items()):
        return False
    return stamp.get("image_bytes") == image.stat().st_size  # not truncated or replaced


@contextmanager
def _locked(cache: Path) -> Iterator[None]:
    """One builder at a time per cache (e.g. `make up` and a test run)."""
    with open(cache / f".{TINY_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def prepare_tiny(
    cache: Path | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    force: bool = False,
    say: Callable[[str], None] = builder.log,
) -> TinyImage:
    """The cached tiny image, built if absent, stale, or `force`; raises BuildError."""
    start = time.monotonic()
    cache = Path(cache) if cache else builder.default_cache()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise builder.BuildError(f"cannot create the image cache {cache}: {e.strerror}") from e
    image = cache / f"{TINY_NAME}.qcow2"
    stamp_path = cache / f"{TINY_NAME}.stamp.json"
    with _locked(cache):
        stamp = _read_stamp(stamp_path)
        if not force and _is_current(image, stamp, _inputs(cache)):
            return TinyImage(image, False, time.monotonic() - start, stamp)
        stamp_path.unlink(missing_ok=True)  # an image without its stamp is never reused
        builder.build(image, cache, SIZE_MIB, progress=progress, say=say)
        inputs = _inputs(cache)  # now every .deb is in the cache
        if inputs is None:
            raise builder.BuildError(f"built {image} but its packages are not in {cache}")
        seconds = time.monotonic() - start
        stamp = {
            **inputs,
            "image_bytes": image.stat().st_size,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "build_seconds": round(seconds, 2),
        }
        tmp = stamp_path.with_name(stamp_path.name + ".part")
        tmp.write_text(json.dumps(stamp, indent=1, sort_keys=True) + "\n")
        tmp.replace(stamp_path)
    return TinyImage(image, True, seconds, stamp)


def ensure_tiny(
    cache: Path | None = None, progress: Callable[[int, int, str], None] | None = None
) -> Path:
    """Path of the cached tiny qcow2, building it first if needed (raises BuildError)."""
    return prepare_tiny(cache, progress).path
