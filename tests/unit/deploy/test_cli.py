"""The deploy CLI answers bad input with a clear message and a non-zero exit, never a traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from deploy.cli import app

runner = CliRunner()


@pytest.mark.parametrize("node", ["0", "4", "-1"])
def test_unknown_cluster_node_is_refused(node: str) -> None:
    result = runner.invoke(app, ["kafka", "kill", "--", node])
    assert result.exit_code == 1
    assert "the cluster has nodes 1, 2 and 3" in result.output


def test_a_node_that_is_not_a_number_is_a_usage_error() -> None:
    result = runner.invoke(app, ["kafka", "kill", "two"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_unreachable_kafka_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    result = runner.invoke(app, ["topics"])
    assert result.exit_code == 1
    assert "cannot reach Kafka at 127.0.0.1:1" in result.output


def test_unreachable_database_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/nothing")
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 1
    assert "cannot migrate the database named by DATABASE_URL" in result.output
    assert (
        "nobody" not in result.output.split("DATABASE_URL", 1)[1]
    )  # the URL (and any password) is not echoed


def test_schema_files_match_the_models() -> None:
    result = runner.invoke(app, ["schemas", "check"])
    assert result.exit_code == 0, result.output


def test_unknown_command_is_a_usage_error() -> None:
    result = runner.invoke(app, ["explode"])
    assert result.exit_code == 2
