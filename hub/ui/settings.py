"""The admin's settings: form sources, provider setup, outbound webhooks, rules, users and keys."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
