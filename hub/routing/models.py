"""Assignments, deadlines, the unassigned queue, round-robin turns, stage changes and rep results."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, IdType, JsonType, UtcDateTime, utcnow_default


class Assignment(Base):
    """A lead given to a rep (by a rule, by hand, after a missed deadline, or as an escalation).

    At most one assignment of a contact is open (``ended_at`` null): a partial unique index
    makes a double assignment impossible, whatever the concurrency.
    """

    __tablename__ = "assignments"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    rep_id: Mapped[int] = mapped_column(ForeignKey("reps.id"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"))
    how: Mapped[str] = mapped_column(String(16))
    """``rule``, ``manual``, ``redistributed`` or ``escalated``."""
    rule_id: Mapped[str | None] = mapped_column(String(64))
    strategy: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(500))
    actor: Mapped[str] = mapped_column(String(200))
    chain_id: Mapped[int | None] = mapped_column(IdType, index=True)
    """The first assignment of this run of hand-overs; reps in the chain are not given the lead again."""
    hop: Mapped[int] = mapped_column(Integer, default=0)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    """0: a rep; 1: the team manager; 2: the head of sales."""
    bucket: Mapped[str | None] = mapped_column(String(8))
    assigned_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """First-touch deadline, in the rep's working time."""
    first_touch_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    first_touch: Mapped[str | None] = mapped_column(String(40))
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        Index("ix_assignments_contact_assigned", "contact_id", "assigned_at"),
        Index("ix_assignments_rep_assigned", "rep_id", "assigned_at"),
        # Also the rep activity report's leads received and first touches for a window, from the index alone.
        Index("ix_assignments_assigned_at", "assigned_at", "rep_id", "first_touch_at"),
        Index(
            "uq_assignments_open_contact",
            "contact_id",
            unique=True,
            postgresql_where=text("ended_at IS NULL"),
            sqlite_where=text("ended_at IS NULL"),
        ),
        # Leads waiting for a first touch, soonest deadline first: the head of the leads list's priority order.
        Index(
            "ix_assignments_untouched_due",
            "due_at",
            postgresql_where=text("ended_at IS NULL AND first_touch_at IS NULL AND due_at IS NOT NULL"),
            sqlite_where=text("ended_at IS NULL AND first_touch_at IS NULL AND due_at IS NOT NULL"),
        ),
    )


class Deadline(Base):
    """Work due at a moment: a first-touch SLA, a stuck-in-stage flag. Claimed by the worker once."""

    __tablename__ = "deadlines"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)
    """``first_touch:<assignment>``, ``stage_stuck:<stage change>``, ``stage_stuck_manager:<stage change>``:
    the same deadline is never made twice."""
    kind: Mapped[str] = mapped_column(String(32))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    assignment_id: Mapped[int | None] = mapped_column(ForeignKey("assignments.id"), index=True)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    outcome: Mapped[str | None] = mapped_column(String(32))
    """``met``, ``breached``, ``cancelled``, ``flagged``, ``stale``."""
    data: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)

    __table_args__ = (
        Index("ix_deadlines_kind_done", "kind", "done_at"),
        # Only pending rows are indexed, so the claim query's cost follows what is due, not history.
        Index(
            "ix_deadlines_pending_due",
            "due_at",
            postgresql_where=text("done_at IS NULL"),
            sqlite_where=text("done_at IS NULL"),
        ),
    )


class QueuedLead(Base):
    """A lead no rep could take; retried when a rep frees up or comes on shift."""

    __tablename__ = "routing_queue"

    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), primary_key=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"))
    rule_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(500))
    chain_id: Mapped[int | None] = mapped_column(IdType)
    hop: Mapped[int] = mapped_column(Integer, default=0)
    queued_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default, index=True)

    __table_args__ = (Index("ix_routing_queue_team_queued", "team_id", "queued_at"),)


class RoutingPool(Base):
    """The fair-order state of one pool (a routing rule's set of reps): its virtual time."""

    __tablename__ = "routing_pools"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    virtual_time: Mapped[float] = mapped_column(Float, default=0.0)


class RoutingTurn(Base):
    """Where a rep stands in a pool's order (start-time fair queuing: lowest ``finish`` goes next)."""

    __tablename__ = "routing_turns"

    pool_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    rep_id: Mapped[int] = mapped_column(ForeignKey("reps.id"), primary_key=True)
    finish: Mapped[float] = mapped_column(Float, default=0.0)
    assigned: Mapped[int] = mapped_column(Integer, default=0)
    last_assigned_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class StageChange(Base):
    """One move of a lead between pipeline stages; the funnel reports read this log."""

    __tablename__ = "stage_changes"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    from_stage: Mapped[str | None] = mapped_column(String(32))
    to_stage: Mapped[str] = mapped_column(String(32))
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow_default)
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(String(500))
    loss_reason: Mapped[str | None] = mapped_column(String(64))
    owner_rep_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id"))

    __table_args__ = (
        Index("ix_stage_changes_contact_changed", "contact_id", "changed_at"),
        Index("ix_stage_changes_to_changed", "to_stage", "changed_at"),
        Index("ix_stage_changes_changed_at", "changed_at"),
    )


class RepPerformance(Base):
    """A rep's measured results over the rolling window, and the routing weight they earn."""

    __tablename__ = "rep_performance"

    rep_id: Mapped[int] = mapped_column(ForeignKey("reps.id"), primary_key=True)
    window_days: Mapped[int] = mapped_column(Integer)
    leads: Mapped[int] = mapped_column(Integer)
    won: Mapped[int] = mapped_column(Integer)
    touched: Mapped[int] = mapped_column(Integer)
    conversion: Mapped[float] = mapped_column(Float)
    median_first_touch_seconds: Mapped[float | None] = mapped_column(Float)
    weight: Mapped[float] = mapped_column(Float)
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime)
