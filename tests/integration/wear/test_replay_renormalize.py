"""``wear renormalize`` on real Kafka and PostgreSQL, as a process: a unit bug fixed by replay.

A live normalizer that reads WHOOP's kilojoules as kilocalories fills the records topic and the live
projection serves it (version 1). ``wear renormalize --dry-run --json`` prints the diff as one JSON
document, naming exactly ``energy_kcal`` on cycles and workouts, and changes nothing;
``wear renormalize --yes --json`` fills generation 2 with the fixed normalizer (the code of this
tree), builds a read-model version from it and serves it. A bad ``--since`` exits 2 in one line;
Kafka unreachable exits 1 in one line.
"""

from __future__ import annotations

import asyncpg
import orjson
import pytest

from infra.settings import KafkaSettings
from processors import generations
from processors.normalize import NORMALIZER_VERSION
from projections import versions
from tests.integration.processors.renormalize_harness import (
    World,
    delete_topics,
    kilojoules,
    live_normalizer,
    make_world,
    member_documents,
    normalized_all,
    produce_documents,
)
from tests.integration.projections import conftest as projection_fixtures
from tests.integration.projections.rebuild_harness import reaches_end, running, served
from tests.integration.wear.replay_harness import one_line, wear

pytestmark = pytest.mark.integration
records_topic = projection_fixtures.records_topic  # a records topic shaped like wear.records.v1, and its .dlq


def wrong_kcal(kilojoule: float) -> float:
    """The bug: WHOOP's kilojoules taken for kilocalories."""
    return kilojoule


@pytest.mark.timeout(300)
async def test_a_dry_run_then_a_renormalization_each_print_one_json_document(
    kafka_settings: KafkaSettings,
    records_topic: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = await make_world(kafka_settings, db_pool, pg_schema, database_url, records_topic)
    try:
        await _scenario(world, monkeypatch)
    finally:
        await delete_topics(kafka_settings, [world.documents, world.generation(2)])


async def _scenario(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = member_documents(0, days=8) + member_documents(1, days=8)
    cycles, workouts = kilojoules(docs, "cycle"), kilojoules(docs, "workout")
    assert cycles and workouts
    await produce_documents(world, docs)
    monkeypatch.setattr("processors.bounded_fields.kcal_from_kj", wrong_kcal)
    async with running(world.projections, world.pool):
        async with live_normalizer(world, normalizer_version=NORMALIZER_VERSION):
            await normalized_all(world)
        monkeypatch.undo()
        await reaches_end(world.pool, world.kafka, world.projections.projections.group_id, world.records)
    env = dict(world.env, PIPELINE_ENV="dev")

    code, out, err = await wear(env, "renormalize", "--dry-run", "--json")
    assert code == 0, err
    dry = orjson.loads(out)
    assert dry["dry_run"] is True and dry["generation"] is None and dry["served"] is False
    assert dry["serving"] == world.records
    assert dry["read"]["documents"] == len(docs) and dry["read"]["records"] == len(docs)
    changed = {kind: d["fields"] for kind, d in dry["diff"]["types"].items() if d["fields"]}
    assert changed == {
        "CycleRecorded": {"energy_kcal": len(cycles)},
        "WorkoutRecorded": {"energy_kcal": len(workouts)},
    }, dry["diff"]
    assert dry["diff"]["totals"]["changed"] == len(cycles) + len(workouts)
    assert dry["diff"]["totals"]["added"] == dry["diff"]["totals"]["removed"] == 0
    assert "changed fields (records changed):" in err  # the human diff, on stderr with --json
    assert "dry run: nothing changed" in err
    async with world.pool.acquire() as connection:
        assert [g.number for g in await generations.all_generations(connection)] == [1]

    code, out, err = await wear(env, "renormalize", "--yes", "--json")
    assert code == 0, err
    done = orjson.loads(out)
    assert done["dry_run"] is False and done["served"] is True
    assert (done["generation"], done["topic"]) == (2, world.generation(2))
    assert done["documents"] == len(docs) and done["dead_lettered"] == 0
    assert f"re-normalized: {len(docs):,} documents into generation 2" in err
    assert "records/s" in err and "ETA" in err  # the progress bars (on stderr)
    assert await served(world.pool) == 2
    async with world.pool.acquire() as connection:
        serving = await versions.serving(connection)
        assert serving.topic(world.records) == world.generation(2)
        assert (await generations.get(connection, 2)).state == "complete"  # type: ignore[union-attr]


@pytest.mark.timeout(120)
async def test_a_bad_since_exits_2_and_kafka_unreachable_exits_1_in_one_line(
    kafka_settings: KafkaSettings,
    records_topic: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
) -> None:
    world = await make_world(kafka_settings, db_pool, pg_schema, database_url, records_topic)
    try:
        env = dict(world.env, PIPELINE_ENV="dev")
        for since, reason in (
            (
                "yesterday",
                "refused, nothing changed: --since 'yesterday' is not a date (YYYY-MM-DD) or an ISO",
            ),
            ("2999-01-01", "refused, nothing changed: --since 2999-01-01T00:00:00+00:00 lies in the future"),
        ):
            code, out, err = await wear(env, "renormalize", "--since", since, "--yes", "--json")
            assert code == 2 and out == "", out + err
            assert one_line(err).startswith(reason), err
        code, out, err = await wear(env, "renormalize", "--json")  # off a terminal, without --yes
        assert code == 2 and out == ""
        assert one_line(err).startswith("refused, nothing changed: stdin is not a terminal"), err
        code, out, err = await wear(dict(env, PIPELINE_ENV="production"), "renormalize", "--dry-run")
        assert code == 2 and out == ""
        assert one_line(err).startswith("wear renormalize: refusing to start: TOKEN_VAULT_KEYS"), err
        down = dict(env, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
        code, out, err = await wear(down, "renormalize", "--dry-run", "--json")
        assert code == 1 and out == "", out + err
        assert one_line(err) == (
            "renormalize failed: Kafka unreachable or failing at 127.0.0.1:1: KafkaConnectionError"
        )
    finally:
        await delete_topics(kafka_settings, [world.documents])
