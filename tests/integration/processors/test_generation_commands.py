"""Records generations on real Kafka and PostgreSQL: the live normalizer writes every generation not
dropped, ``python -m processors generations`` lists them, ``--drop N`` stops writing one (refused for
generation 1, the served one, an unknown one, and off a terminal without ``--yes``)."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import replace

import asyncpg
import pytest

from infra.settings import KafkaSettings
from infra.topic_admin import ensure_topics
from processors import generations
from projections import versions
from schemas.topics import topic
from tests.integration.processors.renormalize_harness import (
    PARTITIONS,
    World,
    delete_topics,
    live_normalizer,
    make_world,
    member_documents,
    normalized_all,
    produce_documents,
)
from tests.integration.projections import conftest as projection_fixtures
from tests.integration.projections.helpers import end_offsets

records_topic = projection_fixtures.records_topic  # a records topic shaped like wear.records.v1, and its .dlq


async def processors_command(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """``python -m processors ARGS`` with stdin not a terminal: code, stdout, stderr."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "processors",
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(child.communicate(), 120)
    assert child.returncode is not None
    return child.returncode, out.decode(), err.decode()


async def records_in(world: World, name: str) -> int:
    return sum((await end_offsets(world.kafka, name, PARTITIONS)).values())


@pytest.mark.timeout(240)
async def test_the_live_normalizer_writes_every_generation_until_it_is_dropped(
    kafka_settings: KafkaSettings,
    records_topic: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
) -> None:
    world = await make_world(kafka_settings, db_pool, pg_schema, database_url, records_topic)
    two = world.generation(2)
    try:
        spec = replace(topic("wear.records.v1"), name=two, partitions=PARTITIONS)
        await ensure_topics(kafka_settings, [spec, spec.dlq()])
        async with db_pool.acquire() as connection:
            number = await generations.next_number(connection)
            await generations.register(
                connection, number, two, normalizer_version=2, since=None, documents_topic=world.documents
            )
        first, second = member_documents(7, days=2), member_documents(8, days=2)
        async with live_normalizer(world, normalizer_version=2):
            await produce_documents(world, first)
            await normalized_all(world)
            assert await records_in(world, world.records) == await records_in(world, two) == len(first)

            code, out, err = await processors_command(world.env, "generations", "--json")
            assert code == 0, err
            listed = json.loads(out)
            assert listed["served"] == world.records
            assert [
                (g["generation"], g["topic"], g["state"], g["served"]) for g in listed["generations"]
            ] == [
                (1, world.records, "complete", True),
                (2, two, "filling", False),
            ]
            code, out, err = await processors_command({**world.env, "COLUMNS": "250"}, "generations")
            assert code == 0, err
            rows = [[cell.strip() for cell in line.split("│")] for line in out.splitlines() if "│" in line]
            assert [row[1:5] for row in rows] == [
                ["1", world.records, "", "complete"],
                ["2", two, "2", "filling"],
            ], out
            assert [row[-2] for row in rows] == ["served", ""], out

            for args, reason in (
                (("--drop", "1", "--yes"), f"generation 1 is the configured records topic {world.records}"),
                (("--drop", "7", "--yes"), "no records generation 7 (generations: 1, 2)"),
                (("--drop", "2"), "stdin is not a terminal: pass --yes"),
            ):
                code, out, err = await processors_command(world.env, "generations", *args)
                assert code == 2, err
                assert err.startswith(f"refused, nothing changed: {reason}") and err.count("\n") == 1, err

            # the served generation cannot be dropped
            async with db_pool.acquire() as connection, connection.transaction():
                made = await versions.create(connection, records_topic=two, bulk=False)
                await versions.switch(connection, made.number, force=True)
            code, out, err = await processors_command(world.env, "generations", "--drop", "2", "--yes")
            assert code == 2 and f"generation 2 ({two}) is served" in err, err
            async with db_pool.acquire() as connection, connection.transaction():
                await versions.rollback(connection)

            code, out, err = await processors_command(world.env, "generations", "--drop", "2", "--yes")
            assert code == 0, err
            assert err.startswith(f"dropped: generation 2 ({two}) is no longer written"), err
            await produce_documents(world, second)
            await normalized_all(world)
            assert await records_in(world, world.records) == len(first) + len(second)
            assert await records_in(world, two) == len(first)  # no longer written
        async with db_pool.acquire() as connection:
            dropped = await generations.get(connection, 2)
        assert dropped is not None and dropped.state == "dropped" and dropped.dropped_at is not None
    finally:
        await delete_topics(kafka_settings, [world.documents, two])
