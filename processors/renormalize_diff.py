"""The dry-run diff's inputs: what a records generation holds, and what the current normalizer makes of
the documents; each side the latest record per key, opened (the I/O around ``processors.record_diff``).

:func:`read_generation` reads a generation's topic up to the ends captured beforehand and opens each
record with its member's key. :func:`renormalize_documents` reads the document log the same way and
runs each document through the very step the normalizer runs (``normalize_message``); with ``since``,
only the documents Kafka stored at or after it, laid over the generation's records (what a
``--since`` generation holds: the copy first, then the re-normalized records). A value whose member
was erased is skipped on both sides; a value that does not open or is not JSON is counted
(``unreadable``); a document the current normalizer refuses gives no record (it would be
dead-lettered) and is counted (``refused``). Values are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

import orjson
from aiokafka import ConsumerRecord

from infra.member_keys import Erased, PooledKeys, open_with
from infra.sealing import SealError, is_sealed
from infra.settings import KafkaSettings
from processors.log_reader import Span, read_spans
from processors.normalizer_messages import normalize_message
from schemas.keys import user_of_key

__all__ = ["Read", "Reading", "read_generation", "renormalize_documents"]

Value = bytes  # a record's JSON text (opened): compact, parsed by the diff one pair at a time
Progress = Callable[[int], None]
"""Called with the offsets read so far."""
_CHUNK = 200  # documents normalized between two yields to the event loop


class _Unreadable:
    """The marker of a value that does not open (another key, tampered)."""


_UNREADABLE = _Unreadable()
_Value: TypeAlias = bytes | Erased | _Unreadable | None  # a record's value: plaintext, ERASED, unreadable


@dataclass
class Read:
    """One side of the diff and what was read to make it."""

    latest: dict[bytes, Value] = field(default_factory=dict)
    messages: int = 0
    erased: int = 0
    unreadable: int = 0
    refused: int = 0  # documents the normalizer refuses (documents side)
    renormalized: int = 0  # documents re-normalized: stored at or after since (documents side)
    keys: set[bytes] = field(default_factory=set)  # keys of those documents (documents side)
    normalizer_versions: Counter[int] = field(default_factory=Counter)  # of the records (generation side)


class _Done:
    """Offsets read per partition, for the progress bar."""

    def __init__(self, of: Sequence[Span]) -> None:
        self._first = {span.partition: span.first for span in of}
        self._next = dict(self._first)

    def advance(self, records: Iterable[ConsumerRecord[bytes, bytes]]) -> int:
        for record in records:
            self._next[record.partition] = max(self._next[record.partition], record.offset + 1)
        return sum(self._next[p] - self._first[p] for p in self._first)


def _user(key: bytes | None) -> str | None:
    return None if key is None else user_of_key(key).decode("utf-8", "replace")


async def _opened(keys: PooledKeys, records: Sequence[ConsumerRecord[bytes, bytes]]) -> list[_Value]:
    """Each record's value as plaintext, ERASED, or ``_UNREADABLE``."""
    users = [_user(record.key) for record in records]
    sealed = {u for u, r in zip(users, records, strict=True) if u is not None and is_sealed(r.value)}
    found = await keys.fetch(sealed, zip(users, (r.value for r in records), strict=True)) if sealed else {}
    opened: list[_Value] = []
    for user, record in zip(users, records, strict=True):
        try:
            opened.append(open_with(found, user, record.value, keys.keys.unopenable))
        except SealError:
            opened.append(_UNREADABLE)
    return opened


def _fold(into: dict[bytes, Value], items: Iterable[tuple[bytes, Value | None]]) -> None:
    """``record_diff.latest`` in place: a log appended to the latest values it already holds."""
    for key, value in items:
        if value is None:
            into.pop(key, None)
        else:
            into[key] = value


def _object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


@dataclass(frozen=True, slots=True)
class Reading:
    """One read of a topic up to the ends captured beforehand (``of``), each value opened with its member's
    key; ``progress`` is told the offsets read, and the reading stops early once ``stop`` is set."""

    settings: KafkaSettings
    topic: str
    of: Sequence[Span]
    keys: PooledKeys
    progress: Progress
    stop: asyncio.Event

    def batches(self) -> AsyncGenerator[tuple[list[ConsumerRecord[bytes, bytes]], list[_Value]], None]:
        """Each batch read, with its opened values."""
        spans = read_spans(self.settings, self.topic, self.of)
        return _opened_batches(spans, self.of, self.keys, self.progress, self.stop)


async def read_generation(reading: Reading) -> Read:
    """The latest record per key of the reading's topic (a generation's) up to its ends."""
    read = Read()
    async with contextlib.aclosing(reading.batches()) as batches:
        async for batch, values in batches:
            _fold(read.latest, _records(read, batch, values))
    return read


async def _opened_batches(
    spans: AsyncGenerator[list[ConsumerRecord[bytes, bytes]], None],
    of: Sequence[Span],
    keys: PooledKeys,
    progress: Progress,
    stop: asyncio.Event,
) -> AsyncGenerator[tuple[list[ConsumerRecord[bytes, bytes]], list[_Value]], None]:
    """Each batch of ``spans`` (read up to the ends of ``of``) with its opened values; progress is
    reported after the caller is done with a batch, and the reading stops there once ``stop`` is set."""
    done = _Done(of)
    async with contextlib.aclosing(spans) as batches:
        async for batch in batches:
            yield batch, await _opened(keys, batch)
            progress(done.advance(batch))
            if stop.is_set():
                break


def _records(
    read: Read,
    batch: Sequence[ConsumerRecord[bytes, bytes]],
    values: Sequence[_Value],
) -> list[tuple[bytes, Value | None]]:
    items: list[tuple[bytes, Value | None]] = []
    for record, value in zip(batch, values, strict=True):
        read.messages += 1
        if isinstance(value, Erased):
            read.erased += 1
        elif isinstance(value, _Unreadable) or record.key is None:
            read.unreadable += 1
        elif value is None:
            items.append((record.key, None))
        elif (parsed := _object(value)) is not None:
            read.normalizer_versions[int(parsed.get("normalizer_version") or 0)] += 1
            items.append((record.key, value))
        else:
            read.unreadable += 1
    return items


async def renormalize_documents(
    reading: Reading,
    *,
    normalizer_version: int,
    since: datetime | None = None,
    over: Mapping[bytes, Value] | None = None,
) -> Read:
    """The latest record per key the current normalizer makes of the reading's documents.

    With ``since``: only the documents stored at or after it, laid over ``over`` (the records copied).
    """
    read = Read(latest=dict(over or {}))
    since_ms = None if since is None else int(since.timestamp() * 1000)
    async with contextlib.aclosing(reading.batches()) as batches:
        async for batch, values in batches:
            for start in range(0, len(batch), _CHUNK):
                await asyncio.sleep(0)  # let the progress bar and the signal handlers run
                chunk = zip(batch[start : start + _CHUNK], values[start : start + _CHUNK], strict=True)
                _fold(read.latest, _normalized(read, chunk, since_ms, normalizer_version))
    return read


def _normalized(
    read: Read,
    items: Iterable[tuple[ConsumerRecord[bytes, bytes], _Value]],
    since_ms: int | None,
    normalizer_version: int,
) -> list[tuple[bytes, Value | None]]:
    found: list[tuple[bytes, Value | None]] = []
    for record, value in items:
        read.messages += 1
        if since_ms is not None and record.timestamp < since_ms:
            continue
        if isinstance(value, Erased):
            read.erased += 1
            continue
        if isinstance(value, _Unreadable):
            read.unreadable += 1
            continue
        read.renormalized += 1
        if record.key is not None:
            read.keys.add(record.key)
        try:
            outs = normalize_message(
                record.topic,
                record.partition,
                record.offset,
                record.key,
                value,
                target=record.topic,
                normalizer_version=normalizer_version,
            )
            results = [(out.key, out.value) for out in outs]
        except Exception:  # noqa: BLE001 - anything the pure step raises is what the runner dead-letters
            read.refused += 1
            continue
        found.extend((key, result) for key, result in results if key is not None)
    return found
