"""A person's export and erasure take in the failed import rows about them, and nobody else's.

A failed row took no contact, so it is found by its values (hub/privacy/imports.py): one of the person's emails or
phone numbers in any cell, or a cell that is their full name. Their company or job title is anyone's at the same
firm: a colleague's failed row must not be handed out in this person's export, nor blanked by their erasure (the
errors CSV is how that row gets fixed).
"""

from __future__ import annotations

import json

from sqlalchemy import select

from hub.imports.models import ImportRowError
from tests.conftest import Hub
from tests.imports.helpers import import_text

ROWS = (
    "Email,Phone,Full name,Company,Job title\n"
    "bob(at)other.example,,Bob Stranger,Acme Corporation,Senior Engineer\n"  # a colleague: same firm, same job
    "joanna(at)other.example,,Joanna Annson,Acme,Engineer\n"  # another: the very same company and title
    "not-an-email,+1 (415) 555-0100,,,\n"  # Ada's phone, written otherwise
    "ADA(at)example.com,,  ada   LOVELACE ,,\n"  # Ada's full name, cased and spaced otherwise
    "mail ada@example.com please,,,,\n"  # Ada's email inside other text
)


async def ada_and_failed_rows(hub: Hub) -> int:
    made = await hub.client.post(
        "/api/contacts",
        headers=hub.auth(),
        json={
            "email": "ada@example.com",
            "phone": "+14155550100",
            "name": "Ada Lovelace",
            "company": "Acme",
            "job_title": "Engineer",
        },
    )
    assert made.status_code in (200, 201), made.text
    done = await import_text(hub, ROWS)
    assert done.failed_count == 5
    return int(made.json()["contact_id"])


async def test_the_export_holds_the_persons_failed_rows_and_no_colleagues(hub: Hub) -> None:
    ada = await ada_and_failed_rows(hub)
    export = await hub.client.get(f"/api/contacts/{ada}/export", headers=hub.auth())
    assert export.status_code == 200
    failed = json.loads(export.text)["imports"]["failed_rows"]
    assert sorted(row["row_number"] for row in failed) == [3, 4, 5]


async def test_erasure_blanks_the_persons_failed_rows_and_leaves_colleagues(hub: Hub) -> None:
    ada = await ada_and_failed_rows(hub)
    erased = await hub.client.post(f"/api/contacts/{ada}/erase", headers=hub.auth(), json={"confirm": True})
    assert erased.status_code == 200, erased.text
    async with hub.session() as session:
        rows = {row.row_number: row.values for row in await session.scalars(select(ImportRowError))}
    assert rows[1] == ["bob(at)other.example", "", "Bob Stranger", "Acme Corporation", "Senior Engineer"]
    assert rows[2][2] == "Joanna Annson"
    assert all("[erased]" in rows[n] and "Ada" not in " ".join(rows[n]) for n in (3, 4, 5))


async def test_behind_a_switchboard_the_persons_extension_is_hers_and_a_colleagues_is_not(hub: Hub) -> None:
    made = await hub.client.post(
        "/api/contacts",
        headers=hub.auth(),
        json={"email": "ann@acme.example", "phone": "+1 415 555 0111 ext. 12", "name": "Ann Person"},
    )
    assert made.status_code in (200, 201), made.text
    rows = (
        "Email,Phone,Full name\n"
        "bob(at)acme.example,+1 415 555 0111 ext. 13,Bob Stranger\n"  # a colleague's own line
        "desk(at)acme.example,+1 415 555 0111,Front Desk\n"  # the switchboard itself: anyone's
        "ann(at)acme.example,(415) 555-0111 x12,A. Person\n"  # Ann's line, written otherwise
    )
    done = await import_text(hub, rows)
    assert done.failed_count == 3
    export = await hub.client.get(f"/api/contacts/{made.json()['contact_id']}/export", headers=hub.auth())
    assert [row["row_number"] for row in json.loads(export.text)["imports"]["failed_rows"]] == [3]
