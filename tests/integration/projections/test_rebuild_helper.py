"""The second load process of a bulk rebuild (``projections.load_helper``) loads, counts and stops.

Alone, it loads a bulk version up to the topic's end and reports what it read (records and the one it
dead-lettered); finished, that version equals a clean projection. Beside the rebuild's own worker
(``rebuild --bulk`` with the threshold at 0), the two processes share the partitions and the rebuild
still ends accounted for and equal to the clean projection.
"""

from __future__ import annotations

import io

import asyncpg
import pytest
from rich.console import Console

from infra.settings import KafkaSettings
from projections import rebuild, rebuild_steps, versions
from projections.bulk import BulkStore
from projections.load_helper import Helper, helping
from tests.integration.projections.helpers import end_offsets, produce, stored_offsets, wait_for
from tests.integration.projections.rebuild_harness import project, settings_for, stream, sums
from tests.unit.projections.factory import Member

pytestmark = pytest.mark.integration

MEMBERS = [Member(650000 + i) for i in range(6)]


@pytest.mark.timeout(240)
async def test_the_helper_alone_loads_a_bulk_version_to_the_end_and_says_what_it_read(
    kafka_settings: KafkaSettings,
    records_topic: str,
    group_id: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
) -> None:
    log = stream(MEMBERS)
    await produce(kafka_settings, records_topic, log)
    settings = settings_for(kafka_settings, database_url, pg_schema, records_topic, group_id)
    await project(kafka_settings, settings, db_pool)  # version 1, the clean projection
    clean = await sums(db_pool, 1)
    async with db_pool.acquire() as connection, connection.transaction():
        version = await versions.create(connection, records_topic=None, bulk=True)
    ends = await end_offsets(kafka_settings, records_topic)

    async def loaded() -> bool:
        return await stored_offsets(db_pool, version.group(group_id), records_topic) == ends

    async with helping(settings, version) as helper:
        await wait_for(loaded, 120, "the helper loading the version to the end")
    assert helper.failed == ""
    assert helper.counts.seen == len(log) and helper.counts.dead_lettered == 1  # the junk record
    async with db_pool.acquire() as connection, connection.transaction():
        await BulkStore().finish(connection, version)
    assert await sums(db_pool, version.number) == clean


@pytest.mark.timeout(240)
async def test_a_bulk_rebuild_with_the_helper_is_accounted_for_and_equal_to_a_clean_projection(
    kafka_settings: KafkaSettings,
    records_topic: str,
    group_id: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = stream(MEMBERS)
    await produce(kafka_settings, records_topic, log)
    settings = settings_for(kafka_settings, database_url, pg_schema, records_topic, group_id)
    await project(kafka_settings, settings, db_pool)
    clean = await sums(db_pool, 1)
    monkeypatch.setattr(rebuild_steps, "HELPER_MIN_RECORDS", 0)
    helpers: list[Helper] = []
    started = helping  # what rebuild_steps calls

    def recorded(*args: object) -> object:
        context = started(*args)  # type: ignore[arg-type]
        return _Recording(context, helpers)

    monkeypatch.setattr("projections.rebuild_steps.helping", recorded)
    output = io.StringIO()
    code = await rebuild.rebuild(settings, yes=True, bulk=True, console=Console(file=output, width=200))
    printed = output.getvalue()
    assert code == rebuild.EXIT_OK, printed
    assert len(helpers) == 1 and helpers[0].failed == "", printed
    assert ": balanced" in printed and "1 dead-lettered" in printed, printed
    assert f"rebuilt: {len(log):,} records in" in printed
    assert await sums(db_pool, 2) == clean


class _Recording:
    """``helping``'s context, keeping the Helper it yields."""

    def __init__(self, context: object, into: list[Helper]) -> None:
        self._context = context
        self._into = into

    async def __aenter__(self) -> Helper:
        helper: Helper = await self._context.__aenter__()  # type: ignore[attr-defined]
        self._into.append(helper)
        return helper

    async def __aexit__(self, *exc: object) -> None:
        await self._context.__aexit__(*exc)  # type: ignore[attr-defined]
