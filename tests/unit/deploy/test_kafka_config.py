"""The launcher writes the KRaft configuration that the fault tests rely on."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy import kafka_local


def _props(node: kafka_local.Node) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in node.config().splitlines() if line and not line.startswith("#")
    )


def test_single_node_is_a_combined_node_on_9092(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_RUN_DIR", str(tmp_path))
    props = _props(kafka_local.single_node())
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["default.replication.factor"] == "1"
    assert props["log.dirs"].startswith(str(tmp_path))
    assert props["auto.create.topics.enable"] == "false"


def test_cluster_nodes_share_voters_with_rf3_and_min_isr2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPELINE_RUN_DIR", str(tmp_path))
    nodes = kafka_local.cluster_nodes()
    props = [_props(node) for node in nodes]
    assert [p["node.id"] for p in props] == ["1", "2", "3"]
    assert {p["controller.quorum.voters"] for p in props} == {
        "1@127.0.0.1:19093,2@127.0.0.1:19193,3@127.0.0.1:19293"
    }
    assert all(p["default.replication.factor"] == "3" and p["min.insync.replicas"] == "2" for p in props)
    assert all(p["unclean.leader.election.enable"] == "false" for p in props)
    assert ",".join(node.address for node in nodes) == kafka_local.CLUSTER_BOOTSTRAP


def test_probe_says_no_on_a_closed_port() -> None:
    assert kafka_local.api_versions_ok("127.0.0.1", 1, timeout=0.5) is False
