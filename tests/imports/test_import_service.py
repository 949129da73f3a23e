"""Imports on both backends: created, matched, skipped and failed rows, re-runs, resuming."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import func, select

from hub.audit.models import AuditEntry
from hub.contacts.models import Contact, ContactIdentity
from hub.imports import service
from hub.imports.cursor import CursorCache
from hub.imports.models import ImportedRow, ImportFile, ImportRowError
from hub.privacy import service as privacy
from hub.timeline.models import TimelineEntry
from tests.conftest import Hub
from tests.imports.helpers import create, env_of, import_text, run_to_end

CRAFTED = """email,phone,name,company,owner,plan
new@example.com,,New Person,Acme,,gold
Known@Example.com,,Known Again,Other Co,,
,(415) 555-0100,Phone Match,,,
not-an-email,,Broken,,,
,12,Bad Phone,,,
,,Nobody,,,
someone@example.com,,Someone,,ghost@example.com,
new@example.com,,New Person,Acme,,gold
"""


async def _seed(hub: Hub) -> tuple[int, int]:
    """Two existing contacts: one by email, one by phone (stored in E.164)."""
    async with hub.session() as session:
        known = Contact(name="Known", stage="new", attribution={}, custom_fields={}, tags=[])
        phoned = Contact(name="Phoned", company="Phone Inc", stage="new", attribution={}, custom_fields={}, tags=[])
        session.add_all([known, phoned])
        await session.flush()
        session.add_all(
            [
                ContactIdentity(contact_id=known.id, kind="email", value="known@example.com"),
                ContactIdentity(contact_id=phoned.id, kind="phone", value="+14155550100"),
            ]
        )
        return known.id, phoned.id


async def _count(hub: Hub, model: type) -> int:
    async with hub.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_created_matched_skipped_failed(hub: Hub) -> None:
    known_id, phoned_id = await _seed(hub)
    done = await import_text(hub, CRAFTED, namespace="crm")
    assert done.status == "done"
    assert (done.created_count, done.matched_count, done.skipped_count, done.failed_count) == (1, 2, 1, 4)
    assert done.processed_rows == done.total_rows == 8
    async with hub.session() as session:
        rows = {r.row_number: (r.outcome, r.contact_id) for r in await session.scalars(select(ImportedRow))}
        errors = {e.row_number: (e.column, e.reason) for e in await session.scalars(select(ImportRowError))}
        known = await session.get(Contact, known_id)
        phoned = await session.get(Contact, phoned_id)
        created = await session.get(Contact, rows[1][1])
        entries = list(await session.scalars(select(TimelineEntry).where(TimelineEntry.kind == "imported")))
    assert rows[2] == ("matched", known_id)
    assert rows[3] == ("matched", phoned_id)
    assert errors[4][0] == "email" and "invalid email" in errors[4][1]
    assert errors[5][0] == "phone" and "unparsable phone" in errors[5][1]
    assert errors[6] == (None, "no identity: neither an email nor a phone number")
    assert errors[7][0] == "owner" and "unknown rep" in errors[7][1]
    # Complete, never overwrite: the known contact keeps its name, gains the company it lacked.
    assert known is not None and (known.name, known.company) == ("Known", "Other Co")
    assert phoned is not None and phoned.company == "Phone Inc"
    assert created is not None
    assert (created.name, created.company, created.source, created.custom_fields) == (
        "New Person",
        "Acme",
        "crm",
        {"plan": "gold"},
    )
    assert sorted(e.contact_id for e in entries) == sorted(r[1] for r in rows.values())
    assert await _count(hub, Contact) == 3
    assert await _count(hub, ImportFile) == 0  # the upload (personal data) is gone once the import is done


async def test_rerun_is_a_no_op_and_failed_rows_are_retried(hub: Hub) -> None:
    await _seed(hub)
    await import_text(hub, CRAFTED, namespace="crm")
    contacts, entries = await _count(hub, Contact), await _count(hub, TimelineEntry)
    again = await import_text(hub, CRAFTED, namespace="crm")
    assert (again.created_count, again.matched_count, again.skipped_count, again.failed_count) == (0, 0, 4, 4)
    assert (await _count(hub, Contact), await _count(hub, TimelineEntry)) == (contacts, entries)
    # The rep named by row 7 now exists: importing again takes that row in, and only that row.
    await hub.create_rep("Ghost", email="ghost@example.com")
    third = await import_text(hub, CRAFTED, namespace="crm")
    assert (third.created_count, third.skipped_count, third.failed_count) == (1, 4, 3)


async def test_phones_in_other_formats_and_case_of_emails_dedupe(hub: Hub) -> None:
    text = "email,phone,name\nA@X.example.com,+1 415-555-0101,A\na@x.example.com,,B\n,(415) 555 0101,C\n,4155550101,D\n"
    done = await import_text(hub, text)
    assert (done.created_count, done.matched_count, done.skipped_count) == (1, 3, 0)
    assert await _count(hub, Contact) == 1
    # Without a key column, a row's key is its normalised content: the same row written differently is a duplicate.
    same = await import_text(hub, "phone,name\n(415) 555 0101,C\n+14155550101,C\n", namespace="other")
    assert (same.matched_count, same.skipped_count) == (1, 1)


async def test_key_column_makes_rows_unique_per_namespace(hub: Hub) -> None:
    text = "id,email\n1,a@example.com\n2,b@example.com\n1,c@example.com\n"
    done = await import_text(hub, text, key_column="id", namespace="old-crm")
    assert (done.created_count, done.skipped_count) == (2, 1)
    other = await import_text(hub, text, key_column="id", namespace="other-crm")
    assert (other.created_count, other.matched_count, other.skipped_count) == (0, 2, 1)


async def test_resume_after_interruption_imports_each_row_once(hub: Hub) -> None:
    text = "email\n" + "".join(f"p{i}@example.com\n" for i in range(7))
    lead_import = await create(hub, text)
    async with hub.session() as session:
        await service.run_batch(session, lead_import.id, env_of(hub, 3), CursorCache())
    # A batch that dies before its commit (the process killed) leaves nothing behind.
    async with hub.runtime.sessions() as session:
        await service.run_batch(session, lead_import.id, env_of(hub, 3), CursorCache())
        await session.rollback()
    async with hub.session() as session:
        halfway = await service.get_import(session, lead_import.id, viewer=None)
    assert (halfway.status, halfway.processed_rows, halfway.created_count) == ("running", 3, 3)
    done = await run_to_end(hub, lead_import.id, batch_size=3)  # a new process: a fresh cursor
    assert (done.created_count, done.processed_rows, done.status) == (7, 7, "done")
    assert await _count(hub, Contact) == 7


async def test_owner_stage_and_audit(hub: Hub) -> None:
    rep_id = await hub.create_rep("Rita", email="rita@example.com")
    text = "email,owner,stage\nlead@example.com,RITA@example.com,contacted\n"
    done = await import_text(hub, text)
    assert done.created_count == 1
    async with hub.session() as session:
        contact = (await session.scalars(select(Contact))).one()
        audit = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "import.started"))).one()
    assert (contact.owner_rep_id, contact.stage) == (rep_id, "contacted")
    assert audit.target_id == str(done.id) and audit.details["rows"] == 1


async def test_duplicates_of_one_person_in_one_batch_become_one_contact(hub: Hub) -> None:
    text = "email,phone,name\na@example.com,,A\n,+14155550102,A2\na@example.com,+14155550102,A3\n"
    done = await import_text(hub, text)
    # Row 3 carried both identities: the two contacts rows 1 and 2 made are merged, as a form post would. One
    # new contact is left, which row 2 (its contact absorbed) and row 3 matched.
    assert (done.created_count, done.matched_count) == (1, 2)
    async with hub.session() as session:
        live = await session.scalar(select(func.count()).select_from(Contact).where(Contact.merged_into_id.is_(None)))
    assert live == 1


async def test_what_a_row_says_reaches_the_contact_a_later_row_merges_it_into(hub: Hub) -> None:
    """Row 1 creates a contact and says consent "no" and an owner; row 2 of the same batch names that person's and
    an older contact's emails, so the two are merged into the older one. The withdrawal, the owner, the rows'
    records and their ``imported`` entries belong on that survivor, not on the contact it absorbed: otherwise the
    live contact keeps its old "given" and goes on receiving marketing email."""
    rep_id = await hub.create_rep("Rita", email="rita@example.com")
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    async with hub.session() as session:
        known = Contact(name="Known", stage="new", attribution={}, custom_fields={}, tags=[], created_at=long_ago)
        session.add(known)
        await session.flush()
        session.add(ContactIdentity(contact_id=known.id, kind="email", value="known@example.com"))
        await privacy.record_consent(session, known.id, status="given", source="form", actor="test", at=long_ago)
    text = "email,email 2,consent,owner\nnew@example.com,,no,rita@example.com\nnew@example.com,known@example.com,,\n"
    mapping = {"email": "email", "email 2": "email", "consent": "consent", "owner": "owner"}

    done = await import_text(hub, text, mapping=mapping, namespace="crm")

    assert (done.status, done.created_count, done.matched_count, done.failed_count) == ("done", 0, 2, 0)
    async with hub.session() as session:
        owner_of_new = await session.scalar(
            select(ContactIdentity.contact_id).where(ContactIdentity.value == "new@example.com")
        )
        consent = await privacy.current_consent(session, known.id)
        survivor = await session.get(Contact, known.id)
        imported_on = set(
            await session.scalars(select(TimelineEntry.contact_id).where(TimelineEntry.kind == "imported"))
        )
        rows = {r.row_number: (r.outcome, r.contact_id) for r in await session.scalars(select(ImportedRow))}
    assert owner_of_new == known.id  # one person now: the older contact survived
    assert consent.status == "withdrawn"
    assert survivor is not None and (survivor.owner_rep_id, survivor.stage) == (rep_id, "new")
    assert imported_on == {known.id}
    assert rows == {1: ("matched", known.id), 2: ("matched", known.id)}


async def test_consent_column_is_recorded_but_never_revives_a_withdrawal(hub: Hub) -> None:
    first = await import_text(hub, "email,consent\nyes@example.com,yes\nno@example.com,withdrawn\n", namespace="a")
    assert first.created_count == 2
    async with hub.session() as session:
        rows = await session.execute(select(ContactIdentity.value, ContactIdentity.contact_id))
        by_email: dict[str, int] = {str(row[0]): int(row[1]) for row in rows}
        assert (await privacy.current_consent(session, by_email["yes@example.com"])).status == "given"
        assert (await privacy.current_consent(session, by_email["no@example.com"])).status == "withdrawn"
    # An older list says "yes" for the person who withdrew: the withdrawal stands.
    await import_text(hub, "email,consent\nno@example.com,yes\n", namespace="b")
    async with hub.session() as session:
        assert (await privacy.current_consent(session, by_email["no@example.com"])).status == "withdrawn"


async def test_imported_leads_are_scored_and_routed_only_when_asked(hub: Hub) -> None:
    await import_text(hub, "email\nquiet@example.com\n", namespace="old-list")
    await import_text(hub, "email\nrouted@example.com\n", namespace="campaign", route=True)
    async with hub.session() as session:
        rows = await session.execute(
            select(ContactIdentity.value, Contact.score, Contact.stage_entered_at).join(
                Contact, Contact.id == ContactIdentity.contact_id
            )
        )
        state = {value: (score is not None, entered is not None) for value, score, entered in rows}
    assert state == {"quiet@example.com": (False, False), "routed@example.com": (True, True)}


async def test_two_workers_on_one_import_never_import_a_row_twice(hub: Hub) -> None:
    text = "email\n" + "".join(f"w{i}@example.com\n" for i in range(9))
    lead_import = await create(hub, text)

    async def worker() -> None:
        cursors = CursorCache()
        for _ in range(20):
            async with hub.session() as session:
                state = await service.run_batch(session, lead_import.id, env_of(hub, 2), cursors)
            if state is not None and state.status == "done":
                return

    await asyncio.gather(worker(), worker())
    async with hub.session() as session:
        done = await service.get_import(session, lead_import.id, viewer=None)
    assert (done.status, done.created_count, done.processed_rows) == ("done", 9, 9)
    assert await _count(hub, Contact) == 9 and await _count(hub, ImportedRow) == 9
