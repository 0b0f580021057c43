"""WHOOP's imperfect webhooks: duplicated and reordered ones cost one call per resource; dropped ones are
found by the periodic reconciliation."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from infra.settings import KafkaSettings, PostgresSettings
from schemas.identity import user_id_for_whoop_member
from tests.conftest import TopicFactory
from tests.integration.processors.fetcher_harness import Harness, eventually, harness


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


async def test_duplicated_and_reordered_webhooks_cost_one_call_per_resource(world: Harness) -> None:
    members = await world.members()
    for member in members:
        await world.connect(member)
    fetcher = await world.start_fetcher()
    await world.switches(duplicate_rate=1.0, reorder=True)
    async with world.documents_reader() as docs:
        before = await world.data_calls()
        workouts, sleeps = [], []
        for member in members:
            workouts.append((await world.scenario("new-workout", user_id=member, scoring="scored"))["record"])
            sleeps.append((await world.scenario("new-sleep", user_id=member, scoring="scored"))["record"])
        await world.settle()
        stats = (await world.http.get("/_sim/webhooks")).json()["stats"]
        # every event twice: 3 members x (workout.updated + sleep.updated x2 + recovery.updated)
        assert stats["duplicated"] == 3 * 4
        await eventually(
            lambda: fetcher.intake.handled == world.forwarded == 3 * 4 * 2, "every webhook handled"
        )
        await eventually(world.drained, "the work done")
        for workout in workouts:
            assert docs.latest("workout", workout["id"]) is not None
        for sleep in sleeps:
            recovery = docs.latest("recovery", sleep["cycle_id"])
            assert recovery is not None and recovery.document is not None
            assert recovery.document["score_state"] == "SCORED"
        # the naive recipe: one GET per workout, two per recovery, one per sleep event, for every delivery
        naive = 2 * (1 + 2 + 2) * len(members)
        spent = await world.data_calls() - before
        # per member: the workout, the sleep (pending, then scored: merged or refetched), its two cycles
        # (one call) and the recovery; duplicates and reorders add nothing
        # (measured: exactly 4 per member; a sleep.updated received after its fetch started may cost one more)
        assert spent <= 5 * len(members), spent
        assert spent < naive / 2


async def test_dropped_webhooks_are_recovered_by_reconciliation(world: Harness) -> None:
    member = (await world.members())[0]
    user_id = user_id_for_whoop_member(member)
    await world.connect(member)
    await world.switches(drop_rate=1.0)
    async with world.documents_reader() as docs:
        workout = (await world.scenario("new-workout", user_id=member, scoring="scored"))["record"]
        sleep = (await world.scenario("new-sleep", user_id=member, scoring="scored"))["record"]
        await world.settle()
        assert (await world.http.get("/_sim/webhooks")).json()["stats"]["dropped"] == 4
        # a member's first sweep is spread over one interval; this one is due now. The lookback covers
        # the history too: the sweep also appends what was never fetched.
        await world.pool.execute(
            "INSERT INTO fetcher_reconciliations (user_id, next_due_at) VALUES ($1, now() - interval '1 s')",
            user_id,
        )
        await world.start_fetcher(reconcile=True, reconcile_interval_s=3600, reconcile_lookback_s=2 * 86_400)
        await docs.wait_for(lambda: docs.latest("workout", workout["id"]) is not None, "the missed workout")
        await docs.wait_for(lambda: docs.latest("sleep", sleep["id"]) is not None, "the missed sleep")
        await docs.wait_for(
            lambda: docs.latest("recovery", sleep["cycle_id"]) is not None, "the missed recovery"
        )
        await docs.wait_for(lambda: docs.latest("cycle", sleep["cycle_id"]) is not None, "the new cycle")
        recovery = docs.latest("recovery", sleep["cycle_id"])
        assert recovery is not None and recovery.context["sleep_id"] == sleep["id"]

        async def swept() -> bool:
            row = await world.pool.fetchrow(
                "SELECT last_finished_at FROM fetcher_reconciliations WHERE user_id = $1",
                user_id,
            )
            return row is not None and row["last_finished_at"] is not None

        await eventually(swept, "the sweep recorded")
        row = await world.pool.fetchrow(
            "SELECT last_calls, last_published, next_due_at FROM fetcher_reconciliations WHERE user_id = $1",
            user_id,
        )
        assert row is not None
        assert row["last_calls"] == 2  # one page of sleeps, one of workouts
        assert row["last_published"] >= 2
        count = len(docs.documents())
        # a second sweep over the same range appends nothing: everything is known
        await world.pool.execute("UPDATE fetcher_reconciliations SET next_due_at = now() - interval '1 s'")
        await eventually(lambda: _runs(world, user_id), "the second sweep", timeout_s=30)
        assert len(docs.documents()) == count


async def test_a_lost_deletion_webhook_is_found_by_reconciliation(world: Harness) -> None:
    member = (await world.members())[1]
    user_id = user_id_for_whoop_member(member)
    await world.connect(member)
    await world.start_fetcher(reconcile=True, reconcile_interval_s=3600, reconcile_lookback_s=86_400)
    async with world.documents_reader() as docs:
        workout = (await world.scenario("new-workout", user_id=member, scoring="scored"))["record"]
        sleep = (await world.scenario("new-sleep", user_id=member, scoring="scored"))["record"]
        await docs.wait_for(lambda: docs.latest("recovery", sleep["cycle_id"]) is not None, "the recovery")
        await docs.wait_for(lambda: docs.latest("workout", workout["id"]) is not None, "the workout")
        await world.settle()
        await world.switches(drop_rate=1.0)  # the deletions' webhooks are lost
        await world.scenario("delete", kind="workout", id=workout["id"])
        await world.scenario("delete", kind="sleep", id=sleep["id"])
        await world.settle()
        assert (await world.http.get("/_sim/webhooks")).json()["stats"]["dropped"] == 3
        await world.pool.execute(
            "INSERT INTO fetcher_reconciliations (user_id, next_due_at) VALUES ($1, now() - interval '1 s') "
            "ON CONFLICT (user_id) DO UPDATE SET next_due_at = EXCLUDED.next_due_at",
            user_id,
        )

        def deleted(resource_type: str, resource_id: str | int) -> bool:
            doc = docs.latest(resource_type, resource_id)
            return doc is not None and doc.deleted

        await docs.wait_for(lambda: deleted("workout", workout["id"]), "the workout's deletion")
        await docs.wait_for(lambda: deleted("sleep", sleep["id"]), "the sleep's deletion")
        await docs.wait_for(lambda: deleted("recovery", sleep["cycle_id"]), "its recovery's deletion")
        # what is still there was not deleted
        others = [d for d in docs.documents() if d.resource_type == "cycle"]
        assert others and not any(d.deleted for d in others)


async def _runs(world: Harness, user_id: str) -> bool:
    runs: int = await world.pool.fetchval(
        "SELECT runs FROM fetcher_reconciliations WHERE user_id = $1", user_id
    )
    return runs >= 2
