"""The read-model version registry on a real PostgreSQL: create, verify, switch, rollback, drop."""

from __future__ import annotations

import asyncpg
import pytest

from projections import versions
from projections.read_model_ddl import VERSIONED_TABLES

pytestmark = pytest.mark.integration

_CATALOG = """
SELECT c.relname AS table_name, a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull,
       coalesce(co.collname, '') AS collation, a.attgenerated, a.attnum
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_collation co ON co.oid = a.attcollation AND co.collname <> 'default'
WHERE n.nspname = $1 AND c.relname = ANY($2::text[])
ORDER BY c.relname, a.attnum
"""
_INDEXES = """
SELECT tablename, indexname, regexp_replace(indexdef, ' ON [^ ]+\\.', ' ON ') AS definition
FROM pg_indexes WHERE schemaname = $1 AND tablename = ANY($2::text[]) ORDER BY indexname
"""


async def _catalog(connection: versions.Connection, schema: str) -> tuple[list[tuple[object, ...]], ...]:
    columns = [tuple(r) for r in await connection.fetch(_CATALOG, schema, list(VERSIONED_TABLES))]
    indexes = [tuple(r) for r in await connection.fetch(_INDEXES, schema, list(VERSIONED_TABLES))]
    return columns, indexes


async def test_a_new_version_has_the_tables_of_version_1(db_pool: asyncpg.Pool, pg_schema: str) -> None:
    async with db_pool.acquire() as connection:
        async with connection.transaction():
            created = await versions.create(connection, records_topic=None, bulk=False)
        assert created.number >= 2 and created.schema == f"{pg_schema}_rm{created.number}"
        assert await _catalog(connection, created.schema) == await _catalog(connection, pg_schema)
        async with connection.transaction():
            bulk = await versions.create(connection, records_topic="wear.records.v1.g2", bulk=True)
        columns, indexes = await _catalog(connection, bulk.schema)
        assert indexes == []  # a bulk version is created without keys and indexes
        assert columns == (await _catalog(connection, pg_schema))[0]
        async with connection.transaction():
            await versions.build_keys_and_indexes(connection, bulk)
        assert await _catalog(connection, bulk.schema) == await _catalog(connection, pg_schema)


async def test_use_routes_unqualified_names_to_the_version_for_one_transaction(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as connection:
        async with connection.transaction():
            created = await versions.create(connection, records_topic=None, bulk=False)
        async with connection.transaction():
            await versions.use(connection, created)
            await connection.execute("INSERT INTO rm_sync_status (user_id, records_applied) VALUES ('u1', 3)")
            # the registry and the other tables still resolve in the migrations' schema
            assert await connection.fetchval("SELECT count(*) FROM read_model_versions") == 2
        assert await connection.fetchval("SELECT count(*) FROM rm_sync_status") == 0  # version 1's
        assert (
            await connection.fetchval(f'SELECT records_applied FROM "{created.schema}".rm_sync_status')  # noqa: S608
        ) == 3


async def test_switch_rollback_and_drop(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as connection:
        epoch = await connection.fetchval("SELECT epoch FROM read_model_epoch")
        async with connection.transaction():
            created = await versions.create(connection, records_topic=None, bulk=False)
        with pytest.raises(versions.NotVerified, match="not verified"):
            async with connection.transaction():
                await versions.switch(connection, created.number)
        async with connection.transaction():
            await versions.use(connection, created)
            await connection.execute("INSERT INTO rm_sync_status (user_id, records_applied) VALUES ('u1', 1)")
        async with connection.transaction():
            sums = await versions.checksums(connection, created)
            await versions.mark_verified(connection, created.number, sums)
        assert sums["rm_sync_status"].rows == 1 and sums["rm_cycles"] == versions.TableSum(0, "0")
        async with connection.transaction():
            old, new = await versions.switch(connection, created.number)
        assert (old.number, new.number, new.state) == (1, created.number, "serving")
        assert (await versions.serving(connection)).number == created.number
        assert await connection.fetchval("SELECT epoch FROM read_model_epoch") == epoch + 1
        with pytest.raises(versions.ServingVersion):
            async with connection.transaction():
                await versions.drop(connection, created.number)
        with pytest.raises(versions.UnknownVersion, match="no read-model version 99"):
            await versions.get(connection, 99)
        async with connection.transaction():
            await versions.rollback(connection)
        assert (await versions.serving(connection)).number == 1
        assert await connection.fetchval("SELECT epoch FROM read_model_epoch") == epoch + 2
        async with connection.transaction():
            await versions.drop(connection, created.number)
        assert [v.number for v in await versions.all_versions(connection)] == [1]
        assert (
            await connection.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", created.schema)
            == 0
        )
        with pytest.raises(versions.NoPrevious):
            async with connection.transaction():
                await versions.rollback(connection)


async def test_checksums_do_not_depend_on_write_order(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as connection:
        made = []
        for order in (("a", "b", "c"), ("c", "a", "b")):
            async with connection.transaction():
                version = await versions.create(connection, records_topic=None, bulk=False)
                await versions.use(connection, version)
                for user in order:
                    await connection.execute(
                        "INSERT INTO rm_sync_status (user_id, records_applied) VALUES ($1, 1)", user
                    )
            made.append(await versions.checksums(connection, version))
        assert made[0] == made[1]
        assert made[0]["rm_sync_status"].checksum != "0"


async def test_one_rebuild_lock_at_a_time(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as first, db_pool.acquire() as second:
        assert await versions.try_rebuild_lock(first)
        assert not await versions.try_rebuild_lock(second)
        await first.execute("SELECT pg_advisory_unlock_all()")
        assert await versions.try_rebuild_lock(second)
        await second.execute("SELECT pg_advisory_unlock_all()")
