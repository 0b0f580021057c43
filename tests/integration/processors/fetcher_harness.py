"""Harness of the fetcher's integration tests: the simulator as WHOOP, real Kafka and PostgreSQL.

The simulator serves on a real loopback socket (``serve_in_thread``); its webhooks go to an
in-memory receiver that turns each body into ``WebhookReceived`` with the ingest edge's own pure
mapping (``ingest.payload``) and appends it to the test's webhook topic, as the edge would after
verifying the signature. Members are connected through the simulator's control API (a token
response) and stored like the edge stores them: the pair encrypted in ``whoop_tokens``, the member
in ``whoop_connections``. The simulator and the fetcher can share a :class:`ScaledClock`, so
quota windows and re-fetch schedules run faster with every window scaled alike.

Everything is judged from observable state with deadlines: the documents topic (a background
reader keeps every record), the simulator's quota counters and PostgreSQL rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Self

import asyncpg
import httpx
from aiokafka import TopicPartition

from infra.kafka import make_consumer, make_producer
from infra.member_keys import MemberKeys, PooledKeys
from infra.sealing import is_sealed
from infra.settings import KafkaSettings, PostgresSettings, WhoopAppSettings
from infra.vault import TokenPair, TokenVault, VaultSettings
from ingest.payload import Ignored, Malformed, parse_webhook, to_record
from processors.clock import Clock, ScaledClock, SystemClock
from processors.fetcher import Fetcher
from processors.settings import FetcherSettings, ProcessorsSettings, Settings
from schemas.events import BackfillRequested, Envelope
from schemas.identity import user_id_for_whoop_member
from schemas.keys import record_key
from schemas.records import DocumentFetched, ResourceType
from schemas.serde import decode, encode
from simulator.app import create_app as create_simulator
from simulator.runtime import Simulator
from simulator.settings import SimulatorSettings
from tests.conftest import TopicFactory
from tests.support.server import serve_in_thread

PARTITIONS = 3
ALL_TYPES: tuple[ResourceType, ...] = ("cycle", "sleep", "recovery", "workout")

FAST = {
    "concurrency": 4,
    "coalesce_window_s": 0.2,
    "pending_backoff_s": (1.0, 2.0, 4.0),
    "not_found_backoff_s": (0.5, 1.0),
    "error_backoff_s": (0.5, 1.0, 2.0),
    "retries": 3,
    "retry_base_s": 0.05,
    "retry_max_s": 0.5,
    "lease_s": 5.0,
    "poll_interval_s": 0.5,
    "reconcile_scan_s": 0.5,
}


def backfill_event(
    user_id: str, job_id: str, start: datetime, end: datetime, types: tuple[ResourceType, ...] = ALL_TYPES
) -> BackfillRequested:
    """The ``BackfillRequested`` of a pull job."""
    return BackfillRequested(
        event_id=f"backfill-{job_id}",
        occurred_at=datetime.now(UTC),
        user_id=user_id,
        source="ingest",
        resource_types=types,
        start=start,
        end=end,
        job_id=job_id,
    )


@dataclass(frozen=True)
class Topics:
    webhooks: str
    connections: str
    documents: str


class TopicReader:
    """Reads a topic from its beginning in a background task and keeps every decoded record."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        decoder: Callable[[bytes], Any] = decode,
        keys: PooledKeys | None = None,
    ) -> None:
        self._kafka = kafka
        self._topic = topic
        self._decoder = decoder
        self._keys = keys
        self.records: list[Any] = []
        self.keys: list[bytes | None] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        consumer = make_consumer(self._kafka, "test-reader", None)
        await consumer.start()
        consumer.assign([TopicPartition(self._topic, p) for p in range(PARTITIONS)])
        await consumer.seek_to_beginning()
        self._consumer = consumer
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=100)
            for records in batch.values():
                for record in records:
                    self.keys.append(record.key)
                    self.records.append(self._decoder(await self._opened(record.key, record.value)))

    async def _opened(self, key: bytes | None, value: bytes) -> bytes:
        """The value as written by the stage: sealed values opened with their member's key."""
        if not is_sealed(value):
            return value
        assert self._keys is not None, f"a sealed value on {self._topic}: pass keys="
        opened = await self._keys.open(key, value)
        assert isinstance(opened, bytes), f"the key of {key!r} was destroyed"
        return opened

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._consumer.stop()

    async def wait_until(self, done: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            assert self._task is not None
            if self._task.done():
                self._task.result()
            assert time.monotonic() < deadline, f"{what}: not reached in {timeout_s}s"
            await asyncio.sleep(0.05)


class DocumentsReader(TopicReader):
    """The documents topic, with helpers."""

    def documents(self) -> list[DocumentFetched]:
        return [r for r in self.records if isinstance(r, DocumentFetched)]

    def of(self, resource_type: str, resource_id: str | int) -> list[DocumentFetched]:
        return [
            d
            for d in self.documents()
            if d.resource_type == resource_type and d.resource_id == str(resource_id)
        ]

    def latest(self, resource_type: str, resource_id: str | int) -> DocumentFetched | None:
        found = self.of(resource_type, resource_id)
        return found[-1] if found else None

    async def wait_for(self, check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
        await self.wait_until(check, what, timeout_s)


@dataclass
class Harness:
    """One test's world."""

    kafka: KafkaSettings
    postgres: PostgresSettings
    schema: str
    pool: asyncpg.Pool
    topics: Topics
    sim: Simulator
    base_url: str
    http: httpx.AsyncClient
    clock: Clock
    group_id: str
    forwarded: int = 0
    fetchers: list[tuple[Fetcher, asyncio.Event, asyncio.Task[None]]] = field(default_factory=list)

    def settings(self, **fetcher: Any) -> Settings:
        options: dict[str, Any] = {
            **FAST,
            "webhooks_topic": self.topics.webhooks,
            "connections_topic": self.topics.connections,
            "documents_topic": self.topics.documents,
            "group_id": self.group_id,
            **fetcher,
        }
        return Settings(
            processors=ProcessorsSettings(run_normalizer=False),
            fetcher=FetcherSettings(**options),
            kafka=self.kafka,
            postgres=self.postgres,
            whoop=WhoopAppSettings(whoop_api_base_url=self.base_url),
            vault=VaultSettings(),
        )

    def member_keys(self) -> PooledKeys:
        """The members' data keys in this harness's schema (to open sealed values)."""
        return PooledKeys(self.pool, MemberKeys(VaultSettings().keyring()))

    def documents_reader(self) -> DocumentsReader:
        """A reader of the documents topic that opens the sealed documents."""
        return DocumentsReader(self.kafka, self.topics.documents, keys=self.member_keys())

    async def send_connection_event(self, event: Envelope) -> None:
        """Append ``event`` to the connections topic, keyed as the edge keys it."""
        producer = make_producer(self.kafka, "test-ingest")
        await producer.start()
        try:
            key = record_key(event.user_id, "connection", event.user_id)
            await producer.send_and_wait(self.topics.connections, key=key, value=encode(event))
        finally:
            await producer.stop()

    async def request_backfill(
        self,
        user_id: str,
        job_id: str,
        start: datetime,
        end: datetime,
        types: tuple[ResourceType, ...] = ALL_TYPES,
        *,
        requested_by: str = "connect",
        record: bool = True,
    ) -> BackfillRequested:
        """What the edge does for a pull: the job in ``pull_jobs`` (unless not ``record``), then the event."""
        if record:
            await self.pool.execute(
                "INSERT INTO pull_jobs (job_id, user_id, resource_types, range_start, range_end, "
                "requested_by) VALUES ($1, $2, $3, $4, $5, $6)",
                job_id,
                user_id,
                list(types),
                start,
                end,
                requested_by,
            )
        event = backfill_event(user_id, job_id, start, end, types)
        await self.send_connection_event(event)
        return event

    async def start_fetcher(self, *, reconcile: bool = False, **fetcher: Any) -> Fetcher:
        """A fetcher in this loop, running until the harness closes (or :meth:`stop_fetcher`)."""
        instance = Fetcher(
            self.settings(**fetcher),
            clock=self.clock,
            schema=self.schema,
            reconcile=reconcile,
            partitions=PARTITIONS,
        )
        await instance.start()
        stop = asyncio.Event()
        task = asyncio.create_task(instance.run(stop))
        self.fetchers.append((instance, stop, task))
        return instance

    async def stop_fetchers(self) -> None:
        for _, stop, _ in self.fetchers:
            stop.set()
        for _, _, task in self.fetchers:
            await asyncio.wait_for(task, 30)
        self.fetchers.clear()

    async def members(self) -> list[int]:
        response = await self.http.get("/_sim/members")
        return [m["user_id"] for m in response.json()["members"]]

    async def connect(self, member: int, **pair: Any) -> str:
        """Connect ``member`` as the edge would; returns our user id."""
        response = await self.http.post(f"/_sim/members/{member}/tokens", json={})
        assert response.status_code == 200, response.text
        body = response.json()
        user_id = user_id_for_whoop_member(member)
        token_pair = TokenPair(
            body["access_token"],
            body["refresh_token"],
            pair.get("expires_at", self.clock.now() + timedelta(seconds=body["expires_in"])),
            tuple(body["scope"].split()),
        )
        await TokenVault(VaultSettings().keyring()).store(self.pool, user_id, token_pair)
        await self.pool.execute(
            "INSERT INTO whoop_connections (user_id, whoop_user_id, status, scopes) "
            "VALUES ($1, $2, 'connected', $3) ON CONFLICT (user_id) DO UPDATE SET status = 'connected'",
            user_id,
            member,
            list(token_pair.scopes),
        )
        return user_id

    async def scenario(self, name: str, **body: Any) -> dict[str, Any]:
        response = await self.http.post(f"/_sim/scenarios/{name}", json=body)
        assert response.status_code in (200, 201), response.text
        result: dict[str, Any] = response.json()
        return result

    async def switches(self, **switches: Any) -> None:
        response = await self.http.put("/_sim/webhooks/switches", json=switches)
        assert response.status_code == 200, response.text

    async def settle(self) -> None:
        response = await self.http.post("/_sim/webhooks/settle", timeout=60)
        assert response.status_code == 200, response.text

    async def quota(self) -> dict[str, Any]:
        response = await self.http.get("/_sim/quota")
        body: dict[str, Any] = response.json()
        apps = body["apps"]
        return {"per_minute": body["per_minute"], **(apps.get("sim-client-id") or {"total_requests": 0})}

    async def data_calls(self) -> int:
        return int((await self.quota())["total_requests"])

    async def fault(self, endpoint: str, **rule: Any) -> None:
        response = await self.http.put(f"/_sim/faults/{endpoint}", json=rule)
        assert response.status_code == 200, response.text

    async def task_rows(self) -> int:
        value: int = await self.pool.fetchval("SELECT count(*) FROM fetcher_tasks")
        return value

    async def has_task(self) -> bool:
        """Some work row exists."""
        return await self.task_rows() > 0

    async def drained(self) -> bool:
        """No work row is left (live, re-fetch or otherwise)."""
        return await self.task_rows() == 0


async def eventually(
    check: Callable[[], bool] | Callable[[], Awaitable[bool]], what: str, timeout_s: float = 30.0
) -> None:
    """Poll ``check`` (plain or async) until it holds; fail with ``what`` after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"{what}: not reached in {timeout_s}s"
        await asyncio.sleep(0.05)


class _Receiver:
    """The simulator's webhook receiver: bodies go to a thread-safe queue (the sender runs in its thread)."""

    def __init__(self) -> None:
        self.bodies: queue.SimpleQueue[tuple[bytes, int]] = queue.SimpleQueue()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        timestamp = int(request.headers.get("x-whoop-signature-timestamp", "0"))
        self.bodies.put((request.content, timestamp))
        return httpx.Response(204)


async def _forward(receiver: _Receiver, harness: Harness) -> None:
    """Append every received webhook to the webhook topic, as the edge does once it verified it."""
    producer = make_producer(harness.kafka, "test-edge")
    await producer.start()
    try:
        while True:
            try:
                raw, timestamp = receiver.bodies.get_nowait()
            except queue.Empty:
                await asyncio.sleep(0.01)
                continue
            parsed = parse_webhook(raw)
            if isinstance(parsed, Ignored | Malformed):
                continue
            key, value = to_record(parsed, timestamp_ms=timestamp, now=harness.clock.now())
            await producer.send_and_wait(harness.topics.webhooks, key=key, value=value)
            harness.forwarded += 1
    finally:
        await producer.stop()


@asynccontextmanager
async def harness(
    kafka: KafkaSettings,
    postgres: PostgresSettings,
    pool: asyncpg.Pool,
    schema: str,
    topic_factory: TopicFactory,
    group_id: str,
    *,
    time_factor: float | None = None,
    **simulator: Any,
) -> AsyncIterator[Harness]:
    """The simulator on a socket, topics, the forwarding edge; fetchers started by the test."""
    clock: Clock = SystemClock()
    sim_clock = None
    if time_factor is not None:
        scaled = ScaledClock(datetime.now(UTC), time_factor)
        clock, sim_clock = scaled, scaled
    topics = Topics(
        await topic_factory("whoop.webhooks.v1", partitions=PARTITIONS),
        await topic_factory("whoop.connections.v1", partitions=PARTITIONS),
        await topic_factory("whoop.documents.v1", partitions=PARTITIONS),
    )
    receiver = _Receiver()
    settings = SimulatorSettings(**{"members": 3, "days": 5, **simulator})
    app = create_simulator(
        settings, WhoopAppSettings(), clock=sim_clock, webhook_transport=httpx.MockTransport(receiver)
    )
    with serve_in_thread(app) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            world = Harness(
                kafka, postgres, schema, pool, topics, app.state.simulator, base_url, http, clock, group_id
            )
            forwarder = asyncio.create_task(_forward(receiver, world))
            try:
                yield world
            finally:
                await world.stop_fetchers()
                forwarder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await forwarder


def settings_for_subprocess(world: Harness, **fetcher: Any) -> dict[str, str]:
    """Environment of a ``python -m processors`` subprocess joining this world."""
    s = world.settings(**fetcher)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": world.kafka.kafka_bootstrap_servers,
        "KAFKA_CLIENT_ID_PREFIX": "test-sub",
        "DATABASE_URL": f"{world.postgres.database_url}?search_path={world.schema}",
        "WHOOP_API_BASE_URL": world.base_url,
        "PROCESSORS_RUN_NORMALIZER": "false",
        "PROCESSORS_METRICS_PORT": "0",  # two processes on one box: each its own free port
    }
    for name, value in s.fetcher.model_dump().items():
        env[f"FETCHER_{name.upper()}"] = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
    return env
