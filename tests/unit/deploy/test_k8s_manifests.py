"""deploy/k8s: every overlay renders, every resource is valid offline, and the wiring holds together.

Built-in kinds are checked with kubernetes-validate, Strimzi kinds against the CRDs in deploy/k8s/crds
(``manifest_checks``); overlays are rendered by ``kustomize_subset``. A deliberately broken copy of a
resource fails each validator, so a pass means something.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from deploy import k8s_topics
from deploy.paths import REPO_ROOT
from infra.pipeline_env import PipelineEnvSettings, dev_secret_problems
from projections.settings import ProjectionsSettings
from schemas.topics import TOPICS

from .kustomize_subset import UnsupportedError, apply_operation, build, load_documents
from .manifest_checks import (
    kubernetes_problems,
    problems,
    settings_problems,
    strimzi_problems,
    unknown_variables,
)

pytestmark = pytest.mark.unit

K8S = REPO_ROOT / "deploy" / "k8s"
LAYOUTS = ("base", "overlays/small", "overlays/medium", "overlays/large")
WORKLOADS = {"Deployment", "StatefulSet"}
CONSUMER_GROUPS = {
    "normalizer",
    "projections",
}  # one Kafka consumer group each: replicas beyond partitions idle


def rendered(layout: str) -> list[dict[str, Any]]:
    return build(K8S / layout)


def named(resources: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_resource_is_valid(layout: str) -> None:
    resources = rendered(layout)
    assert resources
    failures = {f"{r['kind']}/{r['metadata']['name']}": problems(r) for r in resources}
    assert not {name: found for name, found in failures.items() if found}


def test_a_broken_builtin_resource_fails_kubernetes_validation() -> None:
    deployment = named(rendered("base"), "Deployment", "ingest")
    assert kubernetes_problems(deployment) == []
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "two"
    unknown_field = copy.deepcopy(deployment)
    unknown_field["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    assert kubernetes_problems(wrong_type)
    assert kubernetes_problems(unknown_field)
    service = named(rendered("base"), "Service", "ingest")
    del service["spec"]["ports"][0]["port"]
    assert kubernetes_problems(service)


def test_broken_strimzi_resources_fail_the_crd_schemas() -> None:
    resources = rendered("base")
    topic = copy.deepcopy(named(resources, "KafkaTopic", "wear-records-v1"))
    assert strimzi_problems(topic) == []
    topic["spec"]["partitions"] = "six"
    assert strimzi_problems(topic)
    pool = copy.deepcopy(named(resources, "KafkaNodePool", "dual"))
    pool["spec"]["roles"] = ["worker"]
    assert strimzi_problems(pool)
    kafka = copy.deepcopy(named(resources, "Kafka", "whoop-kafka"))
    kafka["spec"]["kafka"]["listenerz"] = kafka["spec"]["kafka"].pop("listeners")
    assert any("listeners" in p for p in strimzi_problems(kafka))
    kafka_v0 = copy.deepcopy(named(resources, "Kafka", "whoop-kafka"))
    kafka_v0["apiVersion"] = "kafka.strimzi.io/v0"
    assert strimzi_problems(kafka_v0)


def test_kafka_is_kraft_with_three_nodes_and_two_insync_replicas() -> None:
    resources = rendered("base")
    pool = named(resources, "KafkaNodePool", "dual")
    kafka = named(resources, "Kafka", "whoop-kafka")
    assert pool["spec"]["replicas"] == k8s_topics.BROKERS == 3
    assert set(pool["spec"]["roles"]) == {"controller", "broker"}  # KRaft: no ZooKeeper anywhere
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"] == k8s_topics.CLUSTER
    assert kafka["spec"]["kafka"]["config"]["min.insync.replicas"] == 2
    assert "topicOperator" in kafka["spec"]["entityOperator"]
    bootstrap = named(resources, "ConfigMap", "pipeline-config")["data"]["KAFKA_BOOTSTRAP_SERVERS"]
    assert bootstrap == f"{k8s_topics.CLUSTER}-kafka-bootstrap:9092"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_workload_is_probed_configured_and_protected(layout: str) -> None:
    resources = rendered(layout)
    workloads = [r for r in resources if r["kind"] in WORKLOADS]
    assert {w["metadata"]["name"] for w in workloads} == {
        "ingest",
        "query-api",
        "fetcher",
        "normalizer",
        "projections",
    }
    for workload in workloads:
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        sources = {next(iter(s.values()))["name"] for s in container["envFrom"]}
        assert sources == {"pipeline-config", "pipeline-secrets"}, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
        selector = workload["spec"]["selector"]["matchLabels"]
        assert selector.items() <= workload["spec"]["template"]["metadata"]["labels"].items(), name
        budget = named(resources, "PodDisruptionBudget", name)
        assert budget["spec"]["selector"]["matchLabels"] == selector, name
        service = named(resources, "Service", name)
        assert service["spec"]["selector"] == selector, name
        ports = {p["name"] for p in container["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports, name


@pytest.mark.parametrize("layout", LAYOUTS)
def test_autoscalers_target_deployments_and_respect_partitions(layout: str) -> None:
    resources = rendered(layout)
    partitions = min(t["spec"]["partitions"] for t in resources if t["kind"] == "KafkaTopic")
    for hpa in (r for r in resources if r["kind"] == "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        deployment = named(resources, target["kind"], target["name"])
        assert hpa["spec"]["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
        if target["name"] in CONSUMER_GROUPS:
            assert hpa["spec"]["maxReplicas"] <= partitions, target["name"]
    projections = named(resources, "StatefulSet", "projections")
    assert projections["spec"]["replicas"] <= partitions


def test_projections_use_the_pod_name_as_static_member_id() -> None:
    resources = rendered("base")
    statefulset = named(resources, "StatefulSet", "projections")
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item for item in container["env"]}
    source = env["PROJECTIONS_GROUP_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert source == "metadata.name"
    assert named(resources, "Service", statefulset["spec"]["serviceName"])["spec"]["clusterIP"] == "None"
    assert not [
        r
        for r in resources
        if r["kind"] == "HorizontalPodAutoscaler" and r["metadata"]["name"] == "projections"
    ]


def secret_example() -> dict[str, Any]:
    (secret,) = load_documents(K8S / "base" / "secret.example.yaml")
    return secret


def test_the_secret_example_is_valid_and_never_applied_by_kustomize() -> None:
    secret = secret_example()
    assert problems(secret) == []
    assert secret["metadata"]["name"] == "pipeline-secrets"
    for layout in LAYOUTS:
        assert not [r for r in rendered(layout) if r["kind"] == "Secret"], layout


def test_committed_secrets_are_placeholders_that_production_refuses() -> None:
    secret = secret_example()["stringData"]
    config = named(rendered("base"), "ConfigMap", "pipeline-config")["data"]
    assert config["PIPELINE_ENV"] == "production"
    found = dev_secret_problems(
        PipelineEnvSettings(pipeline_env="production"),
        token_vault_keys=SecretStr(secret["TOKEN_VAULT_KEYS"]),
        whoop_client_secret=SecretStr(secret["WHOOP_CLIENT_SECRET"]),
    )
    assert len(found) == 2, found  # both placeholders are refused: nothing real can hide there
    assert "CHANGE-ME" in secret["DATABASE_URL"]


def test_configured_variables_are_real_settings() -> None:
    resources = rendered("base")
    names = set(named(resources, "ConfigMap", "pipeline-config")["data"])
    names |= set(secret_example()["stringData"])
    for workload in (r for r in resources if r["kind"] in WORKLOADS):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            names |= {item["name"] for item in container.get("env", [])}
    assert unknown_variables(names) == set()


def test_configured_values_are_accepted_by_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    environment = {**named(rendered("base"), "ConfigMap", "pipeline-config")["data"]}
    environment |= secret_example()["stringData"]
    environment["PROJECTIONS_GROUP_INSTANCE_ID"] = "projections-0"
    assert settings_problems(environment, monkeypatch) == []
    own = ProjectionsSettings()  # the StatefulSet's pod name reaches the consumers' group.instance.id
    assert (own.group_instance_id, own.session_timeout_ms) == ("projections-0", 45_000)
    assert settings_problems({"PROJECTIONS_SESSION_TIMEOUT_MS": "45 s"}, monkeypatch)


def test_overlays_size_up_monotonically() -> None:
    sizes = [rendered(f"overlays/{size}") for size in ("small", "medium", "large")]
    for kind, name in [(r["kind"], r["metadata"]["name"]) for r in sizes[0] if r["kind"] in WORKLOADS]:
        counts = [named(resources, kind, name)["spec"]["replicas"] for resources in sizes]
        assert counts == sorted(counts), name
    for resources in sizes:
        assert {r["metadata"].get("namespace") for r in resources} == {"whoop-pipeline"}
    disks = [named(r, "KafkaNodePool", "dual")["spec"]["storage"]["volumes"][0]["size"] for r in sizes]
    assert disks == ["20Gi", "1Ti", "8Ti"]
    registry = {spec.name: spec.partitions for spec in TOPICS}
    for resources, partitions in zip(sizes, (6, 12, 24), strict=True):
        topics = [r for r in resources if r["kind"] == "KafkaTopic"]
        assert len(topics) == len(TOPICS)
        for topic in topics:
            assert topic["spec"]["partitions"] == partitions >= registry[topic["spec"]["topicName"]]


def test_topic_resources_are_in_the_base() -> None:
    topics = [r for r in rendered("base") if r["kind"] == "KafkaTopic"]
    assert sorted(t["spec"]["topicName"] for t in topics) == sorted(spec.name for spec in TOPICS)


def test_the_renderer_refuses_what_it_does_not_render(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nimages: [{name: x, newTag: '1'}]\n")
    with pytest.raises(UnsupportedError, match="images"):
        build(tmp_path)
    resource: dict[str, Any] = {"spec": {"list": [1, 2]}}
    apply_operation(resource, {"op": "replace", "path": "/spec/list/1", "value": 3})
    assert resource == {"spec": {"list": [1, 3]}}
    with pytest.raises(KeyError):
        apply_operation(resource, {"op": "replace", "path": "/spec/missing", "value": 1})
