"""Who imports, and which leads an import may reach: a manager of some teams imports into their teams only.

Through the API such a manager cannot see another team's lead (it is as absent as one that does not exist: a
404), merge it, or give a lead to another team's rep; an import must not do it for them, nor tell them that such
a lead exists. So an import keeps the scope of whoever started it (``LeadImport.reach``), and the worker that runs
it later names a rep outside it as the owner of no lead. A row whose email or phone belongs to a lead outside it
goes to that lead as a form post from that person would (empty fields completed, new emails and phones added;
its owner and stage kept, never merged with another lead), and is previewed and counted as a new contact, as a
row of a person the hub has never heard of would be. Such a manager sees only the imports they uploaded: a failed
row's values are someone's data.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from hub.contacts import service as contacts
from hub.contacts.normalize import Identity
from hub.imports.models import LeadImport


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


async def identities_within(
    session: AsyncSession, reach: frozenset[int] | None, identities: Sequence[Identity]
) -> tuple[list[Identity], bool]:
    """The identities a row may resolve within ``reach``, and whether they lead to a lead outside it.

    A row that meets leads within reach resolves to those (merging them, as a form post would) and leaves any
    identity of a lead outside it where it is; a row that meets only leads outside it goes to one of them (the
    oldest), never merging two. Either way no lead outside ``reach`` is merged, given away or handed over."""
    owned: dict[Identity, int] = {}
    for kind in ("email", "phone"):
        found = await contacts.contact_ids_by_value(session, kind, {i.value for i in identities if i.kind == kind})
        owned.update((Identity(kind, value), contact_id) for value, contact_id in found.items())
    if reach is None or not owned:
        return list(identities), False
    owners = await contacts.owners_of(session, set(owned.values()))
    visible = {contact_id for contact_id, owner in owners.items() if within(reach, owner)}
    target = visible or {min(owned.values())}
    return [i for i in identities if i not in owned or owned[i] in target], not visible
