"""Apply Alembic migrations: the only way the schema is created or changed.

Alembic is imported only when a migration runs: every `hub` command imports this module, and
`hub serve` and `hub worker`, which never migrate, would otherwise carry its ~7 MiB for their whole
life (the API process's memory target is 150 MB, bench/soak.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    """An Alembic config pointing at the packaged migrations and the given database."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def ensure_sqlite_dir(database_url: str) -> None:
    """Create the folder of a SQLite file so a fresh checkout can start."""
    prefix = "sqlite+aiosqlite:///"
    if database_url.startswith(prefix):
        path = database_url[len(prefix) :].split("?", 1)[0]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database to ``revision`` (blocking; call from a thread inside an event loop)."""
    from alembic import command

    ensure_sqlite_dir(database_url)
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    """Step the schema back to ``revision`` (tests and operators)."""
    from alembic import command

    command.downgrade(alembic_config(database_url), revision)
