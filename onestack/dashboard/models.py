"""Tables of the dashboard (and only of it): its login sessions.

A session row is keyed by the SHA-256 of the cookie's secret, so the table alone cannot be
used to hijack a session; it holds the user's token, which never leaves the server.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from onestack.common.db import make_base

Base = make_base()


class Session(Base):
    __tablename__ = "dashboard_session"
    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)  # sha256 hex of the cookie
    token: Mapped[str] = mapped_column(sa.Text)
    token_expires: Mapped[datetime] = mapped_column(sa.DateTime)
    csrf: Mapped[str] = mapped_column(sa.String(64))
    domain: Mapped[str] = mapped_column(sa.String(255))
    user_id: Mapped[str] = mapped_column(sa.String(64))
    user_name: Mapped[str] = mapped_column(sa.String(255))
    project_id: Mapped[str] = mapped_column(sa.String(64))
    project_name: Mapped[str] = mapped_column(sa.String(255))
    roles: Mapped[list] = mapped_column(sa.JSON, default=list)
    last_seen: Mapped[datetime] = mapped_column(sa.DateTime, index=True)
    region: Mapped[str] = mapped_column(sa.String(255), default="", server_default="")
    # {region: {path prefix: base URL}}: where each API is, by region (from the catalog at login)
    endpoints: Mapped[dict | None] = mapped_column(sa.JSON, nullable=True)
