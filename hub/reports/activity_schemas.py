"""Shapes of the rep activity report: one flat row per rep and period (one CSV line each)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, Field

from hub.reports.schemas import Money, ReportMeta, Seconds


class RepActivityRow(BaseModel):
    """What one rep did in one period."""

    period: str = Field(description="the local day (default), week, month, or the whole window")
    rep_id: int
    rep_name: str
    team_id: int | None
    new_leads: int = Field(0, description="assignments the rep received (assigned_at in the period)")
    touched_leads: int = Field(0, description="of those, the ones the rep has touched so far")
    first_touch_median: Seconds = Field(None, description="first_touch_at - assigned_at of the touched ones")
    first_touch_p90: Seconds = None
    sla_breaches: int = Field(0, description="first-touch deadlines breached (at the deadline) in the period")
    calls: int = Field(0, description="top-level calls started in the period (transfer legs not counted again)")
    calls_answered: int = 0
    calls_missed: int = Field(0, description="missed or voicemail")
    calls_inbound: int = 0
    calls_outbound: int = 0
    talk_time: Seconds = Field(0, description="talk time of the answered calls")
    emails_sent: int = Field(0, description="the rep's own emails (email_sent entries naming the rep)")
    tasks_done: int = 0
    tasks_overdue: int = Field(0, description="tasks of the rep that became overdue in the period")
    lead_stage_advances: int = Field(0, description="lead moves forward in the pipeline by their owner")
    deal_stage_advances: int = Field(0, description="deal moves forward in their pipeline by their owner")
    deals_won: int = 0
    deals_won_amount: Money = Decimal("0.00")
    deals_lost: int = 0
    deals_lost_amount: Money = Decimal("0.00")
    activity_calls: int = Field(0, description="calls the rep logged by hand")
    activity_emails: int = 0
    activity_meetings: int = 0
    activity_notes: int = Field(0, description="notes logged as activities plus notes the rep wrote")


class RepActivityReport(BaseModel):
    """Rep activity: rows per rep and period (every active rep in reach, zeros included)."""

    meta: ReportMeta
    rows: list[RepActivityRow]
