"""Re-reading the rules file on an admin's request, recorded in the audit log."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import service as audit
from hub.policy.schemas import RulesFile
from hub.policy.store import RulesStore


def reload_recorded(session: AsyncSession, store: RulesStore, *, actor: str) -> RulesFile:
    """The file read again now; a broken file raises RulesError (the rules in force stay, nothing is recorded),
    else ``rules.reloaded`` goes into the caller's transaction."""
    rules = store.reload()
    details = {"path": str(store.path), "digest": store.digest}
    audit.record(session, actor=actor, action="rules.reloaded", target_type="rules", details=details)
    return rules
