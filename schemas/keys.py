"""Record keys and partitioning: the key names the resource, the partition follows the user.

A key is ``<user_id>:<type>:<id>``. The partition is murmur2 of the user part, the same hash the
Java client's default partitioner applies to a key, so any Kafka client that keys by user id
alone lands on the same partition.
"""

from __future__ import annotations

__all__ = ["partition_for", "record_key", "user_of_key"]

_SEP = ":"


def record_key(user_id: str, resource_type: str, resource_id: str) -> bytes:
    """The Kafka key of one resource of one user."""
    if _SEP in user_id:
        raise ValueError("user_id must not contain ':'")
    return f"{user_id}{_SEP}{resource_type}{_SEP}{resource_id}".encode()


def user_of_key(key: bytes) -> bytes:
    """The user part of a key (the whole key when it has no separator)."""
    return key.split(_SEP.encode(), 1)[0]


def partition_for(key: bytes, partitions: int) -> int:
    """The partition of ``key`` among ``partitions``: murmur2 of the user part, Java-compatible."""
    return (_murmur2(user_of_key(key)) & 0x7FFFFFFF) % partitions


def _murmur2(data: bytes) -> int:
    """Kafka's murmur2 (seed 0x9747B28C), as in org.apache.kafka.common.utils.Utils.murmur2."""
    length = len(data)
    m = 0x5BD1E995
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail = length % 4
    base = length - tail
    if tail == 3:
        h ^= data[base + 2] << 16
    if tail >= 2:
        h ^= data[base + 1] << 8
    if tail >= 1:
        h ^= data[base]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    # Java ints are signed: return the signed 32-bit value, as Utils.murmur2 does
    return h - (1 << 32) if h & 0x80000000 else h
