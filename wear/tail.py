"""``wear tail TOPIC``: a pipeline topic live, decoded, one line per event (JSON lines with ``--json``).

The topic is read outside any consumer group (partitions assigned, nothing committed), from its end
(new events only) or, with ``--from-beginning``, from its start. Sealed values are opened with their
member's data key (``infra.member_keys``, read from PostgreSQL only when a sealed value comes, or
for ``--user``). ``--user U`` reads only the partition of U (records are partitioned by user) and
shows only U's records. ``--max N`` and ``--until-idle S`` end the stream (scripts, tests); Ctrl-C
ends it with exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, NoReturn

import asyncpg
import typer
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError

from infra.db import create_pool
from infra.kafka import make_consumer
from infra.member_keys import Erased, KeysUnavailable, MemberKeys, PooledKeys, open_with
from infra.pipeline_env import PipelineEnvSettings, dev_secret_problems
from infra.progress_bar import progress_bar
from infra.sealing import SealError, is_sealed
from infra.settings import KafkaSettings, PostgresSettings, SettingsBundle
from infra.vault import TokenVault, VaultSettings
from ingest.store import PgStore
from processors.settings import FetcherSettings, ProcessorsSettings
from projections.commands import configure_logging, where
from projections.settings import ProjectionsSettings
from schemas.identity import user_id_for_whoop_member
from schemas.keys import partition_for, user_of_key
from wear.common import EXIT_USAGE, STDERR, JsonOption, fail, print_json_line, run, usage
from wear.tail_decode import TailRecord, describe, human_line, pipeline_topics, resolve_topic

__all__ = ["TailSettings", "register", "tail"]

_UNKNOWN_TOPIC = 3  # Kafka's UNKNOWN_TOPIC_OR_PARTITION
_POLL_MS = 200
_BATCH = 500  # records read, opened and printed at a time: memory stays bounded on a long catch-up


@dataclass(frozen=True)
class TailSettings(SettingsBundle):
    """Where Kafka and PostgreSQL are, the stages' configured topics, and the keyring of the data keys."""

    kafka: KafkaSettings
    postgres: PostgresSettings
    fetcher: FetcherSettings
    processors: ProcessorsSettings
    projections: ProjectionsSettings
    vault: VaultSettings

    def configured_topics(self) -> list[str]:
        f, p, own = self.fetcher, self.processors, self.projections
        return [
            f.webhooks_topic,
            f.connections_topic,
            f.documents_topic,
            p.records_topic,
            own.records_topic,
            *own.activity_topics,
        ]


class _Keys:
    """The member keys, with a pool opened the first time one is needed."""

    def __init__(self, settings: TailSettings) -> None:
        self._settings = settings
        self._pool: asyncpg.Pool | None = None
        self._keys: PooledKeys | None = None

    async def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await create_pool(self._settings.postgres, migrate=False, max_size=2)
        return self._pool

    async def open(self, records: list[ConsumerRecord[bytes, bytes]]) -> list[TailRecord]:
        users = [None if r.key is None else user_of_key(r.key).decode("utf-8", "replace") for r in records]
        sealed = {u for u, r in zip(users, records, strict=True) if u is not None and is_sealed(r.value)}
        keys: dict[str, bytes] = {}
        unopenable: set[str] = set()
        if sealed:
            if self._keys is None:
                self._keys = PooledKeys(await self.pool(), MemberKeys(self._settings.vault.keyring()))
            try:
                keys = await self._keys.fetch(sealed, zip(users, (r.value for r in records), strict=True))
            except KeysUnavailable:
                fail(f"PostgreSQL unreachable or failing at {where(self._settings.postgres.database_url)}")
            unopenable = self._keys.keys.unopenable
        opened = []
        for user, record in zip(users, records, strict=True):
            value: bytes | Erased | None = record.value
            problem = None
            if user in sealed:
                try:
                    value = open_with(keys, user, record.value, unopenable)
                except SealError as exc:  # shown on its line: the member's key or the value is bad
                    value, problem = None, str(exc)
            opened.append(
                TailRecord(
                    record.topic,
                    record.partition,
                    record.offset,
                    record.timestamp,
                    record.key,
                    value,
                    problem,
                )
            )
        return opened

    async def close(self) -> None:
        if self._pool is not None:
            await asyncio.wait_for(self._pool.close(), 10)


async def _partitions(settings: KafkaSettings, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"{settings.kafka_client_id_prefix}-wear-tail",
        request_timeout_ms=15_000,
    )
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"] == _UNKNOWN_TOPIC:
        usage(f"topic {topic} does not exist on Kafka at {settings.kafka_bootstrap_servers}")
    if described["error_code"] != 0:
        fail(f"Kafka cannot describe topic {topic} (error {described['error_code']})")
    return sorted(p["partition"] for p in described["partitions"])


@contextlib.asynccontextmanager
async def _consumer(settings: KafkaSettings) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = make_consumer(settings, "wear-tail", None, request_timeout_ms=15_000, max_poll_records=_BATCH)
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


def _user_id(user: str) -> str:
    """A user id as given, or the one of a WHOOP member id (digits)."""
    return user_id_for_whoop_member(int(user)) if user.isdigit() else user


async def _tail(
    settings: TailSettings,
    topic: str,
    *,
    user: str | None,
    from_beginning: bool,
    as_json: bool,
    most: int | None,
    until_idle: float | None,
) -> None:
    if resolve_topic(topic, pipeline_topics(settings.configured_topics())) is None:
        usage(f"unknown topic {topic[:120]}: not a pipeline topic (schemas/topics.py, or a *_TOPIC setting)")
    keys = _Keys(settings)
    try:
        if user is not None:
            vault = TokenVault(settings.vault.keyring())
            if await PgStore(await keys.pool(), vault).connection(user) is None:
                usage(f"unknown user {user}: no WHOOP connection with this user id (wear users list)")
        partitions = await _partitions(settings.kafka, topic)
        if user is not None:
            partitions = [partitions[partition_for(user.encode(), len(partitions))]]
        tps = [TopicPartition(topic, p) for p in partitions]
        async with _consumer(settings.kafka) as consumer:
            consumer.assign(tps)
            if from_beginning:
                await consumer.seek_to_beginning(*tps)
            else:
                await consumer.seek_to_end(*tps)
            for tp in tps:  # fix the start now: events produced from here on are shown
                await consumer.position(tp)
            start = "its start" if from_beginning else "its end"
            whose = "" if user is None else f" (user {user}, partition {partitions[0]})"
            STDERR.print(
                f"following {topic}{whose} from {start}; Ctrl-C stops",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            catch_up = (
                await _CatchUp.start(consumer, tps) if from_beginning and not sys.stdout.isatty() else None
            )
            try:
                await _follow(
                    consumer,
                    tps,
                    keys,
                    user=user,
                    as_json=as_json,
                    most=most,
                    until_idle=until_idle,
                    catch_up=catch_up,
                )
            finally:
                if catch_up is not None:
                    catch_up.stop()
    finally:
        await keys.close()


async def _follow(
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    keys: _Keys,
    *,
    user: str | None,
    as_json: bool,
    most: int | None,
    until_idle: float | None,
    catch_up: _CatchUp | None,
) -> None:
    """Print the records as they come, until ``most`` are shown or none came for ``until_idle`` seconds."""
    shown = 0
    idle_since = time.monotonic()
    while most is None or shown < most:
        batch = await consumer.getmany(*tps, timeout_ms=_POLL_MS)
        if catch_up is not None:
            catch_up.advance(batch)
        records = sorted(
            (r for items in batch.values() for r in items), key=lambda r: (r.timestamp, r.partition, r.offset)
        )
        if user is not None:
            records = [r for r in records if r.key is not None and user_of_key(r.key) == user.encode()]
        if not records:
            if until_idle is not None and time.monotonic() - idle_since >= until_idle:
                return
            continue
        idle_since = time.monotonic()
        for record in await keys.open(records):
            line = describe(record)
            if as_json:
                print_json_line(line)
            else:
                sys.stdout.write(human_line(line) + "\n")
                sys.stdout.flush()
            shown += 1
            if most is not None and shown >= most:
                return


class _CatchUp:
    """The progress bar (stderr) of a ``--from-beginning`` read, up to the end offsets of its start.

    Shown only when stdout is not the terminal (``> file``, ``| jq``): on one terminal, the bar and
    the lines would overwrite each other. It goes away once the read caught up.
    """

    def __init__(self, starts: dict[int, int], ends: dict[int, int]) -> None:
        self._starts = starts
        self._ends = ends
        self._read = dict(starts)
        self._total = sum(ends[p] - starts[p] for p in ends)
        self._progress = progress_bar(STDERR)
        self._task = self._progress.add_task("catching up", total=self._total, unit="records")
        self._running = self._total > 0
        if self._running:
            self._progress.start()

    @classmethod
    async def start(cls, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> _CatchUp:
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        return cls({tp.partition: starts[tp] for tp in tps}, {tp.partition: ends[tp] for tp in tps})

    def advance(self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        if not self._running:
            return
        for tp, items in batch.items():
            if items:
                self._read[tp.partition] = max(self._read[tp.partition], items[-1].offset + 1)
        done = sum(min(self._read[p], self._ends[p]) - self._starts[p] for p in self._ends)
        self._progress.update(self._task, completed=done)
        if done >= self._total:
            self.stop()

    def stop(self) -> None:
        if self._running:
            self._running = False
            self._progress.stop()


def tail(
    topic: Annotated[
        str, typer.Argument(help="A pipeline topic, e.g. wear.records.v1 or whoop.webhooks.v1.dlq.")
    ],
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="Only this user's events (user id or WHOOP member id).")
    ] = None,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the topic's start, not at its end.")
    ] = False,
    most: Annotated[int | None, typer.Option("--max", min=1, help="Stop after this many events.")] = None,
    until_idle: Annotated[
        float | None,
        typer.Option("--until-idle", min=0.1, help="Stop once no event came for this many seconds."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Follow a pipeline topic live, decoded, one line per event (JSON lines with --json).

    Sealed values are opened with their member's data key.
    An erased member's values show as ERASED, tombstones as tombstone.
    Dead-letter topics (*.dlq) show the error and where the record came from.
    Runs until Ctrl-C (exit 0), or until --max events, or --until-idle seconds without one.

    Example:

        $ wear tail wear.records.v1 --user 0b7c...e1 --from-beginning
        $ wear tail whoop.webhooks.v1 --json | jq .event.whoop_event_type
        $ wear tail wear.records.v1.dlq --from-beginning --until-idle 2
    """
    configure_logging()
    settings = _settings()
    user_id = None if user is None else _user_id(user.strip())
    try:
        run(
            _tail(
                settings,
                topic,
                user=user_id,
                from_beginning=from_beginning,
                as_json=as_json,
                most=most,
                until_idle=until_idle,
            )
        )
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def _settings() -> TailSettings:
    """The settings from the environment; a bad one, or the public development key of the vault outside
    ``PIPELINE_ENV=dev``, exits 2 in one line (naming the variable, never its value)."""
    try:
        settings = TailSettings.from_env()
        problems = dev_secret_problems(
            PipelineEnvSettings(), token_vault_keys=settings.vault.token_vault_keys
        )
    except ValidationError as exc:
        names = ", ".join(_names(exc))
        _refuse(f"bad setting: {names or 'environment'}")
    if problems:
        _refuse(f"refusing to open sealed values: {'; '.join(problems)}; set your own, or PIPELINE_ENV=dev")
    return settings


def _refuse(line: str) -> NoReturn:
    STDERR.print(f"error: {line}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_USAGE)


def _names(exc: ValidationError) -> list[str]:
    """The environment variables ``exc`` is about (prefix included), never their values."""
    prefix = next(
        (
            str(part.model_config.get("env_prefix", ""))
            for part in (FetcherSettings, ProcessorsSettings, ProjectionsSettings)
            if part.__name__ == exc.title
        ),
        "",
    )
    return sorted({f"{prefix}{error['loc'][0]}".upper() for error in exc.errors() if error["loc"]})


def register(app: typer.Typer) -> None:
    """Add ``wear tail`` to ``app``."""
    app.command("tail")(tail)
