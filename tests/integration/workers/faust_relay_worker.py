"""A real faust worker for the failover test: relays every record of SOURCE to SINK.

The app comes from ``processors.faust_app.create_app`` (topics pre-created by the test, declaration
off). Its one agent keeps each record's key and value and adds two headers: ``relayed-by`` (this
worker's NAME) and ``origin`` (``<partition>:<offset>`` of the input record), so the test sees
which worker handled which partition. Run:
python -m tests.integration.workers.faust_relay_worker BOOTSTRAP GROUP SOURCE SINK PARTITIONS NAME DATADIR
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import faust

from infra.settings import KafkaSettings
from processors.faust_app import create_app, registry_topic
from schemas.topics import topic

RELAYED_BY = "relayed-by"
ORIGIN = "origin"
_SHAPE = "whoop.webhooks.v1"  # the registry topic whose configuration the test topics copy


def relay_headers(worker: str, partition: int, offset: int) -> list[tuple[str, bytes]]:
    """The headers a relayed record carries: who relayed it, and where it came from."""
    return [(RELAYED_BY, worker.encode()), (ORIGIN, f"{partition}:{offset}".encode())]


def build_app(
    settings: KafkaSettings, group: str, source: str, sink: str, partitions: int, name: str, datadir: Path
) -> faust.App:
    app = create_app(settings, group, datadir=datadir)
    source_topic = registry_topic(app, replace(topic(_SHAPE), name=source, partitions=partitions))
    sink_topic = registry_topic(app, replace(topic(_SHAPE), name=sink, partitions=partitions))

    async def relay(stream: faust.StreamT[bytes]) -> None:
        # each event is acked when the loop moves on; faust flushes the producer before it commits
        async for event in stream.events():
            message = event.message
            await sink_topic.send(
                key=event.key,
                value=event.value,
                headers=relay_headers(name, message.partition, message.offset),
            )

    app.agent(source_topic, name="relay")(relay)
    return app


def main(argv: list[str]) -> None:
    bootstrap, group, source, sink, partitions, name, datadir = argv
    app = build_app(
        KafkaSettings(kafka_bootstrap_servers=bootstrap, kafka_client_id_prefix=f"test-{name}"),
        group,
        source,
        sink,
        int(partitions),
        name,
        Path(datadir),
    )
    faust.Worker(app, loglevel="INFO", redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1:8])
