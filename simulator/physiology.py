"""Pure, physiologically plausible score builders for sleeps, recoveries, workouts and cycles.

Each function takes a ``random.Random`` and the member's baselines and returns a JSON-ready
``score`` object with WHOOP's fields and units (§6): milliseconds for stages and zones, kJ for
energy, 0-21 strain, bpm, percent. Float fields are always ``float`` (``70.0``, never ``70``).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SPORTS",
    "Baseline",
    "Sport",
    "cycle_score",
    "load_from_strain",
    "recovery_score",
    "sleep_score",
    "strain_from_load",
    "workout_score",
]

Json = dict[str, Any]
_MIN = 60_000


@dataclass(frozen=True, slots=True)
class Baseline:
    """A member's physiology: what their scores vary around."""

    age: int
    weight_kilogram: float
    height_meter: float
    max_heart_rate: int
    resting_heart_rate: float
    hrv_rmssd_milli: float
    respiratory_rate: float
    sleep_need_milli: int
    skin_temp_celsius: float
    has_spo2: bool


@dataclass(frozen=True, slots=True)
class Sport:
    """A sport with its typical duration (minutes), intensity (fraction of max HR) and speed (m/s)."""

    name: str
    sport_id: int
    minutes: tuple[int, int]
    intensity: tuple[float, float]
    speed: tuple[float, float] | None = None
    outdoor: bool = False


SPORTS: tuple[Sport, ...] = (
    Sport("running", 0, (25, 80), (0.72, 0.87), (2.5, 3.9), outdoor=True),
    Sport("cycling", 1, (40, 150), (0.64, 0.82), (5.5, 9.0), outdoor=True),
    Sport("swimming", 33, (25, 60), (0.62, 0.78), (0.6, 1.1)),
    Sport("walking", 63, (25, 90), (0.48, 0.60), (1.2, 1.6), outdoor=True),
    Sport("hiking-rucking", 52, (60, 240), (0.55, 0.70), (0.9, 1.4), outdoor=True),
    Sport("rowing", 18, (20, 60), (0.68, 0.84), (3.3, 4.4)),
    Sport("weightlifting", 45, (40, 80), (0.55, 0.70)),
    Sport("functional-fitness", 48, (30, 60), (0.68, 0.85)),
    Sport("hiit", 96, (20, 45), (0.72, 0.88)),
    Sport("yoga", 44, (30, 75), (0.45, 0.58)),
    Sport("pilates", 43, (30, 60), (0.48, 0.60)),
    Sport("basketball", 17, (45, 100), (0.70, 0.85)),
    Sport("baseball", 16, (60, 150), (0.52, 0.66)),
    Sport("strength-trainer", 123, (35, 70), (0.56, 0.70)),
    Sport("meditation", 70, (10, 30), (0.33, 0.42)),
    Sport("sauna", 233, (10, 25), (0.50, 0.62)),
    Sport("ice-bath", 88, (3, 10), (0.40, 0.55)),
    Sport("activity", -1, (20, 60), (0.50, 0.68)),
    Sport("other", 71, (20, 60), (0.50, 0.70)),
)

_ZONE_KEYS = (
    "zone_zero_milli",
    "zone_one_milli",
    "zone_two_milli",
    "zone_three_milli",
    "zone_four_milli",
    "zone_five_milli",
)
_ZONE_LOWER = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9)  # fraction of max HR where each zone starts


def strain_from_load(load: float) -> float:
    """WHOOP-like logarithmic strain (0-21) from a TRIMP-style cardiovascular load."""
    return round(21.0 * (1.0 - math.exp(-max(load, 0.0) / 150.0)), 4)


def load_from_strain(strain: float) -> float:
    """The load behind a strain: the inverse of :func:`strain_from_load`."""
    return -150.0 * math.log(max(1.0 - strain / 21.0, 1e-9))


def _split(total: int, fractions: list[float]) -> list[int]:
    """Split ``total`` into integer parts proportional to ``fractions`` that sum exactly to it."""
    norm = sum(fractions) or 1.0
    parts = [int(total * f / norm) for f in fractions]
    parts[max(range(len(parts)), key=lambda i: fractions[i])] += total - sum(parts)
    return parts


def sleep_score(
    rng: random.Random, base: Baseline, in_bed_milli: int, need: Json, *, nap: bool, first: bool
) -> Json:
    """A ``SleepScore``: stages that add up to the time in bed, and the percentages derived from them."""
    awake = int(in_bed_milli * rng.uniform(0.04, 0.13 if not nap else 0.25))
    no_data = int(rng.uniform(5, 40) * _MIN) if rng.random() < 0.03 and not nap else 0
    no_data = min(no_data, (in_bed_milli - awake) // 4)
    asleep = in_bed_milli - awake - no_data
    if nap:
        rem_f, sws_f = (0.0, rng.uniform(0.05, 0.2)) if asleep < 45 * _MIN else (0.1, 0.2)
    else:
        rem_f, sws_f = rng.uniform(0.19, 0.27), rng.uniform(0.15, 0.25)
    light, sws, rem = _split(asleep, [1.0 - rem_f - sws_f, sws_f, rem_f])
    needed_total = sum(int(v) for v in need.values())
    score: Json = {
        "stage_summary": {
            "total_in_bed_time_milli": in_bed_milli,
            "total_awake_time_milli": awake,
            "total_no_data_time_milli": no_data,
            "total_light_sleep_time_milli": light,
            "total_slow_wave_sleep_time_milli": sws,
            "total_rem_sleep_time_milli": rem,
            "sleep_cycle_count": 0 if nap else max(1, round(asleep / (90 * _MIN))),
            "disturbance_count": rng.randint(0, 3) if nap else rng.randint(3, 16),
        },
        "sleep_needed": dict(need),
        "respiratory_rate": round((base.respiratory_rate + rng.uniform(-0.6, 0.6)) * 256) / 256,
    }
    if not nap:
        score["sleep_performance_percentage"] = float(min(100, round(100 * asleep / max(needed_total, 1))))
        if not first:
            score["sleep_consistency_percentage"] = float(rng.randint(45, 96))
    score["sleep_efficiency_percentage"] = round(100 * asleep / in_bed_milli, 6)
    return score


def recovery_score(
    rng: random.Random, base: Baseline, *, previous_strain: float, performance: float, calibrating: bool
) -> Json:
    """A ``RecoveryScore``: HRV and RHR around the baseline, pushed by yesterday's strain and last night."""
    load = max(previous_strain - 10.0, 0.0) / 11.0
    sleep_gap = max(0.0, 90.0 - performance) / 100.0
    hrv = base.hrv_rmssd_milli * math.exp(rng.gauss(0.0, 0.12) - 0.25 * load - 0.3 * sleep_gap)
    rhr = base.resting_heart_rate * (1.0 + rng.gauss(0.0, 0.03) + 0.06 * load + 0.05 * sleep_gap)
    raw = 58.0 + 95.0 * math.log(hrv / base.hrv_rmssd_milli) - 2.0 * (rhr - base.resting_heart_rate)
    score: Json = {
        "user_calibrating": calibrating,
        "recovery_score": float(max(1, min(99, round(raw + rng.gauss(0.0, 4.0))))),
        "resting_heart_rate": float(round(rhr)),
        "hrv_rmssd_milli": round(hrv, 6),
    }
    if base.has_spo2:
        score["spo2_percentage"] = round(rng.uniform(94.5, 98.8) * 4) / 4
        score["skin_temp_celsius"] = round(base.skin_temp_celsius + rng.gauss(0.0, 0.25), 2)
    return score


def _zones(rng: random.Random, duration_milli: int, intensity: float) -> tuple[list[int], float]:
    """Zone durations (ms, summing to the duration) around ``intensity``, and the TRIMP-style load."""
    spread = rng.uniform(0.05, 0.09)
    weights = []
    for index, lower in enumerate(_ZONE_LOWER):
        upper = _ZONE_LOWER[index + 1] if index + 1 < len(_ZONE_LOWER) else 1.2
        middle = (max(lower, 0.3) + upper) / 2
        weights.append(math.exp(-(((middle - intensity) / spread) ** 2) / 2) + 1e-4)
    parts = _split(duration_milli, weights)
    minutes = [p / _MIN for p in parts]
    load = sum(m * z for z, m in enumerate(minutes)) * 1.1
    return parts, load


def workout_score(
    rng: random.Random, base: Baseline, sport: Sport, duration_milli: int
) -> tuple[Json, float]:
    """A ``WorkoutScore`` and its load; distance and altitude only for sports that move."""
    intensity = rng.uniform(*sport.intensity)
    avg_hr = round(base.max_heart_rate * intensity)
    max_hr = min(base.max_heart_rate, avg_hr + rng.randint(8, 30))
    parts, load = _zones(rng, duration_milli, intensity)
    kj_per_min = max(5.0, -55.0969 + 0.6309 * avg_hr + 0.1988 * base.weight_kilogram + 0.2017 * base.age)
    score: Json = {
        "strain": strain_from_load(load),
        "average_heart_rate": avg_hr,
        "max_heart_rate": max_hr,
        "kilojoule": round(kj_per_min * duration_milli / _MIN, 2),
        "percent_recorded": 100.0 if rng.random() < 0.85 else round(rng.uniform(88.0, 99.9), 2),
    }
    if sport.speed is not None:
        score["distance_meter"] = round(rng.uniform(*sport.speed) * duration_milli / 1000, 1)
        if sport.outdoor:
            km = score["distance_meter"] / 1000
            score["altitude_gain_meter"] = round(km * rng.uniform(0.5, 18.0), 1)
            score["altitude_change_meter"] = round(rng.uniform(-12.0, 12.0), 1)
    score["zone_durations"] = dict(zip(_ZONE_KEYS, parts, strict=True))
    return score, load


def cycle_score(
    rng: random.Random, base: Baseline, duration_milli: int, workouts: list[tuple[Json, float]]
) -> Json:
    """A ``CycleScore`` from the cycle length and its workouts (strains do not add: load does)."""
    hours = duration_milli / 3_600_000
    daily_load = rng.uniform(35.0, 85.0) * hours / 24
    load = daily_load + sum(item[1] for item in workouts)
    bmr_kj = (10 * base.weight_kilogram + 625 * base.height_meter - 5 * base.age + 5) * 4.184
    kilojoule = bmr_kj * hours / 24 * rng.uniform(1.15, 1.45) + sum(w[0]["kilojoule"] for w in workouts)
    workout_minutes = sum(sum(w[0]["zone_durations"].values()) for w in workouts) / _MIN
    workout_hr = (
        sum(w[0]["average_heart_rate"] * sum(w[0]["zone_durations"].values()) for w in workouts) / _MIN
    )
    rest_minutes = max(hours * 60 - workout_minutes, 1.0)
    rest_hr = base.resting_heart_rate + rng.uniform(10.0, 22.0)
    avg_hr = round((rest_hr * rest_minutes + workout_hr) / (rest_minutes + workout_minutes))
    max_hr = max([w[0]["max_heart_rate"] for w in workouts] + [round(rest_hr + rng.uniform(30, 60))])
    return {
        "strain": strain_from_load(load),
        "kilojoule": round(kilojoule, 1),
        "average_heart_rate": avg_hr,
        "max_heart_rate": min(max_hr, base.max_heart_rate),
    }
