"""Who imports, and which leads an import may reach: a manager of some teams imports into their teams only.

Through the API such a manager cannot see another team's lead, merge it, or give a lead to another team's rep;
an import must not do it for them. So an import keeps the scope of whoever started it (``LeadImport.reach``),
and the worker that runs it later refuses a row that matches a lead outside it, or names a rep outside it as
the owner. Such a manager sees only the imports they uploaded: a failed row's values are someone's data.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from hub.contacts import service as contacts
from hub.imports.models import LeadImport

OUTSIDE_REACH = "the row matches a lead outside your teams"


@dataclass(frozen=True)
class Importer:
    """Who uploads, previews or starts an import."""

    actor: str
    """``user:<id>`` or ``key:<id>`` (``Principal.actor``), or ``cli`` for ``hub import``."""
    reach: frozenset[int] | None = None
    """The reps whose leads they reach (their own and their teams'); None: every lead."""

    @classmethod
    def scoped(cls, actor: str, owners: Collection[int] | None) -> Importer:
        """The importer with the owners their scope lets them see (``Scope.owners()``)."""
        return cls(actor, None if owners is None else frozenset(owners))

    def sees(self, lead_import: LeadImport) -> bool:
        """Whether they may read the import, its preview and its failed rows."""
        return self.reach is None or lead_import.created_by == self.actor

    def stored_reach(self) -> list[int] | None:
        """``reach`` as the import row keeps it."""
        return None if self.reach is None else sorted(self.reach)


def reach_of(lead_import: LeadImport) -> frozenset[int] | None:
    """The reach an import runs with."""
    return None if lead_import.reach is None else frozenset(lead_import.reach)


def within(reach: frozenset[int] | None, owner_rep_id: int | None) -> bool:
    """Whether a lead owned by ``owner_rep_id`` (None: nobody's, which every manager sees) is within ``reach``."""
    return reach is None or owner_rep_id is None or owner_rep_id in reach


async def contacts_beyond(session: AsyncSession, reach: frozenset[int] | None, contact_ids: set[int]) -> set[int]:
    """Which of these contacts are owned by a rep outside ``reach``."""
    if reach is None or not contact_ids:
        return set()
    owners = await contacts.owners_of(session, contact_ids)
    return {contact_id for contact_id, owner in owners.items() if not within(reach, owner)}
