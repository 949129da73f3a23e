"""Queued emails' bodies are written with lz4 on a PostgreSQL that has it (revision 0017), and read back intact."""

from __future__ import annotations

from importlib import import_module

import pytest
from sqlalchemy import select, text

from hub.db import create_engine, create_sessionmaker
from hub.email.models import EmailMessage
from tests.conftest import truncate_all

_HAS_LZ4 = import_module("hub.migrations.versions.0017_mail_bodies_lz4")._HAS_LZ4
"""The revision's own test of the server: where it says no, the revision changed nothing."""

HTML = "".join(f'<p>Paragraph {n}: café, 日本語, <a href="https://example.com/{n}">a link</a></p>\n' for n in range(80))


async def test_a_queued_emails_bodies_are_lz4_compressed_and_read_back_as_written(pg_database: str) -> None:
    await truncate_all(pg_database)
    database = create_engine(pg_database)
    try:
        async with database.connect() as connection:
            if not (await connection.execute(_HAS_LZ4)).scalar():
                pytest.skip("this PostgreSQL has no lz4 (it needs 14 or later, built with lz4): bodies stay pglz")
        async with create_sessionmaker(database)() as session:
            message = EmailMessage(recipient="ada@example.com", html=HTML, text=HTML.replace("<p>", ""), status="sent")
            session.add(message)
            await session.commit()
            message_id = message.id
        async with create_sessionmaker(database)() as session:
            stored = (await session.scalars(select(EmailMessage).where(EmailMessage.id == message_id))).one()
            methods = (
                await session.execute(
                    text("SELECT pg_column_compression(html), pg_column_compression(text) FROM email_messages")
                )
            ).one()
        assert (stored.html, stored.text) == (HTML, HTML.replace("<p>", ""))
        assert tuple(methods) == ("lz4", "lz4")
    finally:
        await database.dispose()
