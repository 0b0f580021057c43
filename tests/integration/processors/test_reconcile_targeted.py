"""Targeted reconciliation against the real simulator, Kafka and PostgreSQL: a complete member costs no
read, each kind of gap costs the read that fills it, and the slow sweep still reaches every member."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import orjson
import pytest

from infra.kafka import make_producer
from infra.settings import KafkaSettings, PostgresSettings
from ingest.payload import WhoopWebhook, parse_webhook, to_record
from schemas.identity import user_id_for_whoop_member
from simulator.signing import webhook_body
from tests.conftest import TopicFactory
from tests.integration.processors.fetcher_harness import Harness, eventually, harness

pytestmark = pytest.mark.integration

NEVER_SWEEP = 10.0**8  # the full sweep's period: no member is swept during a test
CHECKS: dict[str, Any] = {
    "reconcile_scan_s": 0.1,
    "reconcile_check_s": 0.1,
    "reconcile_recovery_grace_s": 0.5,
    "reconcile_silent_after_s": 3600.0,
    "reconcile_retry_s": 3600.0,
    "reconcile_interval_s": NEVER_SWEEP,
}


@pytest.fixture
async def world(
    kafka_settings: KafkaSettings,
    postgres_settings: PostgresSettings,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    topic_factory: TopicFactory,
    group_id: str,
) -> AsyncIterator[Harness]:
    async with harness(kafka_settings, postgres_settings, db_pool, pg_schema, topic_factory, group_id) as w:
        yield w


async def _deliver(world: Harness, member: int, event_type: str, resource_id: str) -> None:
    """One webhook WHOOP did deliver, appended as the edge appends it (the others were dropped)."""
    parsed = parse_webhook(webhook_body(member, resource_id, event_type, str(uuid.uuid4())))
    assert isinstance(parsed, WhoopWebhook)
    key, value = to_record(parsed, timestamp_ms=0, now=world.clock.now())
    producer = make_producer(world.kafka, "test-edge-by-hand")
    await producer.start()
    try:
        await producer.send_and_wait(world.topics.webhooks, key=key, value=value)
    finally:
        await producer.stop()


async def _checks_ran(world: Harness, user_id: str, times: int) -> None:
    """Wait until the member's gaps were looked for ``times`` more times."""
    seen: list[Any] = []

    async def advanced() -> bool:
        value = await world.pool.fetchval(
            "SELECT next_check_at FROM fetcher_reconciliations WHERE user_id = $1", user_id
        )
        if value is not None and (not seen or value > seen[-1]):
            seen.append(value)
        return len(seen) > times

    await eventually(advanced, f"{times} reconciliation checks", timeout_s=30)


async def _quiet(world: Harness) -> int:
    """Wait until no work row is left; the data calls so far."""
    await world.settle()
    await eventually(world.drained, "the work queue drained")
    return await world.data_calls()


async def _targeted_reads(world: Harness, user_id: str) -> int:
    value: int = await world.pool.fetchval(
        "SELECT targeted_reads FROM fetcher_reconciliations WHERE user_id = $1", user_id
    )
    return value


async def test_a_complete_member_costs_no_read(world: Harness) -> None:
    member = (await world.members())[0]
    user_id = await world.connect(member)
    await world.start_fetcher()  # the webhook path alone
    async with world.documents_reader() as docs:
        sleep = (await world.scenario("new-sleep", user_id=member, scoring="scored"))["record"]
        workout = (await world.scenario("new-workout", user_id=member, scoring="scored"))["record"]
        await docs.wait_for(lambda: docs.latest("recovery", sleep["cycle_id"]) is not None, "the recovery")
        await docs.wait_for(lambda: docs.latest("workout", workout["id"]) is not None, "the workout")
        await docs.wait_for(lambda: docs.latest("cycle", sleep["cycle_id"]) is not None, "the new cycle")
        calls = await _quiet(world)
        await world.stop_fetchers()
        await world.start_fetcher(reconcile=True, **CHECKS)
        await _checks_ran(world, user_id, 3)
        assert await world.data_calls() == calls  # the day is complete: not one read
        assert await _targeted_reads(world, user_id) == 0


async def test_a_missed_recovery_webhook_costs_one_read(world: Harness) -> None:
    member = (await world.members())[0]
    user_id = await world.connect(member)
    await world.switches(drop_rate=1.0)
    await world.start_fetcher()
    async with world.documents_reader() as docs:
        sleep = (await world.scenario("new-sleep", user_id=member, scoring="scored"))["record"]
        await world.settle()
        await _deliver(world, member, "sleep.updated", sleep["id"])  # recovery.updated was lost
        await docs.wait_for(lambda: docs.latest("cycle", sleep["cycle_id"]) is not None, "sleep and cycles")
        calls = await _quiet(world)
        assert docs.latest("recovery", sleep["cycle_id"]) is None
        await world.stop_fetchers()
        await world.start_fetcher(reconcile=True, **CHECKS)
        await docs.wait_for(lambda: docs.latest("recovery", sleep["cycle_id"]) is not None, "the recovery")
        recovery = docs.latest("recovery", sleep["cycle_id"])
        assert recovery is not None and recovery.context["sleep_id"] == sleep["id"]
        assert not recovery.caused_by  # reconciliation's, not a webhook's
        await _checks_ran(world, user_id, 3)
        assert await world.data_calls() - calls == 1  # the recovery, through the sleep -> cycle link
        assert await _targeted_reads(world, user_id) == 1


async def test_a_sleep_left_pending_after_the_re_fetches_gave_up_reads_the_sleep_and_recovery(
    world: Harness,
) -> None:
    member = (await world.members())[0]
    user_id = await world.connect(member)
    await world.switches(drop_rate=1.0)
    await world.start_fetcher(pending_backoff_s=(0.2, 0.2))
    async with world.documents_reader() as docs:
        sleep = (await world.scenario("new-sleep", user_id=member, scoring="pending"))["record"]
        await world.settle()
        await _deliver(world, member, "sleep.updated", sleep["id"])
        await docs.wait_for(lambda: docs.latest("sleep", sleep["id"]) is not None, "the pending sleep")
        await _quiet(world)  # the re-fetches found it pending and gave up
        # WHOOP scores it later; both webhooks of the scoring are lost
        await world.scenario("complete-scoring", kind="sleep", id=sleep["id"], outcome="SCORED")
        calls = await _quiet(world)
        await world.stop_fetchers()
        await world.start_fetcher(reconcile=True, **CHECKS)

        def scored() -> bool:
            doc = docs.latest("sleep", sleep["id"])
            return doc is not None and doc.document is not None and doc.document["score_state"] == "SCORED"

        await docs.wait_for(scored, "the scored sleep")
        await docs.wait_for(lambda: docs.latest("recovery", sleep["cycle_id"]) is not None, "the recovery")
        await _quiet(world)
        await _checks_ran(world, user_id, 3)
        assert await world.data_calls() - calls == 2  # the sleep, then its recovery
        assert await _targeted_reads(world, user_id) == 1


async def test_a_recovery_whose_sleep_was_never_fetched_reads_the_sleep(world: Harness) -> None:
    member = (await world.members())[0]
    user_id = await world.connect(member)
    await world.switches(drop_rate=1.0)
    await world.start_fetcher()
    async with world.documents_reader() as docs:
        sleep = (await world.scenario("new-sleep", user_id=member, scoring="scored"))["record"]
        await world.settle()
        now = world.clock.now()
        # only the recovery collection was pulled: the recoveries are held, their sleeps never fetched
        await world.request_backfill(user_id, "job-1", now - timedelta(days=1), now, ("recovery",))
        await docs.wait_for(lambda: docs.latest("recovery", sleep["cycle_id"]) is not None, "the recovery")
        calls = await _quiet(world)
        orphans = await world.pool.fetchval(
            "SELECT count(*) FROM fetcher_sleep_cycles WHERE user_id = $1 AND sleep_start IS NULL", user_id
        )
        assert orphans >= 1 and docs.latest("sleep", sleep["id"]) is None
        await world.stop_fetchers()
        await world.start_fetcher(reconcile=True, **CHECKS)
        await docs.wait_for(lambda: docs.latest("sleep", sleep["id"]) is not None, "the sleep")
        await docs.wait_for(lambda: docs.latest("cycle", sleep["cycle_id"]) is not None, "its cycles")
        await _quiet(world)
        await _checks_ran(world, user_id, 2)
        assert await world.data_calls() - calls == 2 * orphans  # per sleep: the sleep, its two cycles
        assert await _targeted_reads(world, user_id) == orphans


async def test_a_day_without_any_webhook_reads_the_collections_once(world: Harness) -> None:
    member = (await world.members())[0]
    user_id = await world.connect(member)
    await world.switches(drop_rate=1.0)
    async with world.documents_reader() as docs:
        sleep = (await world.scenario("new-sleep", user_id=member, scoring="scored"))["record"]
        workout = (await world.scenario("new-workout", user_id=member, scoring="scored"))["record"]
        await world.settle()
        # the fetcher has watched this member for two hours without a single main sleep
        await world.pool.execute(
            "INSERT INTO fetcher_reconciliations (user_id, next_due_at, watched_since) VALUES ($1, $2, $3)",
            user_id,
            world.clock.now() + timedelta(days=365),
            world.clock.now() - timedelta(hours=2),
        )
        calls = await world.data_calls()
        await world.start_fetcher(reconcile=True, **CHECKS)
        await docs.wait_for(lambda: docs.latest("workout", workout["id"]) is not None, "the workout")
        await docs.wait_for(lambda: docs.latest("sleep", sleep["id"]) is not None, "the sleep")
        await docs.wait_for(lambda: docs.latest("recovery", sleep["cycle_id"]) is not None, "the recovery")
        await docs.wait_for(lambda: docs.latest("cycle", sleep["cycle_id"]) is not None, "the new cycle")
        spent = await _quiet(world) - calls
        await _checks_ran(world, user_id, 3)
        assert await world.data_calls() - calls == spent  # found: not read again
        marks = await world.pool.fetchval(
            "SELECT checks FROM fetcher_reconciliations WHERE user_id = $1", user_id
        )
        assert "silent" in orjson.loads(marks)
        runs = await world.pool.fetchval(
            "SELECT runs FROM fetcher_reconciliations WHERE user_id = $1", user_id
        )
        assert runs == 0  # a targeted read, not the sweep
        # one page of sleeps and one of workouts, then per main sleep found its recovery and its cycles
        mains = sum(1 for d in docs.documents() if d.resource_type == "recovery")
        assert spent == 2 + 2 * mains, (spent, mains)


async def test_the_sweep_still_reaches_every_member_over_its_period(world: Harness) -> None:
    members = await world.members()
    users = [await world.connect(m) for m in members]
    period = 4.0
    began = world.clock.now()
    await world.start_fetcher(reconcile=True, **{**CHECKS, "reconcile_interval_s": period})

    first: dict[str, Any] = {}  # user -> when their first sweep started

    async def everyone_swept() -> bool:
        rows = await world.pool.fetch(
            "SELECT user_id, last_started_at, next_due_at FROM fetcher_reconciliations "
            "WHERE last_started_at IS NOT NULL AND user_id = ANY($1)",
            users,
        )
        for r in rows:
            first.setdefault(r["user_id"], (r["last_started_at"], r["next_due_at"]))
        return len(first) == len(users)

    await eventually(everyone_swept, "every member swept once", timeout_s=period + 20)
    # the first sweeps were spread over the period, and the next ones are a period later
    slack = timedelta(seconds=1)
    assert all(began <= started <= began + timedelta(seconds=period) + slack for started, _ in first.values())
    assert all(due - started == timedelta(seconds=period) for started, due in first.values())
    assert len({started for started, _ in first.values()}) == len(users)
    assert set(users) == {user_id_for_whoop_member(m) for m in members}
