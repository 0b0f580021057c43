"""A rebuild interrupted (SIGINT/SIGTERM) or killed (SIGKILL) midway resumes its version on the next run.

The version stays ``building`` with the offsets its committed batches stored (exactly once per
batch); the next ``python -m projections rebuild`` says "resuming version N", goes on from there and
ends with the version checksum-equal to a clean projection of the same offsets (version 1, projected
by the live worker), verified and served. The same with ``--bulk``: a bulk load killed midway goes on
staging where it stopped, then builds the tables once.
"""

from __future__ import annotations

import asyncio
import io

import asyncpg
import pytest
from rich.console import Console

from infra.settings import KafkaSettings
from projections import rebuild
from projections.settings import Settings
from tests.integration.projections.helpers import end_offsets, produce, stored_offsets, wait_for
from tests.integration.projections.rebuild_harness import (
    command,
    finished,
    project,
    served,
    settings_for,
    start,
    sums,
    version,
)
from tests.unit.projections.factory import Member, mixed_log

MEMBERS = [Member(640000 + i) for i in range(8)]
GROUP_OF_VERSION_2 = "read-models-v2"  # versions.create: read-models-v<N>


async def _applied(pool: asyncpg.Pool, topic: str) -> int:
    return sum((await stored_offsets(pool, GROUP_OF_VERSION_2, topic)).values())


async def _killed_midway(
    pool: asyncpg.Pool, settings: Settings, args: tuple[str, ...], records_topic: str, above: int, total: int
) -> None:
    """Start ``python -m projections ARGS`` and SIGKILL it once it stored more than ``above`` offsets."""
    process = await start(settings, *args, stdin=asyncio.subprocess.DEVNULL)
    try:

        async def under_way() -> bool:
            return above < await _applied(pool, records_topic) < total

        await wait_for(under_way, 90, "the rebuild under way")
    finally:
        process.kill()
    code, printed = await finished(process)
    assert code == -9, printed


async def _projected(
    kafka_settings: KafkaSettings, database_url: str, schema: str, topic: str, group: str, pool: asyncpg.Pool
) -> tuple[Settings, int]:
    await produce(kafka_settings, topic, list(mixed_log(MEMBERS, days=40)))
    settings = settings_for(kafka_settings, database_url, schema, topic, group, batch_max_records=5)
    await project(kafka_settings, settings, pool)  # version 1, the clean projection to compare with
    return settings, sum((await end_offsets(kafka_settings, topic)).values())


@pytest.mark.timeout(300)
async def test_an_interrupted_then_killed_rebuild_resumes_its_version_and_ends_equal_to_a_clean_one(
    kafka_settings: KafkaSettings,
    records_topic: str,
    group_id: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
) -> None:
    settings, total = await _projected(
        kafka_settings, database_url, pg_schema, records_topic, group_id, db_pool
    )
    clean = await sums(db_pool, 1)

    # SIGINT or SIGTERM (the command sets the same event): stops after the batch in flight
    stop = asyncio.Event()

    async def interrupt_midway() -> None:
        async def some_applied() -> bool:
            return 0 < await _applied(db_pool, records_topic) < total // 3

        await wait_for(some_applied, 60, "the rebuild under way")
        stop.set()

    output = io.StringIO()
    interrupter = asyncio.create_task(interrupt_midway())
    code = await rebuild.rebuild(settings, yes=True, stop=stop, console=Console(file=output, width=300))
    await interrupter
    printed = output.getvalue()
    assert code == rebuild.EXIT_INTERRUPTED, printed
    assert "interrupted after " in printed and f" of {total:,} offsets: " in printed
    assert printed.rstrip().endswith("version 2 keeps what it applied; run the same command again to resume")
    assert (await version(db_pool, 2)).state == "building" and await served(db_pool) == 1
    interrupted_at = await _applied(db_pool, records_topic)
    assert 0 < interrupted_at < total

    # SIGKILL of the command: nothing runs at its end, the lock goes with its connection
    await _killed_midway(db_pool, settings, ("rebuild", "--yes"), records_topic, interrupted_at, total)
    assert (await version(db_pool, 2)).state == "building" and await served(db_pool) == 1

    code, printed = await command(settings, "rebuild", "--yes")
    assert code == 0, printed
    assert f"resuming version 2 ({pg_schema}_rm2) from {records_topic}" in printed
    assert "accounting: " in printed and ": balanced" in printed  # what this run read
    assert "switched from version 1 to version 2" in printed and "Traceback" not in printed
    assert await served(db_pool) == 2
    assert await sums(db_pool, 2) == clean
    assert await db_pool.fetchval("SELECT count(*) FROM read_model_versions") == 2  # no other version made


@pytest.mark.timeout(300)
async def test_a_killed_bulk_rebuild_resumes_and_ends_equal_to_a_clean_projection(
    kafka_settings: KafkaSettings,
    records_topic: str,
    group_id: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
) -> None:
    settings, total = await _projected(
        kafka_settings, database_url, pg_schema, records_topic, group_id, db_pool
    )
    clean = await sums(db_pool, 1)

    await _killed_midway(db_pool, settings, ("rebuild", "--bulk", "--yes"), records_topic, 0, total)
    two = await version(db_pool, 2)
    assert two.state == "building" and two.bulk

    code, printed = await command(settings, "rebuild", "--bulk", "--yes")
    assert code == 0, printed
    assert f"resuming version 2 (bulk {pg_schema}_rm2) from {records_topic}" in printed
    assert "bulk load of version 2 done" in printed
    assert "accounting: not checked" in printed  # the earlier run's counts were staged, not kept
    assert "compared with version 1 at the same offsets: equal rm_cycles" in printed
    assert "switched from version 1 to version 2" in printed and "Traceback" not in printed
    assert await served(db_pool) == 2
    assert await sums(db_pool, 2) == clean

    # a bulk rebuild in one go: accounted for, and equal too
    code, printed = await command(settings, "rebuild", "--bulk", "--yes")
    assert code == 0, printed
    assert f"building version 3 (bulk {pg_schema}_rm3)" in printed and ": balanced" in printed, printed
    assert "switched from version 2 to version 3" in printed
    assert await sums(db_pool, 3) == clean
