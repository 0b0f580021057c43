"""Canonical records for the projection tests, built the way the normalizer will build them.

Each builder makes the WHOOP v2 document (``whoop-api-v2.md`` §6) and the canonical record that
carries it, with the local date computed from the record's own ``timezone_offset``
(§12 item 12: sleep and recovery → the local date of the sleep's end; cycle → its main sleep's end).
:func:`history` makes a member's consistent days (cycle, main sleep, recovery, sometimes a nap
and a workout).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from schemas.identity import user_id_for_whoop_member
from schemas.records import (
    CycleDeleted,
    CycleRecorded,
    RecoveryDeleted,
    RecoveryRecorded,
    SleepDeleted,
    SleepRecorded,
    WorkoutDeleted,
    WorkoutRecorded,
)
from schemas.units import kcal_from_kj

T0 = datetime(2025, 10, 1, 6, 0, tzinfo=UTC)
SOURCE = "test-normalizer"


def iso(moment: datetime) -> str:
    """WHOOP's timestamp form: UTC, milliseconds, Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_offset(offset: str) -> timedelta:
    if offset == "Z":
        return timedelta(0)
    sign = -1 if offset[0] == "-" else 1
    hours, minutes = offset[1:].split(":")
    return sign * timedelta(hours=int(hours), minutes=int(minutes))


def local_date(moment: datetime, offset: str) -> date:
    return moment.astimezone(timezone(parse_offset(offset))).date()


@dataclass(frozen=True)
class Member:
    whoop_user_id: int

    @property
    def user_id(self) -> str:
        return user_id_for_whoop_member(self.whoop_user_id)

    @property
    def device_id(self) -> str:
        return f"whoop_{self.whoop_user_id}"


def _envelope(member: Member, occurred_at: datetime | None, updated_at: datetime) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": occurred_at or updated_at + timedelta(seconds=2),
        "user_id": member.user_id,
        "source": SOURCE,
        "whoop_user_id": member.whoop_user_id,
    }


def cycle(
    member: Member,
    cycle_id: int,
    start: datetime,
    end: datetime | None,
    updated_at: datetime,
    *,
    strain: float | None = 12.5,
    kilojoule: float = 9000.0,
    tz: str = "-04:00",
    normalizer_version: int = 1,
    occurred_at: datetime | None = None,
    day: date | None = None,
) -> CycleRecorded:
    scored = strain is not None
    document: dict[str, Any] = {
        "id": cycle_id,
        "user_id": member.whoop_user_id,
        "created_at": iso(start + timedelta(hours=8)),
        "updated_at": iso(updated_at),
        "start": iso(start),
        "end": None if end is None else iso(end),
        "timezone_offset": tz,
        "score_state": "SCORED" if scored else "PENDING_SCORE",
    }
    if scored:
        document["score"] = {
            "strain": strain,
            "kilojoule": kilojoule,
            "average_heart_rate": 64,
            "max_heart_rate": 171,
        }
    return CycleRecorded(
        **_envelope(member, occurred_at, updated_at),
        whoop_updated_at=updated_at,
        normalizer_version=normalizer_version,
        score_state="SCORED" if scored else "PENDING_SCORE",
        document=document,
        cycle_id=cycle_id,
        start=start,
        end=end,
        timezone_offset=tz,
        local_date=day or local_date(start + timedelta(hours=8), tz),
        strain=strain,
        energy_kcal=kcal_from_kj(kilojoule) if scored else None,
        average_heart_rate_bpm=64 if scored else None,
        max_heart_rate_bpm=171 if scored else None,
    )


def sleep(
    member: Member,
    sleep_id: str,
    cycle_id: int,
    start: datetime,
    end: datetime,
    updated_at: datetime,
    *,
    nap: bool = False,
    performance: float | None = 91.0,
    tz: str = "-04:00",
    normalizer_version: int = 1,
    occurred_at: datetime | None = None,
) -> SleepRecorded:
    in_bed = int((end - start).total_seconds() * 1000)
    awake = in_bed // 10
    light, sws = in_bed * 4 // 10, in_bed * 2 // 10
    rem = in_bed - awake - light - sws
    document: dict[str, Any] = {
        "id": sleep_id,
        "cycle_id": cycle_id,
        "v1_id": None,
        "user_id": member.whoop_user_id,
        "created_at": iso(end + timedelta(minutes=5)),
        "updated_at": iso(updated_at),
        "start": iso(start),
        "end": iso(end),
        "timezone_offset": tz,
        "nap": nap,
        "score_state": "SCORED",
        "score": {
            "stage_summary": {
                "total_in_bed_time_milli": in_bed,
                "total_awake_time_milli": awake,
                "total_no_data_time_milli": 0,
                "total_light_sleep_time_milli": light,
                "total_slow_wave_sleep_time_milli": sws,
                "total_rem_sleep_time_milli": rem,
                "sleep_cycle_count": 4,
                "disturbance_count": 7,
            },
            "sleep_needed": {
                "baseline_milli": 27_000_000,
                "need_from_sleep_debt_milli": 1_000_000,
                "need_from_recent_strain_milli": 300_000,
                "need_from_recent_nap_milli": 0,
            },
            "respiratory_rate": 15.25,
            "sleep_performance_percentage": performance,
            "sleep_consistency_percentage": 70.0,
            "sleep_efficiency_percentage": 90.0,
        },
    }
    return SleepRecorded(
        **_envelope(member, occurred_at, updated_at),
        whoop_updated_at=updated_at,
        normalizer_version=normalizer_version,
        score_state="SCORED",
        document=document,
        sleep_id=sleep_id,
        cycle_id=cycle_id,
        nap=nap,
        start=start,
        end=end,
        timezone_offset=tz,
        local_date=local_date(end, tz),
        in_bed_ms=in_bed,
        awake_ms=awake,
        light_ms=light,
        slow_wave_ms=sws,
        rem_ms=rem,
        no_data_ms=0,
        asleep_ms=light + sws + rem,
        sleep_needed_ms=28_300_000,
        sleep_cycle_count=4,
        disturbance_count=7,
        respiratory_rate_bpm=15.25,
        performance_pct=performance,
        consistency_pct=70.0,
        efficiency_pct=90.0,
    )


def recovery(
    member: Member,
    cycle_id: int,
    sleep_id: str,
    updated_at: datetime,
    *,
    score: float = 68.0,
    hrv: float = 61.5,
    resting_hr: float = 52.0,
    day: date | None = None,
    created_at: datetime | None = None,
    normalizer_version: int = 1,
    occurred_at: datetime | None = None,
) -> RecoveryRecorded:
    document: dict[str, Any] = {
        "cycle_id": cycle_id,
        "sleep_id": sleep_id,
        "user_id": member.whoop_user_id,
        "created_at": iso(created_at or updated_at),
        "updated_at": iso(updated_at),
        "score_state": "SCORED",
        "score": {
            "user_calibrating": False,
            "recovery_score": score,
            "resting_heart_rate": resting_hr,
            "hrv_rmssd_milli": hrv,
            "spo2_percentage": 96.25,
            "skin_temp_celsius": 33.8,
        },
    }
    return RecoveryRecorded(
        **_envelope(member, occurred_at, updated_at),
        whoop_updated_at=updated_at,
        normalizer_version=normalizer_version,
        score_state="SCORED",
        document=document,
        cycle_id=cycle_id,
        sleep_id=sleep_id,
        local_date=day,
        user_calibrating=False,
        recovery_score_pct=score,
        resting_heart_rate_bpm=resting_hr,
        hrv_rmssd_ms=hrv,
        spo2_pct=96.25,
        skin_temp_c=33.8,
    )


def workout(
    member: Member,
    workout_id: str,
    start: datetime,
    end: datetime,
    updated_at: datetime,
    *,
    sport: str = "running",
    kilojoule: float = 2300.0,
    distance_m: float | None = 8046.7,
    tz: str = "-04:00",
    normalizer_version: int = 1,
    occurred_at: datetime | None = None,
) -> WorkoutRecorded:
    zones = (42_110, 318_204, 905_322, 1_104_987, 367_926, 0)
    score: dict[str, Any] = {
        "strain": 11.07,
        "average_heart_rate": 152,
        "max_heart_rate": 178,
        "kilojoule": kilojoule,
        "percent_recorded": 100.0,
        "altitude_gain_meter": 38.2,
        "altitude_change_meter": -2.6,
        "zone_durations": dict(
            zip(
                (
                    "zone_zero_milli",
                    "zone_one_milli",
                    "zone_two_milli",
                    "zone_three_milli",
                    "zone_four_milli",
                    "zone_five_milli",
                ),
                zones,
                strict=True,
            )
        ),
    }
    if distance_m is not None:
        score["distance_meter"] = distance_m
    document: dict[str, Any] = {
        "id": workout_id,
        "v1_id": None,
        "user_id": member.whoop_user_id,
        "created_at": iso(end + timedelta(minutes=2)),
        "updated_at": iso(updated_at),
        "start": iso(start),
        "end": iso(end),
        "timezone_offset": tz,
        "sport_name": sport,
        "score_state": "SCORED",
        "score": score,
        "sport_id": 0,
    }
    return WorkoutRecorded(
        **_envelope(member, occurred_at, updated_at),
        whoop_updated_at=updated_at,
        normalizer_version=normalizer_version,
        score_state="SCORED",
        document=document,
        workout_id=workout_id,
        sport_name=sport,
        sport_id=0,
        start=start,
        end=end,
        timezone_offset=tz,
        local_date=local_date(start, tz),
        strain=11.07,
        energy_kcal=kcal_from_kj(kilojoule),
        average_heart_rate_bpm=152,
        max_heart_rate_bpm=178,
        percent_recorded=100.0,
        distance_m=distance_m,
        altitude_gain_m=38.2,
        altitude_change_m=-2.6,
        zone_ms=zones,
    )


def _deleted_envelope(member: Member, at: datetime, normalizer_version: int) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": at,
        "user_id": member.user_id,
        "source": SOURCE,
        "whoop_user_id": member.whoop_user_id,
        "normalizer_version": normalizer_version,
    }


def cycle_deleted(member: Member, cycle_id: int, at: datetime, normalizer_version: int = 1) -> CycleDeleted:
    return CycleDeleted(**_deleted_envelope(member, at, normalizer_version), cycle_id=cycle_id)


def sleep_deleted(member: Member, sleep_id: str, at: datetime, normalizer_version: int = 1) -> SleepDeleted:
    return SleepDeleted(**_deleted_envelope(member, at, normalizer_version), sleep_id=sleep_id)


def recovery_deleted(
    member: Member, cycle_id: int, sleep_id: str | None, at: datetime, normalizer_version: int = 1
) -> RecoveryDeleted:
    return RecoveryDeleted(
        **_deleted_envelope(member, at, normalizer_version),
        cycle_id=cycle_id,
        sleep_id=sleep_id,
    )


def workout_deleted(
    member: Member, workout_id: str, at: datetime, normalizer_version: int = 1
) -> WorkoutDeleted:
    return WorkoutDeleted(**_deleted_envelope(member, at, normalizer_version), workout_id=workout_id)


@dataclass(frozen=True)
class Day:
    """The records of one member's day, and the ids they use."""

    cycle: CycleRecorded
    sleep: SleepRecorded
    recovery: RecoveryRecorded
    nap: SleepRecorded | None
    workout: WorkoutRecorded | None

    def records(self) -> list[CycleRecorded | SleepRecorded | RecoveryRecorded | WorkoutRecorded]:
        items: list[CycleRecorded | SleepRecorded | RecoveryRecorded | WorkoutRecorded] = [
            self.sleep,
            self.recovery,
            self.cycle,
        ]
        if self.nap is not None:
            items.append(self.nap)
        if self.workout is not None:
            items.append(self.workout)
        return items


def history(member: Member, days: int, start: datetime = T0, seed: int = 0, tz: str = "-04:00") -> list[Day]:
    """``days`` consecutive, consistent days of ``member``: sleep onset 02:30 UTC ± minutes each night."""
    rng = random.Random(f"{seed}:{member.whoop_user_id}")
    result: list[Day] = []
    base_cycle = 1_000_000_000 + member.whoop_user_id * 10_000
    onsets = [start + timedelta(days=i, minutes=rng.randint(-40, 40)) for i in range(days + 1)]
    for i in range(days):
        onset, next_onset = onsets[i], onsets[i + 1]
        wake = onset + timedelta(hours=7, minutes=rng.randint(0, 90))
        cycle_id = base_cycle + i
        sleep_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        updated = wake + timedelta(minutes=20)
        main = sleep(
            member, sleep_id, cycle_id, onset, wake, updated, tz=tz, performance=float(rng.randint(60, 100))
        )
        rec = recovery(
            member,
            cycle_id,
            sleep_id,
            updated,
            score=float(rng.randint(10, 99)),
            hrv=round(rng.uniform(30, 110), 3),
            resting_hr=float(rng.randint(45, 65)),
            day=local_date(wake, tz),
            created_at=wake + timedelta(minutes=5),
        )
        cyc = cycle(
            member,
            cycle_id,
            onset,
            next_onset,
            next_onset + timedelta(hours=8),
            strain=round(rng.uniform(4, 20), 4),
            kilojoule=round(rng.uniform(6000, 14000), 1),
            tz=tz,
            day=local_date(wake, tz),
        )
        nap = None
        if rng.random() < 0.2:
            nap_start = wake + timedelta(hours=7)
            nap = sleep(
                member,
                str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                cycle_id,
                nap_start,
                nap_start + timedelta(minutes=35),
                nap_start + timedelta(hours=1),
                nap=True,
                tz=tz,
            )
        work = None
        if rng.random() < 0.5:
            w_start = wake + timedelta(hours=10)
            work = workout(
                member,
                str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                w_start,
                w_start + timedelta(minutes=45),
                w_start + timedelta(hours=1),
                tz=tz,
            )
        result.append(Day(cyc, main, rec, nap, work))
    return result


Canonical = (
    CycleRecorded
    | SleepRecorded
    | RecoveryRecorded
    | WorkoutRecorded
    | CycleDeleted
    | SleepDeleted
    | RecoveryDeleted
    | WorkoutDeleted
)


def mixed_log(members: list[Member], days: int = 12, seed: int = 0) -> list[Canonical]:
    """Members' histories with re-scored versions, stale replays, duplicates and deletions (no erasures)."""
    log: list[Canonical] = []
    for member in members:
        member_days = history(member, days, seed=seed)
        for day in member_days:
            log.extend(day.records())
        for day in member_days[2:6]:  # re-scored, then the stale originals replayed, then duplicates
            newer = day.recovery.whoop_updated_at + timedelta(hours=3)
            log.append(recovery(member, day.recovery.cycle_id, day.recovery.sleep_id, newer, score=11.0))
            log.append(day.recovery)
            log.append(day.sleep)
        gone = member_days[7]  # deletions, then stale upserts of what was deleted
        at = gone.sleep.whoop_updated_at + timedelta(days=2)
        log.append(sleep_deleted(member, gone.sleep.sleep_id, at))
        log.append(recovery_deleted(member, gone.recovery.cycle_id, gone.sleep.sleep_id, at))
        log.append(gone.recovery)
        log.append(gone.sleep)
        for day in member_days[8:10]:
            if day.workout is not None:
                log.append(workout_deleted(member, day.workout.workout_id, at))
                log.append(day.workout)
        log.append(cycle_deleted(member, member_days[-1].cycle.cycle_id, at))
    return log
