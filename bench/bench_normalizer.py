"""Benchmark (c) of Step 4: normalizer records/s beside a consume-only pass over the same topic, same run.

Method: the WHOOP simulator's generator makes realistic members (several zones with DST, trips,
naps, unscorable sleeps; 100 days each) until there are ``--documents`` WHOOP documents (cycles,
sleeps, workouts, recoveries with their sleep in ``context``); each becomes a ``DocumentFetched``
keyed ``<user>:<type>:<id>`` on a fresh 6-partition topic shaped like ``whoop.documents.v1`` on the
local broker. Then, ``--runs`` times, interleaved, each with a fresh consumer group:

- consume-only: one consumer from ``infra.kafka.make_consumer`` (the normalizer's settings, 500
  records per poll) reads every record and commits after each batch; it decodes nothing;
- normalizer: ``run_normalizer`` (consume, decode, normalize, encode, produce with acks=all to a
  fresh ``wear.records.v1``-shaped topic, await the acks, commit) over the same topic.

Both rates are steady state: counted from the first committed batch to the last (the runner logs
each commit at DEBUG), so connecting and joining the group are left out; the wall time including
them is printed too. After each normalizer run the output topic must hold one record per document
and the DLQ none. A third figure is the pure step (decode, normalize, encode) in-process without
Kafka, on a sample: the ceiling of the normalizer. Medians and the ratio go into the
``## Normalizer`` section of ``BENCHMARKS.md`` (only that section is rewritten).

Run: ``.venv/bin/python bench/bench_normalizer.py`` (the local broker must be up:
``python -m deploy kafka up``; ``KAFKA_BOOTSTRAP_SERVERS`` names another one).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import platform
import statistics
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the project's packages, bench included

from aiokafka import TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient  # noqa: E402

from bench.report import write_section  # noqa: E402
from infra.kafka import make_consumer, make_producer  # noqa: E402
from infra.settings import KafkaSettings  # noqa: E402
from infra.topic_admin import ensure_topics  # noqa: E402
from processors.normalize import normalize_document  # noqa: E402
from processors.normalizer_runner import run_normalizer  # noqa: E402
from schemas.identity import user_id_for_whoop_member  # noqa: E402
from schemas.keys import record_key  # noqa: E402
from schemas.records import DocumentFetched, ResourceType  # noqa: E402
from schemas.serde import decode_as, encode  # noqa: E402
from schemas.topics import TopicSpec, topic  # noqa: E402
from simulator.generator import generate_member  # noqa: E402

SECTION = "## Normalizer"
PARTITIONS = 6
DAYS = 100
FETCHED_AT = dt.datetime(2025, 11, 20, 12, 0, tzinfo=dt.UTC)


def documents(count: int) -> list[tuple[bytes, bytes]]:
    """``count`` realistic documents as (key, value) pairs, members in order."""
    out: list[tuple[bytes, bytes]] = []
    index = 0
    while len(out) < count:
        member = generate_member(2026, index, DAYS, dt.date(2025, 11, 19), current_state="PENDING_SCORE")
        index += 1
        user_id = user_id_for_whoop_member(member.user_id)
        sleeps = {sleep["id"]: sleep for sleep in member.sleeps}
        batches: list[tuple[ResourceType, list[dict[str, Any]]]] = [
            ("cycle", member.cycles),
            ("sleep", member.sleeps),
            ("workout", member.workouts),
            ("recovery", member.recoveries),
        ]
        for resource_type, bodies in batches:
            for body in bodies:
                recovery = resource_type == "recovery"
                resource_id = str(body["cycle_id"] if recovery else body["id"])
                doc = DocumentFetched(
                    event_id=str(uuid.uuid4()),
                    occurred_at=FETCHED_AT,
                    user_id=user_id,
                    source="bench",
                    whoop_user_id=member.user_id,
                    resource_type=resource_type,
                    resource_id=resource_id,
                    fetched_at=FETCHED_AT,
                    document=body,
                    context={"sleep": sleeps[body["sleep_id"]]} if recovery else {},
                )
                out.append((record_key(user_id, resource_type, resource_id), encode(doc)))
    return out[:count]


class _Trouble(logging.Handler):
    """Counts the Kafka clients' warnings and errors: a broker restart mid-run shows here."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


class _Commits(logging.Handler):
    """Collects (time, messages) of every batch the normalizer commits (its DEBUG line)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.times: list[tuple[float, int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("batch committed") and isinstance(record.args, tuple):
            self.times.append((time.perf_counter(), int(str(record.args[0]))))


@dataclass(frozen=True)
class Pass:
    rate: float  # records/s, steady state (first committed batch to the last)
    wall_s: float  # including connecting and joining the group


def _steady(commits: list[tuple[float, int]], total: int, started: float, ended: float) -> Pass:
    if sum(n for _, n in commits) < total:
        raise RuntimeError("not every record was committed")
    (first_at, first_n), (last_at, _) = commits[0], commits[-1]
    return Pass((total - first_n) / (last_at - first_at), ended - started)


async def consume_only(settings: KafkaSettings, source: str, total: int) -> Pass:
    group = f"bench-consume-{uuid.uuid4().hex[:8]}"
    consumer = make_consumer(settings, "bench-consume", group, source, max_poll_records=500)  # as the runner
    commits: list[tuple[float, int]] = []
    started = time.perf_counter()
    await consumer.start()
    try:
        seen = 0
        while seen < total:
            batch = await consumer.getmany(timeout_ms=200)
            if not batch:
                continue
            n = sum(len(records) for records in batch.values())
            await consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items()})
            commits.append((time.perf_counter(), n))
            seen += n
        return _steady(commits, total, started, time.perf_counter())
    finally:
        await consumer.stop()


async def _end_offsets(settings: KafkaSettings, name: str) -> int:
    consumer = make_consumer(settings, "bench-ends", None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(name, p) for p in range(PARTITIONS)])
        return int(sum(ends.values()))
    finally:
        await consumer.stop()


async def normalizer_pass(settings: KafkaSettings, source: str, target: str, dlq: str, total: int) -> Pass:
    handler = _Commits()
    log = logging.getLogger("processors.normalizer_runner")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(
        run_normalizer(
            settings,
            stop,
            group_id=f"bench-norm-{uuid.uuid4().hex[:8]}",
            source=source,
            target=target,
            dlq=dlq,
        )
    )
    try:
        while sum(n for _, n in handler.times) < total:
            if task.done():
                task.result()
                raise RuntimeError("the normalizer stopped early")
            await asyncio.sleep(0.05)
        ended = handler.times[-1][0]
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
        log.removeHandler(handler)
    produced, dead = await _end_offsets(settings, target), await _end_offsets(settings, dlq)
    if (produced, dead) != (total, 0):
        raise RuntimeError(f"expected {total} records and no dead letter, found {produced} and {dead}")
    return _steady(handler.times, total, started, ended)


def pure_rate(items: list[tuple[bytes, bytes]]) -> float:
    """Decode, normalize, encode in-process, no Kafka: records/s."""
    started = time.perf_counter()
    for _, value in items:
        for record in normalize_document(decode_as(DocumentFetched, value)):
            encode(record)
    return len(items) / (time.perf_counter() - started)


async def _create(settings: KafkaSettings, like: str, created: list[str]) -> str:
    """A fresh topic shaped like the registry's ``like``, remembered in ``created`` for the clean-up."""
    spec: TopicSpec = replace(
        topic(like), name=f"bench.{like}.{uuid.uuid4().hex[:12]}", partitions=PARTITIONS
    )
    created.append(spec.name)
    await ensure_topics(settings, [spec])
    return spec.name


async def _delete(settings: KafkaSettings, names: list[str]) -> None:
    if not names:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        await admin.delete_topics([name for name in names if name in existing])
    finally:
        await admin.close()


async def _fill(settings: KafkaSettings, name: str, items: list[tuple[bytes, bytes]]) -> float:
    producer = make_producer(settings, "bench-fill", linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    started = time.perf_counter()
    try:
        futures = [await producer.send(name, key=key, value=value) for key, value in items]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(items) / (time.perf_counter() - started)


async def bench(settings: KafkaSettings, count: int, runs: int) -> dict[str, object]:
    trouble = _Trouble()
    for name in ("aiokafka", "processors.normalizer_runner"):
        logging.getLogger(name).addHandler(trouble)
    started = time.perf_counter()
    items = documents(count)
    generated_s = time.perf_counter() - started
    size = sum(len(v) for _, v in items) / len(items)
    print(f"{len(items):,} documents generated in {generated_s:.1f} s (mean value {size:.0f} bytes)")  # noqa: T201
    created: list[str] = []
    try:
        source = await _create(settings, "whoop.documents.v1", created)
        dlq = await _create(settings, "whoop.documents.v1.dlq", created)
        targets = [await _create(settings, "wear.records.v1", created) for _ in range(runs)]
        fill = await _fill(settings, source, items)
        print(f"topic filled at {fill:,.0f} records/s")  # noqa: T201
        consume: list[Pass] = []
        normal: list[Pass] = []
        for run, target in enumerate(targets, 1):
            consume.append(await consume_only(settings, source, len(items)))
            normal.append(await normalizer_pass(settings, source, target, dlq, len(items)))
            print(  # noqa: T201
                f"run {run}: consume-only {consume[-1].rate:,.0f}/s ({consume[-1].wall_s:.1f} s wall), "
                f"normalizer {normal[-1].rate:,.0f}/s ({normal[-1].wall_s:.1f} s wall)"
            )
        sample = items[: min(len(items), 20_000)]
        pure = [pure_rate(sample) for _ in range(runs)]
    finally:
        await _delete(settings, created)
    return {
        "documents": len(items),
        "size": size,
        "fill": fill,
        "consume": consume,
        "normal": normal,
        "pure": pure,
        "sample": len(sample),
        "trouble": trouble.count,
    }


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:,.0f}" for v in values)


def section(result: dict[str, object], runs: int, command: str) -> str:
    consume: list[Pass] = result["consume"]  # type: ignore[assignment]
    normal: list[Pass] = result["normal"]  # type: ignore[assignment]
    pure: list[float] = result["pure"]  # type: ignore[assignment]
    c_rate = statistics.median(p.rate for p in consume)
    n_rate = statistics.median(p.rate for p in normal)
    p_rate = statistics.median(pure)
    c_wall = statistics.median(p.wall_s for p in consume)
    n_wall = statistics.median(p.wall_s for p in normal)
    cores = os.cpu_count()
    today = dt.datetime.now(dt.UTC).date().isoformat()
    machine = f"{cores} cores, {platform.machine()}, Python {platform.python_version()}"
    rows = [
        f"| consume-only | {c_rate:,.0f} | {_fmt([p.rate for p in consume])} | {c_wall:.1f} |",
        f"| normalizer | {n_rate:,.0f} | {_fmt([p.rate for p in normal])} | {n_wall:.1f} |",
        f"| pure step, no Kafka | {p_rate:,.0f} | {_fmt(pure)} | |",
    ]
    return "\n".join(
        [
            SECTION,
            "",
            f"Measured {today} on this machine ({machine}) by `{command}`.",
            "",
            textwrap.fill(
                f"Method: {result['documents']:,} realistic WHOOP documents from the simulator's generator"
                " (members in several zones with DST and trips, 100 days each: cycles, main sleeps and naps,"
                " workouts, recoveries with their sleep in `context`; mean `DocumentFetched` value"
                f" {result['size']:,.0f} bytes) on a fresh 6-partition topic shaped like `whoop.documents.v1`"
                f" on the local single-node Kafka 4.3.1 broker, which shares the cores. {runs} runs,"
                " interleaved, each with a fresh consumer group: **consume-only** reads every record with the"
                " normalizer's consumer settings (500 records per poll) and commits per batch, decoding"
                " nothing; **normalizer** is `run_normalizer` (consume, decode `DocumentFetched`, normalize,"
                " encode, produce with acks=all and idempotence to a fresh `wear.records.v1`-shaped topic,"
                " await the acks, commit). Rates are steady state, from the first committed batch to the"
                " last; the wall time includes connecting and joining the group. Every normalizer run left"
                " exactly one record per document on its output topic and nothing in the DLQ."
                f" **Pure step**: decode, normalize and encode in-process on {result['sample']:,} of the"
                " documents, no Kafka: the normalizer's ceiling.",
                width=110,
            ),
            "",
            "| pass | records/s (median) | runs | wall s (median) |",
            "|---|---:|---|---:|",
            *rows,
            "",
            textwrap.fill(
                f"The normalizer runs at {n_rate / c_rate:.2f} of the consume-only rate over the same topic"
                f" and at {n_rate / p_rate:.2f} of its own pure step. The topic was filled at"
                f" {result['fill']:,.0f} records/s. Load average (1 min) after the run:"
                f" {os.getloadavg()[0]:.2f} on {cores} cores; other work on this shared machine moves these"
                " figures by tens of percent between runs."
                + (
                    f" **Disturbed run**: the Kafka clients logged {result['trouble']} warnings or errors"
                    " (a broker restart by another test?); do not trust these figures."
                    if result["trouble"]
                    else " The Kafka clients logged no warning or error during the run."
                ),
                width=110,
            ),
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--documents", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--no-write", action="store_true", help="print the section, leave BENCHMARKS.md alone"
    )
    args = parser.parse_args()
    settings = KafkaSettings(kafka_client_id_prefix="bench")
    result = asyncio.run(bench(settings, args.documents, args.runs))
    command = ".venv/bin/python bench/bench_normalizer.py"
    if args.documents != 200_000 or args.runs != 3:
        command += f" --documents {args.documents} --runs {args.runs}"
    text = section(result, args.runs, command)
    print(text)  # noqa: T201
    if not args.no_write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
