"""Keys name the resource; the partition follows the user part with Kafka's murmur2."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import murmur2
from hypothesis import given
from hypothesis import strategies as st

from schemas.keys import _murmur2, partition_for, record_key, user_of_key


def test_murmur2_matches_the_java_client_vectors() -> None:
    # values asserted by org.apache.kafka.common.utils.UtilsTest#testMurmur2
    assert _murmur2(b"21") == -973932308
    assert _murmur2(b"foobar") == -790332482
    assert _murmur2(b"a-little-bit-long-string") == -985981536
    assert _murmur2(b"a-little-bit-longer-string") == -1486304829
    assert _murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971
    assert _murmur2(b"abc") == 479470107


@given(st.binary(max_size=64))
def test_murmur2_matches_aiokafka(data: bytes) -> None:
    assert _murmur2(data) & 0x7FFFFFFF == murmur2(data) & 0x7FFFFFFF


@given(
    st.text(alphabet=st.characters(codec="utf-8", blacklist_characters=":"), min_size=1),  # a key is UTF-8
    st.text(alphabet=st.characters(codec="utf-8")),
    st.integers(1, 64),
)
def test_all_resources_of_a_user_share_a_partition(user: str, resource: str, partitions: int) -> None:
    a = partition_for(record_key(user, "sleep", resource), partitions)
    b = partition_for(record_key(user, "workout", resource + "x"), partitions)
    assert a == b == partition_for(user.encode(), partitions)
    assert 0 <= a < partitions


def test_key_layout() -> None:
    key = record_key("u1", "recovery", "93845")
    assert key == b"u1:recovery:93845"
    assert user_of_key(key) == b"u1"


def test_user_id_with_separator_is_refused() -> None:
    with pytest.raises(ValueError, match="must not contain"):
        record_key("a:b", "sleep", "1")
