"""Targeted reconciliation's decision: a complete member costs nothing, each kind of gap its one read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from processors.reconcile_plan import (
    RECORD_SPAN,
    Check,
    CheckPolicy,
    MemberFacts,
    SleepFact,
    plan_checks,
    recent_checks,
)

NOW = datetime(2026, 12, 5, 15, 0, tzinfo=UTC)
POLICY = CheckPolicy(
    recovery_grace=timedelta(hours=3),
    silent_after=timedelta(hours=30),
    retry_after=timedelta(hours=12),
    lookback=timedelta(hours=60),
)
CONNECTED = NOW - timedelta(days=20)


def _main(
    ident: str,
    cycle: int,
    end: datetime,
    *,
    scored: bool = True,
    recovery: bool = True,
    fetched: bool = True,
) -> SleepFact:
    return SleepFact(
        sleep_id=ident,
        cycle_id=cycle,
        nap=False,
        start=end - timedelta(hours=8) if fetched else None,
        end=end if fetched else None,
        score_state=("SCORED" if scored else "PENDING_SCORE") if fetched else None,
        has_recovery=recovery,
    )


def _facts(
    *sleeps: SleepFact, checks: dict[str, datetime] | None = None, since: datetime = CONNECTED
) -> MemberFacts:
    return MemberFacts("u1", 1, since, sleeps, checks or {})


def _complete_days() -> list[SleepFact]:
    """Two complete days: main sleeps ending this morning and yesterday morning, each with its recovery."""
    this_morning = NOW.replace(hour=7)
    return [
        _main("s-yesterday", 10, this_morning - timedelta(days=1)),
        _main("s-today", 11, this_morning),
        SleepFact(
            "nap",
            10,
            True,
            NOW - timedelta(days=1, hours=-6),
            NOW - timedelta(days=1, hours=-7),
            "SCORED",
            False,
        ),
    ]


def test_a_complete_consistent_member_needs_no_read() -> None:
    assert plan_checks(_facts(*_complete_days()), NOW, POLICY) == []


def test_a_scored_sleep_without_its_recovery_hours_later_reads_the_recovery() -> None:
    days = _complete_days()
    gap = _main("s-today", 11, NOW.replace(hour=7), recovery=False)
    assert plan_checks(_facts(days[0], gap), NOW, POLICY) == [Check("recovery", "s-today")]


def test_nothing_is_read_inside_the_grace() -> None:
    just_ended = _main("s-new", 12, NOW - timedelta(hours=1), recovery=False)
    still_pending = _main("s-pending", 13, NOW - timedelta(hours=2), recovery=False, scored=False)
    assert plan_checks(_facts(just_ended, still_pending), NOW, POLICY) == []


def test_a_sleep_still_pending_hours_after_it_ended_reads_the_sleep_and_its_recovery() -> None:
    pending = _main("s-pending", 13, NOW - timedelta(hours=5), recovery=False, scored=False)
    assert plan_checks(_facts(pending), NOW, POLICY) == [Check("pending", "s-pending")]


def test_a_recovery_whose_sleep_was_never_fetched_reads_the_sleep() -> None:
    days = _complete_days()
    orphan = _main("s-orphan", 11, NOW, fetched=False)  # known only from its recovery
    assert plan_checks(_facts(days[0], orphan), NOW - timedelta(hours=1), POLICY) == [
        Check("sleep", "s-orphan")
    ]


def test_a_member_without_a_main_sleep_for_a_day_gets_one_collection_read_from_the_last_one() -> None:
    last = _main("s-old", 9, NOW - timedelta(hours=31))
    checks = plan_checks(_facts(last), NOW, POLICY)
    assert last.end is not None
    # read from before the last main sleep's end: a record that began earlier is found too
    assert checks == [Check("silent", last.end.isoformat(), start=last.end - RECORD_SPAN)]
    # nothing held at all: the window starts where the fetcher began watching, at most the lookback ago
    (silent,) = plan_checks(_facts(), NOW, POLICY)
    assert silent.kind == "silent" and silent.start == NOW - POLICY.lookback - RECORD_SPAN
    assert plan_checks(_facts(since=NOW - timedelta(hours=29)), NOW, POLICY) == []  # watched too briefly


def test_a_read_that_found_nothing_waits_for_its_retry_time() -> None:
    gap = _main("s-today", 11, NOW.replace(hour=7), recovery=False)
    marked = {"recovery:s-today": NOW - timedelta(hours=2), "silent": NOW - timedelta(hours=2)}
    assert plan_checks(_facts(gap, checks=marked), NOW, POLICY) == []
    assert plan_checks(_facts(checks=marked), NOW, POLICY) == []
    later = NOW + timedelta(hours=10, minutes=1)
    assert plan_checks(_facts(gap, checks=marked), later, POLICY) == [Check("recovery", "s-today")]
    assert [c.kind for c in plan_checks(_facts(checks=marked), later, POLICY)] == ["silent"]


@pytest.mark.parametrize(("age_h", "kept"), [(1, True), (59, True), (61, False)])
def test_old_marks_are_pruned(age_h: int, kept: bool) -> None:
    marks = {"recovery:x": NOW - timedelta(hours=age_h)}
    assert bool(recent_checks(marks, NOW, POLICY)) is kept
