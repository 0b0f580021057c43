"""Targeted reconciliation against the real simulator, Kafka and PostgreSQL: a complete member costs no
read, each kind of gap costs the read that fills it, and the slow sweep still reaches every member."""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
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
    planned: dict[str, Any] = {}  # user -> when their first sweep was due, where seen before it ran

    async def everyone_swept() -> bool:
        rows = await world.pool.fetch(
            "SELECT user_id, last_started_at, next_due_at, watched_since FROM fetcher_reconciliations "
            "WHERE user_id = ANY($1)",
            users,
        )
        for r in rows:
            if r["last_started_at"] is None:
                planned.setdefault(r["user_id"], (r["next_due_at"], r["watched_since"]))
            else:
                first.setdefault(r["user_id"], (r["last_started_at"], r["next_due_at"], r["watched_since"]))
        return len(first) == len(users)

    await eventually(everyone_swept, "every member swept once", timeout_s=period + 40)
    # the first sweeps were planned spread over the period, counted from the scan that enrolled them
    # (not from the fetcher's start); a sweep starts at the first scan after it is due, which on a
    # loaded machine can come seconds late, so the start is bounded loosely and the plan exactly
    period_td = timedelta(seconds=period)
    for user, (due, enrolled) in planned.items():
        assert began <= enrolled <= due <= enrolled + period_td, (due, enrolled)
        assert first[user][0] >= due
    slack = timedelta(seconds=15)
    assert all(
        began <= enrolled <= started <= enrolled + period_td + slack
        for started, _, enrolled in first.values()
    )
    assert all(due - started == timedelta(seconds=period) for started, due, _ in first.values())
    assert len({started for started, _, _ in first.values()}) == len(users)
    assert set(users) == {user_id_for_whoop_member(m) for m in members}


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _plant(
    world: Harness,
    user_id: str,
    resource_type: str,
    resource_id: str,
    *,
    record_start: datetime | None = None,
    record_end: datetime | None = None,
    strain: float | None = None,
    nap_need_ms: int | None = None,
) -> None:
    """A row the fetcher would have written for a scored document it fetched (what a check reads)."""
    await world.pool.execute(
        """
        INSERT INTO fetcher_resources (user_id, resource_type, resource_id, whoop_updated_at, score_state,
            fetched_at, record_start, record_end, strain, nap_need_ms)
        VALUES ($1, $2, $3, $4, 'SCORED', $4, $5, $6, $7, $8)
        """,
        user_id,
        resource_type,
        resource_id,
        world.clock.now(),
        record_start,
        record_end,
        strain,
        nap_need_ms,
    )


async def _watched_for(world: Harness, user_id: str, hours: float) -> None:
    """The fetcher has watched the member for ``hours`` (its sweep far ahead)."""
    await world.pool.execute(
        "INSERT INTO fetcher_reconciliations (user_id, next_due_at, watched_since) VALUES ($1, $2, $3)",
        user_id,
        world.clock.now() + timedelta(days=365),
        world.clock.now() - timedelta(hours=hours),
    )


DAY_CHECKS = {**CHECKS, "reconcile_silent_after_s": 86_400.0}  # the member is not silent: no day read


async def test_a_fetched_document_keeps_what_the_day_checks_read(world: Harness) -> None:
    member = (await world.members())[0]
    user_id = await world.connect(member)
    await world.start_fetcher()
    async with world.documents_reader() as docs:
        workout = (await world.scenario("new-workout", user_id=member, scoring="scored"))["record"]
        nap = (await world.scenario("new-sleep", user_id=member, nap=True, scoring="scored"))["record"]
        sleep = (await world.scenario("new-sleep", user_id=member, scoring="scored"))["record"]
        await docs.wait_for(lambda: docs.latest("workout", workout["id"]) is not None, "the workout")
        await docs.wait_for(lambda: docs.latest("sleep", nap["id"]) is not None, "the nap")
        await docs.wait_for(lambda: docs.latest("recovery", sleep["cycle_id"]) is not None, "the recovery")
        await docs.wait_for(
            lambda: any(
                d.resource_type == "cycle" and d.document and d.document["end"] for d in docs.documents()
            ),
            "the closed cycle",
        )
        await _quiet(world)
    rows = {
        (r["resource_type"], r["resource_id"]): r
        for r in await world.pool.fetch(
            "SELECT resource_type, resource_id, strain, nap_need_ms FROM fetcher_resources "
            "WHERE user_id = $1",
            user_id,
        )
    }
    closed = [d for d in docs.documents() if d.resource_type == "cycle" and d.document and d.document["end"]]
    cycle: dict[str, Any] = dict(closed[-1].document or {})
    assert rows[("cycle", str(cycle["id"]))]["strain"] == pytest.approx(cycle["score"]["strain"])
    assert rows[("workout", workout["id"])]["strain"] == pytest.approx(workout["score"]["strain"])
    main = docs.latest("sleep", sleep["id"])
    assert main is not None and main.document is not None
    main_doc: dict[str, Any] = dict(main.document)
    need = main_doc["score"]["sleep_needed"]["need_from_recent_nap_milli"]
    assert need < 0  # the nap of the cycle this sleep closed
    assert rows[("sleep", sleep["id"])]["nap_need_ms"] == need
    assert rows[("sleep", nap["id"])]["nap_need_ms"] == 0


async def test_a_cycle_its_known_workouts_do_not_explain_reads_the_workouts_over_it(world: Harness) -> None:
    member = (await world.members())[0]
    user_id = await world.connect(member)
    await world.switches(drop_rate=1.0)
    async with world.documents_reader() as docs:
        workout = (await world.scenario("new-workout", user_id=member, scoring="scored"))["record"]
        await world.settle()  # its only webhook was dropped
        start, end = _instant(workout["start"]), _instant(workout["end"])
        # the cycle the next morning's sleep closed, as fetched: far more strain than no workout explains
        await _plant(
            world,
            user_id,
            "cycle",
            "4242",
            record_start=start - timedelta(hours=2),
            record_end=end + timedelta(minutes=1),
            strain=19.5,
        )
        await _watched_for(world, user_id, hours=6)
        calls = await world.data_calls()
        await world.start_fetcher(reconcile=True, **DAY_CHECKS)
        await docs.wait_for(lambda: docs.latest("workout", workout["id"]) is not None, "the lost workout")
        await _quiet(world)
        await _checks_ran(world, user_id, 3)
        assert await world.data_calls() - calls == 1  # one page of the workout collection over the cycle
        assert await _targeted_reads(world, user_id) == 1  # found: the cycle is explained, not read again
        marks = orjson.loads(
            await world.pool.fetchval(
                "SELECT checks FROM fetcher_reconciliations WHERE user_id = $1", user_id
            )
        )
        assert "workout:4242" in marks


async def test_a_read_that_finds_nothing_is_counted_as_a_false_read(world: Harness) -> None:
    member = (await world.members())[0]
    user_id = await world.connect(member)
    now = world.clock.now()  # after the simulator's history: no workout at WHOOP from here on
    # a closed cycle with a heavy day's strain and no workout in it at WHOOP
    await _plant(
        world, user_id, "cycle", "4244", record_start=now, record_end=now + timedelta(seconds=1), strain=19.5
    )
    await _watched_for(world, user_id, hours=6)
    calls = await world.data_calls()
    await world.start_fetcher(reconcile=True, **DAY_CHECKS)
    await _checks_ran(world, user_id, 3)
    await _quiet(world)
    assert await world.data_calls() - calls == 1  # the page over the cycle, once
    row = await world.pool.fetchrow(
        "SELECT targeted_reads, targeted_empty FROM fetcher_reconciliations WHERE user_id = $1", user_id
    )
    assert row is not None and (row["targeted_reads"], row["targeted_empty"]) == (1, 1)


async def test_a_sleep_whose_need_counts_a_nap_we_never_saw_reads_the_sleeps_before_it(
    world: Harness,
) -> None:
    member = (await world.members())[0]
    user_id = await world.connect(member)
    await world.switches(drop_rate=1.0)
    async with world.documents_reader() as docs:
        nap = (await world.scenario("new-sleep", user_id=member, nap=True, scoring="scored"))["record"]
        await world.settle()  # its webhooks were dropped
        nap_start, nap_end = _instant(nap["start"]), _instant(nap["end"])
        # held: the main sleep before the nap (its link only) and the one after it, whose need counts a nap
        await world.pool.execute(
            "INSERT INTO fetcher_sleep_cycles (user_id, sleep_id, cycle_id, nap, sleep_start, sleep_end) "
            "VALUES ($1, 'before', 1, false, $2, $3), ($1, 'after', 2, false, $4, $5)",
            user_id,
            nap_start - timedelta(hours=10),
            nap_start - timedelta(hours=2),
            nap_end + timedelta(seconds=30),
            world.clock.now(),
        )
        await _plant(world, user_id, "sleep", "after", nap_need_ms=-900_000)
        await _plant(world, user_id, "recovery", "2")
        await _watched_for(world, user_id, hours=6)
        await world.start_fetcher(reconcile=True, **DAY_CHECKS)
        await docs.wait_for(lambda: docs.latest("sleep", nap["id"]) is not None, "the lost nap")
        await _quiet(world)
        await _checks_ran(world, user_id, 3)
        assert await _targeted_reads(world, user_id) == 1  # found: the need is explained, not read again
        marks = orjson.loads(
            await world.pool.fetchval(
                "SELECT checks FROM fetcher_reconciliations WHERE user_id = $1", user_id
            )
        )
        assert "nap:after" in marks


async def test_a_cycle_over_explained_by_a_deleted_workout_reads_the_workouts_and_deletes_it(
    world: Harness,
) -> None:
    member = (await world.members())[0]
    user_id = await world.connect(member)
    await world.switches(drop_rate=1.0)  # the fetcher holds the workout below as if its webhook came
    async with world.documents_reader() as docs:
        workout = (await world.scenario("new-workout", user_id=member, scoring="scored"))["record"]
        start, end = _instant(workout["start"]), _instant(workout["end"])
        # held as fetched then; the member deletes it and that webhook is dropped
        await _plant(
            world, user_id, "workout", workout["id"], record_start=start, record_end=end, strain=14.0
        )
        await world.pool.execute(
            "UPDATE fetcher_resources SET fetched_at = $2 WHERE user_id = $1", user_id, end
        )
        await world.scenario("delete", kind="workout", id=workout["id"])
        await world.settle()
        deleted_at = world.clock.now()
        # the cycle the next morning's sleep closed, as fetched: rescored without the workout (a resting
        # day's load for its length), below what the workout we hold explains
        cycle_start = start - timedelta(hours=2)
        rest = 60.0 * (deleted_at - cycle_start).total_seconds() / 86_400.0
        await _plant(
            world,
            user_id,
            "cycle",
            "4243",
            record_start=cycle_start,
            record_end=deleted_at,
            strain=21.0 * (1.0 - math.exp(-rest / 150.0)),
        )
        await _watched_for(world, user_id, hours=6)
        calls = await world.data_calls()
        await world.start_fetcher(reconcile=True, **DAY_CHECKS)
        await docs.wait_for(
            lambda: (d := docs.latest("workout", workout["id"])) is not None and d.deleted,
            "the lost deletion",
        )
        await _quiet(world)
        await _checks_ran(world, user_id, 3)
        assert world.clock.now() - deleted_at < timedelta(hours=24)
        assert await world.data_calls() - calls == 1  # one page of the workout collection over the cycle
        row = await world.pool.fetchrow(
            "SELECT targeted_reads, targeted_empty, checks FROM fetcher_reconciliations WHERE user_id = $1",
            user_id,
        )
        assert row is not None
        assert (row["targeted_reads"], row["targeted_empty"]) == (1, 0)  # found: not read again
        assert "deleted:4243" in orjson.loads(row["checks"])
        gone = await world.pool.fetchval(
            "SELECT deleted_at IS NOT NULL FROM fetcher_resources "
            "WHERE user_id = $1 AND resource_type = 'workout' AND resource_id = $2",
            user_id,
            workout["id"],
        )
        assert gone
