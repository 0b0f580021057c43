"""The projection's one reader: the contract's msgspec types, decoded_of's rows, the contract's rejections."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pytest

from projections.decode import decode_record
from projections.errors import RecordRejected
from projections.rows import RESOURCE_TYPES, ROW_SOURCES, Decoded, decoded_of, read_record
from schemas.serde import encode
from tests.unit.projections.factory import (
    T0,
    Member,
    cycle_deleted,
    history,
    mixed_log,
    recovery_deleted,
    sleep_deleted,
    workout_deleted,
)

ALICE = Member(482913)
DAY = history(ALICE, 1)[0]
WORKOUT = next(day.workout for day in history(ALICE, 10) if day.workout is not None)


def _contract(value: bytes) -> Decoded:
    event = read_record(b"k", value)
    assert not isinstance(event, Decoded)
    return decoded_of(event)  # type: ignore[arg-type] # a canonical record here, never a Purge


def _edited(record: Any, **changes: Any) -> bytes:
    return orjson.dumps({**orjson.loads(encode(record)), **changes})


def _without_document(decoded: Decoded | Any) -> tuple[Any, ...]:
    assert isinstance(decoded, Decoded) and decoded.row is not None
    return (*decoded[:4], decoded.row[:-1], *decoded[5:])


def test_every_canonical_record_gives_the_row_of_decoded_of() -> None:
    deletions: list[Any] = [
        cycle_deleted(ALICE, 1, T0),
        sleep_deleted(ALICE, "s", T0),
        recovery_deleted(ALICE, 1, None, T0),
        workout_deleted(ALICE, "w", T0),
    ]
    for record in [*mixed_log([ALICE, Member(7)], days=20), *deletions]:
        value = encode(record)
        assert decode_record(b"k", value) == _contract(value) == decoded_of(record), type(record).__name__
    sleep = decode_record(b"k", encode(DAY.sleep))
    assert isinstance(sleep, Decoded) and sleep.row is not None
    assert sleep.row[-1] == msgspec.json.encode(DAY.sleep.document).decode()  # the record's own text


def test_the_document_column_is_the_exact_text_the_record_carries() -> None:
    sleep = orjson.loads(encode(DAY.sleep))
    variants = [
        _edited(DAY.sleep, start=sleep["start"].replace("Z", "+00:00")),  # an offset, not Z
        _edited(DAY.sleep, performance_pct=int(sleep["performance_pct"])),  # an integer for a float
        _edited(WORKOUT, sport_name="a}b"),  # a brace after the document
        _edited(DAY.cycle, document={"nested": {"document": "}"}, "x": '"document":{'}),
        orjson.dumps(dict(reversed(sleep.items()))),  # another field order (the document not last)
    ]
    for value in variants:
        assert decode_record(b"k", value) == _contract(value)
    indented = orjson.dumps(sleep, option=orjson.OPT_INDENT_2)
    decoded = decode_record(b"k", indented)
    assert _without_document(decoded) == _without_document(_contract(indented))
    assert isinstance(decoded, Decoded) and decoded.row is not None
    text = str(decoded.row[-1])
    assert "\n" in text and orjson.loads(text) == DAY.sleep.document
    assert text in indented.decode()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"unknown": 1}, "unknown field `unknown`"),
        ({"strain": 25.0}, r"Expected `float` <= 21.0 - at `\$.strain`"),
        ({"strain": "12"}, r"Expected `float \| null`, got `str` - at `\$.strain`"),
        ({"cycle_id": True}, r"Expected `int`, got `bool` - at `\$.cycle_id`"),
        ({"cycle_id": 1.5}, r"Expected `int`, got `float` - at `\$.cycle_id`"),
        ({"normalizer_version": 0}, r"Expected `int` >= 1 - at `\$.normalizer_version`"),
        ({"user_id": "a:b"}, r"at `\$.user_id`"),
        ({"user_id": ""}, r"Expected `str` of length >= 1 - at `\$.user_id`"),
        ({"cycle_id": 2**63}, "cycle_id cannot be stored"),
        ({"start": "2025-10-01T06:00:00+02:00"}, r"Expected an aware UTC datetime - at `\$.start`"),
        ({"start": "2025-10-01T06:00:00"}, r"Expected `datetime` with a timezone component - at `\$.start`"),
        ({"score_state": "DONE"}, r"at `\$.score_state`"),
        ({"document": {"note": "a\x00b"}}, "document cannot be stored"),
        ({"document": [1, 2]}, r"Expected `object`, got `array` - at `\$.document`"),
        ({"document": None}, r"Expected `object`, got `null` - at `\$.document`"),
        ({"timezone_offset": "+01:00\x00"}, "timezone_offset cannot be stored"),
        ({"event_type": "DocumentFetched"}, "DocumentFetched does not belong here"),
        ({"event_type": "Nope"}, "unknown event_type 'Nope'"),
    ],
)
def test_what_the_contract_rejects_is_rejected_with_its_reason(changes: dict[str, Any], reason: str) -> None:
    value = _edited(DAY.cycle, **changes)
    with pytest.raises(RecordRejected, match=reason):
        decode_record(b"k", value)
    with pytest.raises(RecordRejected, match=reason):
        read_record(b"k", value)


def test_non_json_numbers_and_non_json_are_rejected_with_their_reason() -> None:
    cycle = encode(DAY.cycle)
    assert cycle.count(b'"energy_kcal":') == 1
    for value, reason in [
        (
            cycle.replace(b'"energy_kcal":', b'"energy_kcal":NaN,"x":'),
            r"not JSON: `\$.energy_kcal` is not a finite",
        ),
        (
            cycle.replace(b'"energy_kcal":', b'"energy_kcal":-Infinity,"x":'),
            r"`\$.energy_kcal` is not a finite",
        ),
        (
            cycle.replace(b'"energy_kcal":', b'"energy_kcal":1e999,"x":'),
            r"out of range - at `\$.energy_kcal`",
        ),
        (b"not json", "not JSON"),
        (b"[1]", "not a JSON object"),
    ]:
        with pytest.raises(RecordRejected, match=reason):
            decode_record(b"k", value)


def test_a_missing_field_and_a_tombstone() -> None:
    data = orjson.loads(encode(DAY.recovery))
    del data["local_date"]  # required, although it may be null
    with pytest.raises(RecordRejected, match="missing required field `local_date`"):
        decode_record(b"k", orjson.dumps(data))
    assert decode_record(b"k", _edited(DAY.recovery, local_date=None)) == _contract(
        _edited(DAY.recovery, local_date=None)
    )
    assert decode_record(b"u1:cycle:42", None) == read_record(b"u1:cycle:42", None)
    with pytest.raises(RecordRejected, match="tombstone whose key"):
        decode_record(b"u1:cycle", None)


def test_a_recovery_row_takes_created_at_from_its_document() -> None:
    for created_at in ["2025-10-01T08:00:00", "not a time", 7, None]:
        value = _edited(DAY.recovery, document={**DAY.recovery.document, "created_at": created_at})
        assert decode_record(b"k", value) == _contract(value)


def test_every_row_column_comes_from_a_field_of_the_record_or_one_the_readers_make() -> None:
    made = {"document", "created_at", "_zones"}  # the JSON text, WHOOP's created_at, the zones literal
    for model, resource_type in RESOURCE_TYPES.items():
        names = {field.name for field in msgspec.structs.fields(model)}
        if "document" in names:
            assert set(ROW_SOURCES[resource_type]) <= names | made, model.__name__
    assert set(RESOURCE_TYPES.values()) == set(ROW_SOURCES)
