"""``wear tail`` without services: which topics it accepts, and each kind of record as a line."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import orjson

from infra.member_keys import ERASED
from schemas.events import DeadLetter
from schemas.serde import encode
from tests.unit.projections.factory import Member, history
from wear.tail_decode import TailRecord, describe, human_line, pipeline_topics, resolve_topic

ALICE = Member(734001)
KNOWN = pipeline_topics(["test.wear.records.v1.abc"])


def test_registry_and_configured_topics_and_their_twins_are_pipeline_topics() -> None:
    for name in (
        "wear.records.v1",
        "whoop.webhooks.v1.dlq",
        "test.wear.records.v1.abc",
        "test.wear.records.v1.abc.dlq",
    ):
        assert resolve_topic(name, KNOWN) == name


def test_records_generations_are_pipeline_topics() -> None:
    assert resolve_topic("wear.records.v1.g2", KNOWN) == "wear.records.v1.g2"
    assert resolve_topic("wear.records.v1.g12.dlq", KNOWN) == "wear.records.v1.g12.dlq"


def test_anything_else_is_not() -> None:
    for name in (
        "nope",
        "wear.records.v2",
        "wear.records.v1.g1",
        "wear.records.v1.g0",
        "wear.records.v1.dlq.g2",
        "",
    ):
        assert resolve_topic(name, KNOWN) is None


def _record(value: object, topic: str = "wear.records.v1") -> TailRecord:
    return TailRecord(topic, 1, 42, 1_764_914_400_000, b"u:cycle:1", value)  # type: ignore[arg-type]


def test_an_event_decodes_with_its_type_and_user() -> None:
    cycle = history(ALICE, 1)[0].cycle
    line = describe(_record(encode(cycle)))
    assert line["kind"] == "event" and line["error"] is None
    assert line["event"]["event_type"] == "CycleRecorded"
    assert line["event"]["cycle_id"] == cycle.cycle_id
    assert (line["topic"], line["partition"], line["offset"], line["key"]) == (
        "wear.records.v1",
        1,
        42,
        "u:cycle:1",
    )
    assert line["timestamp"] == "2025-12-05T06:00:00.000Z"
    orjson.dumps(line)  # JSON-ready
    text = human_line(line)
    assert text.startswith("2025-12-05T06:00:00.000Z wear.records.v1[1]@42 CycleRecorded user=")
    assert ALICE.user_id in text and "\n" not in text
    assert f'"cycle_id":{cycle.cycle_id}' in text and '"document"' not in text and "null" not in text


def test_tombstones_erased_and_undecodable_values_are_shown_not_dropped() -> None:
    assert describe(_record(None))["kind"] == "tombstone"
    assert "tombstone" in human_line(describe(_record(None)))
    erased = describe(_record(ERASED))
    assert erased["kind"] == "erased" and erased["event"] is None
    assert "ERASED" in human_line(erased)
    bad = describe(_record(b'{"event_type":"Nope"}'))
    assert bad["kind"] == "undecodable" and "unknown event_type" in bad["error"]
    assert "undecodable" in human_line(bad)
    sealed = describe(TailRecord("wear.records.v1", 0, 1, 0, b"u:cycle:1", None, "the key does not open"))
    assert (sealed["kind"], sealed["error"]) == ("unopenable", "the key does not open")
    assert "unopenable key=u:cycle:1: the key does not open" in human_line(sealed)


def test_a_dead_letter_shows_its_error_and_origin() -> None:
    letter = DeadLetter(
        origin_topic="wear.records.v1",
        origin_partition=2,
        origin_offset=7,
        key="u:cycle:1",
        value_b64=base64.b64encode(b"{}").decode(),
        error_type="SchemaError",
        reason="invalid CycleRecorded",
        stage="projections",
        failed_at=datetime(2026, 12, 5, tzinfo=UTC),
    )
    line = describe(_record(encode(letter), topic="wear.records.v1.dlq"))
    assert line["kind"] == "dead_letter" and line["event"]["origin_offset"] == 7
    text = human_line(line)
    assert "DeadLetter from wear.records.v1[2]@7" in text and "SchemaError: invalid CycleRecorded" in text
