"""The leads list: filter, sort, bulk assign, CSV export."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
