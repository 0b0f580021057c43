"""Targeted reconciliation's decision: a complete member costs nothing, each kind of gap its one read."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from processors.reconcile_plan import (
    RECORD_SPAN,
    Check,
    CheckPolicy,
    CycleFact,
    MemberFacts,
    SleepFact,
    WorkoutFact,
    load_of,
    plan_checks,
    recent_checks,
    unexplained_load,
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


def _cycle(strain: float | None, *, hours: float = 24.0, closed: bool = True) -> CycleFact:
    start = NOW - timedelta(hours=30)
    return CycleFact(10, start, start + timedelta(hours=hours) if closed else None, strain)


def _workout(strain: float | None, hours_after_cycle_start: float = 10.0) -> WorkoutFact:
    return WorkoutFact(NOW - timedelta(hours=30) + timedelta(hours=hours_after_cycle_start), strain)


def _strain(load: float) -> float:
    """The strain of a load (WHOOP's logarithmic scale), the inverse of load_of."""
    return 21.0 * (1.0 - math.exp(-load / 150.0))


def _with_days(cycles: list[CycleFact], workouts: list[WorkoutFact], **extra: Any) -> MemberFacts:
    return MemberFacts("u1", 1, CONNECTED, _complete_days(), {}, cycles=cycles, workouts=workouts, **extra)


def test_load_of_inverts_the_strain_scale() -> None:
    for load in (0.0, 40.0, 85.0, 300.0):
        assert load_of(_strain(load)) == pytest.approx(load, abs=1e-6)


def test_a_cycle_its_workouts_explain_needs_no_read() -> None:
    cycle = _cycle(_strain(60.0 + 120.0))  # a resting day's load plus one workout's
    assert plan_checks(_with_days([cycle], [_workout(_strain(120.0))]), NOW, POLICY) == []
    assert unexplained_load(cycle, [_workout(_strain(120.0))]) == pytest.approx(60.0, abs=1e-6)


def test_a_cycle_with_more_strain_than_its_workouts_explain_reads_the_workouts_of_the_cycle() -> None:
    cycle = _cycle(_strain(60.0 + 120.0 + 100.0))  # a second workout we never heard of
    checks = plan_checks(_with_days([cycle], [_workout(_strain(120.0))]), NOW, POLICY)
    assert checks == [Check("workout", "10", start=cycle.start, end=cycle.end)]
    # a day of rest alone (no workout held at all) stays below the rest ceiling
    assert plan_checks(_with_days([_cycle(_strain(80.0))], []), NOW, POLICY) == []


def test_the_rest_ceiling_scales_with_the_cycle_length() -> None:
    short = _cycle(_strain(70.0), hours=12.0)  # 70 in 12 h is more than a resting half-day
    assert [c.kind for c in plan_checks(_with_days([short], []), NOW, POLICY)] == ["workout"]


def test_no_workout_read_while_the_cycle_is_open_or_a_workout_unscored() -> None:
    heavy = _strain(400.0)
    assert plan_checks(_with_days([_cycle(heavy, closed=False)], []), NOW, POLICY) == []
    assert plan_checks(_with_days([_cycle(heavy)], [_workout(None)]), NOW, POLICY) == []
    assert plan_checks(_with_days([_cycle(None)], []), NOW, POLICY) == []


def test_a_workout_read_is_made_once_per_cycle() -> None:
    cycle = _cycle(_strain(400.0))
    done = NOW - POLICY.retry_after - timedelta(hours=1)  # older than a retry, younger than the lookback
    facts = MemberFacts("u1", 1, CONNECTED, _complete_days(), {"workout:10": done}, cycles=[cycle])
    assert plan_checks(facts, NOW, POLICY) == []


def test_a_cycle_its_known_workouts_over_explain_reads_the_workouts_of_the_cycle() -> None:
    kept, gone = _workout(_strain(120.0)), _workout(_strain(60.0), hours_after_cycle_start=14.0)
    cycle = _cycle(_strain(50.0 + 120.0))  # WHOOP rescored the cycle without the deleted workout
    assert unexplained_load(cycle, [kept, gone]) == pytest.approx(-10.0, abs=1e-6)
    checks = plan_checks(_with_days([cycle], [kept, gone]), NOW, POLICY)
    assert checks == [Check("deleted", "10", start=cycle.start, end=cycle.end)]
    assert checks[0].key == "deleted:10"
    # the quietest resting day the floor allows, with every known workout still there, reads nothing
    assert plan_checks(_with_days([_cycle(_strain(35.0 + 120.0))], [kept]), NOW, POLICY) == []


def test_the_rest_floor_scales_with_the_cycle_length_and_is_read_once() -> None:
    short = _cycle(_strain(20.0), hours=12.0)  # 20 in 12 h is a resting half-day: nothing went away
    assert plan_checks(_with_days([short], []), NOW, POLICY) == []
    over = _cycle(_strain(20.0 + 40.0), hours=12.0)
    facts = _with_days([over], [_workout(_strain(40.0)), _workout(_strain(30.0), 5.0)])
    assert [c.kind for c in plan_checks(facts, NOW, POLICY)] == ["deleted"]
    done = NOW - POLICY.retry_after - timedelta(hours=1)  # older than a retry, younger than the lookback
    marked = MemberFacts(
        "u1", 1, CONNECTED, _complete_days(), {"deleted:10": done}, cycles=[over], workouts=facts.workouts
    )
    assert plan_checks(marked, NOW, POLICY) == []


def test_a_cycle_read_for_one_reason_is_not_read_for_the_other() -> None:
    """After the read that found a deletion the cycle may look under-explained: the page listed all."""
    done = NOW - timedelta(hours=1)
    for mark in ("deleted:10", "workout:10"):
        for cycle, workouts in (
            (_cycle(_strain(400.0)), []),
            (_cycle(_strain(40.0)), [_workout(_strain(120.0))]),
        ):
            facts = MemberFacts(
                "u1", 1, CONNECTED, _complete_days(), {mark: done}, cycles=[cycle], workouts=workouts
            )
            assert plan_checks(facts, NOW, POLICY) == []


def test_a_main_sleep_whose_need_counts_a_nap_we_never_saw_reads_the_sleeps_before_it() -> None:
    yesterday, today = _complete_days()[:2]
    napped = SleepFact(
        today.sleep_id, today.cycle_id, False, today.start, today.end, "SCORED", True, nap_need_ms=-1_200_000
    )
    checks = plan_checks(MemberFacts("u1", 1, CONNECTED, [yesterday, napped], {}), NOW, POLICY)
    assert checks == [Check("nap", "s-today", start=yesterday.end, end=napped.start)]
    # with the nap held between the two main sleeps there is nothing to read
    assert yesterday.end is not None
    nap = SleepFact("nap", 10, True, yesterday.end + timedelta(hours=6), None, "SCORED", False)
    assert plan_checks(MemberFacts("u1", 1, CONNECTED, [yesterday, napped, nap], {}), NOW, POLICY) == []


def test_what_happened_before_the_member_was_watched_is_not_judged() -> None:
    cycle = _cycle(_strain(400.0))  # started 30 h ago
    later = MemberFacts("u1", 1, cycle.start + timedelta(hours=1), _complete_days(), {}, cycles=[cycle])
    assert [c for c in plan_checks(later, NOW, POLICY) if c.kind == "workout"] == []
    yesterday, today = _complete_days()[:2]
    napped = SleepFact(
        today.sleep_id, today.cycle_id, False, today.start, today.end, "SCORED", True, nap_need_ms=-1_200_000
    )
    assert yesterday.end is not None
    watched_after = MemberFacts("u1", 1, yesterday.end + timedelta(hours=1), [yesterday, napped], {})
    assert [c for c in plan_checks(watched_after, NOW, POLICY) if c.kind == "nap"] == []


def test_a_sleep_read_as_pending_is_not_read_again_for_its_recovery() -> None:
    days = _complete_days()
    scored = _main("s-today", 11, NOW.replace(hour=7), recovery=False)
    marks = {"pending:s-today": NOW - timedelta(minutes=5)}  # that read fetches the recovery too
    assert plan_checks(_facts(days[0], scored, checks=marks), NOW, POLICY) == []
