"""Every WHOOP event type end to end: simulator webhook → whoop.webhooks.v1 → fetcher → whoop.documents.v1.

The simulator is WHOOP on a real socket, Kafka and PostgreSQL are real; the fetcher runs in the
test's loop. Each test makes a change with the simulator's scenario API (which sends the webhooks
WHOOP would), then waits for the documents, and checks what it cost with the simulator's own
request counter.
"""

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


async def test_a_new_workout_and_a_new_scored_sleep_become_documents(world: Harness) -> None:
    member = (await world.members())[0]
    user_id = await world.connect(member)
    # every live fetch waits the whole window, so that the call count below does not depend on how far
    # apart a loaded machine delivers the change's two webhooks (the 0.05 s idle wait can split them)
    await world.start_fetcher(coalesce_idle_s=0.25, coalesce_window_s=0.25)
    async with world.documents_reader() as docs:
        workout = (await world.scenario("new-workout", user_id=member, scoring="scored"))["record"]
        await docs.wait_for(lambda: docs.latest("workout", workout["id"]) is not None, "the workout document")
        doc = docs.latest("workout", workout["id"])
        assert doc is not None and doc.document == workout and not doc.deleted
        assert doc.user_id == user_id and doc.whoop_user_id == member
        assert doc.caused_by and doc.source == "fetcher"

        before = await world.data_calls()
        sleep = (await world.scenario("new-sleep", user_id=member, scoring="scored"))["record"]
        cycle_id = sleep["cycle_id"]

        def recovery_scored() -> bool:
            rec = docs.latest("recovery", cycle_id)
            return rec is not None and rec.document is not None and rec.document["score_state"] == "SCORED"

        await docs.wait_for(recovery_scored, "the recovery document")
        await docs.wait_for(lambda: len(docs.of("cycle", cycle_id)) > 0, "the new cycle")
        recovery = docs.latest("recovery", cycle_id)
        assert recovery is not None and recovery.document is not None
        assert recovery.document["sleep_id"] == sleep["id"]
        stored_sleep = docs.latest("sleep", sleep["id"])
        assert stored_sleep is not None and stored_sleep.document is not None
        assert stored_sleep.document["score_state"] == "SCORED"
        # the recovery is dated by its sleep: the fetcher hands the sleep's end and offset along
        assert recovery.context == {
            "sleep_id": sleep["id"],
            "sleep_end": stored_sleep.document["end"],
            "sleep_timezone_offset": stored_sleep.document["timezone_offset"],
        }
        # the cycle the sleep closed and the one it opened came with one collection call
        previous = [
            d for d in docs.documents() if d.resource_type == "cycle" and d.resource_id != str(cycle_id)
        ]
        assert previous and previous[-1].document is not None
        assert previous[-1].document["end"] == sleep["start"]
        # sleep.updated + recovery.updated of one change: sleep, cycles, recovery = 3 calls, 4 documents
        await world.settle()
        assert await world.data_calls() - before == 3
        await docs.wait_until(lambda: True, "")
        keys = {k for k in docs.keys}
        assert f"{user_id}:recovery:{cycle_id}".encode() in keys


async def test_recovery_updated_alone_costs_one_call_when_the_sleep_is_known(world: Harness) -> None:
    member = (await world.members())[1]
    await world.connect(member)
    fetcher = await world.start_fetcher()
    async with world.documents_reader() as docs:
        sleep = (await world.scenario("new-sleep", user_id=member, scoring="scored"))["record"]
        await docs.wait_for(lambda: docs.latest("recovery", sleep["cycle_id"]) is not None, "the recovery")
        await world.settle()
        await eventually(lambda: world.forwarded == fetcher.intake.handled, "the webhooks handled")
        await eventually(world.drained, "the work done")
        before, handled = await world.data_calls(), fetcher.intake.handled
        count = len(docs.of("recovery", sleep["cycle_id"]))
        response = await world.http.post(
            "/_sim/webhooks/send", json={"user_id": member, "type": "recovery.updated", "id": sleep["id"]}
        )
        assert response.status_code == 202
        await eventually(lambda: fetcher.intake.handled > handled, "the webhook handled")
        await eventually(world.drained, "the recovery work done")
        assert await world.data_calls() - before == 1  # GET /v2/cycle/{id}/recovery only
        assert len(docs.of("recovery", sleep["cycle_id"])) == count  # unchanged: nothing appended again


async def test_deletes_become_deletion_documents_including_recovery_deleted(world: Harness) -> None:
    member = (await world.members())[2]
    user_id = user_id_for_whoop_member(member)
    await world.connect(member)
    await world.start_fetcher()
    async with world.documents_reader() as docs:
        workout = (await world.scenario("new-workout", user_id=member, scoring="scored"))["record"]
        sleep = (await world.scenario("new-sleep", user_id=member, scoring="scored"))["record"]
        await docs.wait_for(lambda: docs.latest("recovery", sleep["cycle_id"]) is not None, "the recovery")
        await docs.wait_for(lambda: docs.latest("workout", workout["id"]) is not None, "the workout")
        before = await world.data_calls()
        await world.scenario("delete", kind="workout", id=workout["id"])
        await world.scenario("delete", kind="sleep", id=sleep["id"])  # sleep.deleted + recovery.deleted

        def deleted(resource_type: str, resource_id: str) -> bool:
            doc = docs.latest(resource_type, resource_id)
            return doc is not None and doc.deleted and doc.document is None

        await docs.wait_for(lambda: deleted("workout", workout["id"]), "the workout deletion")
        await docs.wait_for(lambda: deleted("sleep", sleep["id"]), "the sleep deletion")
        await docs.wait_for(lambda: deleted("recovery", str(sleep["cycle_id"])), "the recovery deletion")
        recovery_deletion = docs.latest("recovery", str(sleep["cycle_id"]))
        assert recovery_deletion is not None and recovery_deletion.context == {"sleep_id": sleep["id"]}
        assert recovery_deletion.user_id == user_id
        await world.settle()
        assert await world.data_calls() == before  # deletions cost no call
        # the sleep's deletion already removed its recovery; recovery.deleted appends nothing twice
        assert len([d for d in docs.of("recovery", str(sleep["cycle_id"])) if d.deleted]) == 1


async def test_recovery_deleted_alone_is_resolved_through_the_stored_sleep_link(world: Harness) -> None:
    member = (await world.members())[0]
    user_id = await world.connect(member)
    fetcher = await world.start_fetcher()
    async with world.documents_reader() as docs:
        sleep = (await world.scenario("new-sleep", user_id=member, scoring="scored"))["record"]
        await docs.wait_for(lambda: docs.latest("recovery", sleep["cycle_id"]) is not None, "the recovery")
        await world.settle()
        await eventually(world.drained, "the work done")
        before, handled = await world.data_calls(), fetcher.intake.handled
        # WHOOP's recovery.deleted names only the sleep (which still exists here): no call can resolve it
        response = await world.http.post(
            "/_sim/webhooks/send", json={"user_id": member, "type": "recovery.deleted", "id": sleep["id"]}
        )
        assert response.status_code == 202

        def recovery_deleted() -> bool:
            doc = docs.latest("recovery", sleep["cycle_id"])
            return doc is not None and doc.deleted

        await docs.wait_for(recovery_deleted, "the recovery's deletion, keyed by its cycle")
        await eventually(lambda: fetcher.intake.handled > handled, "the webhook handled")
        deletion = docs.latest("recovery", sleep["cycle_id"])
        assert deletion is not None and deletion.context == {"sleep_id": sleep["id"]}
        assert f"{user_id}:recovery:{sleep['cycle_id']}".encode() in docs.keys
        stored_sleep = docs.latest("sleep", sleep["id"])
        assert stored_sleep is not None and not stored_sleep.deleted  # only the recovery went
        assert await world.data_calls() == before
