"""Prometheus metrics of the processors (fetcher and normalizer), served on ``PROCESSORS_METRICS_PORT``.

The counters live on this module's :data:`REGISTRY` (one per process; the code that counts imports
them, so no metric is threaded through every constructor); tests compare values before and after.
Labels take bounded values only (priorities, status codes, record types, outcome codes, partitions),
never a user id, a token or health data.

:class:`ProcessorsProbe` refreshes the gauges read on scrape (consumer lag, quota left) and answers
``/readyz`` (``infra.ops_server``): ready when PostgreSQL and Kafka answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge

from infra.appender import append_histogram
from infra.consumer_lag import KafkaOffsets, lag_gauge, set_lag
from infra.db import pool_answers
from processors.errors import NeedsReauth, TokenRefreshUnavailable, WhoopBadResponse, WhoopRejected
from processors.quota import PgQuota, Priority

__all__ = [
    "APPEND_SECONDS",
    "CONSUMER_LAG",
    "NORMALIZER_DEAD_LETTERS",
    "NORMALIZER_RECORDS",
    "QUOTA_LEFT",
    "REGISTRY",
    "TOKEN_REFRESHES",
    "WHOOP_CALLS",
    "ProcessorsProbe",
    "Watched",
    "count_records",
    "count_refresh",
    "count_whoop_call",
]

REGISTRY = CollectorRegistry(auto_describe=True)

WHOOP_CALLS = Counter(
    "processors_whoop_calls",
    "WHOOP data API request attempts (retries included), by priority and HTTP status ('error': no answer).",
    ["priority", "status"],
    registry=REGISTRY,
)
TOKEN_REFRESHES = Counter(
    "processors_whoop_token_refreshes",
    "Refresh-token exchanges with WHOOP, by outcome (ok, reauth, rejected, invalid, unavailable).",
    ["outcome"],
    registry=REGISTRY,
)
QUOTA_LEFT = Gauge(
    "processors_whoop_quota_left",
    "WHOOP requests left now in the shared quota's sliding window (minute, day), read on scrape.",
    ["window"],
    registry=REGISTRY,
)
APPEND_SECONDS = append_histogram(
    "processors_kafka_append_seconds", "the fetcher (documents, connection events)", REGISTRY
)
NORMALIZER_RECORDS = Counter(
    "processors_normalizer_records",
    "Canonical records (and tombstones) the normalizer produced, by record type.",
    ["type"],
    registry=REGISTRY,
)
NORMALIZER_DEAD_LETTERS = Counter(
    "processors_normalizer_dead_letters",
    "Documents the normalizer sent to the dead-letter topic.",
    registry=REGISTRY,
)
CONSUMER_LAG = lag_gauge("processors_consumer_lag", REGISTRY, "Kafka")

_REFRESH_OUTCOMES: tuple[tuple[type[Exception], str], ...] = (
    (NeedsReauth, "reauth"),  # before WhoopRejected: the most specific kind first
    (TokenRefreshUnavailable, "unavailable"),
    (WhoopBadResponse, "invalid"),
    (WhoopRejected, "rejected"),
)


def count_whoop_call(priority: Priority, status: int) -> None:
    """One WHOOP request attempt and its status (0: no HTTP answer)."""
    WHOOP_CALLS.labels(priority.name.lower(), str(status) if status else "error").inc()


def count_refresh(failure: Exception | None) -> None:
    """One refresh-token exchange: ``None`` when it succeeded, else the error it raised."""
    outcome = "ok"
    if failure is not None:
        outcome = next((name for kind, name in _REFRESH_OUTCOMES if isinstance(failure, kind)), "error")
    TOKEN_REFRESHES.labels(outcome).inc()


def count_records(keys: Iterable[bytes | None]) -> None:
    """Records produced, by the type in their ``<user>:<type>:<id>`` key (one increment per type: the
    normalizer counts a whole batch's records at once)."""
    tally: dict[bytes, int] = {}
    for key in keys:
        parts = key.split(b":", 2) if key is not None else []
        kind = parts[1] if len(parts) == 3 else b"unknown"
        tally[kind] = tally.get(kind, 0) + 1
    for kind, count in tally.items():
        NORMALIZER_RECORDS.labels(kind.decode("ascii", "replace")).inc(count)


@dataclass(frozen=True)
class Watched:
    """A consumer group committing in Kafka and its topics."""

    group: str
    topics: Sequence[str]


class ProcessorsProbe:
    """Refreshes the scrape-time gauges and answers readiness for one processors process."""

    def __init__(
        self, pool: asyncpg.Pool, offsets: KafkaOffsets, groups: Sequence[Watched], quota: PgQuota | None
    ) -> None:
        self._pool = pool
        self._offsets = offsets
        self._groups = groups
        self._quota = quota

    async def refresh(self) -> None:
        """Consumer lag of each watched group, and the quota left (when this process fetches)."""
        for watched in self._groups:
            set_lag(CONSUMER_LAG, watched.group, await self._offsets.group_lag(watched.group, watched.topics))
        if self._quota is not None:
            for window, left in (await self._quota.left()).items():
                QUOTA_LEFT.labels(window).set(left)

    async def readiness(self) -> Mapping[str, bool]:
        """``postgres`` and ``kafka``: whether each answers now."""
        postgres, kafka = await asyncio.gather(pool_answers(self._pool), self._offsets.ready())
        return {"postgres": postgres, "kafka": kafka}
