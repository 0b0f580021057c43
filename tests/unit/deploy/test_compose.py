"""deploy/compose.yaml: valid against the Compose Specification, and wired so that it can start.

No Docker engine here: the file is checked against the compose-spec JSON Schema (deploy/compose-spec/),
then structurally (every service has an image, a healthcheck or is a one-shot job, ``depends_on``
names real services with conditions that fit them, every stage gets the variables it needs and only
variables the code reads), and Prometheus scrapes every stage on the port it serves.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from deploy.paths import REPO_ROOT

from .manifest_checks import compose_problems, load, settings_problems, unknown_variables

pytestmark = pytest.mark.unit

COMPOSE = REPO_ROOT / "deploy" / "compose.yaml"
PROMETHEUS = REPO_ROOT / "deploy" / "prometheus.yml"
ONE_SHOT = {"topics", "migrate"}
KAFKA = {"kafka-1", "kafka-2", "kafka-3"}
STAGES = {"simulator", "ingest", "query-api", "fetcher", "normalizer", "projections"}
SHARED = {"PIPELINE_ENV", "KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "WHOOP_API_BASE_URL"}
NEEDS = {
    "simulator": {"SIMULATOR_HOST", "WHOOP_WEBHOOK_URL"},
    "ingest": SHARED | {"INGEST_HOST"},
    "query-api": SHARED | {"PROJECTIONS_API_HOST"},
    "fetcher": SHARED | {"PROCESSORS_RUN_FETCHER", "PROCESSORS_RUN_NORMALIZER"},
    "normalizer": SHARED | {"PROCESSORS_RUN_FETCHER", "PROCESSORS_RUN_NORMALIZER"},
    "projections": SHARED | {"PROJECTIONS_GROUP_INSTANCE_ID"},
    "topics": {"KAFKA_BOOTSTRAP_SERVERS"},
    "migrate": {"DATABASE_URL"},
}
SCRAPE_PORTS = {
    "ingest": 8000,
    "query-api": 8002,
    "fetcher": 9101,
    "normalizer": 9101,
    "projections": 9102,
    "simulator": 8100,
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = load(COMPOSE)
    return document


def test_the_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    assert compose_problems(compose) == []


def test_a_broken_compose_file_fails_the_schema(compose: dict[str, Any]) -> None:
    bad_condition = copy.deepcopy(compose)
    bad_condition["services"]["ingest"]["depends_on"]["topics"]["condition"] = "service_finished"
    unknown_key = copy.deepcopy(compose)
    unknown_key["services"]["ingest"]["helthcheck"] = unknown_key["services"]["ingest"].pop("healthcheck")
    assert compose_problems(bad_condition)
    assert compose_problems(unknown_key)


def test_kafka_is_three_kraft_nodes_of_the_official_image(compose: dict[str, Any]) -> None:
    services = compose["services"]
    voters = {services[name]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] for name in KAFKA}
    assert voters == {"1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"}
    for name in KAFKA:
        service = services[name]
        assert service["image"].startswith("apache/kafka:4."), name
        assert service["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert service["environment"]["KAFKA_MIN_INSYNC_REPLICAS"] == 2
        assert f"PLAINTEXT://{name}:9092" == service["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert {services[name]["environment"]["KAFKA_NODE_ID"] for name in KAFKA} == {1, 2, 3}


def test_every_service_has_an_image_and_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert STAGES | ONE_SHOT | KAFKA | {"postgres", "prometheus"} == set(services)
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        if name in ONE_SHOT:
            assert service["restart"] == "no", name
        else:
            assert service["healthcheck"]["test"], name


def test_depends_on_names_real_services_with_fitting_conditions(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = rule["condition"]
            if condition == "service_completed_successfully":
                assert target in ONE_SHOT, f"{name}: {target} is not a one-shot job"
            elif condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name}: {target} has no healthcheck"
    for stage in STAGES - {"simulator", "query-api"}:
        assert services[stage]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    for job in ONE_SHOT:
        assert all(rule["condition"] == "service_healthy" for rule in services[job]["depends_on"].values())


def test_every_stage_gets_the_variables_it_needs_and_only_real_ones(compose: dict[str, Any]) -> None:
    for name, needed in NEEDS.items():
        environment = compose["services"][name]["environment"]
        assert needed <= set(environment), f"{name} lacks {needed - set(environment)}"
        assert unknown_variables(set(environment)) == set(), name
    assert compose["services"]["ingest"]["environment"]["INGEST_HOST"] == "0.0.0.0"  # noqa: S104


def test_prometheus_scrapes_every_stage_on_its_port(compose: dict[str, Any]) -> None:
    config = load(PROMETHEUS)
    targets = {
        job["job_name"]: target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert targets == {name: f"{name}:{port}" for name, port in SCRAPE_PORTS.items()}
    mounted = compose["services"]["prometheus"]["volumes"][0]
    assert mounted.startswith("./prometheus.yml:")
    for name, port in SCRAPE_PORTS.items():
        probe = " ".join(compose["services"][name]["healthcheck"]["test"])
        assert f":{port}/" in probe, name


def interpolated(value: object) -> str:
    """A compose value with each ``${NAME:-default}`` as its default (what an empty environment gives)."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))


@pytest.mark.parametrize("stage", sorted(STAGES | ONE_SHOT))
def test_each_stage_environment_is_accepted_by_the_settings(
    compose: dict[str, Any], stage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = compose["services"][stage]["environment"]
    values = {name: interpolated(value) for name, value in environment.items() if value is not None}
    assert "${" not in "".join(values.values())
    assert settings_problems(values, monkeypatch) == []
