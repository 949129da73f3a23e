"""Lead import from CSV: upload, column mapping with preview, progress, per-row errors."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
