"""Server-Sent Events: live alerts and queue updates without a reload."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
