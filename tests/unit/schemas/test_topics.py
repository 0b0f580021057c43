"""The topic registry covers architecture.md's topics, each with its dead-letter twin."""

from __future__ import annotations

import pytest

from schemas.topics import DLQ_SUFFIX, TOPICS, topic

MAIN_TOPICS = {"whoop.webhooks.v1", "whoop.connections.v1", "whoop.documents.v1", "wear.records.v1"}


def test_every_architecture_topic_and_its_dlq_is_declared_once() -> None:
    names = [spec.name for spec in TOPICS]
    assert len(names) == len(set(names))
    assert set(names) == MAIN_TOPICS | {name + DLQ_SUFFIX for name in MAIN_TOPICS}


def test_names_carry_a_version() -> None:
    for spec in TOPICS:
        base = spec.name.removesuffix(DLQ_SUFFIX)
        assert base.rsplit(".", 1)[1].startswith("v") and base.rsplit(".", 1)[1][1:].isdigit(), spec.name


def test_compacted_topics_keep_resources_forever_and_logs_expire() -> None:
    assert topic("whoop.documents.v1").cleanup_policy == "compact"
    assert topic("wear.records.v1").cleanup_policy == "compact"
    assert topic("whoop.webhooks.v1").cleanup_policy == "delete"
    assert topic("whoop.webhooks.v1").retention_ms > 0
    for spec in TOPICS:
        if spec.name.endswith(DLQ_SUFFIX):
            assert spec.cleanup_policy == "delete"
            assert spec.partitions == topic(spec.name.removesuffix(DLQ_SUFFIX)).partitions


@pytest.mark.parametrize(("brokers", "replication", "min_isr"), [(1, "1", "1"), (3, "3", "2"), (5, "3", "2")])
def test_replication_is_capped_by_the_broker_count(brokers: int, replication: str, min_isr: str) -> None:
    spec = topic("whoop.webhooks.v1")
    assert str(spec.replication_for(brokers)) == replication
    assert spec.broker_config(brokers)["min.insync.replicas"] == min_isr


def test_unknown_topic_is_named_in_the_error() -> None:
    with pytest.raises(KeyError, match=r"whoop\.nope\.v1"):
        topic("whoop.nope.v1")
