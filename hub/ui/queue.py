"""The rep's queue: callbacks due, then leads by SLA deadline and warmth."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
