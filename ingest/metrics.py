"""Prometheus metrics of the edge, on a registry owned by one app (so tests can build many apps).

Counters carry only bounded label values (reasons and event types from fixed sets); never a user
id, a token or a payload.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

from infra.appender import append_histogram

__all__ = ["Metrics"]


@dataclass(frozen=True)
class Metrics:
    """Every metric of one app instance."""

    registry: CollectorRegistry
    webhooks_accepted: Counter
    webhooks_rejected: Counter
    webhooks_unknown_type: Counter
    webhooks_previous_secret: Counter
    append_seconds: Histogram
    append_failures: Counter
    oauth_outcomes: Counter
    pulls_requested: Counter

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry(auto_describe=True)
        return cls(
            registry=registry,
            webhooks_accepted=Counter(
                "ingest_webhooks_accepted",
                "Verified webhooks appended to Kafka (answered 204), by WHOOP event type.",
                ["type"],
                registry=registry,
            ),
            webhooks_rejected=Counter(
                "ingest_webhooks_rejected",
                "Webhooks refused, by reason (signature, header, size and body reasons).",
                ["reason"],
                registry=registry,
            ),
            webhooks_unknown_type=Counter(
                "ingest_webhooks_unknown_type",
                "Verified webhooks of an unknown event type: answered 200, kept out of Kafka.",
                registry=registry,
            ),
            webhooks_previous_secret=Counter(
                "ingest_webhooks_previous_secret",
                "Webhooks whose signature matched only the previous client secret (rotation).",
                registry=registry,
            ),
            append_seconds=append_histogram("ingest_kafka_append_seconds", "a webhook", registry),
            append_failures=Counter(
                "ingest_kafka_append_failures",
                "Appends not acknowledged within the bound (answered 503), by reason.",
                ["reason"],
                registry=registry,
            ),
            oauth_outcomes=Counter(
                "ingest_oauth_outcomes",
                "OAuth callbacks and disconnects, by outcome code.",
                ["outcome"],
                registry=registry,
            ),
            pulls_requested=Counter("ingest_pulls_requested", "Pull jobs accepted (202).", registry=registry),
        )
