"""``python -m projections rebuild`` on real Kafka and PostgreSQL: a new version beside the served one.

A topic holds re-scored versions, stale replays, duplicates, deletions and a record the projection
dead-letters. The live worker projects it into version 1; the rebuild builds version 2 while version
1 keeps serving the query API, verifies it (checksums, accounting, comparison with version 1 at the
same offsets), and switches. Version 2 must equal version 1 (a clean projection of the same offsets),
version 1 is retired, a rollback serves it again and a drop removes version 2. On a terminal the
rebuild asks before the switch; ingest's tables survive; rm_sync_activity is rebuilt only when asked.
"""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from rich.console import Console

from infra.kafka import make_producer
from infra.settings import KafkaSettings
from infra.vault import ApiTokens
from projections import rebuild
from schemas.events import WebhookReceived
from schemas.keys import record_key
from schemas.serde import encode
from tests.conftest import TopicFactory
from tests.integration.projections.conftest import ApiHarness, with_search_path
from tests.integration.projections.helpers import checksums, produce, wait_for
from tests.integration.projections.rebuild_harness import (
    clean_sums,
    command,
    generation_topic,
    in_process,
    on_a_terminal,
    project,
    running,
    served,
    settings_for,
    stream,
    sums,
    version,
)
from tests.unit.projections.factory import Member, mixed_log

MEMBERS = [Member(610001), Member(610002), Member(610003)]


def _console(output: io.StringIO) -> Console:
    return Console(file=output, width=300)


@pytest.mark.timeout(240)
async def test_a_rebuild_builds_a_version_beside_the_served_one_verifies_it_and_switches(
    kafka_settings: KafkaSettings,
    records_topic: str,
    group_id: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
    api: ApiHarness,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = stream(MEMBERS)
    await produce(kafka_settings, records_topic, log)
    settings = settings_for(kafka_settings, database_url, pg_schema, records_topic, group_id)
    await project(kafka_settings, settings, db_pool)  # version 1, by the live worker
    one = await sums(db_pool, 1)
    assert one["rm_cycles"].rows > 0 and one["rm_tombstones"].rows > 0
    user = MEMBERS[0].user_id
    before = await api.get(f"/v1/data/{user}/sleep", user, params={"limit": "25"})
    assert before.status_code == 200 and before.headers["x-read-model-version"] == "1"

    answers: list[tuple[int, str | None]] = []
    polling = asyncio.Event()

    async def phone() -> None:  # reads throughout the rebuild
        while not polling.is_set():
            response = await api.get(f"/v1/data/{user}/sleep", user, params={"limit": "25"})
            answers.append((response.status_code, response.headers.get("x-read-model-version")))
            await asyncio.sleep(0.02)

    reading = asyncio.create_task(phone())
    output = io.StringIO()
    code = await rebuild.rebuild(settings, yes=True, console=_console(output))
    polling.set()
    await reading
    printed = output.getvalue()
    assert code == rebuild.EXIT_OK, printed
    assert f"building version 2 ({pg_schema}_rm2) from {records_topic}" in printed
    assert "accounting: " in printed and ": balanced" in printed
    assert "compared with version 1 at the same offsets: equal rm_cycles" in printed
    assert "DIFFERENT" not in printed
    assert f"rebuilt: {len(log):,} records in" in printed
    assert "1 dead-lettered" in printed  # the junk record, met again
    assert printed.rstrip().endswith("switched from version 1 to version 2"), printed
    assert answers and {status for status, _ in answers} == {200}
    seen = [v or "" for _, v in answers]
    assert seen[0] == "1" and seen == sorted(seen) and set(seen) <= {"1", "2"}  # 1 until the switch, then 2

    assert await served(db_pool) == 2
    two = await version(db_pool, 2)
    assert two.state == "serving" and two.verified_at is not None and two.verification is not None
    assert two.verification["rm_sleeps"]["rows"] == one["rm_sleeps"].rows
    assert (await version(db_pool, 1)).state == "retired"
    assert await sums(db_pool, 2) == one  # equal to the clean projection of the same offsets
    after = await api.get(f"/v1/data/{user}/sleep", user, params={"limit": "25"})
    assert after.status_code == 200 and after.headers["x-read-model-version"] == "2"
    assert after.json() == before.json()
    assert after.headers["etag"] != before.headers["etag"]  # the epoch advanced with the switch
    # ingest's table is not a read model: the token (used above) still authenticates
    principal = await ApiTokens().authenticate(db_pool, await api.token_for(user))
    assert principal is not None and principal.user_id == user

    code, out, err = await in_process(monkeypatch, capsys, settings, "versions", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert (listed["serving"], listed["previous"]) == (2, 1)
    assert [(v["number"], v["state"]) for v in listed["versions"]] == [(1, "retired"), (2, "serving")]
    assert listed["versions"][1]["rows"]["rm_sleeps"] == one["rm_sleeps"].rows
    assert listed["versions"][1]["records_topic"] == records_topic
    code, out, err = await in_process(monkeypatch, capsys, settings, "versions")
    assert code == 0 and "serving" in out and "previous" in out and records_topic in out, out + err

    code, out, err = await in_process(monkeypatch, capsys, settings, "rollback", "--yes")
    assert code == 0, err
    assert "rolled back: version 1 serves again (was version 2)" in err
    assert await served(db_pool) == 1
    rolled = await api.get(f"/v1/data/{user}/sleep", user, params={"limit": "25"})
    assert rolled.headers["x-read-model-version"] == "1" and rolled.json() == before.json()

    code, out, err = await in_process(monkeypatch, capsys, settings, "drop", "2", "--yes")
    assert code == 0, err
    assert f"dropped: version 2 (schema {pg_schema}_rm2)" in err
    gone = await db_pool.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", f"{pg_schema}_rm2")
    assert gone == 0
    assert [v.number for v in [await version(db_pool, 1)]] == [1]
    assert await db_pool.fetchval("SELECT count(*) FROM read_model_versions") == 1


async def test_on_a_terminal_it_asks_before_the_switch_and_refuses_off_one_without_yes(
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

    code, printed = await command(settings, "rebuild")  # no --yes, stdin not a terminal
    assert code == 2, printed
    assert "rebuild refused: stdin is not a terminal: pass --yes" in printed and "Traceback" not in printed
    assert await db_pool.fetchval("SELECT count(*) FROM read_model_versions") == 1  # nothing created

    # the version is built and verified; the question comes before the switch; "no" leaves it verified
    code, printed = await on_a_terminal(settings, b"no\n", "rebuild")
    assert code == 2, printed
    assert "Version 2 (" in printed and "Serve it instead of version 1?" in printed, printed
    assert "not confirmed: version 2 is verified and not served" in printed
    assert "`python -m projections switch 2`" in printed
    assert await served(db_pool) == 1 and (await version(db_pool, 2)).state == "verified"

    code, printed = await command(settings, "switch", "2")
    assert code == 2 and "switch refused: stdin is not a terminal: pass --yes" in printed, printed
    code, printed = await on_a_terminal(settings, b"yes\n", "switch", "2")
    assert code == 0, printed
    assert "Serve version 2 (verified" in printed and "switched: version 2 serves (was version 1)" in printed
    assert await served(db_pool) == 2
    assert await sums(db_pool, 2) == await sums(db_pool, 1)


async def test_unreachable_services_fail_in_one_line_without_secrets(
    kafka_settings: KafkaSettings,
    records_topic: str,
    group_id: str,
    database_url: str,
    pg_schema: str,
    db_pool: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = settings_for(kafka_settings, database_url, pg_schema, records_topic, group_id)
    broken_kafka = settings_for(
        kafka_settings.model_copy(update={"kafka_bootstrap_servers": "127.0.0.1:1"}),
        database_url,
        pg_schema,
        records_topic,
        group_id,
    )
    code, printed = await command(broken_kafka, "rebuild", "--yes")
    assert code == 1, printed
    assert printed.startswith("rebuild failed: Kafka unreachable or failing at 127.0.0.1:1: "), printed
    assert printed.rstrip().endswith("; nothing changed") and printed.count("\n") == 1, printed
    assert await db_pool.fetchval("SELECT count(*) FROM read_model_versions") == 1

    secret_url = with_search_path("postgresql://whoop:s3cret-Passw0rd@127.0.0.1:1/whoop", pg_schema)
    broken_postgres = replace(
        settings, postgres=settings.postgres.model_copy(update={"database_url": secret_url})
    )
    where = f"PostgreSQL unreachable or failing at 127.0.0.1:1/whoop (search_path {pg_schema})"
    code, printed = await command(broken_postgres, "rebuild", "--yes")
    assert code == 1, printed
    assert printed.startswith(f"rebuild failed: {where}: "), printed
    assert printed.rstrip().endswith("; nothing changed") and printed.count("\n") == 1, printed
    assert "s3cret" not in printed and "Traceback" not in printed
    for args in (("versions",), ("switch", "2", "--yes"), ("rollback", "--yes"), ("drop", "2", "--yes")):
        code, out, err = await in_process(monkeypatch, capsys, broken_postgres, *args)
        assert code == 1, out + err
        assert err.startswith(f"{args[0]} failed: {where}: ") and err.count("\n") == 1, err
        assert "s3cret" not in err and "Traceback" not in err and out == "", err


async def test_the_sync_activity_is_rebuilt_only_when_asked_and_not_while_it_runs(
    kafka_settings: KafkaSettings,
    records_topic: str,
    topic_factory: TopicFactory,
    group_id: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
) -> None:
    webhooks = await topic_factory("whoop.webhooks.v1", partitions=3)
    await produce(kafka_settings, records_topic, list(mixed_log(MEMBERS[:1], days=8)))
    producer = make_producer(kafka_settings, "test-webhooks")
    await producer.start()
    try:
        for i, member in enumerate(MEMBERS * 2):
            webhook = WebhookReceived(
                event_id=f"w{i}",
                occurred_at=datetime(2025, 10, 1, 8, tzinfo=UTC) + timedelta(minutes=i),
                user_id=member.user_id,
                source="ingest",
                whoop_user_id=member.whoop_user_id,
                whoop_event_type="sleep.updated",
                resource_id=str(i),
                whoop_trace_id=f"t{i}",
                signature_timestamp_ms=i,
            )
            await producer.send_and_wait(
                webhooks, encode(webhook), key=record_key(member.user_id, "webhook", str(i))
            )
    finally:
        await producer.stop()
    settings = settings_for(
        kafka_settings, database_url, pg_schema, records_topic, group_id, activity_topics=webhooks
    )
    async with running(settings, db_pool):

        async def seen() -> bool:
            return bool(
                await db_pool.fetchval("SELECT coalesce(sum(webhooks_seen), 0) = 6 FROM rm_sync_activity")
            )

        await wait_for(seen, 60, "the sync-activity projection")
        output = io.StringIO()  # refused while the sync-activity projection runs: nothing created
        code = await rebuild.rebuild(settings, yes=True, sync_activity=True, console=_console(output))
        assert code == rebuild.EXIT_REFUSED, output.getvalue()
        assert "the sync-activity projection runs" in output.getvalue()
        assert await db_pool.fetchval("SELECT count(*) FROM read_model_versions") == 1
    await project(kafka_settings, settings, db_pool)
    projected = await checksums(db_pool, ["rm_sync_activity"])
    await db_pool.execute("UPDATE rm_sync_activity SET webhooks_seen = webhooks_seen + 100")
    altered = await checksums(db_pool, ["rm_sync_activity"])

    assert await rebuild.rebuild(settings, yes=True, console=_console(io.StringIO())) == 0
    assert await checksums(db_pool, ["rm_sync_activity"]) == altered  # left alone by default

    output = io.StringIO()
    code = await rebuild.rebuild(settings, yes=True, sync_activity=True, console=_console(output))
    assert code == 0, output.getvalue()
    assert await checksums(db_pool, ["rm_sync_activity"]) == projected
    assert "rm_sync_activity from 6 webhooks and documents" in output.getvalue()
    assert "switched from version 2 to version 3" in output.getvalue()


async def test_every_read_model_of_the_migrations_is_known_to_the_rebuild(db_pool: asyncpg.Pool) -> None:
    tables = await db_pool.fetch(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = current_schema() AND table_name LIKE 'rm\\_%'"
    )
    known = {*rebuild.RECORD_READ_MODELS, *rebuild.ACTIVITY_READ_MODELS}
    assert {row["table_name"] for row in tables} == known


async def test_a_rebuild_from_another_records_topic_switches_to_that_generation(
    kafka_settings: KafkaSettings,
    records_topic: str,
    topic_factory: TopicFactory,
    group_id: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with generation_topic(kafka_settings, topic_factory) as generation:
        await produce(kafka_settings, records_topic, stream(MEMBERS, days=8))
        await produce(kafka_settings, generation, stream(MEMBERS, days=10, seed=9))
        settings = settings_for(kafka_settings, database_url, pg_schema, records_topic, group_id)
        await project(kafka_settings, settings, db_pool)

        output = io.StringIO()
        code = await rebuild.rebuild(settings, yes=True, records_topic=generation, console=_console(output))
        printed = output.getvalue()
        assert code == rebuild.EXIT_OK, printed
        assert f"building version 2 ({pg_schema}_rm2) from {generation}" in printed
        assert f"not compared with version 1: it projects {records_topic}" in printed
        assert "switched from version 1 to version 2" in printed
        two = await version(db_pool, 2)
        assert two.records_topic == generation and two.state == "serving"
        assert await sums(db_pool, 2) == await clean_sums(kafka_settings, settings, db_pool, generation)
        code, out, _ = await in_process(monkeypatch, capsys, settings, "versions", "--json")
        assert code == 0 and json.loads(out)["versions"][1]["records_topic"] == generation

        # the next rebuild, without --records-topic, builds from the served version's topic: the generation
        output = io.StringIO()
        assert await rebuild.rebuild(settings, yes=True, console=_console(output)) == 0, output.getvalue()
        # (version 3 was the clean projection above, dropped since)
        assert f"building version 4 ({pg_schema}_rm4) from {generation}" in output.getvalue()
        assert "compared with version 2 at the same offsets: equal rm_cycles" in output.getvalue()
        assert "switched from version 2 to version 4" in output.getvalue()


async def test_a_version_that_cannot_catch_up_in_time_is_left_verified_for_switch(
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
    # the served version claims offsets far ahead on one partition: version 2 can never reach them
    partition = await db_pool.fetchval(
        "SELECT min(partition) FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2",
        group_id,
        records_topic,
    )
    await db_pool.execute(
        "UPDATE consumer_offsets SET next_offset = next_offset + 1000000"
        " WHERE consumer_group = $1 AND topic = $2 AND partition = $3",
        group_id,
        records_topic,
        partition,
    )
    output = io.StringIO()
    code = await rebuild.rebuild(settings, yes=True, catch_up_s=1.0, console=_console(output))
    printed = output.getvalue()
    assert code == rebuild.EXIT_FAILED, printed
    last = printed.rstrip().splitlines()[-1]
    assert last == (
        "rebuild failed: version 2 did not catch up within 1 s (1,000,000 offsets behind version 1 on "
        f"partition(s) {partition}); version 2 is verified and not served: `python -m projections switch 2` "
        "serves it"
    )
    assert await served(db_pool) == 1 and (await version(db_pool, 2)).state == "verified"
