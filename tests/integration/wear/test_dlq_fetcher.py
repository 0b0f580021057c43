"""``wear dlq redrive`` of the fetcher's dead letters, on the real engines with the WHOOP simulator.

The fetcher runs in the test's loop against the simulator (``fetcher_harness``); ``wear`` runs as its
own process. A fetcher letter holds the original event (a webhook, a connection event), and the redrive
runs it through the fetcher's intake (``Intake.act``): the work is queued in ``fetcher_tasks`` in the
redrive's transaction, and the running fetcher does it, so the documents come from the fetcher.

The broken things are the pipeline's own:
* a pull (``BackfillRequested``) of a member the fetcher does not know yet: its intake dead-letters it
  (``UnknownMember``); redriven before the member is connected it is still broken and goes back once;
  after the connection, the redrive of that copy lands and the backfill's documents come once;
* a fetcher whose egress to WHOOP is broken (every workout GET answers 400, as a misconfigured proxy
  would): its worker dead-letters the webhook (``WhoopRejected``); redriven before the fix, the fetch
  is queued, fails again, and the worker sends it back once (``wear-redrive-of``); after the fix (a
  fetcher with a working egress), the redrive of that copy queues the fetch and the workout document
  comes once;
* a webhook naming a v1 (integer) id is rejected by the intake; a redrive cannot fix it: it goes back
  to the DLQ once, marked ``wear-redrive-of``, and is never redriven again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from infra.kafka import make_producer
from infra.settings import KafkaSettings, PostgresSettings
from infra.topic_admin import ensure_topics
from processors.fetcher import Fetcher
from schemas.events import DeadLetter, WebhookReceived
from schemas.identity import user_id_for_whoop_member
from schemas.keys import record_key
from schemas.serde import decode_as, encode
from schemas.topics import topic
from tests.conftest import TopicFactory
from tests.integration.processors.fetcher_harness import (
    PARTITIONS,
    Harness,
    TopicReader,
    eventually,
    harness,
    settings_for_subprocess,
)
from tests.integration.wear.dlq_harness import Ran, records, wear

pytestmark = pytest.mark.integration

START = datetime(2025, 11, 7, tzinfo=UTC)
END = datetime(2025, 11, 12, tzinfo=UTC)


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


@pytest.fixture
async def dlqs(kafka_settings: KafkaSettings, world: Harness) -> AsyncIterator[tuple[str, str]]:
    """The ``.dlq`` twins of the world's webhooks and connections topics, deleted after the test."""
    specs = [
        replace(topic("whoop.webhooks.v1.dlq"), name=world.topics.webhooks + ".dlq", partitions=PARTITIONS),
        replace(
            topic("whoop.connections.v1.dlq"), name=world.topics.connections + ".dlq", partitions=PARTITIONS
        ),
    ]
    await ensure_topics(kafka_settings, specs)
    try:
        yield specs[0].name, specs[1].name
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_settings.kafka_bootstrap_servers)
        await admin.start()
        try:
            await admin.delete_topics([spec.name for spec in specs])
        finally:
            await admin.close()


@pytest.fixture
def env(world: Harness) -> dict[str, str]:
    """The command's environment: the world's Kafka, schema and fetcher topics."""
    return {
        name: value
        for name, value in settings_for_subprocess(world).items()
        if name in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL") or name.endswith("_TOPIC")
    }


def _letters(kafka: KafkaSettings, name: str) -> TopicReader:
    return TopicReader(kafka, name, lambda raw: decode_as(DeadLetter, raw))


async def _redriven_rows(world: Harness) -> int:
    value: int = await world.pool.fetchval("SELECT count(*) FROM dlq_redrives")
    return value


def _only(ran: Ran) -> dict[str, object]:
    assert ran.code == 0, ran.stderr
    body = ran.json()
    (letter,) = body["letters"]
    assert isinstance(letter, dict)
    return letter


async def test_a_backfill_of_an_unknown_member_goes_back_once_then_lands_once_after_the_connection(
    world: Harness, dlqs: tuple[str, str], env: dict[str, str]
) -> None:
    _, connections_dlq = dlqs
    member = (await world.members())[0]
    user_id = user_id_for_whoop_member(member)  # not connected yet: the fetcher does not know them
    await world.start_fetcher()
    async with _letters(world.kafka, connections_dlq) as letters:
        await world.request_backfill(user_id, "job-unknown", START, END, ("cycle", "workout"))
        await letters.wait_until(lambda: len(letters.records) == 1, "the backfill dead-lettered")
    (first,) = letters.records
    assert first.stage == "fetcher" and first.error_type == "UnknownMember"
    assert first.origin_topic == world.topics.connections
    assert await world.drained()

    # still broken (the member is not connected): a dry run says so and writes nothing ...
    dry = _only(await wear(env, "dlq", "redrive", connections_dlq, "--all", "--dry-run", "--json"))
    assert dry["outcome"] == "would_fail" and "UnknownMember" in str(dry["detail"])
    assert await _redriven_rows(world) == 0
    # ... and the redrive puts it back in the DLQ once, as a copy naming it
    again = _only(await wear(env, "dlq", "redrive", connections_dlq, "--all", "--json"))
    assert again["outcome"] == "dead_lettered" and again["stage"] == "fetcher"
    copy_id = again["requeued_as"]
    assert isinstance(copy_id, str) and copy_id != again["id"]
    listed = await wear(env, "dlq", "list", connections_dlq, "--json")
    assert listed.code == 0, listed.stderr
    by_id = {letter["id"]: letter for letter in listed.json()["letters"]}
    assert set(by_id) == {again["id"], copy_id}
    assert by_id[copy_id]["redrive_of"] == again["id"]
    assert by_id[copy_id]["error_type"] == "UnknownMember"
    assert str(by_id[copy_id]["reason"]).startswith(f"redrive of {again['id']}: ")
    assert by_id[again["id"]]["redriven"] == f"back as {copy_id}"
    assert await world.drained()

    # the fix: the member connects; a dry run would land it, and still writes nothing
    await world.connect(member)
    dry = _only(await wear(env, "dlq", "redrive", connections_dlq, "--id", copy_id, "--dry-run", "--json"))
    assert dry["outcome"] == "would_land" and "backfill job-unknown queued" in str(dry["detail"])
    assert await world.drained() and await _redriven_rows(world) == 1

    async with world.documents_reader() as docs:
        ran = await wear(env, "dlq", "redrive", connections_dlq, "--all", "--json")
        assert ran.code == 0, ran.stderr
        outcomes = {letter["id"]: letter for letter in ran.json()["letters"]}
        assert outcomes[again["id"]]["outcome"] == "already_redriven"  # the original: never twice
        assert outcomes[copy_id]["outcome"] == "landed" and outcomes[copy_id]["succeeded"] is True

        async def job_done() -> bool:
            status = await world.pool.fetchval("SELECT status FROM pull_jobs WHERE job_id = 'job-unknown'")
            return bool(status == "done")

        await eventually(job_done, "the redriven backfill done by the running fetcher", 60)
        await eventually(world.drained, "the backfill's work done")
        await docs.wait_for(
            lambda: len(docs.documents()) >= 2, "the backfill's documents (a cycle and a workout at least)"
        )
        progress = await world.pool.fetchval("SELECT progress FROM pull_jobs WHERE job_id = 'job-unknown'")
        # and once more: nothing happens (already redriven), nothing is queued again
        repeat = await wear(env, "dlq", "redrive", connections_dlq, "--id", copy_id, "--json")
        assert _only(repeat)["outcome"] == "already_redriven"
        assert await world.drained()
        landed = len(docs.documents())
    parts = json.loads(progress) if isinstance(progress, str) else progress
    expected = sum(int(part["records"]) for part in parts.values())
    resources = [(d.resource_type, d.resource_id) for d in docs.documents()]
    assert {user for user in (d.user_id for d in docs.documents())} == {user_id}
    assert len(resources) == len(set(resources)) == expected == landed  # each document once
    assert {kind for kind, _ in resources} == {"cycle", "workout"}


class _BrokenEgress(httpx.AsyncBaseTransport):
    """A misconfigured egress proxy: every workout GET answers 400; the rest goes through."""

    def __init__(self) -> None:
        self._real = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and "/activity/workout/" in request.url.path:
            return httpx.Response(400, json={"error": "bad request (proxy)"})
        return await self._real.handle_async_request(request)

    async def aclose(self) -> None:
        await self._real.aclose()


async def test_a_webhook_dead_lettered_by_a_broken_fetch_returns_once_then_lands_once_after_the_fix(
    world: Harness, dlqs: tuple[str, str], env: dict[str, str]
) -> None:
    webhooks_dlq, _ = dlqs
    member = (await world.members())[1]
    user_id = await world.connect(member)
    broken = Fetcher(
        world.settings(),
        clock=world.clock,
        schema=world.schema,
        reconcile=False,
        partitions=PARTITIONS,
        whoop_transport=_BrokenEgress(),
    )
    broken_stop = asyncio.Event()
    await broken.start()
    running = asyncio.create_task(broken.run(broken_stop))
    try:
        async with _letters(world.kafka, webhooks_dlq) as letters:
            workout = (await world.scenario("new-workout", user_id=member, scoring="scored"))["record"]
            await letters.wait_until(lambda: len(letters.records) == 1, "the webhook dead-lettered")
            (letter,) = letters.records
            assert letter.stage == "fetcher" and letter.error_type == "WhoopRejected"
            assert letter.origin_topic == world.topics.webhooks and workout["id"] in letter.reason
            assert await world.drained()  # the worker dropped the row it dead-lettered

            # redriven while the egress is still broken: the fetch is queued, fails again in the
            # worker, and the worker sends the event back once, naming the letter it came from
            first = _only(await wear(env, "dlq", "redrive", webhooks_dlq, "--all", "--json"))
            assert first["outcome"] == "landed" and first["stage"] == "fetcher"
            assert f"fetch of workout {workout['id']} queued" in str(first["detail"])
            await letters.wait_until(lambda: len(letters.records) == 2, "the fetch dead-lettered again")
            await eventually(world.drained, "the failed fetch dropped")
    finally:
        broken_stop.set()
        await asyncio.wait_for(running, 30)
    on_kafka = await records(world.kafka, webhooks_dlq)
    assert len(on_kafka) == 2  # back once, no loop
    (copy,) = [r for r in on_kafka if f"{r.partition}:{r.offset}" != first["id"]]
    copy_id = f"{copy.partition}:{copy.offset}"
    assert dict(copy.headers)["wear-redrive-of"] == str(first["id"]).encode()
    back = decode_as(DeadLetter, copy.value)
    assert back.error_type == "WhoopRejected" and back.reason.startswith(f"redrive of {first['id']}: ")
    assert back.value_b64 == letter.value_b64 and back.origin_offset == letter.origin_offset

    await world.start_fetcher()  # the fix: a fetcher whose egress works
    async with world.documents_reader() as docs:
        ran = await wear(env, "dlq", "redrive", webhooks_dlq, "--all", "--json")
        assert ran.code == 0, ran.stderr
        outcomes = {item["id"]: item for item in ran.json()["letters"]}
        assert outcomes[first["id"]]["outcome"] == "already_redriven"  # never twice
        assert outcomes[copy_id]["outcome"] == "landed"
        await docs.wait_for(lambda: docs.latest("workout", workout["id"]) is not None, "the workout")
        await eventually(world.drained, "the fetch done")
        again = await wear(env, "dlq", "redrive", webhooks_dlq, "--all", "--json")
        assert again.code == 0, again.stderr
        assert again.json()["outcomes"] == {"already_redriven": 2}
        assert await world.drained()
        await world.settle()
        doc = docs.latest("workout", workout["id"])
        assert doc is not None and doc.document == workout and doc.user_id == user_id
        assert len(docs.of("workout", workout["id"])) == 1  # landed once
    assert len(await records(world.kafka, webhooks_dlq)) == 2  # nothing more went back


async def test_a_webhook_still_rejected_returns_to_the_dlq_once(
    world: Harness, dlqs: tuple[str, str], env: dict[str, str], unique: Callable[[str], str]
) -> None:
    webhooks_dlq, _ = dlqs
    member = (await world.members())[2]
    user_id = await world.connect(member)
    await world.start_fetcher()
    v1 = WebhookReceived(
        event_id=unique("v1-event"),
        occurred_at=datetime.now(UTC),
        user_id=user_id,
        source="ingest",
        whoop_user_id=member,
        whoop_event_type="workout.updated",
        resource_id="1093387651",
        whoop_trace_id="4e8b1d3f-6a2c-4f97-a0e5-8d2b7c1f9e03",
        signature_timestamp_ms=1760437512345,
    )
    producer = make_producer(world.kafka, "test-edge")
    await producer.start()
    try:
        await producer.send_and_wait(
            world.topics.webhooks, key=record_key(user_id, "webhook", "1093387651"), value=encode(v1)
        )
    finally:
        await producer.stop()
    async with _letters(world.kafka, webhooks_dlq) as letters:
        await letters.wait_until(lambda: len(letters.records) == 1, "the v1 webhook dead-lettered")
    assert letters.records[0].error_type == "Rejected"

    first = _only(await wear(env, "dlq", "redrive", webhooks_dlq, "--all", "--json"))
    assert first["outcome"] == "dead_lettered" and first["succeeded"] is False
    assert "not a v2 UUID" in str(first["detail"])
    copy_id = first["requeued_as"]
    on_kafka = await records(world.kafka, webhooks_dlq)
    assert len(on_kafka) == 2  # back once
    (copy,) = [r for r in on_kafka if f"{r.partition}:{r.offset}" == copy_id]
    assert dict(copy.headers)["wear-redrive-of"] == str(first["id"]).encode()
    back = decode_as(DeadLetter, copy.value)
    assert back.error_type == "Rejected" and back.value_b64 == letters.records[0].value_b64
    assert (back.origin_topic, back.origin_offset) == (
        world.topics.webhooks,
        letters.records[0].origin_offset,
    )

    second = _only(await wear(env, "dlq", "redrive", webhooks_dlq, "--id", str(first["id"]), "--json"))
    assert second["outcome"] == "already_redriven" and second["requeued_as"] == copy_id
    assert len(await records(world.kafka, webhooks_dlq)) == 2  # never a loop
    assert await world.drained()
