"""When a simulated member slept: each night's onset and wake, in their zone of the night (pure).

Bedtimes drift later on weekends, a trip moves a member to another zone for a few nights (eastward,
they stay up longer), and DST days have 23 or 25 hours. Given the simulator's clock, the history ends
with the latest night whose sleep is over and processed (``finished_nights``).
"""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

from simulator.timefmt import format_ms

__all__ = ["HOUR_MS", "MIN_MS", "PROCESSED_MS", "finished_nights"]

MIN_MS = 60_000
HOUR_MS = 3_600_000
# a sleep or workout shows up once it is processed: created 1-9 min after it ends, scored 1-6 min later
PROCESSED_MS = 15 * MIN_MS
_MAX_NIGHT_SHIFTS = 10  # how many nights back the newest finished night can be (2 or 3 in practice)


def _local_ms(day: dt.date, minutes_after_midnight: float, zone: str) -> int:
    # wall-clock arithmetic in the zone, then to UTC: DST days have 23 or 25 hours
    naive = dt.datetime.combine(day, dt.time(0)) + dt.timedelta(minutes=minutes_after_midnight)
    local = naive.replace(tzinfo=ZoneInfo(zone))
    return int(local.timestamp() * 1000)


def finished_nights(
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
        if wakes[-1] + PROCESSED_MS <= now_ms:
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
        if wakes and onset < wakes[-1] + 10 * HOUR_MS:  # eastward travel: jet-lagged, stays up longer
            onset = wakes[-1] + 10 * HOUR_MS + rng.randint(0, 3 * HOUR_MS)
        in_bed = round(rng.uniform(6.0, 8.8) * HOUR_MS + (30 * MIN_MS if weekend else 0))
        onsets.append(onset)
        wakes.append(onset + in_bed)
        zones.append(zone)
    return onsets, wakes, zones
