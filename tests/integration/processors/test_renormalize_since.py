"""``renormalize --since``: the serving generation's records copied as they are, then the documents Kafka
stored since that instant re-normalized after them; the newer normalizer version wins in the projection.

One member's documents were stored in January, another's now; both were normalized by the wrong
normalizer (kJ as kcal, version 1). With ``--since`` June, the diff and the new generation touch only
the recent member: the January member keeps the records (and the wrong energy) of version 1, byte
for byte. A ``--since`` run with a normalizer version that would not win the ties is refused. The
read-model version is loaded in bulk (``--bulk``).
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from rich.console import Console

from infra.settings import KafkaSettings
from processors import generations
from processors.renormalize import EXIT_OK, EXIT_REFUSED, Options, renormalize
from projections import versions
from schemas.keys import partition_for
from tests.integration.processors.renormalize_harness import (
    KJ_PER_KCAL,
    PARTITIONS,
    World,
    delete_topics,
    kilojoules,
    live_normalizer,
    make_world,
    member_documents,
    normalized_all,
    opened_records,
    produce_documents,
)
from tests.integration.projections import conftest as projection_fixtures
from tests.integration.projections.rebuild_harness import reaches_end, running

records_topic = projection_fixtures.records_topic  # a records topic shaped like wear.records.v1, and its .dlq
JANUARY = datetime(2026, 1, 10, tzinfo=UTC)
SINCE = datetime(2026, 6, 1, tzinfo=UTC)


Record = tuple[bytes, dict[str, Any] | None, bytes | None]


def per_partition(records: list[Record]) -> dict[int, list[Record]]:
    """Records in offset order per partition (the partition follows the user part of the key)."""
    grouped: dict[int, list[Record]] = {}
    for record in records:
        grouped.setdefault(partition_for(record[0], PARTITIONS), []).append(record)
    return grouped


def console(output: io.StringIO) -> Console:
    return Console(file=output, width=300)


@pytest.mark.timeout(300)
async def test_since_copies_the_older_records_and_renormalizes_only_the_newer_documents(
    kafka_settings: KafkaSettings,
    records_topic: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = await make_world(kafka_settings, db_pool, pg_schema, database_url, records_topic)
    try:
        await _since(world, monkeypatch)
    finally:
        await delete_topics(kafka_settings, [world.documents, world.generation(2)])


async def _since(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    old, recent = member_documents(5, days=6), member_documents(6, days=6)
    await produce_documents(world, old, timestamp=JANUARY)
    await produce_documents(world, recent)
    monkeypatch.setattr("processors.bounded_fields.kcal_from_kj", lambda kilojoule: kilojoule)
    async with running(world.projections, world.pool):
        async with live_normalizer(world, normalizer_version=1):
            await normalized_all(world)
        monkeypatch.undo()
        async with live_normalizer(world, normalizer_version=2):
            await reaches_end(world.pool, world.kafka, world.projections.projections.group_id, world.records)
            before = await opened_records(world, world.records)

            # the records of version 1 would win the ties against re-normalized ones of version 1
            err = io.StringIO()
            code = await renormalize(
                world.settings,
                Options(since=SINCE, yes=True),
                projections=world.cli(),
                console=console(err),
                out=console(io.StringIO()),
                normalizer_version=1,
            )
            assert code == EXIT_REFUSED and "bump it in processors/normalize.py" in err.getvalue(), (
                err.getvalue()
            )

            out, err = io.StringIO(), io.StringIO()
            code = await renormalize(
                world.settings,
                Options(since=SINCE, yes=True, bulk=True),  # the read-model version loaded in bulk
                projections=world.cli(),
                console=console(err),
                out=console(out),
                normalizer_version=2,
            )
            printed = out.getvalue()
            assert code == EXIT_OK, printed + err.getvalue()
            cycles, workouts = kilojoules(recent, "cycle"), kilojoules(recent, "workout")
            assert f"  CycleRecorded.energy_kcal: {len(cycles)}" in printed
            assert f"  WorkoutRecorded.energy_kcal: {len(workouts)}" in printed
            total = next(line for line in printed.splitlines() if line.lstrip().startswith("total"))
            compared = sum(int(n.replace(",", "")) for n in total.split()[1:])
            assert compared == len(recent)  # only the documents stored since June were compared
            assert f"{len(old):,} stored before --since (their records copied as they were)" in printed

    # generation 2: the copy of generation 1 first, byte for byte, then the re-normalized records
    async with world.pool.acquire() as connection:
        made = await generations.get(connection, 2)
        serving = await versions.serving(connection)
    assert made is not None and (made.state, made.since, made.copied_from) == (
        "complete",
        SINCE,
        world.records,
    )
    assert serving.records_topic == world.generation(2) and serving.bulk
    after = per_partition(await opened_records(world, world.generation(2)))
    appended: list[Record] = []
    for partition, records in per_partition(before).items():
        assert [(key, raw) for key, _, raw in after[partition][: len(records)]] == [
            (key, raw) for key, _, raw in records
        ]
        appended += after[partition][len(records) :]
    recent_user = recent[0].user_id.encode()
    assert appended and all(key.startswith(recent_user + b":") for key, _, _ in appended)
    assert {value["normalizer_version"] for _, value, _ in appended if value} == {2}

    # served: the January member keeps version 1's energy, the recent one has the right one
    async with world.pool.acquire() as connection, connection.transaction():
        await versions.use(connection, serving)
        rows = await connection.fetch("SELECT cycle_id::text AS id, energy_kcal FROM rm_cycles")
    energy = {row["id"]: row["energy_kcal"] for row in rows}
    for cycle, kj in kilojoules(old, "cycle").items():
        assert energy[cycle] == pytest.approx(kj)
    for cycle, kj in cycles.items():
        assert energy[cycle] == pytest.approx(kj / KJ_PER_KCAL)
