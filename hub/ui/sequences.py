"""The marketer's sequences: list, step editor with inline validation, preview, pause and test send."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
