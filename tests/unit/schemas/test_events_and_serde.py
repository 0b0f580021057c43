"""Events are strict and round-trip through the one codec; bad bytes raise SchemaError with their origin
and a reason naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import msgspec
import orjson
import pytest

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
    return msgspec.convert(fields, WebhookReceived)  # built and validated, as a decoder would


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
    with pytest.raises(msgspec.ValidationError, match=r"aware UTC|timezone"):
        _webhook(occurred_at=occurred_at)
    with pytest.raises(ValueError, match=r"aware UTC datetime - at `\$.occurred_at`"):
        msgspec.structs.replace(_webhook(), occurred_at=occurred_at)  # built in Python: checked too


def test_user_id_may_not_contain_the_key_separator() -> None:
    with pytest.raises(msgspec.ValidationError, match="user_id"):
        _webhook(user_id="a:b")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"access_token": "x"}, "unknown field `access_token`"),
        ({"whoop_user_id": "482913"}, r"Expected `int`, got `str` - at `\$.whoop_user_id`"),
        ({"whoop_user_id": True}, r"Expected `int`, got `bool` - at `\$.whoop_user_id`"),
        ({"whoop_user_id": 1.0}, r"Expected `int`, got `float` - at `\$.whoop_user_id`"),
        ({"schema_version": 0}, r"Expected `int` >= 1 - at `\$.schema_version`"),
        ({"resource_id": ""}, r"Expected `str` of length >= 1 - at `\$.resource_id`"),
        ({"source": "s" * 65}, r"Expected `str` of length <= 64 - at `\$.source`"),
        ({"whoop_event_type": "sleep.eaten"}, r"Invalid enum value 'sleep.eaten' - at `\$.whoop_event_type`"),
        ({"occurred_at": "2025-10-14T10:25:12"}, r"timezone component - at `\$.occurred_at`"),
        (
            {"occurred_at": "2025-10-14T10:25:12+02:00"},
            r"Expected an aware UTC datetime - at `\$.occurred_at`",
        ),
        ({"occurred_at": "2025-10-14"}, r"Invalid RFC3339 encoded datetime - at `\$.occurred_at`"),
        ({"event_id": None}, r"Expected `str`, got `null` - at `\$.event_id`"),
    ],
)
def test_decode_refuses_what_the_contract_refuses_and_names_the_field(
    changes: dict[str, object], reason: str
) -> None:
    raw = orjson.dumps({**orjson.loads(encode(_webhook())), **changes})
    for read in (decode, lambda value: decode_as(WebhookReceived, value)):
        with pytest.raises(SchemaError, match=reason) as caught:
            read(raw)
        assert caught.value.reason.startswith("invalid WebhookReceived: ")


def test_a_non_finite_number_literal_is_named_with_its_field() -> None:
    raw = encode(_webhook()).replace(
        b'"signature_timestamp_ms":1760437512345', b'"signature_timestamp_ms":NaN'
    )
    with pytest.raises(SchemaError, match=r"not JSON: `\$.signature_timestamp_ms` is not a finite number"):
        decode(raw)
    with pytest.raises(SchemaError, match="not JSON"):
        decode(b'{"event_type": "WebhookReceived", "x": Infinity')  # not JSON at all: msgspec's reason


def test_the_wire_format_of_the_pydantic_models_still_decodes() -> None:
    # what the previous codec wrote: event_type second, every default spelled out, microseconds
    old = (
        b'{"event_id":"e1","event_type":"UserConnected","schema_version":1,'
        b'"occurred_at":"2025-10-14T10:25:12.312000Z","user_id":"u1","source":"ingest",'
        b'"causation_id":null,"trace_id":null,"whoop_user_id":7,"scopes":["read:sleep"],"reconnected":false}'
    )
    event = decode(old)
    assert isinstance(event, UserConnected) and event.event_type == "UserConnected"
    assert event.occurred_at == datetime(2025, 10, 14, 10, 25, 12, 312000, tzinfo=UTC)
    assert orjson.loads(encode(event)) == orjson.loads(old)  # the same fields and values
    assert encode(event).startswith(b'{"event_type":"UserConnected",')


def test_encoding_is_deterministic() -> None:
    event = _webhook()
    assert encode(event) == encode(decode(encode(event)))


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
    with pytest.raises(SchemaError, match=r"invalid UserConnected: .*`\$.event_type`"):
        decode_as(UserConnected, encode(_webhook()))


def test_every_event_type_is_registered_under_its_name() -> None:
    for name, model in {**EVENT_TYPES, **RECORD_TYPES}.items():
        assert model.event_type == model.__struct_config__.tag == model.__name__ == name
    assert _webhook().event_type == "WebhookReceived"


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
