"""The pure parts of ``wear dlq``: letter ids, reading a DLQ record, snapshots, redrive results."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from aiokafka.structs import ConsumerRecord

from schemas.events import DeadLetter
from schemas.serde import encode
from wear.common import Usage
from wear.dlq_log import REDRIVE_OF_HEADER, Snapshot, _letter, parse_id
from wear.dlq_redrive import Outcome, Result


def record(value: bytes, headers: list[tuple[str, bytes]] | None = None) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="whoop.documents.v1.dlq",
        partition=2,
        offset=7,
        timestamp=1_764_000_000_000,
        timestamp_type=0,
        key=b"u-1:cycle:42",
        value=value,
        checksum=None,
        serialized_key_size=12,
        serialized_value_size=len(value),
        headers=headers or [],
    )


LETTER = DeadLetter(
    origin_topic="whoop.documents.v1",
    origin_partition=1,
    origin_offset=99,
    key="u-1:cycle:42",
    value_b64=base64.b64encode(b"raw").decode(),
    error_type="SealError",
    reason="a sealed document, but the normalizer was started without keys",
    stage="normalizer",
    failed_at=datetime(2025, 11, 20, 12, 0, tzinfo=UTC),
)


@pytest.mark.parametrize(("text", "expected"), [("0:0", (0, 0)), ("5:1234", (5, 1234)), (" 2:7 ", (2, 7))])
def test_an_id_is_partition_colon_offset(text: str, expected: tuple[int, int]) -> None:
    assert parse_id(text) == expected


@pytest.mark.parametrize("text", ["", "7", "a:1", "1:", ":1", "-1:2", "1:2:3", "1.5:2"])
def test_a_bad_id_is_refused_with_its_form(text: str) -> None:
    with pytest.raises(Usage, match="bad id"):
        parse_id(text)


def test_a_letter_is_read_with_its_origin_and_redrive_header() -> None:
    letter = _letter(record(encode(LETTER), [(REDRIVE_OF_HEADER, b"2:3")]))
    assert letter.id == "2:7"
    assert letter.raw() == b"raw"
    summary = letter.summary()
    assert summary["origin"] == "whoop.documents.v1[1]@99"
    assert summary["user_id"] == "u-1"
    assert summary["stage"] == "normalizer"
    assert summary["redrive_of"] == "2:3"
    assert "value_b64" not in summary  # the raw value is shown only by `show`, opened


def test_a_record_that_is_not_a_dead_letter_is_read_as_unreadable() -> None:
    letter = _letter(record(b"garbage"))
    assert letter.letter is None
    assert letter.summary()["error_type"] == "UnreadableDeadLetter"
    assert str(letter.unreadable).startswith("not a DeadLetter")


def test_a_snapshot_holds_only_the_offsets_it_saw() -> None:
    shot = Snapshot("t.dlq", {0: 3, 1: 0}, {0: 5, 1: 0})
    assert shot.count == 2
    assert shot.holds(0, 3) and shot.holds(0, 4)
    assert not shot.holds(0, 2) and not shot.holds(0, 5) and not shot.holds(1, 0) and not shot.holds(9, 0)


def test_which_outcomes_count_as_succeeded() -> None:
    ok = {"landed", "already_redriven", "erased", "would_land"}
    outcomes: list[Outcome] = [
        "landed",
        "dead_lettered",
        "already_redriven",
        "erased",
        "would_land",
        "would_fail",
    ]
    for outcome in outcomes:
        result = Result("0:1", "normalizer", outcome, "detail")
        assert result.succeeded is (outcome in ok)
        assert result.as_json()["succeeded"] is (outcome in ok)


def test_an_earlier_redrive_that_failed_is_not_a_success() -> None:
    assert Result("0:1", "normalizer", "already_redriven", "landed before").succeeded
    assert not Result("0:1", "normalizer", "already_redriven", "failed before", requeued_as="0:2").succeeded
