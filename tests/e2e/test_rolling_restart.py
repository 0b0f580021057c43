"""Rolling restarts: under a steady load of signed WHOOP webhooks, ingest, the fetcher, the normalizer and
the projections (with the query API) are each stopped by SIGTERM and started again, one after the other.
Each exits 0 within ``STOP_GRACE_S``; afterwards every webhook the edge acknowledged is in the webhooks
topic, every change's document and records reached the read models, the read models hold exactly the
simulated WHOOP's data, and nothing was applied twice.

The stages run as the real processes they are in production, on a fresh database, fresh topics and
consumer groups of their own (``bench/bench_pipeline.py``'s world, with the fetcher and the normalizer
as two processes). The simulator makes the changes and signs and POSTs their webhooks as WHOOP does,
retrying a refused or failed delivery (quickly here).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from bench.bench_pipeline import (
    STAGES,
    Setting,
    World,
    end_offsets,
    make_change,
    read_topic,
    start_stage,
    wait_healthy,
    world,
)
from deploy.demo import ConnectedMember, connect_member
from infra.db import create_pool
from infra.member_keys import MemberKeys, PooledKeys
from infra.settings import KafkaSettings, PostgresSettings
from infra.shutdown import STOP_GRACE_S
from infra.vault import VaultSettings
from schemas.events import WebhookReceived
from schemas.records import DocumentFetched
from tests.support.server import free_port

RESTARTED = ("ingest", "fetcher", "normalizer", "projections")  # in this order, one at a time
MEMBERS = 4
RATE_PER_S = 3.0  # changes made in the simulator, each with its webhook(s)
TABLES = {"cycle": "rm_cycles", "sleep": "rm_sleeps", "workout": "rm_workouts", "recovery": "rm_recoveries"}
KEYS = {"sleep": "sleep_id", "workout": "workout_id"}
SETTING = Setting(
    "rolling restart",
    (
        ("SIMULATOR_DAYS", "2"),
        ("INGEST_BACKFILL_DAYS", "3"),  # the whole simulated history: the read models must equal it
        ("SIMULATOR_WEBHOOK_RETRY_DELAYS_S", "0.5,1,1,2,2,4,4,8,8"),  # WHOOP's retries, sped up
        ("PROCESSORS_LOG_LEVEL", "INFO"),
        ("PROJECTIONS_LOG_LEVEL", "INFO"),
        ("INGEST_LOG_LEVEL", "INFO"),
    ),
)


@dataclass(frozen=True)
class Change:
    kind: str
    resource_id: str
    member: ConnectedMember
    made_at: float  # time.monotonic()


@dataclass(frozen=True)
class Restart:
    status: int
    stop_s: float
    window: tuple[float, float]  # from the SIGTERM to ready again (time.monotonic())


async def _until(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:.0f} s"
        await asyncio.sleep(0.3)


async def _restart(w: World, http: httpx.AsyncClient, name: str, ready_url: str) -> Restart:
    """SIGTERM stage ``name``, time its exit, start it again and wait until it is ready."""
    began = time.monotonic()
    w.processes[name].send_signal(signal.SIGTERM)
    status = await asyncio.wait_for(w.processes[name].wait(), STOP_GRACE_S + 15)
    stop_s = time.monotonic() - began
    await start_stage(w, name)
    await wait_healthy(w, http, ready_url, timeout_s=60)
    return Restart(status, stop_s, (began, time.monotonic()))


async def _load(
    w: World,
    http: httpx.AsyncClient,
    members: list[ConnectedMember],
    stop: asyncio.Event,
    changes: list[Change],
) -> None:
    """Changes at RATE_PER_S, round-robin over the members, into ``changes`` until ``stop``."""
    rng = random.Random(14)
    began = time.monotonic()
    while not stop.is_set():
        member = members[len(changes) % len(members)]
        kind, resource_id = await make_change(http, w.simulator, member, rng)
        changes.append(Change(kind, resource_id, member, time.monotonic()))
        next_at = began + len(changes) / RATE_PER_S
        # the pace of the load, not a wait for a condition
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))


def _at_least(changes: list[Change], n: int, load: asyncio.Task[None]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        if load.done():
            load.result()  # the load failed: its error, not a timeout
        return len(changes) >= n

    return check


async def _committed_everything(admin: AIOKafkaAdminClient, group: str, topics: list[str]) -> bool:
    """Kafka-committed offsets of ``group`` on ``topics`` have reached the topics' ends."""
    committed = await admin.list_consumer_group_offsets(group)
    kafka = KafkaSettings()
    for name in topics:
        done = sum(meta.offset for tp, meta in committed.items() if tp.topic == name and meta.offset > 0)
        if done != await end_offsets(kafka, name):
            return False
    return True


async def _stored_everything(pool: asyncpg.Pool, group: str, topics: list[str]) -> bool:
    """Offsets stored in PostgreSQL (the projections) of ``group`` have reached the topics' ends."""
    kafka = KafkaSettings()
    for name in topics:
        stored = await pool.fetchval(
            "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE consumer_group = $1 "
            "AND topic = $2",
            group,
            name,
        )
        if stored != await end_offsets(kafka, name):
            return False
    return True


async def _idle(w: World, http: httpx.AsyncClient, pool: asyncpg.Pool, admin: AIOKafkaAdminClient) -> bool:
    """Nothing left anywhere, checked upstream first: deliveries, intake, fetches, normalizer, projections."""
    t, env = w.topics, w.env
    webhooks, connections = t["whoop.webhooks.v1"], t["whoop.connections.v1"]
    documents, records = t["whoop.documents.v1"], t["wear.records.v1"]
    sender = (await http.get(f"{w.simulator}/_sim/webhooks")).json()
    return (
        sender.get("queued", 0) == 0
        and sender.get("retrying", 0) == 0
        and await _committed_everything(admin, env["FETCHER_GROUP_ID"], [webhooks, connections])
        and await pool.fetchval("SELECT count(*) FROM fetcher_tasks") == 0
        and await _committed_everything(admin, env["PROCESSORS_NORMALIZER_GROUP_ID"], [documents])
        and await _stored_everything(pool, env["PROJECTIONS_GROUP_ID"], [records])
        and await _stored_everything(pool, env["PROJECTIONS_ACTIVITY_GROUP_ID"], [webhooks, documents])
    )


def _stage_setup() -> tuple[dict[str, tuple[str, ...]], dict[str, dict[str, str]], dict[str, int]]:
    """The stages (fetcher and normalizer as two processes, the query API in the projections') and ports."""
    ports = {name: free_port() for name in ("fetcher", "normalizer", "projections", "api")}
    stages = {
        "simulator": STAGES["simulator"],
        "ingest": ("ingest",),
        "fetcher": STAGES["processors"],
        "normalizer": STAGES["processors"],
        "projections": ("projections", "--serve-api"),
    }
    envs = {
        "fetcher": {"PROCESSORS_RUN_NORMALIZER": "false", "PROCESSORS_METRICS_PORT": str(ports["fetcher"])},
        "normalizer": {
            "PROCESSORS_RUN_FETCHER": "false",
            "PROCESSORS_METRICS_PORT": str(ports["normalizer"]),
        },
        "projections": {
            "PROJECTIONS_METRICS_PORT": str(ports["projections"]),
            "PROJECTIONS_API_PORT": str(ports["api"]),
        },
    }
    return stages, envs, ports


async def _rows(pool: asyncpg.Pool, user_id: str) -> dict[str, int]:
    return {
        kind: await pool.fetchval(f"SELECT count(*) FROM {table} WHERE user_id = $1", user_id)  # noqa: S608 - fixed names
        for kind, table in TABLES.items()
    }


@pytest.mark.timeout(300)
async def test_each_stage_restarted_under_load_loses_nothing_and_duplicates_nothing() -> None:
    stages, envs, ports = _stage_setup()
    async with (
        world(argparse.Namespace(members=MEMBERS), SETTING, stages, envs) as w,
        httpx.AsyncClient(timeout=30) as http,
    ):
        ready = {
            "ingest": f"{w.edge}/readyz",
            "fetcher": f"http://127.0.0.1:{ports['fetcher']}/readyz",
            "normalizer": f"http://127.0.0.1:{ports['normalizer']}/readyz",
            "projections": f"http://127.0.0.1:{ports['projections']}/readyz",
        }
        await wait_healthy(w, http, f"{w.simulator}/_sim/health")
        for url in ready.values():
            await wait_healthy(w, http, url)
        roster = (await http.get(f"{w.simulator}/_sim/members")).json()["members"]
        members = [await connect_member(http, w.edge, w.simulator, m["user_id"]) for m in roster]
        pool = await create_pool(PostgresSettings(database_url=w.database_url), migrate=False, max_size=3)
        admin = AIOKafkaAdminClient(bootstrap_servers=KafkaSettings().kafka_bootstrap_servers)
        await admin.start()
        try:
            stop, changes = asyncio.Event(), list[Change]()
            load = asyncio.create_task(_load(w, http, members, stop, changes))
            restarts = {}
            for name in RESTARTED:
                made = len(changes)
                await _until(_at_least(changes, made + 3, load), 30, "the load going on")
                restarts[name] = await _restart(w, http, name, ready[name])
            stop.set()
            await load
            await _until(lambda: _idle(w, http, pool, admin), 90, "the pipeline idle")
            await _assert_nothing_lost_or_doubled(w, http, pool, members, changes)
        finally:
            await admin.close()
            await pool.close()
    for name, restart in restarts.items():
        assert restart.status == 0, (name, restart)
        assert restart.stop_s < STOP_GRACE_S, (name, restart)
        during = [c for c in changes if restart.window[0] <= c.made_at <= restart.window[1]]
        assert during, f"no change was made while {name} restarted: not under load"


async def _assert_nothing_lost_or_doubled(
    w: World,
    http: httpx.AsyncClient,
    pool: asyncpg.Pool,
    members: list[ConnectedMember],
    changes: list[Change],
) -> None:
    kafka, keys = KafkaSettings(), PooledKeys(pool, MemberKeys(VaultSettings().keyring()))
    attempts = (await http.get(f"{w.simulator}/_sim/webhooks/deliveries")).json()["deliveries"]
    acknowledged = {a["trace_id"] for a in attempts if a["status"] is not None and 200 <= a["status"] < 300}
    assert not [a for a in attempts if a["outcome"] == "pending"], "a delivery never finished"
    received = [e for _, e in await read_topic(kafka, w.topics["whoop.webhooks.v1"], keys)]
    webhooks = [e for e in received if isinstance(e, WebhookReceived)]
    # every webhook the edge acknowledged is in the log
    assert acknowledged - {e.whoop_trace_id for e in webhooks} == set()
    # every change's webhook was acknowledged in the end (WHOOP retried what the restarts refused)
    delivered = {(a["type"].split(".")[0], a["id"].lower()) for a in attempts if a["outcome"] == "delivered"}
    assert {(c.kind, c.resource_id.lower()) for c in changes} <= delivered
    retried = {a["trace_id"] for a in attempts if a["outcome"] == "failed"} & acknowledged
    assert retried, "no delivery was refused while ingest restarted: the retries went untested"
    documents = [e for _, e in await read_topic(kafka, w.topics["whoop.documents.v1"], keys)]
    fetched = {(e.resource_type, e.resource_id.lower()) for e in documents if isinstance(e, DocumentFetched)}
    assert {(c.kind, c.resource_id.lower()) for c in changes} - fetched == set()
    for change in changes:  # each change's record is in the read models
        table, key = TABLES[change.kind], KEYS[change.kind]
        found = await pool.fetchval(
            f"SELECT count(*) FROM {table} WHERE user_id = $1 AND {key} = $2",  # noqa: S608 - fixed names
            change.member.user_id,
            change.resource_id,
        )
        assert found == 1, change
    # the read models hold exactly what the simulated WHOOP holds, member by member
    at_whoop = {
        m["user_id"]: m["counts"] for m in (await http.get(f"{w.simulator}/_sim/members")).json()["members"]
    }
    for member in members:
        assert await _rows(pool, member.user_id) == at_whoop[member.whoop_user_id], member.user_id
    # exactly once: each record applied once (every record and tombstone counts one), no dead letter
    applied = await pool.fetchval("SELECT coalesce(sum(records_applied), 0) FROM rm_sync_status")
    assert applied == await end_offsets(kafka, w.topics["wear.records.v1"])
    for role in ("whoop.webhooks.v1", "whoop.documents.v1", "wear.records.v1"):
        assert await end_offsets(kafka, w.topics[f"{role}.dlq"]) == 0, role
    # the sync-activity projection counted each webhook and each document once
    per_member = Counter(e.user_id for e in webhooks)
    fetches = Counter(e.user_id for e in documents if isinstance(e, DocumentFetched))
    seen = {r["user_id"]: r for r in await pool.fetch("SELECT * FROM rm_sync_activity")}
    for member in members:
        row = seen[member.user_id]
        assert (row["webhooks_seen"], row["documents_seen"]) == (
            per_member[member.user_id],
            fetches[member.user_id],
        ), member.user_id
