"""The Strimzi ``KafkaTopic`` resources of ``deploy/k8s/base/topics.yaml``, rendered from the registry.

``schemas/topics.py`` is the one declaration of every topic; this module turns it into the
Kubernetes resources the Strimzi topic operator reconciles, so the cluster's topics cannot drift
from the code. ``python -m deploy k8s topics write`` rewrites the file, ``... check`` (and a test)
fails when it differs from what the registry renders. The text is YAML written by hand (no YAML
library in the runtime image): block mappings, plain keys, strings JSON-quoted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from deploy.paths import REPO_ROOT
from schemas.topics import TOPICS, TopicSpec

__all__ = ["BROKERS", "CLUSTER", "TOPICS_FILE", "render_topics", "resource_name", "stale", "topic_resource"]

CLUSTER = "whoop-kafka"
"""``metadata.name`` of the Strimzi ``Kafka`` resource (deploy/k8s/base/kafka.yaml)."""
BROKERS = 3
"""Brokers of the ``KafkaNodePool``: replication and min.insync.replicas are the registry's, capped at it."""
TOPICS_FILE = REPO_ROOT / "deploy" / "k8s" / "base" / "topics.yaml"
HEADER = (
    "# Generated from schemas/topics.py by `python -m deploy k8s topics write`; do not edit.\n"
    "# `python -m deploy k8s topics check` (and tests/unit/deploy/test_k8s_topics.py) fail on drift.\n"
)

Scalar = str | int


def resource_name(topic: str) -> str:
    """A DNS-1123 ``metadata.name`` for ``topic`` (its dots as dashes); ``spec.topicName`` keeps the name."""
    return topic.replace(".", "-").replace("_", "-").lower()


def topic_resource(spec: TopicSpec) -> dict[str, object]:
    """One ``KafkaTopic`` (kafka.strimzi.io/v1) for ``spec`` on the ``BROKERS``-broker cluster."""
    return {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaTopic",
        "metadata": {
            "name": resource_name(spec.name),
            "labels": {"strimzi.io/cluster": CLUSTER, "app.kubernetes.io/part-of": "whoop-pipeline"},
        },
        "spec": {
            "topicName": spec.name,
            "partitions": spec.partitions,
            "replicas": spec.replication_for(BROKERS),
            "config": spec.broker_config(BROKERS),
        },
    }


def _scalar(value: Scalar) -> str:
    return str(value) if isinstance(value, int) else json.dumps(value)


def _lines(mapping: Mapping[str, object], indent: int) -> Iterable[str]:
    pad = " " * indent
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            yield f"{pad}{key}:"
            yield from _lines(value, indent + 2)
        elif isinstance(value, str | int):
            yield f"{pad}{key}: {_scalar(value)}"
        else:
            raise TypeError(f"cannot write {type(value).__name__} at {key!r}")


def render_topics(topics: Iterable[TopicSpec] = TOPICS) -> str:
    """The whole ``topics.yaml``: the header, then one YAML document per topic."""
    documents = ["\n".join(_lines(topic_resource(spec), 0)) + "\n" for spec in topics]
    return HEADER + "".join(f"---\n{document}" for document in documents)


def stale(path: Path | None = None) -> bool:
    """Whether ``path`` (``TOPICS_FILE``) differs from what the registry renders (missing counts as stale)."""
    path = TOPICS_FILE if path is None else path
    return not path.is_file() or path.read_text() != render_topics()
