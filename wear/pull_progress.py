"""What ``wear pull`` shows of a pull job (pure): totals, an estimate of its records, a summary line, JSON.

A job's ``progress`` (written by the fetcher, ``processors.backfill``) holds per collection its
``status``, ``pages``, ``records`` and ``calls``. How many records a collection holds is known only
once its last page came, so the bar's total is an estimate: a collection still under way counts at
least one record per day of the range (WHOOP scores about one cycle, sleep and recovery a day), a
finished one counts what it had.
"""

from __future__ import annotations

from dataclasses import dataclass

from ingest.pulls import job_json
from ingest.store import PullJob

__all__ = ["Totals", "estimate", "job_document", "summary_line", "totals"]


@dataclass(frozen=True)
class Totals:
    """A job's figures summed over its collections."""

    collections: int
    collections_done: int
    pages: int
    records: int
    calls: int


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _collections(job: PullJob) -> dict[str, dict[str, object]]:
    found = {k: v for k, v in job.progress.items() if isinstance(v, dict)}
    for resource_type in job.resource_types:  # not started by a fetcher yet
        found.setdefault(resource_type, {"status": "queued"})
    return found


def totals(job: PullJob) -> Totals:
    """The job's collections, those done, and its pages, records and WHOOP calls so far."""
    collections = _collections(job)
    return Totals(
        collections=len(collections),
        collections_done=sum(1 for c in collections.values() if c.get("status") == "done"),
        pages=sum(_int(c.get("pages")) for c in collections.values()),
        records=sum(_int(c.get("records")) for c in collections.values()),
        calls=sum(_int(c.get("calls")) for c in collections.values()),
    )


def estimate(job: PullJob, days: int) -> int:
    """The records the job will have fetched: what finished collections had, and for each other one
    the larger of what it has and one record per day of the range."""
    total = 0
    for collection in _collections(job).values():
        records = _int(collection.get("records"))
        total += records if collection.get("status") in ("done", "failed") else max(records, days)
    return total


def summary_line(job: PullJob, seconds: float) -> str:
    """The closing line: the job's outcome and its counts (no health data)."""
    done = totals(job)
    line = (
        f"pull {job.job_id}: {job.status} in {seconds:.1f} s: {done.collections_done}/{done.collections} "
        f"collections, {done.pages} pages, {done.records} records, {done.calls} WHOOP calls"
    )
    return line if not job.error else f"{line}; error: {job.error[:200]}"


def job_document(job: PullJob) -> dict[str, object]:
    """The job as ``--json`` prints it (the fields of the pull-status route, plus totals)."""
    done = totals(job)
    return {
        **job_json(job),
        "totals": {
            "collections": done.collections,
            "collections_done": done.collections_done,
            "pages": done.pages,
            "records": done.records,
            "calls": done.calls,
        },
    }
