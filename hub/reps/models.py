"""Reps and teams."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, IdType, JsonType, UtcDateTime, utcnow_default

REP_STATUSES = ("active", "away", "inactive")
"""active: takes leads and calls; away: keeps their leads but gets no new ones; inactive: left."""


class Team(Base):
    """A group of reps with a lead manager, who hears about its queue and escalations."""

    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    manager_rep_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id", use_alter=True))
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    """Contacts of this team with no zone of their own are reached in this one."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)


class Rep(Base):
    """A sales rep: reachable at a phone number and/or a Twilio Client identity, working to a schedule."""

    __tablename__ = "reps"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)
    """E.164; inbound calls for the rep's leads ring here, and calls from it are the rep's."""
    client_identity: Mapped[str | None] = mapped_column(String(100), unique=True)
    """The Twilio Client (browser softphone) identity, seen as ``client:<identity>``."""
    status: Mapped[str] = mapped_column(String(16), default="active")
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    working_hours: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    """``{"mon": [["09:00", "17:00"]], ...}``; empty: around the clock."""
    absences: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    """``[{"start": "2026-12-24", "end": "2026-12-26", "reason": "holiday"}]``; dates are whole local days."""
    after_hours: Mapped[bool] = mapped_column(Boolean, default=False)
    """Takes new leads outside working hours too."""
    capacity: Mapped[int | None] = mapped_column(Integer)
    """Most open leads at once; null: no limit."""
    daily_cap: Mapped[int | None] = mapped_column(Integer)
    """Most new leads per local day; null: no limit."""
    skills: Mapped[dict[str, list[str]]] = mapped_column(JsonType, default=dict)
    """``{"languages": ["de"], "regions": ["DE", "AT"], "products": ["pro"]}``."""
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), index=True)
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id"))
    """Overrides the team's manager for this rep's escalations."""
    alert_channels: Mapped[list[str]] = mapped_column(JsonType, default=lambda: ["email"])
    """Where reminders and "engaged now" alerts reach the rep besides the API: ``email``, ``sms``, ``webhook``."""
    open_leads: Mapped[int] = mapped_column(Integer, default=0)
    """Leads the rep owns that are not won or lost; kept by the routing service in the same transaction."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)

    @property
    def active(self) -> bool:
        """Still with the company (away reps are)."""
        return self.status != "inactive"

    @property
    def available(self) -> bool:
        """Takes calls and new leads now (subject to schedule and capacity for leads)."""
        return self.status == "active"


class RepTarget(Base):
    """A rep's plan for one calendar month: revenue in ``currency`` and, optionally, deals won."""

    __tablename__ = "rep_targets"

    rep_id: Mapped[int] = mapped_column(ForeignKey("reps.id"), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    """The first day of the month."""
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    won_deals: Mapped[int | None] = mapped_column(Integer)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
