"""The processors' faust-streaming App, built by a factory: there is no module-level app.

``create_app`` turns our settings into a faust ``App`` whose topics are *not* faust's to manage:
every topic is pre-created from the registry (``python -m deploy topics``), so declaring topics is
off and no leader topic is used. Faust is configured only from the arguments given here; the
environment variables faust would otherwise read (``BROKER_SESSION_TIMEOUT``, ``APP_STORE``,
``WEB_PORT``... which override explicit arguments) are ignored. ``registry_topic`` declares the
faust view of one registry topic (raw bytes in, raw bytes out: ``schemas.serde`` owns the bytes).

Why these settings, and what was measured with them: docs/adr/0002-stream-processing-library.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import faust

from infra.kafka import UserPartitioner
from infra.settings import KafkaSettings
from schemas.topics import TopicSpec

__all__ = ["GroupTiming", "create_app", "registry_topic"]


@dataclass(frozen=True)
class GroupTiming:
    """Consumer-group timing: how fast a dead worker's partitions move to a live one.

    A SIGKILLed worker sends no LeaveGroup, so its partitions stay with it until the broker
    misses its heartbeats for ``session_timeout_s``. The broker only accepts sessions inside
    ``group.min.session.timeout.ms`` .. ``group.max.session.timeout.ms`` (6 s .. 30 min by default).
    ``commit_interval_s`` bounds how much work a killed worker leaves uncommitted (redone, so
    duplicated downstream: the guarantee is at-least-once).
    """

    session_timeout_s: float = 6.0
    heartbeat_interval_s: float = 1.0
    rebalance_timeout_s: float = 20.0
    commit_interval_s: float = 1.0


def create_app(
    settings: KafkaSettings,
    app_id: str,
    *,
    datadir: Path,
    timing: GroupTiming | None = None,
) -> faust.App:
    """A faust App for one processor: ``app_id`` is also its consumer group.

    ``datadir`` is where faust keeps its working files (it creates the folder on start); with the
    in-memory store nothing durable is written there. No web server is started.
    """
    timing = timing or GroupTiming()
    servers = [server.strip() for server in settings.kafka_bootstrap_servers.split(",") if server.strip()]
    return faust.App(
        app_id,
        env={},  # faust lets environment variables override arguments; ours come from settings
        broker=[f"kafka://{server}" for server in servers],
        broker_client_id=f"{settings.kafka_client_id_prefix}-{app_id}",
        autodiscover=False,
        datadir=str(datadir),
        # topics come from the registry, pre-created; faust must neither create nor change them
        topic_allow_declare=False,
        topic_disable_leader=True,
        # stateless agents: no tables, so no changelog topics and the plain round-robin assignor
        store="memory://",
        table_standby_replicas=0,
        web_enabled=False,
        # durable produce, partitioned like every other producer of the pipeline (by user)
        producer_acks=-1,
        producer_partitioner=UserPartitioner(),
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=timing.session_timeout_s,
        broker_heartbeat_interval=timing.heartbeat_interval_s,
        broker_rebalance_timeout=timing.rebalance_timeout_s,
        broker_commit_interval=timing.commit_interval_s,
    )


def registry_topic(app: faust.App, spec: TopicSpec) -> faust.TopicT:
    """The faust topic for a registry topic: raw bytes, the registry's partition count, never declared."""
    return app.topic(
        spec.name,
        partitions=spec.partitions,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
