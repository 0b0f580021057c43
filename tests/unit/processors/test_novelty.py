"""The "is this document new?" decision: what a fetch appends to whoop.documents.v1 and what it remembers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import JsonValue

from processors.novelty import Appends, Item, Json, Stored, decide_appends, parse_time, text

pytestmark = pytest.mark.unit

STARTED = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
UPDATED = "2026-12-05T07:30:00.000Z"
UPDATED_AT = datetime(2026, 12, 5, 7, 30, tzinfo=UTC)
NEVER = Stored()
LAST = Stored(whoop_updated_at=UPDATED_AT, score_state="SCORED")


def _doc(rid: str = "s1", updated: str | None = UPDATED, score: str | None = "SCORED") -> Item:
    document: Json = {"id": rid}
    if updated is not None:
        document["updated_at"] = updated
    if score is not None:
        document["score_state"] = score
    return Item("sleep", rid, document)


def _gone(rid: str = "s1") -> Item:
    return Item("sleep", rid)


def _decide(item: Item, row: Stored) -> Appends:
    return decide_appends([item], {("sleep", item.resource_id): row}, STARTED)


@pytest.mark.parametrize(
    ("case", "item", "row", "appended", "remembered"),
    [
        ("a resource never appended", _doc(), NEVER, True, True),
        ("the same updated_at and score_state", _doc(), LAST, False, True),
        ("a newer updated_at", _doc(updated="2026-12-05T07:31:00.000Z"), LAST, True, True),
        ("a new score_state", _doc(score="PENDING_SCORE"), LAST, True, True),
        ("no updated_at to compare", _doc(updated=None), LAST, True, True),
        ("an unreadable updated_at", _doc(updated="yesterday"), LAST, True, True),
        (
            "fetched before the deletion was appended",
            _doc(),
            Stored(deleted_at=STARTED + timedelta(seconds=1)),
            False,
            False,
        ),
        ("fetched the moment the deletion was appended", _doc(), Stored(deleted_at=STARTED), False, False),
        (
            "fetched after the deletion: back again",
            _doc(),
            Stored(UPDATED_AT, "SCORED", deleted_at=STARTED - timedelta(seconds=1)),
            True,
            True,
        ),
        ("a deletion of a live resource", _gone(), LAST, True, False),
        ("a deletion of a resource never appended", _gone(), NEVER, True, False),
        ("a deletion of a deleted resource", _gone(), Stored(deleted_at=STARTED), False, False),
    ],
)
def test_one_item(case: str, item: Item, row: Stored, appended: bool, remembered: bool) -> None:
    appends = _decide(item, row)
    assert (item in appends.fresh) is appended, case
    assert (item in appends.touched) is remembered, case


def test_a_batch_keeps_its_order_and_splits_deletions() -> None:
    new, same, gone = _doc("a"), _doc("b"), _gone("c")
    stored = {("sleep", "a"): NEVER, ("sleep", "b"): LAST, ("sleep", "c"): LAST}
    appends = decide_appends([gone, same, new], stored, STARTED)
    assert appends.fresh == (gone, new)
    assert appends.touched == (same, new)
    assert appends.deletions == (gone,)
    assert appends.fresh_keys == {("sleep", "c"), ("sleep", "a")}


def test_an_empty_batch_appends_nothing() -> None:
    assert decide_appends([], {}, STARTED) == Appends((), ())


def test_every_item_needs_its_stored_row() -> None:
    with pytest.raises(KeyError):
        decide_appends([_doc()], {}, STARTED)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-12-05T07:30:00.000Z", UPDATED_AT),
        ("2026-12-05T08:30:00+01:00", UPDATED_AT),
        ("not a time", None),
        (1733383800, None),
        (None, None),
    ],
)
def test_parse_time(value: JsonValue, expected: datetime | None) -> None:
    assert parse_time(value) == expected


def test_text_keeps_only_strings() -> None:
    assert text("SCORED") == "SCORED"
    assert text(3) is None
    assert text(None) is None
