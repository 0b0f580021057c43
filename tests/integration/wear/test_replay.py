"""``wear rebuild | versions | switch | rollback | drop`` on real Kafka and PostgreSQL, as processes.

A records topic holds re-scored versions, stale replays, deletions and a record the projection
dead-letters; the live worker projects it into version 1. ``wear rebuild`` builds, verifies and
serves version 2 (its ``--json`` summary parses and counts what the log holds); the version commands
list, roll back, switch and drop, each with a JSON document. Every refusal exits 2 in one line and
changes nothing; Kafka or PostgreSQL unreachable exits 1 in one line without a traceback or a secret.
"""

from __future__ import annotations

import asyncpg
import pytest

from infra.settings import KafkaSettings
from projections import versions
from tests.integration.projections import conftest as projection_fixtures
from tests.integration.projections.helpers import produce
from tests.integration.projections.rebuild_harness import project, served, settings_for, stream
from tests.integration.wear.replay_harness import env_with, one_line, wear, wear_json
from tests.unit.projections.factory import Member

pytestmark = pytest.mark.integration
records_topic = projection_fixtures.records_topic  # a records topic shaped like wear.records.v1, and its .dlq

MEMBERS = [Member(640001), Member(640002)]


async def _registry(pool: asyncpg.Pool) -> list[tuple[int, str]]:
    rows = await pool.fetch("SELECT version, state FROM read_model_versions ORDER BY version")
    return [(row["version"], row["state"]) for row in rows]


@pytest.mark.timeout(300)
async def test_rebuild_then_list_roll_back_switch_and_drop_each_with_json(
    kafka_settings: KafkaSettings,
    records_topic: str,
    group_id: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
) -> None:
    log = stream(MEMBERS, days=8)
    await produce(kafka_settings, records_topic, log)
    settings = settings_for(kafka_settings, database_url, pg_schema, records_topic, group_id)
    await project(kafka_settings, settings, db_pool)  # version 1, by the live worker
    env = env_with(settings)

    summary, err = await wear_json(env, "rebuild", "--yes")
    assert summary == {
        "rebuilt": True,
        "records": len(log),
        "seconds": summary["seconds"],  # type: ignore[index]
        "records_per_s": summary["records_per_s"],  # type: ignore[index]
        "dead_lettered": 1,  # the junk record of the stream, met again
        "erased": 0,
        "switched_from": 1,
        "switched_to": 2,
        "sync_activity": None,
    }, summary
    assert f"building version 2 ({pg_schema}_rm2) from {records_topic}" in err
    assert f"rebuilt: {len(log):,} records in" in err
    assert err.rstrip().endswith("switched from version 1 to version 2"), err
    assert await served(db_pool) == 2

    listed, _ = await wear_json(env, "versions")
    assert isinstance(listed, dict)
    assert (listed["serving"], listed["previous"]) == (2, 1)
    assert [(v["number"], v["state"]) for v in listed["versions"]] == [(1, "retired"), (2, "serving")]
    rows = listed["versions"][1]["rows"]
    assert rows["rm_cycles"] > 0 and rows == listed["versions"][0]["rows"]

    code, out, err = await wear(env, "versions")  # the table, for people
    assert code == 0 and err == "", err
    assert "serving" in out and "previous" in out and records_topic in out

    assert await wear_json(env, "rollback", "--yes") == (
        {"rolled_back_from": 2, "serving": 1},
        "rolled back: version 1 serves again (was version 2)\n",
    )
    assert await served(db_pool) == 1
    document, err = await wear_json(env, "switch", "2", "--yes")
    assert document == {"switched_from": 1, "switched_to": 2, "serving": 2}
    assert err.startswith("switched: version 2 serves (was version 1)"), err
    document, err = await wear_json(env, "drop", "1", "--yes")
    assert document == {"dropped": 1, "serving": 2}
    assert err == f"dropped: version 1 (schema {pg_schema})\n", err
    assert await _registry(db_pool) == [(2, "serving")]


@pytest.mark.timeout(240)
async def test_each_refusal_exits_2_in_one_line_and_changes_nothing(
    kafka_settings: KafkaSettings,
    records_topic: str,
    group_id: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
) -> None:
    await produce(kafka_settings, records_topic, stream(MEMBERS, days=8))
    settings = settings_for(kafka_settings, database_url, pg_schema, records_topic, group_id)
    await project(kafka_settings, settings, db_pool)
    env = env_with(settings)

    async def refused(*args: str, answer: bytes | None = None) -> str:
        code, out, err = await wear(env, *args, answer=answer)
        assert code == 2, out + err
        assert out == "", out
        return one_line(err)

    # unknown versions
    assert await refused("switch", "99", "--yes") == "switch refused: no read-model version 99 (versions: 1)"
    assert await refused("drop", "99", "--yes", "--json") == (
        "drop refused: no read-model version 99 (versions: 1)"
    )
    assert await refused("switch", "1", "--yes") == "switch refused: version 1 is already served"
    assert await refused("rollback", "--yes", "--json") == (
        "rollback refused: no previous read-model version to roll back to (none served before, or dropped)"
    )
    # not confirmed: off a terminal without --yes, and "no" on a terminal
    assert await refused("rollback") == (
        "rollback refused: stdin is not a terminal: pass --yes to go on without a question"
    )
    # an unfinished version: refused without --force
    async with db_pool.acquire() as connection, connection.transaction():
        building = await versions.create(connection, records_topic=None, bulk=False)
    number = str(building.number)
    assert await refused("switch", number, "--yes") == (
        f"switch refused: version {number} is not verified (its rebuild has not finished): "
        "use --force to serve it anyway"
    )
    code, out, err = await wear(env, "switch", number, "--force", "--json", answer=b"no\n")
    assert code == 2 and out == "", out + err
    assert err.endswith('Type "yes" to go on: switch refused: not confirmed: nothing changed\n'), err
    # a rebuild already running (it holds the rebuild lock)
    async with db_pool.acquire() as holder:
        assert await versions.try_rebuild_lock(holder)
        line = await refused("rebuild", "--yes", "--json")
        assert line.startswith("rebuild refused: a rebuild is already running"), line
        assert await refused("drop", number, "--yes") == (
            f"drop refused: a rebuild is running and version {number} is building: stop the rebuild first"
        )
        await holder.execute("SELECT pg_advisory_unlock_all()")
    # an unknown records topic
    assert await refused("rebuild", "--yes", "--records-topic", f"{records_topic}.nope") == (
        f"rebuild refused: topic {records_topic}.nope does not exist"
    )
    # a production environment on the public development secrets: refused before connecting
    code, out, err = await wear(dict(env, PIPELINE_ENV="production"), "rebuild", "--yes", "--json")
    assert code == 2 and out == ""
    assert one_line(err).startswith(
        "wear rebuild: refusing to start: TOKEN_VAULT_KEYS holds the public development key"
    ), err
    # a bad setting: named in one line, its value never shown
    code, out, err = await wear(dict(env, PROJECTIONS_BATCH_MAX_RECORDS="many-7f3a"), "versions")
    assert code == 2 and out == ""
    line = one_line(err)
    assert line.startswith("bad setting in the environment (ProjectionsSettings): batch_max_records: "), line
    assert "many-7f3a" not in line
    # bad usage: typer's own (exit 2)
    code, _, err = await wear(env, "switch", "two")
    assert code == 2 and "Traceback" not in err
    assert await _registry(db_pool) == [(1, "serving"), (building.number, "building")]  # nothing changed
    assert await served(db_pool) == 1


@pytest.mark.timeout(120)
async def test_kafka_or_postgresql_unreachable_exits_1_in_one_line_without_a_secret(
    kafka_settings: KafkaSettings,
    records_topic: str,
    group_id: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
) -> None:
    settings = settings_for(kafka_settings, database_url, pg_schema, records_topic, group_id)
    kafka_down = env_with(settings, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
    for args in (("rebuild", "--yes"), ("rebuild", "--yes", "--json")):
        code, out, err = await wear(kafka_down, *args)
        assert code == 1 and out == "", out + err
        assert one_line(err) == (
            "rebuild failed: Kafka unreachable or failing at 127.0.0.1:1: KafkaConnectionError; "
            "nothing changed"
        )
    assert await _registry(db_pool) == [(1, "serving")]  # nothing changed

    password = "wear-test-pw-7f3a"
    postgres_down = env_with(settings, DATABASE_URL=f"postgresql://wear:{password}@127.0.0.1:1/pipeline")
    for args in (
        ("versions", "--json"),
        ("switch", "2", "--yes"),
        ("rollback", "--yes"),
        ("drop", "2", "--yes"),
        ("rebuild", "--yes"),
    ):
        code, out, err = await wear(postgres_down, *args)
        assert code == 1 and out == "", out + err
        line = one_line(err)
        assert "PostgreSQL unreachable or failing at 127.0.0.1:1/pipeline" in line, line
        assert password not in line and "wear:" not in line, line
