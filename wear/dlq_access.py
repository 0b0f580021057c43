"""Opening the dead-letter topics for ``wear dlq``: its settings, its clients, letters read and decoded.

``DlqSettings`` reads every stage's topics and the keyring from the environment; ``open_consumer``
and ``open_pool`` are the command's Kafka and PostgreSQL clients (a failure to connect is a clean
error); ``read_all_letters`` reads a DLQ's letters as of now (all of them, or the ids asked, in the
order asked); ``decoded`` opens a letter's raw value with its member's data key and decodes it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from infra.db import create_pool
from infra.kafka import make_consumer
from infra.member_keys import Erased, KeysUnavailable, PooledKeys, open_with
from infra.pipeline_env import PipelineEnvSettings, dev_secret_problems
from infra.progress_bar import progress_bar
from infra.sealing import SealError
from infra.settings import KafkaSettings, PostgresSettings
from infra.vault import VaultSettings
from processors.settings import FetcherSettings, ProcessorsSettings
from projections.commands import where
from projections.settings import ProjectionsSettings
from schemas.keys import user_of_key
from schemas.topics import TOPICS
from wear.common import STDERR, fail, usage
from wear.dlq_log import Letter, Snapshot, parse_id, partitions, read_letters, snapshot

__all__ = ["DlqSettings", "decoded", "nonempty_snapshot", "open_consumer", "open_pool", "read_all_letters"]

_BAR_FROM = 1000  # letters: reading fewer is quick, without a progress bar


@dataclass(frozen=True)
class DlqSettings:
    """Where Kafka and PostgreSQL are, the stages' topics, and the keyring that opens sealed values."""

    kafka: KafkaSettings
    postgres: PostgresSettings
    vault: VaultSettings
    pipeline_topics: tuple[str, ...]
    records_topic: str  # where the normalizer appends records (PROCESSORS_RECORDS_TOPIC)
    projections_records_topic: str  # what the projections read (PROJECTIONS_RECORDS_TOPIC)
    fetcher: FetcherSettings  # the fetcher's intake, for its letters (documents topic, coalescing)

    @classmethod
    def from_env(cls) -> DlqSettings:
        try:
            fetcher, processors, projections = FetcherSettings(), ProcessorsSettings(), ProjectionsSettings()
            settings = cls(
                kafka=KafkaSettings(),
                postgres=PostgresSettings(),
                vault=VaultSettings(),
                pipeline_topics=tuple(
                    dict.fromkeys(
                        [
                            *(spec.name for spec in TOPICS),
                            fetcher.webhooks_topic,
                            fetcher.connections_topic,
                            fetcher.documents_topic,
                            processors.records_topic,
                            projections.records_topic,
                        ]
                    )
                ),
                records_topic=processors.records_topic,
                projections_records_topic=projections.records_topic,
                fetcher=fetcher,
            )
            problems = dev_secret_problems(
                PipelineEnvSettings(), token_vault_keys=settings.vault.token_vault_keys
            )
        except ValidationError as exc:
            names = ", ".join(str(error["loc"][0]).upper() for error in exc.errors() if error["loc"])
            usage(f"bad setting: {names or 'environment'}")
        if problems:
            usage(f"refusing to open dead letters: {'; '.join(problems)}; set your own, or PIPELINE_ENV=dev")
        return settings


@contextlib.asynccontextmanager
async def open_consumer(settings: KafkaSettings) -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer in no group (offsets only, no commits), stopped on exit."""
    consumer = make_consumer(settings, "wear-dlq", None, request_timeout_ms=15_000)
    try:
        await consumer.start()
    except BaseException:
        await consumer.stop()  # a consumer that never started is still closed (no "Unclosed" warning)
        raise
    try:
        yield consumer
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def open_pool(settings: PostgresSettings) -> AsyncIterator[asyncpg.Pool]:
    """A small pool, closed on exit; a PostgreSQL that cannot be reached is a clean error."""
    try:
        pool = await create_pool(settings, max_size=3)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        fail(f"PostgreSQL unreachable or failing at {where(settings.database_url)}: {type(exc).__name__}")
    try:
        yield pool
    finally:
        await asyncio.wait_for(pool.close(), 10)


async def nonempty_snapshot(settings: KafkaSettings, consumer: AIOKafkaConsumer, topic: str) -> Snapshot:
    """``topic``'s offsets now; Usage when it is empty."""
    shot = await snapshot(consumer, topic, (await partitions(settings, [topic]))[topic])
    if shot.count == 0:
        usage(f"the DLQ {topic} is empty: nothing to show or redrive")
    return shot


async def read_all_letters(
    settings: KafkaSettings, consumer: AIOKafkaConsumer, topic: str, ids: list[str] | None
) -> list[Letter]:
    """The letters of ``topic`` as of now: every one (with a progress bar when many), or ``ids`` in
    their order; Usage for an id that holds no letter."""
    shot = await nonempty_snapshot(settings, consumer, topic)
    wanted = None if not ids else [parse_id(text) for text in ids]
    found: list[Letter] = []
    if wanted is None and shot.count >= _BAR_FROM:
        with progress_bar(STDERR) as bar:
            task = bar.add_task(f"read {topic}", total=shot.count, unit="letters")
            async for batch in read_letters(consumer, shot, wanted):
                found += batch
                bar.advance(task, len(batch))
            bar.update(task, completed=shot.count)
    else:
        async for batch in read_letters(consumer, shot, wanted):
            found += batch
    if wanted is not None:
        order = {pair: index for index, pair in enumerate(wanted)}
        found.sort(key=lambda letter: order[(letter.partition, letter.offset)])
        missing = set(order) - {(letter.partition, letter.offset) for letter in found}
        if missing:
            usage(f"unknown id {'{}:{}'.format(*min(missing))} in {topic}: no letter there (compacted away?)")
    return found


async def decoded(keys: PooledKeys, letter: Letter) -> dict[str, object]:
    """The letter with its raw value opened and decoded (JSON when it is JSON)."""
    shown: dict[str, object] = letter.summary()
    raw = letter.raw()
    if letter.letter is None:
        shown["value"] = None
        return shown
    if raw is None:
        shown["value"] = None
        shown["value_note"] = "no raw value kept" if "omitted" in letter.letter.reason else "tombstone"
        return shown
    user = None if letter.key is None else user_of_key(letter.key.encode()).decode("utf-8", "replace")
    try:
        keys_found = {} if user is None else await keys.fetch([user], [(user, raw)])
    except KeysUnavailable:
        fail("PostgreSQL unreachable or failing: the member keys cannot be read")
    try:
        plain = open_with(keys_found, user, raw, keys.keys.unopenable)
    except SealError as exc:
        shown["value"] = None
        shown["value_note"] = f"sealed, does not open: {exc}"
        return shown
    if isinstance(plain, Erased):
        shown["value"] = None
        shown["value_note"] = "ERASED: the member's data key was destroyed"
        return shown
    try:
        shown["value"] = orjson.loads(plain or b"")
    except orjson.JSONDecodeError:
        shown["value"] = None
        shown["value_note"] = f"not JSON ({len(plain or b'')} bytes): {(plain or b'')[:120]!r}"
    return shown
