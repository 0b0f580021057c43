"""What the operator commands ask Kafka: a topic's partitions and offsets, a consumer group's members.

Each call opens a short-lived client and closes it; Kafka errors propagate (the commands turn them
into one line with ``commands.kafka_errors``). A topic that does not exist is a :class:`Refused`
input (``--records-topic`` with a typo), not a failure.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from infra.log_bounds import log_bounds

from .commands import Failed, Refused
from .replay_offsets import Span
from .settings import Settings

__all__ = ["active_members", "admin_client", "capture_spans", "end_offsets"]

_UNKNOWN_TOPIC = 3  # Kafka's UNKNOWN_TOPIC_OR_PARTITION


@contextlib.asynccontextmanager
async def admin_client(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed on exit."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka.kafka_bootstrap_servers,
        client_id=f"{settings.kafka.kafka_client_id_prefix}-projections-commands",
    )
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def active_members(admin: AIOKafkaAdminClient, groups: Sequence[str]) -> dict[str, int]:
    """The number of members of each consumer group (0 for a group without any, or unknown)."""
    members: dict[str, int] = {}
    for group in groups:  # one group per request: aiokafka 0.14 misreads an answer describing several
        count = 0
        for response in await admin.describe_consumer_groups([group]):
            for described in response.to_object()["groups"]:
                if described["error_code"] != 0:
                    raise Failed(
                        f"Kafka could not describe consumer group {group} (error {described['error_code']})"
                    )
                count += len(described["members"])
        members[group] = count
    return members


async def _partitions(admin: AIOKafkaAdminClient, topics: Sequence[str]) -> list[TopicPartition]:
    tps: list[TopicPartition] = []
    for described in await admin.describe_topics(list(topics)):
        if described["error_code"] == _UNKNOWN_TOPIC:
            raise Refused(f"topic {described['topic']} does not exist")
        if described["error_code"] != 0:
            raise Failed(f"topic {described['topic']} cannot be read (Kafka error {described['error_code']})")
        tps.extend(TopicPartition(described["topic"], p["partition"]) for p in described["partitions"])
    return sorted(tps, key=lambda tp: (tp.topic, tp.partition))


async def capture_spans(settings: Settings, groups: Mapping[str, Sequence[str]]) -> list[Span]:
    """The log start and end offsets, now, of every partition of the topics of each group."""
    topics = sorted({topic for group_topics in groups.values() for topic in group_topics})
    async with admin_client(settings) as admin:
        tps = await _partitions(admin, topics)
    firsts, ends = await log_bounds(settings.kafka, "projections-rebuild-offsets", tps)
    return [
        Span(group, tp.topic, tp.partition, firsts[tp], ends[tp])
        for group, group_topics in groups.items()
        for tp in tps
        if tp.topic in group_topics
    ]


async def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """The end offset of every partition of ``topic``, now."""
    return {span.partition: span.end for span in await capture_spans(settings, {"": [topic]})}
