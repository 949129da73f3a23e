"""The frequency cap reads a batch's recent marketing email by contact, whatever PostgreSQL's statistics say.

On a table never analyzed (a new database's first campaign, before autovacuum's first ANALYZE; or any database run
with autovacuum off) the planner read the batch's ``contact_id IN (...)`` as half the table, and scanned all of
``email_messages`` for every batch of 100 enrollments: 20 ms a batch at 15,000 messages, growing with each message
queued (bench/send.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import event, insert
from sqlalchemy.engine import Connection

from hub import clock
from hub.contacts.models import Contact
from hub.db import create_engine, create_sessionmaker
from hub.email.models import EmailMessage
from hub.sequences import engine as sequence_engine
from tests.conftest import make_settings, truncate_all

CONTACTS = 3000
ASKED = list(range(1, 101))


async def test_the_caps_look_up_probes_each_contact_on_a_table_never_analyzed(pg_database: str) -> None:
    await truncate_all(pg_database)
    database = create_engine(pg_database)
    now = clock.now()
    try:
        async with database.begin() as connection:
            await connection.execute(
                insert(Contact),
                [
                    {"id": n, "name": f"Reader {n}", "stage": "new", "created_at": now, "updated_at": now}
                    | {"attribution": {}, "custom_fields": {}, "tags": []}
                    for n in range(1, CONTACTS + 1)
                ],
            )
            await connection.execute(
                insert(EmailMessage),
                [
                    {"contact_id": n, "recipient": f"r{n}@example.com", "status": "sent", "kind": "sequence"}
                    | {"marketing": True, "html": "<p>Hello</p>" * 120, "created_at": now - timedelta(hours=2)}
                    | {"sent_at": now - timedelta(hours=2)}
                    for n in range(1, CONTACTS + 1)
                ],
            )

        statements: list[tuple[str, Any]] = []

        def keep(_: Connection, __: Any, statement: str, parameters: Any, *___: Any) -> None:
            if "email_messages" in statement:
                statements.append((statement, parameters))

        event.listen(database.sync_engine, "before_cursor_execute", keep)
        try:
            async with create_sessionmaker(database)() as session:
                counted = await sequence_engine._recent_marketing(
                    session, ASKED, make_settings(pg_database, frequency_cap=1), now
                )
        finally:
            event.remove(database.sync_engine, "before_cursor_execute", keep)

        assert counted == {n: [now - timedelta(hours=2)] for n in ASKED}
        [(statement, parameters)] = statements
        async with database.connect() as connection:
            plan = "\n".join(row[0] for row in await connection.exec_driver_sql(f"EXPLAIN {statement}", parameters))
        assert "Seq Scan on email_messages" not in plan, plan
        assert "ix_email_messages_contact_created" in plan, plan
    finally:
        await database.dispose()
