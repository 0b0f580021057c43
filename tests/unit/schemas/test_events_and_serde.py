"""Events are strict and round-trip through the one codec; bad bytes raise SchemaError with their origin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from pydantic import ValidationError

from schemas.events import EVENT_TYPES, UserConnected, WebhookReceived, new_event_id
from schemas.identity import user_id_for_whoop_member
from schemas.jsonschema import GENERATED, render_all
from schemas.records import RECORD_TYPES
from schemas.serde import SchemaError, decode, decode_as, encode


def _webhook(**overrides: object) -> WebhookReceived:
    fields: dict[str, object] = {
        "event_id": new_event_id(),
        "occurred_at": datetime(2025, 10, 14, 10, 25, 12, tzinfo=UTC),
        "user_id": user_id_for_whoop_member(482913),
        "source": "ingest",
        "whoop_user_id": 482913,
        "whoop_event_type": "sleep.updated",
        "resource_id": "3f1c9a2e-8b4d-4e6f-9a1b-2c7d5e8f0a13",
        "whoop_trace_id": "b7e2c4a1-5d3f-4a8e-9c6b-1f2e3d4c5b6a",
        "signature_timestamp_ms": 1760437512345,
    }
    fields.update(overrides)
    return WebhookReceived.model_validate(fields)


def test_round_trip_through_the_codec() -> None:
    event = _webhook()
    assert decode(encode(event)) == event
    assert orjson.loads(encode(event))["occurred_at"] == "2025-10-14T10:25:12Z"


def test_unknown_fields_are_rejected() -> None:
    raw = orjson.loads(encode(_webhook()))
    raw["access_token"] = "leak"
    with pytest.raises(SchemaError, match="access_token"):
        decode(orjson.dumps(raw))


@pytest.mark.parametrize(
    "occurred_at",
    [datetime(2025, 1, 1), datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=2)))],  # noqa: DTZ001 - the point
)
def test_occurred_at_must_be_aware_utc(occurred_at: datetime) -> None:
    with pytest.raises(ValidationError, match="aware UTC"):
        _webhook(occurred_at=occurred_at)


def test_user_id_may_not_contain_the_key_separator() -> None:
    with pytest.raises(ValidationError):
        _webhook(user_id="a:b")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"event_type": "Nope"}', "unknown event_type"),
        (b'{"event_type": "WebhookReceived"}', "invalid WebhookReceived"),
    ],
)
def test_bad_values_raise_schema_error_with_their_origin(raw: bytes, reason: str) -> None:
    with pytest.raises(SchemaError, match=reason) as caught:
        decode(raw, "whoop.webhooks.v1", 3, 42)
    assert (caught.value.topic, caught.value.partition, caught.value.offset) == ("whoop.webhooks.v1", 3, 42)
    assert "whoop.webhooks.v1[3]@42" in str(caught.value)


def test_decode_as_checks_the_expected_model() -> None:
    with pytest.raises(SchemaError, match="invalid UserConnected"):
        decode_as(UserConnected, encode(_webhook()))


def test_every_event_type_is_registered_under_its_name() -> None:
    for name, model in EVENT_TYPES.items():
        assert model.model_fields["event_type"].default == name


def test_user_id_is_stable_per_member_and_distinct_between_members() -> None:
    assert user_id_for_whoop_member(482913) == user_id_for_whoop_member(482913)
    assert user_id_for_whoop_member(482913) != user_id_for_whoop_member(482914)
    with pytest.raises(ValueError, match="non-negative"):
        user_id_for_whoop_member(-1)


def test_json_schemas_are_rendered_for_every_event() -> None:
    rendered = render_all()
    assert set(rendered) == {f"{name}.schema.json" for name in [*EVENT_TYPES, *RECORD_TYPES, "DeadLetter"]}
    for content in rendered.values():
        assert orjson.loads(content)["$comment"] == GENERATED
