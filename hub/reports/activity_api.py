"""REST endpoints of the rep activity, channel and campaign reports."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["reports"])
