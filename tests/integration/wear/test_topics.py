"""``wear topics create | check`` on a real broker, in a namespace of the test's own (``--prefix``).

``create`` makes every registry topic with its declared partitions and configuration, and a second
run finds them all present; ``check`` creates nothing, and names each missing topic and each drifted
setting on a line of its own (exit 1); an unknown topic or a bad prefix is bad usage (exit 2); Kafka
unreachable is one line (exit 1).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from infra.settings import KafkaSettings
from infra.topic_admin import ensure_topics
from schemas.topics import TOPICS, topic
from tests.integration.wear.replay_harness import one_line, wear

pytestmark = pytest.mark.integration


@pytest.fixture
async def prefix(kafka_settings: KafkaSettings) -> AsyncIterator[str]:
    """A namespace of this test's own; its topics are deleted after the test."""
    made = f"test.wear-topics-{uuid.uuid4().hex[:10]}."
    yield made
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        doomed = [name for name in await admin.list_topics() if name.startswith(made)]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


def _env(kafka_settings: KafkaSettings, **changed: str) -> dict[str, str]:
    env = dict(os.environ, PIPELINE_ENV="dev", KAFKA_BOOTSTRAP_SERVERS=kafka_settings.kafka_bootstrap_servers)
    env.update(changed)
    return env


async def _described(kafka_settings: KafkaSettings, names: list[str]) -> dict[str, int]:
    """The partition count of each of ``names`` that exists."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        found = [name for name in names if name in existing]
        described = await admin.describe_topics(found) if found else []
    finally:
        await admin.close()
    return {entry["topic"]: len(entry["partitions"]) for entry in described}


@pytest.mark.timeout(120)
async def test_create_makes_every_registry_topic_and_check_then_finds_them(
    kafka_settings: KafkaSettings, prefix: str
) -> None:
    env = _env(kafka_settings)
    names = [prefix + spec.name for spec in TOPICS]
    code, out, err = await wear(env, "topics", "create", "--prefix", prefix, "--json")
    assert code == 0 and err == "", err
    assert orjson.loads(out) == {"ok": True, "created": names, "present": [], "missing": [], "drifts": []}
    assert await _described(kafka_settings, names) == {prefix + s.name: s.partitions for s in TOPICS}

    code, out, err = await wear(env, "topics", "create", "--prefix", prefix)
    assert code == 0 and err == "", err
    assert out == f"{len(TOPICS)} topic(s) present: 0 created, 0 missing, 0 setting(s) drifted\n"
    code, out, err = await wear(env, "topics", "check", "--prefix", prefix, "--json")
    assert code == 0 and err == "", err
    assert orjson.loads(out) == {"ok": True, "created": [], "present": names, "missing": [], "drifts": []}


@pytest.mark.timeout(120)
async def test_check_creates_nothing_and_names_each_missing_topic_and_drift_on_its_own_line(
    kafka_settings: KafkaSettings, prefix: str
) -> None:
    env = _env(kafka_settings)
    records = topic("wear.records.v1")
    drifted = replace(records, name=prefix + records.name, partitions=2, retention_ms=86_400_000)
    await ensure_topics(kafka_settings, [drifted])  # made by hand, unlike the registry says
    code, out, err = await wear(
        env,
        "topics",
        "check",
        "--prefix",
        prefix,
        "--topic",
        "wear.records.v1",
        "--topic",
        "wear.records.v1.dlq",
    )
    assert code == 1, out + err
    assert err.splitlines() == [
        f"missing {prefix}wear.records.v1.dlq: run `wear topics create`",
        f"drift {prefix}wear.records.v1: partitions is 2, the registry says 6",
        f"drift {prefix}wear.records.v1: retention.ms is 86400000, the registry says -1",
    ], err
    assert "Traceback" not in err
    assert out == "1 topic(s) present: 0 created, 1 missing, 2 setting(s) drifted\n"
    code, out, _ = await wear(env, "topics", "check", "--prefix", prefix, "--json")
    assert code == 1
    document = orjson.loads(out)
    assert document["ok"] is False and document["present"] == [drifted.name]
    assert len(document["missing"]) == len(TOPICS) - 1
    assert {"topic": drifted.name, "setting": "partitions", "expected": "6", "actual": "2"} in document[
        "drifts"
    ]
    # check made nothing; create makes the missing ones and leaves the drifted one as it is
    assert await _described(kafka_settings, [prefix + s.name for s in TOPICS]) == {drifted.name: 2}
    code, out, err = await wear(env, "topics", "create", "--prefix", prefix)
    assert code == 1 and len(err.splitlines()) == 2 and "drift" in err, err
    assert f"created {prefix}whoop.webhooks.v1" in out
    described = await _described(kafka_settings, [prefix + s.name for s in TOPICS])
    assert len(described) == len(TOPICS) and described[drifted.name] == 2


@pytest.mark.timeout(60)
async def test_bad_usage_exits_2_and_kafka_unreachable_exits_1_in_one_line(
    kafka_settings: KafkaSettings, prefix: str
) -> None:
    env = _env(kafka_settings)
    code, out, err = await wear(env, "topics", "check", "--topic", "whoop.nope.v1")
    assert code == 2 and out == ""
    assert one_line(err).startswith(
        "error: unknown topic 'whoop.nope.v1': the registry has whoop.webhooks.v1"
    )
    code, out, err = await wear(env, "topics", "create", "--prefix", "no spaces please")
    assert code == 2 and out == ""
    assert one_line(err).startswith("error: bad --prefix 'no spaces please'")
    down = _env(kafka_settings, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
    for command in ("create", "check"):
        code, out, err = await wear(down, "topics", command, "--prefix", prefix, "--json")
        assert code == 1 and out == ""
        assert one_line(err) == "error: Kafka unreachable or failing at 127.0.0.1:1: KafkaConnectionError"
    assert await _described(kafka_settings, [prefix + s.name for s in TOPICS]) == {}
