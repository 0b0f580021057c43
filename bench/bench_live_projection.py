"""Step 7 item 4: the live projection (the upsert path) before and after the msgspec codec, same topic.

Method: ``--records`` canonical records made as the normalizer makes them (``bench_normalizer``'s
realistic documents through ``normalizer_messages.normalize_message``: key, origin header, value) and
sealed with their member's data key (``MemberKeys.ensure`` in a migrated PostgreSQL schema, ADR 0004)
fill a fresh 6-partition topic shaped like ``wear.records.v1`` once. Then, ``--runs`` times,
interleaved, each pass in a fresh process on a fresh migrated schema (the member keys copied in):

- consume-only: a consumer with the projection's settings (``projection_consumer``: 5,000 records per
  poll, its fetch sizes) reads every record from offset 0; it opens and decodes nothing;
- for each tree (``--before``: a git worktree of the commit before the codec change; this tree:
  after): ``ProjectionWorker`` as ``python -m projections`` builds it (``version=None``: it writes the
  served read-model version, version 1 of the fresh schema, through ``store.ReadModelStore``'s
  upserts; keys through ``PooledKeys``; uvloop), from offset 0 until every record is applied.

A pass runs that tree's code (``--pass``: this file, copied into the tree, is run by that tree's
interpreter path, so ``sys.path`` starts at that tree). Its rate is steady state: from the first applied
batch to the last (``exactly_once.applied``, polled every 50 ms); the wall time includes connecting and
joining. Each pass must apply every record, dead-letter none and skip none as erased; the row counts of
the base tables must be the same in every pass. Phases (decode, fold, SQL, the batch transaction) are
timed by wrapping the worker's functions, as ``bench_projections`` does; CPU shares of the projection
process, PostgreSQL and the Kafka broker come from ``/proc``. The section goes into ``BENCHMARKS.md``
as the ``### Live projection: before and after the codec`` subsection of ``## Projections and query
API`` (only that subsection is rewritten) unless ``--no-write``.

Run: ``git worktree add /tmp/before 1c324c4 && ln -s $PWD/.venv /tmp/before/.venv``, then
``.venv/bin/python bench/bench_live_projection.py --before /tmp/before`` (Kafka and PostgreSQL up:
``make up``); ``git worktree remove --force /tmp/before`` afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the packages of the tree this file sits in

import asyncpg  # noqa: E402
import uvloop  # noqa: E402
from aiokafka import TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient  # noqa: E402

from infra import exactly_once  # noqa: E402
from infra.appender import DurableAppender  # noqa: E402
from infra.db import create_pool  # noqa: E402
from infra.dead_letters import DeadLetters  # noqa: E402
from infra.kafka import make_consumer, make_producer  # noqa: E402
from infra.member_keys import MemberKeys  # noqa: E402
from infra.settings import KafkaSettings, PostgresSettings  # noqa: E402
from infra.topic_admin import ensure_topics  # noqa: E402
from infra.vault import VaultSettings  # noqa: E402
from projections import runner, store  # noqa: E402
from projections.settings import ProjectionsSettings, Settings  # noqa: E402
from schemas.topics import topic  # noqa: E402

HEADING = "## Projections and query API"
SUBSECTION = "### Live projection: before and after the codec"
BENCHMARKS = ROOT / "BENCHMARKS.md"
PARTITIONS = 6
DEFAULT_RECORDS = 1_000_000
DEFAULT_RUNS = 2
BASE_TABLES = ("rm_cycles", "rm_sleeps", "rm_recoveries", "rm_workouts", "rm_daily_summaries")


# --- CPU and phases ---------------------------------------------------------------------------------


def _cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by this process, by PostgreSQL's processes and by the Kafka broker (java)."""
    hertz = os.sysconf("SC_CLK_TCK")
    totals = {"projection process": 0.0, "PostgreSQL": 0.0, "Kafka broker": 0.0}
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
        if name == "postgres":  # and its backends that exited meanwhile (reaped: the postmaster's children)
            used += (int(fields[13]) + int(fields[14])) / hertz
        if int(entry) == os.getpid():
            totals["projection process"] += used
        elif name == "postgres":
            totals["PostgreSQL"] += used
        elif name == "java":
            totals["Kafka broker"] += used
    return totals


@dataclass
class Phases:
    """Wall seconds inside each wrapped function of the worker, summed over the pass (they overlap)."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def timed(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        if asyncio.iscoroutinefunction(function):

            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return await function(*args, **kwargs)
                finally:
                    self.seconds[name] += time.perf_counter() - start

            return async_wrapper

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start

        return wrapper


def instrument(phases: Phases) -> None:
    """Wrap the worker's phases with timers (the same names in both trees; the code itself unchanged)."""
    decode, fold = getattr(runner, "decode_record"), getattr(runner, "plan_batch")  # noqa: B009 - not exported
    setattr(runner, "decode_record", phases.timed("decode (decode_record)", decode))  # noqa: B010
    setattr(runner, "plan_batch", phases.timed("fold (plan_batch)", fold))  # noqa: B010
    apply = store.ReadModelStore.apply_changes
    setattr(store.ReadModelStore, "apply_changes", phases.timed("SQL (apply_changes)", apply))  # noqa: B010
    batch = exactly_once.PipelinedConsumer._apply_with
    name = "batch transaction (claim, route, apply, offsets, commit)"
    setattr(exactly_once.PipelinedConsumer, "_apply_with", phases.timed(name, batch))  # noqa: B010


# --- one pass of one tree (run in a fresh process of that tree) ----------------------------------------


async def _fresh_schema(database_url: str, keys_schema: str) -> tuple[str, asyncpg.Pool]:
    """A fresh schema migrated by this tree, with the member keys of ``keys_schema`` copied in."""
    schema = f"bench_live_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await connection.close()
    size = ProjectionsSettings().db_pool_size  # as python -m projections
    pool = await create_pool(PostgresSettings(database_url=database_url), schema=schema, max_size=size)
    await pool.execute(
        "INSERT INTO member_data_keys (user_id, key_id, nonce, wrapped)"  # noqa: S608 - our own schema name
        f' SELECT user_id, key_id, nonce, wrapped FROM "{keys_schema}".member_data_keys'
    )
    return schema, pool


async def _drop_schema(database_url: str, schema: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        for (name,) in await connection.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname = $1 OR nspname LIKE $2",
            schema,
            f"{schema}\\_rm%",
        ):
            await connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await connection.close()


async def live_pass(name: str, keys_schema: str, total: int) -> dict[str, Any]:
    """``ProjectionWorker`` (served version) from offset 0 of ``name`` until ``total`` records are applied."""
    database_url = PostgresSettings().database_url
    kafka = KafkaSettings(kafka_client_id_prefix="bench")
    schema, pool = await _fresh_schema(database_url, keys_schema)
    settings = Settings(
        ProjectionsSettings(
            records_topic=name, group_id=f"bench-live-{uuid.uuid4().hex[:8]}", activity_topics=()
        ),
        kafka,
        PostgresSettings(database_url=database_url),
    )
    phases = Phases()
    instrument(phases)
    consumer = runner.projection_consumer(settings)
    producer = make_producer(kafka, "bench-dlq")
    await producer.start()
    await consumer.start()
    dead = DeadLetters(DurableAppender(producer), "projections")
    worker = runner.ProjectionWorker(
        consumer, pool, settings.projections, dead, keys=MemberKeys(VaultSettings().keyring())
    )
    stop = asyncio.Event()
    samples: list[tuple[float, int]] = []
    before = _cpu_seconds()
    started = time.perf_counter()
    task = asyncio.create_task(worker.run(stop))
    try:
        while (applied := worker.exactly_once.applied) < total:
            if task.done():
                task.result()
                raise RuntimeError("the worker stopped before the end")
            if applied and (not samples or samples[-1][1] != applied):
                samples.append((time.perf_counter(), applied))
            await asyncio.sleep(0.05)
        ended = time.perf_counter()
        after = _cpu_seconds()
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 60)
        await consumer.stop()
        await producer.stop()
    try:
        rows = {table: int(await pool.fetchval(f"SELECT count(*) FROM {table}")) for table in BASE_TABLES}  # noqa: S608
    finally:
        await pool.close()
        await _drop_schema(database_url, schema)
    first_at, first_n = samples[0] if samples else (started, 0)
    whole = ended - started
    return {
        "rate": (total - first_n) / (ended - first_at),
        "wall_s": whole,
        "cpu": {key: (after[key] - before[key]) / whole for key in after},
        "phases": dict(phases.seconds),
        "rows": rows,
        "dead_lettered": dead.sent,
        "erased": worker.erased,
        "python": platform.python_version(),
    }


# --- the driver: fill once, consume-only, passes of both trees ---------------------------------------


async def fill(kafka: KafkaSettings, database_url: str, count: int) -> dict[str, Any]:
    """A keys schema and a topic of ``count`` sealed canonical records, as the normalizer writes them."""
    from bench.bench_normalizer import stream  # this tree's generator (after the codec change)
    from infra.sealing import seal_value
    from processors.normalizer_messages import normalize_message

    keys_schema = f"bench_live_keys_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(f'CREATE SCHEMA "{keys_schema}"')
    finally:
        await connection.close()
    pool = await create_pool(PostgresSettings(database_url=database_url), schema=keys_schema, max_size=2)
    spec = replace(
        topic("wear.records.v1"), name=f"bench.live.{uuid.uuid4().hex[:12]}", partitions=PARTITIONS
    )
    dlq = spec.dlq()
    await ensure_topics(kafka, [spec, dlq])
    fetcher_keys = MemberKeys(VaultSettings().keyring())
    data_keys: dict[str, bytes] = {}
    producer = make_producer(kafka, "bench-fill", linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    started = time.perf_counter()
    made = size = 0
    try:
        pending: list[asyncio.Future[Any]] = []
        for index, (user, key, value) in enumerate(stream(count)):
            data_key = data_keys.get(user)
            if data_key is None:
                data_key = data_keys[user] = await fetcher_keys.ensure(pool, user)
            for out in normalize_message("whoop.documents.v1", 0, index, key, value, target=spec.name):
                sealed = seal_value(data_key, user, out.value or b"")
                size += len(sealed)
                pending.append(
                    await producer.send(spec.name, key=out.key, value=sealed, headers=list(out.headers))
                )
                made += 1
                if made >= count:
                    break
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
            if made >= count:
                break
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
        await pool.close()
    return {
        "topic": spec.name,
        "dlq": dlq.name,
        "keys_schema": keys_schema,
        "records": made,
        "members": len(data_keys),
        "size": size / made,
        "seconds": time.perf_counter() - started,
    }


async def consume_only(kafka: KafkaSettings, name: str, total: int) -> dict[str, float]:
    """Every record of ``name`` from offset 0 with the projection's consumer settings; nothing opened."""
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
        partitions = [TopicPartition(name, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen = 0
        started = time.perf_counter()
        first: tuple[float, int] | None = None
        while seen < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=own.batch_max_records)
            seen += sum(len(items) for items in batch.values())
            if first is None and seen:
                first = (time.perf_counter(), seen)
        ended = time.perf_counter()
        first_at, first_n = first or (started, 0)
        return {"rate": (total - first_n) / (ended - first_at), "wall_s": ended - started}
    finally:
        await consumer.stop()


async def _clean(kafka: KafkaSettings, database_url: str, filled: dict[str, Any]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        await admin.delete_topics([n for n in (filled["topic"], filled["dlq"]) if n in existing])
    finally:
        await admin.close()
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{filled["keys_schema"]}" CASCADE')
    finally:
        await connection.close()


def _tree_pass(tree: Path, filled: dict[str, Any]) -> dict[str, Any]:
    """One pass in a fresh process of ``tree``'s code (this file copied in, run by the tree's venv)."""
    script = tree / "bench" / Path(__file__).name
    if tree.resolve() != ROOT:
        shutil.copyfile(__file__, script)
    command = [str(tree / ".venv" / "bin" / "python"), str(script), "--pass"]
    command += [filled["topic"], filled["keys_schema"], str(filled["records"])]
    done = subprocess.run(command, cwd=tree, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"the pass in {tree} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _commit_of(tree: Path) -> str:
    done = subprocess.run(  # noqa: S603
        ["git", "-C", str(tree), "log", "-1", "--format=%h"],  # noqa: S607
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@dataclass
class Result:
    filled: dict[str, Any]
    consume: list[dict[str, float]]
    before: list[dict[str, Any]]
    after: list[dict[str, Any]]
    before_commit: str
    load_before: float
    loads: list[float]


def bench(before_tree: Path, count: int, runs: int) -> Result:
    kafka = KafkaSettings(kafka_client_id_prefix="bench")
    database_url = PostgresSettings().database_url
    load_before = os.getloadavg()[0]
    filled = uvloop.run(fill(kafka, database_url, count))
    print(  # noqa: T201
        f"{filled['records']:,} sealed records of {filled['members']:,} members appended in"
        f" {filled['seconds']:.0f} s"
    )
    result = Result(filled, [], [], [], _commit_of(before_tree), load_before, [])
    try:
        for run in range(1, runs + 1):
            result.consume.append(uvloop.run(consume_only(kafka, filled["topic"], filled["records"])))
            for tree, passes in ((before_tree, result.before), (ROOT, result.after)):
                passes.append(_tree_pass(tree, filled))
                result.loads.append(os.getloadavg()[0])
            print(  # noqa: T201
                f"run {run}: consume-only {result.consume[-1]['rate']:,.0f}/s, before"
                f" {result.before[-1]['rate']:,.0f}/s, after {result.after[-1]['rate']:,.0f}/s;"
                f" load {os.getloadavg()[0]:.2f}"
            )
        for passed in (*result.before, *result.after):
            if passed["dead_lettered"] or passed["erased"] or passed["rows"] != result.after[0]["rows"]:
                raise RuntimeError(f"a pass differs: {passed}")
    finally:
        uvloop.run(_clean(kafka, database_url, filled))
    return result


# --- the subsection ---------------------------------------------------------------------------------


def _median(passes: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(p[key]) for p in passes)


def _phase_rows(result: Result) -> list[str]:
    names = sorted(result.after[0]["phases"], key=lambda n: -result.after[0]["phases"][n])
    total = result.filled["records"]
    rows = []
    for name in names:
        b = statistics.median(p["phases"].get(name, 0.0) for p in result.before)
        a = statistics.median(p["phases"].get(name, 0.0) for p in result.after)
        rows.append(f"| {name} | {b:.1f} | {b / total * 1e6:.0f} | {a:.1f} | {a / total * 1e6:.0f} |")
    return rows


def _cpu(passes: list[dict[str, Any]]) -> str:
    names = passes[0]["cpu"]
    return ", ".join(f"{n} {statistics.median(p['cpu'][n] for p in passes):.0%}" for n in names)


def subsection(result: Result, runs: int, command: str) -> str:
    filled = result.filled
    c_rate = _median(result.consume, "rate")
    b_rate = _median(result.before, "rate")
    a_rate = _median(result.after, "rate")
    cores = os.cpu_count()
    today = dt.datetime.now(dt.UTC).date().isoformat()
    machine = f"{cores} cores, {platform.machine()}, Python {platform.python_version()}"
    rows = result.after[0]["rows"]
    total = filled["records"]

    def runs_of(passes: list[dict[str, Any]]) -> str:
        return ", ".join(f"{p['rate']:,.0f}" for p in passes)

    return "\n".join(
        [
            SUBSECTION,
            "",
            f"Measured {today} on this machine ({machine}) by `{command}`.",
            "",
            textwrap.fill(
                f"Method: {filled['records']:,} canonical records made as the normalizer makes them"
                " (`bench_normalizer`'s realistic documents through `normalize_message`: key, `origin`"
                f" header, value; {filled['members']:,} members, 100 days each), each sealed with its"
                f" member's data key (mean sealed value {filled['size']:,.0f} bytes), on a fresh"
                " 6-partition topic shaped like `wear.records.v1`, filled once and read by every pass."
                f" {runs} runs, interleaved (consume-only, before, after): **consume-only** reads every"
                " record with the projection's consumer settings (5,000 records per poll), opening and"
                " decoding nothing; **before** and **after** are the live projection, `ProjectionWorker`"
                " as `python -m projections` builds it (`version=None`: it writes the served read-model"
                " version through `ReadModelStore`'s upserts, keys through `PooledKeys`, uvloop), each"
                " pass in a fresh process on a fresh migrated schema, from offset 0 until every record"
                f" is applied. **Before** is commit {result.before_commit} (pydantic contracts) in a git"
                " worktree, **after** is this tree (msgspec contracts, ADR 0006); the same benchmark"
                " file runs in both. Rates are steady state, from the first applied batch to the last;"
                " every pass applied every record, dead-lettered none and left the same rows"
                f" ({', '.join(f'{t} {n:,}' for t, n in rows.items())}).",
                width=110,
            ),
            "",
            "| pass | records/s (median) | runs | wall s (median) | CPU (median, share of one core) |",
            "|---|---:|---|---:|---|",
            f"| consume-only | {c_rate:,.0f} | {runs_of(result.consume)} |"
            f" {_median(result.consume, 'wall_s'):.1f} | |",
            f"| live projection, before (pydantic) | {b_rate:,.0f} | {runs_of(result.before)} |"
            f" {_median(result.before, 'wall_s'):.1f} | {_cpu(result.before)} |",
            f"| live projection, after (msgspec) | {a_rate:,.0f} | {runs_of(result.after)} |"
            f" {_median(result.after, 'wall_s'):.1f} | {_cpu(result.after)} |",
            "",
            textwrap.fill(
                f"The codec change takes the live projection from {b_rate:,.0f} to {a_rate:,.0f}"
                f" records/s (x{a_rate / b_rate:.2f}); it runs at {a_rate / c_rate:.2f} of the"
                f" consume-only rate (before: {b_rate / c_rate:.2f}). Load average (1 min): "
                f"{result.load_before:.2f} before the run, {', '.join(f'{x:.2f}' for x in result.loads)}"
                f" after each pass, on {cores} cores; other work on this shared machine moves these"
                " figures by tens of percent between runs.",
                width=110,
            ),
            "",
            textwrap.fill(
                "Where the time goes (wall seconds inside each phase, summed over a pass, medians;"
                " decoding and folding the next batch run while PostgreSQL applies the current one, so"
                " the phases overlap and do not add up to the wall time):",
                width=110,
            ),
            "",
            "| phase | before s | before us/record | after s | after us/record |",
            "|---|---:|---:|---:|---:|",
            *_phase_rows(result),
            "",
            textwrap.fill(
                f"The codec shows in decoding: {_per(result.before, 'decode', total)} -> "
                f"{_per(result.after, 'decode', total)} us per record (open, parse and check the sealed"
                " record, build its row). The rest of the batch is PostgreSQL's: the upserts, the"
                " recoveries' derived columns, the daily summaries and the offsets"
                f" ({_per(result.after, 'SQL', total)} us per record in `apply_changes` after,"
                f" {_per(result.before, 'SQL', total)} before), so the live projection moves much"
                " less than its decoder. It scales out by processes in one consumer group (replicas"
                " of `python -m projections`, up to one per partition of `wear.records.v1`) and by"
                " PostgreSQL on cores of its own; on this box PostgreSQL, the broker and the worker"
                " share two cores.",
                width=110,
            ),
            "",
        ]
    )


def _per(passes: list[dict[str, Any]], prefix: str, total: int) -> str:
    """Median microseconds per record of the phase whose name starts with ``prefix``."""
    seconds = [sum(s for name, s in p["phases"].items() if name.startswith(prefix)) for p in passes]
    return f"{statistics.median(seconds) / total * 1e6:.0f}"


def write_subsection(text: str, path: Path = BENCHMARKS) -> None:
    """Replace this subsection, or add it at the end of the projections section."""
    current = path.read_text()
    own = re.compile(rf"^{re.escape(SUBSECTION)}\n.*?(?=^### |^## |\Z)", re.S | re.M)
    if own.search(current):
        current = own.sub(lambda _: text.rstrip("\n") + "\n\n", current, count=1)
    else:
        section = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.S | re.M)
        found = section.search(current)
        if found is None:
            raise SystemExit(f"BENCHMARKS.md has no {HEADING!r}: run bench/bench_projections.py first")
        end = found.end()
        current = current[:end].rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n\n" + current[end:]
    path.write_text(current.rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--before", type=Path, help="a git worktree of the commit before the codec change")
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--no-write", action="store_true", help="print the subsection only")
    parser.add_argument("--pass", nargs=3, dest="one_pass", help=argparse.SUPPRESS)  # topic keys-schema total
    args = parser.parse_args()
    if args.one_pass:
        name, keys_schema, total = args.one_pass
        print(json.dumps(uvloop.run(live_pass(name, keys_schema, int(total)))))  # noqa: T201
        return
    if args.before is None:
        parser.error("--before TREE is required")
    result = bench(args.before, args.records, args.runs)
    command = f".venv/bin/python bench/bench_live_projection.py --before {args.before}"
    if args.records != DEFAULT_RECORDS or args.runs != DEFAULT_RUNS:
        command += f" --records {args.records} --runs {args.runs}"
    text = subsection(result, args.runs, command)
    print(text)  # noqa: T201
    if not args.no_write:
        write_subsection(text)


if __name__ == "__main__":
    main()
