"""The aiokafka partitioner sends every key of one user to the same partition; the cached one agrees."""

from __future__ import annotations

import pytest

from infra import kafka
from infra.kafka import CachedUserPartitioner, UserPartitioner
from infra.settings import KafkaSettings
from schemas.keys import partition_for, record_key


def test_keyed_records_follow_the_user() -> None:
    partitioner = UserPartitioner()
    partitions = list(range(6))
    for user in ("u1", "u2", "a0c1d1f2"):
        chosen = {
            partitioner(record_key(user, kind, "x"), partitions, partitions) for kind in ("sleep", "cycle")
        }
        assert chosen == {partition_for(user.encode(), 6)}


def test_keyless_records_go_to_an_available_partition() -> None:
    partitioner = UserPartitioner()
    assert {partitioner(None, [0, 1, 2], [2]) for _ in range(20)} == {2}


def test_the_cached_partitioner_places_records_like_the_user_partitioner() -> None:
    cached, reference = CachedUserPartitioner(), UserPartitioner()
    for n in range(200):
        key = record_key(f"user-{n % 37}", "webhook", str(n))
        for partitions in ([0, 1, 2], list(range(6)), [5, 3, 4]):
            assert cached(key, partitions, partitions) == reference(key, partitions, partitions)
    assert cached(None, [0, 1, 2], [1]) == 1


def test_the_cache_remembers_a_user_per_partition_list_and_starts_afresh_when_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kafka, "_CACHE_MAX", 3)
    cached = CachedUserPartitioner()
    three, six = [0, 1, 2], list(range(6))
    cached(record_key("u1", "sleep", "a"), three, three)
    cached(record_key("u1", "cycle", "b"), three, three)  # the same user: no new entry
    cached(record_key("u1", "sleep", "a"), six, six)  # another partition list: a new one
    assert len(cached._cache) == 2
    cached(record_key("u2", "sleep", "a"), three, three)
    assert len(cached._cache) == 3
    placed = cached(record_key("u3", "sleep", "a"), six, six)  # full: starts afresh
    assert cached._cache == {(b"u3", tuple(six)): placed}
    assert placed == partition_for(b"u3", 6)


async def test_durable_producers_use_the_cached_partitioner() -> None:
    producer = kafka.make_producer(KafkaSettings(kafka_bootstrap_servers="127.0.0.1:1"), "t")
    try:
        assert isinstance(producer._partitioner, CachedUserPartitioner)
    finally:
        await producer.stop()
