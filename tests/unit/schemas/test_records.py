"""Document and record contracts: strict, round-trip through the codec, units defined once."""

from __future__ import annotations

from datetime import UTC, date, datetime

import msgspec
import orjson
import pytest

from schemas.events import new_event_id
from schemas.records import DocumentFetched, RecoveryDeleted, SleepRecorded
from schemas.serde import SchemaError, decode, decode_as, encode
from schemas.units import kcal_from_kj

NOW = datetime(2025, 10, 14, 10, 0, tzinfo=UTC)


def _envelope() -> dict[str, object]:
    return {"event_id": new_event_id(), "occurred_at": NOW, "user_id": "u1", "source": "test"}


def test_document_round_trips_with_raw_json() -> None:
    doc = msgspec.convert(
        {
            **_envelope(),
            "whoop_user_id": 482913,
            "resource_type": "sleep",
            "resource_id": "3f1c9a2e-8b4d-4e6f-9a1b-2c7d5e8f0a13",
            "fetched_at": NOW,
            "document": {
                "id": "3f1c9a2e",
                "score": {"stage_summary": {"total_in_bed_time_milli": 30000}},
                "x": None,
            },
            "caused_by": ["evt-1", "evt-2"],
        },
        DocumentFetched,
    )
    assert decode(encode(doc)) == doc


def test_deletion_has_no_document() -> None:
    doc = msgspec.convert(
        {
            **_envelope(),
            "whoop_user_id": 1,
            "resource_type": "workout",
            "resource_id": "w",
            "fetched_at": NOW,
            "deleted": True,
        },
        DocumentFetched,
    )
    assert doc.document is None and decode(encode(doc)) == doc


def test_record_bounds_reject_impossible_values() -> None:
    base = {
        **_envelope(),
        "whoop_user_id": 1,
        "whoop_updated_at": NOW,
        "normalizer_version": 1,
        "score_state": "SCORED",
        "document": {},
        "sleep_id": "s",
        "cycle_id": 1,
        "nap": False,
        "start": NOW,
        "end": NOW,
        "timezone_offset": "-04:00",
        "local_date": date(2025, 10, 14),
    }
    assert decode(encode(msgspec.convert(base, SleepRecorded))).event_type == "SleepRecorded"
    with pytest.raises(msgspec.ValidationError, match=r"Expected `float` <= 100.0 - at `\$.performance_pct`"):
        msgspec.convert({**base, "performance_pct": 101.0}, SleepRecorded)
    with pytest.raises(msgspec.ValidationError, match=r"Expected `int` >= 0 - at `\$.asleep_ms`"):
        msgspec.convert({**base, "asleep_ms": -1}, SleepRecorded)
    with pytest.raises(SchemaError, match=r"invalid SleepRecorded: .* - at `\$.asleep_ms`"):
        decode_as(SleepRecorded, orjson.dumps({**msgspec.to_builtins(base), "asleep_ms": -1}))


def test_deletions_are_records_too() -> None:
    deleted = RecoveryDeleted(**_envelope(), whoop_user_id=1, normalizer_version=1, cycle_id=7)  # type: ignore[arg-type]
    assert decode(encode(deleted)) == deleted


def test_a_document_is_any_json_object_and_frozen() -> None:
    doc = msgspec.convert(
        {**_envelope(), "whoop_user_id": 1, "resource_type": "cycle", "resource_id": "1", "fetched_at": NOW},
        DocumentFetched,
    )
    assert doc.context == {} and doc.caused_by == ()
    with pytest.raises(AttributeError):
        doc.deleted = True  # type: ignore[misc]
    raw = orjson.loads(encode(doc))
    raw["document"] = [1]
    with pytest.raises(SchemaError, match=r"Expected `object \| null`, got `array` - at `\$.document`"):
        decode(orjson.dumps(raw))


def test_kilojoules_become_kilocalories() -> None:
    assert kcal_from_kj(4.184) == pytest.approx(1.0)
    assert kcal_from_kj(8368.0) == pytest.approx(2000.0)
