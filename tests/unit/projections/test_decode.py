"""The projection's fast reader: the same rows as the contract's reader, the same rejections."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from projections.apply import RESOURCE_TYPES, ROW_SOURCES, Decoded, decoded_of, read_record
from projections.decode import _fast, decode_record
from projections.errors import RecordRejected
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
    return decoded_of(event)  # type: ignore[arg-type] # a canonical model here, never a Purge


def _edited(record: Any, **changes: Any) -> bytes:
    return orjson.dumps({**orjson.loads(encode(record)), **changes})


def test_every_canonical_record_gives_the_contract_readers_row() -> None:
    deletions = [
        cycle_deleted(ALICE, 1, T0),
        sleep_deleted(ALICE, "s", T0),
        recovery_deleted(ALICE, 1, None, T0),
        workout_deleted(ALICE, "w", T0),
    ]
    for record in [*mixed_log([ALICE, Member(7)], days=20), *deletions]:
        value = encode(record)
        assert _fast(value) is not None  # read without pydantic
        assert decode_record(b"k", value) == _contract(value), type(record).__name__
    sleep = decode_record(b"k", encode(DAY.sleep))
    assert isinstance(sleep, Decoded) and sleep.row is not None
    assert sleep.row[-1] == orjson.dumps(DAY.sleep.document).decode()  # the record's own text


def test_other_spellings_go_through_the_contract_reader_and_read_the_same() -> None:
    sleep = orjson.loads(encode(DAY.sleep))
    variants = [
        _edited(DAY.sleep, start=sleep["start"].replace("Z", "+00:00")),  # an offset, not Z
        _edited(DAY.sleep, performance_pct=int(sleep["performance_pct"])),  # an integer for a float
        _edited(WORKOUT, sport_name="a}b"),  # a brace after the document
        _edited(DAY.cycle, document={"nested": {"document": "}"}, "x": '"document":{'}),
        orjson.dumps(sleep, option=orjson.OPT_INDENT_2),  # not compact
    ]
    assert _fast(variants[0]) is None and _fast(variants[2]) is None  # left to the contract's reader
    for value in variants:
        assert decode_record(b"k", value) == _contract(value)
    indented = decode_record(b"k", variants[-1])
    assert isinstance(indented, Decoded) and indented.row is not None
    assert orjson.loads(str(indented.row[-1])) == DAY.sleep.document


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"unknown": 1}, "Extra inputs"),
        ({"strain": 25.0}, "strain"),
        ({"user_id": "a:b"}, "user_id"),
        ({"cycle_id": 2**63}, "cycle_id cannot be stored"),
        ({"start": "2025-10-01T06:00:00+02:00"}, "UTC"),
        ({"score_state": "DONE"}, "score_state"),
        ({"document": {"note": "a\x00b"}}, "document cannot be stored"),
        ({"timezone_offset": "+01:00\x00"}, "timezone_offset cannot be stored"),
    ],
)
def test_what_the_contract_rejects_is_rejected_with_its_reason(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(RecordRejected, match=reason):
        decode_record(b"k", _edited(DAY.cycle, **changes))


def test_a_missing_field_and_a_tombstone() -> None:
    data = orjson.loads(encode(DAY.recovery))
    del data["local_date"]  # required, although it may be null
    with pytest.raises(RecordRejected, match="local_date"):
        decode_record(b"k", orjson.dumps(data))
    assert decode_record(b"k", _edited(DAY.recovery, local_date=None)) == _contract(
        _edited(DAY.recovery, local_date=None)
    )
    assert decode_record(b"u1:cycle:42", None) == read_record(b"u1:cycle:42", None)


def test_every_row_column_comes_from_a_field_of_the_record_or_one_the_readers_make() -> None:
    made = {"document", "created_at", "_zones"}  # the JSON text, WHOOP's created_at, the zones literal
    for model, resource_type in RESOURCE_TYPES.items():
        if "document" in model.model_fields:
            assert set(ROW_SOURCES[resource_type]) <= set(model.model_fields) | made, model.__name__
    assert set(RESOURCE_TYPES.values()) == set(ROW_SOURCES)
