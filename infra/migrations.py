"""Versioned, idempotent SQL migrations, applied by ``python -m deploy migrate`` and at service start.

Migrations are the files ``infra/migrations/NNNN_name.sql``, applied in order, each in its own
transaction, and recorded in ``schema_migrations`` with a checksum. Concurrent starters
serialize on an advisory lock, so two services starting together apply each migration once. An
applied migration whose file changed afterwards is an error: write a new migration instead.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from asyncpg.pool import PoolConnectionProxy

__all__ = ["Migration", "MigrationError", "apply_migrations", "load_migrations"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x57484F4F50  # "WHOOP": one advisory lock id for migrations


class MigrationError(RuntimeError):
    """The migration files or the database's record of them are inconsistent."""


@dataclass(frozen=True)
class Migration:
    """One SQL file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations in ``folder``, ordered by version; rejects bad names and duplicate versions."""
    migrations: list[Migration] = []
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"migration file {path.name!r} is not named NNNN_lower_case.sql")
        migrations.append(Migration(int(match.group(1)), match.group(2), path.read_text()))
    versions = [m.version for m in migrations]
    if len(versions) != len(set(versions)):
        raise MigrationError(f"duplicate migration versions in {folder}")
    return migrations


async def apply_migrations(
    connection: asyncpg.Connection | PoolConnectionProxy, migrations: list[Migration] | None = None
) -> list[int]:
    """Apply the pending migrations in the connection's current schema; returns the versions applied."""
    migrations = load_migrations() if migrations is None else migrations
    applied_now: list[int] = []
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await connection.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    int PRIMARY KEY,
                name       text NOT NULL,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        done = {
            row["version"]: row["checksum"]
            for row in await connection.fetch("SELECT version, checksum FROM schema_migrations")
        }
        for migration in migrations:
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} was changed after it was applied"
                    )
                continue
            await connection.execute(migration.sql)
            await connection.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
            applied_now.append(migration.version)
    return applied_now
