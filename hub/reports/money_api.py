"""REST endpoints of the pipeline, plan vs fact and ABC/XYZ reports."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["reports"])
