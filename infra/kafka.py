"""Kafka client factory: every producer and consumer of the pipeline is built here.

Producers are durable by construction (``acks=all``, idempotence on) and partition by the user
part of the key (``schemas.keys``), the placement memoized per user (:class:`CachedUserPartitioner`).
Consumers never auto-commit: each stage decides when an offset is done. Appending through a producer
(acknowledged or a clear error, a producer broken for good replaced) is ``infra.appender``'s job.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from infra.settings import KafkaSettings
from schemas.keys import partition_for, user_of_key

__all__ = ["CachedUserPartitioner", "UserPartitioner", "make_consumer", "make_producer"]

_CACHE_MAX = 100_000  # users remembered per partitioner before it starts afresh


class UserPartitioner:
    """aiokafka partitioner: murmur2 of the key's user part; keyless records spread at random."""

    def __init__(self) -> None:
        self._random = random.Random()  # noqa: S311 - spreading keyless records, not a secret

    def __call__(self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
        if key is None:
            return self._random.choice(list(available) or list(all_partitions))
        return sorted(all_partitions)[partition_for(key, len(all_partitions))]


class CachedUserPartitioner:
    """:class:`UserPartitioner`'s placement, memoized per user and partition list.

    The pure-Python murmur2 costs ~8 µs per record; members repeat, so the placement is remembered
    (at most ``_CACHE_MAX`` entries, then the cache starts afresh).
    """

    def __init__(self) -> None:
        self._fallback = UserPartitioner()
        self._cache: dict[tuple[bytes, tuple[int, ...]], int] = {}

    def __call__(self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
        if key is None:
            return self._fallback(key, all_partitions, available)
        cache_key = (user_of_key(key), tuple(all_partitions))
        partition = self._cache.get(cache_key)
        if partition is None:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            partition = self._cache[cache_key] = self._fallback(key, all_partitions, available)
        return partition


def make_producer(settings: KafkaSettings, name: str, **overrides: object) -> AIOKafkaProducer:
    """A durable producer: acks=all, idempotent, partitioned by user (cached). Call ``start()`` on it."""
    options: dict[str, object] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "client_id": f"{settings.kafka_client_id_prefix}-{name}",
        "acks": "all",
        "enable_idempotence": True,
        "partitioner": CachedUserPartitioner(),
        "linger_ms": 1,
        "request_timeout_ms": 15000,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def make_consumer(
    settings: KafkaSettings, name: str, group_id: str | None, *topics: str, **overrides: object
) -> AIOKafkaConsumer:
    """A consumer that never auto-commits and reads committed data only. Call ``start()`` on it."""
    options: dict[str, object] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "client_id": f"{settings.kafka_client_id_prefix}-{name}",
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)
