"""Create the registry's topics on a cluster and report the ones whose configuration drifted.

``ensure_topics`` creates what is missing (with ``create=False``, only reports it) and compares
what exists with the registry (partitions, replication factor, cleanup policy, retention,
min.insync.replicas). It never changes an existing topic: a drift is reported for a human to
decide, since a partition count change re-shuffles keys and a cleanup policy change can delete data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from infra.settings import KafkaSettings
from schemas.topics import TopicSpec

__all__ = ["Drift", "TopicReport", "ensure_topics"]


@dataclass(frozen=True)
class Drift:
    """One setting of one topic that differs from the registry."""

    topic: str
    setting: str
    expected: str
    actual: str


@dataclass(frozen=True)
class TopicReport:
    """What ``ensure_topics`` did and found."""

    created: tuple[str, ...]
    unchanged: tuple[str, ...]
    drifts: tuple[Drift, ...]
    missing: tuple[str, ...] = ()  # not created (``create=False``)

    @property
    def ok(self) -> bool:
        return not self.drifts and not self.missing


async def ensure_topics(
    settings: KafkaSettings, specs: Iterable[TopicSpec], *, create: bool = True
) -> TopicReport:
    """Create missing topics (``create``; else report them), then compare every topic with its spec."""
    specs = list(specs)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"{settings.kafka_client_id_prefix}-topic-admin",
    )
    await admin.start()
    try:
        brokers = len((await admin.describe_cluster())["brokers"])
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if missing and create:
            await admin.create_topics(
                [
                    NewTopic(
                        name=spec.name,
                        num_partitions=spec.partitions,
                        replication_factor=spec.replication_for(brokers),
                        topic_configs=spec.broker_config(brokers),
                    )
                    for spec in missing
                ]
            )
        present = [spec for spec in specs if spec.name in existing]
        drifts = await _drifts(admin, present, brokers) if present else []
    finally:
        await admin.close()
    names = tuple(spec.name for spec in missing)
    return TopicReport(
        created=names if create else (),
        unchanged=tuple(spec.name for spec in present),
        drifts=tuple(drifts),
        missing=() if create else names,
    )


async def _drifts(admin: AIOKafkaAdminClient, specs: list[TopicSpec], brokers: int) -> list[Drift]:
    drifts: list[Drift] = []
    described = {
        entry["topic"]: entry for entry in await admin.describe_topics([spec.name for spec in specs])
    }
    for spec in specs:
        partitions = described[spec.name]["partitions"]
        _compare(drifts, spec.name, "partitions", str(spec.partitions), str(len(partitions)))
        replicas = {len(p["replicas"]) for p in partitions}
        actual_rf = (
            str(replicas.pop()) if len(replicas) == 1 else "mixed " + ",".join(map(str, sorted(replicas)))
        )
        _compare(drifts, spec.name, "replication.factor", str(spec.replication_for(brokers)), actual_rf)
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, spec.name) for spec in specs]
    )
    actual: dict[str, dict[str, str]] = {}
    for response in responses:
        for resource in response.resources:
            # (error_code, error_message, resource_type, resource_name, config_entries)
            name, entries = resource[3], resource[4]
            actual[name] = {entry[0]: entry[1] for entry in entries}
    for spec in specs:
        for setting, expected in spec.broker_config(brokers).items():
            _compare(drifts, spec.name, setting, expected, actual.get(spec.name, {}).get(setting, "<unset>"))
    return drifts


def _compare(drifts: list[Drift], topic: str, setting: str, expected: str, actual: str) -> None:
    if expected != actual:
        drifts.append(Drift(topic, setting, expected, actual))
