"""Shapes of the campaigns report: one flat row per sequence and period (one CSV line each)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from hub.reports.schemas import Ratio, ReportMeta


class CampaignRow(BaseModel):
    """One sequence's results for the messages it sent in one period (events counted up to now)."""

    period: str
    sequence_id: int
    sequence_name: str
    sequence_status: str
    sent: int = Field(0, description="sequence emails sent in the period (sent_at)")
    delivered: int = 0
    opened_human: int = Field(0, description="of the messages sent: opened by a person (distinct messages)")
    opened_machine: int = Field(0, description="opened by a machine (mail privacy proxies, scanners)")
    clicked_human: int = 0
    clicked_machine: int = 0
    replied: int = Field(0, description="messages that were the contact's last sequence email before a reply")
    bounced: int = Field(0, description="hard bounces (soft bounces are not counted)")
    unsubscribed: int = 0
    complained: int = 0
    delivered_rate: Ratio = None
    opened_human_rate: Ratio = None
    opened_machine_rate: Ratio = None
    clicked_human_rate: Ratio = None
    clicked_machine_rate: Ratio = None
    replied_rate: Ratio = None
    bounced_rate: Ratio = None
    unsubscribed_rate: Ratio = None
    complained_rate: Ratio = None


class CampaignReport(BaseModel):
    """Campaigns: every sequence, for every period, zeros included."""

    meta: ReportMeta
    rows: list[CampaignRow]
