"""One signed webhook, followed by its trace id through every stage: the Kafka header ``trace_id`` on the
webhook, the document and the record, and the JSON log lines of ingest, the fetcher, the normalizer and
the projections (``infra/logs.py``, ADR 0009). No log line of the run holds the member's WHOOP tokens,
their API token or a health value of the workout the webhook announced.

The stages run as ``make run`` starts them (``python -m simulator``, ``deploy edge``, ``processors``,
``projections``), on a fresh database, ports and consumer groups of their own, with ``LOG_FORMAT=json``
and ``LOG_RECORDS=true``; their output goes to one file each.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from deploy.demo import connect_member
from deploy.paths import REPO_ROOT
from infra.logs import header_value
from infra.vault import TokenVault, VaultSettings
from schemas.topics import TOPICS
from tests.support.ingest_fakes import signed_headers

pytestmark = pytest.mark.timeout(420)

STAGES = {
    "simulator": ("simulator",),
    "edge": ("deploy", "edge"),
    "processors": ("processors",),
    "projections": ("projections",),
}
FOLLOWED = ("whoop.webhooks.v1", "whoop.documents.v1", "wear.records.v1")
SCHEMA = {"ts", "level", "stage", "logger", "msg"}
# the per-record line of each stage about the webhook's resource
PROGRESS = {
    "edge": ("records.ingest.webhooks", "webhook appended: workout.updated"),
    "processors": ("records.processors.resources", "document fetched: workout"),
    "normalizer": ("records.processors.normalizer_runner", "record normalized: workout"),
    "projections": ("records.projections.runner", "read-model row written: workout"),
}


def _env(run_env: Mapping[str, str]) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    return {
        **run_env,
        "PIPELINE_ENV": "dev",
        "LOG_FORMAT": "json",
        "LOG_RECORDS": "true",
        "SIMULATOR_MEMBERS": "2",
        "SIMULATOR_HISTORY_END": "today",
        "SIMULATOR_SEED": str(uuid.uuid4().int % 2**31),
        "INGEST_BACKFILL_DAYS": "2",
        # consumer groups of their own: another pipeline on this Kafka must not take our partitions
        "FETCHER_GROUP_ID": f"trace-fetcher-{tag}",
        "PROCESSORS_NORMALIZER_GROUP_ID": f"trace-normalizer-{tag}",
        "PROJECTIONS_GROUP_ID": f"trace-projections-{tag}",
        "PROJECTIONS_ACTIVITY_GROUP_ID": f"trace-activity-{tag}",
    }


@contextlib.asynccontextmanager
async def _stages(env: Mapping[str, str], logs: Path) -> AsyncIterator[dict[str, asyncio.subprocess.Process]]:
    processes: dict[str, asyncio.subprocess.Process] = {}
    try:
        for name, argv in STAGES.items():
            with (logs / f"{name}.log").open("wb") as out:
                processes[name] = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", *argv, cwd=REPO_ROOT, env=dict(env), stdout=out, stderr=out
                )
        yield processes
    finally:
        for process in processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _until(what: str, budget_s: float, check: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + budget_s
    while not await check():
        assert time.monotonic() < deadline, f"{what} within {budget_s:.0f} s"
        await asyncio.sleep(0.5)


async def _healthy(client: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await client.get(url)).status_code == 200
    except httpx.TransportError:
        return False


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(errors="replace").splitlines() if line.strip()]


def _entries(logs: Path, name: str) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in _lines(logs / f"{name}.log")]


class Headers:
    """The trace ids in the ``trace_id`` headers of the followed topics, from the offsets of now."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.seen: dict[str, set[str]] = {topic: set() for topic in FOLLOWED}

    async def start(self) -> None:
        await self.consumer.start()
        partitions = [
            TopicPartition(spec.name, p)
            for spec in TOPICS
            if spec.name in FOLLOWED
            for p in range(spec.partitions)
        ]
        self.consumer.assign(partitions)
        for tp, offset in (await self.consumer.end_offsets(partitions)).items():
            self.consumer.seek(tp, offset)

    async def read(self) -> None:
        for tp, records in (await self.consumer.getmany(timeout_ms=500)).items():
            for record in records:
                trace = header_value(record.headers)
                if trace is not None:
                    self.seen[tp.topic].add(trace)


async def _backfill_done(database_url: str, user_id: str) -> bool:
    connection = await asyncpg.connect(database_url)
    try:
        statuses = await connection.fetch("SELECT status FROM pull_jobs WHERE user_id = $1", user_id)
    finally:
        await connection.close()
    return bool(statuses) and all(row["status"] == "done" for row in statuses)


async def _whoop_tokens(database_url: str, user_id: str) -> list[str]:
    connection = await asyncpg.connect(database_url)
    try:
        pair = await TokenVault(VaultSettings().keyring()).load(connection, user_id)
    finally:
        await connection.close()
    assert pair is not None
    return [token for token in (pair.access_token, pair.refresh_token) if token]


def _health_values(workout: Mapping[str, object]) -> set[str]:
    """The workout's score numbers long enough not to show up in a log line by chance."""
    score = workout.get("score")
    assert isinstance(score, dict), workout
    values = {repr(v) for v in score.values() if isinstance(v, float) and len(repr(v)) >= 5}
    assert values, score
    return values


async def test_one_webhooks_trace_id_is_in_every_stages_headers_and_log_lines(
    run_env: dict[str, str], tmp_path: Path
) -> None:
    env = _env(run_env)
    edge, simulator = f"http://127.0.0.1:{env['INGEST_PORT']}", f"http://127.0.0.1:{env['SIMULATOR_PORT']}"
    database_url = env["DATABASE_URL"]
    trace_id = f"trace-{uuid.uuid4()}"
    headers = Headers(env.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    async with _stages(env, tmp_path), httpx.AsyncClient(timeout=10.0) as client:
        await _until("the simulator answers", 60, lambda: _healthy(client, f"{simulator}/_sim/health"))
        await _until("the edge answers", 90, lambda: _healthy(client, f"{edge}/readyz"))
        # the simulator sends no webhook of its own: the one below is the only one
        await client.put(f"{simulator}/_sim/webhooks/switches", json={"enabled": False})
        whoop_user_id = (await client.get(f"{simulator}/_sim/members")).json()["members"][0]["user_id"]
        member = await connect_member(client, edge, simulator, whoop_user_id)
        # the connect-time backfill over: it cannot fetch the new workout before the webhook's fetch does
        await _until("the backfill is done", 120, lambda: _backfill_done(database_url, member.user_id))
        created = await client.post(
            f"{simulator}/_sim/scenarios/new-workout", json={"user_id": whoop_user_id, "scoring": "scored"}
        )
        assert created.status_code == 201, created.text
        workout = created.json()["record"]
        await headers.start()
        body = orjson.dumps(
            {"user_id": whoop_user_id, "id": workout["id"], "type": "workout.updated", "trace_id": trace_id}
        )
        sent = await client.post(f"{edge}/v1/webhooks/whoop", content=body, headers=signed_headers(body))
        assert sent.status_code == 204, sent.text

        async def followed() -> bool:
            await headers.read()
            return all(trace_id in headers.seen[topic] for topic in FOLLOWED)

        async def projected() -> bool:
            return any(
                e.get("trace_id") == trace_id and e["logger"] == PROGRESS["projections"][0]
                for e in _entries(tmp_path, "projections")
            )

        try:
            await _until("the trace id on the webhook, document and record topics", 120, followed)
            await _until("the projections' line about the record", 60, projected)
        finally:
            await headers.consumer.stop()
        secrets = [*await _whoop_tokens(database_url, member.user_id), member.api_token]

    # every line of every stage is one JSON object of the one schema
    entries = {name: _entries(tmp_path, name) for name in STAGES}
    for name, lines in entries.items():
        assert lines, name
        assert all(set(e) >= SCHEMA and e["stage"] == name for e in lines), name
    # the webhook's trace id is on a line of each stage about the workout, with the member's user id
    stage_of = {
        "edge": "edge",
        "processors": "processors",
        "normalizer": "processors",
        "projections": "projections",
    }
    for step, (logger, message) in PROGRESS.items():
        about = [
            e
            for e in entries[stage_of[step]]
            if e.get("trace_id") == trace_id and e["logger"] == logger and str(e["msg"]).startswith(message)
        ]
        assert about, (step, [e for e in entries[stage_of[step]] if e.get("trace_id") == trace_id])
        assert all(e["user_id"] == member.user_id for e in about), about
        assert all(str(e["msg"]).endswith(str(workout["id"])) for e in about), about
    # no line holds a token or a health value of the workout
    forbidden = [*secrets, *_health_values(workout)]
    for name in STAGES:
        text = (tmp_path / f"{name}.log").read_text(errors="replace")
        leaked = [value for value in forbidden if value in text]
        assert not leaked, (name, leaked)
