"""deploy/k8s/base/topics.yaml is the topic registry rendered: one KafkaTopic per topic, no drift."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from deploy import k8s_topics
from deploy.cli import app
from schemas.topics import TOPICS

pytestmark = pytest.mark.unit


def test_the_committed_file_matches_the_registry() -> None:
    assert not k8s_topics.stale(), "run: python -m deploy k8s topics write"


def test_each_topic_keeps_its_registry_settings() -> None:
    documents = list(yaml.safe_load_all(k8s_topics.render_topics()))
    assert [d["spec"]["topicName"] for d in documents if d] == [spec.name for spec in TOPICS]
    for spec, document in zip(TOPICS, [d for d in documents if d], strict=True):
        assert document["kind"] == "KafkaTopic"
        assert document["metadata"]["labels"]["strimzi.io/cluster"] == k8s_topics.CLUSTER
        assert document["spec"]["partitions"] == spec.partitions
        assert document["spec"]["replicas"] == 3
        assert document["spec"]["config"] == spec.broker_config(3)
        assert document["spec"]["config"]["min.insync.replicas"] == "2"


def test_a_registry_change_is_drift(tmp_path: Path) -> None:
    changed = (replace(TOPICS[0], partitions=TOPICS[0].partitions + 6), *TOPICS[1:])
    path = tmp_path / "topics.yaml"
    path.write_text(k8s_topics.render_topics(changed))
    assert k8s_topics.stale(path)
    path.write_text(k8s_topics.render_topics())
    assert not k8s_topics.stale(path)
    assert k8s_topics.stale(tmp_path / "missing.yaml")


def test_resource_names_are_dns_labels() -> None:
    assert k8s_topics.resource_name("wear.records.v1.dlq") == "wear-records-v1-dlq"
    assert k8s_topics.resource_name("Some_Topic") == "some-topic"


def test_the_check_command_fails_on_drift_and_write_fixes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "deploy" / "k8s" / "base" / "topics.yaml"
    target.parent.mkdir(parents=True)
    target.write_text("stale\n")
    monkeypatch.setattr(k8s_topics, "TOPICS_FILE", target)
    monkeypatch.setattr("deploy.cli.REPO_ROOT", tmp_path)
    runner = CliRunner()
    failed = runner.invoke(app, ["k8s", "topics", "check"])
    assert failed.exit_code == 1
    assert "out of date" in failed.output
    assert runner.invoke(app, ["k8s", "topics", "write"]).exit_code == 0
    assert target.read_text() == k8s_topics.render_topics()
    assert runner.invoke(app, ["k8s", "topics", "check"]).exit_code == 0
