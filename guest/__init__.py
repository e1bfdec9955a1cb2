"""onestack's tiny guest image (our CirrOS): the builder and its cache.

    from guest import ensure_tiny
    path = ensure_tiny()          # cached qcow2, built on first use or when inputs change

The builder itself is `guest.build.build(output, ...)`; `guest/build.py` also runs
as a script (`python3 guest/build.py OUT.qcow2`).
"""

from guest.build import BuildError, default_cache
from guest.tiny import TINY_NAME, TinyImage, ensure_tiny, prepare_tiny

__all__ = [
    "TINY_NAME",
    "BuildError",
    "TinyImage",
    "default_cache",
    "ensure_tiny",
    "prepare_tiny",
]
