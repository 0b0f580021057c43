"""``DeadLetter.of``: the one builder of every stage's dead letters (origin, key, raw value, reason)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest

from schemas.events import DeadLetter
from schemas.serde import decode_as, encode

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@dataclass(frozen=True)
class Record:
    """A consumed record (what aiokafka's ConsumerRecord and the fetcher's Incoming offer)."""

    topic: str = "whoop.webhooks.v1"
    partition: int = 2
    offset: int = 41
    key: bytes | None = b"u1:webhook:abc"
    value: bytes | None = b'{"not": "valid"}'


def _letter(record: Record, **overrides: object) -> DeadLetter:
    fields: dict[str, object] = {
        "error_type": "SchemaError",
        "reason": "bad",
        "stage": "fetcher",
        "failed_at": NOW,
    }
    fields.update(overrides)
    return DeadLetter.of(record, **fields)  # type: ignore[arg-type]


def test_a_letter_holds_the_origin_the_raw_value_and_why() -> None:
    letter = _letter(Record())
    assert (letter.origin_topic, letter.origin_partition, letter.origin_offset) == (
        "whoop.webhooks.v1",
        2,
        41,
    )
    assert letter.key == "u1:webhook:abc"
    assert base64.b64decode(letter.value_b64) == b'{"not": "valid"}'
    assert (letter.error_type, letter.reason, letter.stage, letter.failed_at) == (
        "SchemaError",
        "bad",
        "fetcher",
        NOW,
    )
    assert decode_as(DeadLetter, encode(letter)) == letter  # within the contract


def test_a_keyless_tombstone_has_no_key_and_an_empty_value() -> None:
    letter = _letter(Record(key=None, value=None))
    assert letter.key is None and letter.value_b64 == ""


def test_a_key_that_is_not_utf8_is_kept_readable() -> None:
    assert _letter(Record(key=b"u:sleep:\xff")).key == "u:sleep:\\xff"


def test_a_long_reason_is_cut_to_the_contracts_bound() -> None:
    letter = _letter(Record(), reason="x" * 5000)
    assert letter.reason == "x" * 2000
    assert decode_as(DeadLetter, encode(letter)).reason == letter.reason


def test_an_omitted_value_is_left_out_and_the_reason_says_so() -> None:
    letter = _letter(Record(value=b"12345678"), reason="too big", omit_value=True)
    assert letter.value_b64 == ""
    assert letter.reason.startswith("too big [raw value of 8 bytes omitted")


def test_a_letter_refuses_a_time_that_is_not_utc() -> None:
    with pytest.raises(ValueError, match="aware UTC"):
        _letter(Record(), failed_at=NOW.astimezone(timezone(timedelta(hours=2))))
