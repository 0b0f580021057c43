"""The one dead-letter sender: what a stage could not process goes to ``<topic>.dlq``, acknowledged.

A letter (``schemas.events.DeadLetter.of``) holds the record's origin (topic, partition, offset), its
key and raw value, the error type and reason, the stage and the time. It is appended through the
stage's durable appender (``infra.appender``) and ``send`` returns once Kafka acknowledged it, so the
caller may then commit the origin offset (or drop the work): nothing is lost between the two. It is
keyed like the record (or as the caller says), so a member's letters keep their partition.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from infra.appender import Appender
from schemas.events import Consumed, DeadLetter
from schemas.serde import encode
from schemas.topics import DLQ_SUFFIX

__all__ = ["DeadLetters"]

logger = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DeadLetters:
    """Sends a stage's dead letters through its appender; counts them in ``sent``."""

    def __init__(self, appender: Appender, stage: str, clock: Callable[[], datetime] = _utc_now) -> None:
        self._appender = appender
        self._stage = stage
        self._clock = clock
        self.sent = 0

    async def send(
        self,
        origin: Consumed,
        error: BaseException,
        *,
        error_type: str | None = None,
        reason: str | None = None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> DeadLetter:
        """Append the letter of ``origin`` to ``<its topic>.dlq`` and return it once acknowledged.

        ``error_type`` and ``reason`` default to ``error``'s class name and text; ``key`` to the
        record's own key. Raises ``infra.appender.AppendFailed`` (retriable) when Kafka does not take it.
        """
        letter = DeadLetter.of(
            origin,
            error_type=error_type or type(error).__name__,
            reason=str(error) if reason is None else reason,
            stage=self._stage,
            failed_at=self._clock(),
        )
        record_key = key if key is not None else origin.key or b""
        await self._appender.append(origin.topic + DLQ_SUFFIX, [(record_key, encode(letter))], headers)
        self.sent += 1
        logger.warning(
            "dead-lettered %s[%d]@%d: %s", origin.topic, origin.partition, origin.offset, letter.error_type
        )
        return letter
