"""The pure parts of ``wear pull``: its --types, and what it shows of a job's progress."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ingest.store import PullJob
from wear.common import Usage
from wear.pull import parse_types
from wear.pull_progress import estimate, job_document, summary_line, totals

START, END = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)


def _job(progress: dict[str, object], status: str = "running", error: str | None = None) -> PullJob:
    return PullJob(
        "job-1", "user-1", ("sleep", "recovery"), START, END, "admin:wear", status, progress, error
    )


def test_types_in_pipeline_order_from_commas_or_repeats() -> None:
    assert parse_types(None) == ("cycle", "sleep", "recovery", "workout")
    assert parse_types(["recovery,sleep"]) == ("sleep", "recovery")
    assert parse_types(["workout", " Cycle "]) == ("cycle", "workout")


@pytest.mark.parametrize("values", [["sleeps"], ["sleep,naps"], [","]])
def test_an_unknown_type_is_bad_usage(values: list[str]) -> None:
    with pytest.raises(Usage, match="unknown type"):
        parse_types(values)


def test_totals_estimate_and_summary_follow_the_fetchers_figures() -> None:
    queued = _job({})
    assert totals(queued).collections == 2
    assert estimate(queued, 30) == 60  # one record a day per collection until it is done

    running = _job(
        {
            "sleep": {"status": "done", "pages": 2, "records": 33, "calls": 2},
            "recovery": {"status": "running", "pages": 1, "records": 25, "calls": 1},
        }
    )
    figures = totals(running)
    assert (figures.collections_done, figures.pages, figures.records, figures.calls) == (1, 3, 58, 3)
    assert estimate(running, 30) == 33 + 30

    done = _job(
        {
            "sleep": {"status": "done", "pages": 2, "records": 33, "calls": 2},
            "recovery": {"status": "done", "pages": 2, "records": 31, "calls": 2},
        },
        status="done",
    )
    assert estimate(done, 30) == 64
    assert summary_line(done, 12.34) == (
        "pull job-1: done in 12.3 s: 2/2 collections, 4 pages, 64 records, 4 WHOOP calls"
    )
    assert summary_line(_job({}, "failed", "superseded by job-2"), 1).endswith("; error: superseded by job-2")
    assert job_document(done)["totals"] == {
        "collections": 2,
        "collections_done": 2,
        "pages": 4,
        "records": 64,
        "calls": 4,
    }
