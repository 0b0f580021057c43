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
_MIN = 60_000
_HOUR = 3_600_000
_V1_CUTOFF_MS = 1_756_684_800_000  # 2025-09-01T00:00:00Z: v1 ids do not exist past this date
# a sleep or workout shows up once it is processed: created 1-9 min after it ends, scored 1-6 min later
_PROCESSED_MS = 15 * _MIN
_MAX_NIGHT_SHIFTS = 10  # how many nights back the newest finished night can be (2 or 3 in practice)


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


def _local_ms(day: dt.date, minutes_after_midnight: float, zone: str) -> int:
    # wall-clock arithmetic in the zone, then to UTC: DST days have 23 or 25 hours
    naive = dt.datetime.combine(day, dt.time(0)) + dt.timedelta(minutes=minutes_after_midnight)
    local = naive.replace(tzinfo=ZoneInfo(zone))
    return int(local.timestamp() * 1000)


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
    onsets, wakes, zones = _finished_nights(rng, days, history_end, home, trip, now_ms)
    cycle_id = 1_000_000_000 + index * 1_000_000 + rng.randint(1, 500)
    previous = {"strain": 8.0, "debt": 0, "nap": 0}
    for night in range(days):
        _build_cycle(
            rng, member, night, cycle_id, onsets, wakes, zones[night], previous, current_state, now_ms
        )
        member.last_cycle_id = cycle_id
        cycle_id += rng.randint(1, 200)
    return member


def _finished_nights(
    rng: random.Random,
    days: int,
    history_end: dt.date,
    home: str,
    trip: tuple[int, int, str] | None,
    now_ms: int | None,
) -> tuple[list[int], list[int], list[str]]:
    """The nights of the history, the last one over and processed by ``now_ms`` (when given).

    Starts from ``history_end`` (at most the member's local date of ``now_ms``) and steps back a
    night while the last one has not been processed yet; each try draws from the same RNG state, so
    a history already over is drawn exactly as without a clock.
    """
    if now_ms is None:
        return _nights(rng, days, history_end, home, trip)
    local_today = dt.datetime.fromtimestamp(now_ms / 1000, tz=ZoneInfo(home)).date()
    last = min(history_end, local_today)
    state = rng.getstate()
    for _ in range(_MAX_NIGHT_SHIFTS):
        onsets, wakes, zones = _nights(rng, days, last, home, trip)
        if wakes[-1] + _PROCESSED_MS <= now_ms:
            return onsets, wakes, zones
        rng.setstate(state)
        last -= dt.timedelta(days=1)
    raise ValueError(f"no night of the history is over by {format_ms(now_ms)}")


def _nights(
    rng: random.Random, days: int, history_end: dt.date, home: str, trip: tuple[int, int, str] | None
) -> tuple[list[int], list[int], list[str]]:
    onsets: list[int] = []
    wakes: list[int] = []
    zones: list[str] = []
    for night in range(days):
        day = history_end - dt.timedelta(days=days - 1 - night)
        zone = trip[2] if trip and trip[0] <= night < trip[0] + trip[1] else home
        weekend = day.weekday() >= 4
        bedtime = 21.5 * 60 + rng.uniform(0, 150) + (40 if weekend else 0) + rng.random()
        onset = _local_ms(day, bedtime, zone)
        if wakes and onset < wakes[-1] + 10 * _HOUR:  # eastward travel: jet-lagged, stays up longer
            onset = wakes[-1] + 10 * _HOUR + rng.randint(0, 3 * _HOUR)
        in_bed = round(rng.uniform(6.0, 8.8) * _HOUR + (30 * _MIN if weekend else 0))
        onsets.append(onset)
        wakes.append(onset + in_bed)
        zones.append(zone)
    return onsets, wakes, zones


def _v1(rng: random.Random, member: Member, start_ms: int, activity_id: str) -> int | None:
    if start_ms >= _V1_CUTOFF_MS:
        return None
    v1_id = rng.randint(100_000_000, 9_999_999_999)
    member.v1_map[v1_id] = activity_id
    return v1_id


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
    base = member.baseline
    start, wake = onsets[night], wakes[night]
    is_current = night == len(onsets) - 1
    end = None if is_current else onsets[night + 1]
    horizon = end if end is not None else wake + 15 * _HOUR
    # what has happened by now: the open cycle is cut at the clock (a closed one is already over)
    until = horizon if now_ms is None else min(horizon, now_ms)
    offset = offset_at(zone, start)
    uid = member.user_id

    need = {
        "baseline_milli": base.sleep_need_milli + rng.randint(-10, 10) * _MIN,
        "need_from_sleep_debt_milli": int(previous["debt"]),
        "need_from_recent_strain_milli": int(max(0.0, previous["strain"] - 10.0) * 3 * _MIN),
        "need_from_recent_nap_milli": -int(previous["nap"]),
    }
    previous["nap"] = 0  # a nap counts against the next night's need only
    sleep_id = new_uuid(rng)
    sleep_created = wake + rng.randint(2 * _MIN, 9 * _MIN)
    scorable = rng.random() >= 0.03
    score = sleep_score(rng, base, wake - start, need, nap=False, first=night == 0) if scorable else None
    sleep_updated = sleep_created + (rng.randint(_MIN, 6 * _MIN) if scorable else 0)
    member.sleeps.append(
        {
            "id": sleep_id,
            "cycle_id": cycle_id,
            "v1_id": _v1(rng, member, start, sleep_id),
            "user_id": uid,
            "created_at": format_ms(sleep_created),
            "updated_at": format_ms(sleep_updated),
            "start": format_ms(start),
            "end": format_ms(wake),
            "timezone_offset": offset,
            "nap": False,
            "score_state": "SCORED" if scorable else "UNSCORABLE",
            "score": score,
        }
    )
    performance = score["sleep_performance_percentage"] if score else 80.0
    if rng.random() >= 0.02:  # now and then a cycle has no recovery at all
        recovery = (
            recovery_score(
                rng, base, previous_strain=previous["strain"], performance=performance, calibrating=night < 4
            )
            if scorable
            else None
        )
        member.recoveries.append(
            {
                "cycle_id": cycle_id,
                "sleep_id": sleep_id,
                "user_id": uid,
                "created_at": format_ms(sleep_created),
                "updated_at": format_ms(sleep_updated),
                "score_state": "SCORED" if scorable else "UNSCORABLE",
                "score": recovery,
            }
        )
    asleep = (wake - start) * 0.85
    if score is not None:
        stages = score["stage_summary"]
        asleep = stages["total_in_bed_time_milli"] - stages["total_awake_time_milli"]
    previous["debt"] = min(max(0.0, (sum(need.values()) - asleep) * 0.3), 1.5 * _HOUR)

    scored_workouts: list[tuple[Json, float]] = []
    spans: list[tuple[int, int]] = []
    latest_update = sleep_updated
    cursor = wake + rng.randint(40 * _MIN, 3 * _HOUR)
    for _ in range(rng.choices((0, 1, 2), weights=(35, 50, 15))[0]):
        sport = rng.choice(SPORTS)
        duration = round(rng.uniform(*sport.minutes) * _MIN) + rng.randint(0, 59_999)
        if cursor + duration > horizon - 90 * _MIN or cursor + duration + _PROCESSED_MS > until:
            break
        w_start = cursor
        w_end = w_start + duration
        workout_id = new_uuid(rng)
        w_scorable = rng.random() >= 0.02
        w_score, load = workout_score(rng, base, sport, duration)
        created = w_end + rng.randint(_MIN, 5 * _MIN)
        updated = created + rng.randint(_MIN, 6 * _MIN)
        member.workouts.append(
            {
                "id": workout_id,
                "v1_id": _v1(rng, member, w_start, workout_id),
                "user_id": uid,
                "created_at": format_ms(created),
                "updated_at": format_ms(updated),
                "start": format_ms(w_start),
                "end": format_ms(w_end),
                "timezone_offset": offset_at(zone, w_start),
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

    previous["nap"] = 0
    nap_start = wake + rng.randint(5 * _HOUR, 8 * _HOUR)
    nap_len = rng.randint(15 * _MIN, 60 * _MIN)
    free = all(
        nap_start + nap_len + 30 * _MIN < w_start or nap_start > w_end + 30 * _MIN for w_start, w_end in spans
    )
    if (
        rng.random() < 0.15
        and free
        and nap_start + nap_len < horizon - 3 * _HOUR
        and nap_start + nap_len + _PROCESSED_MS <= until
    ):
        nap_need = dict(need, need_from_sleep_debt_milli=0, need_from_recent_strain_milli=0)
        nap_need["need_from_recent_nap_milli"] = 0
        nap_score = sleep_score(rng, base, nap_len, nap_need, nap=True, first=night == 0)
        created = nap_start + nap_len + rng.randint(2 * _MIN, 6 * _MIN)
        nap_id = new_uuid(rng)
        member.sleeps.append(
            {
                "id": nap_id,
                "cycle_id": cycle_id,
                "v1_id": _v1(rng, member, nap_start, nap_id),
                "user_id": uid,
                "created_at": format_ms(created),
                "updated_at": format_ms(created + rng.randint(_MIN, 6 * _MIN)),
                "start": format_ms(nap_start),
                "end": format_ms(nap_start + nap_len),
                "timezone_offset": offset_at(zone, nap_start),
                "nap": True,
                "score_state": "SCORED",
                "score": nap_score,
            }
        )
        stages = nap_score["stage_summary"]
        previous["nap"] = (stages["total_in_bed_time_milli"] - stages["total_awake_time_milli"]) * 0.7

    c_score = cycle_score(rng, base, until - start, scored_workouts)
    previous["strain"] = c_score["strain"]
    closed_update = onsets[night + 1] + 9 * _HOUR if end is not None else latest_update
    if now_ms is not None:  # a cycle closed last night is rescored during the day, not ahead of it
        closed_update = min(closed_update, now_ms)
    state = current_state if is_current else "SCORED"
    member.cycles.append(
        {
            "id": cycle_id,
            "user_id": uid,
            "created_at": format_ms(sleep_created),
            "updated_at": format_ms(max(closed_update, latest_update)),
            "start": format_ms(start),
            "end": format_ms(end) if end is not None else None,
            "timezone_offset": offset,
            "score_state": state,
            "score": c_score if state == "SCORED" else None,
        }
    )
