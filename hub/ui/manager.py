"""The manager's page: routing queue, reps, SLA breaches and the report charts."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
