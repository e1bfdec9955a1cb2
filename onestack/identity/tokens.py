"""Fernet tokens: nothing stored, everything needed to rebuild the token inside.

Key repository as in Keystone: files named 0, 1, 2, ... in one directory; 0
is the staged key (next primary), the highest number is the primary key that
encrypts, and every key decrypts. ``rotate`` promotes the staged key, stages
a new one and drops the oldest beyond ``max_active_keys``.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

PAYLOAD_VERSION = 1


class KeyRepository:
    def __init__(self, path: Path, max_active_keys: int = 3):
        self.path = path
        self.max_active_keys = max(2, max_active_keys)
        self._fernet: MultiFernet | None = None
        self._loaded_state: tuple | None = None
        self._checked_at = 0.0

    def _indexes(self) -> list[int]:
        if not self.path.is_dir():
            return []
        return sorted(int(p.name) for p in self.path.iterdir() if p.name.isdigit())

    def _write_key(self, index: int) -> None:
        tmp = self.path / f".{index}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key())
        tmp.rename(self.path / str(index))

    def setup(self) -> bool:
        """Create the repository with a staged and a primary key; False if it existed."""
        if len(self._indexes()) >= 2:
            return False
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        for index in (0, 1):
            if not (self.path / str(index)).exists():
                self._write_key(index)
        self._fernet = None
        return True

    def rotate(self) -> list[int]:
        """Promote staged key 0 to primary, stage a new 0, prune old keys."""
        indexes = self._indexes()
        if not indexes:
            self.setup()
            indexes = self._indexes()
        new_primary = max(indexes) + 1
        (self.path / "0").rename(self.path / str(new_primary))
        self._write_key(0)
        indexes = self._indexes()
        # keep 0 plus the newest (max_active_keys - 1) numbered keys
        numbered = [i for i in indexes if i != 0]
        for old in numbered[: max(0, len(numbered) - (self.max_active_keys - 1))]:
            (self.path / str(old)).unlink()
        self._fernet = None  # (also makes the next fernet() look at the files)
        return self._indexes()

    def fernet(self) -> MultiFernet:
        # Reload when the files change (rotation by another process), looking at
        # the directory at most once a second: this sits on every token's path.
        now = time.monotonic()
        if self._fernet is not None and now - self._checked_at < 1.0:
            return self._fernet
        self._checked_at = now
        state = tuple((i, (self.path / str(i)).stat().st_mtime_ns) for i in self._indexes())
        if self._fernet is None or state != self._loaded_state:
            if len(state) < 1:
                raise RuntimeError(f"no Fernet keys in {self.path}; run setup first")
            # primary (highest) first: MultiFernet encrypts with the first key
            keys = [(self.path / str(i)).read_bytes().strip() for i, _ in reversed(state)]
            self._fernet = MultiFernet([Fernet(k) for k in keys])
            self._loaded_state = state
        return self._fernet


def new_audit_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")


@dataclass
class TokenPayload:
    user_id: str
    methods: list[str]
    expires_at: datetime
    issued_at: datetime
    audit_ids: list[str]
    project_id: str | None = None
    domain_id: str | None = None
    system: str | None = None  # "all"
    app_cred_id: str | None = None
    trust_id: str | None = None  # a trust-scoped token: user_id is the trustee
    extra: dict = field(default_factory=dict)

    @property
    def scope(self) -> str:
        if self.project_id:
            return "project"
        if self.domain_id:
            return "domain"
        if self.system:
            return "system"
        return "unscoped"


def _ts(dt: datetime) -> float:
    return dt.replace(tzinfo=UTC).timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)


def encode(repo: KeyRepository, p: TokenPayload) -> str:
    scope_type, scope_id = {
        "project": ("p", p.project_id),
        "domain": ("d", p.domain_id),
        "system": ("s", p.system),
        "unscoped": ("u", None),
    }[p.scope]
    data = [
        PAYLOAD_VERSION,
        p.user_id,
        p.methods,
        scope_type,
        scope_id,
        round(_ts(p.expires_at), 6),
        round(_ts(p.issued_at), 6),
        p.audit_ids,
        p.app_cred_id,
    ]
    if p.trust_id:  # (tokens of other kinds keep their shorter payload)
        data.append(p.trust_id)
    raw = json.dumps(data, separators=(",", ":")).encode()
    # Keystone strips the base64 padding so tokens are URL-safe as they are.
    return repo.fernet().encrypt(raw).decode().rstrip("=")


def decode(repo: KeyRepository, token: str) -> TokenPayload:
    """Decrypt and parse; ValueError when the token is not one of ours."""
    if not token or len(token) > 1024 or not token.isascii():
        raise ValueError("malformed token")
    padded = token + "=" * (-len(token) % 4)
    try:
        raw = repo.fernet().decrypt(padded.encode())
        data = json.loads(raw)
        if not isinstance(data, list) or len(data) not in (9, 10):
            raise ValueError("unknown token layout")
        version, user_id, methods, scope_type, scope_id, exp, iat, audit_ids, app_cred = data[:9]
        trust_id = data[9] if len(data) == 10 else None
    except (InvalidToken, ValueError, TypeError) as e:
        raise ValueError("invalid token") from e
    if version != PAYLOAD_VERSION:
        raise ValueError("unknown token version")
    return TokenPayload(
        user_id=user_id,
        methods=list(methods),
        expires_at=_dt(exp),
        issued_at=_dt(iat),
        audit_ids=list(audit_ids),
        project_id=scope_id if scope_type == "p" else None,
        domain_id=scope_id if scope_type == "d" else None,
        system=scope_id if scope_type == "s" else None,
        app_cred_id=app_cred,
        trust_id=trust_id,
    )
