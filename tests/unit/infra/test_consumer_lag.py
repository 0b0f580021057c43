"""Consumer lag arithmetic: end offset minus the next offset, counted from the log start when none."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition

from infra.consumer_lag import lag_of

pytestmark = pytest.mark.unit

T0, T1, T2 = (TopicPartition("t", p) for p in range(3))


def test_lag_is_end_minus_next_offset_per_partition() -> None:
    assert lag_of({T0: 0, T1: 0}, {T0: 10, T1: 5}, {T0: 4, T1: 5}) == {T0: 6, T1: 0}


def test_a_partition_never_committed_counts_from_its_log_start() -> None:
    assert lag_of({T2: 7}, {T2: 10}, {}) == {T2: 3}


def test_a_next_offset_below_the_log_start_counts_from_the_start_and_lag_is_never_negative() -> None:
    assert lag_of({T0: 50}, {T0: 60}, {T0: 3}) == {T0: 10}
    assert lag_of({T0: 0}, {T0: 60}, {T0: 70}) == {T0: 0}
