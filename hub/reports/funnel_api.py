"""REST endpoints of the funnel and loss reports."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["reports"])
