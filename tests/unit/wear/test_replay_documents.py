"""The pure parts of the replay commands and ``wear topics``: JSON documents, ``--since``, the selection."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime

import pytest

from infra.topic_admin import Drift, TopicReport
from processors.normalizer_runner import Counts
from processors.record_diff import Diff, TypeDiff
from processors.renormalize import Options, Report
from projections.rebuild import RebuildSummary
from schemas.topics import TOPICS
from wear.common import Usage
from wear.replay import summary_document
from wear.replay_renormalize import diff_document, document, since_of
from wear.topics import problems, report_document, selected

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)


def test_the_rebuild_summary_document_carries_every_number_of_the_summary_line() -> None:
    summary = RebuildSummary(
        records=1_000, seconds=4.0, dead_lettered=2, erased=3, switched_from=1, switched_to=2, activity=None
    )
    assert summary_document(summary) == {
        "rebuilt": True,
        "records": 1_000,
        "seconds": 4.0,
        "records_per_s": 250.0,
        "dead_lettered": 2,
        "erased": 3,
        "switched_from": 1,
        "switched_to": 2,
        "sync_activity": None,
    }
    instant = RebuildSummary(0, 0.0, 0, 0, 2, 3, activity=7)
    assert summary_document(instant)["records_per_s"] == 0.0
    assert summary_document(instant)["sync_activity"] == 7


def _diff() -> Diff:
    return Diff(
        by_type={
            "WorkoutRecorded": TypeDiff(changed=2, unchanged=1, fields=Counter({"energy_kcal": 2})),
            "CycleRecorded": TypeDiff(added=1, removed=1, envelope_only=4, fields=Counter()),
        },
        envelope=Counter({"normalizer_version": 7, "event_id": 7}),
    )


def test_the_diff_document_counts_per_type_and_field_without_example_values() -> None:
    assert diff_document(_diff()) == {
        "types": {
            "CycleRecorded": {
                "added": 1,
                "removed": 1,
                "changed": 0,
                "envelope_only": 4,
                "unchanged": 0,
                "fields": {},
            },
            "WorkoutRecorded": {
                "added": 0,
                "removed": 0,
                "changed": 2,
                "envelope_only": 0,
                "unchanged": 1,
                "fields": {"energy_kcal": 2},
            },
        },
        "envelope": {"event_id": 7, "normalizer_version": 7},
        "totals": {"added": 1, "removed": 1, "changed": 2, "envelope_only": 4, "unchanged": 1},
    }


def test_the_renormalize_document_of_a_dry_run_and_of_a_run() -> None:
    dry = document(
        Report(serving="wear.records.v1", diff=_diff(), read={"records": 9}), Options(dry_run=True), 2
    )
    assert dry["dry_run"] is True and dry["generation"] is None and dry["documents"] is None
    assert dry["diff"]["totals"]["changed"] == 2 and dry["read"] == {"records": 9}
    done = Report(
        serving="wear.records.v1",
        generation=2,
        topic="wear.records.v1.g2",
        counts=Counts(documents=10, records=9, dead_lettered=1, erased=0, skipped=3),
        seconds=1.23456,
        served=True,
    )
    run = document(done, Options(since=NOW, yes=True), 2)
    assert run["since"] == "2026-12-05T06:00:00+00:00" and run["diff"] is None
    assert (run["generation"], run["topic"], run["served"]) == (2, "wear.records.v1.g2", True)
    assert (run["documents"], run["records"], run["dead_lettered"], run["skipped_before_since"]) == (
        10,
        9,
        1,
        3,
    )
    assert run["seconds"] == 1.235


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", datetime(2026, 11, 5, 6, 0, tzinfo=UTC)),
        ("12h", datetime(2026, 12, 4, 18, 0, tzinfo=UTC)),
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
        (
            "2026-11-20T06:00:00",
            datetime(2026, 11, 20, 6, tzinfo=UTC),
        ),  # UTC without an offset, as processors
        ("2026-11-20T07:00:00+01:00", datetime(2026, 11, 20, 6, tzinfo=UTC)),
    ],
)
def test_since_reads_what_wear_and_processors_renormalize_read(text: str, expected: datetime) -> None:
    assert since_of(text, NOW) == expected


@pytest.mark.parametrize(
    ("text", "reason"), [("yesterday", "is not a date"), ("2027-01-01", "in the future")]
)
def test_a_bad_since_is_bad_usage(text: str, reason: str) -> None:
    with pytest.raises(Usage, match=reason):
        since_of(text, NOW)


def test_the_topic_selection_is_the_registry_renamed_with_the_prefix() -> None:
    assert [s.name for s in selected(None, "")] == [s.name for s in TOPICS]
    chosen = selected(["wear.records.v1"], "staging.")
    assert [(s.name, s.partitions, s.cleanup_policy) for s in chosen] == [
        ("staging.wear.records.v1", 6, "compact")
    ]
    with pytest.raises(Usage, match=re.escape("unknown topic 'wear.records.v9'")):
        selected(["wear.records.v9"], "")
    with pytest.raises(Usage, match="bad --prefix"):
        selected(None, "a/b")


def test_a_topic_report_gives_one_problem_line_each_and_its_document() -> None:
    report = TopicReport(
        created=(),
        unchanged=("a",),
        drifts=(Drift("a", "partitions", "6", "2"),),
        missing=("b",),
    )
    assert not report.ok
    assert problems(report) == [
        "missing b: run `wear topics create`",
        "drift a: partitions is 2, the registry says 6",
    ]
    assert report_document(report) == {
        "ok": False,
        "created": [],
        "present": ["a"],
        "missing": ["b"],
        "drifts": [{"topic": "a", "setting": "partitions", "expected": "6", "actual": "2"}],
    }
    assert TopicReport(created=("c",), unchanged=(), drifts=()).ok
