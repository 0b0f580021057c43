"""The topic registry: every topic of the pipeline, declared once.

Producers, consumers, topic creation (``python -m deploy topics``) and the tests all read these
declarations. Names carry a version: a breaking change is a new topic, never an edit in place.
Every topic has a dead-letter twin ``<name>.dlq`` that receives what could not be processed,
with the reason, the origin offset and the raw value.

Partitioning: the record key identifies the resource (``<user_id>:<type>:<id>``) so compacted
topics keep the latest version of each resource, while the partition is chosen from the user
part alone (``schemas.keys``), so one user's events stay in order across stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "DLQ_REDRIVE_OF_HEADER",
    "DLQ_SUFFIX",
    "GENERATION_SEPARATOR",
    "TOPICS",
    "CleanupPolicy",
    "TopicSpec",
    "generation_topic",
    "topic",
]

CleanupPolicy = Literal["delete", "compact"]
DLQ_SUFFIX = ".dlq"
DLQ_REDRIVE_OF_HEADER = (
    "wear-redrive-of"  # on a dead letter: the id (<partition>:<offset>) it was redriven from
)
GENERATION_SEPARATOR = ".g"
DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """One topic: its name, what its key and value are, and its broker configuration."""

    name: str
    key: str
    value: str
    partitions: int
    cleanup_policy: CleanupPolicy
    retention_ms: int
    replication_factor: int = 3
    min_insync_replicas: int = 2
    description: str = ""
    extra_config: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def broker_config(self, brokers: int) -> dict[str, str]:
        """The topic-level configuration to set on a cluster of ``brokers`` brokers."""
        config = {
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": str(self.retention_ms),
            "min.insync.replicas": str(min(self.min_insync_replicas, self.replication_for(brokers))),
        }
        config.update(dict(self.extra_config))
        return config

    def replication_for(self, brokers: int) -> int:
        """The registry's replication factor, capped at the broker count (a dev broker has one)."""
        return max(1, min(self.replication_factor, brokers))

    def dlq(self) -> TopicSpec:
        """The dead-letter twin of this topic."""
        return TopicSpec(
            name=self.name + DLQ_SUFFIX,
            key=self.key,
            value=f"DeadLetter (the failed {self.name} record, the error and its origin offset)",
            partitions=self.partitions,
            cleanup_policy="delete",
            retention_ms=30 * DAY_MS,
            description=f"What could not be processed from {self.name}.",
        )


_MAIN = (
    TopicSpec(
        name="whoop.webhooks.v1",
        key="<user_id>:webhook:<whoop resource id>",
        value="WebhookReceived",
        partitions=6,
        cleanup_policy="delete",
        retention_ms=30 * DAY_MS,
        description="Verified WHOOP webhooks as received by the ingest edge.",
    ),
    TopicSpec(
        name="whoop.connections.v1",
        key="<user_id>:connection:<user_id>",
        value="UserConnected | BackfillRequested | UserDisconnected | ConnectionRevoked | UserErased",
        partitions=6,
        cleanup_policy="delete",
        retention_ms=90 * DAY_MS,
        description="Connection lifecycle: connected, backfill wanted, disconnected, revoked, erased.",
    ),
    TopicSpec(
        name="whoop.documents.v1",
        key="<user_id>:<resource type>:<whoop id>",
        value="DocumentFetched (raw WHOOP JSON), sealed with the member's data key | tombstone",
        partitions=6,
        cleanup_policy="compact",
        retention_ms=-1,
        description="Raw WHOOP documents as fetched: the source of truth, replayable.",
    ),
    TopicSpec(
        name="wear.records.v1",
        key="<user_id>:<record type>:<whoop id>",
        value="RecoveryRecorded | SleepRecorded | WorkoutRecorded | CycleRecorded | *Deleted, sealed "
        "with the member's data key | tombstone",
        partitions=6,
        cleanup_policy="compact",
        retention_ms=-1,
        description="Canonical, versioned records produced by the normalizer.",
    ),
)

TOPICS: tuple[TopicSpec, ...] = tuple(spec for main in _MAIN for spec in (main, main.dlq()))


def topic(name: str) -> TopicSpec:
    """The registry entry for ``name``; KeyError names the unknown topic."""
    for spec in TOPICS:
        if spec.name == name:
            return spec
    raise KeyError(f"topic {name!r} is not in the registry (schemas/topics.py)")


def generation_topic(records_topic: str, generation: int) -> str:
    """The topic of records generation ``generation`` (2 or more) beside ``records_topic``.

    Generation 1 is ``records_topic`` itself; a re-normalization writes ``<records_topic>.g<N>``
    (``processors.generations``), shaped like it: same partitions, key, value and configuration.
    """
    if generation < 2:
        raise ValueError("generation 1 is the records topic itself; later ones are numbered from 2")
    return f"{records_topic}{GENERATION_SEPARATOR}{generation}"
