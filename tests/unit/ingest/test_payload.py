"""Strict reading of verified webhook bodies and the WebhookReceived record they become."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from ingest.payload import Ignored, Malformed, WhoopWebhook, event_id_for, parse_webhook, to_record
from schemas.events import WebhookReceived
from schemas.identity import user_id_for_whoop_member
from schemas.serde import decode
from tests.support.ingest_fakes import VECTOR_BODY

GOOD = {
    "user_id": 482913,
    "id": "3f1c9a2e-8b4d-4e6f-9a1b-2c7d5e8f0a13",
    "type": "sleep.updated",
    "trace_id": "t-1",
}


def body(**changes: object) -> bytes:
    data = {**GOOD, **changes}
    return orjson.dumps({k: v for k, v in data.items() if v is not ...})


def test_the_reference_body_parses() -> None:
    assert parse_webhook(VECTOR_BODY) == WhoopWebhook(
        482913,
        "3f1c9a2e-8b4d-4e6f-9a1b-2c7d5e8f0a13",
        "sleep.updated",
        "b7e2c4a1-5d3f-4a8e-9c6b-1f2e3d4c5b6a",
    )


@pytest.mark.parametrize(
    "event_type",
    [
        "workout.updated",
        "workout.deleted",
        "sleep.updated",
        "sleep.deleted",
        "recovery.updated",
        "recovery.deleted",
    ],
)
def test_all_six_types_are_known(event_type: str) -> None:
    assert isinstance(parse_webhook(body(type=event_type)), WhoopWebhook)


def test_a_v1_integer_id_and_extra_fields_are_read() -> None:
    parsed = parse_webhook(body(id=1093387651, new_field={"x": 1}))
    assert isinstance(parsed, WhoopWebhook) and parsed.resource_id == "1093387651"


@pytest.mark.parametrize("event_type", ["cycle.updated", "user_profile.updated", "x" * 500])
def test_unknown_types_are_ignored_whatever_the_rest_looks_like(event_type: str) -> None:
    assert parse_webhook(body(type=event_type)) == Ignored(event_type[:64])
    assert isinstance(parse_webhook(orjson.dumps({"type": event_type})), Ignored)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", "malformed_json"),
        (b"{", "malformed_json"),
        (b"{'user_id': 1}", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b"[]", "invalid_payload"),
        (b'"sleep.updated"', "invalid_payload"),
        (body(type=...), "invalid_field"),
        (body(type=7), "invalid_field"),
        (body(user_id=...), "missing_field"),
        (body(id=...), "missing_field"),
        (body(trace_id=...), "missing_field"),
        (body(user_id="482913"), "invalid_field"),
        (body(user_id=True), "invalid_field"),
        (body(user_id=-1), "invalid_field"),
        (body(user_id=2**63), "invalid_field"),
        (body(user_id=1.5), "invalid_field"),
        (body(id=""), "invalid_field"),
        (body(id="x" * 65), "invalid_field"),
        (body(id=None), "invalid_field"),
        (body(id="a\nb"), "invalid_field"),
        (body(trace_id=""), "invalid_field"),
        (body(trace_id=12), "invalid_field"),
        (body(trace_id="t" * 129), "invalid_field"),
    ],
)
def test_malformed_bodies(raw: bytes, code: str) -> None:
    parsed = parse_webhook(raw)
    assert isinstance(parsed, Malformed) and parsed.code == code


def test_a_duplicate_delivery_becomes_the_same_event_id_key_and_partition() -> None:
    webhook = parse_webhook(VECTOR_BODY)
    assert isinstance(webhook, WhoopWebhook)
    now = datetime(2025, 10, 14, 10, 25, tzinfo=UTC)
    key1, value1 = to_record(webhook, timestamp_ms=1, now=now)
    key2, value2 = to_record(webhook, timestamp_ms=2, now=now)
    assert key1 == key2 == f"{user_id_for_whoop_member(482913)}:webhook:{webhook.resource_id}".encode()
    event1, event2 = decode(value1), decode(value2)
    assert isinstance(event1, WebhookReceived) and isinstance(event2, WebhookReceived)
    assert event1.event_id == event2.event_id == event_id_for(webhook)
    assert event1.whoop_trace_id == webhook.trace_id and event1.resource_id == webhook.resource_id
    other = WhoopWebhook(webhook.whoop_user_id, webhook.resource_id, "recovery.updated", webhook.trace_id)
    assert event_id_for(other) != event_id_for(webhook)


@pytest.mark.parametrize("name", ["", "a", "t-1\x00sleep.updated\x003f1c", "é" * 40])
def test_the_fast_uuid5_is_uuid5(name: str) -> None:
    import uuid

    from ingest.payload import uuid5_str

    namespace = uuid.UUID("0b9d7c55-3f0e-5a4e-8f61-2d8f4b9c1a70")
    assert uuid5_str(namespace, name) == str(uuid.uuid5(namespace, name))
