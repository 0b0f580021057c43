"""Each PostgreSQL table has one owner module: only the owner writes it; everyone else calls the owner.

``OWNERS`` is the one table → owner map of the tree (``docs/architecture.md`` describes it). An owner
is a module (``infra/connections.py``) or, for a stage's private tables that several of its modules
write, the stage's folder (``projections/``). The checker reads the SQL in every ``.py`` file of the
product packages: a write is ``INSERT INTO``, ``UPDATE``, ``DELETE FROM``, ``COPY``, ``TRUNCATE``,
``ALTER TABLE``, ``CREATE TABLE`` or ``CREATE INDEX ... ON`` naming a table (upper-case keywords,
optionally schema-qualified). Every table the migrations create must have an owner.

Not seen by the regex, and sanctioned: ``ingest/erasure.py`` deletes a member's rows from every
table of ``MEMBER_TABLES`` by name (the right to erasure is the one duty that spans all owners).
``EXCEPTIONS`` lists the writes still waiting to be routed through their owner; each names what to
call instead, and a test fails once an exception is no longer needed, so the list only shrinks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "infra", "ingest", "processors", "projections", "wear", "deploy", "simulator")
MIGRATIONS = ROOT / "infra" / "migrations"

_READ_MODELS = "projections/"  # the projection's SQL modules: the read models are that stage's own state

OWNERS: dict[str, str] = {
    # shared by every stage: infra owns them and offers functions
    "schema_migrations": "infra/migrations.py",
    "consumer_offsets": "infra/consumer_offsets.py",
    "whoop_connections": "infra/connections.py",
    "whoop_tokens": "infra/vault.py",
    "api_tokens": "infra/vault.py",
    "pull_jobs": "infra/pull_jobs.py",
    "member_data_keys": "infra/member_keys.py",
    "erased_members": "infra/erasure_gate.py",
    # the edge
    "oauth_states": "ingest/store.py",
    "oauth_exchange_codes": "ingest/store.py",
    "erasures": "ingest/erasure_jobs.py",
    # the fetcher
    "fetcher_tasks": "processors/task_queue.py",
    "fetcher_quota": "processors/quota.py",
    "fetcher_quota_grants": "processors/quota.py",
    "fetcher_resources": "processors/resources.py",
    "fetcher_sleep_cycles": "processors/resources.py",
    "fetcher_backfill_progress": "processors/backfill.py",
    "fetcher_backfill_turns": "processors/backfill.py",
    "fetcher_reconciliations": "processors/reconcile_store.py",
    "records_generations": "processors/generations.py",
    # the projection
    "rm_cycles": _READ_MODELS,
    "rm_sleeps": _READ_MODELS,
    "rm_recoveries": _READ_MODELS,
    "rm_workouts": _READ_MODELS,
    "rm_tombstones": _READ_MODELS,
    "rm_daily_summaries": _READ_MODELS,
    "rm_sync_status": _READ_MODELS,
    "rm_sync_activity": _READ_MODELS,
    "read_model_versions": "projections/versions.py",
    "read_model_serving": "projections/versions.py",
    "read_model_epoch": "projections/versions.py",
    # the data team's command
    "dlq_redrives": "wear/dlq_redrive.py",
}

# (module, table) → what the module should call instead. Each entry is a write that still bypasses
# the owner; route it and delete the entry.
EXCEPTIONS: dict[tuple[str, str], str] = {}

_WRITE = re.compile(
    r"\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|COPY|TRUNCATE(?:\s+TABLE)?|ALTER\s+TABLE(?:\s+IF\s+EXISTS)?"
    r"|CREATE\s+(?:UNLOGGED\s+)?TABLE(?:\s+IF\s+NOT\s+EXISTS)?"
    r"|CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?\w+\s+ON)"
    r"\s+(?:ONLY\s+)?(?:[\w{}()\"']+\.)?\"?(\w+)"
)
_CREATE = re.compile(r"\bCREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.IGNORECASE)


def written_tables(source: str) -> set[str]:
    """The names after every write keyword of ``source`` (callers keep those that are tables)."""
    return {match.group(1) for match in _WRITE.finditer(source)}


def owns(owner: str, module: str) -> bool:
    """Whether ``owner`` (a module path, or a folder ending in ``/``) covers ``module``."""
    return module == owner or (owner.endswith("/") and module.startswith(owner))


def violations(
    sources: Mapping[str, str],
    owners: Mapping[str, str],
    exceptions: Mapping[tuple[str, str], str],
) -> list[str]:
    """``module writes table (owner: ...)`` for every write of a known table by a module not its owner."""
    found = []
    for module, source in sorted(sources.items()):
        for table in sorted(written_tables(source) & owners.keys()):
            if not owns(owners[table], module) and (module, table) not in exceptions:
                found.append(f"{module} writes {table} (owner: {owners[table]})")
    return found


def created_tables(sql: str) -> set[str]:
    """The tables a migration creates."""
    return {name.lower() for name in _CREATE.findall(sql)}


def _product_sources() -> Iterator[tuple[str, str]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8")


def test_no_module_writes_a_table_it_does_not_own() -> None:
    assert violations(dict(_product_sources()), OWNERS, EXCEPTIONS) == []


def test_every_table_the_migrations_create_has_an_owner_and_every_owner_exists() -> None:
    created = set().union(*(created_tables(p.read_text()) for p in MIGRATIONS.glob("*.sql")))
    assert created - OWNERS.keys() == set()
    assert OWNERS.keys() - created == {"schema_migrations"}  # created by the migration runner itself
    assert [owner for owner in OWNERS.values() if not (ROOT / owner).exists()] == []


def test_every_listed_exception_is_still_needed() -> None:
    sources = dict(_product_sources())
    stale = [key for key in EXCEPTIONS if key[1] not in written_tables(sources.get(key[0], ""))]
    assert stale == []


# The checker itself, on deliberately broken inputs.

_FOREIGN_WRITE = """
async def disconnect(db, user_id):
    await db.execute(
        "UPDATE whoop_connections SET status = 'disconnected' WHERE user_id = $1", user_id
    )
"""


def test_a_module_writing_a_foreign_table_is_reported() -> None:
    found = violations({"processors/tokens.py": _FOREIGN_WRITE}, OWNERS, EXCEPTIONS)
    assert found == ["processors/tokens.py writes whoop_connections (owner: infra/connections.py)"]


def test_the_owner_may_write_its_table() -> None:
    assert violations({"infra/connections.py": _FOREIGN_WRITE}, OWNERS, EXCEPTIONS) == []


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO pull_jobs (job_id) VALUES ($1)",
        "DELETE FROM pull_jobs WHERE job_id = $1",
        'UPDATE "wear".pull_jobs SET status = $2',
        "UPDATE {schema}.pull_jobs SET status = $2",
        "COPY pull_jobs FROM STDIN",
        "TRUNCATE TABLE pull_jobs",
        "ALTER TABLE IF EXISTS pull_jobs ADD COLUMN x int",
        "CREATE TABLE IF NOT EXISTS pull_jobs (job_id text)",
        "CREATE UNIQUE INDEX IF NOT EXISTS pull_jobs_one ON pull_jobs (user_id)",
    ],
)
def test_every_kind_of_write_is_seen(sql: str) -> None:
    assert violations({"ingest/pulls.py": f'Q = """{sql}"""'}, OWNERS, {}) == [
        "ingest/pulls.py writes pull_jobs (owner: infra/pull_jobs.py)"
    ]


@pytest.mark.parametrize(
    ("sql", "tables"),
    [
        ("SELECT status FROM pull_jobs WHERE job_id = $1 FOR UPDATE", set()),
        ("INSERT INTO erasures VALUES ($1) ON CONFLICT (job_id) DO UPDATE SET status = 'x'", {"erasures"}),
        ("the fetcher may update pull_jobs through infra.pull_jobs", set()),  # prose, not SQL
    ],
)
def test_reads_locks_and_prose_are_not_writes(sql: str, tables: set[str]) -> None:
    assert written_tables(sql) & OWNERS.keys() == tables


def test_a_folder_owner_covers_its_modules_only() -> None:
    write = 'Q = "DELETE FROM rm_sleeps WHERE user_id = $1"'
    assert violations({"projections/sql.py": write}, OWNERS, {}) == []
    assert violations({"wear/export.py": write}, OWNERS, {}) == [
        "wear/export.py writes rm_sleeps (owner: projections/)"
    ]


def test_a_listed_exception_is_allowed_and_only_that_one() -> None:
    exceptions = {("processors/tokens.py", "whoop_connections"): "infra.connections.mark_needs_reauth"}
    assert violations({"processors/tokens.py": _FOREIGN_WRITE}, OWNERS, exceptions) == []
    assert violations({"processors/intake.py": _FOREIGN_WRITE}, OWNERS, exceptions) != []


def test_a_migration_creating_a_table_without_owner_is_seen() -> None:
    created = created_tables(
        "CREATE TABLE IF NOT EXISTS fetcher_secrets (user_id text);\ncreate table x (y int);"
    )
    assert created - OWNERS.keys() == {"fetcher_secrets", "x"}
