"""What ``wear status`` asks for and how it adds the answers up (pure): no client, no clock.

``wanted_groups`` names the consumer groups to report, from the settings and the registries' rows
(read-model versions not retired, records generations being filled), with the rebuilds in progress;
``watched_topics`` the topics whose offsets are read (each with its ``.dlq`` twin). Once Kafka and
PostgreSQL have answered (``wear.status_reads``), ``group_lag``, ``dlq_counts`` and ``filled_rebuilds``
turn offsets into the values of ``wear.status_model``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from aiokafka import TopicPartition

from infra.settings import KafkaSettings, PostgresSettings, SettingsBundle
from processors.generations import Generation
from processors.settings import FetcherSettings, ProcessorsSettings
from projections.settings import ProjectionsSettings
from projections.versions import Version
from schemas.topics import DLQ_SUFFIX
from wear.status_model import DlqCount, GroupLag, Kind, Rebuild, partition_lag

__all__ = [
    "StatusSettings",
    "Wanted",
    "dlq_counts",
    "filled_rebuilds",
    "group_lag",
    "wanted_groups",
    "watched_topics",
]

Position = Mapping[tuple[str, int], int]


@dataclass(frozen=True)
class StatusSettings(SettingsBundle):
    """The settings of every stage whose groups, topics and quota ``wear status`` shows."""

    kafka: KafkaSettings
    postgres: PostgresSettings
    fetcher: FetcherSettings
    processors: ProcessorsSettings
    projections: ProjectionsSettings


@dataclass(frozen=True)
class Wanted:
    """A consumer group to report: its stage, where its offsets live, the topics it reads."""

    stage: str
    group: str
    kind: Kind
    topics: tuple[str, ...]
    kafka_group: str  # the Kafka consumer group whose members say whether it runs


def _version_groups(
    own: ProjectionsSettings, versions: Iterable[Version]
) -> tuple[list[Wanted], list[Rebuild]]:
    wanted: list[Wanted] = []
    rebuilds: list[Rebuild] = []
    for version in versions:
        if version.state == "retired":
            continue
        topic = version.topic(own.records_topic)
        serving = version.state == "serving"
        kafka_group = own.group_id if serving else f"{own.group_id}-rebuild"
        stage = f"projection v{version.number} ({version.state})"
        wanted.append(Wanted(stage, version.group(own.group_id), "postgres", (topic,), kafka_group))
        if version.state == "building":
            rebuilds.append(
                Rebuild("read-model version", version.number, version.state, topic, 0, 0, version.created_at)
            )
    return wanted, rebuilds


def _generation_groups(
    s: StatusSettings, generations: Iterable[Generation]
) -> tuple[list[Wanted], list[Rebuild]]:
    wanted: list[Wanted] = []
    rebuilds: list[Rebuild] = []
    for generation in generations:
        if generation.state != "filling":
            continue
        group = f"{s.processors.normalizer_group_id}-g{generation.number}"
        source = generation.documents_topic or s.fetcher.documents_topic
        wanted.append(Wanted(f"renormalizer g{generation.number}", group, "kafka", (source,), group))
        topic = generation.topic_or(s.processors.records_topic)
        rebuilds.append(
            Rebuild(
                "records generation", generation.number, generation.state, topic, 0, 0, generation.created_at
            )
        )
    return wanted, rebuilds


def wanted_groups(
    s: StatusSettings, versions: Iterable[Version], generations: Iterable[Generation]
) -> tuple[list[Wanted], list[Rebuild]]:
    """The groups to report, and the version/generation rows in progress (their totals filled later)."""
    own = s.projections
    fetcher_topics = (s.fetcher.webhooks_topic, s.fetcher.connections_topic)
    normalizer = s.processors.normalizer_group_id
    wanted = [
        Wanted("fetcher", s.fetcher.group_id, "kafka", fetcher_topics, s.fetcher.group_id),
        Wanted("normalizer", normalizer, "kafka", (s.fetcher.documents_topic,), normalizer),
    ]
    version_wanted, rebuilds = _version_groups(own, versions)
    wanted.extend(version_wanted)
    if own.activity_topics:
        activity = own.activity_group_id
        wanted.append(Wanted("sync activity", activity, "postgres", tuple(own.activity_topics), activity))
    generation_wanted, generation_rebuilds = _generation_groups(s, generations)
    return [*wanted, *generation_wanted], [*rebuilds, *generation_rebuilds]


def watched_topics(
    s: StatusSettings, wanted: Iterable[Wanted], rebuilds: Iterable[Rebuild]
) -> tuple[set[str], list[str]]:
    """The pipeline's topics (those of every group and rebuild among them), and their DLQs, sorted."""
    main = {
        s.fetcher.webhooks_topic,
        s.fetcher.connections_topic,
        s.fetcher.documents_topic,
        s.processors.records_topic,
        s.projections.records_topic,
        *(topic for want in wanted for topic in want.topics),
        *(rebuild.topic for rebuild in rebuilds),
    }
    return main, sorted(topic + DLQ_SUFFIX for topic in main if not topic.endswith(DLQ_SUFFIX))


def group_lag(
    want: Wanted,
    position: Position,
    tps: Sequence[TopicPartition],
    bounds: tuple[Mapping[TopicPartition, int], Mapping[TopicPartition, int]],
    members: Mapping[str, int],
    missing: set[str],
) -> GroupLag:
    """One group's lag per partition of its topics, from its positions and the logs' (start, end)."""
    starts, ends = bounds
    partitions = tuple(
        partition_lag(tp.topic, tp.partition, position.get((tp.topic, tp.partition)), starts[tp], ends[tp])
        for tp in tps
        if tp.topic in want.topics
    )
    return GroupLag(
        want.stage,
        want.group,
        want.kind,
        members.get(want.kafka_group, 0),
        partitions,
        tuple(sorted(set(want.topics) & missing)),
    )


def dlq_counts(
    dlq_topics: Iterable[str],
    tps: Sequence[TopicPartition],
    bounds: tuple[Mapping[TopicPartition, int], Mapping[TopicPartition, int]],
    missing: set[str],
) -> tuple[DlqCount, ...]:
    """The messages each dead-letter topic holds (None: no such topic)."""
    starts, ends = bounds
    return tuple(
        DlqCount(
            topic,
            None if topic in missing else sum(ends[tp] - starts[tp] for tp in tps if tp.topic == topic),
        )
        for topic in dlq_topics
    )


def _behind(rebuild: Rebuild, groups: Iterable[GroupLag]) -> GroupLag | None:
    """The group filling ``rebuild``: its version's projection, or its generation's renormalizer."""
    for group in groups:
        if rebuild.kind == "read-model version" and group.stage.startswith(f"projection v{rebuild.number} "):
            return group
        if rebuild.kind == "records generation" and group.stage == f"renormalizer g{rebuild.number}":
            return group
    return None


def filled_rebuilds(
    rebuilds: Iterable[Rebuild], groups: Sequence[GroupLag], starts: Mapping[TopicPartition, int]
) -> tuple[Rebuild, ...]:
    """``rebuilds`` with ``done`` and ``total``: offsets applied by their group out of those to reach."""
    filled = []
    for rebuild in rebuilds:
        behind = _behind(rebuild, groups)
        total = done = 0
        if behind is not None:
            total = sum(p.end - starts[TopicPartition(p.topic, p.partition)] for p in behind.partitions)
            done = total - behind.lag
        filled.append(
            Rebuild(
                rebuild.kind, rebuild.number, rebuild.state, rebuild.topic, done, total, rebuild.created_at
            )
        )
    return tuple(filled)
