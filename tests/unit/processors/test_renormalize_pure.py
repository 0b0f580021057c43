"""The pure parts of ``python -m processors renormalize``: --since, summary line, where, served topic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from processors.normalizer_runner import Counts
from processors.projections_cli import ProjectionsFailed, serving_records_topic
from processors.renormalize import Refused, parse_since, summary_line, where
from schemas.topics import generation_topic

NOW = datetime(2025, 11, 20, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-11-19", datetime(2025, 11, 19, tzinfo=UTC)),
        ("2025-11-19T06:30:00Z", datetime(2025, 11, 19, 6, 30, tzinfo=UTC)),
        ("2025-11-19T06:30:00", datetime(2025, 11, 19, 6, 30, tzinfo=UTC)),
        ("2025-11-19T08:30:00+02:00", datetime(2025, 11, 19, 6, 30, tzinfo=UTC)),
        ("2025-11-20T12:00:00Z", NOW),
    ],
)
def test_since_is_a_date_or_an_instant_in_utc(text: str, expected: datetime) -> None:
    since = parse_since(text, NOW)
    assert since == expected and since.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("yesterday", "is not a date"),
        ("2025-13-01", "is not a date"),
        ("2025-11-21", "lies in the future"),
        ("2025-11-20T12:00:01Z", "lies in the future"),
    ],
)
def test_a_bad_since_is_refused_in_one_line(text: str, reason: str) -> None:
    with pytest.raises(Refused, match=reason) as caught:
        parse_since(text, NOW)
    assert "\n" not in str(caught.value)


def test_the_summary_line() -> None:
    counts = Counts(documents=1200, records=1150, dead_lettered=2, erased=48, skipped=0)
    line = summary_line(2, "wear.records.v1.g2", counts, 2.0, True)
    assert line == (
        "re-normalized: 1,200 documents into generation 2 (wear.records.v1.g2) in 2.0 s (600 documents/s): "
        "1,150 records, 2 dead-lettered, 48 of erased members skipped; the read models serve it"
    )
    since = summary_line(3, "t.g3", Counts(documents=5, skipped=4), 0.0, False)
    assert "(0 documents/s)" in since and "4 stored before --since" in since and "serve" not in since


def test_where_names_host_port_and_database_without_credentials() -> None:
    assert (
        where("postgresql://whoop:s3cret@db.example:6543/pipeline?search_path=x")
        == "db.example:6543/pipeline"
    )
    assert where("postgresql:///pipeline") == "localhost:5432/pipeline"


def test_generation_topics_sit_beside_the_records_topic() -> None:
    assert generation_topic("wear.records.v1", 2) == "wear.records.v1.g2"
    with pytest.raises(ValueError, match="generation 1"):
        generation_topic("wear.records.v1", 1)


def test_the_served_topic_comes_from_versions_json() -> None:
    document = {
        "serving": 3,
        "previous": 1,
        "versions": [
            {"number": 1, "state": "retired", "serving": False, "records_topic": "wear.records.v1"},
            {"number": 3, "state": "serving", "serving": True, "records_topic": "wear.records.v1.g2"},
        ],
    }
    assert serving_records_topic(document, "wear.records.v1") == "wear.records.v1.g2"
    unnamed = {"versions": [{"number": 1, "state": "serving", "records_topic": None}]}
    assert serving_records_topic(unnamed, "wear.records.v1") == "wear.records.v1"
    bad: object
    for bad in ({"versions": []}, {"versions": "x"}, [], None):
        with pytest.raises(ProjectionsFailed):
            serving_records_topic(bad, "wear.records.v1")


def test_an_aware_non_utc_since_is_converted() -> None:
    assert parse_since("2025-11-19T00:00:00-05:00", NOW) == datetime(2025, 11, 19, 5, tzinfo=UTC)
