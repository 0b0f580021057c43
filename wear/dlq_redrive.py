"""``wear dlq redrive``: dead letters sent back through the stage that failed on them, once each.

A letter goes through its stage's own code, on its original value (opened with the member's data key):

* ``normalizer`` (``whoop.documents.v1.dlq``): ``processors.normalizer_messages.normalize_message``, the
  records sealed with the member's key and produced, like the live normalizer's, to the records topic
  (``PROCESSORS_RECORDS_TOPIC``) and to every retained records generation, each acknowledged by Kafka;
* ``projections`` (``wear.records.v1.dlq``): ``projections.decode.decode_record``, then
  ``projections.fold.plan_batch`` and ``ReadModelStore.apply_changes`` into the served read-model
  version, behind the erasure gate, like the live projection's batch transaction;
* ``fetcher`` (``whoop.webhooks.v1.dlq``, ``whoop.connections.v1.dlq``): the original event run
  through the fetcher's intake, ``processors.intake.Intake.act`` (``wear.dlq_fetcher``): the fetch
  task enqueued in ``fetcher_tasks`` (or the backfill's jobs, the deletion documents...), which the
  running fetchers then execute under the shared quota.

Once, never in a loop: each redrive takes an advisory lock on the letter's id, looks it up in
``dlq_redrives`` (migration 0040), does the stage's work and records the outcome in one PostgreSQL
transaction. A projection's read-model change commits in that transaction (exactly once), and so do the
fetcher's task-queue rows; a normalizer's records are acknowledged by Kafka before it commits, so only a
crash between the two can make a second redrive produce them again, and those records are the
normalizer's deterministic ones (same ``event_id``), which the projections ignore as duplicates (a
fetcher's deletion documents likewise: deleting twice is harmless). A letter already in ``dlq_redrives``
is skipped (``already_redriven``). A letter that fails again is appended to its DLQ once, as a new
letter (origin, key and raw value kept; the new error; header ``wear-redrive-of: <id>``); a run reads
its DLQ only up to the end offsets taken at its start, so it never picks up its own new letters, and the
old letter is recorded as redriven: a later run redrives the new letter, never both. ``--dry-run`` does
the same work without writing anything (the projection's change is rolled back).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import asyncpg
import msgspec

from infra import erasure_gate
from infra.appender import AppendFailed, DurableAppender
from infra.errors import PipelineError
from infra.member_keys import Erased, PooledKeys, open_with
from infra.sealing import is_sealed, seal_value
from processors import generations
from processors.intake import Incoming, NotActionable
from processors.normalizer_messages import STAGE as NORMALIZER
from processors.normalizer_messages import Action, Outgoing, failure_action, normalize_message
from projections import versions
from projections.decode import decode_record
from projections.errors import RecordRejected
from projections.fold import plan_batch
from projections.store import ReadModelStore
from projections.versions import Connection
from schemas.events import DeadLetter
from schemas.keys import user_of_key
from schemas.serde import encode
from wear.common import fail
from wear.dlq_fetcher import FETCHER, FetcherIntake
from wear.dlq_log import REDRIVE_OF_HEADER, Letter, letter_id

__all__ = ["Outcome", "Redriver", "Result", "redrive_state"]

PROJECTIONS = "projections"
Outcome = Literal[
    "landed", "dead_lettered", "already_redriven", "erased", "would_land", "would_fail", "not_redrivable"
]
SUCCEEDED: frozenset[str] = frozenset(("landed", "already_redriven", "erased", "would_land"))
_REFUSED = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)
_LOCK_SPACE = "wear-dlq-redrive:"
_REASON_MAX = 2000


@dataclass(frozen=True)
class Result:
    """What a redrive did with one letter."""

    id: str
    stage: str | None
    outcome: Outcome
    detail: str
    landed: int = 0
    requeued_as: str | None = None

    @property
    def succeeded(self) -> bool:
        """Landed (now, or by an earlier redrive), or nothing to land (erased); false when it failed."""
        if self.outcome == "already_redriven":
            return self.requeued_as is None  # an earlier redrive that failed sent it back: not a success
        return self.outcome in SUCCEEDED

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "stage": self.stage,
            "outcome": self.outcome,
            "succeeded": self.succeeded,
            "landed": self.landed,
            "requeued_as": self.requeued_as,
            "detail": self.detail,
        }


class _Failed(Exception):
    """The stage failed on the letter again: ``error`` is what it raised."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


async def redrive_state(pool: asyncpg.Pool, topic: str) -> dict[str, str]:
    """The letters of ``topic`` already redriven: id → ``landed``, ``erased`` or ``back as <id>``."""
    rows = await pool.fetch(
        "SELECT dlq_partition, dlq_offset, outcome, requeued_as FROM dlq_redrives WHERE dlq_topic = $1", topic
    )
    return {
        letter_id(row["dlq_partition"], row["dlq_offset"]): (
            f"back as {row['requeued_as']}" if row["outcome"] == "dead_lettered" else row["outcome"]
        )
        for row in rows
    }


@dataclass
class Redriver:
    """Redrives letters one by one; ``appender`` is None only for a dry run."""

    pool: asyncpg.Pool
    keys: PooledKeys
    appender: DurableAppender | None
    records_topic: str
    projections_records_topic: str
    dry_run: bool = False
    fetcher: FetcherIntake | None = None  # the fetcher's intake; None: its letters are not redrivable

    async def redrive(self, letter: Letter) -> Result:
        dead = letter.letter
        if dead is None:
            return Result(letter.id, None, "not_redrivable", letter.unreadable or "not a dead letter")
        stage = dead.stage
        if stage not in (NORMALIZER, PROJECTIONS, FETCHER) or (stage == FETCHER and self.fetcher is None):
            return Result(
                letter.id, stage, "not_redrivable", f"the {stage} stage's dead letters are not redriven"
            )
        if not dead.value_b64 and "omitted" in dead.reason:
            return Result(
                letter.id, stage, "not_redrivable", "the DLQ did not keep the raw value (too large)"
            )
        async with self._transaction(letter) as connection:
            done = await connection.fetchrow(
                "SELECT outcome, requeued_as, redriven_at FROM dlq_redrives "
                "WHERE dlq_topic = $1 AND dlq_partition = $2 AND dlq_offset = $3",
                letter.topic,
                letter.partition,
                letter.offset,
            )
            if done is not None:
                then = done["redriven_at"].astimezone(UTC).isoformat(timespec="seconds")
                back = f", back in the DLQ as {done['requeued_as']}" if done["requeued_as"] else ""
                return Result(
                    letter.id,
                    stage,
                    "already_redriven",
                    f"redriven at {then} ({done['outcome']}{back}): not again",
                    requeued_as=done["requeued_as"],
                )
            try:
                if stage == NORMALIZER:
                    result = await self._normalizer(letter, dead)
                elif stage == FETCHER and self.fetcher is not None:
                    result = await self._fetcher(self.fetcher, connection, letter, dead)
                else:
                    result = await self._projections(connection, letter, dead)
            except _Failed as failed:
                result = await self._dead_letter_again(letter, dead, failed.error)
            if not self.dry_run and result.outcome in ("landed", "dead_lettered", "erased"):
                await connection.execute(
                    "INSERT INTO dlq_redrives (dlq_topic, dlq_partition, dlq_offset, stage, outcome, landed,"
                    " requeued_as) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    letter.topic,
                    letter.partition,
                    letter.offset,
                    stage,
                    result.outcome,
                    result.landed,
                    result.requeued_as,
                )
            return result

    @contextlib.asynccontextmanager
    async def _transaction(self, letter: Letter) -> AsyncIterator[Connection]:
        """The redrive's transaction, holding the letter's lock; rolled back in a dry run."""
        async with self.pool.acquire() as connection:
            transaction = connection.transaction()
            await transaction.start()
            try:
                await connection.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                    f"{_LOCK_SPACE}{letter.topic}:{letter.id}",
                )
                yield connection
            except BaseException:
                await transaction.rollback()
                raise
            if self.dry_run:
                await transaction.rollback()
            else:
                await transaction.commit()

    async def _plaintext(self, letter: Letter) -> tuple[str | None, dict[str, bytes], bytes | Erased | None]:
        """The member, their key (if any) and the letter's raw value opened; _Failed if it does not open."""
        raw = letter.raw()
        key = None if letter.letter is None else letter.letter.key
        user = None if key is None else user_of_key(key.encode()).decode("utf-8", "replace")
        keys: dict[str, bytes] = {}
        if user is not None:
            try:
                keys = await self.keys.fetch([user], [(user, raw)])
            except PipelineError:
                fail("PostgreSQL unreachable or failing: the member keys cannot be read")
        try:
            return user, keys, open_with(keys, user, raw, self.keys.keys.unopenable)
        except Exception as exc:  # SealError: it does not open (still); a dead letter again
            raise _Failed(exc) from exc

    async def _normalizer(self, letter: Letter, dead: DeadLetter) -> Result:
        user, keys, value = await self._plaintext(letter)
        if isinstance(value, Erased):
            return Result(letter.id, NORMALIZER, "erased", "the member was erased: nothing left to normalize")
        try:
            outs = normalize_message(
                dead.origin_topic,
                dead.origin_partition,
                dead.origin_offset,
                None if dead.key is None else dead.key.encode(),
                value,
                target=self.records_topic,
            )
            key = None if user is None else keys.get(user)
            if key is not None and user is not None:
                outs = [_sealed(key, user, out) for out in outs]
        except Exception as exc:  # failure_action: what the live normalizer would dead-letter
            if failure_action(exc) is Action.RETRY:
                raise
            raise _Failed(exc) from exc
        async with self.pool.acquire() as connection:
            extra = [t for t in await generations.retained_topics(connection) if t != self.records_topic]
        targets = [self.records_topic, *extra]
        where = ", ".join(targets)
        if self.dry_run or self.appender is None:
            return Result(letter.id, NORMALIZER, "would_land", f"{len(outs)} records to {where}", len(outs))
        try:
            for topic in targets:
                for out in outs:
                    await self.appender.append_one(topic, out.key, out.value, out.headers)
        except AppendFailed as exc:
            fail(f"Kafka did not take the normalized records: {exc}")
        return Result(letter.id, NORMALIZER, "landed", f"{len(outs)} records to {where}", len(outs))

    async def _fetcher(
        self, fetcher: FetcherIntake, connection: Connection, letter: Letter, dead: DeadLetter
    ) -> Result:
        """The original event through the fetcher's intake, its writes in the redrive's transaction."""
        _, _, value = await self._plaintext(letter)
        if isinstance(value, Erased):
            return Result(letter.id, FETCHER, "erased", "the member was erased: nothing to fetch")
        record = Incoming(
            dead.origin_topic,
            dead.origin_partition,
            dead.origin_offset,
            None if dead.key is None else dead.key.encode(),
            value,
            redrive_of=letter.id,  # a fetch that fails again in a worker goes back naming this letter
        )
        try:
            done = await fetcher.act(connection, record)
        except NotActionable as exc:
            raise _Failed(exc) from exc
        except AppendFailed as exc:
            fail(f"Kafka did not take the fetcher's documents: {exc}")
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
            raise  # the system failed, not the letter: the redrive stops (exit 1), nothing recorded
        except Exception as exc:  # what the live intake dead-letters as InternalError (a bug)
            raise _Failed(
                NotActionable("InternalError", f"the fetcher failed on this record: {exc!r}")
            ) from exc
        verb: Outcome = "would_land" if self.dry_run else "landed"
        return Result(letter.id, FETCHER, verb, f"{done}: the fetchers run it", 1)

    async def _projections(self, connection: Connection, letter: Letter, dead: DeadLetter) -> Result:
        _, _, value = await self._plaintext(letter)
        if isinstance(value, Erased):
            return Result(letter.id, PROJECTIONS, "erased", "the member was erased: nothing to project")
        try:
            item = decode_record(
                None if dead.key is None else dead.key.encode(),
                value,
                dead.origin_topic,
                dead.origin_partition,
                dead.origin_offset,
            )
        except RecordRejected as exc:
            raise _Failed(exc) from exc
        version = await versions.serving(connection, lock="share")
        projected = version.topic(self.projections_records_topic)
        if projected != dead.origin_topic:
            return Result(
                letter.id,
                PROJECTIONS,
                "not_redrivable",
                f"it came from {dead.origin_topic}, the served read-model version {version.number} "
                f"projects {projected}",
            )
        await versions.use(connection, version)
        if not await erasure_gate.admit(connection, {item.user_id}):
            return Result(letter.id, PROJECTIONS, "erased", "the member's erasure has begun: not projected")
        try:
            async with connection.transaction():
                await ReadModelStore().apply_changes(connection, plan_batch([item]))
        except _REFUSED as exc:
            raise _Failed(RecordRejected(f"PostgreSQL refused it ({exc.sqlstate})")) from exc
        verb: Outcome = "would_land" if self.dry_run else "landed"
        return Result(letter.id, PROJECTIONS, verb, f"applied to read-model version {version.number}", 1)

    async def _dead_letter_again(self, letter: Letter, dead: DeadLetter, error: BaseException) -> Result:
        """The letter back in its DLQ once, as a new letter naming it (none in a dry run)."""
        reason = getattr(error, "reason", None) or str(error) or type(error).__name__
        error_type = getattr(error, "error_type", None) or type(error).__name__
        stage = dead.stage
        if self.dry_run or self.appender is None:
            return Result(letter.id, stage, "would_fail", f"{error_type}: {reason}"[:300])
        again = msgspec.structs.replace(
            dead,
            error_type=error_type,
            reason=f"redrive of {letter.id}: {reason}"[:_REASON_MAX],
            failed_at=datetime.now(UTC),
        )
        value = encode(again)
        key = None if letter.key is None else letter.key.encode()
        headers = [(REDRIVE_OF_HEADER, letter.id.encode())]
        try:
            meta = await self.appender.append_one(letter.topic, key, value, headers)
        except AppendFailed as exc:
            fail(f"Kafka did not take the letter back: {exc}")
        new_id = letter_id(meta.partition, meta.offset)
        return Result(
            letter.id,
            stage,
            "dead_lettered",
            f"failed again ({error_type}: {reason})"[:300],
            requeued_as=new_id,
        )


def _sealed(key: bytes, user: str, out: Outgoing) -> Outgoing:
    if out.value is None or is_sealed(out.value):
        return out
    return Outgoing(out.topic, out.key, seal_value(key, user, out.value), out.headers)
