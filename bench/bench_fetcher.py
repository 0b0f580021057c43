"""Benchmarks of the fetcher: WHOOP calls per delivered record over a simulated day, and webhook latency.

(a) **Calls per record, 1,000 members, one simulated day, quota on.** The WHOOP simulator runs as a
subprocess whose clock (and every sleep: scoring delays, webhook retries) runs ``--factor`` times
faster than the wall clock (``processors.clock.ScaledClock``, same start and anchor in both
processes). The fetcher runs in this process on the same clock, so its quota windows, re-fetch
back-off, leases and reconciliation interval are scaled alike: a day of 86,400 s takes
86,400 / factor s. Inside the simulator process a seeded day plan makes each member's day: one
main sleep at a wake-up time in the day's first 9 h (scored 5-45 min after it is reported, 5 % edited later),
then, 1-15 h after waking, a nap for 25 % and 0-3 workouts (30 % scored 5-30 min late, 3 %
deleted later), with WHOOP's imperfect webhooks (5 % duplicated, reordered, 1 % dropped); the
next morning, after the day, each member's next main sleep closes the day's cycle. The
simulator's webhooks go straight onto the webhook topic
(the edge's own pure mapping, no HTTP hop). Calls are counted by priority in the fetcher and,
independently, by the simulator's quota counter; documents are read back from the documents
topic and attributed to their path (webhook, reconciliation). The naive recipe's cost for the same
deliveries is one call per ``workout.updated`` / ``sleep.updated`` and two per ``recovery.updated``.
Backfill: a separate run pages 90 days of 100 members (limit 25).

(b) **Latency, webhook → document (→ canonical record), quota not binding.** Real time; workouts
and scored sleeps are created through the simulator's control API at a steady rate; latency is
the Kafka timestamp of the ``DocumentFetched`` (and of the normalizer's record) minus the Kafka
timestamp of the ``WebhookReceived`` that caused it. Run with the default coalescing (an idle
resource waits 0.05 s, a busy one the 0.25 s window), with every live fetch waiting the window (the
scheduling before) and with no coalescing.

Figures go into the ``## Fetcher`` section of ``BENCHMARKS.md`` (only that section is rewritten).
Run: ``.venv/bin/python bench/bench_fetcher.py`` (Kafka and PostgreSQL up: ``make up``);
``--factor``, ``--members`` and ``--quick`` change the scale.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import random
import re
import sys
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402 - after the path fix: run as a script
import httpx  # noqa: E402
import orjson  # noqa: E402
from aiokafka import TopicPartition  # noqa: E402
from aiokafka.errors import KafkaError  # noqa: E402

from infra.db import create_pool  # noqa: E402
from infra.kafka import make_consumer, make_producer  # noqa: E402
from infra.member_keys import MemberKeys, PooledKeys  # noqa: E402
from infra.settings import KafkaSettings, PostgresSettings, WhoopAppSettings  # noqa: E402
from infra.topic_admin import ensure_topics  # noqa: E402
from infra.vault import TokenPair, TokenVault, VaultSettings  # noqa: E402
from processors.clock import ScaledClock  # noqa: E402
from processors.fetcher import Fetcher  # noqa: E402
from processors.quota import Priority  # noqa: E402
from processors.settings import FetcherSettings, ProcessorsSettings, Settings  # noqa: E402
from schemas.events import BackfillRequested, WebhookReceived  # noqa: E402
from schemas.identity import user_id_for_whoop_member  # noqa: E402
from schemas.keys import record_key  # noqa: E402
from schemas.records import DocumentFetched  # noqa: E402
from schemas.serde import decode, encode  # noqa: E402
from schemas.topics import topic  # noqa: E402

BENCHMARKS = ROOT / "BENCHMARKS.md"
SECTION = "## Fetcher"
DAY_S = 86_400.0
PARTITIONS = 6
LATENCY_SETTINGS = ((0.25, 0.05), (0.25, 0.25), (0.0, 0.0))  # (b): (window, idle wait): default, before, none


# --------------------------------------------------------------------------- simulator process


def serve_simulator(args: argparse.Namespace) -> None:
    """The simulator on a scaled clock; webhooks straight to Kafka; a day plan behind ``/_bench/day``."""
    import uvicorn
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from ingest.payload import Ignored, Malformed, parse_webhook, to_record
    from simulator.app import create_app
    from simulator.runtime import Simulator
    from simulator.scenarios import ScenarioError
    from simulator.settings import SimulatorSettings

    clock = ScaledClock(datetime.fromisoformat(args.start), args.factor, args.anchor)

    async def sleeper(seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / args.factor)

    class KafkaEdge(httpx.AsyncBaseTransport):
        """What the edge does after verifying a webhook: append ``WebhookReceived``, answer 204."""

        def __init__(self) -> None:
            self._producer: Any = None

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if self._producer is None:
                self._producer = make_producer(
                    KafkaSettings(kafka_bootstrap_servers=args.bootstrap), "bench-edge"
                )
                await self._producer.start()
            raw = await request.aread()
            parsed = parse_webhook(raw)
            if isinstance(parsed, Ignored | Malformed):
                return httpx.Response(200)
            timestamp = int(request.headers.get("x-whoop-signature-timestamp", "0"))
            key, value = to_record(parsed, timestamp_ms=timestamp, now=clock.now())
            try:
                await self._producer.send_and_wait(args.webhooks, key=key, value=value)
            except KafkaError:  # like the edge: 503, WHOOP retries; a fresh producer for the retry
                broken, self._producer = self._producer, None
                with contextlib.suppress(KafkaError):
                    await broken.stop()
                return httpx.Response(503)
            return httpx.Response(204)

    settings = SimulatorSettings(
        seed=args.seed,
        members=args.members,
        days=args.days,
        quota_enabled=True,
        quota_per_minute=args.quota_per_minute,
        quota_per_day=args.quota_per_day,
        webhook_duplicate_rate=args.duplicate_rate,
        webhook_drop_rate=args.drop_rate,
        webhook_reorder=args.reorder,
    )
    app = create_app(
        settings, WhoopAppSettings(), clock=clock, sleeper=sleeper, webhook_transport=KafkaEdge()
    )
    sim: Simulator = app.state.simulator
    state: dict[str, Any] = {"started": False, "done": False, "actions": 0, "errors": Counter()}
    emitted_at: dict[str, str] = {}  # trace id -> when WHOOP sent (or dropped) the webhook
    sim_emit = sim.emit  # every change's webhooks go through it (the scheduled scores' too)

    def timed_emit(events: list[Any]) -> None:
        for event in events:
            emitted_at.setdefault(event.trace_id, clock.now().isoformat())
        sim_emit(events)

    sim.emit = timed_emit  # type: ignore[method-assign]  # the bench's probe on the simulator
    sim.sender.attempts = deque(sim.sender.attempts, maxlen=1_000_000)  # every attempt of the day

    gone: dict[str, dict[str, Any]] = {}  # the day's deleted workouts, as they were

    def delete_workout(ident: str) -> list[Any]:
        entry = sim.store.workouts.get(ident)
        if entry is not None:
            gone[ident] = entry.doc
        return sim.scenarios.delete("workout", ident)

    def workout_of(ident: str) -> dict[str, Any]:
        """A dropped workout's sport and strain: what its cycle's strain could tell of it."""
        entry = sim.store.workouts.get(ident)
        doc = entry.doc if entry is not None else gone.get(ident, {})
        score = doc.get("score") or {}
        return {"sport": doc.get("sport_name"), "strain": score.get("strain")}

    def dropped_records() -> list[dict[str, Any]]:
        """The records all of whose webhooks WHOOP dropped: (kind, id, user, when the first was dropped;
        a workout's sport and strain)."""
        outcomes: dict[tuple[str, str, int], list[tuple[str, str]]] = {}
        for attempt in sim.sender.attempts:
            kind = attempt.type if attempt.type.endswith("deleted") else attempt.type.split(".")[0]
            outcomes.setdefault((kind, attempt.id, attempt.user_id), []).append(
                (attempt.outcome, emitted_at.get(attempt.trace_id, ""))
            )
        day_end = state.get("day_end", "")
        return [
            {
                "kind": kind,
                "id": ident,
                "user": user,
                "at": min(at for _, at in seen),
                **(workout_of(ident) if kind.startswith("workout") else {}),
            }
            for (kind, ident, user), seen in outcomes.items()
            if all(outcome == "dropped" for outcome, _ in seen)
            and min(at for _, at in seen) <= day_end  # the next mornings' records are not the day's
        ]

    background: set[asyncio.Task[None]] = set()

    def later(delay_s: float, action: Any) -> None:
        async def run() -> None:
            await sleeper(delay_s)
            try:
                sim.emit(action())
            except ScenarioError as exc:
                state["errors"][str(exc)[:60]] += 1

        task = asyncio.create_task(run())
        background.add(task)
        task.add_done_callback(background.discard)

    def plan_day(
        rng: random.Random, day_s: float
    ) -> tuple[list[tuple[float, str, int]], list[tuple[float, int]]]:
        """Each member wakes once in the first 9 h of the day (its main sleep is reported then: the
        members of one region wake within a few hours) and is active while awake: a nap and workouts
        1-15 h after waking. The next morning, in the stretch after the day, each member's next main
        sleep closes the cycle of the day's activities."""
        plan: list[tuple[float, str, int]] = []
        mornings: list[tuple[float, int]] = []
        for member in sim.member_ids():
            wake = rng.uniform(0, day_s * 9 / 24)
            plan.append((wake, "sleep", member))
            mornings.append((wake + day_s, member))

            def awake(wake: float = wake) -> float:
                return wake + rng.uniform(1 / 24, 15 / 24) * day_s

            if rng.random() < 0.25:
                plan.append((awake(), "nap", member))
            for _ in range(rng.choice((0, 1, 1, 1, 2, 2, 3))):
                plan.append((awake(), "workout", member))
        return sorted(plan), sorted(mornings)

    async def next_mornings(begin: Any, mornings: list[tuple[float, int]], rng: random.Random) -> None:
        for offset, member in mornings:
            wait = (begin + timedelta(seconds=offset) - clock.now()).total_seconds()
            if wait > 0:
                await sleeper(wait)
            try:
                doc, events = sim.scenarios.new_sleep(member, nap=False, scoring="pending")
                sim.emit(events)
                sim.schedule_scoring("sleep", doc["id"], "SCORED", rng.uniform(300, 2700))
            except ScenarioError as exc:
                state["errors"][str(exc)[:60]] += 1

    async def day_plan() -> None:
        rng = random.Random(args.seed ^ 0xDA7)  # noqa: S311 - a seeded day plan, not a secret
        day_s = args.day_hours * 3600
        plan, mornings = plan_day(rng, day_s)
        begin = clock.now()
        state["day_end"] = (begin + timedelta(seconds=day_s)).isoformat()
        for offset, kind, member in plan:
            wait = (begin + timedelta(seconds=offset) - clock.now()).total_seconds()
            if wait > 0:
                await sleeper(wait)
            state["actions"] += 1
            try:
                if kind == "workout":
                    pending = rng.random() < 0.3
                    doc, events = sim.scenarios.new_workout(
                        member, sport_name=None, scoring="pending" if pending else "scored"
                    )
                    sim.emit(events)
                    if pending:
                        sim.schedule_scoring("workout", doc["id"], "SCORED", rng.uniform(300, 1800))
                    if rng.random() < 0.03:
                        ident = doc["id"]
                        later(
                            rng.uniform(2400, 7200),
                            lambda ident=ident: delete_workout(ident),
                        )
                elif kind == "sleep":
                    doc, events = sim.scenarios.new_sleep(member, nap=False, scoring="pending")
                    sim.emit(events)
                    sim.schedule_scoring("sleep", doc["id"], "SCORED", rng.uniform(300, 2700))
                    if rng.random() < 0.05:
                        ident = doc["id"]
                        later(rng.uniform(3600, 7200), lambda ident=ident: sim.scenarios.edit_sleep(ident, 5))
                else:
                    _, events = sim.scenarios.new_sleep(member, nap=True, scoring="scored")
                    sim.emit(events)
            except ScenarioError as exc:
                state["errors"][str(exc)[:60]] += 1
        while background:
            await asyncio.gather(*list(background), return_exceptions=True)
        await sim.settle()
        state["done"] = True
        # after the day has settled (so that "done" does not wait for the next day's scoring)
        state["mornings"] = asyncio.create_task(next_mornings(begin, mornings, random.Random(args.seed)))  # noqa: S311

    async def day(request: Request) -> JSONResponse:
        if request.method == "POST" and not state["started"]:
            state["started"] = True
            state["task"] = asyncio.create_task(day_plan())  # kept apart: day_plan awaits `background`
        return JSONResponse(
            {
                "started": state["started"],
                "done": state["done"],
                "actions": state["actions"],
                "errors": dict(state["errors"]),
                "webhooks": sim.sender.snapshot()["stats"],
                "dropped_records": dropped_records() if state["done"] else [],
                "sim_now": clock.now().isoformat(),
            }
        )

    app.router.routes.append(Route("/_bench/day", day, methods=["GET", "POST"]))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


# --------------------------------------------------------------------------- the bench process


@dataclass
class World:
    kafka: KafkaSettings
    postgres: PostgresSettings
    schema: str
    pool: asyncpg.Pool
    webhooks: str
    connections: str
    documents: str
    records: str
    base_url: str
    process: asyncio.subprocess.Process
    clock: ScaledClock
    created: list[str] = field(default_factory=list)

    def keys(self) -> PooledKeys:
        """The members' data keys, to open the sealed documents and records (ADR 0004)."""
        return PooledKeys(self.pool, MemberKeys(VaultSettings().keyring()))


async def _topics(kafka: KafkaSettings, run: str) -> dict[str, str]:
    names = {}
    specs = []
    for role in ("whoop.webhooks.v1", "whoop.connections.v1", "whoop.documents.v1", "wear.records.v1"):
        for spec in (topic(role), topic(role + ".dlq")):
            name = f"bench.{run}.{spec.name}"
            names[spec.name] = name
            specs.append(replace(spec, name=name, partitions=PARTITIONS))
    await ensure_topics(kafka, specs)
    return names


@contextlib.asynccontextmanager
async def world(
    args: argparse.Namespace, *, members: int, days: int, factor: float, quota: tuple[int, int], **sim: Any
) -> AsyncIterator[World]:
    kafka = KafkaSettings()
    postgres = PostgresSettings()
    run = uuid.uuid4().hex[:10]
    names = await _topics(kafka, run)
    schema = f"bench_fetcher_{run}"
    admin = await asyncpg.connect(postgres.database_url)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    pool = await create_pool(postgres, schema=schema, max_size=4)
    from tests.support.server import free_port

    port = free_port()
    start = datetime.now(UTC).replace(microsecond=0)
    anchor = time.time()
    options = {
        "port": port,
        "members": members,
        "days": days,
        "factor": factor,
        "start": start.isoformat(),
        "anchor": repr(anchor),
        "bootstrap": kafka.kafka_bootstrap_servers,
        "webhooks": names["whoop.webhooks.v1"],
        "quota-per-minute": quota[0],
        "quota-per-day": quota[1],
        "duplicate-rate": sim.get("duplicate_rate", 0.0),
        "drop-rate": sim.get("drop_rate", 0.0),
        "day-hours": args.day_hours,
        "seed": args.seed,
    }
    argv = [__file__, "--serve-simulator"] + [x for k, v in options.items() for x in (f"--{k}", str(v))]
    argv += ["--reorder"] if sim.get("reorder") else []
    process = await asyncio.create_subprocess_exec(sys.executable, *argv, cwd=ROOT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if (await http.get("/_sim/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or process.returncode is not None:
                    raise RuntimeError("the simulator did not start")
                await asyncio.sleep(0.2)
        yield World(
            kafka,
            postgres,
            schema,
            pool,
            names["whoop.webhooks.v1"],
            names["whoop.connections.v1"],
            names["whoop.documents.v1"],
            names["wear.records.v1"],
            base_url,
            process,
            ScaledClock(start, factor, anchor),
        )
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()
        await pool.close()
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()
        from aiokafka.admin import AIOKafkaAdminClient

        client = AIOKafkaAdminClient(bootstrap_servers=kafka.kafka_bootstrap_servers)
        await client.start()
        try:
            await client.delete_topics(list(names.values()))
        finally:
            await client.close()


async def connect_all(w: World) -> list[int]:
    """Every simulated member connected as the edge stores them (tokens via the control API)."""
    vault = TokenVault(VaultSettings().keyring())
    async with httpx.AsyncClient(base_url=w.base_url, timeout=60) as http:
        members = [m["user_id"] for m in (await http.get("/_sim/members")).json()["members"]]
        gate = asyncio.Semaphore(16)

        async def one(member: int) -> tuple[int, datetime, dict[str, Any]]:
            async with gate:
                issued = w.clock.now()  # the expiry is counted from before the request, as WHOOP's
                return member, issued, (await http.post(f"/_sim/members/{member}/tokens", json={})).json()

        grants = await asyncio.gather(*(one(m) for m in members))
    async with w.pool.acquire() as db, db.transaction():
        for member, now, body in grants:
            user_id = user_id_for_whoop_member(member)
            pair = TokenPair(
                body["access_token"],
                body["refresh_token"],
                now + timedelta(seconds=body["expires_in"]),
                tuple(body["scope"].split()),
            )
            await vault.store(db, user_id, pair)
        await db.executemany(
            "INSERT INTO whoop_connections (user_id, whoop_user_id, status) VALUES ($1, $2, 'connected')",
            [(user_id_for_whoop_member(m), m) for m, _, _ in grants],
        )
    return members


async def watched_since(w: World, members: list[int], hours: float, sweep_period_s: float) -> None:
    """The fetcher has watched these members for ``hours`` (not a first day: a cycle that began in that
    stretch is theirs to judge); their sweeps spread over the period as the fetcher would place them."""
    now = w.clock.now()
    rng = random.Random(len(members))  # noqa: S311 - a seeded spread, not a secret
    await w.pool.executemany(
        "INSERT INTO fetcher_reconciliations (user_id, next_due_at, watched_since) VALUES ($1, $2, $3)",
        [
            (
                user_id_for_whoop_member(m),
                now + timedelta(seconds=rng.uniform(0, sweep_period_s)),
                now - timedelta(hours=hours),
            )
            for m in members
        ],
    )


def fetcher_settings(w: World, **fetcher: Any) -> Settings:
    return Settings(
        processors=ProcessorsSettings(run_normalizer=False),
        fetcher=FetcherSettings(
            webhooks_topic=w.webhooks,
            connections_topic=w.connections,
            documents_topic=w.documents,
            group_id=f"bench-fetcher-{uuid.uuid4().hex[:8]}",
            **fetcher,
        ),
        kafka=w.kafka,
        postgres=w.postgres,
        whoop=WhoopAppSettings(whoop_api_base_url=w.base_url),
        vault=VaultSettings(),
    )


class Reader:
    """Every record of some topics, with its Kafka timestamp, read in a background task."""

    def __init__(self, kafka: KafkaSettings, keys: PooledKeys, *topics: str) -> None:
        self._kafka = kafka
        self._keys = keys
        self._topics = topics
        self.seen: list[tuple[str, int, Any]] = []

    async def __aenter__(self) -> Reader:
        self._consumer = make_consumer(self._kafka, "bench-reader", None)
        await self._consumer.start()
        self._consumer.assign([TopicPartition(t, p) for t in self._topics for p in range(PARTITIONS)])
        await self._consumer.seek_to_beginning()
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            for tp, batch in (await self._consumer.getmany(timeout_ms=200, max_records=5000)).items():
                for record in batch:
                    value = await self._keys.open(record.key, record.value)  # sealed: ADR 0004
                    if isinstance(value, bytes):
                        self.seen.append((tp.topic, record.timestamp, decode(value)))

    async def __aexit__(self, *exc: object) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._consumer.stop()

    def of(self, name: str) -> list[tuple[int, Any]]:
        return [(ts, value) for t, ts, value in self.seen if t == name]


async def _max_grants_in_window(pool: asyncpg.Pool, window_s: float) -> int:
    value: int | None = await pool.fetchval(
        """
        SELECT max(n) FROM (
            SELECT count(*) OVER (ORDER BY granted_at RANGE BETWEEN make_interval(secs => $1) PRECEDING
                                  AND CURRENT ROW) AS n
            FROM fetcher_quota_grants
        ) AS w
        """,
        window_s - 0.001,
    )
    return value or 0


async def bench_day(args: argparse.Namespace, drop_rate: float = 0.01) -> dict[str, Any]:
    """(a) one simulated day of ``args.members`` members, quota on.

    Calls are counted over the day and ``args.tail_hours`` after it (the measured day); the run
    then goes on to ``args.recovery_hours`` after the day so that every record whose webhooks were
    all dropped had 24 simulated hours to be recovered (the only activity then is each member's
    next main sleep; the calls of that stretch are reported apart, they are not the day's cost).
    """
    factor = args.factor
    async with world(
        args,
        members=args.members,
        days=3,
        factor=factor,
        quota=(100, 10_000),
        duplicate_rate=0.05,
        drop_rate=drop_rate,
        reorder=True,
    ) as w:
        members = await connect_all(w)
        settings = fetcher_settings(
            w,
            concurrency=16,
            lease_s=3600.0,
            poll_interval_s=60.0,
            reconcile_scan_s=600.0,
            quota_window_margin_s=20.0,
            clock_skew_s=5.0,
        )
        await watched_since(w, members, 12.0, settings.fetcher.reconcile_interval_s)
        fetcher = Fetcher(settings, clock=w.clock, schema=w.schema, partitions=PARTITIONS)
        await fetcher.start()
        stop = asyncio.Event()
        running = asyncio.create_task(fetcher.run(stop))
        began_wall = time.monotonic()
        sim_begin = w.clock.now()
        async with (
            Reader(w.kafka, w.keys(), w.webhooks, w.documents) as reader,
            httpx.AsyncClient(base_url=w.base_url, timeout=60) as http,
        ):
            await http.post("/_bench/day")
            tail = timedelta(hours=args.tail_hours)
            day_calls: Counter[Priority] | None = None
            while True:
                status = (await http.get("/_bench/day")).json()
                elapsed = w.clock.now() - sim_begin
                if day_calls is None and status["done"] and elapsed >= timedelta(hours=args.day_hours) + tail:
                    day_calls = Counter(fetcher.client.calls)
                    day_sim_total = (await http.get("/_sim/quota")).json()["apps"].get("sim-client-id", {})
                    day_wall_s = time.monotonic() - began_wall
                if day_calls is not None and elapsed >= timedelta(hours=args.day_hours + args.recovery_hours):
                    break
                if running.done():
                    running.result()
                await asyncio.sleep(2)
            webhook_stats = status["webhooks"]
            errors = status["errors"]
            dropped_records = status["dropped_records"]
            stop.set()
            await running
            quota = (await http.get("/_sim/quota")).json()  # after the fetcher stopped: every call counted
            empty_reads = await w.pool.fetchval(
                "SELECT coalesce(sum(targeted_empty), 0) FROM fetcher_reconciliations"
            )
            reads_by_kind = await w.pool.fetch(
                "SELECT split_part(k, ':', 1) AS kind, count(*) AS n "
                "FROM fetcher_reconciliations, jsonb_object_keys(checks) AS k GROUP BY 1 ORDER BY 1"
            )
            pending = await w.pool.fetch(
                "SELECT priority, count(*) AS n FROM fetcher_tasks GROUP BY priority ORDER BY priority"
            )
            wall_s = time.monotonic() - began_wall
            max_minute = await _max_grants_in_window(w.pool, 60.0)
            max_day = await _max_grants_in_window(w.pool, DAY_S)
            webhooks = [v for _, v in reader.of(w.webhooks) if isinstance(v, WebhookReceived)]
            docs = [v for _, v in reader.of(w.documents) if isinstance(v, DocumentFetched)]
    webhook_docs = [d for d in docs if d.caused_by]
    reconcile_docs = [d for d in docs if not d.caused_by]
    all_calls = fetcher.client.calls
    calls = day_calls
    live = calls[Priority.LIVE] + calls[Priority.REFETCH]
    naive = sum(
        2 if e.whoop_event_type == "recovery.updated" else 0 if e.whoop_event_type.endswith("deleted") else 1
        for e in webhooks
    )
    fetched = [d for d in webhook_docs if not d.deleted]
    app = quota["apps"].get("sim-client-id", {})
    recovered = _recovered(dropped_records, docs)
    return {
        "drop_rate": drop_rate,
        "recovery_hours": args.recovery_hours,
        "dropped": recovered,
        "tail_calls": {p.name: all_calls[p] - calls[p] for p in Priority},
        "tail_sim_total": app.get("total_requests", 0) - day_sim_total.get("total_requests", 0),
        "day_wall_s": day_wall_s,
        "members": len(members),
        "factor": factor,
        "wall_s": wall_s,
        "tail_hours": args.tail_hours,
        "plan_errors": errors,
        "webhooks_delivered": len(webhooks),
        "webhook_stats": webhook_stats,
        "event_types": Counter(e.whoop_event_type for e in webhooks),
        "calls": {p.name: calls[p] for p in Priority},
        "live_calls": live,
        "docs_webhook": len(webhook_docs),
        "docs_webhook_fetched": len(fetched),
        "docs_webhook_deleted": len(webhook_docs) - len(fetched),
        "distinct_webhook_resources": len({(d.resource_type, d.resource_id, d.user_id) for d in fetched}),
        "docs_by_type": Counter(d.resource_type for d in fetched),
        "docs_reconcile": len(reconcile_docs),
        "naive_calls": naive,
        "naive_records": sum(1 for e in webhooks if e.whoop_event_type.endswith("updated")),
        "refreshes": fetcher.tokens.refreshes,
        "statuses": dict(fetcher.client.statuses),
        "sim_total": day_sim_total.get("total_requests", 0),
        "sim_rejected": app.get("rejected_429", 0),
        "sim_max_60s": app.get("max_attempted_in_any_60s", 0),
        "sim_max_fixed_minute": app.get("max_accepted_in_fixed_minute", 0),
        "max_minute": max_minute,
        "max_day": max_day,
        "left": {Priority(r["priority"]).name: r["n"] for r in pending},
        "targeted_reads": {r["kind"]: r["n"] for r in reads_by_kind},
        "targeted_empty": int(empty_reads),
    }


def _recovered(dropped: list[dict[str, Any]], docs: list[DocumentFetched]) -> list[dict[str, Any]]:
    """Each record whose webhooks were all dropped: was it appended (or its deletion), and how late."""
    first: dict[tuple[str, str, bool], datetime] = {}
    for d in docs:
        ident = str(d.context.get("sleep_id")) if d.resource_type == "recovery" else d.resource_id
        key = (d.resource_type, ident, d.deleted)
        if key not in first or d.fetched_at < first[key]:
            first[key] = d.fetched_at
    out = []
    for record in dropped:
        kind = str(record["kind"])
        resource_type, deleted = (kind.split(".")[0], True) if kind.endswith("deleted") else (kind, False)
        found = first.get((resource_type, str(record["id"]), deleted))
        at = datetime.fromisoformat(record["at"]) if record["at"] else None
        delay = (found - at).total_seconds() if found is not None and at is not None else None
        detail: dict[str, Any] = {k: record[k] for k in ("sport", "strain") if k in record}
        out.append({"kind": kind, "recovered": found is not None, "delay_s": delay, **detail})
    return out


async def bench_backfill(args: argparse.Namespace) -> dict[str, Any]:
    """(a) backfill: 90 days of ``args.backfill_members`` members, quota on."""
    factor = 30.0
    async with world(args, members=args.backfill_members, days=90, factor=factor, quota=(100, 10_000)) as w:
        members = await connect_all(w)
        settings = fetcher_settings(
            w, concurrency=8, lease_s=600.0, poll_interval_s=30.0, quota_window_margin_s=10.0
        )
        fetcher = Fetcher(settings, clock=w.clock, schema=w.schema, reconcile=False, partitions=PARTITIONS)
        await fetcher.start()
        stop = asyncio.Event()
        running = asyncio.create_task(fetcher.run(stop))
        began = time.monotonic()
        producer = make_producer(w.kafka, "bench-ingest")
        await producer.start()
        start, end = datetime(2025, 8, 10, tzinfo=UTC), datetime(2025, 11, 11, tzinfo=UTC)
        for n, member in enumerate(members):
            user_id = user_id_for_whoop_member(member)
            event = BackfillRequested(
                event_id=f"backfill-{n}",
                occurred_at=datetime.now(UTC),
                user_id=user_id,
                source="bench",
                resource_types=("cycle", "sleep", "recovery", "workout"),
                start=start,
                end=end,
                job_id=f"job-{n}",
            )
            await producer.send(
                w.connections, key=record_key(user_id, "connection", user_id), value=encode(event)
            )
        await producer.stop()
        async with Reader(w.kafka, w.keys(), w.documents) as reader:
            while True:
                done = await w.pool.fetchval(
                    "SELECT count(*) FROM fetcher_backfill_progress WHERE status = 'done'"
                )
                if done == 4 * len(members):
                    break
                if running.done():
                    running.result()
                await asyncio.sleep(1)
            progress = await w.pool.fetchrow(
                "SELECT sum(pages) AS pages, sum(records) AS records FROM fetcher_backfill_progress"
            )
            expected = 0 if progress is None else int(progress["records"])
            await _until(lambda: len(reader.of(w.documents)) >= expected, 60)  # the reader catches up
            docs = [v for _, v in reader.of(w.documents) if isinstance(v, DocumentFetched)]
        stop.set()
        await running
        async with httpx.AsyncClient(base_url=w.base_url) as http:
            quota = (await http.get("/_sim/quota")).json()["apps"].get("sim-client-id", {})
        max_minute = await _max_grants_in_window(w.pool, 60.0)
    return {
        "members": len(members),
        "factor": factor,
        "wall_s": time.monotonic() - began,
        "calls": fetcher.client.calls[Priority.BACKFILL],
        "docs": len(docs),
        "pages": None if progress is None else progress["pages"],
        "records": expected,
        "sim_total": quota.get("total_requests", 0),
        "sim_rejected": quota.get("rejected_429", 0),
        "sim_max_60s": quota.get("max_attempted_in_any_60s", 0),
        "max_minute": max_minute,
    }


async def _until(condition: Any, timeout_s: float) -> None:
    """Poll ``condition`` until it holds or ``timeout_s`` passed."""
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:  # noqa: ASYNC110 - polling another task's list
        await asyncio.sleep(0.2)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


async def bench_latency(
    args: argparse.Namespace, coalesce_window_s: float, coalesce_idle_s: float
) -> dict[str, Any]:
    """(b) webhook → document → record latency, real time, the quota far from binding."""
    async with world(args, members=50, days=3, factor=1.0, quota=(1_000_000, 10_000_000)) as w:
        members = await connect_all(w)
        settings = fetcher_settings(
            w,
            concurrency=8,
            coalesce_window_s=coalesce_window_s,
            coalesce_idle_s=coalesce_idle_s,
            quota_per_minute=1_000_000,
            quota_per_day=10_000_000,
        )
        fetcher = Fetcher(settings, clock=w.clock, schema=w.schema, reconcile=False, partitions=PARTITIONS)
        await fetcher.start()
        stop = asyncio.Event()
        running = asyncio.create_task(fetcher.run(stop))
        normalizer = None
        try:
            from processors.normalizer_runner import run_normalizer
        except ImportError:
            run_normalizer = None  # type: ignore[assignment]
        if run_normalizer is not None:
            normalizer = asyncio.create_task(
                run_normalizer(
                    w.kafka,
                    stop,
                    group_id=f"bench-normalizer-{uuid.uuid4().hex[:6]}",
                    source=w.documents,
                    target=w.records,
                    dlq=w.documents + ".dlq",
                    keys=w.keys(),
                )
            )
        await asyncio.sleep(3)  # the agents join their group before the clock starts
        async with (
            Reader(w.kafka, w.keys(), w.webhooks, w.documents, w.records) as reader,
            httpx.AsyncClient(base_url=w.base_url, timeout=30) as http,
        ):
            rng = random.Random(7)  # noqa: S311 - a seeded mix of changes, not a secret
            began = time.monotonic()
            for n in range(args.latency_events):
                member = members[n % len(members)]
                if rng.random() < 0.8:
                    await http.post("/_sim/scenarios/new-workout", json={"user_id": member})
                else:
                    await http.post(
                        "/_sim/scenarios/new-sleep", json={"user_id": member, "scoring": "scored"}
                    )
                target = began + (n + 1) / args.latency_rate
                await asyncio.sleep(max(0.0, target - time.monotonic()))
            await http.post("/_sim/webhooks/settle")
            deadline = time.monotonic() + 120
            webhook_ids: dict[str, int] = {}
            while time.monotonic() < deadline:  # every webhook handled, no work left, records caught up
                webhook_ids = {
                    v.event_id: ts for ts, v in reader.of(w.webhooks) if isinstance(v, WebhookReceived)
                }
                docs = [(ts, v) for ts, v in reader.of(w.documents) if isinstance(v, DocumentFetched)]
                idle = await w.pool.fetchval("SELECT count(*) = 0 FROM fetcher_tasks")
                handled = bool(webhook_ids) and fetcher.intake.handled >= len(webhook_ids) and idle
                if handled and (normalizer is None or len(reader.of(w.records)) >= len(docs)):
                    break
                await asyncio.sleep(0.5)
            docs = [(ts, v) for ts, v in reader.of(w.documents) if isinstance(v, DocumentFetched)]
            records = reader.of(w.records)
        stop.set()
        await running
        if normalizer is not None:
            await normalizer
    to_doc = []
    kinds: dict[str, str] = {}
    doc_time = {}
    for ts, doc in docs:
        doc_time[doc.event_id] = ts
        causes = [webhook_ids[c] for c in doc.caused_by if c in webhook_ids]
        if causes:
            to_doc.append((ts - max(causes), doc.event_id, max(causes)))
            kinds[doc.event_id] = f"{doc.resource_type}:{len(doc.caused_by)} causes"
    to_record = []
    cause_of_doc = {event_id: webhook_ts for _, event_id, webhook_ts in to_doc}
    for ts, record in records:
        webhook_ts = cause_of_doc.get(getattr(record, "causation_id", None) or "")
        if webhook_ts is not None:
            to_record.append(ts - webhook_ts)
    doc_ms = [float(d) for d, _, _ in to_doc]
    return {
        "coalesce_window_s": coalesce_window_s,
        "coalesce_idle_s": coalesce_idle_s,
        "events": args.latency_events,
        "rate": args.latency_rate,
        "webhooks": len(webhook_ids),
        "docs": len(doc_ms),
        "doc_p50": _percentile(doc_ms, 0.5) if doc_ms else float("nan"),
        "doc_p99": _percentile(doc_ms, 0.99) if doc_ms else float("nan"),
        "records": len(to_record),
        "record_p50": _percentile([float(x) for x in to_record], 0.5) if to_record else float("nan"),
        "record_p99": _percentile([float(x) for x in to_record], 0.99) if to_record else float("nan"),
        "normalizer": normalizer is not None,
        "slowest": [(d, kinds[e]) for d, e, _ in sorted(to_doc, reverse=True)[:8]],
    }


# --------------------------------------------------------------------------- report


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}" if b else "n/a"


def _rows(rows: list[tuple[str, str]]) -> list[str]:
    return ["| | figure |", "|---|---:|", *(f"| {label} | {value} |" for label, value in rows)]


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counter.items()))


def _dropped_rows(day: dict[str, Any]) -> list[tuple[str, str]]:
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for record in day["dropped"]:
        by_kind.setdefault(record["kind"], []).append(record)
    rows = []
    for kind, records in sorted(by_kind.items()):
        found = [r for r in records if r["recovered"]]
        delays = sorted(r["delay_s"] / 3600 for r in found if r["delay_s"] is not None)
        within = sum(1 for d in delays if d <= day["recovery_hours"])
        listed = (
            ", ".join(f"{d:.1f}" for d in delays)
            if len(delays) <= 30
            else (f"p50 {delays[len(delays) // 2]:.1f}, max {delays[-1]:.1f}")
        )
        rows.append(
            (
                f"`{kind}`: dropped / recovered (within {day['recovery_hours']:g} h) / delays in h",
                f"{len(records)} / {len(found)} ({within}) / {listed or '-'}",
            )
        )
        late = [r for r in records if _late(r, day)]
        if late and kind.startswith("workout"):
            rows.append(
                (
                    f"`{kind}` not recovered within {day['recovery_hours']:g} h: sport (strain)",
                    ", ".join(
                        f"{r.get('sport')} ({r['strain']:.1f})"
                        if r.get("strain") is not None
                        else str(r.get("sport"))
                        for r in sorted(late, key=lambda r: r.get("strain") or 0.0)
                    ),
                )
            )
    return rows


def _late(record: dict[str, Any], day: dict[str, Any]) -> bool:
    delay = record["delay_s"] if record["recovered"] else None
    return delay is None or delay > day["recovery_hours"] * 3600


def day_rows(day: dict[str, Any]) -> list[tuple[str, str]]:
    c = day["calls"]
    members = max(1, day["members"])
    total = sum(c.values())
    fetched = day["docs_webhook_fetched"]
    webhook_ratio = day["live_calls"] / max(1, fetched)
    per_day = total / members
    tail = day["tail_calls"]
    return [
        (
            "webhooks delivered (incl. duplicates) / dropped",
            f"{day['webhooks_delivered']:,} / {day['webhook_stats'].get('dropped', 0):,}",
        ),
        ("by type", _counts(day["event_types"])),
        (
            "webhook path: calls (live + pending re-fetch)",
            f"{day['live_calls']:,} ({c['LIVE']:,} + {c['REFETCH']:,})",
        ),
        ("webhook path: documents appended", f"{fetched:,} ({_counts(day['docs_by_type'])})"),
        ("**webhook path: calls per document** (target <= 1.0)", f"**{webhook_ratio:.3f}**"),
        (
            "**calls per member-day by priority** (live / re-fetch / reconciliation / backfill)",
            " / ".join(f"{c[p.name] / members:.3f}" for p in Priority),
        ),
        (
            "**reconciliation: calls per member-day** (target <= 0.3; before 2.25)",
            f"**{c['RECONCILE'] / members:.3f}**",
        ),
        ("**all calls per member-day** (target <= 7.5; before 9.1)", f"**{per_day:.3f}**"),
        (
            "**members per app at the default quota** (10,000/day; 100/min allows 144,000/day)",
            f"**{int(10_000 // per_day) if per_day else 0:,}**",
        ),
        ("all calls (fetcher / simulator's counter)", f"{total:,} / {day['sim_total']:,}"),
        *_dropped_rows(day),
        (
            f"after the measured day, {day['recovery_hours'] - day['tail_hours']:g} more simulated hours "
            "(each member's next main sleep, nothing else): calls (reconciliation / all)",
            f"{tail['RECONCILE']:,} / {sum(tail.values()):,}",
        ),
        (
            "most calls in any 60 s (simulator's counter / our grants; limit 100)",
            f"{day['sim_max_60s']} / {day['max_minute']}",
        ),
        ("most calls in any 86,400 s (our grants; limit 10,000)", f"{day['max_day']:,}"),
        (
            "targeted reads by kind (members and cycles or sleeps read, whole run)",
            _counts(Counter(day.get("targeted_reads", {}))) or "none",
        ),
        (
            "targeted collection reads (workout, deleted, nap, silent) that found nothing",
            f"{int(day['targeted_empty']):,}" if "targeted_empty" in day else "-",
        ),
        ("429s from the simulator", f"{day['sim_rejected']}"),
        ("work rows left at the end, by priority", f"{day['left'] or 'none'}"),
    ]


def day_misses(day: dict[str, Any]) -> list[str]:
    c = day["calls"]
    members = max(1, day["members"])
    misses = []
    tag = f"{day['drop_rate']:.0%} dropped"
    if c["RECONCILE"] / members > 0.3:
        misses.append(f"{tag}: reconciliation {c['RECONCILE'] / members:.3f} > 0.3 calls per member-day")
    if sum(c.values()) / members > 7.5:
        misses.append(f"{tag}: {sum(c.values()) / members:.3f} > 7.5 calls per member-day")
    late = [r for r in day["dropped"] if _late(r, day)]
    if late:
        kinds = Counter(r["kind"] for r in late)
        misses.append(f"{tag}: not recovered within {day['recovery_hours']:g} h: {_counts(kinds)}")
    if day["sim_rejected"] or day["sim_max_60s"] > 100 or day["max_day"] > 10_000:
        misses.append(f"{tag}: the quota was exceeded")
    return misses


def day_section(days: list[dict[str, Any]], load: str) -> str:
    day = days[0]
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    lines = [
        "### (a) WHOOP calls per member-day and per delivered record, one simulated day, quota on",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} on this machine ({machine}) by "
        f"`.venv/bin/python bench/bench_fetcher.py --only-day`. {load}",
        "",
        f"Method: the WHOOP simulator (a subprocess) and the fetcher (in the bench process) share a clock "
        f"that runs {day['factor']:g}x faster than the wall clock (`processors.clock.ScaledClock`): quota "
        "windows, scoring delays, re-fetch back-off and the reconciliation checks all run on it. "
        "The members have been watched by the fetcher for 12 h when the day starts (not their first day: "
        "the day's cycles are the fetcher's to judge; the cycle before is not). "
        f"{day['members']:,} connected members; a seeded day "
        "plan per member: one main sleep reported at a wake-up time in the day's first 9 h and scored "
        "5-45 min later "
        "(5 % edited later), then 1-15 h after waking a nap for 25 % and 0-3 workouts (30 % scored "
        "5-30 min late, 3 % deleted later); WHOOP's webhooks 5 % duplicated, reordered, and dropped at "
        "the rate of each column. Quota 100/min and 10,000/day on both sides; fetcher defaults "
        "(targeted reconciliation checks every 15 min, the full sweep every two weeks) "
        "except the knobs that must follow the time scale (lease, poll, a window margin of 20 simulated s). "
        f"Calls are counted per priority over the day and {day['tail_hours']:g} simulated hours after it "
        "(late scores, re-fetches): the member-day. The run then goes on "
        f"to {day['recovery_hours']:g} h after the day, so that every record whose webhooks were all dropped "
        "had 24 simulated hours to be found; in that stretch each member's next main sleep closes the "
        "day's cycle (a workout lost in the day shows in that cycle's strain, a lost deletion too), and "
        "nothing else happens: "
        "its calls are listed apart, and records first dropped in it are not counted as the day's. "
        "A dropped record's delay runs from WHOOP's first (dropped) webhook to its first document on "
        "`whoop.documents.v1`; calls are counted by the fetcher and, independently, by the simulator.",
        "",
        "| | " + " | ".join(f"{d['drop_rate']:.0%} dropped" for d in days) + " |",
        "|---|" + "---:|" * len(days),
    ]
    columns = [day_rows(d) for d in days]
    labels = [label for label, _ in columns[0]]
    for label in labels:
        values = []
        for rows in columns:
            match = [v for lbl, v in rows if lbl == label]
            values.append(match[0] if match else "-")
        lines.append(f"| {label} | " + " | ".join(values) + " |")
    extra = sorted({lbl for rows in columns[1:] for lbl, _ in rows} - set(labels))
    for label in extra:
        values = [next((v for lbl, v in rows if lbl == label), "-") for rows in columns]
        lines.append(f"| {label} | " + " | ".join(values) + " |")
    misses = [m for d in days for m in day_misses(d)]
    lines += ["", "Targets: " + ("all met." if not misses else "MISSED: " + "; ".join(misses)), ""]
    return "\n".join(lines)


def write_day(text: str) -> None:
    """Replace the (a) calls subsection of the Fetcher section, keep the rest."""
    body = BENCHMARKS.read_text()
    pattern = re.compile(r"^### \(a\) WHOOP calls per .*?(?=^### \(a\) Backfill)", re.S | re.M)
    if not pattern.search(body):
        raise SystemExit("no (a) subsection in BENCHMARKS.md's Fetcher section")
    BENCHMARKS.write_text(pattern.sub(lambda _: text.rstrip("\n") + "\n\n", body, count=1))


def section(day: dict[str, Any], backfill: dict[str, Any], latency: list[dict[str, Any]], load: str) -> str:
    backfill_ratio = backfill["calls"] / max(1, backfill["docs"])
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    lines = [
        SECTION,
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} on this machine ({machine}) by "
        f"`.venv/bin/python bench/bench_fetcher.py`. {load}",
        "",
        day_section([day], ""),
        "",
        "### (a) Backfill",
        "",
        f"{backfill['members']} members, 90 days each, all four collections, `limit=25` + `nextToken`, "
        f"quota 100/min on a clock {backfill['factor']:g}x faster ({backfill['wall_s']:.0f} s of wall time).",
        "",
        *_rows(
            [
                ("pages (= calls) / documents", f"{backfill['calls']:,} / {backfill['docs']:,}"),
                ("**calls per document** (target <= 0.05)", f"**{backfill_ratio:.3f}**"),
                (
                    "most calls in any 60 s (simulator / our grants; limit 100, backfill may take 70)",
                    f"{backfill['sim_max_60s']} / {backfill['max_minute']}",
                ),
                ("429s from the simulator", f"{backfill['sim_rejected']}"),
            ]
        ),
        "",
        "### (b) Latency, webhook to document and to canonical record, quota not binding",
        "",
        "Real time; workouts (80 %) and scored sleeps (20 %) created through the simulator's control API "
        "at a steady rate; latency = Kafka timestamp of the `DocumentFetched` (or of the normalizer's "
        "record) minus that of the `WebhookReceived` that caused it (one host clock). A webhook whose "
        "fetch found nothing new appends nothing and is not counted. Two runs per setting: the spread "
        "between runs is the machine, not the fetcher (other work shares its 2 cores and its broker).",
        "",
        "| coalescing: window (busy) / idle wait | changes | documents | webhook → document p50 / p99 "
        "| → wear.records.v1 p50 / p99 |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in latency:
        record = (
            f"{row['record_p50']:.0f} / {row['record_p99']:.0f} ms ({row['records']})"
            if row["normalizer"]
            else "normalizer not present"
        )
        lines.append(
            f"| {row['coalesce_window_s']:g} / {row['coalesce_idle_s']:g} s | "
            f"{row['events']} at {row['rate']:g}/s | {row['docs']} | "
            f"{row['doc_p50']:.0f} / {row['doc_p99']:.0f} ms | {record} |"
        )
    misses = []
    if backfill_ratio > 0.05:
        misses.append(f"backfill {backfill_ratio:.3f} > 0.05")
    lines += ["", "Targets: " + ("all met." if not misses else "MISSED: " + "; ".join(misses)), ""]
    return "\n".join(lines)


def write(text: str) -> None:
    body = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(body):
        body = pattern.sub(lambda _: text.rstrip("\n") + "\n\n", body)
    else:
        body = body.rstrip("\n") + "\n\n" + text
    BENCHMARKS.write_text(body.rstrip("\n") + "\n")


async def main(args: argparse.Namespace) -> None:
    if args.only_day:  # (a) calls at 1 % and 10 % dropped; the backfill and (b) figures are kept
        days = [orjson.loads(Path(p).read_bytes()) for p in args.from_json]  # noqa: ASYNC240 - before any I/O
        for rate in args.drop_rates if not days else ():
            days.append(await bench_day(args, rate))
            print(days[-1], flush=True)  # noqa: T201 - a benchmark reports
            if args.save_json:
                saved = orjson.dumps(days[-1], default=str, option=orjson.OPT_NON_STR_KEYS)
                Path(args.save_json).write_bytes(saved)  # noqa: ASYNC240
        text = day_section(days, f"Load average (1 min) after the run: {os.getloadavg()[0]:.2f}.")
        print(text)  # noqa: T201
        if not args.no_write:
            write_day(text)
        return
    if args.only_latency:
        print([await bench_latency(args, *c) for c in LATENCY_SETTINGS])  # noqa: T201 - a benchmark reports
        return
    day = await bench_day(args)
    print(day, flush=True)  # noqa: T201 - a benchmark reports
    backfill = await bench_backfill(args)
    print(backfill, flush=True)  # noqa: T201
    latency = [await bench_latency(args, *c) for c in LATENCY_SETTINGS * 2]  # two runs each
    print(latency, flush=True)  # noqa: T201
    load = f"Load average (1 min) after the run: {os.getloadavg()[0]:.2f}."
    text = section(day, backfill, latency, load)
    print(text)  # noqa: T201
    if not args.no_write:
        write(text)


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--serve-simulator", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--days", type=int, default=3, help=argparse.SUPPRESS)
    parser.add_argument("--start", default="", help=argparse.SUPPRESS)
    parser.add_argument("--anchor", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", default="", help=argparse.SUPPRESS)
    parser.add_argument("--webhooks", default="", help=argparse.SUPPRESS)
    parser.add_argument("--quota-per-minute", type=int, default=100, help=argparse.SUPPRESS)
    parser.add_argument("--quota-per-day", type=int, default=10_000, help=argparse.SUPPRESS)
    parser.add_argument("--duplicate-rate", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--drop-rate", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--reorder", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=42, help="seed of the members and the day plan")
    parser.add_argument("--members", type=int, default=1000, help="members of the simulated day")
    parser.add_argument("--factor", type=float, default=144.0, help="speed-up of the simulated day's clock")
    parser.add_argument(
        "--tail-hours", type=float, default=4.0, help="simulated hours measured after the day"
    )
    parser.add_argument(
        "--day-hours", type=float, default=24.0, help="length of the simulated day (smoke tests)"
    )
    parser.add_argument(
        "--recovery-hours",
        type=float,
        default=24.0,
        help="simulated hours after the day given to recovering dropped webhooks' records",
    )
    parser.add_argument(
        "--only-day", action="store_true", help="run (a) calls per record only (both drop rates)"
    )
    parser.add_argument(
        "--drop-rates",
        type=float,
        nargs="+",
        default=[0.01, 0.10],
        help="(a) webhook drop rates, one run each",
    )
    parser.add_argument(
        "--save-json", default="", help="(a) with --only-day: save the last run's figures here"
    )
    parser.add_argument(
        "--from-json", nargs="*", default=[], help="(a) with --only-day: write the section from saved runs"
    )
    parser.add_argument("--backfill-members", type=int, default=100, help="members backfilled over 90 days")
    parser.add_argument("--latency-events", type=int, default=400, help="changes created for (b)")
    parser.add_argument("--latency-rate", type=float, default=10.0, help="changes per second for (b)")
    parser.add_argument("--quick", action="store_true", help="a small, short run: a smoke test")
    parser.add_argument("--only-latency", action="store_true", help="run (b) only and print it")
    parser.add_argument(
        "--no-write", action="store_true", help="print the section, leave BENCHMARKS.md alone"
    )
    args = parser.parse_args()
    if args.quick:
        args.members, args.factor, args.backfill_members, args.latency_events = 100, 288.0, 10, 100
        args.day_hours, args.tail_hours, args.recovery_hours = 4.0, 1.0, 4.0
    return args


if __name__ == "__main__":
    arguments = _args()
    if arguments.serve_simulator:
        serve_simulator(arguments)
    else:
        asyncio.run(main(arguments))
