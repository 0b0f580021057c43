"""Benchmarks of the projections: (a) rebuild of the read models from the log, (b) the query API under load.

(a) Rebuild. Measured by ``bench/bench_rebuild.py`` (consume-only, the bulk load and the live
upserts, as ``python -m projections rebuild`` runs them), whose figures this script keeps. Here a
fresh topic shaped like ``wear.records.v1`` receives ``--members`` x ``--days`` canonical records
and ``ProjectionWorker`` projects them into a fresh schema: the data the query API serves in (b).

(b) Query API. ``python -m projections api`` (one process, uvicorn + httptools + uvloop) serves the
rebuilt schema; every member gets an API token. ``wrk`` with 64 connections and a Lua script that
picks, per request, a random member (and that member's token) and a random 30-day window inside the
member's history, on one of the four phone-contract collections (``/v1/data/{user}/{kind}?start&end``,
a page of up to 25 WHOOP records), then on ``fetchRange`` (``/v1/data/{user}/metrics``, every record
of the 30 days as WearMetrics). Baseline: a one-route Starlette app under the same uvicorn settings.
Figures and method go to the ``## Projections and query API`` section of ``BENCHMARKS.md``.

Run: ``.venv/bin/python bench/bench_projections.py`` (Kafka and PostgreSQL up: ``make up``; ``wrk``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import orjson  # noqa: E402
import uvloop  # noqa: E402
from aiokafka import TopicPartition  # noqa: E402

from bench.serving import wait_until_serving  # noqa: E402
from infra.appender import DurableAppender  # noqa: E402
from infra.db import create_pool  # noqa: E402
from infra.dead_letters import DeadLetters  # noqa: E402
from infra.kafka import make_consumer, make_producer  # noqa: E402
from infra.member_keys import MemberKeys  # noqa: E402
from infra.settings import KafkaSettings, PostgresSettings  # noqa: E402
from infra.topic_admin import ensure_topics  # noqa: E402
from infra.vault import ApiTokens  # noqa: E402
from projections.decode import decode_record  # noqa: E402
from projections.runner import ProjectionWorker, projection_consumer  # noqa: E402
from projections.settings import ProjectionsSettings, Settings  # noqa: E402
from schemas.identity import user_id_for_whoop_member  # noqa: E402
from schemas.keys import record_key  # noqa: E402
from schemas.topics import topic  # noqa: E402

BENCHMARKS = ROOT / "BENCHMARKS.md"
SECTION = "## Projections and query API"
REBUILD = "### (a) Rebuild of the read models from the log"
API_TARGET = 2_000.0
P99_TARGET_MS = 25.0
T0 = datetime(2024, 1, 1, 6, 0, tzinfo=UTC)
TZ = "-04:00"
_LOCAL = timezone(timedelta(hours=-4))
F = TypeVar("F", bound=Callable[..., Any])


# --- the records ---------------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _envelope(event_type: str, user_id: str, whoop_id: int, occurred: datetime) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": _iso(occurred),
        "user_id": user_id,
        "source": "normalizer",
        "causation_id": None,
        "trace_id": None,
        "whoop_user_id": whoop_id,
        "normalizer_version": 1,
    }


def member_days(whoop_id: int, days: int, rng: random.Random) -> Iterator[tuple[bytes, bytes]]:
    """``(key, value)`` of a member's ``days``: sleep, recovery, cycle, sometimes a nap and a workout."""
    user = user_id_for_whoop_member(whoop_id)
    base_cycle = 1_000_000_000 + whoop_id * 10_000
    onset = T0 + timedelta(minutes=rng.randint(-40, 40))
    for i in range(days):
        next_onset = T0 + timedelta(days=i + 1, minutes=rng.randint(-40, 40))
        wake = onset + timedelta(hours=7, minutes=rng.randint(0, 90))
        updated = wake + timedelta(minutes=20)
        cycle_id = base_cycle + i
        sleep_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        day = wake.astimezone(_LOCAL).date().isoformat()
        yield from _sleep(user, whoop_id, sleep_id, cycle_id, onset, wake, updated, False, day, rng)
        score = float(rng.randint(10, 99))
        hrv, rhr = round(rng.uniform(30, 110), 3), float(rng.randint(45, 65))
        rec = _envelope("RecoveryRecorded", user, whoop_id, updated)
        rec.update(
            whoop_updated_at=_iso(updated),
            score_state="SCORED",
            document={
                "cycle_id": cycle_id,
                "sleep_id": sleep_id,
                "user_id": whoop_id,
                "created_at": _iso(wake + timedelta(minutes=5)),
                "updated_at": _iso(updated),
                "score_state": "SCORED",
                "score": {
                    "user_calibrating": False,
                    "recovery_score": score,
                    "resting_heart_rate": rhr,
                    "hrv_rmssd_milli": hrv,
                    "spo2_percentage": 96.25,
                    "skin_temp_celsius": 33.8,
                },
            },
            cycle_id=cycle_id,
            sleep_id=sleep_id,
            local_date=day,
            user_calibrating=False,
            recovery_score_pct=score,
            resting_heart_rate_bpm=rhr,
            hrv_rmssd_ms=hrv,
            spo2_pct=96.25,
            skin_temp_c=33.8,
        )
        yield record_key(user, "recovery", str(cycle_id)), orjson.dumps(rec)
        strain, kj = round(rng.uniform(4, 20), 4), round(rng.uniform(6000, 14000), 1)
        cycle_updated = next_onset + timedelta(hours=8)
        cyc = _envelope("CycleRecorded", user, whoop_id, cycle_updated)
        cyc.update(
            whoop_updated_at=_iso(cycle_updated),
            score_state="SCORED",
            document={
                "id": cycle_id,
                "user_id": whoop_id,
                "created_at": _iso(wake),
                "updated_at": _iso(cycle_updated),
                "start": _iso(onset),
                "end": _iso(next_onset),
                "timezone_offset": TZ,
                "score_state": "SCORED",
                "score": {"strain": strain, "kilojoule": kj, "average_heart_rate": 64, "max_heart_rate": 171},
            },
            cycle_id=cycle_id,
            start=_iso(onset),
            end=_iso(next_onset),
            timezone_offset=TZ,
            local_date=day,
            strain=strain,
            energy_kcal=kj / 4.184,
            average_heart_rate_bpm=64,
            max_heart_rate_bpm=171,
        )
        yield record_key(user, "cycle", str(cycle_id)), orjson.dumps(cyc)
        if rng.random() < 0.2:
            nap_start = wake + timedelta(hours=7)
            nap_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            nap_end = nap_start + timedelta(minutes=35)
            nap_day = nap_end.astimezone(_LOCAL).date().isoformat()
            yield from _sleep(
                user, whoop_id, nap_id, cycle_id, nap_start, nap_end, nap_end, True, nap_day, rng
            )
        if rng.random() < 0.5:
            yield _workout(user, whoop_id, wake + timedelta(hours=10), rng)
        onset = next_onset


def _sleep(
    user: str,
    whoop_id: int,
    sleep_id: str,
    cycle_id: int,
    start: datetime,
    end: datetime,
    updated: datetime,
    nap: bool,
    day: str,
    rng: random.Random,
) -> Iterator[tuple[bytes, bytes]]:
    in_bed = int((end - start).total_seconds() * 1000)
    awake, light, sws = in_bed // 10, in_bed * 4 // 10, in_bed * 2 // 10
    rem = in_bed - awake - light - sws
    performance = float(rng.randint(60, 100))
    record = _envelope("SleepRecorded", user, whoop_id, updated)
    record.update(
        whoop_updated_at=_iso(updated),
        score_state="SCORED",
        document={
            "id": sleep_id,
            "cycle_id": cycle_id,
            "v1_id": None,
            "user_id": whoop_id,
            "created_at": _iso(end + timedelta(minutes=5)),
            "updated_at": _iso(updated),
            "start": _iso(start),
            "end": _iso(end),
            "timezone_offset": TZ,
            "nap": nap,
            "score_state": "SCORED",
            "score": {
                "stage_summary": {
                    "total_in_bed_time_milli": in_bed,
                    "total_awake_time_milli": awake,
                    "total_no_data_time_milli": 0,
                    "total_light_sleep_time_milli": light,
                    "total_slow_wave_sleep_time_milli": sws,
                    "total_rem_sleep_time_milli": rem,
                    "sleep_cycle_count": 4,
                    "disturbance_count": 7,
                },
                "sleep_needed": {
                    "baseline_milli": 27_000_000,
                    "need_from_sleep_debt_milli": 1_000_000,
                    "need_from_recent_strain_milli": 300_000,
                    "need_from_recent_nap_milli": 0,
                },
                "respiratory_rate": 15.25,
                "sleep_performance_percentage": performance,
                "sleep_consistency_percentage": 70.0,
                "sleep_efficiency_percentage": 90.0,
            },
        },
        sleep_id=sleep_id,
        cycle_id=cycle_id,
        nap=nap,
        start=_iso(start),
        end=_iso(end),
        timezone_offset=TZ,
        local_date=day,
        in_bed_ms=in_bed,
        awake_ms=awake,
        light_ms=light,
        slow_wave_ms=sws,
        rem_ms=rem,
        no_data_ms=0,
        asleep_ms=light + sws + rem,
        sleep_needed_ms=28_300_000,
        sleep_cycle_count=4,
        disturbance_count=7,
        respiratory_rate_bpm=15.25,
        performance_pct=performance,
        consistency_pct=70.0,
        efficiency_pct=90.0,
    )
    yield record_key(user, "sleep", sleep_id), orjson.dumps(record)


def _workout(user: str, whoop_id: int, start: datetime, rng: random.Random) -> tuple[bytes, bytes]:
    workout_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    end = start + timedelta(minutes=45)
    updated = end + timedelta(minutes=10)
    zones = [42_110, 318_204, 905_322, 1_104_987, 367_926, 0]
    kj = round(rng.uniform(800, 3000), 2)
    record = _envelope("WorkoutRecorded", user, whoop_id, updated)
    record.update(
        whoop_updated_at=_iso(updated),
        score_state="SCORED",
        document={
            "id": workout_id,
            "v1_id": None,
            "user_id": whoop_id,
            "created_at": _iso(end + timedelta(minutes=2)),
            "updated_at": _iso(updated),
            "start": _iso(start),
            "end": _iso(end),
            "timezone_offset": TZ,
            "sport_name": "running",
            "score_state": "SCORED",
            "score": {
                "strain": 11.07,
                "average_heart_rate": 152,
                "max_heart_rate": 178,
                "kilojoule": kj,
                "percent_recorded": 100.0,
                "distance_meter": 8046.7,
                "altitude_gain_meter": 38.2,
                "altitude_change_meter": -2.6,
                "zone_durations": dict(
                    zip(
                        (
                            "zone_zero_milli",
                            "zone_one_milli",
                            "zone_two_milli",
                            "zone_three_milli",
                            "zone_four_milli",
                            "zone_five_milli",
                        ),
                        zones,
                        strict=True,
                    )
                ),
            },
            "sport_id": 0,
        },
        workout_id=workout_id,
        sport_name="running",
        sport_id=0,
        start=_iso(start),
        end=_iso(end),
        timezone_offset=TZ,
        local_date=start.astimezone(_LOCAL).date().isoformat(),
        strain=11.07,
        energy_kcal=kj / 4.184,
        average_heart_rate_bpm=152,
        max_heart_rate_bpm=178,
        percent_recorded=100.0,
        distance_m=8046.7,
        altitude_gain_m=38.2,
        altitude_change_m=-2.6,
        zone_ms=zones,
    )
    return record_key(user, "workout", workout_id), orjson.dumps(record)


def records(members: int, days: int, seed: int = 1) -> Iterator[tuple[bytes, bytes]]:
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not a secret
    for member in range(members):
        yield from member_days(100_000 + member, days, rng)


# --- (a) rebuild -----------------------------------------------------------------------------------


@dataclass
class Phases:
    """Wall time spent in each instrumented phase of the rebuild (seconds) and how often."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    cpu: dict[str, float] = field(default_factory=dict)  # share of one core during the rebuild

    def timed(self, name: str, function: F) -> F:
        if asyncio.iscoroutinefunction(function):

            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return await function(*args, **kwargs)
                finally:
                    self.seconds[name] += time.perf_counter() - start
                    self.calls[name] += 1

            return async_wrapper  # type: ignore[return-value]

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start
                self.calls[name] += 1

        return wrapper  # type: ignore[return-value]


async def produce(kafka: KafkaSettings, name: str, members: int, days: int) -> tuple[int, float]:
    producer = make_producer(kafka, "bench-records", linger_ms=20, max_batch_size=1_048_576)
    await producer.start()
    count = 0
    started = time.perf_counter()
    try:
        pending = []
        for key, value in records(members, days):
            pending.append(await producer.send(name, value=value, key=key))
            count += 1
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count, time.perf_counter() - started


async def consume_only(kafka: KafkaSettings, name: str, total: int, decode: bool) -> float:
    """Seconds to read ``total`` records from offset 0 (and decode each, if asked)."""
    own = ProjectionsSettings()
    consumer = make_consumer(
        kafka,
        "bench-consume",
        None,
        max_poll_records=own.batch_max_records,
        fetch_max_bytes=own.fetch_max_bytes,
        max_partition_fetch_bytes=own.max_partition_fetch_bytes,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(name, p) for p in range(topic("wear.records.v1").partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen = 0
        started = time.perf_counter()
        while seen < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=own.batch_max_records)
            for items in batch.values():
                seen += len(items)
                if decode:
                    for item in items:
                        decode_record(item.key, item.value, item.topic, item.partition, item.offset)
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def rebuild(
    settings: Settings, pool: asyncpg.Pool, name: str, total: int, phases: Phases, workers: int = 1
) -> float:
    """Seconds for ``workers`` ``ProjectionWorker`` (one consumer group) to apply every record from 0."""
    consumers = [projection_consumer(settings) for _ in range(workers)]
    producer = make_producer(settings.kafka, "bench-dlq")
    await producer.start()
    for consumer in consumers:
        await consumer.start()
    running = [
        ProjectionWorker(
            consumer,
            pool,
            settings.projections,
            DeadLetters(DurableAppender(producer), "projections"),
            keys=MemberKeys(settings.vault.keyring()),
        )
        for consumer in consumers
    ]
    stop = asyncio.Event()
    before = _ticks(os.getpid())
    started = time.perf_counter()
    tasks = [asyncio.create_task(worker.run(stop)) for worker in running]
    try:
        while sum(worker.exactly_once.applied for worker in running) < total:
            for task in tasks:
                if task.done():
                    task.result()
                    raise RuntimeError("a worker stopped before the end")
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        after = _ticks(os.getpid())
        phases.cpu = {
            "projection process": (after["API process"] - before["API process"]) / elapsed,
            "PostgreSQL": (after["PostgreSQL"] - before["PostgreSQL"]) / elapsed,
        }
        return elapsed
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
        for consumer in consumers:
            await consumer.stop()
        await producer.stop()


@dataclass
class RebuildResult:
    records: int
    members: int
    days: int
    produce_s: float
    rebuild_s: float
    tables: dict[str, int]


_BASE_TABLES = ("rm_cycles", "rm_sleeps", "rm_recoveries", "rm_workouts")


async def row_counts(pool: asyncpg.Pool) -> dict[str, int]:
    """Rows of each read model a rebuild writes (the passes are compared by them)."""
    return {
        t: await pool.fetchval(f"SELECT count(*) FROM {t}")  # noqa: S608 - fixed names
        for t in (*_BASE_TABLES, "rm_daily_summaries", "rm_sync_status")
    }


async def bench_rebuild(args: argparse.Namespace, database_url: str, schema: str) -> RebuildResult:
    kafka = KafkaSettings()
    spec = replace(topic("wear.records.v1"), name=f"bench.wear.records.v1.{uuid.uuid4().hex[:8]}")
    await ensure_topics(kafka, [spec, spec.dlq()])
    try:
        return await _rebuild_on(args, kafka, spec.name, database_url, schema)
    finally:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.kafka_bootstrap_servers)
        await admin.start()
        try:
            await admin.delete_topics([spec.name, spec.dlq().name])
        finally:
            await admin.close()


async def _rebuild_on(
    args: argparse.Namespace, kafka: KafkaSettings, name: str, database_url: str, schema: str
) -> RebuildResult:
    total, produce_s = await produce(kafka, name, args.members, args.days)
    print(f"produced {total:,} records in {produce_s:.1f} s")  # noqa: T201
    settings = Settings(
        ProjectionsSettings(
            records_topic=name,
            group_id=f"bench-{uuid.uuid4().hex[:8]}",
            activity_topics=(),
            batch_max_records=args.batch,
        ),
        kafka,
        PostgresSettings(database_url=f"{database_url}?search_path={schema}"),
    )
    pool = await create_pool(PostgresSettings(database_url=database_url), schema=schema)
    try:
        rebuild_s = await rebuild(settings, pool, name, total, Phases())
        print(f"projected: {total / rebuild_s:,.0f} records/s")  # noqa: T201
        tables = await row_counts(pool)
    finally:
        await pool.close()
    return RebuildResult(total, args.members, args.days, produce_s, rebuild_s, tables)


# --- (b) query API ---------------------------------------------------------------------------------

LUA = """
local members = {
%(members)s
}
local kinds = {%(kinds)s}
local t0 = %(t0)d
local span = %(span)d
local path = "%(path)s"
local counter = 0

setup = function(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

init = function(args)
  math.randomseed(seed * 7919 + os.time())
end

request = function()
  local m = members[math.random(#members)]
  local kind = kinds[math.random(#kinds)]
  local s = t0 + math.random(0, span) * 86400
  local fmt = "!%%Y-%%m-%%dT%%H:%%M:%%SZ"
  local q = "?start=" .. os.date(fmt, s) .. "&end=" .. os.date(fmt, s + 30 * 86400)
  local p = string.gsub(string.gsub(path, "{user}", m[1]), "{kind}", kind)
  return wrk.format("GET", p .. q, {["Authorization"] = "Bearer " .. m[2]})
end
"""


@dataclass
class WrkRun:
    rate: float
    p50_ms: float
    p99_ms: float
    requests: int
    cpu: dict[str, float] = field(default_factory=dict)  # share of one core during the run, by process


def _ticks(server_pid: int | None) -> dict[str, float]:
    """CPU seconds used so far by the server process, by PostgreSQL's processes and by our children."""
    hertz = os.sysconf("SC_CLK_TCK")
    totals = {"API process": 0.0, "PostgreSQL": 0.0}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        used = (int(fields[11]) + int(fields[12])) / hertz
        if int(entry) == server_pid:
            totals["API process"] += used
        elif name == "postgres":
            totals["PostgreSQL"] += used
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    totals["wrk"] = children.ru_utime + children.ru_stime
    return totals


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(
    url: str, script: Path | None, seconds: int, connections: int, threads: int, server_pid: int | None = None
) -> WrkRun:
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    argv = [binary, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        argv += ["-s", str(script)]
    before, started = _ticks(server_pid), time.monotonic()
    out = subprocess.run([*argv, url], check=True, capture_output=True, text=True).stdout  # noqa: S603
    after, elapsed = _ticks(server_pid), time.monotonic() - started
    cpu = {name: (after[name] - before[name]) / elapsed for name in before}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors is not None:
        raise RuntimeError(f"wrk saw {errors.group(1)} error responses:\n{out}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    p50 = re.search(r"50%\s+([\d.]+\w+)", out)
    p99 = re.search(r"99%\s+([\d.]+\w+)", out)
    if not (rate and total and p50 and p99):
        raise RuntimeError(out)
    return WrkRun(float(rate.group(1)), _ms(p50.group(1)), _ms(p99.group(1)), int(total.group(1)), cpu)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _serve_baseline(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def hello(request: Request) -> Response:
        return Response(b'{"records":[],"next_token":null}', media_type="application/json")

    app = Starlette(routes=[Route("/baseline", hello)])
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="uvloop",
    )


async def issue_tokens(database_url: str, schema: str) -> list[tuple[str, str]]:
    pool = await create_pool(PostgresSettings(database_url=database_url), schema=schema, migrate=False)
    try:
        users = [
            row["user_id"] for row in await pool.fetch("SELECT user_id FROM rm_sync_status ORDER BY user_id")
        ]
        tokens = ApiTokens()
        return [(user, (await tokens.issue(pool, user)).token) for user in users]
    finally:
        await pool.close()


async def render_cost(database_url: str, schema: str) -> float:
    """Milliseconds PostgreSQL adds to a page for rendering its 25 documents as text (sleeps, medians)."""
    connection = await asyncpg.connect(database_url, server_settings={"search_path": schema})
    try:
        users = [row[0] for row in await connection.fetch("SELECT user_id FROM rm_sync_status")]
        rng = random.Random(3)  # noqa: S311 - picks members, not a secret
        page = "FROM rm_sleeps WHERE user_id = $1 ORDER BY start_at DESC LIMIT 25"
        queries = {
            "ids": f"SELECT count(*) FROM (SELECT sleep_id {page}) x",  # noqa: S608 - fixed text
            "text": f"SELECT sum(length(d)) FROM (SELECT document::text AS d {page}) x",  # noqa: S608
        }
        samples: dict[str, list[float]] = {"ids": [], "text": []}
        for _ in range(3):
            for name, sql in queries.items():
                started = time.perf_counter()
                for _ in range(300):
                    await connection.fetchval(sql, rng.choice(users))
                samples[name].append((time.perf_counter() - started) / 300 * 1000)
        return float(statistics.median(samples["text"]) - statistics.median(samples["ids"]))
    finally:
        await connection.close()


@dataclass
class ApiResult:
    members: int
    connections: int
    seconds: int
    runs: dict[str, list[WrkRun]]
    profile: str
    render_ms: float


def bench_api(args: argparse.Namespace, database_url: str, schema: str) -> ApiResult:
    members = _run(issue_tokens(database_url, schema))
    api_port, base_port = _free_port(), _free_port()
    env = dict(
        os.environ,
        DATABASE_URL=f"{database_url}?search_path={schema}",
        PROJECTIONS_API_PORT=str(api_port),
        PROJECTIONS_LOG_LEVEL="WARNING",
    )
    api = subprocess.Popen([sys.executable, "-m", "projections", "api"], cwd=ROOT, env=env)
    base = subprocess.Popen([sys.executable, __file__, "--serve-baseline", str(base_port)], cwd=ROOT)  # noqa: S603
    span = max(0, args.days - 30)
    runs: dict[str, list[WrkRun]] = {}
    try:
        wait_until_serving(f"http://127.0.0.1:{api_port}/openapi.json", api, 60)
        wait_until_serving(f"http://127.0.0.1:{base_port}/baseline", base, 60)
        with tempfile.TemporaryDirectory() as tmp:
            rows = ",\n".join(f'{{"{user}", "{token}"}}' for user, token in members)
            scripts = {}
            for name, path, kinds in (
                ("collections", "/v1/data/{user}/{kind}", '"recovery", "sleep", "workouts", "cycles"'),
                ("fetch_range", "/v1/data/{user}/metrics", '"-"'),
            ):
                script = Path(tmp) / f"{name}.lua"
                script.write_text(
                    LUA
                    % {"members": rows, "kinds": kinds, "t0": int(T0.timestamp()), "span": span, "path": path}
                )
                scripts[name] = script
            targets: list[tuple[str, str, Path | None]] = [
                ("baseline", f"http://127.0.0.1:{base_port}/baseline", None),
                ("collections", f"http://127.0.0.1:{api_port}", scripts["collections"]),
                ("fetch_range", f"http://127.0.0.1:{api_port}", scripts["fetch_range"]),
            ]
            wrk(targets[1][1], scripts["collections"], 3, args.connections, args.threads)  # warm-up
            for _ in range(args.runs):  # interleaved, so that drift hits every target alike
                for name, url, target_script in targets:
                    pid = base.pid if name == "baseline" else api.pid
                    runs.setdefault(name, []).append(
                        wrk(url, target_script, args.seconds, args.connections, args.threads, pid)
                    )
                    print(name, runs[name][-1])  # noqa: T201
    finally:
        for process in (api, base):
            process.terminate()
            process.wait(timeout=30)
    profile = profile_api(args, database_url, schema, members, span) if args.profile else ""
    render_ms = _run(render_cost(database_url, schema))
    return ApiResult(len(members), args.connections, args.seconds, runs, profile, render_ms)


def profile_api(
    args: argparse.Namespace, database_url: str, schema: str, members: list[tuple[str, str]], span: int
) -> str:
    """Where the API process spends its time: cProfile over one wrk run of the collections."""
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "api.prof"
        env = dict(
            os.environ,
            DATABASE_URL=f"{database_url}?search_path={schema}",
            PROJECTIONS_API_PORT=str(port),
            PROJECTIONS_LOG_LEVEL="WARNING",
        )
        argv = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "projections", "api"]
        server = subprocess.Popen(argv, cwd=ROOT, env=env)  # noqa: S603
        try:
            wait_until_serving(f"http://127.0.0.1:{port}/openapi.json", server, 60)
            rows = ",\n".join(f'{{"{user}", "{token}"}}' for user, token in members)
            script = Path(tmp) / "p.lua"
            script.write_text(
                LUA
                % {
                    "members": rows,
                    "kinds": '"recovery", "sleep", "workouts", "cycles"',
                    "t0": int(T0.timestamp()),
                    "span": span,
                    "path": "/v1/data/{user}/{kind}",
                }
            )
            wrk(f"http://127.0.0.1:{port}", script, 10, args.connections, args.threads)
        finally:
            server.send_signal(2)
            server.wait(timeout=60)
        import io
        import pstats

        text = io.StringIO()
        stats = pstats.Stats(str(out), stream=text)
        stats.sort_stats("tottime").print_stats(18)
        return text.getvalue()


# --- schema lifecycle ------------------------------------------------------------------------------


async def create_schema(database_url: str) -> str:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await connection.close()
    return schema


async def drop_schema(database_url: str, schema: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


def _run(coroutine: Awaitable[Any]) -> Any:
    return uvloop.run(coroutine)  # type: ignore[arg-type]


def _wrap(*parts: str) -> list[str]:
    """One paragraph from ``parts``, wrapped for the Markdown file."""
    return [*textwrap.wrap(" ".join(parts), width=105, break_on_hyphens=False), ""]


def _rebuild_part() -> list[str]:
    """The rebuild figures as ``bench/bench_rebuild.py`` last wrote them into ``BENCHMARKS.md``."""
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else ""
    found = re.search(rf"^{re.escape(REBUILD)}\n.*?(?=^### \(b\)|^## |\Z)", text, re.S | re.M)
    if found is None:
        return [REBUILD, "", "Measured by `bench/bench_rebuild.py`: run it.", ""]
    return [*found.group(0).rstrip("\n").split("\n"), ""]


def _section(rebuild: RebuildResult, api: ApiResult | None, load: tuple[float, float]) -> str:
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    lines = [SECTION, ""]
    lines += _wrap(
        f"Measured {time.strftime('%Y-%m-%d')} on this machine ({machine}; Kafka 4.3.1 and PostgreSQL 15",
        "on the same two cores, shared with the other engineers' work: load average",
        f"{load[0]:.2f} before, {load[1]:.2f} after) by `.venv/bin/python bench/bench_projections.py`",
        f"(the query API, over {rebuild.records:,} records projected by `ProjectionWorker` in",
        f"{rebuild.rebuild_s:.0f} s) and `bench/bench_rebuild.py` (the rebuild).",
    )
    lines += _rebuild_part()
    if api is not None:
        lines += _api_lines(api)
    lines += ["### (c) The whole pipeline (webhook in → data visible in the API)", ""]
    lines += _wrap(
        "Measured by `bench/bench_pipeline.py` with every stage running as its own process: see",
        "[Whole pipeline](#whole-pipeline) below.",
    )
    return "\n".join(lines)


def _api_lines(api: ApiResult) -> list[str]:
    def median(name: str, attribute: str) -> float:
        return float(statistics.median(getattr(run, attribute) for run in api.runs[name]))

    lines = ["### (b) Query API, 30-day windows of random members", ""]
    lines += _wrap(
        "Method: `python -m projections api` (one process: uvicorn, httptools, uvloop; default settings,",
        "so bearer authentication with its 2 s cache and the per-token rate limit are on) over the rebuilt",
        f"schema; each of the {api.members:,} members has an API token.",
        f"`wrk -t2 -c{api.connections} -d{api.seconds}s --latency` with a Lua script that picks, per",
        "request, a",
        "random member (with that member's token), a random 30-day window inside the member's history and,",
        "for the collections, one of recovery/sleep/workouts/cycles: a page of up to 25 WHOOP records",
        "(`/v1/data/{user}/{kind}?start&end`); for fetchRange, every record of the window as WearMetrics",
        "(`/v1/data/{user}/metrics?start&end`, ~110 items). Runs interleaved with a bare Starlette endpoint",
        "under the same uvicorn settings; medians reported; every answer was 2xx.",
    )
    lines += ["| target | req/s (median) | p50 ms | p99 ms | runs (req/s) |", "|---|---:|---:|---:|---|"]
    labels = {
        "baseline": "bare Starlette `GET /baseline`",
        "collections": "collections, 30-day window (<= 25 WHOOP records)",
        "fetch_range": "fetchRange `/metrics`, 30-day window",
    }
    for name in ("baseline", "collections", "fetch_range"):
        runs = ", ".join(f"{run.rate:,.0f}" for run in api.runs[name])
        lines.append(
            f"| {labels[name]} | {median(name, 'rate'):,.0f} | {median(name, 'p50_ms'):.1f} |"
            f" {median(name, 'p99_ms'):.1f} | {runs} |"
        )
    lines.append("")
    rate, p99 = median("collections", "rate"), median("collections", "p99_ms")
    verdict = "meets" if rate >= API_TARGET and p99 <= P99_TARGET_MS else "**misses**"
    cpu = {
        name: float(statistics.median(run.cpu.get(name, 0.0) for run in api.runs["collections"]))
        for name in ("API process", "PostgreSQL", "wrk")
    }
    needed = 64 / (P99_TARGET_MS / 1000)
    lines += _wrap(
        "CPU during the collections runs (median, share of one core; the two cores offer 200%):",
        f"API process {cpu['API process']:.0%}, PostgreSQL {cpu['PostgreSQL']:.0%},",
        f"wrk {cpu['wrk']:.0%}; the",
        "rest went to Kafka's broker and the other engineers' work. Per request that is",
        f"{cpu['API process'] / rate * 1000:.2f} ms of Python and",
        f"{cpu['PostgreSQL'] / rate * 1000:.2f} ms of",
        "PostgreSQL (one statement per page, plus a token lookup every 2 s per member), of which",
        f"rendering the 25 documents as text takes {api.render_ms:.2f} ms (measured apart in the same",
        "run). With 64 clients each waiting for its answer, the mean latency is 64 / rate =",
        f"{64 / rate * 1000:.0f} ms (Little's law): a p99 under {P99_TARGET_MS:.0f} ms at 64 clients needs",
        f"more than {needed:,.0f} req/s, i.e. under {2000 / needed:.2f} ms of CPU per request (Python,",
        "PostgreSQL and wrk together) on these two cores; the API is stateless and scales out by",
        "process (uvicorn workers, pods), PostgreSQL by read replicas.",
    )
    lines += _wrap(
        f"Collections: {rate:,.0f} req/s at p99 {p99:.1f} ms: it {verdict} the >= {API_TARGET:,.0f} req/s",
        f"with p99 <= {P99_TARGET_MS:.0f} ms target; the bare endpoint does",
        f"{median('baseline', 'rate'):,.0f}",
        "req/s on this box with wrk sharing the two cores.",
    )
    if api.profile:
        lines += _wrap(
            "Profile of the API process (cProfile over one 10 s wrk run of the collections; cProfile slows",
            "the process, the distribution is what matters; asyncpg's Cython protocol work is counted in",
            "`_do_execute`, `builtins.compile` is start-up):",
        )
        lines += [
            "```",
            *[line.rstrip() for line in api.profile.strip().splitlines() if line.strip()],
            "```",
            "",
        ]
    return lines


KEPT_SUBSECTIONS = ("### Live projection: before and after the codec",)
"""Subsections of this section written by other benchmarks (bench/bench_live_projection.py): kept."""


def _write(section: str) -> None:
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    found = pattern.search(text)
    if found:
        for heading in KEPT_SUBSECTIONS:
            kept = re.search(rf"^{re.escape(heading)}\n.*?(?=^### |^## |\Z)", found.group(0), re.S | re.M)
            if kept:
                section = section.rstrip("\n") + "\n\n" + kept.group(0).rstrip("\n") + "\n"
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    BENCHMARKS.write_text(text.rstrip("\n") + "\n")


def _api_only(args: argparse.Namespace) -> None:
    """(b) alone on a rebuilt schema kept by an earlier run (its --days must be given again)."""
    database_url = PostgresSettings().database_url
    api = bench_api(args, database_url, args.api_only)
    print("\n".join(_api_lines(api)))  # noqa: T201 - a benchmark reports on stdout


def main() -> None:
    os.environ.setdefault("PIPELINE_ENV", "dev")  # the servers it starts run on the public dev secrets
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1500)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seconds", type=int, default=15, help="length of each wrk run")
    parser.add_argument("--runs", type=int, default=3, help="wrk runs per target")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-api", action="store_true")
    parser.add_argument(
        "--batch", type=int, default=ProjectionsSettings().batch_max_records, help="records per transaction"
    )
    parser.add_argument("--profile", action="store_true", help="add a cProfile of the API process")
    parser.add_argument("--serve-baseline", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--no-write", action="store_true", help="print the section, leave BENCHMARKS.md alone"
    )
    parser.add_argument(
        "--keep-schema", action="store_true", help="leave the rebuilt schema in place (for --api-only)"
    )
    parser.add_argument(
        "--api-only",
        metavar="SCHEMA",
        help="only (b), on a schema a --keep-schema run left; prints its lines, never writes BENCHMARKS.md",
    )
    args = parser.parse_args()
    if args.serve_baseline:
        _serve_baseline(args.serve_baseline)
        return
    if args.api_only:
        _api_only(args)
        return
    load_before = os.getloadavg()[0]
    database_url = PostgresSettings().database_url
    schema = _run(create_schema(database_url))
    try:
        rebuild_result = _run(bench_rebuild(args, database_url, schema))
        api = None if args.skip_api else bench_api(args, database_url, schema)
    finally:
        if args.keep_schema:
            print(f"kept schema {schema}: --api-only {schema} --days {args.days}")  # noqa: T201
        else:
            _run(drop_schema(database_url, schema))
    section = _section(rebuild_result, api, (load_before, os.getloadavg()[0]))
    print(section)  # noqa: T201 - a benchmark reports on stdout
    if not args.no_write:
        _write(section)


if __name__ == "__main__":
    main()
