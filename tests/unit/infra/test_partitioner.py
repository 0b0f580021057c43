"""The aiokafka partitioner sends every key of one user to the same partition."""

from __future__ import annotations

from infra.kafka import UserPartitioner
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
