"""Password and secret hashing: bcrypt (its own check is constant-time)."""

from __future__ import annotations

import functools

import bcrypt

# bcrypt reads only the first 72 bytes of a secret; the API refuses longer ones.
MAX_BYTES = 72


def hash_password(password: str, rounds: int) -> str:
    return bcrypt.hashpw(password.encode()[:MAX_BYTES], bcrypt.gensalt(rounds)).decode()


@functools.cache
def _dummy_hash(rounds: int) -> bytes:
    return bcrypt.hashpw(b"onestack-dummy", bcrypt.gensalt(rounds))


def check_password(password: str, hashed: str | None, rounds: int = 12) -> bool:
    """True if ``password`` matches ``hashed``. Without a hash (unknown user, no
    password) it still spends one bcrypt check of the configured cost, so the
    response time does not tell whether the user exists."""
    if not hashed:
        bcrypt.checkpw(b"x", _dummy_hash(rounds))
        return False
    try:
        return bcrypt.checkpw(password.encode()[:MAX_BYTES], hashed.encode())
    except ValueError:
        return False
