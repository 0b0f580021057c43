"""Benchmark of a read-model rebuild from the log: the bulk load, the live upserts and consume-only.

One fresh topic shaped like ``wear.records.v1`` (6 partitions) gets ``--members`` x ``--days`` of
canonical records (``bench_projections.records``: 1,500 x 180, about 1,000,000, WHOOP documents
inside), sealed with their member's data key as the normalizer writes them (ADR 0004). On it, in one
run, on a fresh, migrated PostgreSQL schema:

1. consume-only, the baseline: aiokafka reading the topic to its end with the projection's fetch
   settings, records counted and nothing else;
2. ``python -m projections rebuild --bulk --yes`` as a subprocess: a new version loaded through
   ``projections.bulk``, finished, verified and switched to; wall time from launch to exit.
   ``--runs`` times, each right after a consume-only pass (the machine is shared: ratios of
   neighbours, then medians), and each followed by the same command with its second load process
   left out (``projections.load_helper``; ``--skip-one-process`` leaves this out): before and after;
3. ``python -m projections rebuild --yes``: the same through the live upserts, once;
4. the bulk load in-process (``ProjectionWorker(version=N, store=BulkStore(...))``), its phases timed
   by wrapping the functions involved, once per loading technique and round; the first load is
   finished (``BulkStore.finish``) under other PostgreSQL settings in transactions rolled back, then
   for real, statement by statement;
5. PostgreSQL alone: the base tables' rows copied into empty tables with their keys and indexes, and
   into bare tables that get them after.

Figures and method replace the ``### (a) Rebuild of the read models from the log`` part of the
``## Projections and query API`` section of ``BENCHMARKS.md``.

Run: ``.venv/bin/python bench/bench_rebuild.py`` (Kafka and PostgreSQL up: ``make up``); about 12
minutes. ``--topic NAME --records N --plain`` reuses a topic of unsealed records (development).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import statistics
import sys
import textwrap
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import uvloop  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient  # noqa: E402

from bench.bench_projections import Phases, _ticks, consume_only, create_schema, drop_schema, records  # noqa: E402
from bench.report import BENCHMARKS  # noqa: E402
from infra.appender import DurableAppender  # noqa: E402
from infra.db import create_pool  # noqa: E402
from infra.dead_letters import DeadLetters  # noqa: E402
from infra.exactly_once import PipelinedConsumer  # noqa: E402
from infra.kafka import make_producer  # noqa: E402
from infra.member_keys import MemberKeys  # noqa: E402
from infra.settings import KafkaSettings, PostgresSettings  # noqa: E402
from infra.topic_admin import ensure_topics  # noqa: E402
from infra.vault import VaultSettings  # noqa: E402
from projections import runner, versions  # noqa: E402
from projections.bulk import BulkStore  # noqa: E402
from projections.read_model_ddl import VERSIONED_TABLES  # noqa: E402
from projections.runner import ProjectionWorker, projection_consumer  # noqa: E402
from projections.settings import ProjectionsSettings, Settings  # noqa: E402
from schemas.keys import user_of_key  # noqa: E402
from schemas.topics import topic  # noqa: E402

SUBSECTION = "### (a) Rebuild of the read models from the log"
RATE_TARGET = 50_000.0
RATIO_TARGET = 0.4
PAYS = 0.05  # a technique pays when it changes the time by more than this share (the noise of this box)
_BASE_TABLES = ("rm_cycles", "rm_sleeps", "rm_recoveries", "rm_workouts")
_LONG_S = 3600.0


def _say(line: str) -> None:
    print(line, flush=True)  # noqa: T201 - a benchmark reports on stdout


def _pool(database_url: str, schema: str, migrate: bool = False) -> Any:
    return create_pool(PostgresSettings(database_url=database_url), schema=schema, migrate=migrate)


# --- the records --------------------------------------------------------------------------------------


async def produce(
    kafka: KafkaSettings, name: str, members: int, days: int, keys: dict[str, bytes] | None
) -> tuple[int, float]:
    """Records of ``members`` x ``days`` into ``name``, sealed with ``keys`` (None: plain); (count, s)."""
    producer = make_producer(kafka, "bench-records", linger_ms=20, max_batch_size=1_048_576)
    await producer.start()
    count, started = 0, time.perf_counter()
    try:
        pending = []
        for key, value in records(members, days):
            if keys is not None:
                user = user_of_key(key).decode()
                value = MemberKeys.seal(keys[user], user, value)
            pending.append(await producer.send(name, value=value, key=key))
            count += 1
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count, time.perf_counter() - started


async def member_keys(database_url: str, schema: str, members: int, days: int) -> dict[str, bytes]:
    """Every member's data key, created in ``schema`` (``member_data_keys``)."""
    users = {user_of_key(key).decode() for key, _ in records(members, min(days, 1))}
    keys = MemberKeys(VaultSettings().keyring())
    pool = await _pool(database_url, schema)
    try:
        return {user: await keys.ensure(pool, user) for user in sorted(users)}
    finally:
        await pool.close()


# --- the command, as an operator runs it --------------------------------------------------------------


def _env(database_url: str, schema: str, records_topic: str, group: str, batch: int) -> dict[str, str]:
    return dict(
        os.environ,
        PIPELINE_ENV=os.environ.get("PIPELINE_ENV", "dev"),
        DATABASE_URL=f"{database_url}{'&' if '?' in database_url else '?'}search_path={schema}",
        PROJECTIONS_RECORDS_TOPIC=records_topic,
        PROJECTIONS_GROUP_ID=group,
        PROJECTIONS_ACTIVITY_TOPICS="",
        PROJECTIONS_BATCH_MAX_RECORDS=str(batch),
        PROJECTIONS_LOG_LEVEL="WARNING",
    )


_ONE_PROCESS = (
    "import sys; from projections import rebuild_steps; rebuild_steps.HELPER_MIN_RECORDS = 1 << 62;"
    " from projections.__main__ import main; sys.exit(main(sys.argv[1:]))"
)
"""The command with its second load process left out (``projections.load_helper``): the load before it."""


async def run_command(env: dict[str, str], bulk_load: bool, one_process: bool = False) -> float:
    """Seconds of ``python -m projections rebuild [--bulk] --yes``, from launch to exit (``one_process``:
    without the second load process of a bulk load)."""
    start = ["-c", _ONE_PROCESS] if one_process else ["-m", "projections"]
    argv = [sys.executable, *start, "rebuild", "--yes", *(["--bulk"] if bulk_load else [])]
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    seconds = time.perf_counter() - started
    text = " ".join((out + err).decode("utf-8", "replace").replace("\r", "\n").split())
    if process.returncode != 0:
        raise RuntimeError(f"rebuild exited {process.returncode}: {text[-2000:]}")
    if (summary := re.search(r"rebuilt: .*", text)) is not None:
        _say(summary.group(0)[:200])
    return seconds


async def serve_the_first(database_url: str, schema: str) -> None:
    """Serve version 1 (empty) again and drop every other: each run then builds beside the same state."""
    pool = await _pool(database_url, schema)
    try:
        async with pool.acquire() as connection, connection.transaction():
            if (await versions.serving(connection)).number != 1:
                await versions.switch(connection, 1, force=True)
            for version in await versions.all_versions(connection):
                if version.number != 1:
                    await versions.drop(connection, version.number)
    finally:
        await pool.close()


# --- the bulk load in-process, phase by phase ---------------------------------------------------------


class _UnnestConnection:
    """A connection whose COPY is an ``INSERT ... SELECT FROM unnest($1, $2, ...)`` (arrays, binary)."""

    def __init__(self, connection: Any, types: dict[str, dict[str, str]]) -> None:
        self._connection = connection
        self._types = types

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    async def copy_records_to_table(
        self, table: str, *, records: list[tuple[Any, ...]], columns: Any
    ) -> None:
        if table not in self._types:
            rows = await self._connection.fetch(
                "SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute"
                " WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped",
                table,
            )
            self._types[table] = {row["attname"]: row["type"] for row in rows}
        types = self._types[table]
        arrays = ", ".join(f"${i}::{types[c]}[]" for i, c in enumerate(columns, 1))
        sql = f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays})"  # noqa: S608 - bench
        await self._connection.execute(sql, *(list(column) for column in zip(*records, strict=True)))


@dataclass(frozen=True)
class Technique:
    """One way to load: the store, the batch size (0: ``--batch``), and whether COPY is replaced."""

    label: str
    store: Callable[[], BulkStore]
    batch: int = 0
    unnest: bool = False


TECHNIQUES = {
    "default": Technique(
        "BulkStore() as shipped: staging UNLOGGED, COPY binary, synchronous_commit off", BulkStore
    ),
    "logged": Technique("staging tables logged (WAL)", lambda: BulkStore(unlogged=False)),
    "sync": Technique(
        "synchronous_commit on (a WAL flush per batch)", lambda: BulkStore(synchronous_commit=True)
    ),
    "unnest": Technique("INSERT ... SELECT FROM unnest(arrays) instead of COPY", BulkStore, unnest=True),
    "batch": Technique("batches of 20,000 records (4x fewer transactions)", BulkStore, batch=20_000),
}


@dataclass
class Load:
    technique: str
    seconds: float
    phases: Phases
    postgres_cpu_s: float = 0.0  # every postgres process's CPU seconds during the load
    wal_mb: float = 0.0  # WAL written by the whole server during the load


_WAL = "SELECT pg_current_wal_lsn()"
_WAL_SINCE = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)"


@asynccontextmanager
async def _instrumented(phases: Phases, unnest: bool) -> AsyncIterator[None]:
    """Wrap the load's phases with timers (the code itself is unchanged); unwrap after."""
    staging = BulkStore.apply_changes
    types: dict[str, dict[str, str]] = {}

    async def apply_changes(self: BulkStore, connection: Any, changes: Any) -> None:
        target: Any = _UnnestConnection(connection, types) if unnest else connection
        await staging(self, target, changes)

    wrapped: list[tuple[object, str, str, Callable[..., Any]]] = [
        (runner, "decode_record", "decode", getattr(runner, "decode_record")),  # noqa: B009
        (runner, "open_with", "open (AES-GCM)", getattr(runner, "open_with")),  # noqa: B009
        (runner, "plan_batch", "fold (plan_batch)", getattr(runner, "plan_batch")),  # noqa: B009
        (BulkStore, "apply_changes", "stage", apply_changes),
        (PipelinedConsumer, "_apply_with", "batch transaction", getattr(PipelinedConsumer, "_apply_with")),  # noqa: B009
    ]
    saved = [(owner, attribute, getattr(owner, attribute)) for owner, attribute, _, _ in wrapped]
    for owner, attribute, name, function in wrapped:
        setattr(owner, attribute, phases.timed(name, function))
    try:
        yield
    finally:
        for owner, attribute, original in saved:
            setattr(owner, attribute, original)


async def load_in_process(
    kafka: KafkaSettings,
    database_url: str,
    schema: str,
    records_topic: str,
    total: int,
    technique: Technique,
    batch: int,
) -> tuple[Load, versions.Version, BulkStore]:
    """A new bulk version loaded in-process up to the end of the topic (not finished)."""
    settings = Settings(
        ProjectionsSettings(
            records_topic=records_topic,
            group_id=f"bench-{uuid.uuid4().hex[:8]}",
            activity_topics=(),
            batch_max_records=technique.batch or batch,
        ),
        kafka,
        PostgresSettings(database_url=database_url),
    )
    pool = await _pool(database_url, schema)
    phases = Phases()
    store = technique.store()
    try:
        async with pool.acquire() as connection, connection.transaction():
            version = await versions.create(connection, records_topic=records_topic, bulk=True)
        consumer = projection_consumer(settings)
        producer = make_producer(kafka, "bench-dlq")
        await producer.start()
        await consumer.start()
        setattr(consumer, "getmany", phases.timed("consume (getmany)", consumer.getmany))  # noqa: B010
        worker = ProjectionWorker(
            consumer,
            pool,
            settings.projections,
            DeadLetters(DurableAppender(producer), "projections"),
            store,
            keys=MemberKeys(settings.vault.keyring()),
            version=version.number,
        )
        stop = asyncio.Event()
        async with _instrumented(phases, technique.unnest):
            wal = await pool.fetchval(_WAL)
            before = _ticks(os.getpid())
            started = time.perf_counter()
            task = asyncio.create_task(worker.run(stop))
            try:
                while worker.exactly_once.applied < total:
                    if task.done():
                        task.result()
                        raise RuntimeError("the worker stopped before the end")
                    await asyncio.sleep(0.02)
                seconds = time.perf_counter() - started
                after = _ticks(os.getpid())
                wal_bytes = float(await pool.fetchval(_WAL_SINCE, wal))
            finally:
                stop.set()
                await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 60)
                await consumer.stop()
                await producer.stop()
        if worker.erased:
            raise RuntimeError(f"{worker.erased} records counted as erased: the member keys are missing")
        phases.cpu = {
            "process": (after["API process"] - before["API process"]) / seconds,
            "PostgreSQL": (after["PostgreSQL"] - before["PostgreSQL"]) / seconds,
        }
        postgres = after["PostgreSQL"] - before["PostgreSQL"]
        return Load(technique.label, seconds, phases, postgres, wal_bytes / 1e6), version, store
    finally:
        await pool.close()


class _TimedConnection:
    """A connection whose statements are timed by kind, with ``settings`` applied after the store's."""

    def __init__(self, connection: Any, seconds: dict[str, float], settings: dict[str, str]) -> None:
        self._connection = connection
        self._seconds = seconds
        self._settings = settings

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    @staticmethod
    def kind(sql: str) -> str:
        words = " ".join(sql.split())
        if words.startswith("ANALYZE"):
            return "ANALYZE"
        if words.startswith("ALTER TABLE") and "PRIMARY KEY" in words:
            return "primary keys"
        if words.startswith("CREATE INDEX"):
            return "indexes"
        if found := re.search(r"INSERT INTO (rm_\w+)", words):
            return f"build {found.group(1)}"
        return "other statements"

    async def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            result = await self._connection.execute(sql, *args, **kwargs)
        finally:
            self._seconds[self.kind(sql)] += time.perf_counter() - started
        if sql.startswith("SET LOCAL work_mem"):  # the store's own settings: override them
            for name, value in self._settings.items():
                await self._connection.execute(f"SET LOCAL {name} = '{value}'")
        return result


@dataclass
class Finish:
    seconds: float | None  # None: cancelled by the statement_timeout of its settings
    steps: dict[str, float]


async def finish(
    database_url: str,
    schema: str,
    version: versions.Version,
    store: BulkStore,
    settings: dict[str, str],
    keep: bool,
) -> Finish:
    """``store.finish`` under ``settings`` (SET LOCAL, after the store's), timed by kind of statement;
    rolled back unless ``keep``."""
    pool = await _pool(database_url, schema)
    steps: dict[str, float] = defaultdict(float)
    elapsed: float | None = None
    try:
        async with pool.acquire() as connection:
            transaction = connection.transaction()
            await transaction.start()
            try:
                started = time.perf_counter()
                await store.finish(_TimedConnection(connection, steps, settings), version)  # type: ignore[arg-type]
                elapsed = time.perf_counter() - started
            except asyncpg.QueryCanceledError:
                await transaction.rollback()
                await _truncate(connection, version)
                return Finish(None, dict(steps))
            except BaseException:
                await transaction.rollback()
                raise
            if keep:
                await transaction.commit()
            else:
                await transaction.rollback()
                await _truncate(connection, version)
    finally:
        await pool.close()
    return Finish(elapsed, dict(steps))


async def _truncate(connection: Any, version: versions.Version) -> None:
    """Empty ``version``'s final tables again: a rolled-back finish leaves its rows behind as dead
    tuples, which the next finish would scan (and index) too."""
    tables = ", ".join(f'"{version.schema}".{table}' for table in VERSIONED_TABLES)
    await connection.execute(f"TRUNCATE {tables}")


FINISH_SETTINGS: dict[str, dict[str, str]] = {
    "work_mem 4MB, maintenance_work_mem 64MB (the server's)": {
        "work_mem": "4MB",
        "maintenance_work_mem": "64MB",
    },
    "no parallel index build (max_parallel_maintenance_workers 0)": {"max_parallel_maintenance_workers": "0"},
    "the planner free (nested loops, merge joins, JIT), 120 s per statement at most": {
        "enable_nestloop": "on",
        "enable_mergejoin": "on",
        "jit": "on",
        "statement_timeout": "120s",
    },
}


# --- PostgreSQL alone: indexes during or after a load -------------------------------------------------


async def indexes_during_or_after(database_url: str, schema: str) -> dict[str, float]:
    """Seconds to copy the base tables' rows (INSERT ... SELECT, server-side) into empty tables with
    their keys and indexes, and into bare tables that get them after (512 MB of maintenance_work_mem);
    and the rows copied."""
    pool = await _pool(database_url, schema)
    result: dict[str, float] = defaultdict(float)
    try:
        async with pool.acquire() as connection:
            for table in _BASE_TABLES:
                names = await connection.fetch(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
                    " AND table_name = $1 AND is_generated = 'NEVER' ORDER BY ordinal_position",
                    table,
                )
                columns = ", ".join(row["column_name"] for row in names)
                definitions = await connection.fetch(
                    "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1",
                    table,
                )
                indexes = [
                    re.sub(r"INDEX (\w+) ON \S+ ", rf"INDEX copy_\1 ON copy_{table} ", row["indexdef"])
                    for row in definitions
                ]
                for how in ("during", "after, 512MB"):
                    like = "INCLUDING ALL" if how == "during" else "INCLUDING DEFAULTS INCLUDING GENERATED"
                    async with connection.transaction():
                        await connection.execute(f"CREATE TABLE copy_{table} (LIKE {table} {like})")
                        memory = "64MB" if how == "during" else how.rpartition(" ")[2]
                        await connection.execute(f"SET LOCAL maintenance_work_mem = '{memory}'")
                        started = time.perf_counter()
                        await connection.execute(
                            f"INSERT INTO copy_{table} ({columns}) SELECT {columns} FROM {table}",  # noqa: S608
                            timeout=_LONG_S,
                        )
                        result[f"{how}: insert"] += time.perf_counter() - started
                        started = time.perf_counter()
                        if how != "during":
                            for statement in indexes:
                                await connection.execute(statement, timeout=_LONG_S)
                        result[f"{how}: indexes"] += time.perf_counter() - started
                        await connection.execute(f"DROP TABLE copy_{table}")
                result["rows"] += int(await connection.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608
    finally:
        await pool.close()
    return dict(result)


# --- the run ------------------------------------------------------------------------------------------


@dataclass
class Result:
    records: int
    members: int
    days: int
    sealed: bool
    batch: int
    produce_s: float = 0.0
    consume_s: list[float] = field(default_factory=list)
    bulk_s: list[float] = field(default_factory=list)
    one_process_s: list[float] = field(default_factory=list)  # rebuild --bulk without the second process
    live_s: float | None = None
    loads: dict[str, list[Load]] = field(default_factory=lambda: defaultdict(list))
    finishes: dict[str, Finish] = field(default_factory=dict)
    shipped_s: list[float] = field(default_factory=list)  # the shipped finish, first and last
    floor: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    load_average: tuple[float, float] = (0.0, 0.0)


async def _served_rows(database_url: str, schema: str) -> dict[str, int]:
    pool = await _pool(database_url, schema)
    try:
        async with pool.acquire() as connection, connection.transaction():
            await versions.use(connection, await versions.serving(connection))
            return {
                t: int(await connection.fetchval(f"SELECT count(*) FROM {t}"))  # noqa: S608 - fixed names
                for t in VERSIONED_TABLES
            }
    finally:
        await pool.close()


async def _new_topic(kafka: KafkaSettings) -> str:
    spec = replace(topic("wear.records.v1"), name=f"bench.wear.records.v1.{uuid.uuid4().hex[:8]}")
    await ensure_topics(kafka, [spec, spec.dlq()])
    return spec.name


async def _delete_topic(kafka: KafkaSettings, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics([name, f"{name}.dlq"])
    finally:
        await admin.close()


async def _drop_version(database_url: str, schema: str, version: versions.Version) -> None:
    pool = await _pool(database_url, schema)
    try:
        async with pool.acquire() as connection, connection.transaction():
            await versions.drop(connection, version.number)
    finally:
        await pool.close()


async def _drop_everything(database_url: str, schema: str) -> None:
    await drop_schema(database_url, schema)
    connection = await asyncpg.connect(database_url)
    try:
        for (name,) in await connection.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", f"{schema}\\_rm%"
        ):
            await connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await connection.close()


async def _techniques(
    args: argparse.Namespace, kafka: KafkaSettings, database_url: str, schema: str, name: str, result: Result
) -> None:
    """Each loading technique in-process, ``--technique-runs`` rounds (every other one in reverse
    order); the first default load is finished under each setting, as shipped first and last."""
    for round_ in range(args.technique_runs):
        keys = args.techniques if round_ % 2 == 0 else list(reversed(args.techniques))
        for key in keys:
            load, version, store = await load_in_process(
                kafka, database_url, schema, name, result.records, TECHNIQUES[key], args.batch
            )
            result.loads[key].append(load)
            _say(f"in-process load, {key}: {result.records / load.seconds:,.0f} records/s")
            if key == "default" and not result.finishes:
                shipped = [await finish(database_url, schema, version, store, {}, keep=False)]
                for label, settings in FINISH_SETTINGS.items():  # rolled back, the staging stays
                    result.finishes[label] = await finish(
                        database_url, schema, version, store, settings, False
                    )
                    _say(f"finish, {label}: {result.finishes[label].seconds} s")
                shipped.append(await finish(database_url, schema, version, store, {}, keep=True))
                result.finishes[""] = shipped[-1]
                result.shipped_s = [f.seconds or 0.0 for f in shipped]
                _say(f"finish, as shipped: {result.shipped_s} s")
                if not args.skip_floor:
                    result.floor = await indexes_during_or_after(database_url, version.schema)
            await _drop_version(database_url, schema, version)


async def bench(args: argparse.Namespace) -> Result:
    kafka = KafkaSettings()
    database_url = PostgresSettings().database_url
    result = Result(args.records or 0, args.members, args.days, not args.plain, args.batch)
    schema = await create_schema(database_url)
    name = args.topic
    before = os.getloadavg()[0]
    try:
        (await _pool(database_url, schema, migrate=True)).terminate()
        if name is None:
            keys = None if args.plain else await member_keys(database_url, schema, args.members, args.days)
            name = await _new_topic(kafka)
            result.records, result.produce_s = await produce(kafka, name, args.members, args.days, keys)
            _say(f"produced {result.records:,} records in {result.produce_s:.1f} s into {name}")
        env = _env(database_url, schema, name, f"bench-{uuid.uuid4().hex[:8]}", args.batch)
        for run in range(args.runs):
            result.consume_s.append(await consume_only(kafka, name, result.records, decode=False))
            _say(f"consume only: {result.records / result.consume_s[-1]:,.0f} records/s")
            result.bulk_s.append(await run_command(env, bulk_load=True))
            _say(f"rebuild --bulk #{run + 1}: {result.records / result.bulk_s[-1]:,.0f} records/s")
            if run == 0:
                result.rows = await _served_rows(database_url, schema)
            await serve_the_first(database_url, schema)
            if not args.skip_one_process:
                result.one_process_s.append(await run_command(env, bulk_load=True, one_process=True))
                _say(
                    f"rebuild --bulk, one process: {result.records / result.one_process_s[-1]:,.0f} records/s"
                )
                await serve_the_first(database_url, schema)
        if not args.skip_live:
            result.live_s = await run_command(env, bulk_load=False)
            _say(f"rebuild (live upserts): {result.records / result.live_s:,.0f} records/s")
            await serve_the_first(database_url, schema)
        await _techniques(args, kafka, database_url, schema, name, result)
    finally:
        result.load_average = (before, os.getloadavg()[0])
        await _drop_everything(database_url, schema)
        if args.topic is None and name is not None:
            await _delete_topic(kafka, name)
    return result


# --- the report ---------------------------------------------------------------------------------------


def _wrap(*parts: str) -> list[str]:
    """One paragraph from ``parts``, wrapped for the Markdown file."""
    return [*textwrap.wrap(" ".join(parts), width=105, break_on_hyphens=False), ""]


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def _runs(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def _verdict(change: float) -> str:
    """How a technique compares with the default: its time over the default's."""
    if change > 1 + PAYS:
        return f"x{change:.2f} the time: the shipped choice pays"
    if change < 1 - PAYS:
        return f"x{change:.2f} the time: **faster** than the shipped choice"
    return f"x{change:.2f}: no difference beyond the noise (±{PAYS:.0%})"


def section(result: Result) -> str:
    n = result.records
    bulk = _median(result.bulk_s)
    consume = _median(result.consume_s)
    ratios = [c / b for c, b in zip(result.consume_s, result.bulk_s, strict=True)]
    ratio = _median(ratios)
    rate = n / bulk
    meets = rate >= RATE_TARGET and ratio >= RATIO_TARGET
    now = datetime.now(UTC).strftime("%Y-%m-%d")
    lines = [SUBSECTION, ""]
    lines += _wrap(
        f"Measured {now} on this machine ({os.cpu_count()} cores, {platform.machine()}, Python",
        f"{platform.python_version()}; Kafka and PostgreSQL 15 on the same cores, shared with the other",
        "engineers' work: load average",
        f"{result.load_average[0]:.2f} before, {result.load_average[1]:.2f} after)",
        "by `.venv/bin/python bench/bench_rebuild.py`.",
    )
    lines += _wrap(
        f"Method: a fresh 6-partition topic shaped like `wear.records.v1` gets {n:,} canonical records",
        f"({result.members:,} members x {result.days} days: main sleep, recovery, cycle, a nap one day",
        "in five, a workout one day in two; WHOOP v2 documents inside, ~1.3 kB per record"
        + (", each sealed with its member's data key (ADR 0004)" if result.sealed else ", not sealed")
        + "). On that topic, in the same run, on a fresh schema: consume-only, the baseline (aiokafka",
        "with the projection's fetch settings reading to the end, records counted); the real command",
        "`python -m projections rebuild --bulk --yes` as a subprocess (a new version created without keys",
        "and indexes, loaded through `projections.bulk.BulkStore` by the projection worker and, the",
        "load being CPU-bound, by a second worker in a child process sharing the partitions",
        "(`projections.load_helper`), finished,",
        "verified by checksums and accounting, switched to; wall time from launch to exit, so start-up,",
        f"verification and switch included), {len(result.bulk_s)} times, each right after a consume-only",
        "pass, ratios taken pairwise then the median, each beside an empty version 1 served (so the",
        "verification has no served version of the same offsets to compare with); batches of",
        f"{result.batch:,} records. After each, the same command with the second load process left out",
        "(one process, as before it: the before/after of the command). Then the same",
        "command through the live upserts (`rebuild --yes`, `ReadModelStore`: keys and indexes kept up to",
        "date row by row).",
    )
    lines += [
        "| pass | seconds (median) | records/s | vs consume-only | runs (s) |",
        "|---|---:|---:|---:|---|",
    ]
    lines.append(
        f"| consume only (baseline) | {consume:.1f} | {n / consume:,.0f} | 1 | {_runs(result.consume_s)} |"
    )
    lines.append(
        f"| `rebuild --bulk --yes` (load, finish, verify, switch) | {bulk:.1f} | **{rate:,.0f}** |"
        f" **{ratio:.2f}** | {_runs(result.bulk_s)} |"
    )
    if result.one_process_s:
        one = _median(result.one_process_s)
        one_ratio = _median([c / b for c, b in zip(result.consume_s, result.one_process_s, strict=True)])
        lines.append(
            f"| `rebuild --bulk --yes`, one process (before the second load process) | {one:.1f} |"
            f" {n / one:,.0f} | {one_ratio:.2f} | {_runs(result.one_process_s)} |"
        )
    if result.live_s is not None:
        lines.append(
            f"| `rebuild --yes` (live upserts) | {result.live_s:.1f} | {n / result.live_s:,.0f} |"
            f" {consume / result.live_s:.2f} | {result.live_s:.1f} |"
        )
    lines.append("")
    short = "" if meets else f" (x{RATE_TARGET / rate:.1f} short of the rate)"
    lines += _wrap(
        f"The bulk rebuild runs at {rate:,.0f} records/s, {ratio:.2f} of consume-only: it",
        ("meets" if meets else "**misses**"),
        f"the >= {RATE_TARGET:,.0f} records/s and >= {RATIO_TARGET} x consume-only target{short}.",
        *(
            [
                f"The second load process makes the command x{_median(result.one_process_s) / bulk:.2f}"
                " as fast as one process."
            ]
            if result.one_process_s
            else []
        ),
        *(
            [f"It is x{result.live_s / bulk:.1f} faster than the rebuild through the live upserts."]
            if result.live_s
            else []
        ),
        "Rows of the rebuilt version:",
        ", ".join(f"{t} {c:,}" for t, c in result.rows.items()) + ".",
    )
    lines += _phases(result)
    lines += _techniques_lines(result)
    lines += _why(result)
    return "\n".join(lines)


def _phases(result: Result) -> list[str]:
    n = result.records
    default = result.loads.get("default", [])
    shipped = result.finishes.get("")
    if not default or shipped is None or shipped.seconds is None:
        return []
    load = default[0]
    phases = load.phases.seconds
    lines = ["#### Where the time goes", ""]
    lines += _wrap(
        "The bulk load in-process, one process (`ProjectionWorker(version=N, store=BulkStore())`, the",
        "code each of the command's two load processes runs, each phase's function wrapped with a timer),",
        "then `BulkStore.finish` statement by",
        f"statement. The load took {load.seconds:.1f} s ({n / load.seconds:,.0f} records/s), the process at",
        f"{load.phases.cpu.get('process', 0):.0%} of one core and PostgreSQL at",
        f"{load.phases.cpu.get('PostgreSQL', 0):.0%} (every postgres process, the other engineers'",
        "included): the load is bound by the Python process. Its phases overlap (the next batch is",
        "opened, decoded and folded while PostgreSQL takes the current batch's COPY; a batch",
        "transaction waits for its batch's decoding), so they do not add up to the load's time. The",
        "finish runs alone, one statement after the other, in one transaction.",
    )
    lines += ["| phase | seconds | us per record |", "|---|---:|---:|"]
    names = {
        "consume (getmany)": "consume: aiokafka `getmany` (fetching and parsing run in its background tasks)",
        "open (AES-GCM)": "open: `open_with`, AES-GCM per sealed record",
        "decode": "decode: `decode_record` (msgspec, checks, the table row)",
        "fold (plan_batch)": "fold: `plan_batch` (one upsert per resource and batch)",
        "stage": "COPY: `BulkStore.apply_changes` (rows encoded, COPY binary into the staging tables)",
        "batch transaction": "batch transaction: offsets stored, COPY, commit (waits for its decoding)",
    }
    for key, label in names.items():
        if key in phases:
            lines.append(f"| {label} | {phases[key]:.1f} | {phases[key] / n * 1e6:.1f} |")
    lines.append(f"| **load, wall time** | **{load.seconds:.1f}** | {load.seconds / n * 1e6:.1f} |")
    consume = _median(result.consume_s)
    per = consume / n * 1e6
    lines.append(f"| (for scale: the consume-only pass, alone) | ({consume:.1f}) | ({per:.1f}) |")
    steps = shipped.steps
    sql = {k: v for k, v in steps.items() if k.startswith("build ") or k == "other statements"}
    for key, seconds in sorted(sql.items(), key=lambda item: -item[1]):
        label = (
            f"finish SQL: {key.removeprefix('build ')}"
            if key.startswith("build ")
            else "finish SQL: the rest"
        )
        lines.append(f"| {label} | {seconds:.1f} | {seconds / n * 1e6:.1f} |")
    for key, label in (
        ("primary keys", "primary keys (7)"),
        ("indexes", "index build (13)"),
        ("ANALYZE", "ANALYZE"),
    ):
        lines.append(f"| {label} | {steps.get(key, 0.0):.1f} | {steps.get(key, 0.0) / n * 1e6:.1f} |")
    lines.append(
        f"| **finish, one transaction** | **{shipped.seconds:.1f}** | {shipped.seconds / n * 1e6:.1f} |"
    )
    lines.append("")
    return lines


def _techniques_lines(result: Result) -> list[str]:
    n = result.records
    if not result.loads.get("default"):
        return []
    base = _median([load.seconds for load in result.loads["default"]])
    lines = ["#### Which PostgreSQL techniques pay", ""]
    lines += _wrap(
        "Each technique loads the whole topic in-process as above, in rounds (every technique once per",
        "round, so that a noisy minute hits them alike); the table gives the median load time and its",
        f"ratio to the shipped default's; a difference under {PAYS:.0%} is the noise of this box.",
    )
    lines += [
        "| load technique | load s (median) | records/s | vs default | runs (s) | PostgreSQL CPU s | WAL MB"
        " |",
        "|---|---:|---:|---|---|---:|---:|",
    ]
    for key, loads in result.loads.items():
        seconds = [load.seconds for load in loads]
        median = _median(seconds)
        verdict = "the default" if key == "default" else _verdict(median / base)
        cpu = _median([load.postgres_cpu_s for load in loads])
        wal = _median([load.wal_mb for load in loads])
        lines.append(
            f"| {TECHNIQUES[key].label} | {median:.1f} | {n / median:,.0f} | {verdict} | {_runs(seconds)} |"
            f" {cpu:.1f} | {wal:,.0f} |"
        )
    lines.append("")
    lines += _wrap(
        "PostgreSQL CPU: every postgres process's CPU seconds during the load (medians); WAL: what the",
        "whole server wrote meanwhile (the other engineers' work included: a floor of noise).",
    )
    lines += _pays(result, base)
    if result.shipped_s:
        base_finish = _median(result.shipped_s)
        lines += _wrap(
            "`finish` of the first default load as shipped (`work_mem` 256MB, `maintenance_work_mem` 512MB,",
            "hash joins only, no JIT), then under other PostgreSQL settings, then as shipped again (each",
            "in a transaction rolled back and its tables truncated, the staging tables kept; the last one",
            "committed):",
        )
        lines += ["| finish under | seconds | vs shipped (median) |", "|---|---:|---|"]
        lines.append(f"| as shipped (first, last) | {_runs(result.shipped_s)} | |")
        for label, measured in result.finishes.items():
            if not label:
                continue
            if measured.seconds is None:
                lines.append(f"| {label} | cancelled | a statement ran over 120 s |")
            else:
                verdict = _verdict(measured.seconds / base_finish)
                lines.append(f"| {label} | {measured.seconds:.1f} | {verdict} |")
        lines.append("")
    floor = result.floor
    if floor:
        rows = int(floor["rows"])
        lines += _wrap(
            f"Indexes during or after a load, PostgreSQL alone: the {rows:,} rows of the four base tables",
            "copied server-side (`INSERT ... SELECT`, no Python, no Kafka) into empty tables with their",
            "primary keys and indexes, and into bare tables that get them after:",
        )
        lines += ["| copy | insert s | keys and indexes s | total s | rows/s |", "|---|---:|---:|---:|---:|"]
        for how, label in (
            ("during", "into indexed tables (as the live path writes)"),
            ("after, 512MB", "bare, then keys and indexes (maintenance_work_mem 512MB)"),
        ):
            insert, index = floor.get(f"{how}: insert", 0.0), floor.get(f"{how}: indexes", 0.0)
            total = insert + index
            lines.append(f"| {label} | {insert:.1f} | {index:.1f} | {total:.1f} | {rows / total:,.0f} |")
        lines.append("")
    return lines


def _pays(result: Result, base: float) -> list[str]:
    """The load techniques sorted into those whose absence costs time and those that make no
    difference to it, with what they cost PostgreSQL."""
    default = result.loads["default"]
    cpu = _median([load.postgres_cpu_s for load in default])
    wal = _median([load.wal_mb for load in default])
    pays: list[str] = []
    even: list[str] = []
    for key, loads in result.loads.items():
        if key == "default":
            continue
        change = _median([load.seconds for load in loads]) / base
        other_cpu = _median([load.postgres_cpu_s for load in loads])
        other_wal = _median([load.wal_mb for load in loads])
        cost = f"PostgreSQL CPU {other_cpu:.1f} s against {cpu:.1f} s,"
        cost += f" WAL {other_wal:,.0f} MB against {wal:,.0f} MB"
        (pays if change > 1 + PAYS else even).append(
            f"{TECHNIQUES[key].label} (x{change:.2f} the time; {cost})"
        )
    parts = []
    if pays:
        parts.append("Slower than the shipped default: " + "; ".join(pays) + ".")
    if even:
        parts.append(
            "Within the noise in load time (the load waits on the Python process, not on PostgreSQL): "
            + "; ".join(even)
            + "."
        )
    return _wrap(*parts) if parts else []


def _why(result: Result) -> list[str]:
    n = result.records
    default = result.loads.get("default", [])
    shipped = result.finishes.get("")
    if not default or shipped is None or shipped.seconds is None:
        return []
    load = _median([x.seconds for x in default])
    consume = _median(result.consume_s)
    command = _median(result.bulk_s)
    budget = n / RATE_TARGET
    cpu = default[0].phases.cpu
    lines = ["#### Reading the figures", ""]
    lines += _wrap(
        f"At {RATE_TARGET:,.0f} records/s the whole command would have {budget:.0f} s for these {n:,}",
        f"records; it takes {command:.1f} s. The load alone, in one process, takes {load:.1f} s",
        f"({n / load:,.0f} records/s, {consume / load:.2f} of consume-only): one Python process on one core",
        f"({cpu.get('process', 0):.0%} busy) reads the topic (consume-only alone needs {consume:.1f} s of",
        "it), opens, decodes and folds every record and encodes the COPY rows, while PostgreSQL uses",
        f"{cpu.get('PostgreSQL', 0):.0%} of a core beside it.",
        *(
            ["Even an instant finish would miss the target: the load itself is over the budget."]
            if load > budget
            else []
        ),
        f"The finish ({shipped.seconds:.1f} s) writes every row a second time, from the staging tables into",
        "the WAL-logged final tables, then builds 20 indexes and analyzes, one statement after the other",
        "on one core; the command also starts up, verifies (a checksum of every row, the accounting) and",
        "switches. The bulk path's own share is the COPY and the finish; the reading, opening and",
        "decoding are the worker's, as on the live path. The command splits the load between two",
        "processes (the partitions shared in one consumer group); on this box they share its two cores",
        "with the broker and PostgreSQL, so the second one adds less than a core. What would scale it",
        "further: a load process per core and per partition (more partitions for more processes), and",
        "the finish's statements per table on connections of their own (today they run in one",
        "transaction, which keeps a crashed finish from leaving half a version).",
    )
    return lines


def write_subsection(text: str, path: Path = BENCHMARKS) -> None:
    """Replace the rebuild part of the projections section (up to its next ``###``) by ``text``."""
    current = path.read_text()
    pattern = re.compile(rf"^{re.escape(SUBSECTION)}\n.*?(?=^### \(b\)|^## |\Z)", re.S | re.M)
    if pattern.search(current) is None:
        raise SystemExit(f"BENCHMARKS.md has no {SUBSECTION!r} heading to replace")
    path.write_text(pattern.sub(lambda _: text.rstrip("\n") + "\n\n", current, count=1))


def main() -> None:
    os.environ.setdefault("PIPELINE_ENV", "dev")  # the commands it starts run on the public dev secrets
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1500)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument(
        "--runs", type=int, default=3, help="rebuild --bulk runs, each after a consume-only pass"
    )
    parser.add_argument("--batch", type=int, default=ProjectionsSettings().batch_max_records)
    parser.add_argument("--techniques", nargs="*", default=list(TECHNIQUES), choices=list(TECHNIQUES))
    parser.add_argument("--technique-runs", type=int, default=2, help="rounds of the in-process loads")
    parser.add_argument("--skip-live", action="store_true", help="leave out the live-upsert rebuild")
    parser.add_argument(
        "--skip-one-process", action="store_true", help="leave out rebuild --bulk without its second process"
    )
    parser.add_argument("--skip-floor", action="store_true", help="leave out PostgreSQL alone")
    parser.add_argument("--plain", action="store_true", help="records not sealed")
    parser.add_argument("--topic", help="reuse this topic of plain records (with --records and --plain)")
    parser.add_argument("--records", type=int, help="records of --topic")
    parser.add_argument(
        "--no-write", action="store_true", help="print the section, leave BENCHMARKS.md alone"
    )
    args = parser.parse_args()
    if args.topic and not (args.records and args.plain):
        parser.error("--topic needs --records and --plain")
    result = uvloop.run(bench(args))
    text = section(result)
    _say(text)
    if not args.no_write:
        write_subsection(text)


if __name__ == "__main__":
    main()
