"""Pure generator of simulated WHOOP members and their history.

``generate_member(seed, index, days, history_end)`` builds one member's profile, body measurement
and ``days`` physiological cycles (sleep onset to sleep onset) with main sleeps, naps, recoveries
and workouts, as JSON-ready v2 documents. Member ``index`` of a seed is always the same member, no
matter how many others exist. Members live in several time zones (with DST changes) and some
travel, so ``timezone_offset`` changes between neighbouring records, as it does at WHOOP.

Given the simulator's clock (``now_ms``), nothing generated starts, ends or is updated after it, as
at WHOOP: the history ends with the latest night on or before ``history_end`` whose sleep is over
and recorded, that night opens the current cycle (``end: None``), and the current cycle holds only
what has happened since.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from simulator.nights import HOUR_MS as _HOUR
from simulator.nights import MIN_MS as _MIN
from simulator.nights import PROCESSED_MS as _PROCESSED_MS
from simulator.nights import finished_nights
from simulator.physiology import SPORTS, Baseline, cycle_score, recovery_score, sleep_score, workout_score
from simulator.timefmt import format_ms, format_offset

__all__ = ["HOME_ZONES", "Member", "generate_member", "new_uuid", "offset_at"]

Json = dict[str, Any]
HOME_ZONES = (
    "America/New_York",
    "Europe/London",
    "Australia/Sydney",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Europe/Berlin",
)
_TRIP_ZONES = ("Asia/Tokyo", "America/Denver", "Europe/Paris", "America/Sao_Paulo")
_FIRST = ("Jordan", "Avery", "Riley", "Sam", "Noor", "Mateo", "Priya", "Lena", "Kofi", "Hana", "Liam", "Zoe")
_LAST = ("Rivera", "Chen", "Okafor", "Schmidt", "Tanaka", "Silva", "Novak", "Haddad", "Larsen", "Moreau")
_V1_CUTOFF_MS = 1_756_684_800_000  # 2025-09-01T00:00:00Z: v1 ids do not exist past this date


@dataclass
class Member:
    """One simulated member: identity, physiology and history (documents in canonical form).

    Canonical documents hold ``score: None`` when unscored and ``end: None`` on the open cycle; the
    store decides how to render them (omit or null).
    """

    index: int
    user_id: int
    profile: Json
    body: Json
    baseline: Baseline
    home_zone: str
    cycles: list[Json] = field(default_factory=list)
    sleeps: list[Json] = field(default_factory=list)
    recoveries: list[Json] = field(default_factory=list)
    workouts: list[Json] = field(default_factory=list)
    v1_map: dict[int, str] = field(default_factory=dict)
    last_cycle_id: int = 0


def new_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from ``rng`` (deterministic for a seeded generator)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def offset_at(zone: str, epoch_ms: int) -> str:
    """The ``timezone_offset`` of ``zone`` at that instant."""
    moment = dt.datetime.fromtimestamp(epoch_ms / 1000, tz=ZoneInfo(zone))
    offset = moment.utcoffset()
    return format_offset(offset if offset is not None else dt.timedelta(0))


def _baseline(rng: random.Random) -> Baseline:
    age = rng.randint(22, 60)
    height = round(rng.uniform(1.55, 1.95), 4)
    return Baseline(
        age=age,
        weight_kilogram=round(rng.uniform(19.5, 28.0) * height * height, 3),
        height_meter=height,
        max_heart_rate=round(208 - 0.7 * age + rng.gauss(0, 4)),
        resting_heart_rate=rng.uniform(46.0, 66.0),
        hrv_rmssd_milli=rng.uniform(28.0, 115.0) * (1.25 - age / 120),
        respiratory_rate=rng.uniform(13.2, 17.0),
        sleep_need_milli=round(rng.uniform(7.2, 8.6) * _HOUR),
        skin_temp_celsius=rng.uniform(33.2, 34.8),
        has_spo2=rng.random() < 0.8,
    )


def _trip(rng: random.Random, index: int, days: int, home: str) -> tuple[int, int, str] | None:
    """(first night, nights, zone) of a trip for every third member, if the history is long enough."""
    if index % 3 != 1 or days < 10:
        return None
    zone = rng.choice([z for z in _TRIP_ZONES if z != home])
    return days // 3, rng.randint(4, 7), zone


def generate_member(
    seed: int,
    index: int,
    days: int,
    history_end: dt.date,
    *,
    current_state: str,
    now_ms: int | None = None,
) -> Member:
    """Generate member ``index`` of ``seed``: ``days`` cycles ending with the open one on ``history_end``.

    With ``now_ms`` (the simulator's clock), the open cycle starts with the latest night, on or before
    ``history_end`` in the member's zone, whose sleep was over and processed by ``now_ms``; it holds
    only the workouts and naps processed by then, and no record starts, ends or is updated after it.
    A history that ended long before ``now_ms`` is the same as without a clock.
    """
    rng = random.Random(seed * 1_000_003 + index)  # noqa: S311 - simulated data, not secrets
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    user_id = 100_000 + index * 1_000 + rng.randint(0, 999)
    base = _baseline(rng)
    home = HOME_ZONES[index % len(HOME_ZONES)]
    member = Member(
        index=index,
        user_id=user_id,
        profile={
            "user_id": user_id,
            "email": f"{first}.{last}{index}@example.com".lower(),
            "first_name": first,
            "last_name": last,
        },
        body={
            "height_meter": base.height_meter,
            "weight_kilogram": base.weight_kilogram,
            "max_heart_rate": base.max_heart_rate,
        },
        baseline=base,
        home_zone=home,
    )
    trip = _trip(rng, index, days, home)
    onsets, wakes, zones = finished_nights(rng, days, history_end, home, trip, now_ms)
    cycle_id = 1_000_000_000 + index * 1_000_000 + rng.randint(1, 500)
    previous = {"strain": 8.0, "debt": 0, "nap": 0}
    for night in range(days):
        _build_cycle(
            rng, member, night, cycle_id, onsets, wakes, zones[night], previous, current_state, now_ms
        )
        member.last_cycle_id = cycle_id
        cycle_id += rng.randint(1, 200)
    return member


def _v1(rng: random.Random, member: Member, start_ms: int, activity_id: str) -> int | None:
    if start_ms >= _V1_CUTOFF_MS:
        return None
    v1_id = rng.randint(100_000_000, 9_999_999_999)
    member.v1_map[v1_id] = activity_id
    return v1_id


@dataclass(frozen=True)
class _Night:
    """What every part of one cycle shares: the member, the night's times and its clock cut-off."""

    rng: random.Random
    member: Member
    night: int
    cycle_id: int
    start: int
    wake: int
    horizon: int  # the cycle's end, or for the open one a bound 15 hours after waking
    until: int  # what has happened by now: the open cycle is cut at the clock
    zone: str


def _build_cycle(
    rng: random.Random,
    member: Member,
    night: int,
    cycle_id: int,
    onsets: list[int],
    wakes: list[int],
    zone: str,
    previous: dict[str, float],
    current_state: str,
    now_ms: int | None,
) -> None:
    """One cycle of ``member``: the night's sleep and recovery, the day's workouts and nap, the cycle."""
    start, wake = onsets[night], wakes[night]
    is_current = night == len(onsets) - 1
    end = None if is_current else onsets[night + 1]
    horizon = end if end is not None else wake + 15 * _HOUR
    # what has happened by now: the open cycle is cut at the clock (a closed one is already over)
    until = horizon if now_ms is None else min(horizon, now_ms)
    n = _Night(rng, member, night, cycle_id, start, wake, horizon, until, zone)
    need, sleep_created, sleep_updated = _main_sleep(n, previous)
    scored_workouts, spans, latest_update = _workouts(n, sleep_updated)
    _nap(n, need, spans, previous)
    c_score = cycle_score(rng, member.baseline, until - start, scored_workouts)
    previous["strain"] = c_score["strain"]
    closed_update = onsets[night + 1] + 9 * _HOUR if end is not None else latest_update
    if now_ms is not None:  # a cycle closed last night is rescored during the day, not ahead of it
        closed_update = min(closed_update, now_ms)
    state = current_state if is_current else "SCORED"
    member.cycles.append(
        {
            "id": cycle_id,
            "user_id": member.user_id,
            "created_at": format_ms(sleep_created),
            "updated_at": format_ms(max(closed_update, latest_update)),
            "start": format_ms(start),
            "end": format_ms(end) if end is not None else None,
            "timezone_offset": offset_at(zone, start),
            "score_state": state,
            "score": c_score if state == "SCORED" else None,
        }
    )


def _main_sleep(n: _Night, previous: dict[str, float]) -> tuple[dict[str, int], int, int]:
    """The night's sleep and its recovery; returns the sleep need and when the sleep was created, updated."""
    rng, member, base = n.rng, n.member, n.member.baseline
    need = {
        "baseline_milli": base.sleep_need_milli + rng.randint(-10, 10) * _MIN,
        "need_from_sleep_debt_milli": int(previous["debt"]),
        "need_from_recent_strain_milli": int(max(0.0, previous["strain"] - 10.0) * 3 * _MIN),
        "need_from_recent_nap_milli": -int(previous["nap"]),
    }
    previous["nap"] = 0  # a nap counts against the next night's need only
    sleep_id = new_uuid(rng)
    sleep_created = n.wake + rng.randint(2 * _MIN, 9 * _MIN)
    scorable = rng.random() >= 0.03
    score = (
        sleep_score(rng, base, n.wake - n.start, need, nap=False, first=n.night == 0) if scorable else None
    )
    sleep_updated = sleep_created + (rng.randint(_MIN, 6 * _MIN) if scorable else 0)
    member.sleeps.append(
        {
            "id": sleep_id,
            "cycle_id": n.cycle_id,
            "v1_id": _v1(rng, member, n.start, sleep_id),
            "user_id": member.user_id,
            "created_at": format_ms(sleep_created),
            "updated_at": format_ms(sleep_updated),
            "start": format_ms(n.start),
            "end": format_ms(n.wake),
            "timezone_offset": offset_at(n.zone, n.start),
            "nap": False,
            "score_state": "SCORED" if scorable else "UNSCORABLE",
            "score": score,
        }
    )
    _recovery(n, previous["strain"], sleep_id, score, (sleep_created, sleep_updated))
    asleep = (n.wake - n.start) * 0.85
    if score is not None:
        stages = score["stage_summary"]
        asleep = stages["total_in_bed_time_milli"] - stages["total_awake_time_milli"]
    previous["debt"] = min(max(0.0, (sum(need.values()) - asleep) * 0.3), 1.5 * _HOUR)
    return need, sleep_created, sleep_updated


def _recovery(
    n: _Night, previous_strain: float, sleep_id: str, score: Json | None, times: tuple[int, int]
) -> None:
    """The recovery of the night's sleep (scored with it), except now and then none at all."""
    performance = score["sleep_performance_percentage"] if score else 80.0
    if n.rng.random() < 0.02:  # now and then a cycle has no recovery at all
        return
    recovery = (
        recovery_score(
            n.rng,
            n.member.baseline,
            previous_strain=previous_strain,
            performance=performance,
            calibrating=n.night < 4,
        )
        if score is not None
        else None
    )
    n.member.recoveries.append(
        {
            "cycle_id": n.cycle_id,
            "sleep_id": sleep_id,
            "user_id": n.member.user_id,
            "created_at": format_ms(times[0]),
            "updated_at": format_ms(times[1]),
            "score_state": "SCORED" if score is not None else "UNSCORABLE",
            "score": recovery,
        }
    )


def _workouts(n: _Night, sleep_updated: int) -> tuple[list[tuple[Json, float]], list[tuple[int, int]], int]:
    """The day's workouts (none to two); returns their scores and loads, their spans, the latest update."""
    rng, member = n.rng, n.member
    scored_workouts: list[tuple[Json, float]] = []
    spans: list[tuple[int, int]] = []
    latest_update = sleep_updated
    cursor = n.wake + rng.randint(40 * _MIN, 3 * _HOUR)
    for _ in range(rng.choices((0, 1, 2), weights=(35, 50, 15))[0]):
        sport = rng.choice(SPORTS)
        duration = round(rng.uniform(*sport.minutes) * _MIN) + rng.randint(0, 59_999)
        if cursor + duration > n.horizon - 90 * _MIN or cursor + duration + _PROCESSED_MS > n.until:
            break
        w_start = cursor
        w_end = w_start + duration
        workout_id = new_uuid(rng)
        w_scorable = rng.random() >= 0.02
        w_score, load = workout_score(rng, member.baseline, sport, duration)
        created = w_end + rng.randint(_MIN, 5 * _MIN)
        updated = created + rng.randint(_MIN, 6 * _MIN)
        member.workouts.append(
            {
                "id": workout_id,
                "v1_id": _v1(rng, member, w_start, workout_id),
                "user_id": member.user_id,
                "created_at": format_ms(created),
                "updated_at": format_ms(updated),
                "start": format_ms(w_start),
                "end": format_ms(w_end),
                "timezone_offset": offset_at(n.zone, w_start),
                "sport_name": sport.name,
                "score_state": "SCORED" if w_scorable else "UNSCORABLE",
                "score": w_score if w_scorable else None,
                "sport_id": sport.sport_id,
            }
        )
        scored_workouts.append((w_score, load))
        spans.append((w_start, w_end))
        latest_update = max(latest_update, updated)
        cursor = w_end + rng.randint(2 * _HOUR, 5 * _HOUR)
    return scored_workouts, spans, latest_update


def _nap(n: _Night, need: dict[str, int], spans: list[tuple[int, int]], previous: dict[str, float]) -> None:
    """Now and then a nap clear of the workouts; it lowers the next night's need."""
    rng = n.rng
    previous["nap"] = 0
    nap_start = n.wake + rng.randint(5 * _HOUR, 8 * _HOUR)
    nap_len = rng.randint(15 * _MIN, 60 * _MIN)
    free = all(
        nap_start + nap_len + 30 * _MIN < w_start or nap_start > w_end + 30 * _MIN for w_start, w_end in spans
    )
    if not (
        rng.random() < 0.15
        and free
        and nap_start + nap_len < n.horizon - 3 * _HOUR
        and nap_start + nap_len + _PROCESSED_MS <= n.until
    ):
        return
    nap_need = dict(need, need_from_sleep_debt_milli=0, need_from_recent_strain_milli=0)
    nap_need["need_from_recent_nap_milli"] = 0
    nap_score = sleep_score(rng, n.member.baseline, nap_len, nap_need, nap=True, first=n.night == 0)
    created = nap_start + nap_len + rng.randint(2 * _MIN, 6 * _MIN)
    nap_id = new_uuid(rng)
    n.member.sleeps.append(
        {
            "id": nap_id,
            "cycle_id": n.cycle_id,
            "v1_id": _v1(rng, n.member, nap_start, nap_id),
            "user_id": n.member.user_id,
            "created_at": format_ms(created),
            "updated_at": format_ms(created + rng.randint(_MIN, 6 * _MIN)),
            "start": format_ms(nap_start),
            "end": format_ms(nap_start + nap_len),
            "timezone_offset": offset_at(n.zone, nap_start),
            "nap": True,
            "score_state": "SCORED",
            "score": nap_score,
        }
    )
    stages = nap_score["stage_summary"]
    previous["nap"] = (stages["total_in_bed_time_milli"] - stages["total_awake_time_milli"]) * 0.7
