"""Late scoring and not-yet-visible resources: re-fetched on the fetcher's own schedule, no webhook needed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from infra.settings import KafkaSettings, PostgresSettings
from tests.conftest import TopicFactory
from tests.integration.processors.fetcher_harness import DocumentsReader, Harness, eventually, harness


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


def _state(docs: DocumentsReader, resource_type: str, resource_id: str | int) -> str | None:
    doc = docs.latest(resource_type, resource_id)
    return None if doc is None or doc.document is None else str(doc.document["score_state"])


async def test_pending_scores_are_refetched_with_back_off_without_a_second_webhook(world: Harness) -> None:
    member = (await world.members())[0]
    await world.connect(member)
    await world.start_fetcher(pending_backoff_s=(1.0, 1.0, 2.0, 4.0))
    async with world.documents_reader() as docs:
        sleep = (await world.scenario("new-sleep", user_id=member, scoring="pending"))["record"]
        workout = (await world.scenario("new-workout", user_id=member, scoring="pending"))["record"]
        await docs.wait_for(
            lambda: _state(docs, "sleep", sleep["id"]) == "PENDING_SCORE", "the pending sleep"
        )
        await docs.wait_for(
            lambda: _state(docs, "workout", workout["id"]) == "PENDING_SCORE", "the pending workout"
        )
        # WHOOP scores both, but its webhooks never arrive
        await world.settle()
        await world.switches(enabled=False)
        await world.scenario("complete-scoring", kind="sleep", id=sleep["id"], outcome="SCORED")
        await world.scenario("complete-scoring", kind="workout", id=workout["id"], outcome="SCORED")
        await docs.wait_for(lambda: _state(docs, "sleep", sleep["id"]) == "SCORED", "the scored sleep")
        await docs.wait_for(lambda: _state(docs, "workout", workout["id"]) == "SCORED", "the scored workout")
        await docs.wait_for(
            lambda: _state(docs, "recovery", sleep["cycle_id"]) == "SCORED",
            "the recovery, scored with its sleep",
        )
        await eventually(world.drained, "no re-fetch left once everything is scored")
        # one document per version: pending, then scored (re-fetches of an unchanged pending add nothing)
        assert [_d.document["score_state"] for _d in docs.of("sleep", sleep["id"]) if _d.document] == [
            "PENDING_SCORE",
            "SCORED",
        ]


async def test_a_404_on_updated_is_retried_then_treated_as_gone(world: Harness) -> None:
    member = (await world.members())[1]
    await world.connect(member)
    await world.start_fetcher(not_found_backoff_s=(0.5, 0.5))
    ghost = str(uuid.uuid4())
    async with world.documents_reader() as docs:
        before = await world.data_calls()
        response = await world.http.post(
            "/_sim/webhooks/send", json={"user_id": member, "type": "workout.updated", "id": ghost}
        )
        assert response.status_code == 202
        await docs.wait_for(lambda: docs.latest("workout", ghost) is not None, "the workout counted as gone")
        gone = docs.latest("workout", ghost)
        assert gone is not None and gone.deleted
        assert await world.data_calls() - before == 3  # the first GET and two retries


async def test_a_resource_that_appears_after_a_404_is_fetched(world: Harness) -> None:
    """WHOOP may notify before a by-id GET sees the record (§12.4): the retry finds it."""
    member = (await world.members())[2]
    await world.connect(member)
    await world.start_fetcher(not_found_backoff_s=(1.0, 1.0, 1.0))
    async with world.documents_reader() as docs:
        await world.switches(enabled=False)
        workout = (await world.scenario("new-workout", user_id=member, scoring="scored"))["record"]
        await world.scenario(
            "delete", kind="workout", id=workout["id"]
        )  # not visible yet, as far as GET goes
        await world.switches(enabled=True)
        response = await world.http.post(
            "/_sim/webhooks/send", json={"user_id": member, "type": "workout.updated", "id": workout["id"]}
        )
        assert response.status_code == 202
        await eventually(lambda: world.forwarded >= 1, "the webhook forwarded")
        await eventually(world.has_task, "the 404 retry scheduled")
        world.sim.store.put_workout(workout)  # the record becomes visible (the simulator's store, poked)
        await docs.wait_for(lambda: docs.latest("workout", workout["id"]) is not None, "the workout")
        doc = docs.latest("workout", workout["id"])
        assert doc is not None and not doc.deleted and doc.document == workout
