"""Tables of the alarming service (and only of it).

An alarm keeps its rule (the one of its type) as a JSON document, its actions per state
and its time constraints. Its history is append-only and outlives the alarm, as in Aodh
(``alarm-history`` of a deleted alarm still answers to its project).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from onestack.common.db import make_base

Base = make_base()


class Alarm(Base):
    __tablename__ = "alarming_alarm"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255), index=True)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    type: Mapped[str] = mapped_column(sa.String(64))
    enabled: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    severity: Mapped[str] = mapped_column(sa.String(16), default="low")
    state: Mapped[str] = mapped_column(sa.String(32), default="insufficient data")
    state_reason: Mapped[str] = mapped_column(sa.Text, default="")
    state_timestamp: Mapped[datetime] = mapped_column(sa.DateTime)
    timestamp: Mapped[datetime] = mapped_column(sa.DateTime)
    evaluate_timestamp: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    project_id: Mapped[str] = mapped_column(sa.String(255), index=True)
    user_id: Mapped[str] = mapped_column(sa.String(255))
    rule: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    time_constraints: Mapped[list] = mapped_column(sa.JSON, default=list)
    ok_actions: Mapped[list] = mapped_column(sa.JSON, default=list)
    alarm_actions: Mapped[list] = mapped_column(sa.JSON, default=list)
    insufficient_data_actions: Mapped[list] = mapped_column(sa.JSON, default=list)
    repeat_actions: Mapped[bool] = mapped_column(sa.Boolean, default=False)


class AlarmChange(Base):
    __tablename__ = "alarming_alarm_change"
    seq: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(sa.String(36), unique=True)
    alarm_id: Mapped[str] = mapped_column(sa.String(36), index=True)
    type: Mapped[str] = mapped_column(sa.String(32))
    detail: Mapped[str] = mapped_column(sa.Text, default="")
    project_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    user_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    on_behalf_of: Mapped[str | None] = mapped_column(sa.String(255), nullable=True, index=True)
    severity: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)
    timestamp: Mapped[datetime] = mapped_column(sa.DateTime)


class Quota(Base):
    __tablename__ = "alarming_quota"
    project_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    resource: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    limit: Mapped[int] = mapped_column(sa.Integer)
