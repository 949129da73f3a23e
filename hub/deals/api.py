"""REST endpoints of deals."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["deals"])
