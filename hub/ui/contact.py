"""A contact's page: identities, warmth, stage, deals, tasks, timeline and actions."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
